/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A JSON store written by the previous release (tests/fixtures/v1/json/,
 * made with it: README there) keeps working and is upgraded in place by
 * the first write, losing nothing: this build reads it as it was, a running
 * helper answers right across the upgrade, the file then says version 2
 * with every old record as it was, and a list that cannot be read makes
 * the store unavailable, never "any address".
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apikey.h"
#include "testutil.h"
#include "../store/json/json_index.h"

#define FIXTURE "tests/fixtures/v1/json/"

static char *store, *config;

/* One line of keys.txt: what the key answered under the v1 build. */
typedef struct fixture_key {
    char expect[16], account[64], service[32], key[128];
} fixture_key;

static int fixture_keys(fixture_key *k, int max)
{
    FILE *f = fopen(FIXTURE "keys.txt", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    int n = 0;
    while (n < max && fscanf(f, "%15s %63s %31s %127s", k[n].expect, k[n].account, k[n].service,
                             k[n].key) == 4)
        n++;
    fclose(f);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *bytes = tu_read(from, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0 && write(fd, bytes, len) == (ssize_t)len);
    close(fd);
    free(bytes);
}

/* The fixture in a fresh folder, with its config pointed there. Its index
 * (version 4, the previous release's) is made to name the copied JSON file
 * as the v1 build would have, so that only its version keeps this build
 * from reading it. */
static void set_up(void)
{
    static int n;
    if (asprintf(&store, "%s/v1-%d.json", tu_tmpdir(), ++n) < 0)
        abort();
    copy_file(FIXTURE "keys.json", store);
    char idx[512];
    snprintf(idx, sizeof idx, "%s.idx", store);
    copy_file(FIXTURE "keys.json.idx", idx);
    struct stat st;
    CU_ASSERT_FATAL(stat(store, &st) == 0);
    json_index_header h;
    int fd = open(idx, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0 && pread(fd, &h, sizeof h, 0) == sizeof h);
    CU_ASSERT_EQUAL_FATAL(h.version, 4);
    h.json_dev = (uint64_t)st.st_dev;
    h.json_ino = (uint64_t)st.st_ino;
    h.json_size = (uint64_t)st.st_size;
    h.json_mtime_sec = st.st_mtim.tv_sec;
    h.json_mtime_nsec = st.st_mtim.tv_nsec;
    CU_ASSERT_FATAL(pwrite(fd, &h, sizeof h, 0) == sizeof h);
    close(fd);
    char *text = tu_read(FIXTURE "apikey.conf", NULL), *line = strstr(text, "store = "), *cfg;
    CU_ASSERT_PTR_NOT_NULL_FATAL(line);
    if (asprintf(&cfg, "%.*sstore = json:%s%s", (int)(line - text), text, store,
                 line + strcspn(line, "\n")) < 0)
        abort();
    config = tu_write("v1.conf", cfg, 0644);
    free(cfg);
    free(text);
}

static void tear_down(void)
{
    free(store);
    free(config);
    store = config = NULL;
}

static json_t *load_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text ? text : "", 0, &e);
    if (!j)
        fprintf(stderr, "\nnot JSON (%s): %s\n", e.text, text ? text : "(nothing)");
    return j;
}

static json_t *read_json(const char *path)
{
    char *text = tu_read(path, NULL);
    json_t *j = load_json(text);
    free(text);
    return j;
}

/* `apikey list --all --json` as an array, without "allow_from", which the
 * v1 build did not show: this build shows [] for every key but erin's. */
static json_t *listed(void)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, &out, NULL, "list", "--all", "--json", NULL), 0);
    json_t *keys = load_json(out), *k;
    free(out);
    size_t i;
    json_array_foreach(keys, i, k) {
        json_t *list = json_object_get(k, "allow_from");
        if (strcmp(json_string_value(json_object_get(k, "account")), "erin") != 0)
            CU_ASSERT(json_is_array(list) && json_array_size(list) == 0);
        json_object_del(k, "allow_from");
        /* No key of the previous release has a rate limit. */
        CU_ASSERT(json_is_null(json_object_get(k, "rate")));
        json_object_del(k, "rate");
    }
    return keys;
}

static json_t *record_of(json_t *file, const char *id)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(file, "keys"), i, k)
        if (strcmp(json_string_value(json_object_get(k, "id")), id) == 0)
            return k;
    return NULL;
}

/* The helper's answer to one "account key" line. */
static const char *ask(tu_helper *h, const char *account, const char *key)
{
    return tu_helper_ask(h, "%s %s", account, key);
}

static void expect_answer(tu_helper *h, const char *account, const char *key, const char *want)
{
    const char *got = ask(h, account, key);
    if (strncmp(got, want, strlen(want)) != 0)
        fprintf(stderr, "\nhelper: %s %.11s: %s, expected %s\n", account, key, got, want);
    CU_ASSERT_EQUAL(strncmp(got, want, strlen(want)), 0);
}

static int verify_cmd(const char *service, const char *key)
{
    char line[160];
    snprintf(line, sizeof line, "%s\n", key);
    return tu_apikey(config, line, NULL, NULL, "verify", "--service", service, NULL);
}

/* Every fixture key answers as it did under the v1 build. */
static void expect_fixture_answers(void)
{
    fixture_key k[16];
    int n = fixture_keys(k, 16);
    CU_ASSERT_FATAL(n >= 5);
    for (int i = 0; i < n; i++) {
        int want = strcmp(k[i].expect, "ok") == 0 ? 0 : 1;
        int got = verify_cmd(k[i].service, k[i].key);
        if (got != want)
            fprintf(stderr, "\n%s key of %s: verify exit %d\n", k[i].expect, k[i].account, got);
        CU_ASSERT_EQUAL(got, want);
    }
}

static void test_reads_v1_as_it_was(void)
{
    set_up();
    char *before = tu_read(store, NULL);
    json_t *was = read_json(FIXTURE "list.json"), *now = listed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(was);
    CU_ASSERT(json_equal(was, now));
    expect_fixture_answers();
    /* Reading is not writing: the file is still the v1 build's. */
    char *after = tu_read(store, NULL);
    CU_ASSERT_STRING_EQUAL(after, before);
    CU_ASSERT_PTR_NOT_NULL(strstr(after, "\"version\": 1,"));
    json_decref(was);
    json_decref(now);
    free(before);
    free(after);
    tear_down();
}

/* Overwrite the first `from` in the store with `to` (as long), in place,
 * and put its mtime back: the file still matches its index by device,
 * inode, size and mtime, as only a deliberate hand edit could. */
static void edit_keeping_stat(const char *from, const char *to)
{
    struct stat st;
    CU_ASSERT_FATAL(stat(store, &st) == 0 && strlen(from) == strlen(to));
    char *text = tu_read(store, NULL), *at = strstr(text, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    int fd = open(store, O_WRONLY);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(pwrite(fd, to, strlen(to), at - text) == (ssize_t)strlen(to));
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    CU_ASSERT_FATAL(futimens(fd, times) == 0);
    close(fd);
    free(text);
}

/* The v4 index answers checks, as it did for the v1 build: with the JSON
 * file's middle broken (same size, same mtime), only a read of the index
 * still answers every key right; a parse would make the store unavailable.
 * A check's last_used lands in the key's slot, at its 8 bytes and nowhere
 * else. */
static void test_v4_index_answers(void)
{
    set_up();
    char idx[512];
    snprintf(idx, sizeof idx, "%s.idx", store);
    edit_keeping_stat("\"created\"", "#created\"");
    expect_fixture_answers();

    fixture_key k[16];
    CU_ASSERT_FATAL(fixture_keys(k, 16) >= 5);
    size_t len, len_after;
    char *before = tu_read(idx, &len);
    int64_t t0 = (int64_t)time(NULL);
    CU_ASSERT_EQUAL(verify_cmd("sshd", k[1].key), 0);
    char *after = tu_read(idx, &len_after);
    CU_ASSERT_FATAL(len == len_after && len > 128);
    json_index_header h;
    memcpy(&h, before, sizeof h);
    size_t slot = 0; /* alice's second key, by its id */
    for (size_t i = 0; i < h.nslots; i++)
        if (memcmp(before + h.rec_off + i * 128, k[1].key + 3, 8) == 0)
            slot = h.rec_off + i * 128;
    CU_ASSERT_FATAL(slot != 0);
    int64_t used;
    memcpy(&used, after + slot + 40, sizeof used); /* last_used, in v4 and v5 */
    CU_ASSERT(used >= t0 && used <= (int64_t)time(NULL));
    memcpy(after + slot + 40, before + slot + 40, sizeof used);
    CU_ASSERT_EQUAL(memcmp(before, after, len), 0);
    free(before);
    free(after);
    tear_down();
}

/* A v4 index is trusted only beside a version 1 file: one hand-edited to
 * version 2 that still matches it (same size, mtime put back) is parsed,
 * and, having no lists, is unavailable. */
static void test_v4_index_needs_v1_json(void)
{
    set_up();
    edit_keeping_stat("\"version\": 1,", "\"version\": 2,");
    fixture_key k[16];
    CU_ASSERT_FATAL(fixture_keys(k, 16) >= 5);
    tu_stderr_begin();
    CU_ASSERT_EQUAL(verify_cmd("sshd", k[0].key), 2);
    free(tu_stderr_end());
    tear_down();
}

/* Alice's first key, unused in the fixture, was checked by the helper
 * through the v4 index, as the v1 build would have: the write carries that
 * use into the file. Then it is set back to null for comparing. */
static void expect_first_use(json_t *rec)
{
    CU_ASSERT(json_is_string(json_object_get(rec, "last_used")));
    json_object_set_new(rec, "last_used", json_null());
}

static void expect_version(const char *path, uint32_t want)
{
    json_index_header h = {0};
    int fd = open(path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0 && pread(fd, &h, sizeof h, 0) == sizeof h);
    close(fd);
    CU_ASSERT_EQUAL(h.version, want);
    CU_ASSERT_EQUAL(h.stale, 0);
    struct stat st;
    CU_ASSERT_FATAL(stat(store, &st) == 0);
    CU_ASSERT_EQUAL(h.json_ino, (uint64_t)st.st_ino); /* built from the new file */
    CU_ASSERT_EQUAL(h.json_size, (uint64_t)st.st_size);
}

static void test_first_write_upgrades(void)
{
    set_up();
    json_t *old_file = read_json(store), *old_list = listed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(old_file);
    fixture_key k[16];
    CU_ASSERT_FATAL(fixture_keys(k, 16) >= 5);
    /* Opened on the v1 store before the upgrade, as Squid's would be. */
    tu_helper h = tu_helper_start(config, "sshd", 0);
    expect_answer(&h, "alice", k[0].key, "OK");
    expect_answer(&h, "carol", k[3].key, "ERR");

    char err[512];
    apikey_ctx *ctx = apikey_open_with(config, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_create_request req = {.size = sizeof req, .account = "erin", .name = "pinned",
                                 .scopes = "proxies:read", .expires = "never",
                                 .allow_from = "10.0.0.0/8, 2001:db8::/32"};
    apikey_issued pinned = {.size = sizeof pinned};
    CU_ASSERT_EQUAL_FATAL(apikey_create(ctx, &req, &pinned, err, sizeof err), APIKEY_OK);
    apikey_close(ctx);

    /* The file says version 2; every old record is as it was, with an empty
     * list; the new one keeps its list. */
    json_t *new_file = read_json(store);
    CU_ASSERT_PTR_NOT_NULL_FATAL(new_file);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(new_file, "version")), 3);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(new_file, "keys")),
                    json_array_size(json_object_get(old_file, "keys")) + 1);
    size_t i;
    json_t *old;
    json_array_foreach(json_object_get(old_file, "keys"), i, old) {
        json_t *rec = record_of(new_file, json_string_value(json_object_get(old, "id")));
        CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
        json_t *list = json_object_get(rec, "allow_from");
        CU_ASSERT(json_is_array(list) && json_array_size(list) == 0);
        json_t *copy = json_deep_copy(rec);
        json_object_del(copy, "allow_from");
        CU_ASSERT(json_is_null(json_object_get(rec, "rate")));
        json_object_del(copy, "rate");
        if (strncmp(json_string_value(json_object_get(old, "id")), k[0].key + 3, 8) == 0)
            expect_first_use(copy);
        CU_ASSERT(json_equal(copy, old));
        json_decref(copy);
    }
    json_t *rec = record_of(new_file, pinned.info.id + 3), *want = json_pack("[ss]", "10.0.0.0/8",
                                                                            "2001:db8::/32");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    CU_ASSERT(json_equal(json_object_get(rec, "allow_from"), want));
    json_decref(want);
    /* The index is rebuilt in this build's version, from the new file. */
    char idx[512];
    snprintf(idx, sizeof idx, "%s.idx", store);
    expect_version(idx, 6);
    /* The command lists the old keys as they were, then the new one. */
    json_t *new_list = listed();
    CU_ASSERT_EQUAL(json_array_size(new_list), json_array_size(old_list) + 1);
    json_array_remove(new_list, json_array_size(new_list) - 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(new_list, 0), "id")),
                           "ak_EhggKLT9");
    expect_first_use(json_array_get(new_list, 0));
    CU_ASSERT(json_equal(new_list, old_list));

    /* The helper that opened the v1 store answers right across the
     * upgrade: the old keys as before, the new one refused without an
     * address (this helper is given none). */
    expect_answer(&h, "alice", k[0].key, "OK");
    expect_answer(&h, "bob", k[2].key, "OK");
    expect_answer(&h, "carol", k[3].key, "ERR");
    expect_answer(&h, "erin", pinned.key, "ERR");
    CU_ASSERT_EQUAL(tu_helper_stop(&h), 0);
    expect_fixture_answers();
    /* From the address the list names, the new key is accepted. */
    ctx = apikey_open(config, NULL, 0);
    apikey_verify_request vr = {.size = sizeof vr, .service = "sshd", .key = pinned.key,
                                .keylen = strlen(pinned.key), .client_addr = "10.9.8.7"};
    apikey_verdict v = {.size = sizeof v};
    CU_ASSERT_EQUAL(apikey_verify_with(ctx, &vr, &v), APIKEY_ALLOWED);
    vr.client_addr = "192.0.2.1";
    CU_ASSERT_EQUAL(apikey_verify_with(ctx, &vr, &v), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ADDRESS);
    apikey_close(ctx);
    apikey_wipe(&pinned, sizeof pinned);
    json_decref(old_file);
    json_decref(new_file);
    json_decref(old_list);
    json_decref(new_list);
    tear_down();
}

/* The upgraded store, with the pinned key's list replaced by hand with
 * something that is not a list: the helper says BH and the command exits
 * 2, for the pinned key and every other. */
static void test_unreadable_list_is_unavailable(void)
{
    static const char *bad[] = {
        "\"10.0.0.0/8\"",
        "[\"10.0.0.0/32\", \"10.0.0.1/32\", \"10.0.0.2/32\", \"10.0.0.3/32\", \"10.0.0.4/32\", "
        "\"10.0.0.5/32\", \"10.0.0.6/32\", \"10.0.0.7/32\", \"10.0.0.8/32\", \"10.0.0.9/32\", "
        "\"10.0.1.0/32\", \"10.0.1.1/32\", \"10.0.1.2/32\", \"10.0.1.3/32\", \"10.0.1.4/32\", "
        "\"10.0.1.5/32\", \"10.0.1.6/32\"]",
        "[\"10.0.0.0/8\\u0007\"]",
        "[10]",
    };
    fixture_key k[16];
    CU_ASSERT_FATAL(fixture_keys(k, 16) >= 5);
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        set_up();
        char err[512];
        apikey_ctx *ctx = apikey_open_with(config, 0, err, sizeof err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        apikey_create_request req = {.size = sizeof req, .account = "erin", .name = "pinned",
                                     .scopes = "proxies:read", .allow_from = "10.0.0.0/8"};
        apikey_issued pinned = {.size = sizeof pinned};
        CU_ASSERT_EQUAL_FATAL(apikey_create(ctx, &req, &pinned, err, sizeof err), APIKEY_OK);
        apikey_close(ctx);
        char *text = tu_read(store, NULL), *at = strstr(text, "\"allow_from\": [\"10.0.0.0/8\"]"), *edited;
        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        if (asprintf(&edited, "%.*s\"allow_from\": %s%s", (int)(at - text), text, bad[b],
                     at + strlen("\"allow_from\": [\"10.0.0.0/8\"]")) < 0)
            abort();
        free(text);
        free(tu_write(strrchr(store, '/') + 1, edited, 0600));
        free(edited);
        tu_stderr_begin();
        tu_helper h = tu_helper_start(config, "sshd", 0);
        expect_answer(&h, "erin", pinned.key, "BH");
        expect_answer(&h, "alice", k[0].key, "BH");
        tu_helper_stop(&h);
        char *said = tu_stderr_end();
        CU_ASSERT_EQUAL(tu_count(said, "key #6 has no valid \"allow_from\""), 2);
        free(said);
        CU_ASSERT_EQUAL(verify_cmd("sshd", pinned.key), 2);
        tu_expect_refusal(config, "allow_from");
        apikey_wipe(&pinned, sizeof pinned);
        tear_down();
    }
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"a v1 store is read as the v1 build read it, and not rewritten", test_reads_v1_as_it_was},
        {"its v4 index answers checks and takes last_used in the right slot",
         test_v4_index_answers},
        {"a v4 index beside a version 2 file is not trusted", test_v4_index_needs_v1_json},
        {"the first write upgrades it in place, a running helper answering right",
         test_first_write_upgrades},
        {"a version 2 list that cannot be read is unavailable, never any address",
         test_unreadable_list_is_unavailable},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"json v1 store", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
