/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A store of the previous release (schema 1, tests/fixtures/v1, made by its
 * own build) under this one, for $APIKEY_TEST_STORE = sqlite (the default)
 * or pgsql (inside tests/pg_harness.sh, as tests/run.sh runs it): it reads
 * as v1 did, the first write upgrades it in place losing nothing, a running
 * host follows the upgrade and from then on enforces the lists, and four
 * first writers at once migrate once and lose no key.
 */
#include <CUnit/Basic.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apikey.h"
#include "testutil.h"

#define FIXTURES "tests/fixtures/v1"
#define V1_KEYS 6

static const char *kind;

/* The fixture's keys and v1's `verify --service sshd` exit for each. */
static char v1_keys[V1_KEYS][64];
static int v1_exit[V1_KEYS];

typedef struct store {
    char *uri, *config;
} store;

static char *fixture_text(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "/%s/%s", kind, name);
    char *text = tu_read(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    return text;
}

/* A PostgreSQL command line on the server itself (not pgbouncer). */
static char *pg_cmd(const char *tool, const char *dbname)
{
    char *cmd;
    if (asprintf(&cmd, "%s -q -X -v ON_ERROR_STOP=1 -h '%s' -p '%s' -U '%s' -d '%s'", tool,
                 getenv("APIKEY_PG_HOST"), getenv("APIKEY_PG_PORT"), getenv("APIKEY_PG_USER"),
                 dbname) < 0)
        abort();
    return cmd;
}

/* A fresh copy of the v1 fixture and a configuration for it. */
static store v1_store(void)
{
    store s = {.uri = tu_new_store_uri_of(kind)};
    if (strcmp(kind, "sqlite") == 0) {
        size_t len;
        char *db = tu_read(FIXTURES "/sqlite/keys.db", &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(db);
        FILE *f = fopen(strchr(s.uri, ':') + 1, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(fwrite(db, 1, len, f), len);
        fclose(f);
        chmod(strchr(s.uri, ':') + 1, 0600);
        free(db);
    } else {
        char *psql = pg_cmd("psql", strstr(s.uri, "dbname=") + 7), *cmd;
        if (asprintf(&cmd, "%s -f " FIXTURES "/pgsql/dump.sql >/dev/null", psql) < 0)
            abort();
        CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
        free(cmd);
        free(psql);
    }
    s.config = tu_config(s.uri, "default_expiry = never\nmax_keys_per_account = 100",
                         "sshd = proxies:read\n");
    return s;
}

static void drop(store *s)
{
    free(s->uri);
    free(s->config);
}

/* One value of the store's own tables (-1: none), read beside the build. */
static long long query(const store *s, const char *sql)
{
    long long v = -1;
    if (strcmp(kind, "sqlite") == 0) {
        sqlite3 *db;
        sqlite3_stmt *st;
        if (sqlite3_open_v2(strchr(s->uri, ':') + 1, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
        sqlite3_close(db);
    } else {
        PGconn *c = PQconnectdb(strchr(s->uri, ':') + 1);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            v = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
        PQfinish(c);
    }
    return v;
}

static long long version(const store *s)
{
    return query(s, "SELECT version FROM apikey_schema");
}

/* `apikey list --all --json`, without the "allow_from" lines a v1 list
 * did not have (their values are checked through the library). */
static char *list_v1_view(const store *s)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(s->config, NULL, &out, NULL, "list", "--all", "--json", NULL), 0);
    if (!out)
        return strdup("");
    char *w = out;
    int in_list = 0; /* inside a multi-line "allow_from": [ ... ] */
    for (char *line = out; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line + 1) : strlen(line);
        /* The fields the previous release did not have: the list, and the
         * rate limit (null for every key it made). */
        int mine = in_list || memmem(line, n, "\"allow_from\"", 12) != NULL ||
                   memmem(line, n, "\"rate\": null", 12) != NULL;
        if (mine && !in_list)
            in_list = memchr(line, '[', n) && !memchr(line, ']', n);
        else if (in_list && memchr(line, ']', n))
            in_list = 0;
        if (!mine) {
            memmove(w, line, n);
            w += n;
        }
        line += n;
    }
    *w = '\0';
    /* A field that was last before allow_from keeps the comma it then had. */
    for (char *p; (p = strstr(out, ",\n  }"));)
        memmove(p, p + 1, strlen(p));
    return out;
}

static int verify_key(const store *s, const char *key)
{
    char line[128];
    snprintf(line, sizeof line, "%s\n", key);
    return tu_apikey(s->config, line, NULL, NULL, "verify", "--service", "sshd", NULL);
}

/* A key made by the library with an allowlist (the CLI's --allow-from is
 * another change's); its key text in key. */
static void create_listed(const store *s, const char *account, const char *allow, char *key,
                          char *id)
{
    char err[512];
    apikey_ctx *ctx = apikey_open_with(s->config, APIKEY_OPEN_CONNECT, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_create_request req = {.size = sizeof req, .account = account, .name = "listed",
                                 .scopes = "proxies:read", .allow_from = allow};
    apikey_issued out = {.size = sizeof out};
    apikey_status st = apikey_create(ctx, &req, &out, err, sizeof err);
    if (st != APIKEY_OK)
        fprintf(stderr, "create: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(st, APIKEY_OK);
    strcpy(key, out.key);
    strcpy(id, out.info.id);
    apikey_wipe(out.key, sizeof out.key);
    apikey_close(ctx);
}

static int find_list(const apikey_key_info *info, void *arg)
{
    char **want = arg; /* {id, its allow_from found} */
    if (strcmp(info->id, want[0]) == 0 && APIKEY_HAS_FIELD(apikey_key_info, info, allow_from))
        want[1] = strdup(info->allow_from);
    return 0;
}

/* The list the library reads back for a key (malloc'd), NULL if none. */
static char *allow_from_of(const store *s, const char *id)
{
    char err[512];
    apikey_ctx *ctx = apikey_open_with(s->config, APIKEY_OPEN_CONNECT, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char *want[2] = {(char *)id, NULL};
    CU_ASSERT_EQUAL(apikey_list(ctx, NULL, APIKEY_LIST_ALL, find_list, want, err, sizeof err), APIKEY_OK);
    apikey_close(ctx);
    return want[1];
}

/* Each fixture key answers as it did under v1. */
static void keys_answer_as_v1(const store *s)
{
    for (int i = 0; i < V1_KEYS; i++) {
        int rc = verify_key(s, v1_keys[i]);
        if (rc != v1_exit[i])
            fprintf(stderr, "\nkey %d: exit %d, v1 said %d", i, rc, v1_exit[i]);
        CU_ASSERT_EQUAL(rc, v1_exit[i]);
    }
}

static void test_reads_v1(void)
{
    store s = v1_store();
    CU_ASSERT_EQUAL(version(&s), 1);
    char *want = fixture_text("list.json"), *got = list_v1_view(&s);
    CU_ASSERT_STRING_EQUAL(got, want);
    keys_answer_as_v1(&s);
    /* Reading (and recording a use) is no write: still version 1. */
    CU_ASSERT_EQUAL(version(&s), 1);
    free(got);
    free(want);
    drop(&s);
}

static void test_first_write_upgrades(void)
{
    store s = v1_store();
    char *before = list_v1_view(&s);
    char key[128], id[32];
    create_listed(&s, "alice", "10.0.0.0/8, 192.168.1.7", key, id);
    CU_ASSERT_EQUAL(version(&s), 3);
    CU_ASSERT_EQUAL(query(&s, "SELECT count(*) FROM apikey_keys_v3"), V1_KEYS + 1);
    /* Nothing lost: the v1 list, then the new key. */
    char *after = list_v1_view(&s);
    size_t n = strlen(before);
    CU_ASSERT(n > 4 && strcmp(before + n - 4, "}\n]\n") == 0);
    CU_ASSERT(strncmp(after, before, n - 4) == 0 && strncmp(after + n - 4, "},\n", 3) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(after, id));
    /* The new list is kept; the old keys have none. */
    char *list = allow_from_of(&s, id);
    CU_ASSERT_STRING_EQUAL(list ? list : "(none)", "10.0.0.0/8 192.168.1.7/32");
    free(list);
    char old_id[16];
    snprintf(old_id, sizeof old_id, "%.11s", v1_keys[0]);
    list = allow_from_of(&s, old_id);
    CU_ASSERT_STRING_EQUAL(list ? list : "(none)", "");
    free(list);
    keys_answer_as_v1(&s);
    /* The list is enforced: no address, or one outside it, is refused. */
    char err[512];
    apikey_ctx *ctx = apikey_open(s.config, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    const char *addrs[] = {NULL, "11.0.0.1", "10.200.0.1", "192.168.1.7", "192.168.1.8"};
    const apikey_decision want[] = {APIKEY_REFUSED, APIKEY_REFUSED, APIKEY_ALLOWED, APIKEY_ALLOWED,
                                    APIKEY_REFUSED};
    for (size_t i = 0; i < sizeof addrs / sizeof *addrs; i++) {
        apikey_verify_request req = {.size = sizeof req, .service = "sshd", .key = key,
                                     .keylen = strlen(key), .client_addr = addrs[i]};
        apikey_verdict v = {.size = sizeof v};
        CU_ASSERT_EQUAL(apikey_verify_with(ctx, &req, &v), want[i]);
        if (want[i] == APIKEY_REFUSED)
            CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ADDRESS);
    }
    apikey_close(ctx);
    apikey_wipe(key, sizeof key);
    free(before);
    free(after);
    drop(&s);
}

static const char *ask(tu_helper *h, const char *account, const char *key)
{
    return tu_helper_ask(h, "%s %s", account, key);
}

static int starts(const char *s, const char *word)
{
    return strncmp(s, word, strlen(word)) == 0 && (s[strlen(word)] == ' ' || !s[strlen(word)]);
}

/* Squid's helper, opened on the v1 store, kept running across the upgrade:
 * the first check after it reads the lists (it must never answer from the
 * old layout, which would let a listed key in from anywhere). */
static void test_running_host_follows(void)
{
    store s = v1_store();
    tu_helper h = tu_helper_start(s.config, "sshd", 0);
    /* v1_keys[0] is alice's active key, [4] bob's revoked one. */
    CU_ASSERT(starts(ask(&h, "alice", v1_keys[0]), "OK"));
    CU_ASSERT(starts(ask(&h, "bob", v1_keys[4]), "ERR"));
    char key[128], id[32], plain[128];
    create_listed(&s, "alice", "127.0.0.1/32", key, id);
    CU_ASSERT_EQUAL(version(&s), 3);
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(s.config, NULL, &out, NULL, "create", "alice", "--name", "plain",
                              "--scopes", "proxies:read", NULL), 0);
    snprintf(plain, sizeof plain, "%s", out ? out : "");
    plain[strcspn(plain, "\n")] = '\0';
    free(out);
    /* The helper gives no address: a listed key is refused. */
    const char *a = ask(&h, "alice", key);
    if (!starts(a, "ERR"))
        fprintf(stderr, "\nlisted key after the upgrade: %s", a);
    CU_ASSERT(starts(a, "ERR"));
    CU_ASSERT(starts(ask(&h, "alice", v1_keys[0]), "OK"));
    CU_ASSERT(starts(ask(&h, "alice", plain), "OK"));
    CU_ASSERT(starts(ask(&h, "bob", v1_keys[4]), "ERR"));
    /* A revocation after the upgrade reaches it too. */
    char old_id[16];
    snprintf(old_id, sizeof old_id, "%.11s", v1_keys[0]);
    CU_ASSERT_EQUAL(tu_apikey(s.config, NULL, NULL, NULL, "revoke", old_id, NULL), 0);
    CU_ASSERT(starts(ask(&h, "alice", v1_keys[0]), "ERR"));
    CU_ASSERT_EQUAL(tu_helper_stop(&h), 0);
    apikey_wipe(key, sizeof key);
    apikey_wipe(plain, sizeof plain);
    drop(&s);
}

/* Four processes' first writes at once: one migration, every key kept. */
static void test_concurrent_first_writers(void)
{
    enum { WRITERS = 4 };
    store s = v1_store();
    int go[2];
    CU_ASSERT_EQUAL_FATAL(pipe(go), 0);
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            close(go[1]);
            char c;
            if (read(go[0], &c, 1) != 0) /* all start when the pipe closes */
                _exit(3);
            char name[16];
            snprintf(name, sizeof name, "w%d", w);
            char *err = NULL;
            int rc = tu_apikey(s.config, NULL, NULL, &err, "create", "dave", "--name", name,
                               "--scopes", "proxies:read", NULL);
            if (rc != 0)
                fprintf(stderr, "\nwriter %d: exit %d: %s", w, rc, err ? err : "");
            _exit(rc);
        }
    }
    close(go[0]);
    close(go[1]);
    int ok = 0;
    for (int w = 0; w < WRITERS; w++) {
        int status;
        waitpid(pids[w], &status, 0);
        ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    CU_ASSERT_EQUAL(ok, WRITERS);
    CU_ASSERT_EQUAL(version(&s), 3);
    CU_ASSERT_EQUAL(query(&s, "SELECT count(*) FROM apikey_keys_v3"), V1_KEYS + WRITERS);
    CU_ASSERT_EQUAL(query(&s, "SELECT count(*) FROM apikey_keys_v3 WHERE account = 'dave'"), WRITERS);
    char *want = fixture_text("list.json"), *got = list_v1_view(&s);
    CU_ASSERT(strncmp(got, want, strlen(want) - 4) == 0);
    free(got);
    free(want);
    drop(&s);
}

static int load_keys(void)
{
    FILE *f = fopen(FIXTURES "/keys.txt", "r");
    int n = 0;
    while (f && n < V1_KEYS && fscanf(f, "%63s %d", v1_keys[n], &v1_exit[n]) == 2)
        n++;
    if (f)
        fclose(f);
    return n == V1_KEYS ? 0 : -1;
}

int main(void)
{
    kind = getenv("APIKEY_TEST_STORE") ? getenv("APIKEY_TEST_STORE") : "sqlite";
    if (strcmp(kind, "sqlite") != 0 && strcmp(kind, "pgsql") != 0) {
        printf("no v1 fixture of a %s store here\n", kind);
        return 77;
    }
    if (load_keys() != 0 || !tu_store_available(kind)) {
        fprintf(stderr, "test_store_upgrade: no fixture keys or no %s store\n", kind);
        return 2;
    }
    CU_TestInfo tests[] = {
        {"the v1 store reads as v1 read it", test_reads_v1},
        {"the first write upgrades in place and loses nothing; lists kept and enforced",
         test_first_write_upgrades},
        {"a running helper follows the upgrade and refuses a listed key without an address",
         test_running_host_follows},
        {"four first writers at once: one migration, no write lost", test_concurrent_first_writers},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"v1 store upgrade", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
