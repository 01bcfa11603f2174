/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fault injection on every write path of the store under test ($APIKEY_TEST_STORE:
 * json, the default, sqlite, or pgsql inside tests/pg_harness.sh): the real apikey command runs with
 * tests/faultinject.c preloaded, and each system call the stores write
 * through (open, read, write, pread, pwrite, fsync, fdatasync, ftruncate,
 * fstat, mmap, rename, unlink, mkostemp, fchmod, fchown, flock, fcntl locks),
 * the allocators, SQLite's own calls (open, prepare, step, exec) and libpq's
 * (connect, send a statement, read its results, the socket's send and recv)
 * fail at each call in turn. After each failure the store is exactly as it was (the
 * JSON file's bytes; SQLite's schema, version and every row, as a reader
 * sees them; PostgreSQL's tables, version and every row) and the command
 * said so on one line with exit 2; or, when the
 * fault hit something it can do without, it succeeded and the change is all
 * there. A verification that meets a fault never grants a key it must
 * refuse, and never refuses the good one: it answers or says it cannot tell.
 *
 * One pgsql case cannot be told apart by the client: the reply to COMMIT
 * lost after the server committed. There the command must fail saying the
 * write may have been saved, and the store must be either as before or
 * wholly changed.
 */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static const char *file_faults[] = {
    "open", "read", "write", "pread", "pwrite", "fsync", "fdatasync", "ftruncate", "fstat",
    "mmap", "rename", "unlink", "mkostemp", "fchmod", "fchown", "flock", "fcntl",
    "malloc", "calloc", "realloc",
    "sqlite3_open_v2", "sqlite3_prepare_v2", "sqlite3_prepare_v3", "sqlite3_step", "sqlite3_exec",
    NULL,
};
/* The pgsql store writes no file: the configuration's open and read, the
 * network and libpq's calls. */
static const char *pg_faults[] = {
    "open", "read", "malloc", "calloc", "realloc", "send", "recv",
    "PQconnectdbParams", "PQsendQuery", "PQsendQueryParams", "PQsendPrepare", "PQsendQueryPrepared",
    "PQgetResult", "PQconsumeInput",
    NULL,
};
static const char **faults = file_faults;
static char *dir, *cfg, *good, *good_id, *revoked_key, *pristine_dump;
static int is_sqlite, is_pgsql;
/* pgsql: the working database, remade from a pristine template whenever a
 * run changed it; and conninfos of it and of the maintenance database. */
static char pg_work[64], pg_pristine[64], *pg_conninfo, *pg_admin;
static int unknown_outcomes;
/* pgsql: the same store, recording every use, so that verifications under
 * faults run the last-used update too. */
static char *touch_cfg;

/* The store's files as the setup left them; absent ones are removed on
 * restore. SQLite's three go together: the WAL holds committed writes the
 * database file does not, and its index (-shm) is rebuilt by whoever opens
 * first, so the set is consistent while no process has it open. */
static struct {
    char path[600];
    char *bytes;
    size_t len;
    mode_t mode;
} files[3];
static size_t nfiles;

static int pg_copy_db(const char *to, const char *from);

static void snapshot(void)
{
    if (is_pgsql && !pg_copy_db(pg_pristine, pg_work))
        exit(2);
    for (size_t i = 0; i < nfiles; i++) {
        struct stat st;
        free(files[i].bytes);
        files[i].bytes = tu_read(files[i].path, &files[i].len);
        files[i].mode = stat(files[i].path, &st) == 0 ? st.st_mode & 07777 : 0600;
    }
}

static int unchanged(void);

static void restore(void)
{
    if (is_pgsql) {
        if (!unchanged() && !pg_copy_db(pg_work, pg_pristine))
            exit(2);
        return;
    }
    for (size_t i = 0; i < nfiles; i++) {
        unlink(files[i].path);
        if (!files[i].bytes)
            continue;
        FILE *f = fopen(files[i].path, "wb");
        fwrite(files[i].bytes, 1, files[i].len, f);
        fclose(f);
        chmod(files[i].path, files[i].mode);
    }
}

static void append(char **buf, size_t *len, const char *text)
{
    size_t n = strlen(text);
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, text, n + 1);
    *len += n;
}

/* The store's logical content: the JSON file's bytes, or what a SQLite
 * reader sees (its bytes change with WAL frames and checkpoints that change
 * nothing): integrity, the schema and its version, every row. */
static char *pg_dump(void);

static char *dump_of(const char *path)
{
    if (is_pgsql)
        return pg_dump();
    if (!is_sqlite)
        return tu_read(path, NULL);
    sqlite3 *db;
    char *text = NULL;
    size_t len = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return strdup("cannot open");
    }
    static const char *const queries[] = {
        "PRAGMA integrity_check",
        "SELECT type, name, sql FROM sqlite_master ORDER BY name",
        "SELECT version FROM apikey_schema",
        "SELECT seq, id, account, name, scopes, hex(hash), created, expires, last_used, revoked"
        ", allow_from, rate_limit, rate_period, rate_burst FROM apikey_keys_v3 ORDER BY seq",
    };
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, queries[q], -1, &st, NULL) != SQLITE_OK) {
            append(&text, &len, sqlite3_errmsg(db));
            continue;
        }
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *v = (const char *)sqlite3_column_text(st, c);
                append(&text, &len, v ? v : "NULL");
                append(&text, &len, "|");
            }
            append(&text, &len, "\n");
        }
        if (rc != SQLITE_DONE)
            append(&text, &len, sqlite3_errmsg(db));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return text;
}

/* What any client sees: the tables and their columns, the version, every
 * row with every column. */
static char *pg_dump(void)
{
    PGconn *c = PQconnectdb(pg_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char *e = strdup(PQerrorMessage(c));
        PQfinish(c);
        return e;
    }
    static const char *const queries[] = {
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " ORDER BY table_name, ordinal_position",
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
        "SELECT version FROM apikey_schema",
        "SELECT seq, id, account, name, scopes, encode(hash, 'hex'), created, expires, last_used,"
        " revoked, allow_from FROM apikey_keys_v3 ORDER BY seq",
    };
    char *text = NULL;
    size_t len = 0;
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        PGresult *r = PQexec(c, queries[q]);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            append(&text, &len, PQresultErrorMessage(r));
        for (int i = 0; i < PQntuples(r); i++) {
            for (int j = 0; j < PQnfields(r); j++) {
                append(&text, &len, PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
                append(&text, &len, "|");
            }
            append(&text, &len, "\n");
        }
        PQclear(r);
    }
    PQfinish(c);
    return text;
}

static void no_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "does not exist, skipping" from DROP ... IF EXISTS */
}

/* A statement in the maintenance database; whether it succeeded. */
static int pg_admin_exec(const char *sql, int quiet)
{
    PGconn *c = PQconnectdb(pg_admin);
    PQsetNoticeProcessor(c, no_notice, NULL);
    PGresult *r = PQexec(c, sql);
    int done = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!done && !quiet)
        fprintf(stderr, "test_faults: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return done;
}

/* A template must have no session: the command's backend may still be
 * ending when it has exited. */
static int pg_copy_db(const char *to, const char *from)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", to);
    if (!pg_admin_exec(sql, 0))
        return 0;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s", to, from);
    for (int tries = 0; tries < 50; tries++) {
        if (pg_admin_exec(sql, tries < 49))
            return 1;
        usleep(100000);
    }
    return 0;
}

static char *dump(void)
{
    return dump_of(files[0].path);
}

static int unchanged(void)
{
    char *now = dump();
    int same = now && strcmp(now, pristine_dump) == 0;
    free(now);
    return same;
}

/* One line, as every command's error must be. */
static int one_line(const char *err)
{
    const char *nl = strchr(err, '\n');
    return err[0] != '\0' && nl && nl[1] == '\0';
}

static long calls_of(const char *fault, char *const *args, const char *input)
{
    char count[600];
    snprintf(count, sizeof count, "%s/count", dir);
    unlink(count);
    setenv("APIKEY_FAULT_COUNT", count, 1);
    char spec[64];
    snprintf(spec, sizeof spec, "%s:0", fault);
    setenv("APIKEY_FAULT", spec, 1);
    restore();
    tu_apikey(cfg, input, NULL, NULL, args[0], args[1], args[2], args[3], args[4], args[5], NULL);
    unsetenv("APIKEY_FAULT");
    char *text = tu_read(count, NULL);
    long n = text ? atol(text) : 0;
    free(text);
    return n;
}

/* verify's exit status for key, without any fault. */
static int verify(const char *key)
{
    char *preload = getenv("APIKEY_PRELOAD") ? strdup(getenv("APIKEY_PRELOAD")) : NULL;
    unsetenv("APIKEY_PRELOAD");
    char line[128];
    snprintf(line, sizeof line, "%s\n", key);
    int rc = tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL);
    if (preload)
        setenv("APIKEY_PRELOAD", preload, 1);
    free(preload);
    return rc;
}

/* The keys every scenario starts from: alice's good key, bob's revoked one. */
static int make_keys(void)
{
    char *out = NULL;
    if (tu_apikey(cfg, NULL, &out, NULL, "create", "alice", "--name", "a", "--scopes", "proxies:read", NULL))
        return 1;
    out[strcspn(out, "\n")] = '\0';
    good = out;
    good_id = strndup(good, 11);
    tu_apikey(cfg, NULL, &out, NULL, "create", "bob", "--name", "b", "--scopes", "proxies:read", NULL);
    out[strcspn(out, "\n")] = '\0';
    revoked_key = out;
    char *rid = strndup(revoked_key, 11);
    tu_apikey(cfg, NULL, NULL, NULL, "revoke", rid, NULL);
    free(rid);
    return 0;
}

/* Inside tests/pg_harness.sh, straight to the server: pgbouncer would keep
 * sessions on the working database that recreating it has to end. */
static int setup_pgsql(void)
{
    const char *host = getenv("APIKEY_PG_HOST"), *port = getenv("APIKEY_PG_PORT"),
               *user = getenv("APIKEY_PG_USER");
    if (!host || !port || !user) {
        fprintf(stderr, "test_faults: pgsql runs inside tests/pg_harness.sh\n");
        return 1;
    }
    faults = pg_faults;
    snprintf(pg_work, sizeof pg_work, "faults_%d", (int)getpid());
    snprintf(pg_pristine, sizeof pg_pristine, "faults_%d_pristine", (int)getpid());
    if (asprintf(&pg_admin, "host=%s port=%s user=%s dbname=postgres", host, port, user) < 0 ||
        asprintf(&pg_conninfo, "host=%s port=%s user=%s dbname=%s", host, port, user, pg_work) < 0)
        return 1;
    char sql[128], uri[700];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_work);
    if (!pg_admin_exec(sql, 0))
        return 1;
    snprintf(uri, sizeof uri, "pgsql:%s", pg_conninfo);
    /* The good key's last use is recorded once, before the snapshot, and
     * not again during the run: checking it leaves the store as it was. */
    cfg = tu_config(uri, "last_used_granularity = 1d", "sshd = proxies:read\n");
    touch_cfg = tu_config(uri, "last_used_granularity = 0s", "sshd = proxies:read\n");
    if (make_keys() || verify(good) != 0)
        return 1;
    snapshot();
    pristine_dump = dump();
    if (!strstr(pristine_dump, "|bob|")) {
        fprintf(stderr, "test_faults: the pristine store reads as %s\n", pristine_dump);
        return 1;
    }
    setenv("APIKEY_PRELOAD", "build/tests/libfault.so", 1);
    setenv("APIKEY_FAULT_AFTER", cfg, 1);
    return 0;
}

static int teardown(void)
{
    if (is_pgsql) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_work);
        pg_admin_exec(sql, 0);
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", pg_pristine);
        pg_admin_exec(sql, 0);
    }
    return 0;
}

static int setup(void)
{
    const char *kind = getenv("APIKEY_TEST_STORE") ? getenv("APIKEY_TEST_STORE") : "json";
    is_sqlite = strcmp(kind, "sqlite") == 0;
    is_pgsql = strcmp(kind, "pgsql") == 0;
    if (!is_sqlite && !is_pgsql && strcmp(kind, "json") != 0) {
        fprintf(stderr, "test_faults: no fault test for store %s\n", kind);
        return 1;
    }
    dir = strdup(tu_tmpdir());
    if (is_pgsql)
        return setup_pgsql();
    static const char *const suffixes[2][3] = {{"f.json", "f.json.idx"}, {"f.db", "f.db-wal", "f.db-shm"}};
    nfiles = is_sqlite ? 3 : 2;
    for (size_t i = 0; i < nfiles; i++)
        snprintf(files[i].path, sizeof files[i].path, "%s/%s", dir, suffixes[is_sqlite][i]);
    char uri[700];
    snprintf(uri, sizeof uri, "%s:%s", kind, files[0].path);
    cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    if (make_keys())
        return 1;
    snapshot();
    pristine_dump = dump();
    restore(); /* reading may have touched SQLite's files */
    if (is_sqlite && !strstr(pristine_dump, "|bob|")) {
        fprintf(stderr, "test_faults: the pristine store reads as %s\n", pristine_dump);
        return 1;
    }
    setenv("APIKEY_PRELOAD", "build/tests/libfault.so", 1);
    setenv("APIKEY_FAULT_AFTER", cfg, 1);
    return 0;
}

/* The keys a command printed (create, rotate: one; --batch: one a line). */
static int printed_keys(char *out, char **keys, int cap)
{
    int n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "ak_", 3) == 0 && n < cap)
            keys[n++] = line;
    return n;
}

/* Every call index of a fault up to 200, then a sample of 100 of the rest
 * (allocations: hundreds per command). A pgsql run costs a connection and
 * may cost a database copy, and libpq allocates thousands of times: every
 * index up to 40, then a sample of 30. */
static long next_index(long i, long n)
{
    long dense = is_pgsql ? 40 : 200, samples = is_pgsql ? 30 : 100;
    return i < dense ? i + 1 : i + (n > dense ? n / samples : 1);
}

/* The one failure the client cannot tell from success: COMMIT's reply lost.
 * The store must say so rather than claim nothing was written. */
static int says_unknown(const char *err)
{
    return is_pgsql && strstr(err, "may have been saved") != NULL;
}

/* The change was committed, then the new key could not be written to
 * standard output: the command fails and names the key to revoke. */
static int says_unshown(const char *err)
{
    return strstr(err, "was created but not shown; revoke it: apikey revoke ") != NULL;
}

/* Try every call of every fault for one command, which on success prints
 * want_keys keys (each must then verify) and revokes the good key or not. */
static void each_fault(char *const *args, const char *input, const char *what, int want_keys,
                       int revokes_good)
{
    int failures = 0, successes = 0, bad = 0;
    for (size_t f = 0; faults[f]; f++) {
        long n = calls_of(faults[f], args, input);
        for (long i = 1; i <= n; i = next_index(i, n)) {
            char spec[64];
            snprintf(spec, sizeof spec, "%s:%ld", faults[f], i);
            setenv("APIKEY_FAULT", spec, 1);
            restore();
            char *out = NULL, *err = NULL;
            int rc = tu_apikey(cfg, input, &out, &err, args[0], args[1], args[2], args[3], args[4],
                               args[5], NULL);
            unsetenv("APIKEY_FAULT");
            int same = unchanged(), ok, good_want = 0;
            /* Whatever happened, the store loads and the good key works
             * (unless it was revoked). */
            int still = verify(good);
            const char *why = "";
            if (rc == 0) {
                /* The fault hit something it could do without: all of the
                 * change is there. */
                successes++;
                char *keys[4];
                int k = printed_keys(out, keys, 4);
                ok = !same && k == want_keys;
                for (int j = 0; ok && j < k; j++)
                    ok = verify(keys[j]) == 0;
                good_want = revokes_good;
                why = ok ? "" : "succeeded without all of its change";
            } else if (!same && rc == 2 && one_line(err) && (says_unknown(err) || says_unshown(err))) {
                /* Lost COMMIT reply, or the key lost on its way out: all of
                 * the change is there (every statement before COMMIT had
                 * succeeded). */
                unknown_outcomes++;
                failures++;
                ok = 1;
                good_want = revokes_good;
            } else {
                failures++;
                ok = rc == 2 && same && one_line(err);
                /* COMMIT sent, reply lost, and the server not there yet. */
                if (ok && says_unknown(err) && revokes_good && still == 1)
                    good_want = 1;
                why = ok ? "" : rc != 2 ? "wrong exit" : !same ? "store CHANGED" : "not one line";
            }
            if (!ok || still != good_want) {
                fprintf(stderr, "%s with %s: exit %d, %s, good key verifies %d: %s%s", what, spec, rc,
                        why[0] ? why : "good key wrong", still, err, one_line(err) ? "" : "\n");
                bad++;
            }
            free(out);
            free(err);
        }
    }
    printf("(%s: %d runs failed cleanly, %d succeeded despite the fault) ", what, failures, successes);
    if (is_pgsql)
        printf("(of the failures, %d lost COMMIT's reply after the server committed) ", unknown_outcomes);
    unknown_outcomes = 0;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(failures > 0);
}

static void test_create(void)
{
    char *args[] = {"create", "carol", "--name", "c", "--scopes", "proxies:read"};
    each_fault(args, NULL, "create", 1, 0);
}

static void test_revoke(void)
{
    char *args[] = {"revoke", good_id, NULL, NULL, NULL, NULL};
    each_fault(args, NULL, "revoke", 0, 1);
}

static void test_rotate(void)
{
    /* With a grace period the old key works on until it ends. */
    char *args[] = {"rotate", good_id, "--grace", "1h", NULL, NULL};
    each_fault(args, NULL, "rotate", 1, 0);
}

static void test_batch(void)
{
    char *args[] = {"create", "--batch", "-", NULL, NULL, NULL};
    each_fault(args, "dave\td\tproxies:read\t30d\nerin\te\t*\tnever\n", "create --batch", 2, 0);
}

/* A verification that meets a fault answers "cannot tell" (one line, exit
 * 2) or the truth, never a grant it must not give. */
static void test_verify_never_grants(void)
{
    int bad = 0, runs = 0;
    const char *keys[] = {good, revoked_key};
    char *saved_cfg = cfg;
    if (touch_cfg) {
        cfg = touch_cfg;
        setenv("APIKEY_FAULT_AFTER", cfg, 1);
    }
    restore();
    for (int k = 0; k < 2; k++) {
        char line[128];
        snprintf(line, sizeof line, "%s\n", keys[k]);
        char *args[] = {"verify", "--service", "sshd", NULL, NULL, NULL};
        for (size_t f = 0; faults[f]; f++) {
            long n = calls_of(faults[f], args, line);
            for (long i = 1; i <= n; i = next_index(i, n)) {
                char spec[64];
                snprintf(spec, sizeof spec, "%s:%ld", faults[f], i);
                setenv("APIKEY_FAULT", spec, 1);
                char *err = NULL;
                int rc = tu_apikey(cfg, line, NULL, &err, "verify", "--service", "sshd", NULL);
                unsetenv("APIKEY_FAULT");
                runs++;
                int want_refused = k == 1;
                if ((want_refused && rc == 0) || (!want_refused && rc == 1) || rc > 2 ||
                    (rc != 0 && !one_line(err))) {
                    fprintf(stderr, "verify %s with %s: exit %d: %s", k ? "revoked" : "good", spec, rc, err);
                    bad++;
                }
                free(err);
            }
        }
    }
    cfg = saved_cfg;
    setenv("APIKEY_FAULT_AFTER", cfg, 1);
    printf("(%d faulty verifications) ", runs);
    CU_ASSERT_EQUAL(bad, 0);
}

/* A real full disk: a small tmpfs (256 kB; 1 MB for SQLite). Creating keys until it is full fails
 * cleanly, and every key acknowledged before still works. */
static void test_full_disk(void)
{
    if (is_pgsql) {
        printf("(skipped: the server's disk is not the client's; a full server disk is the refusal"
               " that PQsendQuery and PQsendQueryParams faults inject) ");
        return;
    }
    if (geteuid() != 0) {
        printf("(skipped: mounting a tmpfs needs root) ");
        return;
    }
    char mnt[600], cmd[700];
    snprintf(mnt, sizeof mnt, "%s/full", dir);
    mkdir(mnt, 0755);
    /* SQLite writes each commit's pages to its WAL too (about 16 kB a key):
     * room for some dozens of keys either way. */
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=%s tmpfs '%s'", is_sqlite ? "1m" : "256k", mnt);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    unsetenv("APIKEY_PRELOAD");
    char path[800], uri[900];
    snprintf(path, sizeof path, "%s/keys.%s", mnt, is_sqlite ? "db" : "json");
    snprintf(uri, sizeof uri, "%s:%s", is_sqlite ? "sqlite" : "json", path);
    char *c = tu_config(uri, "max_keys_per_account = 100000", "sshd = proxies:read\n");
    char **keys = calloc(5000, sizeof *keys);
    int n = 0, rc = 0;
    char *err = NULL, *before = NULL;
    while (n < 5000) {
        free(before);
        before = n ? dump_of(path) : NULL;
        char *out = NULL;
        free(err);
        err = NULL;
        rc = tu_apikey(c, NULL, &out, &err, "create", "alice", "--name", "a long name to fill the disk sooner",
                       "--scopes", "proxies:read", NULL);
        if (rc != 0) {
            free(out);
            char *after = dump_of(path);
            CU_ASSERT(before && after && strcmp(after, before) == 0);
            free(after);
            break;
        }
        out[strcspn(out, "\n")] = '\0';
        keys[n++] = out;
    }
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(err && one_line(err));
    printf("(disk full after %d keys: %s) ", n, err ? strtok(err, "\n") : "");
    CU_ASSERT(n > 10);
    for (int i = 0; i < n; i = i == n - 1 ? n : i + n / 7 + 1 < n ? i + n / 7 + 1 : n - 1) {
        char line[128]; /* a sample, and the last key acknowledged */
        snprintf(line, sizeof line, "%s\n", keys[i]);
        CU_ASSERT_EQUAL(tu_apikey(c, line, NULL, NULL, "verify", "--service", "sshd", NULL), 0);
    }
    for (int i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(err);
    free(before);
    free(c);
    snprintf(cmd, sizeof cmd, "umount '%s'", mnt);
    CU_ASSERT_EQUAL(system(cmd), 0);
    setenv("APIKEY_PRELOAD", "build/tests/libfault.so", 1);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"create under every fault", test_create},
        {"revoke under every fault", test_revoke},
        {"rotate under every fault", test_rotate},
        {"create --batch under every fault", test_batch},
        {"verify under every fault never grants", test_verify_never_grants},
        {"a full disk fails cleanly and loses nothing", test_full_disk},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"fault injection", setup, teardown, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
