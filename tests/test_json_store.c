/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The JSON store on its own: bad files fail closed with exit 2 and one clear
 * line, insecure files are refused, a writer killed mid-write loses nothing
 * it acknowledged, and a rewrite keeps owner, group and mode.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apikey.h"
#include "core.h"
#include "keycodec.h"
#include "testutil.h"

static char *store_path(const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", tu_tmpdir(), name) < 0)
        abort();
    return p;
}

static char *config_for(const char *path)
{
    char *uri;
    if (asprintf(&uri, "json:%s", path) < 0)
        abort();
    char *cfg = tu_config(uri, "max_keys_per_account = 100000", "sshd = proxies:read\n");
    free(uri);
    return cfg;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Every command on a bad store: exit 2, exactly one line, never success. */
static void expect_fail_closed(const char *cfg, const char *why_fragment)
{
    char *err = NULL;
    /* Well formed (its check is right), so it reaches the store. */
    char key[APIKEY_KEY_MAX + 1];
    CU_ASSERT_EQUAL_FATAL(keycodec_make("ak", "20fe9a1c", key), 0);
    strcat(key, "\n");
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, &err, "list", NULL), 2);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    if (why_fragment && !strstr(err, why_fragment))
        fprintf(stderr, "expected '%s' in: %s", why_fragment, err);
    CU_ASSERT(why_fragment == NULL || strstr(err, why_fragment) != NULL);
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, &err, "create", "alice", "--name", "x", "--scopes",
                              "proxies:read", NULL), 2);
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, &err, "revoke", "ak_20fe9a1c", NULL), 2);
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(cfg, key, NULL, &err, "verify", "--service", "sshd", NULL), 2);
    free(err);
}

static void write_store(const char *path, const char *text, int mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    fchmod(fd, mode);
    close(fd);
}

static const char good_key_json[] =
    "{\"format\":\"apikey-store\",\"version\":1,\"keys\":[{\"id\":\"20fe9a1c\",\"account\":\"alice\","
    "\"name\":\"n\",\"scopes\":[\"proxies:read\"],\"hash\":"
    "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
    "\"created\":\"2026-01-01T00:00:00Z\",\"expires\":null,\"last_used\":null,\"revoked\":null}]}";

static void test_bad_contents(void)
{
    char *path = store_path("bad.json");
    char *cfg = config_for(path);
    struct { const char *text; const char *why; } cases[] = {
        {"{\"format\":\"apikey-store\",\"version\":1,\"keys\":[{\"id\":", "not valid JSON"},
        {"", "not valid JSON"},
        {"[]", "not an apikey store"},
        {"{\"format\":\"apikey-store\",\"version\":4,\"keys\":[]}", "version"},
        {"{\"format\":\"apikey-store\",\"version\":0,\"keys\":[]}", "version"},
        {"{\"format\":\"apikey-store\",\"version\":\"1\",\"keys\":[]}", "version"},
        {"{\"format\":\"apikey-store\",\"version\":1,\"keys\":{}}", "not an array"},
        {"{\"format\":\"apikey-store\",\"version\":1,\"keys\":[{\"id\":5}]}", "id"},
        {"{\"format\":\"apikey-store\",\"version\":1,\"keys\":[{\"id\":\"20fe9a1c\",\"account\":\"a\",\"name\":\"n\",\"scopes\":\"proxies:read\"}]}", "scopes"},
        {"{\"format\":\"apikey-store\",\"version\":1,\"keys\":[{\"id\":\"20fe9a1c\",\"account\":\"a\",\"name\":\"n\",\"scopes\":[],\"hash\":\"zz\"}]}", "hash"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_store(path, cases[i].text, 0600);
        expect_fail_closed(cfg, cases[i].why);
    }
    /* Two records with one id. */
    char dup[2048];
    const char *rec = strstr(good_key_json, "{\"id\"");
    snprintf(dup, sizeof dup, "{\"format\":\"apikey-store\",\"version\":1,\"keys\":[%.*s,%.*s]}",
             (int)(strlen(rec) - 2), rec, (int)(strlen(rec) - 2), rec);
    write_store(path, dup, 0600);
    expect_fail_closed(cfg, "repeats an id");
    /* A well-formed store is accepted (the fixture itself is right). */
    write_store(path, good_key_json, 0600);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", NULL), 0);
    free(path);
    free(cfg);
}

/* Replace the value of field in the store's only record with value, by
 * hand as an operator's editor would; owner and mode stay. */
static void set_field(const char *path, const char *field, const char *value)
{
    size_t len;
    char *text = tu_read(path, &len), pattern[64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    snprintf(pattern, sizeof pattern, "\"%s\": ", field);
    char *start = strstr(text, pattern);
    CU_ASSERT_PTR_NOT_NULL_FATAL(start);
    start += strlen(pattern);
    char *end = *start == '"' ? strchr(start + 1, '"') + 1
                : *start == '[' ? strchr(start, ']') + 1
                                : start + strcspn(start, ",}");
    char *edited;
    if (asprintf(&edited, "%.*s%s%s", (int)(start - text), text, value, end) < 0)
        abort();
    struct stat st;
    CU_ASSERT_FATAL(stat(path, &st) == 0);
    write_store(path, edited, st.st_mode & 07777);
    free(edited);
    free(text);
}

static apikey_decision verify_with(const char *cfg, const char *key, apikey_result *res)
{
    apikey_ctx *ctx = apikey_open(cfg, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_decision d = apikey_verify(ctx, "sshd", NULL, key, strlen(key), res);
    apikey_close(ctx);
    return d;
}

/* Hand-edited values: a time that would read as 0 ("never", "not revoked"),
 * one that is not a real date and time, a value of the wrong type, a
 * control character in a text. Each makes the store unreadable: a check is
 * unavailable, never allowed, and list fails with one line. */
/* Whatever the command does with a store that fails, the store's line
 * reaches its standard error once, as its one line (the library prints
 * nothing of its own). */
static void test_store_line_once(void)
{
    char *good_path = store_path("good-once.json"), *path = store_path("bad-once.json");
    char *good_cfg = config_for(good_path), *cfg = config_for(path);
    char *key = tu_create_key(good_cfg, "alice"), line[128], copy_to[600];
    snprintf(copy_to, sizeof copy_to, "json:%s/copy-once.json", tu_tmpdir());
    snprintf(line, sizeof line, "%s\n", key);
    free(tu_write("bad-once.json", "{\"keys\": [ {\"id\": tru", 0600));
    struct {
        const char *stdin_text;
        const char *args[6];
    } runs[] = {
        {line, {"verify", "--service", "sshd"}},
        {NULL, {"list"}},
        {NULL, {"revoke", "ak_20fe9a1c"}},
        {NULL, {"create", "alice", "--name", "x", "--scopes", "proxies:read"}},
        {NULL, {"copy", "--to", copy_to}},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const char **a = runs[i].args;
        char *err = NULL;
        int rc = tu_apikey(cfg, runs[i].stdin_text, NULL, &err, a[0], a[1], a[2], a[3], a[4], a[5],
                           (char *)NULL);
        CU_ASSERT_EQUAL(rc, 2);
        CU_ASSERT_EQUAL(tu_count_lines(err), 1);
        CU_ASSERT_EQUAL(tu_count(err, "not valid JSON"), 1);
        if (tu_count_lines(err) != 1 || tu_count(err, "not valid JSON") != 1)
            fprintf(stderr, "apikey %s: %s", a[0], err ? err : "(nothing)\n");
        free(err);
    }
    free(key);
    free(cfg);
    free(good_cfg);
    free(path);
    free(good_path);
}

#define TEN_ENTRIES "\"10.0.0.0/32\", \"10.0.0.1/32\", \"10.0.0.2/32\", \"10.0.0.3/32\", " \
    "\"10.0.0.4/32\", \"10.0.0.5/32\", \"10.0.0.6/32\", \"10.0.0.7/32\", \"10.0.0.8/32\", \"10.0.0.9/32\""
#define SEVENTEEN_ENTRIES "[" TEN_ENTRIES ", \"10.0.1.0/32\", \"10.0.1.1/32\", \"10.0.1.2/32\", " \
    "\"10.0.1.3/32\", \"10.0.1.4/32\", \"10.0.1.5/32\", \"10.0.1.6/32\"]"
/* 16 entries of 59 characters: 959 bytes joined, over APIKEY_ALLOW_FROM_MAX. */
#define LONG_ENTRY "\"2001:db8:1111:2222:3333:4444:5555:6666/128xxxxxxxxxxxxxxxx\""
#define FOUR_LONG LONG_ENTRY ", " LONG_ENTRY ", " LONG_ENTRY ", " LONG_ENTRY
#define LONG_LIST "[" FOUR_LONG ", " FOUR_LONG ", " FOUR_LONG ", " FOUR_LONG "]"

static void test_malformed_values(void)
{
    static const struct { const char *field, *value; } edits[] = {
        {"revoked", "\"1970-01-01T00:00:00Z\""}, {"expires", "\"1970-01-01T00:00:00Z\""},
        {"created", "\"1970-01-01T00:00:00Z\""}, {"last_used", "\"1970-01-01T00:00:00Z\""},
        {"expires", "\"2030-01-01T-1:00:00Z\""}, {"expires", "\"2030-02-31T00:00:00Z\""},
        {"revoked", "\"2026-01-01T00:00:60Z\""}, {"revoked", "\"2026-01-01T00:00: 1Z\""},
        {"revoked", "\"+026-01-01T00:00:00Z\""}, {"created", "null"},
        {"revoked", "0"}, {"revoked", "true"}, {"revoked", "\"yes\""}, {"revoked", "{}"},
        {"expires", "1893456000"}, {"expires", "\"never\""}, {"last_used", "-1"},
        {"account", "\"al\\nice\""}, {"account", "\"al\\u007fice\""},
        {"name", "\"k\\u0001\""}, {"scopes", "[\"proxies:read\\tx\"]"},
        /* A list that cannot be read must never pass for "any address". */
        {"allow_from", "\"10.0.0.0/8\""}, {"allow_from", "null"}, {"allow_from", "{}"},
        {"allow_from", "[1]"}, {"allow_from", "[\"\"]"}, {"allow_from", "[null]"},
        {"allow_from", "[\"10.0.0.0/8 10.1.0.0/16\"]"}, {"allow_from", "[\"10.0.0.0/8\\t\"]"},
        {"allow_from", "[\"10.0.0.0/8\\u0000\"]"}, {"allow_from", "[\"10.0.0.0\\u007f/8\"]"},
        {"allow_from", "[\"10.0.0.0/8\", 5]"}, {"allow_from", SEVENTEEN_ENTRIES},
        {"allow_from", LONG_LIST},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "edited%zu.json", i);
        char *path = store_path(name), *cfg = config_for(path), *key = tu_create_key(cfg, "alice");
        set_field(path, edits[i].field, edits[i].value);
        apikey_result res;
        apikey_decision d = verify_with(cfg, key, &res);
        char *err = NULL;
        int listed = tu_apikey(cfg, NULL, NULL, &err, "list", NULL);
        if (d != APIKEY_UNAVAILABLE || listed != 2)
            fprintf(stderr, "\n\"%s\": %s: verify %d, list exit %d: %s", edits[i].field,
                    edits[i].value, d, listed, err ? err : "");
        CU_ASSERT_EQUAL(d, APIKEY_UNAVAILABLE);
        CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_STORE);
        CU_ASSERT_EQUAL(listed, 2);
        CU_ASSERT_EQUAL(count_lines(err ? err : ""), 1);
        free(err);
        free(key);
        free(cfg);
        free(path);
    }
    /* A revocation at the earliest time is a revocation. */
    char *path = store_path("revoked.json"), *cfg = config_for(path), *key = tu_create_key(cfg, "alice");
    set_field(path, "revoked", "\"1970-01-01T00:00:01Z\"");
    apikey_result res;
    CU_ASSERT_EQUAL(verify_with(cfg, key, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", NULL), 0);
    free(key);
    free(cfg);
    free(path);
}

static void hand_edit(const char *path, const char *from, const char *to);

static apikey_decision verify_from(const char *cfg, const char *key, const char *addr,
                                   apikey_verdict *v)
{
    apikey_ctx *ctx = apikey_open(cfg, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_verify_request req = {.size = sizeof req, .service = "sshd", .key = key,
                                 .keylen = strlen(key), .client_addr = addr};
    *v = (apikey_verdict){.size = sizeof *v};
    apikey_decision d = apikey_verify_with(ctx, &req, v);
    apikey_close(ctx);
    return d;
}

/* A key's list is written as an array in version 2 and read back the same
 * through the index and through the JSON file alone. */
static void test_allow_from_kept(void)
{
    char *path = store_path("listed.json"), *cfg = config_for(path), err[512];
    apikey_ctx *ctx = apikey_open_with(cfg, APIKEY_OPEN_CREATE, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_create_request req = {.size = sizeof req, .account = "alice", .name = "n",
                                 .scopes = "proxies:read", .allow_from = "10.0.0.0/8,2001:db8::/32"};
    apikey_issued out = {.size = sizeof out};
    CU_ASSERT_EQUAL_FATAL(apikey_create(ctx, &req, &out, err, sizeof err), APIKEY_OK);
    apikey_close(ctx);
    char *text = tu_read(path, NULL), idx[512];
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"version\": 3,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"allow_from\": [\"10.0.0.0/8\", \"2001:db8::/32\"], \"rate\": null}"));
    free(text);
    snprintf(idx, sizeof idx, "%s.idx", path);
    for (int from_json = 0; from_json < 2; from_json++) {
        if (from_json)
            CU_ASSERT_EQUAL(unlink(idx), 0);
        apikey_verdict v;
        CU_ASSERT_EQUAL(verify_from(cfg, out.key, "10.1.2.3", &v), APIKEY_ALLOWED);
        CU_ASSERT_EQUAL(verify_from(cfg, out.key, "2001:db8::7", &v), APIKEY_ALLOWED);
        CU_ASSERT_EQUAL(verify_from(cfg, out.key, "192.0.2.1", &v), APIKEY_REFUSED);
        CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ADDRESS);
        CU_ASSERT_EQUAL(verify_from(cfg, out.key, NULL, &v), APIKEY_REFUSED);
        CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ADDRESS);
        ctx = apikey_open(cfg, NULL, 0);
        apikey_key_info info = {.size = sizeof info};
        CU_ASSERT_EQUAL(apikey_get(ctx, out.info.id, &info, err, sizeof err), APIKEY_OK);
        CU_ASSERT_STRING_EQUAL(info.allow_from, "10.0.0.0/8 2001:db8::/32");
        apikey_close(ctx);
    }
    /* Sixteen entries are the most a record holds, and are read. */
    set_field(path, "allow_from", "[" TEN_ENTRIES ", \"10.0.1.0/32\", \"10.0.1.1/32\", "
                                  "\"10.0.1.2/32\", \"10.0.1.3/32\", \"10.0.1.4/32\", \"10.0.1.5/32\"]");
    apikey_verdict v;
    CU_ASSERT_EQUAL(verify_from(cfg, out.key, "10.0.1.5", &v), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(verify_from(cfg, out.key, "10.0.1.6", &v), APIKEY_REFUSED);
    /* In a version 1 file a list is unknown: a record holding one is
     * corrupt, not a key of any address. */
    hand_edit(path, "\"version\": 3,", "\"version\": 1,");
    CU_ASSERT_EQUAL(verify_from(cfg, out.key, "10.0.1.5", &v), APIKEY_UNAVAILABLE);
    expect_fail_closed(cfg, "version 1 store does not have");
    apikey_wipe(&out, sizeof out);
    free(cfg);
    free(path);
}

/* A key's rate limit is written in version 3 and read back the same through
 * the index and the JSON file alone, and enforced; a version 2 file (no
 * limits) is read, and the next write upgrades it keeping every key. */
static void test_rate_kept_and_upgraded(void)
{
    char *path = store_path("rated.json"), *uri, extra[512], err[512];
    CU_ASSERT_FATAL(asprintf(&uri, "json:%s", path) > 0);
    snprintf(extra, sizeof extra, "rate_table = %s/rated.table", tu_tmpdir());
    char *cfg = tu_config(uri, extra, "sshd = proxies:read\n");
    apikey_ctx *ctx = apikey_open_with(cfg, APIKEY_OPEN_CREATE, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_create_request req = {.size = sizeof req, .account = "alice", .name = "n",
                                 .scopes = "proxies:read", .rate = "2/h", .burst = 3};
    apikey_issued out = {.size = sizeof out};
    CU_ASSERT_EQUAL_FATAL(apikey_create(ctx, &req, &out, err, sizeof err), APIKEY_OK);
    apikey_close(ctx);
    char *text = tu_read(path, NULL), idx[512];
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"rate\": {\"limit\": 2, \"per\": \"1h\", \"burst\": 3}}"));
    free(text);
    snprintf(idx, sizeof idx, "%s.idx", path);
    /* Three at once, through the index, then the JSON file alone: the
     * fourth of each is rate limited, with the wait said. */
    for (int from_json = 0; from_json < 2; from_json++) {
        if (from_json) {
            CU_ASSERT_EQUAL(unlink(idx), 0);
            snprintf(extra, sizeof extra, "%s/rated.table", tu_tmpdir());
            CU_ASSERT_EQUAL(unlink(extra), 0); /* a fresh budget */
        }
        apikey_verdict v;
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_EQUAL(verify_from(cfg, out.key, NULL, &v), APIKEY_ALLOWED);
            CU_ASSERT_EQUAL(v.rate_limit, 2);
            CU_ASSERT_EQUAL(v.rate_period, 3600);
            CU_ASSERT_EQUAL(v.rate_remaining, (uint32_t)(2 - i));
        }
        CU_ASSERT_EQUAL(verify_from(cfg, out.key, NULL, &v), APIKEY_REFUSED);
CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_RATE);
        CU_ASSERT(v.retry_after >= 1790 && v.retry_after <= 1800);
        ctx = apikey_open(cfg, NULL, 0);
        apikey_key_info info = {.size = sizeof info};
        CU_ASSERT_EQUAL(apikey_get(ctx, out.info.id, &info, err, sizeof err), APIKEY_OK);
        CU_ASSERT(info.rate_limit == 2 && info.rate_period == 3600 && info.rate_burst == 3);
        apikey_close(ctx);
    }
    /* The same file as the release before wrote it: version 2, no "rate". */
    hand_edit(path, "\"version\": 3,", "\"version\": 2,");
    hand_edit(path, ", \"rate\": {\"limit\": 2, \"per\": \"1h\", \"burst\": 3}}", "}");
    apikey_verdict v;
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(verify_from(cfg, out.key, NULL, &v), APIKEY_ALLOWED); /* no limit there */
    CU_ASSERT_EQUAL(v.rate_limit, 0);
    ctx = apikey_open_with(cfg, APIKEY_OPEN_CONNECT, err, sizeof err);
    req.rate = NULL;
    req.burst = 0;
    apikey_issued second = {.size = sizeof second};
    CU_ASSERT_EQUAL(apikey_create(ctx, &req, &second, err, sizeof err), APIKEY_OK);
    apikey_close(ctx);
    text = tu_read(path, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"version\": 3,"));
    CU_ASSERT_EQUAL(tu_count(text, "\"rate\": null"), 2);
    free(text);
    CU_ASSERT_EQUAL(verify_from(cfg, out.key, NULL, &v), APIKEY_ALLOWED);
    /* A limit in a version 2 file is corrupt, never "no limit". */
    hand_edit(path, "\"version\": 3,", "\"version\": 2,");
    CU_ASSERT_EQUAL(verify_from(cfg, out.key, NULL, &v), APIKEY_UNAVAILABLE);
    expect_fail_closed(cfg, "before version 3 does not have");
    apikey_wipe(&out, sizeof out);
    apikey_wipe(&second, sizeof second);
    free(uri);
    free(cfg);
    free(path);
}

static void test_missing_store(void)
{
    char *path = store_path("nodir/missing.json");
    char *cfg = config_for(path);
    char *err = NULL;
    CU_ASSERT_EQUAL(tu_apikey(cfg, "ak_20fe9a1cQ3xQ3xQ3xQ3xQ3xQ3xQ3xQ3xQ3xQ3xQ3xaaaaaa", NULL, &err,
                              "verify", "--service", "sshd", NULL), 1); /* malformed: refused first */
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, &err, "create", "alice", "--name", "x", "--scopes",
                              "proxies:read", NULL), 2);
    CU_ASSERT_EQUAL(count_lines(err), 1);
    free(err);
    free(path);
    free(cfg);
}

static void test_insecure_files(void)
{
    char *path = store_path("insecure.json");
    char *cfg = config_for(path);
    write_store(path, good_key_json, 0620);
    expect_fail_closed(cfg, "group- or world-writable");
    write_store(path, good_key_json, 0602);
    expect_fail_closed(cfg, "group- or world-writable");
    if (geteuid() == 0) {
        write_store(path, good_key_json, 0600);
        CU_ASSERT_EQUAL(chown(path, 65534, 65534), 0);
        expect_fail_closed(cfg, "owned by uid 65534");
    }
    unlink(path);
    CU_ASSERT_EQUAL(symlink("/etc/passwd", path), 0);
    expect_fail_closed(cfg, "symbolic link");
    unlink(path);
    free(path);
    free(cfg);
}

static void test_rewrite_keeps_owner_and_mode(void)
{
    char *path = store_path("owned.json");
    char *cfg = config_for(path);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "create", "alice", "--name", "x", "--scopes",
                              "proxies:read", NULL), 0);
    CU_ASSERT_EQUAL(chmod(path, 0640), 0);
    if (geteuid() == 0)
        CU_ASSERT_EQUAL(chown(path, 0, 65534), 0);
    struct stat before, after;
    CU_ASSERT_EQUAL(stat(path, &before), 0);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "create", "bob", "--name", "x", "--scopes",
                              "proxies:read", NULL), 0);
    CU_ASSERT_EQUAL(stat(path, &after), 0);
    CU_ASSERT_NOT_EQUAL(before.st_ino, after.st_ino); /* it was rewritten */
    CU_ASSERT_EQUAL(after.st_mode & 07777, 0640);
    CU_ASSERT_EQUAL(after.st_uid, before.st_uid);
    CU_ASSERT_EQUAL(after.st_gid, before.st_gid);
    free(path);
    free(cfg);
}

/* A writer killed with SIGKILL at random moments: the store always loads
 * and holds every key whose creation was acknowledged (printed). */
static void test_sigkill_mid_write(void)
{
    char *path = store_path("killed.json");
    char *cfg = config_for(path);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    char keys[64][256];
    int acked = 0, killed = 0;
    for (int round = 0; round < 60 && acked < 64; round++) {
        int p[2];
        CU_ASSERT_FATAL(pipe(p) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(p[1], 1);
            close(p[0]);
            execl("build/apikey", "apikey", "--config", cfg, "create", "alice", "--name", "k",
                  "--scopes", "proxies:read", (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        usleep((useconds_t)(rand() % 6000));
        killed += kill(pid, SIGKILL) == 0;
        int status;
        waitpid(pid, &status, 0);
        char buf[256] = "";
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        if (n > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            buf[strcspn(buf, "\n")] = '\0';
            snprintf(keys[acked++], sizeof keys[0], "%s", buf);
        }
        /* Whatever happened, the store loads. */
        CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", NULL), 0);
    }
    CU_ASSERT(killed > 0);
    for (int i = 0; i < acked; i++) {
        char line[sizeof keys[0] + 2];
        strcpy(line, keys[i]);
        strcat(line, "\n");
        CU_ASSERT_EQUAL(tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL), 0);
    }
    /* No temporary file is taken for the store. */
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "create", "bob", "--name", "k", "--scopes",
                              "proxies:read", NULL), 0);
    printf("(%d acknowledged of 60 runs, killed at random) ", acked);
    free(path);
    free(cfg);
}

static char *make_key(const char *cfg, const char *account)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, &out, NULL, "create", account, "--name", "k", "--scopes",
                              "proxies:read", NULL), 0);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* Replace text in a file in place of the writer: a hand edit that leaves
 * the index behind. */
static void hand_edit(const char *path, const char *from, const char *to)
{
    size_t len;
    char *text = tu_read(path, &len);
    char *at = strstr(text, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    char *out = malloc(len + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_store(path, out, 0600);
    free(out);
    free(text);
}

/* The stored hash differs from the key's in one byte, each of the 32 in
 * turn: refused every time (the comparison covers every word of it). */
static void test_every_hash_byte_compared(void)
{
    char *path = store_path("onebyte.json");
    char *cfg = config_for(path);
    char *key = make_key(cfg, "alice");
    char *text = tu_read(path, NULL);
    char *at = strstr(text, "\"hash\": \"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    char hex[2 * APIKEY_HASH_LEN + 1];
    snprintf(hex, sizeof hex, "%s", at + strlen("\"hash\": \""));
    free(text);
    apikey_result res;
    for (int i = 0; i <= APIKEY_HASH_LEN; i++) {
        char edited[sizeof hex];
        memcpy(edited, hex, sizeof hex);
        if (i < APIKEY_HASH_LEN) /* the byte's last hex digit, another one */
            edited[2 * i + 1] = edited[2 * i + 1] == '0' ? '1' : '0';
        hand_edit(path, hex, edited);
        apikey_ctx *ctx = apikey_open(cfg, NULL, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        apikey_decision d = apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res);
        if (i < APIKEY_HASH_LEN) {
            CU_ASSERT_EQUAL(d, APIKEY_REFUSED);
            CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_UNKNOWN);
        } else {
            CU_ASSERT_EQUAL(d, APIKEY_ALLOWED); /* the hash as it was */
        }
        apikey_close(ctx);
        hand_edit(path, edited, hex);
    }
    free(key);
    free(cfg);
    free(path);
}

static void test_index_follows_the_json_file(void)
{
    char *path = store_path("indexed.json");
    char *cfg = config_for(path);
    char *key = make_key(cfg, "alice");
    char idx[512];
    snprintf(idx, sizeof idx, "%s.idx", path);
    CU_ASSERT_EQUAL(access(idx, R_OK), 0);
    apikey_ctx *ctx = apikey_open(cfg, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res), APIKEY_ALLOWED);
    /* A hand edit that revokes the key reaches the open context within a
     * second, and a new process at once. */
    hand_edit(path, "\"revoked\": null", "\"revoked\": \"2026-01-02T00:00:00Z\"");
    char line[128];
    snprintf(line, sizeof line, "%s\n", key);
    CU_ASSERT_EQUAL(tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL), 1);
    usleep(1100 * 1000);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    apikey_close(ctx);
    /* A garbage index, or one built for another store, is never trusted. */
    char *other_path = store_path("other.json");
    char *other_cfg = config_for(other_path);
    char *other_key = make_key(other_cfg, "mallory");
    char other_idx[512];
    snprintf(other_idx, sizeof other_idx, "%s.idx", other_path);
    CU_ASSERT_EQUAL(rename(other_idx, idx), 0);
    snprintf(line, sizeof line, "%s\n", other_key);
    CU_ASSERT_EQUAL(tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL), 1);
    write_store(idx, "AKIDX garbage garbage garbage garbage garbage garbage garbage garbage garbage", 0600);
    snprintf(line, sizeof line, "%s\n", key);
    CU_ASSERT_EQUAL(tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL), 1);
    /* The next write rebuilds it. */
    char *fresh = make_key(cfg, "bob");
    snprintf(line, sizeof line, "%s\n", fresh);
    CU_ASSERT_EQUAL(tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL), 0);
    free(fresh);
    free(other_key);
    free(other_cfg);
    free(other_path);
    free(key);
    free(path);
    free(cfg);
}

/* The index format is internal and versioned: an index of another version
 * (a newer build's, or an older one left behind) is never read; the JSON
 * file answers, and the next write replaces the index. */
static void test_index_of_another_version_is_ignored(void)
{
    char *path = store_path("versioned.json");
    char *cfg = config_for(path);
    char *key = make_key(cfg, "alice");
    char idx[512], line[128];
    snprintf(idx, sizeof idx, "%s.idx", path);
    size_t len;
    char *bytes = tu_read(idx, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    CU_ASSERT_FATAL(len > 16);
    uint32_t version;
    memcpy(&version, bytes + 8, sizeof version); /* after the 8-byte magic */
    for (uint32_t other = 1; other < 8; other++) {
        if (other == version)
            continue;
        memcpy(bytes + 8, &other, sizeof other);
        FILE *f = fopen(idx, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fwrite(bytes, 1, len, f);
        fclose(f);
        snprintf(line, sizeof line, "%s\n", key);
        CU_ASSERT_EQUAL(tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL), 0);
    }
    /* Revoked in the JSON file: the index of another version must not
     * keep the key alive. */
    hand_edit(path, "\"revoked\": null", "\"revoked\": \"2026-01-02T00:00:00Z\"");
    CU_ASSERT_EQUAL(tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL), 1);
    /* The next write rebuilds it in this build's version. */
    char *fresh = make_key(cfg, "bob");
    char *now = tu_read(idx, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(now);
    CU_ASSERT_EQUAL(memcmp(now + 8, &version, sizeof version), 0);
    free(now);
    free(fresh);
    free(bytes);
    free(key);
    free(cfg);
    free(path);
}

/* JSON is UTF-8: a name of other bytes (`--name $'caf\xe9'`) is refused
 * by the command, and the store itself never writes one (a record copied
 * from another store), so the file always stays JSON that every reader
 * takes. */
static void test_only_utf8_written(void)
{
    char *path = store_path("utf8.json"), *cfg = config_for(path);
    char *err = NULL, *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, &out, NULL, "create", "alice", "--name", "ok", "--scopes",
                              "proxies:read", NULL), 0);
    free(out);
    size_t len, len2;
    char *before = tu_read(path, &len);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, &err, "create", "carol", "--name", "caf\xe9", "--scopes",
                              "proxies:read", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", "name is not valid UTF-8"));
    free(err);

    apikey_ctx *ctx = core_open(cfg, APIKEY_OPEN_CONNECT, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_record rec;
    tu_record(&rec, "badUtf81", "carol", "ok", "proxies:read \xff");
    core_store_line_clear();
    CU_ASSERT_EQUAL_FATAL(ctx->store.ops->begin(ctx->store.handle), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ctx->store.ops->insert(ctx->store.handle, &rec), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ctx->store.ops->commit(ctx->store.handle), APIKEY_ST_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(core_store_line(), "not valid UTF-8"));
    apikey_close(ctx);
    char *after = tu_read(path, &len2);
    CU_ASSERT(after && len == len2 && memcmp(before, after, len) == 0);
    /* And the store goes on. */
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, &out, NULL, "create", "bob", "--name", "caf\xc3\xa9", "--scopes",
                              "proxies:read", NULL), 0);
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, &out, NULL, "list", "--json", NULL), 0);
    CU_ASSERT_EQUAL(tu_count(out ?: "", "\"account\""), 2);
    free(out);
    free(before);
    free(after);
    free(cfg);
    free(path);
}

/* A host reads the index into its own copy a page at a time, and once a
 * quarter of it is in, a run of pages at a time: every key of a store
 * whose index spans a few hundred pages is found from one context through
 * both, an unknown id is not, and a revocation made meanwhile is refused
 * at the next check. */
static void test_every_key_through_the_copy(void)
{
    enum { N = 3000 };
    char *path = store_path("many.json");
    char *cfg = config_for(path);
    size_t cap = N * 64, len = 0;
    char *batch = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(batch);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(batch + len, cap - len, "user%d\tk\tproxies:read\tnever\n", i);
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(cfg, batch, &out, NULL, "create", "--batch", "-", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(tu_count_lines(out), N);
    apikey_ctx *ctx = apikey_open(cfg, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char *keys[N], *save = NULL;
    int allowed = 0;
    keys[0] = strtok_r(out, "\n", &save);
    for (int i = 1; i < N; i++)
        keys[i] = strtok_r(NULL, "\n", &save);
    for (int i = 0; i < N; i++) {
        apikey_result res;
        char user[32];
        snprintf(user, sizeof user, "user%d", i);
        allowed += keys[i] && apikey_verify(ctx, "sshd", user, keys[i], strlen(keys[i]), &res) == APIKEY_ALLOWED;
    }
    CU_ASSERT_EQUAL(allowed, N);
    /* Ids of no key, their checksums right: not found, wherever they fall
     * (at a slot's neighbour, before an empty slot, past the last key),
     * though a lookup reads the slots in the copy and prefetches several
     * (json_index_prefetch). */
    enum { STRANGERS = 300 };
    char *other_path = store_path("elsewhere.json"), *other_cfg = config_for(other_path);
    char *strangers = NULL, *at = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(other_cfg, batch, &strangers, NULL, "create", "--batch", "-", NULL), 0);
    int unknown = 0, seen = 0;
    apikey_result res;
    for (char *k = strtok_r(strangers, "\n", &at); k && seen < STRANGERS; k = strtok_r(NULL, "\n", &at), seen++)
        unknown += apikey_verify(ctx, "sshd", "user1", k, strlen(k), &res) == APIKEY_REFUSED &&
                   res.reason == APIKEY_REASON_UNKNOWN && !res.account[0];
    CU_ASSERT_EQUAL(seen, STRANGERS);
    CU_ASSERT_EQUAL(unknown, STRANGERS);
    char id[16];
    snprintf(id, sizeof id, "%.11s", keys[N / 2]);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "revoke", id, NULL), 0);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "user1500", keys[N / 2], strlen(keys[N / 2]), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "user7", keys[7], strlen(keys[7]), &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    free(strangers);
    free(other_cfg);
    free(other_path);
    free(out);
    free(batch);
    free(cfg);
    free(path);
}

/* A host checking without pause rereads the index header once a tick of
 * its recheck clock; a revocation made in the same process, by another
 * context, between two of its checks, is refused by every check that
 * begins after apikey_revoke returned. Each revocation lands at a random
 * point of a tick: a writer that waited its time on another clock than
 * the hosts' recheck (a 2 ms sleep against a 4 ms coarse tick) let about
 * half of them through. */
typedef struct revoke_race {
    apikey_ctx *ctx;
    const char *key;
    int returned;    /* set by the writer once apikey_revoke returned */
    int stop, late; /* late: a check begun after that, allowed */
} revoke_race;

static void *check_without_pause(void *arg)
{
    revoke_race *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        int after = __atomic_load_n(&r->returned, __ATOMIC_ACQUIRE);
        apikey_result res;
        if (apikey_verify(r->ctx, "sshd", NULL, r->key, strlen(r->key), &res) == APIKEY_ALLOWED && after)
            r->late = 1;
    }
    return NULL;
}

static void test_revoked_while_checking(void)
{
    enum { N = 24 };
    char *path = store_path("race.json"), *cfg = config_for(path);
    char *out = NULL, batch[N * 40];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(batch + len, sizeof batch - len, "user%d\tk\tproxies:read\tnever\n", i);
    CU_ASSERT_EQUAL_FATAL(tu_apikey(cfg, batch, &out, NULL, "create", "--batch", "-", NULL), 0);
    apikey_ctx *host = apikey_open(cfg, NULL, 0), *writer = apikey_open(cfg, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(host);
    CU_ASSERT_PTR_NOT_NULL_FATAL(writer);
    char *save = NULL, *key = strtok_r(out, "\n", &save);
    int late = 0;
    for (int i = 0; i < N && key; i++, key = strtok_r(NULL, "\n", &save)) {
        revoke_race r = {.ctx = host, .key = key};
        pthread_t t;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, check_without_pause, &r), 0);
        /* Some checks first, so the host trusts a recent header read. */
        struct timespec pause = {0, (1 + i % 5) * 1000000L};
        nanosleep(&pause, NULL);
        char id[16], err[256];
        snprintf(id, sizeof id, "%.11s", key);
        CU_ASSERT_EQUAL(apikey_revoke(writer, id, err, sizeof err), APIKEY_OK);
        __atomic_store_n(&r.returned, 1, __ATOMIC_RELEASE);
        nanosleep(&pause, NULL);
        __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
        pthread_join(t, NULL);
        late += r.late;
        apikey_result res;
        CU_ASSERT_EQUAL(apikey_verify(host, "sshd", NULL, key, strlen(key), &res), APIKEY_REFUSED);
    }
    CU_ASSERT_EQUAL(late, 0);
    apikey_close(host);
    apikey_close(writer);
    free(out);
    free(cfg);
    free(path);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"truncated, wrong types, unknown version, duplicate ids fail closed", test_bad_contents},
        {"a value of the wrong type or out of range is unavailable, never allowed",
         test_malformed_values},
        {"a key's allow_from is kept, in the JSON file and the index", test_allow_from_kept},
        {"only UTF-8 is written: the file stays JSON", test_only_utf8_written},
        {"a key's rate limit is kept and enforced; a version 2 file read and upgraded", test_rate_kept_and_upgraded},
        {"a missing store fails closed", test_missing_store},
        {"a failing store's line reaches the command's stderr once", test_store_line_once},
        {"group-/world-writable, foreign-owned and symlinked stores are refused", test_insecure_files},
        {"a rewrite keeps owner, group and mode", test_rewrite_keeps_owner_and_mode},
        {"a writer killed mid-write loses no acknowledged key", test_sigkill_mid_write},
        {"the index follows the JSON file and is never trusted blindly", test_index_follows_the_json_file},
        {"a stored hash one byte off, each byte in turn, is refused", test_every_hash_byte_compared},
        {"an index of another version is ignored and the JSON file read", test_index_of_another_version_is_ignored},
        {"every key found through the host's copy, filled by pages and by runs", test_every_key_through_the_copy},
        {"a revocation is refused by a host checking without pause, from the next check", test_revoked_while_checking},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"json store", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
