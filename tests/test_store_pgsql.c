/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The PostgreSQL store beyond the conformance suite: what sharing one server
 * between processes and hosts, losing it, and reaching it through pgbouncer
 * in transaction pooling mode must do. Runs inside tests/pg_harness.sh,
 * which provides the server, pgbouncer and $APIKEY_PG_CTL to stop and start
 * the server.
 */
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "core.h"
#include "keycodec.h"
#include "testutil.h"
#include "../store/sql/sql_schema.h"

#define SERVICES "sshd = proxies:read\n"

static int dbs;

/* A fresh, empty database; its name (static buffer). */
static const char *new_db(void)
{
    static char name[64];
    char cmd[1024];
    snprintf(name, sizeof name, "sp%d_%d", (int)getpid(), ++dbs);
    snprintf(cmd, sizeof cmd, "createdb -h '%s' -p '%s' -U '%s' %s", getenv("APIKEY_PG_HOST"),
             getenv("APIKEY_PG_PORT"), getenv("APIKEY_PG_USER"), name);
    if (system(cmd) != 0) {
        fprintf(stderr, "createdb failed: %s\n", cmd);
        exit(2);
    }
    return name;
}

/* A config for database db, directly or through pgbouncer. */
static char *config_for(const char *db, int bouncer, const char *extra)
{
    char *uri;
    if (asprintf(&uri, "pgsql:host=%s port=%s user=%s dbname=%s",
                 getenv(bouncer ? "APIKEY_PGB_HOST" : "APIKEY_PG_HOST"),
                 getenv(bouncer ? "APIKEY_PGB_PORT" : "APIKEY_PG_PORT"), getenv("APIKEY_PG_USER"),
                 db) < 0)
        abort();
    char *config = tu_config(uri, extra, SERVICES);
    free(uri);
    return config;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int pg_ctl(const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s", getenv("APIKEY_PG_CTL"), what);
    return system(cmd);
}

/* An admin context (creates the schema) and one key of account. */
static apikey_ctx *admin_with_key(const char *config, const char *account, admin_issued *k)
{
    char err[256];
    apikey_ctx *ctx = core_open(config, 1, err, sizeof err);
    if (!ctx)
        return NULL;
    admin_request req = {.account = account, .name = "k", .scopes = "proxies:read", .expires = "30d"};
    if (admin_create(ctx, &req, 1, k, err, sizeof err) != APIKEY_OK) {
        apikey_close(ctx);
        return NULL;
    }
    return ctx;
}

/* A new database seen directly and through pgbouncer, with alice's key. */
static apikey_ctx *shared_db(char **direct, char **pooled, admin_issued *k)
{
    const char *db = new_db();
    *direct = config_for(db, 0, NULL);
    *pooled = config_for(db, 1, NULL);
    return admin_with_key(*direct, "alice", k);
}

static apikey_decision check(apikey_ctx *ctx, const char *account, const char *key, apikey_result *res)
{
    return apikey_verify(ctx, "sshd", account, key, strlen(key), res);
}

static int count_lines_with(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static void test_metacharacters(void)
{
    const char *db = new_db();
    char *config = config_for(db, 0, NULL);
    char err[256];
    apikey_ctx *ctx = core_open(config, 1, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    const char *accounts[] = {"o'brien", "a\\'; DROP TABLE apikey_keys_v3; --", "%", "_", "$1", "x' OR '1'='1"};
    enum { N = sizeof accounts / sizeof accounts[0] };
    admin_issued k[N];
    for (int i = 0; i < N; i++) {
        admin_request req = {.account = accounts[i], .name = accounts[(i + 1) % N],
                             .scopes = "proxies:read", .expires = "30d"};
        CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k[i], err, sizeof err), APIKEY_OK);
    }
    apikey_result res;
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(check(ctx, accounts[i], k[i].key, &res), APIKEY_ALLOWED);
        CU_ASSERT_EQUAL(check(ctx, accounts[(i + 1) % N], k[i].key, &res), APIKEY_REFUSED);
        apikey_record rec;
        CU_ASSERT_EQUAL(ctx->store.ops->lookup(ctx->store.handle, k[i].rec.id, &rec), APIKEY_ST_OK);
        CU_ASSERT_STRING_EQUAL(rec.account, accounts[i]);
        CU_ASSERT_STRING_EQUAL(rec.name, accounts[(i + 1) % N]);
    }
    /* Accounts are matched exactly, not as patterns. */
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, &out, NULL, "list", "%", "--json", NULL), 0);
    CU_ASSERT_EQUAL(count_lines_with(out, "\"account\""), 1);
    CU_ASSERT_PTR_NULL(strstr(out, "brien"));
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, &out, NULL, "list", "x' OR '1'='1", "--json", NULL), 0);
    CU_ASSERT_EQUAL(count_lines_with(out, "\"account\""), 1);
    free(out);
    apikey_close(ctx);
    free(config);
}

/* Two processes, one through pgbouncer: a revocation made by one is refused
 * by the other at its next check, without reopening anything. */
static void test_revocation_across_processes(void)
{
    char *direct, *pooled;
    admin_issued k;
    apikey_ctx *admin = shared_db(&direct, &pooled, &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    int to_child[2], from_child[2];
    CU_ASSERT_FATAL(pipe(to_child) == 0 && pipe(from_child) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        apikey_ctx *ctx = apikey_open(pooled, NULL, 0);
        apikey_result res;
        char go, got[2] = {'x', 'x'};
        if (ctx) {
            got[0] = (char)('0' + check(ctx, "alice", k.key, &res));
            if (write(from_child[1], got, 1) != 1 || read(to_child[0], &go, 1) != 1)
                _exit(3);
            apikey_decision d = check(ctx, "alice", k.key, &res);
            got[1] = d == APIKEY_REFUSED && res.reason == APIKEY_REASON_REVOKED ? 'R' : (char)('0' + d);
        }
        if (write(from_child[1], got + 1, 1) != 1)
            _exit(3);
        _exit(0);
    }
    char first = 0, second = 0, err[256];
    CU_ASSERT_EQUAL(read(from_child[0], &first, 1), 1);
    CU_ASSERT_EQUAL(first, '0' + APIKEY_ALLOWED);
    char pid_text[32];
    snprintf(pid_text, sizeof pid_text, "ak_%s", k.rec.id);
    CU_ASSERT_EQUAL(admin_revoke(admin, pid_text, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(write(to_child[1], "g", 1), 1);
    CU_ASSERT_EQUAL(read(from_child[0], &second, 1), 1);
    CU_ASSERT_EQUAL(second, 'R');
    waitpid(pid, NULL, 0);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    apikey_close(admin);
    free(direct);
    free(pooled);
}

/* A session of our own on database db, straight to the server. */
static PGconn *connect_to(const char *db)
{
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%s user=%s dbname=%s", getenv("APIKEY_PG_HOST"),
             getenv("APIKEY_PG_PORT"), getenv("APIKEY_PG_USER"), db);
    PGconn *c = PQconnectdb(conninfo);
    CU_ASSERT_FATAL(PQstatus(c) == CONNECTION_OK);
    return c;
}

/* Run SQL in database db through psql, as an operator would. */
static void psql(const char *db, const char *sql)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "psql -q -X -v ON_ERROR_STOP=1 -h '%s' -p '%s' -U '%s' -d %s -c \"%s\"",
             getenv("APIKEY_PG_HOST"), getenv("APIKEY_PG_PORT"), getenv("APIKEY_PG_USER"), db, sql);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

/* Hand-edited values that the column types allow (a negative or absurd
 * time, a hash of another length, a control character, an empty account)
 * and columns whose type or NOT NULL was altered: each check answers
 * unavailable, never allowed, and list fails with one line. */
static void test_malformed_values(void)
{
    static const char *const edits[] = {
        "UPDATE apikey_keys_v3 SET revoked = -1", "UPDATE apikey_keys_v3 SET revoked = 253402300800",
        "UPDATE apikey_keys_v3 SET expires = -5", "UPDATE apikey_keys_v3 SET expires = 253402300800",
        "UPDATE apikey_keys_v3 SET created = 0", "UPDATE apikey_keys_v3 SET last_used = -1",
        "UPDATE apikey_keys_v3 SET hash = '\\\\x00'",
        "UPDATE apikey_keys_v3 SET hash = decode(repeat('00', 33), 'hex')",
        "UPDATE apikey_keys_v3 SET account = ''", "UPDATE apikey_keys_v3 SET account = E'al\\\\nice'",
        "UPDATE apikey_keys_v3 SET name = E'k\\\\x01'", "UPDATE apikey_keys_v3 SET scopes = E'*\\\\t'",
        "UPDATE apikey_keys_v3 SET id = substr(id, 1, 7) || '!'",
        "ALTER TABLE apikey_keys_v3 ALTER COLUMN expires DROP DEFAULT;"
        " ALTER TABLE apikey_keys_v3 ALTER COLUMN expires TYPE text USING '00000000'",
        "ALTER TABLE apikey_keys_v3 ALTER COLUMN revoked DROP NOT NULL;"
        " UPDATE apikey_keys_v3 SET revoked = NULL",
        "ALTER TABLE apikey_keys_v3 ALTER COLUMN allow_from DROP NOT NULL;"
        " UPDATE apikey_keys_v3 SET allow_from = NULL",
        "ALTER TABLE apikey_keys_v3 ALTER COLUMN allow_from DROP DEFAULT;"
        " ALTER TABLE apikey_keys_v3 ALTER COLUMN allow_from TYPE bytea USING '127.0.0.1/32'",
        "UPDATE apikey_keys_v3 SET allow_from = E'10.0.0.0/8\\n'",
        "UPDATE apikey_keys_v3 SET rate_limit = 5",
        "UPDATE apikey_keys_v3 SET rate_limit = 1, rate_period = 7, rate_burst = 1",
        "UPDATE apikey_keys_v3 SET rate_limit = -1, rate_period = 1, rate_burst = 1",
        "ALTER TABLE apikey_keys_v3 ALTER COLUMN rate_limit DROP NOT NULL;"
        " UPDATE apikey_keys_v3 SET rate_limit = NULL",
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *db = new_db();
        char *config = config_for(db, 0, NULL);
        admin_issued k;
        apikey_ctx *admin = admin_with_key(config, "alice", &k);
        CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
        apikey_close(admin);
        psql(db, edits[i]);
        apikey_ctx *ctx = apikey_open(config, NULL, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        apikey_result res;
        apikey_decision d = check(ctx, NULL, k.key, &res);
        apikey_close(ctx);
        char *err = NULL;
        int listed = tu_apikey(config, NULL, NULL, &err, "list", NULL);
        if (d == APIKEY_ALLOWED || listed != 2)
            fprintf(stderr, "\n%s: verify %d, list exit %d: %s", edits[i], d, listed, err ? err : "");
        /* The edited id is no longer the key's: refused as unknown. */
        CU_ASSERT(d == APIKEY_UNAVAILABLE ||
                  (strstr(edits[i], "SET id") && d == APIKEY_REFUSED && res.reason == APIKEY_REASON_UNKNOWN));
        CU_ASSERT_EQUAL(listed, 2);
        CU_ASSERT_EQUAL(count_lines_with(err ? err : "", "malformed"), 1);
        free(err);
        free(config);
    }
    /* A revocation at the earliest time is a revocation. */
    const char *db = new_db();
    char *config = config_for(db, 0, NULL);
    admin_issued k;
    apikey_ctx *admin = admin_with_key(config, "alice", &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    apikey_close(admin);
    psql(db, "UPDATE apikey_keys_v3 SET revoked = 1");
    apikey_ctx *ctx = apikey_open(config, NULL, 0);
    apikey_result res;
    CU_ASSERT_EQUAL(check(ctx, NULL, k.key, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    apikey_close(ctx);
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, NULL, NULL, "list", NULL), 0);
    free(config);
}

/* The first word of the helper's answer to one line ("" on a hang). */
static char *ask(tu_helper *h, const char *user, const char *key, char *word, size_t cap)
{
    char line[512];
    fprintf(h->to, "%s %s\n", user, key);
    fflush(h->to);
    word[0] = '\0';
    struct pollfd p = {.fd = fileno(h->from), .events = POLLIN};
    if (poll(&p, 1, 20000) == 1 && fgets(line, sizeof line, h->from))
        snprintf(word, cap, "%.*s", (int)strcspn(line, " \n"), line);
    return word;
}

/* The server stops under long-lived hosts (a context, direct and through
 * pgbouncer, and the Squid helper): they say unavailable, never allowed nor
 * unknown, and answer again by themselves once it is back. */
static void test_server_restart(void)
{
    char *direct, *pooled;
    admin_issued k;
    apikey_ctx *admin = shared_db(&direct, &pooled, &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    apikey_close(admin);
    apikey_ctx *ctx = apikey_open(direct, NULL, 0), *via_pool = apikey_open(pooled, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(via_pool);
    tu_helper h = tu_helper_start(direct, "sshd", 0);
    char word[16];
    apikey_result res;
    CU_ASSERT_EQUAL(check(ctx, "alice", k.key, &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(via_pool, "alice", k.key, &res), APIKEY_ALLOWED);
    CU_ASSERT_STRING_EQUAL(ask(&h, "alice", k.key, word, sizeof word), "OK");

    CU_ASSERT_EQUAL_FATAL(pg_ctl("stop"), 0);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(check(ctx, "alice", k.key, &res), APIKEY_UNAVAILABLE);
        CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_STORE);
        /* pgbouncer would hold the query for two minutes: the store gives up first. */
        double t0 = now_ms();
        CU_ASSERT_EQUAL(check(via_pool, "alice", k.key, &res), APIKEY_UNAVAILABLE);
        CU_ASSERT(now_ms() - t0 < 8000);
        /* A key that is not there is no "unknown" either while the store is away. */
        CU_ASSERT_EQUAL(check(ctx, "alice", "ak_00000000AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &res) ==
                            APIKEY_ALLOWED, 0);
        CU_ASSERT_STRING_EQUAL(ask(&h, "alice", k.key, word, sizeof word), "BH");
    }
    /* A host started while the server is away opens (its configuration is
     * good), answers unavailable, and recovers by itself with the others. */
    apikey_ctx *late = apikey_open(direct, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(late);
    CU_ASSERT_EQUAL(check(late, "alice", k.key, &res), APIKEY_UNAVAILABLE);

    CU_ASSERT_EQUAL_FATAL(pg_ctl("start"), 0);
    CU_ASSERT_EQUAL(check(ctx, "alice", k.key, &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(late, "alice", k.key, &res), APIKEY_ALLOWED);
    /* pgbouncer itself retries the server after server_login_retry. */
    apikey_decision d = APIKEY_UNAVAILABLE;
    for (int i = 0; i < 50 && d == APIKEY_UNAVAILABLE; i++, usleep(200000))
        d = check(via_pool, "alice", k.key, &res);
    CU_ASSERT_EQUAL(d, APIKEY_ALLOWED);
    CU_ASSERT_STRING_EQUAL(ask(&h, "alice", k.key, word, sizeof word), "OK");
    /* And it is the server answering: a revocation now reaches them all. */
    CU_ASSERT_EQUAL(tu_apikey(direct, NULL, NULL, NULL, "revoke", res.key_id, NULL), 0);
    CU_ASSERT_EQUAL(check(ctx, "alice", k.key, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(check(via_pool, "alice", k.key, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(check(late, "alice", k.key, &res), APIKEY_REFUSED);
    CU_ASSERT_STRING_EQUAL(ask(&h, "alice", k.key, word, sizeof word), "ERR");
    tu_helper_stop(&h);
    apikey_close(late);
    apikey_close(ctx);
    apikey_close(via_pool);
    free(direct);
    free(pooled);
}

/* Hosts open with create = 0: an empty database, a missing one or a stopped
 * server is unavailable (exit 2), with the reason once; a password in the
 * conninfo is refused and never printed. */
static void test_missing_schema_and_database(void)
{
    const char *db = new_db();
    char *empty = config_for(db, 0, NULL), *missing = config_for("no_such_db", 0, NULL);
    char *err = NULL;
    const char *key = "ak_00000000AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
    /* A host's context opens (the configuration is good) and every check
     * is unavailable. */
    apikey_ctx *ctx = apikey_open(empty, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    char wellformed[APIKEY_KEY_MAX + 1];
    CU_ASSERT_EQUAL_FATAL(keycodec_make("ak", "00000000", wellformed), 0);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", NULL, wellformed, strlen(wellformed), &res),
                    APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_STORE);
    apikey_close(ctx);
    CU_ASSERT_EQUAL(tu_apikey(empty, key, NULL, &err, "verify", "--service", "sshd", NULL), 2);
    CU_ASSERT_EQUAL(count_lines_with(err, "not an apikey store"), 1);
    free(err);
    /* ... and it stays empty: a host never creates the schema. */
    CU_ASSERT_EQUAL(tu_apikey(empty, key, NULL, &err, "verify", "--service", "sshd", NULL), 2);
    CU_ASSERT_EQUAL(count_lines_with(err, "not an apikey store"), 1);
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(missing, key, NULL, &err, "verify", "--service", "sshd", NULL), 2);
    CU_ASSERT_EQUAL(count_lines_with(err, "\"no_such_db\" does not exist"), 1);
    free(err);

    char *uri, *with_password;
    if (asprintf(&uri, "pgsql:host=%s port=%s user=%s dbname=%s password=Sekr1tPw", getenv("APIKEY_PG_HOST"),
                 getenv("APIKEY_PG_PORT"), getenv("APIKEY_PG_USER"), db) < 0)
        abort();
    with_password = tu_config(uri, NULL, SERVICES);
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(with_password, NULL, &out, &err, "list", NULL), 2);
    CU_ASSERT_EQUAL(count_lines_with(err, "a password in the conninfo is refused"), 1);
    CU_ASSERT_PTR_NULL(strstr(err, "Sekr1tPw"));
    CU_ASSERT_PTR_NULL(strstr(out, "Sekr1tPw"));
    free(out);
    free(err);
    free(uri);
    free(with_password);
    free(empty);
    free(missing);
}

/* The PAM pattern (open, verify, close at every login) through pgbouncer in
 * transaction mode, with a revocation part way, timed beside the same loop
 * on direct connections. */
static void test_pam_style_loop(void)
{
    enum { N = 200 };
    const char *db = new_db();
    char *direct = config_for(db, 0, "last_used_granularity = 0"),
         *pooled = config_for(db, 1, "last_used_granularity = 0");
    admin_issued k;
    apikey_ctx *admin = admin_with_key(direct, "alice", &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    char pid_text[32], err[256];
    snprintf(pid_text, sizeof pid_text, "ak_%s", k.rec.id);
    double ms[2];
    for (int via = 0; via < 2; via++) {
        int allowed = 0, opened = 0;
        double t0 = now_ms();
        for (int i = 0; i < N; i++) {
            apikey_ctx *ctx = apikey_open(via ? pooled : direct, NULL, 0);
            apikey_result res;
            opened += ctx != NULL;
            allowed += ctx && check(ctx, "alice", k.key, &res) == APIKEY_ALLOWED;
            apikey_close(ctx);
        }
        ms[via] = (now_ms() - t0) / N;
        CU_ASSERT_EQUAL(opened, N);
        CU_ASSERT_EQUAL(allowed, N);
    }
    printf("\n    open+verify+close: %.2f ms direct, %.2f ms through pgbouncer\n", ms[0], ms[1]);
    /* Touch went through the pool as well. */
    apikey_record rec;
    CU_ASSERT_EQUAL(admin->store.ops->lookup(admin->store.handle, k.rec.id, &rec), APIKEY_ST_OK);
    CU_ASSERT(rec.last_used > 0);
    int after = 0;
    for (int i = 0; i < 20; i++) {
        if (i == 10)
            CU_ASSERT_EQUAL(admin_revoke(admin, pid_text, err, sizeof err), APIKEY_OK);
        apikey_ctx *ctx = apikey_open(pooled, NULL, 0);
        apikey_result res;
        apikey_decision d = ctx ? check(ctx, "alice", k.key, &res) : APIKEY_UNAVAILABLE;
        CU_ASSERT_EQUAL(d, i < 10 ? APIKEY_ALLOWED : APIKEY_REFUSED);
        after += i >= 10 && d == APIKEY_REFUSED && res.reason == APIKEY_REASON_REVOKED;
        apikey_close(ctx);
    }
    CU_ASSERT_EQUAL(after, 10);
    apikey_close(admin);
    free(direct);
    free(pooled);
}

/* Checks use a named prepared statement, prepared once per session; through
 * pgbouncer in transaction mode a check may reach a server session that
 * never prepared it. Another client pins the session the first check used
 * inside an open transaction, so the next check must take a fresh one: it is
 * prepared there, and the answers stay right. */
static void test_pooled_check_on_another_session(void)
{
    char *direct, *pooled;
    admin_issued k;
    apikey_ctx *admin = shared_db(&direct, &pooled, &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    char err[256], pid_text[32];
    apikey_ctx *ctx = apikey_open(pooled, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    admin_request req = {.account = "bob", .name = "k", .scopes = "proxies:read", .expires = "30d"};
    admin_issued kept;
    CU_ASSERT_EQUAL_FATAL(admin_create(admin, &req, 1, &kept, err, sizeof err), APIKEY_OK);
    apikey_result res;
    CU_ASSERT_EQUAL(check(ctx, "alice", k.key, &res), APIKEY_ALLOWED);
    snprintf(pid_text, sizeof pid_text, "ak_%s", k.rec.id);
    CU_ASSERT_EQUAL(admin_revoke(admin, pid_text, err, sizeof err), APIKEY_OK);
    apikey_ctx *holder = core_open(pooled, CORE_OPEN_CONNECT, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(holder);
    CU_ASSERT_EQUAL_FATAL(holder->store.ops->begin(holder->store.handle), APIKEY_ST_OK);
    /* begin sends nothing: BEGIN goes out with the first read, which pins
     * the session. */
    apikey_record held;
    CU_ASSERT_EQUAL_FATAL(holder->store.ops->lookup(holder->store.handle, k.rec.id, &held), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(check(ctx, "alice", k.key, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    CU_ASSERT_EQUAL(check(ctx, "bob", kept.key, &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(ctx, "alice", kept.key, &res), APIKEY_REFUSED);
    holder->store.ops->rollback(holder->store.handle);
    CU_ASSERT_EQUAL(check(ctx, "bob", kept.key, &res), APIKEY_ALLOWED);
    apikey_close(holder);
    apikey_close(ctx);
    apikey_close(admin);
    free(direct);
    free(pooled);
}

/* Writes run named statements, prepared once per session; through
 * pgbouncer in transaction mode a write may reach a server session that
 * never prepared them. The writer's first revocation prepares them on the
 * session it reaches; another client then pins that session in an open
 * transaction, so the second revocation takes another, where they are
 * missing: it must still be made (and a third after it), never refused. */
static void test_pooled_write_on_another_session(void)
{
    char *direct, *pooled;
    admin_issued k;
    apikey_ctx *admin = shared_db(&direct, &pooled, &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    char err[256], pid_text[32];
    admin_request req = {.account = "bob", .name = "k", .scopes = "proxies:read", .expires = "30d"};
    admin_issued keys[3];
    admin_request reqs[3] = {req, req, req};
    CU_ASSERT_EQUAL_FATAL(admin_create(admin, reqs, 3, keys, err, sizeof err), APIKEY_OK);
    apikey_ctx *writer = core_open(pooled, CORE_OPEN_CONNECT, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(writer);
    snprintf(pid_text, sizeof pid_text, "ak_%s", keys[0].rec.id);
    CU_ASSERT_EQUAL(admin_revoke(writer, pid_text, err, sizeof err), APIKEY_OK);
    apikey_ctx *holder = core_open(pooled, CORE_OPEN_CONNECT, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(holder);
    CU_ASSERT_EQUAL_FATAL(holder->store.ops->begin(holder->store.handle), APIKEY_ST_OK);
    apikey_record held;
    CU_ASSERT_EQUAL_FATAL(holder->store.ops->lookup(holder->store.handle, k.rec.id, &held), APIKEY_ST_OK);
    for (int i = 1; i < 3; i++) {
        snprintf(pid_text, sizeof pid_text, "ak_%s", keys[i].rec.id);
        int rc = admin_revoke(writer, pid_text, err, sizeof err);
        CU_ASSERT_EQUAL(rc, APIKEY_OK);
        if (rc != APIKEY_OK)
            fprintf(stderr, "revocation %d: %s\n", i, err);
    }
    holder->store.ops->rollback(holder->store.handle);
    apikey_result res;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(check(admin, "bob", keys[i].key, &res), APIKEY_REFUSED);
        CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    }
    CU_ASSERT_EQUAL(check(admin, "alice", k.key, &res), APIKEY_ALLOWED);
    apikey_close(holder);
    apikey_close(writer);
    apikey_close(admin);
    free(direct);
    free(pooled);
}

/* Writers on different connections (some through pgbouncer) race for the
 * last slots of one account: the limit holds exactly. */
static void test_limit_under_concurrent_writers(void)
{
    enum { WRITERS = 8, LIMIT = 3 };
    const char *db = new_db();
    char *direct = config_for(db, 0, "max_keys_per_account = 3"),
         *pooled = config_for(db, 1, "max_keys_per_account = 3");
    char err[256];
    apikey_ctx *admin = core_open(direct, 1, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    for (int round = 0; round < 3; round++) {
        char account[32];
        snprintf(account, sizeof account, "carol%d", round);
        int go[2], done_pipe[2];
        CU_ASSERT_FATAL(pipe(go) == 0 && pipe(done_pipe) == 0);
        pid_t pids[WRITERS];
        for (int w = 0; w < WRITERS; w++) {
            pids[w] = fork();
            if (pids[w] == 0) {
                alarm(30);
                close(go[1]);
                char e[256], c;
                apikey_ctx *ctx = core_open(w % 2 ? pooled : direct, 1, e, sizeof e);
                admin_request req = {.account = account, .name = "race", .scopes = "proxies:read", .expires = "30d"};
                admin_issued k;
                if (read(go[0], &c, 1) < 0) /* all start at once: the pipe closes */
                    _exit(3);
                char r = ctx && admin_create(ctx, &req, 1, &k, e, sizeof e) == APIKEY_OK ? 'y' : 'n';
                if (write(done_pipe[1], &r, 1) != 1)
                    _exit(3);
                _exit(0);
            }
        }
        close(go[0]);
        usleep(300000); /* every writer connected and waiting */
        close(go[1]);
        int made = 0;
        for (int w = 0; w < WRITERS; w++) {
            char r = 'n';
            CU_ASSERT_EQUAL(read(done_pipe[0], &r, 1), 1);
            made += r == 'y';
        }
        for (int w = 0; w < WRITERS; w++)
            waitpid(pids[w], NULL, 0);
        close(done_pipe[0]);
        close(done_pipe[1]);
        CU_ASSERT_EQUAL(made, LIMIT);
        int stored = 0;
        char *out = NULL;
        tu_apikey(direct, NULL, &out, NULL, "list", account, "--json", NULL);
        stored = count_lines_with(out, "\"status\": \"active\"");
        free(out);
        CU_ASSERT_EQUAL(stored, LIMIT);
    }
    apikey_close(admin);
    free(direct);
    free(pooled);
}

/* A write takes the writers' lock at its first statement that is not a
 * read of one key (pgsql_store.c): a key read before it is written only if
 * no other writer changed it meanwhile, whether the update waits for
 * COMMIT (its only write) or goes out at once (after another write). */
static void test_read_before_the_lock(void)
{
    const char *db = new_db();
    char *direct = config_for(db, 0, NULL);
    admin_issued k;
    char err[256];
    apikey_ctx *a = admin_with_key(direct, "alice", &k);
    apikey_ctx *b = core_open(direct, 1, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    const apikey_store_ops *ops = a->store.ops;
    void *ha = a->store.handle, *hb = b->store.handle;
    for (int at_once = 0; at_once < 2; at_once++) {
        apikey_record ra, rb, out;
        CU_ASSERT_EQUAL_FATAL(ops->begin(ha), APIKEY_ST_OK);
        CU_ASSERT_EQUAL_FATAL(ops->lookup(ha, k.rec.id, &ra), APIKEY_ST_OK);
        /* Another writer renames the key meanwhile: a holds no lock yet. */
        CU_ASSERT_EQUAL_FATAL(ops->begin(hb), APIKEY_ST_OK);
        CU_ASSERT_EQUAL_FATAL(ops->lookup(hb, k.rec.id, &rb), APIKEY_ST_OK);
        snprintf(rb.name, sizeof rb.name, "renamed%d", at_once);
        CU_ASSERT_EQUAL(ops->update(hb, &rb), APIKEY_ST_OK);
        CU_ASSERT_EQUAL_FATAL(ops->commit(hb), APIKEY_ST_OK);
        ra.revoked = 1800000000;
        if (at_once) {
            apikey_record x = ra;
            snprintf(x.id, sizeof x.id, "zzNewKy1");
            CU_ASSERT_EQUAL(ops->insert(ha, &x), APIKEY_ST_OK);
            CU_ASSERT_EQUAL(ops->update(ha, &ra), APIKEY_ST_CONFLICT);
            ops->rollback(ha);
        } else {
            CU_ASSERT_EQUAL(ops->update(ha, &ra), APIKEY_ST_OK); /* held back */
            CU_ASSERT_EQUAL(ops->commit(ha), APIKEY_ST_UNAVAILABLE);
        }
        /* The rename stands, the stale write is not there. */
        CU_ASSERT_EQUAL_FATAL(ops->lookup(ha, k.rec.id, &out), APIKEY_ST_OK);
        CU_ASSERT_STRING_EQUAL(out.name, rb.name);
        CU_ASSERT_EQUAL(out.revoked, 0);
        CU_ASSERT_EQUAL(ops->lookup(ha, "zzNewKy1", &out), APIKEY_ST_NOTFOUND);
    }
    /* Read again, the revocation goes through. */
    apikey_record ra;
    CU_ASSERT_EQUAL_FATAL(ops->begin(ha), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(ha, k.rec.id, &ra), APIKEY_ST_OK);
    ra.revoked = 1800000000;
    CU_ASSERT_EQUAL(ops->update(ha, &ra), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->commit(ha), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->lookup(hb, k.rec.id, &ra), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ra.revoked, 1800000000);
    CU_ASSERT_STRING_EQUAL(ra.name, "renamed1");
    apikey_close(a);
    apikey_close(b);
    free(direct);
}

/* Writers on several connections (half through pgbouncer) revoke and
 * create at once, while a reader looks at the change log as apikey-syncd
 * does: every change is there, and no reader ever sees a number committed
 * before a smaller one (the log's numbers are drawn in commit order, which
 * is what lets a replica resume from the last number it applied). */
static void test_change_log_under_concurrent_writers(void)
{
    enum { WRITERS = 8, REVOKES = 25, CREATES = 10 };
    const char *db = new_db();
    char *direct = config_for(db, 0, "max_keys_per_account = 1000"),
         *pooled = config_for(db, 1, "max_keys_per_account = 1000");
    char err[256];
    apikey_ctx *admin = core_open(direct, 1, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    admin_request req = {.account = "fleet", .name = "k", .scopes = "proxies:read", .expires = "30d"};
    admin_request reqs[WRITERS * REVOKES];
    static admin_issued keys[WRITERS * REVOKES];
    for (int i = 0; i < WRITERS * REVOKES; i++)
        reqs[i] = req;
    CU_ASSERT_EQUAL_FATAL(admin_create(admin, reqs, WRITERS * REVOKES, keys, err, sizeof err), APIKEY_OK);
    PGconn *reader = connect_to(db);
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            alarm(60);
            char e[256], pid_text[32];
            apikey_ctx *ctx = core_open(w % 2 ? pooled : direct, 1, e, sizeof e);
            int bad = !ctx;
            for (int i = 0; i < REVOKES && !bad; i++) {
                snprintf(pid_text, sizeof pid_text, "ak_%s", keys[w * REVOKES + i].rec.id);
                bad = admin_revoke(ctx, pid_text, e, sizeof e) != APIKEY_OK;
            }
            admin_request mine[CREATES];
            admin_issued made[CREATES];
            for (int i = 0; i < CREATES; i++)
                mine[i] = req;
            bad = bad || admin_create(ctx, mine, CREATES, made, e, sizeof e) != APIKEY_OK;
            if (bad)
                fprintf(stderr, "writer %d: %s\n", w, e);
            _exit(bad);
        }
    }
    /* The numbers a reader sees are 1..max with no hole, at every look. */
    int holes = 0, looks = 0, running = WRITERS, failed = 0;
    while (running > 0) {
        PGresult *r = PQexec(reader, "SELECT count(*) = coalesce(max(seq), 0) FROM apikey_changes");
        CU_ASSERT_FATAL(PQresultStatus(r) == PGRES_TUPLES_OK);
        holes += strcmp(PQgetvalue(r, 0, 0), "t") != 0;
        looks++;
        PQclear(r);
        int status;
        pid_t done;
        while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
            running--;
            failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        }
    }
    CU_ASSERT_EQUAL(failed, 0);
    CU_ASSERT_EQUAL(holes, 0);
    CU_ASSERT(looks > 1);
    /* Every change: the keys made, each revocation, the writers' keys. */
    PGresult *r = PQexec(reader, "SELECT count(*), count(DISTINCT id), max(seq) FROM apikey_changes");
    CU_ASSERT_FATAL(PQresultStatus(r) == PGRES_TUPLES_OK);
    CU_ASSERT_EQUAL(atoi(PQgetvalue(r, 0, 0)), WRITERS * REVOKES * 2 + WRITERS * CREATES);
    CU_ASSERT_EQUAL(atoi(PQgetvalue(r, 0, 1)), WRITERS * REVOKES + WRITERS * CREATES);
    CU_ASSERT_EQUAL(atoi(PQgetvalue(r, 0, 2)), WRITERS * REVOKES * 2 + WRITERS * CREATES);
    PQclear(r);
    r = PQexec(reader, "SELECT count(*) FROM apikey_keys_v3 WHERE revoked <> 0");
    CU_ASSERT_FATAL(PQresultStatus(r) == PGRES_TUPLES_OK);
    CU_ASSERT_EQUAL(atoi(PQgetvalue(r, 0, 0)), WRITERS * REVOKES);
    PQclear(r);
    PQfinish(reader);
    apikey_close(admin);
    free(direct);
    free(pooled);
}

/* A writer holding a key's row in an open transaction delays neither the
 * check nor its last-used write behind. */
static long long one_number(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    long long v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return v;
}

/* The log's trim, sent by one write in 64: changes older than 7 days go
 * within a few hundred writes, the trim mark rises to the newest of them,
 * and younger changes stay. */
static void test_log_trim(void)
{
    const char *db = new_db();
    char *config = config_for(db, 0, "max_keys_per_account = 5000");
    admin_issued k;
    apikey_ctx *ctx = admin_with_key(config, "alice", &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[256];
    PGconn *c = connect_to(db);
    admin_request req = {.account = "bob", .name = "k", .scopes = "proxies:read", .expires = "30d"};
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    psql(db, "UPDATE apikey_changes SET at = now() - interval '8 days' WHERE seq < (SELECT max(seq) FROM apikey_changes)");
    long long old = one_number(c, "SELECT max(seq) FROM apikey_changes WHERE at < now() - interval '7 days'");
    CU_ASSERT_EQUAL_FATAL(old, 3);
    req.account = "carol";
    req.expires = "never";
    int writes = 0;
    while (writes < 2000 && one_number(c, "SELECT count(*) FROM apikey_changes WHERE seq <= 3") != 0) {
        CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
        writes++;
    }
    CU_ASSERT(writes < 2000);
    CU_ASSERT_EQUAL(one_number(c, "SELECT seq FROM apikey_changes_trimmed"), old);
    CU_ASSERT_EQUAL(one_number(c, "SELECT min(seq) FROM apikey_changes"), old + 1);
    CU_ASSERT_EQUAL(one_number(c, "SELECT count(*) FROM apikey_changes"), writes + 1);
    explicit_bzero(&k, sizeof k);
    PQfinish(c);
    apikey_close(ctx);
    free(config);
}

/* A write's first read goes out in one pipeline with its BEGIN and the
 * check of the schema and log. On a store whose log is missing that
 * pipeline fails, read and all: the write then takes the long way (the log
 * made), reads the key again and goes through, logged. */
static void test_first_read_with_begin(void)
{
    const char *db = new_db();
    char *config = config_for(db, 0, NULL);
    admin_issued k;
    apikey_ctx *ctx = admin_with_key(config, "alice", &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    PGconn *c = connect_to(db);
    psql(db, "DROP TRIGGER apikey_log ON " SQL_TABLE_NOW "; DROP FUNCTION apikey_log_change();"
             " DROP TABLE apikey_changes, apikey_changes_trimmed");
    char pid_text[32], err[256], q[160];
    snprintf(pid_text, sizeof pid_text, "ak_%s", k.rec.id);
    CU_ASSERT_EQUAL(admin_revoke(ctx, pid_text, err, sizeof err), APIKEY_OK);
    snprintf(q, sizeof q, "SELECT count(*) FROM apikey_changes WHERE id = '%s'", k.rec.id);
    CU_ASSERT_EQUAL(one_number(c, q), 1);
    snprintf(q, sizeof q, "SELECT count(*) FROM " SQL_TABLE_NOW " WHERE id = '%s' AND revoked > 0", k.rec.id);
    CU_ASSERT_EQUAL(one_number(c, q), 1);
    /* Read with BEGIN now: the key is found revoked. */
    CU_ASSERT_EQUAL(admin_revoke(ctx, pid_text, err, sizeof err), APIKEY_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already revoked"));
    explicit_bzero(&k, sizeof k);
    PQfinish(c);
    apikey_close(ctx);
    free(config);
}

static void test_touch_never_waits(void)
{
    const char *db = new_db();
    char *direct = config_for(db, 0, "last_used_granularity = 0");
    admin_issued k;
    apikey_ctx *admin = admin_with_key(direct, "alice", &k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(admin);
    const apikey_store_ops *ops = admin->store.ops;
    void *h = admin->store.handle;
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    apikey_record rec;
    CU_ASSERT_EQUAL(ops->lookup(h, k.rec.id, &rec), APIKEY_ST_OK);
    snprintf(rec.name, sizeof rec.name, "renamed");
    CU_ASSERT_EQUAL(ops->update(h, &rec), APIKEY_ST_OK); /* the row is now locked */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(5); /* waiting on the row lock would hang forever */
        apikey_ctx *ctx = apikey_open(direct, NULL, 0);
        apikey_result res;
        _exit(ctx && check(ctx, "alice", k.key, &res) == APIKEY_ALLOWED ? 0 : 1);
    }
    int status = -1;
    double t0 = now_ms();
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT(now_ms() - t0 < 1000); /* not even the store's own 2 s touch limit */
    ops->rollback(h);
    apikey_close(admin);
    free(direct);
}

int main(void)
{
    if (!getenv("APIKEY_PG_HOST") || !getenv("APIKEY_PGB_HOST") || !getenv("APIKEY_PG_CTL")) {
        fprintf(stderr, "test_store_pgsql: run it inside tests/pg_harness.sh\n");
        return 2;
    }
    setenv("APIKEY_BIN", "build/apikey", 0);
    signal(SIGPIPE, SIG_IGN);
    CU_TestInfo tests[] = {
        {"SQL metacharacters in accounts and names are literal", test_metacharacters},
        {"a revocation in one process is refused by another at once", test_revocation_across_processes},
        {"server stopped: unavailable, BH; back: recovered by itself", test_server_restart},
        {"empty or missing database: unavailable, one reason; no password", test_missing_schema_and_database},
        {"PAM-style open/verify/close through pgbouncer", test_pam_style_loop},
        {"a pooled check reaching a session that never prepared it", test_pooled_check_on_another_session},
        {"a pooled write reaching a session that never prepared its statements", test_pooled_write_on_another_session},
        {"max keys per account holds under concurrent writers", test_limit_under_concurrent_writers},
        {"a writer's row lock delays no check", test_touch_never_waits},
        {"a write's first read goes out with BEGIN; without a log, the long way", test_first_read_with_begin},
        {"the change log is trimmed of what is older than 7 days", test_log_trim},
        {"a key read before the writers' lock is written only if unchanged", test_read_before_the_lock},
        {"the change log under concurrent writers: complete, in commit order",
         test_change_log_under_concurrent_writers},
        {"a value out of range or of another type is unavailable, never allowed", test_malformed_values},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"pgsql store", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
