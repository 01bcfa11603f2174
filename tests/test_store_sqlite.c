/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The SQLite store on its own: a reader answers while another process holds
 * the write lock, and a corrupt, foreign, newer or insecure database fails
 * closed with one clear line.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apikey.h"
#include "testutil.h"

static char *config_for(const char *path)
{
    char *uri;
    if (asprintf(&uri, "sqlite:%s", path) < 0)
        abort();
    char *cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    free(uri);
    return cfg;
}

static apikey_decision verify(const char *cfg, const char *key, apikey_result *res)
{
    char err[256];
    apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_decision d = tu_verify_key(ctx, key, res);
    apikey_close(ctx);
    return d;
}

static void sql(const char *path, const char *text)
{
    sqlite3 *db;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db, text, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A child process holds an exclusive write transaction with an uncommitted
 * change until the parent closes the pipe. */
static pid_t hold_write_lock(const char *path, int *release_fd)
{
    int ready[2], release[2];
    CU_ASSERT_FATAL(pipe2(ready, O_CLOEXEC) == 0 && pipe2(release, O_CLOEXEC) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        sqlite3 *db;
        char c = 'x';
        close(release[1]); /* or the read below never sees the parent let go */
        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN EXCLUSIVE; UPDATE apikey_keys_v3 SET name = 'changing';", NULL,
                         NULL, NULL) != SQLITE_OK)
            c = 'e';
        (void)!write(ready[1], &c, 1);
        (void)!read(release[0], &c, 1);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        _exit(0);
    }
    char c = 0;
    CU_ASSERT_EQUAL(read(ready[0], &c, 1), 1);
    CU_ASSERT_EQUAL(c, 'x');
    close(ready[0]);
    close(ready[1]);
    close(release[0]);
    *release_fd = release[1];
    return pid;
}

static void test_reader_answers_during_a_write(void)
{
    char *path = tu_path("locked.db");
    char *cfg = config_for(path);
    char *good = tu_create_key(cfg, "alice");
    char *gone = tu_create_key(cfg, "bob");
    char *id = strndup(gone, 11);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "revoke", id, NULL), 0);

    int release;
    pid_t holder = hold_write_lock(path, &release);
    apikey_result res;
    CU_ASSERT_EQUAL(verify(cfg, good, &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(verify(cfg, gone, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    /* The command reads too, while the writer holds its lock. */
    CU_ASSERT_EQUAL(tu_apikey(cfg, good, NULL, NULL, "verify", "--service", "sshd", NULL), 0);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", "--all", NULL), 0);
    close(release);
    waitpid(holder, NULL, 0);
    /* The uncommitted change never showed, and the store still writes. */
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, &out, NULL, "list", "--all", "--json", NULL), 0);
    CU_ASSERT_PTR_NULL(out ? strstr(out, "changing") : "missing");
    free(out);
    free(tu_create_key(cfg, "carol"));
    free(good);
    free(gone);
    free(id);
    free(cfg);
    free(path);
}

/* Every way in refuses: the command exits 2 with one line naming why, and a
 * host's verify is unavailable. */
static void expect_fail_closed(const char *cfg, const char *key, const char *why)
{
    tu_expect_refusal(cfg, why);
    CU_ASSERT_EQUAL(tu_apikey(cfg, key, NULL, NULL, "verify", "--service", "sshd", NULL), 2);
    apikey_result res;
    CU_ASSERT_EQUAL(verify(cfg, key, &res), APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_STORE);
}

static void test_bad_databases(void)
{
    char *path = tu_path("bad.db");
    char *cfg = config_for(path);
    char *key = tu_create_key(cfg, "alice");
    apikey_result res;
    CU_ASSERT_EQUAL(verify(cfg, key, &res), APIKEY_ALLOWED);

    /* A store made by a newer build. */
    sql(path, "UPDATE apikey_schema SET version = 99");
    expect_fail_closed(cfg, key, "schema version 99");
    /* A database that is not ours. */
    unlink(path);
    sql(path, "CREATE TABLE t (x)");
    expect_fail_closed(cfg, key, "not an apikey store");
    /* Not a database at all. */
    FILE *f = fopen(path, "w");
    fputs("this is not an SQLite database, though it is long enough to look like a header\n", f);
    fclose(f);
    expect_fail_closed(cfg, key, "not a database");
    /* A record that does not fit. */
    unlink(path);
    free(key);
    key = tu_create_key(cfg, "alice");
    sql(path, "UPDATE apikey_keys_v3 SET hash = x'00'");
    expect_fail_closed(cfg, key, "malformed");
    free(key);
    free(cfg);
    free(path);
}

/* Hand-edited values, each in a store of its own: a value of the wrong type
 * (a column's declared type is only an affinity) or out of range makes the
 * record unreadable, never "not revoked", "never expires" or "every scope". */
static void test_malformed_values(void)
{
    static const char *const edits[] = {
        "revoked = 'yes'", "revoked = '1970-01-01'", "revoked = 1.5", "revoked = x'01'",
        "revoked = -1", "revoked = 253402300800", "expires = 'never'", "expires = -5",
        "expires = 2.5", "created = 0", "created = -1", "created = '2026-01-01'",
        "last_used = -1", "last_used = 'x'", "hash = x'00'",
        "hash = '0123456789abcdef0123456789abcdef'", /* 32 bytes, but TEXT */
        "hash = zeroblob(33)", "account = ''", "account = x'616c696365'",
        "account = 'al' || char(10) || 'ice'", "name = x'6b'", "scopes = x'2a'",
        "scopes = '*' || char(9)", "id = CAST(id AS BLOB)", "id = substr(id, 1, 7) || '!'",
        /* Never "" (any address) for a list that does not read as text
         * (NOT NULL holds; a number would be stored as its text). */
        "allow_from = x'3132372e302e302e312f3332'", "allow_from = '10.0.0.0/8' || char(10)",
        /* Never "no limit" for a limit that does not read as one. */
        "rate_limit = 5", "rate_limit = 1, rate_period = 7, rate_burst = 1",
        "rate_limit = -1, rate_period = 1, rate_burst = 1", "rate_limit = 'x', rate_period = 1, rate_burst = 1",
        "rate_limit = 5000000, rate_period = 1, rate_burst = 1", "rate_limit = 5, rate_period = 1, rate_burst = 0",
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char name[32], *edit;
        snprintf(name, sizeof name, "edited%zu.db", i);
        char *path = tu_path(name), *cfg = config_for(path), *key = tu_create_key(cfg, "alice");
        if (asprintf(&edit, "UPDATE apikey_keys_v3 SET %s", edits[i]) < 0)
            abort();
        sql(path, edit);
        apikey_result res;
        apikey_decision d = verify(cfg, key, &res);
        char *err = NULL;
        int listed = tu_apikey(cfg, NULL, NULL, &err, "list", NULL);
        if (d == APIKEY_ALLOWED || listed != 2 || tu_count_lines(err) != 1 || !strstr(err, "malformed"))
            fprintf(stderr, "\n%s: verify %d, list exit %d: %s", edit, d, listed, err ? err : "");
        /* The edited id is no longer the key's: refused as unknown. */
        CU_ASSERT(d == APIKEY_UNAVAILABLE ||
                  (strstr(edit, "SET id") && d == APIKEY_REFUSED && res.reason == APIKEY_REASON_UNKNOWN));
        CU_ASSERT_EQUAL(listed, 2);
        CU_ASSERT_EQUAL(tu_count_lines(err), 1);
        CU_ASSERT_PTR_NOT_NULL(err ? strstr(err, "malformed") : NULL);
        free(err);
        free(edit);
        free(key);
        free(cfg);
        free(path);
    }
    /* A revocation at the earliest time is a revocation. */
    char *path = tu_path("revoked.db"), *cfg = config_for(path), *key = tu_create_key(cfg, "alice");
    sql(path, "UPDATE apikey_keys_v3 SET revoked = 1");
    apikey_result res;
    CU_ASSERT_EQUAL(verify(cfg, key, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", NULL), 0);
    free(key);
    free(cfg);
    free(path);
}

static void test_missing_and_insecure(void)
{
    char *path = tu_path("absent/keys.db");
    char *cfg = config_for(path);
    char *err = NULL;
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, &err, "create", "alice", "--name", "x",
                              "--scopes", "proxies:read", NULL), 2);
    CU_ASSERT_EQUAL(tu_count_lines(err), 1);
    free(err);
    free(cfg);
    free(path);

    path = tu_path("open.db");
    cfg = config_for(path);
    char *key = tu_create_key(cfg, "alice");
    CU_ASSERT_EQUAL(chmod(path, 0666), 0);
    expect_fail_closed(cfg, key, "writable");
    CU_ASSERT_EQUAL(chmod(path, 0640), 0);
    apikey_result res;
    CU_ASSERT_EQUAL(verify(cfg, key, &res), APIKEY_ALLOWED);
    free(key);
    free(cfg);
    free(path);
}

/* A long-lived host opened while its store is missing answers unavailable,
 * then recovers by itself once the store is there, without re-opening. */
static void test_host_recovers(void)
{
    char *path = tu_path("later.db");
    char *cfg = config_for(path);
    char err[256];
    apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    const char *junk = "ak_abcdefgh" "0123456789012345678901234567890123456789";
    CU_ASSERT_EQUAL(tu_verify_key(ctx, junk, &res), APIKEY_REFUSED);
    char *key = tu_create_key(cfg, "alice");
    unlink(path);
    CU_ASSERT_EQUAL(tu_verify_key(ctx, key, &res), APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_STORE);
    free(key);
    key = tu_create_key(cfg, "alice");
    CU_ASSERT_EQUAL(tu_verify_key(ctx, key, &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    free(key);
    free(cfg);
    free(path);
}

/* Several threads on one context: each lookup takes a connection of its own
 * (reader 0 is the main one), and every answer is still the right one. */
typedef struct thread_arg {
    apikey_ctx *ctx;
    const char *good, *revoked;
    int wrong;
} thread_arg;

static void *hammer(void *p)
{
    thread_arg *a = p;
    apikey_result res;
    for (int i = 0; i < 2000; i++) {
        a->wrong += apikey_verify(a->ctx, "sshd", NULL, a->good, strlen(a->good), &res) != APIKEY_ALLOWED;
        a->wrong += apikey_verify(a->ctx, "sshd", NULL, a->revoked, strlen(a->revoked), &res) != APIKEY_REFUSED;
    }
    return NULL;
}

static void test_threads_share_a_context(void)
{
    char *path = tu_path("threads.db");
    char *cfg = config_for(path);
    char *good = tu_create_key(cfg, "alice");
    char *gone = tu_create_key(cfg, "bob");
    char *id = strndup(gone, 11);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "revoke", id, NULL), 0);
    char err[256];
    apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    pthread_t t[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){ctx, good, gone, 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
    }
    int wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        wrong += args[i].wrong;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    apikey_close(ctx);
    free(id);
    free(gone);
    free(good);
    free(cfg);
    free(path);
}

/* A kept answer is the record SQLite gave (doc/STORES.md, "SQLite hosts:
 * answers kept"): each check after the first of one context is answered
 * from it, and must refuse as the store's record does: another address
 * than its allowlist's, a scope it lacks, another account. */
static apikey_decision check_from(apikey_ctx *ctx, const char *service, const char *account,
                                  const char *key, const char *from, apikey_verdict *v)
{
    apikey_verify_request q = {.size = sizeof q, .service = service, .account = account,
                               .key = key, .keylen = strlen(key), .client_addr = from};
    *v = (apikey_verdict){.size = sizeof *v};
    return apikey_verify_with(ctx, &q, v);
}

static void test_kept_answer_is_the_record(void)
{
    char *path = tu_path("kept.db");
    char *uri;
    CU_ASSERT_FATAL(asprintf(&uri, "sqlite:%s", path) >= 0);
    char *cfg = tu_config(uri, NULL, "sshd = proxies:read\nwriter = proxies:write\n");
    char *key = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(cfg, NULL, &key, NULL, "create", "alice", "--name", "kept", "--scopes",
                                    "proxies:read", "--allow-from", "10.0.0.0/8", NULL), 0);
    key[strcspn(key, "\n")] = 0;
    char err[256];
    apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_verdict v;
    for (int round = 0; round < 2; round++) {
        CU_ASSERT_EQUAL(check_from(ctx, "sshd", NULL, key, "10.1.2.3", &v), APIKEY_ALLOWED);
        CU_ASSERT_STRING_EQUAL(v.result.account, "alice");
        CU_ASSERT_EQUAL(check_from(ctx, "sshd", NULL, key, "192.0.2.1", &v), APIKEY_REFUSED);
        CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ADDRESS);
        CU_ASSERT_EQUAL(check_from(ctx, "writer", NULL, key, "10.1.2.3", &v), APIKEY_REFUSED);
        CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_MISSING_SCOPE);
        CU_ASSERT_EQUAL(check_from(ctx, "sshd", "bob", key, "10.1.2.3", &v), APIKEY_REFUSED);
        CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_WRONG_ACCOUNT);
    }
    apikey_close(ctx);
    free(key);
    free(cfg);
    free(uri);
    free(path);
}

/* A long-lived host that may write the store (one run as root: PAM under
 * sshd or su, apikey-authd as packaged) keeps its answers, and reads the
 * WAL index header again at most once a millisecond (doc/STORES.md,
 * "SQLite hosts: answers kept"): a write by another program that does not
 * wait is refused within that and a clock tick, one through its own
 * context at once. Polled for up to
 * five seconds: a host that never read the header again fails. */
static void test_kept_answers_follow_writes(void)
{
    char *path = tu_path("follow.db"), *cfg = config_for(path);
    char *by_hand = tu_create_key(cfg, "alice"), *by_ctx = tu_create_key(cfg, "bob");
    char err[256], id[12];
    apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tu_verify_key(ctx, by_hand, &res), APIKEY_ALLOWED);
        CU_ASSERT_EQUAL(tu_verify_key(ctx, by_ctx, &res), APIKEY_ALLOWED);
    }
    char *edit;
    CU_ASSERT_FATAL(asprintf(&edit, "UPDATE apikey_keys_v3 SET revoked = 1 WHERE id = '%.8s'", by_hand + 3) >= 0);
    sql(path, edit);
    apikey_decision d = APIKEY_ALLOWED;
    for (int waited_ms = 0; waited_ms < 5000 && d == APIKEY_ALLOWED; waited_ms++) {
        d = tu_verify_key(ctx, by_hand, &res);
        if (d == APIKEY_ALLOWED)
            usleep(1000);
    }
    CU_ASSERT_EQUAL(d, APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    snprintf(id, sizeof id, "%.11s", by_ctx);
    CU_ASSERT_EQUAL(apikey_revoke(ctx, id, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(tu_verify_key(ctx, by_ctx, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    apikey_close(ctx);
    free(edit);
    free(by_hand);
    free(by_ctx);
    free(cfg);
    free(path);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"a reader answers while another process holds the write lock",
         test_reader_answers_during_a_write},
        {"newer, foreign, corrupt and malformed databases fail closed", test_bad_databases},
        {"a value of the wrong type or out of range is unavailable, never allowed",
         test_malformed_values},
        {"a missing folder and an insecure file are refused", test_missing_and_insecure},
        {"a host opened before its store exists recovers by itself", test_host_recovers},
        {"four threads share one context", test_threads_share_a_context},
        {"a kept answer refuses as the store's record does", test_kept_answer_is_the_record},
        {"kept answers follow another program's write and the host's own", test_kept_answers_follow_writes},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"sqlite store", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
