/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The PostgreSQL store: the store of record that hosts on several machines
 * share. The tables are those of the SQLite store, in PostgreSQL types.
 *
 * Lists and inserts go through PQexecParams (an unnamed statement in one
 * round trip), so the store works behind pgbouncer in transaction pooling
 * mode, where consecutive statements may reach different server sessions.
 * The check, the hot path, is a named prepared statement that survives
 * landing on a session that never prepared it (see run_lookup); so are an
 * update's statements, which fall back to unnamed ones on such a session
 * (see prepare_writes). Nothing else relies on session state: the writers'
 * lock is a transaction-scoped advisory lock.
 *
 * A write holds that lock until COMMIT, so every round trip under it is
 * time when no other writer on any host can write. So a write takes it as
 * late as it can (see pgstore.locked), and sends its statements in libpq
 * pipelines (several statements, one Sync, one round trip; pgbouncer in
 * transaction mode passes them through): begin goes out with the
 * transaction's first statement (see begin_now, begin_at_once), and the
 * writes whose outcome is already known go out with the lock and COMMIT in
 * one (see send_held): a revocation is 2 round trips and holds the lock for
 * none of them.
 *
 * The location is a libpq conninfo. A password in it is refused: it would
 * sit in apikey.conf or /etc/pam.d; libpq reads one from a pgpass file
 * (passfile=, PGPASSFILE or ~/.pgpass) or a service file instead. Log lines
 * name the database by dbname/host/port/service only, never the conninfo.
 *
 * In a privileged host (the PAM module in su, login, sshd) libpq takes
 * nothing from the caller's environment: see without_environment.
 */
#include <ctype.h>
#include <endian.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apikey_store.h"
#include "../sql/sql_schema.h"
#include "pgsql_changes.h"
#include "pgsql_row.h"

#define EXPORT __attribute__((visibility("default")))
/* Same wait as the SQLite store's busy timeout before a writer gives up. */
#define WRITER_WAIT "10s"
/* pg_advisory_xact_lock key of the writers' lock; advisory locks are per
 * database, so stores in other databases never contend. */
#define WRITER_LOCK PGSQL_WRITER_LOCK

#define P(n) "$" #n
static const char *const migrations[SQL_SCHEMA_VERSION] =
    SQL_MIGRATIONS("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "BIGINT");

/* The reads of each layout (version - SQL_SCHEMA_OLDEST): a store of an
 * older one is only read (and touched) until a write upgrades it. */
typedef struct layout {
    /* The lookup's prepared name. A pooled session may hold a statement of
     * that name prepared by another build: a name never changes meaning
     * (the previous release's was apikey_lookup_v2, its columns those of
     * schema 1 without allow_from). */
    const char *lookup_name;
    const char *lookup, *each, *each_account, *touch, *count_active;
} layout;
/* The key, else its neighbour in id order: a miss fetches, sends and
 * decodes a row as a hit does, so an unknown id costs what a wrong secret
 * costs. The second part runs only for an id after the last one.
 * Touch: SKIP LOCKED leaves a row that a writer holds alone rather than
 * waiting for it. The count (of active keys, apikey_store.h) takes a row
 * that is not surely revoked or expired (a NULL, a negative time) as active. */
#define LAYOUT(NAME, T, C)                                                                       \
    {NAME,                                                                                       \
     "(" SQL_LOOKUP_AFTER(P, T, C) ") UNION ALL (SELECT " C " FROM " T                            \
     " WHERE id < $1 ORDER BY id DESC LIMIT 1) LIMIT 1",                                         \
     SQL_EACH(T, C), SQL_EACH_ACCOUNT(P, T, C),                                                  \
     "UPDATE " T " SET last_used = $2 WHERE id = (SELECT id FROM " T                             \
     " WHERE id = $1 AND last_used < $2 FOR UPDATE SKIP LOCKED)",                                \
     "SELECT count(*) FROM " T " WHERE account = $1"                                             \
     " AND (revoked > 0 OR (expires > 0 AND expires <= $2)) IS NOT TRUE"}
static const layout layouts[SQL_LAYOUTS] = {
    LAYOUT("apikey_lookup_schema1", SQL_TABLE_1, SQL_COLS_1),
    LAYOUT("apikey_lookup_schema2", SQL_TABLE_2, SQL_COLS_2),
    LAYOUT("apikey_lookup_schema3", SQL_TABLE_3, SQL_COLS_3),
};
#undef LAYOUT
/* Writes: always at the newest layout (a write transaction upgrades first);
 * inserts are built for several rows at once (insert_rows_sql). */
static const char Q_UPDATE[] = SQL_UPDATE(P);
/* Q_UPDATE of a row read before the lock: $14..$26 are the row as read
 * ($14, id, and $21, last_used, which hosts move, are not compared). */
static const char Q_UPDATE_IF[] =
    SQL_UPDATE(P) " AND (account, name, scopes, hash, created, expires, revoked, allow_from,"
                  " rate_limit, rate_period, rate_burst) IS NOT DISTINCT FROM (" P(15) ", " P(16)
                  ", " P(17) ", " P(18) ", " P(19) ", " P(20) ", " P(22) ", " P(23) ", " P(24) ", "
                  P(25) ", " P(26) ")";
static const char Q_LOCK[] = "SELECT pg_advisory_xact_lock(" WRITER_LOCK ")";
/* The lookup inside a write transaction (the newest layout, begin saw to
 * it): not the check's statement, whose missing name on a pooled session
 * would abort the transaction, but one of the write statements
 * (prepare_writes), and the plain query costs the server a fraction of
 * the one with the neighbour. A
 * write's timing tells nothing: whoever writes may list every id. */
static const char Q_LOOKUP_IN_TXN[] = "SELECT " SQL_COLS_NOW " FROM " SQL_TABLE_NOW " WHERE id = " P(1);
static const char Q_PRESENT[] = SQL_PRESENT(P);
/* What every write transaction reads first (begin_at_once). */
static const char Q_VERSION[] = PGSQL_VERSION_AND_LOG;
#undef P

/* The statements of a revocation, rotation or update, named per session
 * (prepare_writes): parsed and planned once, not at every write, which was
 * a quarter of the server's work for a revocation. The lookup's own
 * prepared statement (prepare_lookup) runs outside transactions only. */
enum { W_LOCK, W_UPDATE, W_UPDATE_IF, W_LOOKUP, W_VERSION, W_COUNT };
static const char *const writes[W_COUNT] = {Q_LOCK, Q_UPDATE, Q_UPDATE_IF, Q_LOOKUP_IN_TXN, Q_VERSION};

/* How long a statement may go unanswered before the connection is dropped
 * and the call fails. libpq has no such limit, and pgbouncer holds a query
 * while it cannot reach the server (query_wait_timeout, 120 s by default):
 * a login must not hang that long. Writes wait longer: begin may queue
 * WRITER_WAIT behind another writer. */
enum { WAIT_CHECK_MS = 5000, WAIT_TOUCH_MS = 2000, WAIT_WRITE_MS = 30000, WAIT_LIST_MS = 120000 };

typedef struct pgstore {
    const apikey_store_host *host;
    PGconn *conn;         /* NULL after a timeout: connect again on next use */
    char *conninfo;       /* for reconnecting; holds no password (refused) */
    char where[256]; /* the database, for log lines: never the whole conninfo */
    int in_txn;
    /* begin was called and nothing went out yet: BEGIN goes out with the
     * transaction's first statement, in its pipeline (see begin_now). */
    int lazy;
    int timed_out; /* ms that the last statement went unanswered: no retry */
    int prepared;  /* this session holds the layout's lookup, as far as we know */
    /* The write statements (writes[]), named: 1 when this session was
     * given them, -1 when they are not used on this connection (a pooler's
     * session lacked them, or preparing failed), 0 not yet tried. */
    int named;
    int txn_named; /* this transaction's first statements ran them: its session holds them all */
    char wname[W_COUNT][24];
    int layout;    /* the schema version the reads are for */
    /* Writes held back in a transaction, to go out together with the next
     * statement that needs an answer (at the latest with COMMIT): an update
     * of the row this transaction last read, whose outcome that row tells,
     * and inserts (QUEUE_MAX at most). */
    apikey_record read; /* the row the last lookup in this transaction found */
    int have_read;
    apikey_record pending; /* the held-back update */
    int have_pending;
    apikey_record *queued; /* the held-back inserts */
    size_t nqueued;
    /* Whether this transaction holds the writers' lock. A transaction that
     * begins on a store already at this build's layout takes it at its
     * first statement that is not a read of one key: a count (each), or
     * its writes, which go out behind the lock in the same pipeline. The
     * one key it may read first is kept in early, and an update of that
     * key changes the row only if every field but last_used is still as
     * read (Q_UPDATE_IF): the same outcome as reading it under the lock. */
    int locked;
    apikey_record early;
    int have_early;
    int wrote;  /* a write of this transaction went out already */
    int failed; /* a held-back write was refused: the transaction only rolls back */
} pgstore;

/* Inserts held back at most: 13 parameters each, of 65,535 a statement. */
enum { QUEUE_MAX = 500 };

static const layout *reads(const pgstore *s)
{
    return &layouts[s->layout - SQL_SCHEMA_OLDEST];
}

/* libpq's messages span lines ("...failed: ...\n\tIs the server running...");
 * the operator gets one line. */
static const char *one_line(const char *msg, char *buf, size_t cap)
{
    size_t n = 0;
    int space = 0;
    for (const char *p = msg ? msg : ""; *p && n + 1 < cap; p++) {
        if (isspace((unsigned char)*p)) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap)
            buf[n++] = ' ';
        space = 0;
        buf[n++] = *p;
    }
    buf[n] = '\0';
    return n ? buf : "no detail from libpq";
}

static int fail(pgstore *s, const char *what, const PGresult *res)
{
    char line[512];
    if (!res && s->timed_out) {
        s->host->log_error("store pgsql:%s: %s: no answer within %d s; connection dropped",
                           s->where, what, s->timed_out / 1000);
        return APIKEY_ST_UNAVAILABLE;
    }
    const char *msg = res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                      : s->conn                             ? PQerrorMessage(s->conn)
                                                            : "not connected";
    s->host->log_error("store pgsql:%s: %s: %s", s->where, what, one_line(msg, line, sizeof line));
    return APIKEY_ST_UNAVAILABLE;
}

/* Whether a failed statement lost its session (server restart, pgbouncer
 * dropping us, admin shutdown), so a fresh connection may succeed. */
static int connection_lost(pgstore *s, const PGresult *res)
{
    if (PQstatus(s->conn) == CONNECTION_BAD)
        return 1;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return !res || (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0));
}

static int connect_db(pgstore *s);

static int ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static int reconnect(pgstore *s)
{
    PQfinish(s->conn);
    s->conn = NULL;
    s->prepared = 0;
    if (s->named > 0)
        s->named = 0;
    return connect_db(s) == APIKEY_ST_OK;
}

/* The four ways to send a statement; each returns PQsend*'s answer. */
struct stmt;
typedef int (*sender)(PGconn *conn, const struct stmt *q);

/* One statement and its parameters $1..$n (vals NULL: none). lens and fmts
 * only where a parameter is binary (the hash); results come in binary. */
typedef struct stmt {
    const char *name; /* of a prepared statement */
    const char *sql;
    int n;
    const Oid *types;
    const char *const *vals;
    const int *lens, *fmts;
    sender via; /* NULL: send_params (see sender_of) */
} stmt;

/* Constant SQL with no parameters, possibly several statements. */
static int send_fixed(PGconn *conn, const stmt *q)
{
    return PQsendQuery(conn, q->sql);
}

/* One unnamed statement in one round trip. */
static int send_params(PGconn *conn, const stmt *q)
{
    return PQsendQueryParams(conn, q->sql, q->n, q->types, q->vals, q->lens, q->fmts, 1);
}

static int send_prepare(PGconn *conn, const stmt *q)
{
    return PQsendPrepare(conn, q->name, q->sql, q->n, q->types);
}

static int send_prepared(PGconn *conn, const stmt *q)
{
    return PQsendQueryPrepared(conn, q->name, q->n, q->vals, q->lens, q->fmts, 1);
}

/* How q goes out: as a named statement (named_or), else with its parameters. */
static sender sender_of(const stmt *q)
{
    return q->via ? q->via : send_params;
}

/* Wait for the server's next bytes until ms after start and take them in:
 * 1 when they came, 0 when the time ran out (recorded in timed_out), -1
 * when the connection broke. */
static int await_input(pgstore *s, const struct timespec *start, int ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = ms - ((now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000);
    struct pollfd p = {.fd = PQsocket(s->conn), .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) == 0) {
        s->timed_out = ms;
        return 0;
    }
    return PQconsumeInput(s->conn) ? 1 : -1;
}

/* Send q and wait at most ms for all its results. The result kept is the
 * first error, else the last one; NULL when nothing came back. */
static PGresult *exchange(pgstore *s, sender send, const stmt *q, int ms)
{
    if (PQstatus(s->conn) != CONNECTION_OK || !send(s->conn, q))
        return NULL;
    s->timed_out = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    PGresult *keep = NULL, *r;
    for (;;) {
        while (!PQisBusy(s->conn)) {
            if (!(r = PQgetResult(s->conn)))
                return keep;
            if (keep && !ok(keep)) {
                PQclear(r);
            } else {
                PQclear(keep);
                keep = r;
            }
        }
        int in = await_input(s, &start, ms);
        if (in == 0)
            break;
        if (in < 0) {
            /* Broken: PQstatus and PQerrorMessage tell the caller. */
            PQclear(keep);
            return NULL;
        }
    }
    /* Unanswered: the session may be stuck mid-statement, so a fresh one
     * next time rather than a cancel that may hang as well. */
    PQclear(keep);
    PQfinish(s->conn);
    s->conn = NULL;
    return NULL;
}

/* Send the k statements q (parameters as send_params) in one pipeline, one
 * Sync, so one round trip, and wait at most ms for all their results: res[i]
 * is statement i's first error, else its last result; after an error the
 * server skips the rest (PGRES_PIPELINE_ABORTED) up to the Sync. Returns 0
 * once the Sync came back; -1 when the connection broke or did not answer in
 * time (then it is dropped, as in exchange). */
static int exchange_pipeline(pgstore *s, const stmt *q, int k, PGresult **res, int ms)
{
    for (int i = 0; i < k; i++)
        res[i] = NULL;
    if (PQstatus(s->conn) != CONNECTION_OK || !PQenterPipelineMode(s->conn))
        return -1;
    s->timed_out = 0;
    int sent = 1;
    for (int i = 0; i < k && sent; i++)
        sent = sender_of(&q[i])(s->conn, &q[i]);
    if (sent && PQpipelineSync(s->conn)) {
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        /* i: the statement whose results come next; PQgetResult ends each
         * statement's with a NULL, and the Sync's comes after the last. */
        for (int i = 0; i <= k;) {
            while (i <= k && !PQisBusy(s->conn)) {
                PGresult *r = PQgetResult(s->conn);
                if (!r) {
                    i++;
                } else if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
                    PQclear(r);
                    if (PQexitPipelineMode(s->conn))
                        return 0;
                    i = k + 1;
                } else if (i < k && (!res[i] || ok(res[i]))) {
                    PQclear(res[i]);
                    res[i] = r;
                } else {
                    PQclear(r);
                }
            }
            if (i > k)
                break; /* results past the Sync: not a server we understand */
            if (await_input(s, &start, ms) <= 0)
                break;
        }
    }
    /* Broken, or unanswered: a session in pipeline mode in an unknown
     * state is of no further use. */
    for (int i = 0; i < k; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    PQfinish(s->conn);
    s->conn = NULL;
    return -1;
}

/* exchange, and outside a transaction a lost connection is re-established
 * once and the statement tried again, so a long-lived host recovers by
 * itself after a server restart; inside one the transaction is gone and the
 * caller gets the failure. */
static PGresult *run(pgstore *s, sender send, const stmt *q, int ms)
{
    if (!s->in_txn && PQstatus(s->conn) != CONNECTION_OK)
        reconnect(s);
    PGresult *res = exchange(s, send, q, ms);
    /* A server that did not answer in time gets no second wait. */
    if (ok(res) || s->in_txn || s->timed_out || !connection_lost(s, res))
        return res;
    PQclear(res);
    if (!reconnect(s))
        return NULL;
    return exchange(s, send, q, ms);
}

static PGresult *run_fixed(pgstore *s, const char *sql, int ms)
{
    return run(s, send_fixed, &(stmt){.sql = sql}, ms);
}

/* One statement whose parameters are text. */
static PGresult *run_text(pgstore *s, const char *sql, int n, const Oid *types,
                          const char *const *vals, int ms)
{
    return run(s, send_params, &(stmt){.sql = sql, .n = n, .types = types, .vals = vals}, ms);
}

static int exec_fixed(pgstore *s, const char *sql, const char *what)
{
    PGresult *res = run_fixed(s, sql, WAIT_WRITE_MS);
    int st = ok(res) ? APIKEY_ST_OK : fail(s, what, res);
    PQclear(res);
    return st;
}

/* Drop the writes a transaction held back (the rows carry hashes)... */
static void drop_held(pgstore *s)
{
    explicit_bzero(&s->pending, sizeof s->pending);
    if (s->queued)
        explicit_bzero(s->queued, s->nqueued * sizeof *s->queued);
    s->have_pending = 0;
    s->nqueued = 0;
}

/* ...and at its end, the rows it read too. */
static void forget_txn(pgstore *s)
{
    drop_held(s);
    explicit_bzero(&s->read, sizeof s->read);
    explicit_bzero(&s->early, sizeof s->early);
    s->have_read = s->have_early = 0;
}

static void abandon_txn(pgstore *s)
{
    forget_txn(s);
    s->lazy = 0;
    if (PQtransactionStatus(s->conn) != PQTRANS_IDLE && PQstatus(s->conn) == CONNECTION_OK) {
        s->in_txn = 1; /* no reconnect for this one */
        PQclear(run_fixed(s, "ROLLBACK", WAIT_CHECK_MS));
    }
    s->in_txn = 0;
}

static int decode_row(const PGresult *res, int row, apikey_record *out)
{
    return PQnfields(res) == SQL_NCOLS ? pgsql_decode_row(res, row, 0, out) : -1;
}

/* A row that does not decode is a corrupt store. */
static int read_row(pgstore *s, const PGresult *res, int row, apikey_record *out)
{
    if (decode_row(res, row, out) == 0)
        return APIKEY_ST_OK;
    s->host->log_error("store pgsql:%s: a malformed key record", s->where);
    return APIKEY_ST_UNAVAILABLE;
}

/* Parameters $1..$13 of a record: text, the hash in binary. */
typedef struct record_params {
    char num[7][24];
    const char *vals[SQL_NCOLS];
    int lens[SQL_NCOLS];
    int fmts[SQL_NCOLS];
} record_params;

static void bind_record(record_params *p, const apikey_record *r)
{
    memset(p, 0, sizeof *p);
    const int64_t nums[7] = {r->created,  r->expires,     r->last_used, r->revoked,
                             r->rate_limit, r->rate_period, r->rate_burst};
    p->vals[0] = r->id;
    p->vals[1] = r->account;
    p->vals[2] = r->name;
    p->vals[3] = r->scopes;
    p->vals[4] = (const char *)r->hash;
    p->lens[4] = APIKEY_HASH_LEN;
    p->fmts[4] = 1;
    for (int i = 0; i < 7; i++) {
        snprintf(p->num[i], sizeof p->num[i], "%lld", (long long)nums[i]);
        p->vals[i < 4 ? 5 + i : 6 + i] = p->num[i];
    }
    p->vals[9] = r->allow_from;
}

/* The parts of a conninfo that name the database, for log lines. */
static void describe(const char *conninfo, char *out, size_t cap)
{
    static const char *const shown[] = {"service", "dbname", "host", "port", "user"};
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; opts && i < sizeof shown / sizeof shown[0]; i++)
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (strcmp(o->keyword, shown[i]) == 0 && o->val && n < cap) {
                int w = snprintf(out + n, cap - n, "%s%s=%s", n ? " " : "", o->keyword, o->val);
                n = w < 0 ? cap : n + (size_t)w;
            }
    if (!out[0])
        snprintf(out, cap, "(libpq defaults)");
    PQconninfoFree(opts);
}

/* No password in the configuration: it would be readable wherever
 * apikey.conf or a PAM line is. */
static int check_conninfo(pgstore *s, const char *conninfo)
{
    /* libpq's parse error may quote the text around the fault: not shown.
     * No error at all means it ran out of memory, not a malformed text. */
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts && !err)
        return APIKEY_ST_NOMEM;
    if (!opts) {
        PQfreemem(err);
        s->host->log_error("store pgsql: the conninfo is malformed (key=value pairs or a"
                           " postgresql:// URI expected)");
        return APIKEY_ST_UNAVAILABLE;
    }
    int has_password = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val)
            has_password = 1;
    PQconninfoFree(opts);
    if (has_password) {
        s->host->log_error("store pgsql:%s: a password in the conninfo is refused; put it in a"
                           " pgpass file readable by root only (passfile=, PGPASSFILE or"
                           " ~/.pgpass) or a service file",
                           s->where);
        return APIKEY_ST_UNAVAILABLE;
    }
    return APIKEY_ST_OK;
}

/*
 * libpq fills whatever the conninfo leaves out from the environment (PGHOST,
 * PGHOSTADDR, which beats host=, PGPORT, PGSERVICE, PGSERVICEFILE,
 * PGSYSCONFDIR, PGPASSFILE, PGOPTIONS, PGSSLMODE, ...), reads more with
 * plain getenv (HOME for ~/.pgpass and ~/.postgresql, PGLOCALEDIR for its
 * message catalogue), and so do the libraries under it (Kerberos'
 * KRB5CCNAME and KRB5_CONFIG, the resolver's LOCALDOMAIN and RES_OPTIONS).
 * An empty value given to PQconnectdbParams counts as unset, so no list of
 * options can cancel them all. In a privileged host every libpq call that
 * may read the environment (parsing the conninfo, connecting) therefore runs
 * with the environment swapped for an empty one, and so takes only what
 * the conninfo says and libpq's compiled defaults.
 *
 * Threads: the swap is one pointer store, and getenv reads environ once per
 * call, so a getenv in another thread sees either the whole environment or
 * none, never a freed array (the real one is never freed; the empty one is
 * static). The lock keeps two of our connects from saving each other's
 * empty array. A setenv in another thread during a connect would be lost;
 * setenv is MT-unsafe with any concurrent getenv anyway (glibc: const:env),
 * and the hosts concerned (su, login, sshd) call PAM from one thread.
 */
extern char **environ;
static char *empty_environment[1];
static pthread_mutex_t environment_lock = PTHREAD_MUTEX_INITIALIZER;
static int messages_bound;

static int without_environment(pgstore *s, int (*fn)(pgstore *))
{
    if (!APIKEY_STORE_HOST_HAS(s->host, privileged) || !s->host->privileged)
        return fn(s);
    pthread_mutex_lock(&environment_lock);
    char **saved = environ;
    environ = empty_environment;
    if (!messages_bound) {
        /* libpq binds its message catalogue at its first message, from
         * PGLOCALEDIR when set: a catalogue of the caller's would hand root's
         * libpq format strings. Make that first message here, where
         * PGLOCALEDIR is unset: a conninfo missing its "=". (libpq 15 also
         * makes one at every connection attempt; this does not rely on it.) */
        char *e = NULL;
        PQconninfoFree(PQconninfoParse("x", &e));
        PQfreemem(e);
        messages_bound = 1;
    }
    int st = fn(s);
    environ = saved;
    pthread_mutex_unlock(&environment_lock);
    return st;
}

static int connect_now(pgstore *s)
{
    /* Order matters: connect_timeout yields to the conninfo's own; the
     * encoding overrides it, as records travel as UTF-8. */
    const char *keys[] = {"connect_timeout", "dbname", "client_encoding",
                          "fallback_application_name", NULL};
    const char *vals[] = {"5", s->conninfo, "UTF8", "apikey", NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn)
        return APIKEY_ST_NOMEM;
    if (PQstatus(s->conn) != CONNECTION_OK)
        return fail(s, "cannot connect", NULL);
    return APIKEY_ST_OK;
}

static int connect_db(pgstore *s)
{
    return without_environment(s, connect_now);
}

/* The first connection, once the conninfo passed its checks. */
static int open_db(pgstore *s)
{
    describe(s->conninfo, s->where, sizeof s->where);
    int st = check_conninfo(s, s->conninfo);
    return st == APIKEY_ST_OK ? connect_now(s) : st;
}

/* -1: no schema table at all. */
static int schema_version(pgstore *s, int *version)
{
    *version = -1;
    /* Read from pg_class, not with to_regclass: that may answer from the
     * session's cache of names, where "absent" can outlive another writer's
     * commit that this one waited for under the lock. */
    PGresult *res = run_text(s, "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c"
                                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                                " WHERE c.relname = 'apikey_schema'"
                                " AND n.nspname = ANY (current_schemas(false)))",
                             0, NULL, NULL, WAIT_CHECK_MS);
    if (!ok(res) || PQntuples(res) != 1) {
        int st = fail(s, "reading its schema", res);
        PQclear(res);
        return st;
    }
    int present = PQgetvalue(res, 0, 0)[0] == 1;
    PQclear(res);
    if (!present)
        return APIKEY_ST_OK;
    res = run_text(s, "SELECT version FROM apikey_schema", 0, NULL, NULL, WAIT_CHECK_MS);
    if (!ok(res) || PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 4) {
        int st = ok(res) ? APIKEY_ST_UNAVAILABLE : fail(s, "reading its schema", res);
        if (ok(res))
            s->host->log_error("store pgsql:%s: apikey_schema does not hold one version", s->where);
        PQclear(res);
        return st;
    }
    uint32_t be;
    memcpy(&be, PQgetvalue(res, 0, 0), sizeof be);
    *version = (int)be32toh(be);
    PQclear(res);
    return APIKEY_ST_OK;
}

static int pg_begin(void *handle);
static int pg_commit(void *handle);

static const char *sqlstate(const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return st ? st : "";
}

static int readable_version(pgstore *s, int *v)
{
    int st = schema_version(s, v);
    if (st != APIKEY_ST_OK)
        return st;
    char where[300];
    snprintf(where, sizeof where, "pgsql:%s", s->where);
    return sql_schema_check(s->host, where, *v);
}

/* A database without the schema gets it when create; an older schema stays
 * as it is until the first write (list must not wait behind a writer). */
static int open_schema(pgstore *s, int create)
{
    int v, st = schema_version(s, &v);
    if (st == APIKEY_ST_OK && v < 0 && create && (st = pg_begin(s)) == APIKEY_ST_OK)
        st = pg_commit(s);
    if (st == APIKEY_ST_OK)
        st = readable_version(s, &v);
    if (st == APIKEY_ST_OK)
        s->layout = v;
    return st;
}

/* Whether a read failed because its table is gone: a writer moved the
 * store to another layout (SQL_MIGRATIONS). Then the reads follow it, and
 * the read may run once more. Outside a transaction only (inside, begin
 * already brought the store to the newest layout). */
static int follow_layout(pgstore *s, const PGresult *res)
{
    int v;
    if (s->in_txn || strcmp(sqlstate(res), "42P01") != 0 || readable_version(s, &v) != APIKEY_ST_OK ||
        v == s->layout)
        return 0;
    s->layout = v;
    s->prepared = 0;
    return 1;
}

static void pg_close(void *handle)
{
    pgstore *s = handle;
    PQfinish(s->conn);
    forget_txn(s);
    free(s->queued);
    free(s->conninfo);
    free(s);
}

static int pg_open(const char *location, int create, const apikey_store_host *host, void **handle)
{
    if (apikey_store_host_check(host, "pgsql") != APIKEY_ST_OK)
        return APIKEY_ST_UNAVAILABLE;
    pgstore *s = calloc(1, sizeof *s);
    if (!s)
        return APIKEY_ST_NOMEM;
    s->host = host;
    if (!(s->conninfo = strdup(location))) {
        free(s);
        return APIKEY_ST_NOMEM;
    }
    int st = without_environment(s, open_db);
    if (st == APIKEY_ST_OK)
        st = open_schema(s, create);
    if (st != APIKEY_ST_OK) {
        pg_close(s);
        return st;
    }
    *handle = s;
    return APIKEY_ST_OK;
}

/* The write statements, prepared on this session in one pipeline. A
 * pooler in transaction mode gives each transaction any server session,
 * and a session may hold only some of them (a pipeline stops at its first
 * error): so W_VERSION, which every named transaction runs first, is
 * prepared last, and a session that holds it holds all of them (nothing
 * deallocates one alone; DISCARD ALL takes all). A name is the hash of its
 * text, so a session never holds another build's statement under it. */
static void prepare_writes(pgstore *s)
{
    Oid types[2 * SQL_NCOLS];
    memcpy(types, pgsql_record_types, sizeof pgsql_record_types);
    memcpy(types + SQL_NCOLS, pgsql_record_types, sizeof pgsql_record_types);
    const int n[W_COUNT] = {[W_UPDATE] = SQL_NCOLS, [W_UPDATE_IF] = 2 * SQL_NCOLS, [W_LOOKUP] = 1};
    const Oid text[1] = {OID_TEXT};
    stmt q[W_COUNT];
    PGresult *res[W_COUNT];
    for (int i = 0; i < W_COUNT; i++) {
        uint32_t h = 2166136261u;
        for (const char *c = writes[i]; *c; c++)
            h = (h ^ (unsigned char)*c) * 16777619u;
        snprintf(s->wname[i], sizeof s->wname[i], "apikey_w_%08x", h);
        q[i] = (stmt){.name = s->wname[i], .sql = writes[i], .n = n[i],
                      .types = i == W_LOOKUP ? text : types, .via = send_prepare};
    }
    if (PQstatus(s->conn) != CONNECTION_OK && !reconnect(s))
        return;
    if (exchange_pipeline(s, q, W_COUNT, res, WAIT_WRITE_MS) != 0)
        return; /* connection dropped: tried again on the next */
    s->named = 1;
    for (int i = 0; i < W_COUNT; i++) {
        if (!ok(res[i]))
            s->named = -1;
        PQclear(res[i]);
    }
}

/* q, as the session's named statement where it is one of writes[] and
 * this transaction may use them (use). */
static stmt named_or(const pgstore *s, stmt q, int use)
{
    for (int i = 0; use && i < W_COUNT; i++) {
        if (q.sql == writes[i]) {
            q.name = s->wname[i];
            q.via = send_prepared;
        }
    }
    return q;
}

/* A check is the hot path of every host. A named prepared statement runs
 * three times as fast as the unnamed one that every other statement uses
 * (the server plans it once per session: 50,000 against 15,000 a second
 * here, pgbench), but a pooler in transaction mode may send it to a session
 * that never prepared it. So: prepare once per connection, and when the
 * server says the statement does not exist (SQLSTATE 26000) prepare it there
 * and run it again, and if that session is gone too, run it unnamed. An
 * answer never depends on which session takes it. */
static int prepare_lookup(pgstore *s)
{
    const Oid types[1] = {OID_TEXT};
    const stmt q = {.name = reads(s)->lookup_name, .sql = reads(s)->lookup, .n = 1, .types = types};
    PGresult *res = run(s, send_prepare, &q, WAIT_CHECK_MS);
    /* 42P05: a pooled session that another client of ours prepared. */
    int done = ok(res) || strcmp(sqlstate(res), "42P05") == 0;
    PQclear(res);
    return done;
}

static PGresult *run_lookup(pgstore *s, const char *const *vals)
{
    const Oid types[1] = {OID_TEXT};
    /* Inside a write transaction an error (the check's statement missing,
     * or one already prepared on a pooled session) would abort it: the
     * write statements' lookup there, named when its session holds them. */
    if (s->in_txn) {
        stmt q = named_or(s, (stmt){.sql = Q_LOOKUP_IN_TXN, .n = 1, .types = types, .vals = vals}, s->txn_named);
        return run(s, sender_of(&q), &q, WAIT_CHECK_MS);
    }
    if (!s->prepared)
        s->prepared = prepare_lookup(s);
    PGresult *res = NULL;
    for (int attempt = 0; s->prepared && attempt < 2; attempt++) {
        PQclear(res);
        res = run(s, send_prepared, &(stmt){.name = reads(s)->lookup_name, .n = 1, .vals = vals},
                  WAIT_CHECK_MS);
        if (strcmp(sqlstate(res), "26000") != 0)
            return res;
        s->prepared = prepare_lookup(s);
    }
    PQclear(res);
    return run_text(s, reads(s)->lookup, 1, types, vals, WAIT_CHECK_MS);
}

static int send_held(pgstore *s, int commit);
static int lock_now(pgstore *s);
static int begin_now(pgstore *s, const stmt *then, PGresult **then_res);

/* Inside a transaction, what it held back goes out first: its reads see
 * its writes. */
static int send_held_before_read(pgstore *s)
{
    if (!s->in_txn && !s->lazy)
        return APIKEY_ST_OK;
    return s->failed ? APIKEY_ST_UNAVAILABLE : send_held(s, 0);
}

static int pg_lookup(void *handle, const char *id, apikey_record *out)
{
    pgstore *s = handle;
    const char *vals[1] = {id};
    const Oid types[1] = {OID_TEXT};
    const stmt first = {.sql = Q_LOOKUP_IN_TXN, .n = 1, .types = types, .vals = vals};
    PGresult *res = NULL;
    /* Held-back writes go first (with BEGIN, if it is still to go); else
     * a write transaction's first read goes out with its BEGIN. */
    int held = send_held_before_read(s);
    if (held == APIKEY_ST_OK && s->lazy)
        held = begin_now(s, &first, &res);
    /* One key read before the lock at most (pgstore.locked). */
    if (held == APIKEY_ST_OK && s->in_txn && s->have_early)
        held = lock_now(s);
    if (held != APIKEY_ST_OK)
        return held;
    s->have_read = 0;
    if (!res)
        res = run_lookup(s, vals);
    if (!ok(res) && follow_layout(s, res)) {
        PQclear(res);
        res = run_lookup(s, vals);
    }
    int st;
    if (!ok(res)) {
        st = fail(s, "reading a key", res);
    } else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && PQgetlength(res, 0, 0) == APIKEY_ID_LEN &&
               memcmp(PQgetvalue(res, 0, 0), id, APIKEY_ID_LEN + 1) == 0) {
        st = read_row(s, res, 0, out);
        if (st == APIKEY_ST_OK && s->in_txn) {
            s->read = *out;
            s->have_read = 1;
        }
        if (st == APIKEY_ST_OK && s->in_txn && !s->locked) {
            s->early = *out;
            s->have_early = 1;
        }
    } else {
        /* The neighbour, decoded and dropped; whether it is sound is its
         * own check's business. */
        if (PQntuples(res) == 1)
            (void)decode_row(res, 0, out);
        memset(out, 0, offsetof(apikey_record, account));
        st = APIKEY_ST_NOTFOUND;
    }
    PQclear(res);
    return st;
}

/* A read of many rows (each) or a count. Inside a transaction that does
 * not hold the writers' lock yet, it takes the lock in the same round trip:
 * a count for the per-account limit is made under the lock until COMMIT.
 * sql picks the statement of the reads' layout, which may change on the
 * way (follow_layout). */
static int read_many(pgstore *s, const char *(*sql)(const layout *), stmt q, const char *what,
                     PGresult **out)
{
    int held = begin_now(s, NULL, NULL);
    if (held == APIKEY_ST_OK)
        held = send_held_before_read(s);
    if (held != APIKEY_ST_OK)
        return held;
    PGresult *res = NULL;
    if (s->in_txn && !s->locked) {
        q.sql = sql(reads(s));
        const stmt both[2] = {{.sql = Q_LOCK}, q};
        PGresult *r[2];
        if (exchange_pipeline(s, both, 2, r, WAIT_LIST_MS) == 0) {
            s->locked = ok(r[0]);
            res = s->locked ? r[1] : r[0];
            PQclear(s->locked ? r[0] : r[1]);
        }
    } else {
        for (int attempt = 0; attempt < 2; attempt++) {
            PQclear(res);
            q.sql = sql(reads(s));
            res = run(s, send_params, &q, WAIT_LIST_MS);
            if (ok(res) || !follow_layout(s, res))
                break;
        }
    }
    if (!ok(res)) {
        int st = fail(s, what, res);
        PQclear(res);
        return st;
    }
    *out = res;
    return APIKEY_ST_OK;
}

static const char *each_sql(const layout *l)
{
    return l->each;
}

static const char *each_account_sql(const layout *l)
{
    return l->each_account;
}

static const char *count_active_sql(const layout *l)
{
    return l->count_active;
}

/* The whole result arrives before the first callback, which may then use
 * this handle or another store (copy) freely. */
static int pg_each(void *handle, const char *account, apikey_record_cb cb, void *arg)
{
    pgstore *s = handle;
    const Oid types[1] = {OID_TEXT};
    const char *vals[1] = {account};
    PGresult *res;
    int st = read_many(s, account ? each_account_sql : each_sql,
                       (stmt){.n = account ? 1 : 0, .types = types, .vals = vals}, "reading keys", &res);
    if (st != APIKEY_ST_OK)
        return st;
    apikey_record rec;
    for (int i = 0, n = PQntuples(res); i < n && st == APIKEY_ST_OK; i++) {
        st = read_row(s, res, i, &rec);
        if (st == APIKEY_ST_OK)
            st = cb(&rec, arg);
    }
    PQclear(res);
    return st == APIKEY_ST_STOP ? APIKEY_ST_OK : st;
}

/* The count in the database: a batch of new keys for a large account no
 * longer fetches and decodes every key of it. */
static int pg_count_active(void *handle, const char *account, int64_t now, uint64_t *count)
{
    pgstore *s = handle;
    char when[24];
    snprintf(when, sizeof when, "%lld", (long long)now);
    const Oid types[2] = {OID_TEXT, OID_INT8};
    const char *vals[2] = {account, when};
    PGresult *res;
    int st = read_many(s, count_active_sql, (stmt){.n = 2, .types = types, .vals = vals}, "counting keys", &res);
    if (st != APIKEY_ST_OK)
        return st;
    uint64_t be;
    if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == (int)sizeof be) {
        memcpy(&be, PQgetvalue(res, 0, 0), sizeof be);
        *count = be64toh(be);
    } else {
        st = fail(s, "counting keys", NULL);
    }
    PQclear(res);
    return st;
}

/* The change log that replicas follow (pgsql_changes.h): created by the
 * first writer of this build, inside its transaction and under its lock
 * like a schema upgrade (readers never create it), and trimmed now and
 * then by a writer. It is not part of the schema version: the keys' rows
 * are unchanged, so hosts of the previous release read and write on, and
 * the trigger logs their writes too. */
static int change_log(pgstore *s)
{
    PGresult *res = run_text(s, PGSQL_LOG_PRESENT, 0, NULL, NULL, WAIT_WRITE_MS);
    if (!ok(res) || PQntuples(res) != 1) {
        int st = fail(s, "reading its change log", res);
        PQclear(res);
        return st;
    }
    int present = PQgetvalue(res, 0, 0)[0] == 1;
    PQclear(res);
    if (!present)
        return exec_fixed(s, PGSQL_LOG_CREATE, "creating its change log");
    return exec_fixed(s, PGSQL_LOG_TRIM, "trimming its change log");
}

/* Bring the schema to SQL_SCHEMA_VERSION, and the reads with it, under the
 * writers' lock, so that of several first writers one migrates and the
 * others find it done; the migration commits or rolls back with the write
 * (a rollback leaves the reads at the newest layout, whose table is then
 * missing: follow_layout takes them back). */
static int upgrade(pgstore *s)
{
    int v, st = schema_version(s, &v);
    for (v = v < 0 ? 0 : v; st == APIKEY_ST_OK && v < SQL_SCHEMA_VERSION; v++) {
        char next[16];
        snprintf(next, sizeof next, "%d", v + 1);
        const char *vals[1] = {next};
        st = exec_fixed(s, migrations[v], "upgrading its schema");
        if (st == APIKEY_ST_OK) {
            PGresult *res = run_text(s, "UPDATE apikey_schema SET version = $1::int", 1, NULL, vals,
                                     WAIT_WRITE_MS);
            st = ok(res) ? APIKEY_ST_OK : fail(s, "upgrading its schema", res);
            PQclear(res);
        }
    }
    if (st == APIKEY_ST_OK) {
        char where[300];
        snprintf(where, sizeof where, "pgsql:%s", s->where);
        st = sql_schema_newer(s->host, where, v);
    }
    if (st == APIKEY_ST_OK && s->layout != SQL_SCHEMA_VERSION) {
        s->layout = SQL_SCHEMA_VERSION;
        s->prepared = 0;
    }
    return st == APIKEY_ST_OK ? change_log(s) : st;
}

/* begin in one round trip, for a store already at SQL_SCHEMA_VERSION with
 * its change log: BEGIN, the schema's version with the log's presence and,
 * once in PGSQL_LOG_TRIM_ONE_IN, the log's trim in one pipeline, the
 * writers' lock left for later (pgstore.locked). 0 when it did not do: an
 * older or newer schema, no log (its tables are missing: error, the rest
 * skipped), any other error;
 * the transaction is then rolled back, and begin goes the long way round,
 * which upgrades or says what is wrong. */
static int begin_at_once(pgstore *s, const stmt *then, PGresult **then_res)
{
    static const char *const sql[] = {"BEGIN", "SET LOCAL lock_timeout = '" WRITER_WAIT "'",
                                      Q_VERSION, PGSQL_LOG_TRIM};
    enum { N = sizeof sql / sizeof sql[0], VERSION = 2 };
    int n = arc4random_uniform(PGSQL_LOG_TRIM_ONE_IN) == 0 ? N : N - 1;
    stmt q[N + 1];
    PGresult *res[N + 1];
    if (PQstatus(s->conn) != CONNECTION_OK && !reconnect(s))
        return 0;
    if (!s->named)
        prepare_writes(s);
    int named = s->named > 0;
    for (int i = 0; i < n; i++)
        q[i] = named_or(s, (stmt){.sql = sql[i]}, named);
    if (then)
        q[n] = named_or(s, *then, named);
    int done = exchange_pipeline(s, q, n + !!then, res, WAIT_WRITE_MS) == 0;
    /* The session lacks them (26000: a pooler's other session) or cannot
     * run them as prepared (0A000: a table's columns changed under them):
     * not used again on this connection, and begin takes the long way. */
    if (done && named && !ok(res[VERSION]))
        s->named = -1;
    for (int i = 0; i < n && done; i++)
        done = ok(res[i]);
    uint32_t be = 0;
    if (done && PQntuples(res[VERSION]) == 1 && PQgetlength(res[VERSION], 0, 0) == 4)
        memcpy(&be, PQgetvalue(res[VERSION], 0, 0), sizeof be);
    done = done && be32toh(be) == SQL_SCHEMA_VERSION;
    for (int i = 0; i < n; i++)
        PQclear(res[i]);
    /* What rode along was read under this transaction's snapshot: the
     * caller's, when the transaction stands. */
    if (then && done)
        *then_res = res[n];
    else if (then && res[n])
        PQclear(res[n]);
    if (!done) {
        abandon_txn(s);
        return 0;
    }
    s->in_txn = 1;
    s->locked = 0;
    s->txn_named = named;
    if (s->layout != SQL_SCHEMA_VERSION) {
        s->layout = SQL_SCHEMA_VERSION;
        s->prepared = 0;
    }
    return 1;
}

/* The advisory lock serialises writers on every host: a writer counting an
 * account's active keys sees all others' commits before it inserts, so the
 * per-account limit holds. It lasts until COMMIT or ROLLBACK, which suits a
 * pooler that hands each transaction a different server session.
 * Nothing goes out yet (begin_now): a server that cannot be reached, or a
 * store that cannot be written, fails the transaction's first statement. */
static int pg_begin(void *handle)
{
    pgstore *s = handle;
    forget_txn(s);
    s->wrote = s->failed = 0;
    s->txn_named = 0;
    s->lazy = 1;
    return APIKEY_ST_OK;
}

/* The transaction that begin left for later, now (a no-op once begun).
 * then, when given, is the transaction's first statement: it goes out in
 * begin's pipeline, one round trip fewer (a revocation is then 2), and its
 * result comes back in *then_res; *then_res stays NULL when begin took the
 * long way, and then the caller sends it itself. */
static int begin_now(pgstore *s, const stmt *then, PGresult **then_res)
{
    if (then_res)
        *then_res = NULL;
    if (!s->lazy)
        return APIKEY_ST_OK;
    s->lazy = 0;
    if (begin_at_once(s, then, then_res))
        return APIKEY_ST_OK;
    if (s->timed_out) /* no second wait */
        return fail(s, "starting a write", NULL);
    static const char sql[] = "BEGIN; SET LOCAL lock_timeout = '" WRITER_WAIT "';"
                              " SELECT pg_advisory_xact_lock(" WRITER_LOCK ")";
    PGresult *res = run_fixed(s, sql, WAIT_WRITE_MS);
    int st = ok(res) ? APIKEY_ST_OK : fail(s, "starting a write", res);
    PQclear(res);
    if (st == APIKEY_ST_OK) {
        s->in_txn = s->locked = 1;
        st = upgrade(s);
    }
    if (st != APIKEY_ST_OK)
        abandon_txn(s);
    return st;
}

/* The writers' lock, now, if this transaction does not hold it yet. */
static int lock_now(pgstore *s)
{
    int st = begin_now(s, NULL, NULL);
    if (st != APIKEY_ST_OK || s->locked)
        return st;
    PGresult *res = run_text(s, Q_LOCK, 0, NULL, NULL, WAIT_WRITE_MS);
    st = ok(res) ? APIKEY_ST_OK : fail(s, "waiting for the writers' lock", res);
    PQclear(res);
    s->locked = st == APIKEY_ST_OK;
    return st;
}

/* An update's parameters: the record, and the row as read before the lock
 * when the record is that row's (Q_UPDATE_IF). */
typedef struct update_params {
    record_params now, before;
    const char *vals[2 * SQL_NCOLS];
    int lens[2 * SQL_NCOLS], fmts[2 * SQL_NCOLS];
    Oid types[2 * SQL_NCOLS];
} update_params;

static stmt bind_update(pgstore *s, update_params *u, const apikey_record *rec)
{
    int n = s->have_early && strcmp(s->early.id, rec->id) == 0 ? 2 : 1;
    bind_record(&u->now, rec);
    if (n == 2)
        bind_record(&u->before, &s->early);
    for (int half = 0; half < n; half++) {
        const record_params *p = half ? &u->before : &u->now;
        memcpy(u->vals + half * SQL_NCOLS, p->vals, sizeof p->vals);
        memcpy(u->lens + half * SQL_NCOLS, p->lens, sizeof p->lens);
        memcpy(u->fmts + half * SQL_NCOLS, p->fmts, sizeof p->fmts);
        memcpy(u->types + half * SQL_NCOLS, pgsql_record_types, sizeof pgsql_record_types);
    }
    return (stmt){.sql = n == 2 ? Q_UPDATE_IF : Q_UPDATE, .n = n * SQL_NCOLS, .types = u->types,
                  .vals = u->vals, .lens = u->lens, .fmts = u->fmts};
}

static int update_now(pgstore *s, const apikey_record *rec)
{
    update_params u;
    const stmt q = bind_update(s, &u, rec);
    PGresult *res = run(s, send_params, &q, WAIT_WRITE_MS);
    explicit_bzero(&u, sizeof u);
    if (!ok(res)) {
        int st = fail(s, "changing a key", res);
        PQclear(res);
        return st;
    }
    int changed = atoi(PQcmdTuples(res));
    PQclear(res);
    if (changed == 1)
        return APIKEY_ST_OK;
    /* No row changed: the key is missing, or its revocation would change,
     * or it changed since this transaction read it before the lock. */
    const Oid types[1] = {OID_TEXT};
    const char *vals[1] = {rec->id};
    res = run_text(s, Q_PRESENT, 1, types, vals, WAIT_WRITE_MS);
    int st = ok(res) ? sql_unchanged(PQntuples(res) > 0) : fail(s, "reading a key", res);
    PQclear(res);
    return st;
}

/* The answer to COMMIT: OK, or why not (logged). */
static int commit_result(pgstore *s, PGresult *res)
{
    /* The server's own refusals carry a SQLSTATE; libpq's (a dropped
     * connection, a reply it could not read or store) do not. */
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!ok(res) && (!state || connection_lost(s, res)))
        /* COMMIT went out and its answer did not come back: the server may
         * have committed. Saying "failed, nothing changed" would invite a
         * retry that creates a second key or rotates twice. */
        return fail(s, "committing, the reply was lost: the write may have been saved or not (check"
                       " with apikey list)", res);
    if (!ok(res))
        return fail(s, "committing", res);
    if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* COMMIT of a transaction that an error aborted "succeeds" as ROLLBACK. */
        s->host->log_error("store pgsql:%s: the write was rolled back", s->where);
        return APIKEY_ST_UNAVAILABLE;
    }
    return APIKEY_ST_OK;
}

/* INSERT of n rows, $1..$(13 n): one statement for the held-back inserts. */
static char *insert_rows_sql(size_t n)
{
    static const char head[] = "INSERT INTO " SQL_TABLE_3 " (" SQL_COLS_3 ") VALUES ";
    size_t cap = sizeof head + n * SQL_NCOLS * 8, len = sizeof head - 1;
    char *sql = malloc(cap);
    if (!sql)
        return NULL;
    memcpy(sql, head, len);
    for (size_t r = 0; r < n; r++)
        for (int c = 0; c < SQL_NCOLS; c++)
            len += (size_t)snprintf(sql + len, cap - len, "%s$%zu%s", c ? "" : r ? ",(" : "(",
                                    r * SQL_NCOLS + (size_t)c + 1, c == SQL_NCOLS - 1 ? ")" : ",");
    return sql;
}

/* The held-back inserts' parameters, row after row. */
typedef struct rows_params {
    record_params *rows;
    const char **vals;
    int *lens, *fmts;
    Oid *types;
} rows_params;

static void free_rows(rows_params *p, size_t n)
{
    if (p->rows)
        explicit_bzero(p->rows, n * sizeof *p->rows);
    free(p->rows);
    free(p->vals);
    free(p->lens);
    free(p->fmts);
    free(p->types);
}

static int bind_rows(rows_params *p, const apikey_record *recs, size_t n)
{
    size_t m = n * SQL_NCOLS;
    p->rows = calloc(n, sizeof *p->rows);
    p->vals = calloc(m, sizeof *p->vals);
    p->lens = calloc(m, sizeof *p->lens);
    p->fmts = calloc(m, sizeof *p->fmts);
    p->types = calloc(m, sizeof *p->types);
    if (!p->rows || !p->vals || !p->lens || !p->fmts || !p->types)
        return -1;
    for (size_t r = 0; r < n; r++) {
        bind_record(&p->rows[r], &recs[r]);
        memcpy(p->vals + r * SQL_NCOLS, p->rows[r].vals, sizeof p->rows[r].vals);
        memcpy(p->lens + r * SQL_NCOLS, p->rows[r].lens, sizeof p->rows[r].lens);
        memcpy(p->fmts + r * SQL_NCOLS, p->rows[r].fmts, sizeof p->rows[r].fmts);
        memcpy(p->types + r * SQL_NCOLS, pgsql_record_types, sizeof pgsql_record_types);
    }
    return 0;
}

/* Send what the transaction held back, with COMMIT when commit, in one
 * pipeline: one round trip. OK, or why not (logged); the held-back update
 * changing no row (the row moved after this transaction read it, which
 * the lock rules out for every writer that goes through the log's
 * trigger) fails the write. Only a held-back update or inserts, never
 * both: a second write sends the first. */
static int send_held(pgstore *s, int commit)
{
    if (!s->have_pending && !s->nqueued && !commit)
        return APIKEY_ST_OK;
    int begun = begin_now(s, NULL, NULL);
    if (begun != APIKEY_ST_OK)
        return begun;
    stmt q[3];
    int k = 0, st = APIKEY_ST_OK, lock = -1, write = -1;
    update_params one;
    rows_params many = {0};
    char *sql = NULL;
    size_t n = s->nqueued;
    int updated = s->have_pending;
    if ((updated || n) && !s->locked)
        q[lock = k++] = named_or(s, (stmt){.sql = Q_LOCK}, s->txn_named);
    if (updated) {
        q[write = k++] = named_or(s, bind_update(s, &one, &s->pending), s->txn_named);
    } else if (n) {
        if (!(sql = insert_rows_sql(n)) || bind_rows(&many, s->queued, n) != 0)
            st = APIKEY_ST_NOMEM;
        q[write = k++] = (stmt){.sql = sql, .n = (int)(n * SQL_NCOLS), .types = many.types,
                                .vals = many.vals, .lens = many.lens, .fmts = many.fmts};
    }
    if (commit)
        q[k++] = (stmt){.sql = "COMMIT"};
    PGresult *res[3] = {NULL, NULL, NULL};
    if (st == APIKEY_ST_OK && exchange_pipeline(s, q, k, res, WAIT_WRITE_MS) != 0)
        st = -1;
    drop_held(s); /* the parameters pointed into it */
    /* With COMMIT in the pipeline the server runs it unless it refused a
     * statement before it (an error with a SQLSTATE): any other failure to
     * read a reply leaves the outcome unknown, as for COMMIT's own. */
    for (int i = 0; commit && st == APIKEY_ST_OK && i < k; i++) {
        if (ok(res[i]) || PQresultStatus(res[i]) == PGRES_PIPELINE_ABORTED)
            continue;
        if (!*sqlstate(res[i]) || connection_lost(s, res[i]))
            st = -1;
        break;
    }
    if (st == -1)
        st = commit ? fail(s, "committing, the reply was lost: the write may have been saved or not"
                              " (check with apikey list)", NULL)
                    : fail(s, "writing keys", NULL);
    else if (st == APIKEY_ST_OK && lock >= 0 && !ok(res[lock]))
        st = fail(s, "waiting for the writers' lock", res[lock]);
    else if (st == APIKEY_ST_OK && write >= 0 && !ok(res[write]) &&
             strcmp(sqlstate(res[write]), "23505") == 0) {
        s->host->log_error("store pgsql:%s: a new key's id is taken by another key; nothing was"
                           " written (run it again)", s->where);
        st = APIKEY_ST_UNAVAILABLE;
    } else if (st == APIKEY_ST_OK && write >= 0 && !ok(res[write])) {
        st = fail(s, updated ? "changing a key" : "adding keys", res[write]);
    } else if (st == APIKEY_ST_OK && updated && strcmp(PQcmdTuples(res[write]), "1") != 0) {
        s->host->log_error("store pgsql:%s: the key changed under this write; nothing was written"
                           " (run it again)", s->where);
        st = APIKEY_ST_UNAVAILABLE;
    } else if (st == APIKEY_ST_OK && commit) {
        st = commit_result(s, res[k - 1]);
    }
    s->locked |= lock >= 0 && st == APIKEY_ST_OK;
    s->wrote |= write >= 0;
    s->failed |= st != APIKEY_ST_OK;
    for (int i = 0; i < k; i++)
        PQclear(res[i]);
    if (updated)
        explicit_bzero(&one, sizeof one);
    free_rows(&many, n);
    free(sql);
    return st;
}

/* Inserts wait to go out together (send_held). A taken id is refused at
 * once when this transaction read it or holds it back already; one in the
 * store otherwise fails the write when the rows go out (ids are random:
 * 62^8 of them). */
static int pg_insert(void *handle, const apikey_record *rec)
{
    pgstore *s = handle;
    if (s->failed)
        return APIKEY_ST_UNAVAILABLE;
    if (s->have_read && strcmp(s->read.id, rec->id) == 0)
        return APIKEY_ST_CONFLICT;
    for (size_t i = 0; i < s->nqueued; i++)
        if (strcmp(s->queued[i].id, rec->id) == 0)
            return APIKEY_ST_CONFLICT;
    int st = s->have_pending || s->nqueued == QUEUE_MAX ? send_held(s, 0) : APIKEY_ST_OK;
    if (st != APIKEY_ST_OK)
        return st;
    if (!s->queued && !(s->queued = malloc(QUEUE_MAX * sizeof *s->queued)))
        return APIKEY_ST_NOMEM;
    s->queued[s->nqueued++] = *rec;
    return APIKEY_ST_OK;
}

/* An update of the row this transaction read, as its only write, waits to
 * go out with the lock and COMMIT: under the lock no other writer changes
 * that row before then (read before the lock: Q_UPDATE_IF), so the row
 * says now what the update will do. */
static int pg_update(void *handle, const apikey_record *rec)
{
    pgstore *s = handle;
    if (s->failed)
        return APIKEY_ST_UNAVAILABLE;
    if (s->have_read && !s->wrote && !s->nqueued && !s->have_pending &&
        strcmp(s->read.id, rec->id) == 0) {
        if (s->read.revoked && s->read.revoked != rec->revoked)
            return sql_unchanged(1);
        s->pending = *rec;
        s->have_pending = 1;
        return APIKEY_ST_OK;
    }
    int st = send_held(s, 0);
    if (st == APIKEY_ST_OK)
        st = lock_now(s);
    if (st != APIKEY_ST_OK)
        return st;
    s->wrote = 1;
    return update_now(s, rec);
}

static int pg_commit(void *handle)
{
    pgstore *s = handle;
    int st = APIKEY_ST_UNAVAILABLE; /* a refusal held back: said when it came */
    if (!s->failed)
        st = send_held(s, 1);
    if (st != APIKEY_ST_OK)
        abandon_txn(s);
    s->in_txn = 0;
    return st;
}

static void pg_rollback(void *handle)
{
    abandon_txn(handle);
}

/* Best effort, one statement, never waiting on a writer's row lock and never
 * reconnecting: the check it follows has already been answered. */
static int pg_touch(void *handle, const char *id, int64_t when)
{
    pgstore *s = handle;
    if (PQstatus(s->conn) != CONNECTION_OK || s->in_txn || s->lazy)
        return APIKEY_ST_UNAVAILABLE;
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)when);
    const Oid types[2] = {OID_TEXT, OID_INT8};
    const char *vals[2] = {id, at};
    const stmt q = {.sql = reads(s)->touch, .n = 2, .types = types, .vals = vals};
    PGresult *res = exchange(s, send_params, &q, WAIT_TOUCH_MS);
    int st = ok(res) ? APIKEY_ST_OK : APIKEY_ST_UNAVAILABLE;
    PQclear(res);
    return st;
}

static const apikey_store_ops pgsql_ops = {
    .size = sizeof(apikey_store_ops),
    .abi = APIKEY_STORE_ABI_VERSION,
    .scheme = "pgsql",
    .open = pg_open,
    .close = pg_close,
    .lookup = pg_lookup,
    .each = pg_each,
    .begin = pg_begin,
    .insert = pg_insert,
    .update = pg_update,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .touch = pg_touch,
    /* A PGconn serves one statement at a time: no concurrent lookups; the
     * core serialises them under its lock. */
    .flags = 0,
    .count_active = pg_count_active,
};

EXPORT const apikey_store_ops *apikey_store_entry_v1(void)
{
    return &pgsql_ops;
}
