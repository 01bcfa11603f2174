/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * apikey-syncd [--config FILE]: keeps the replica of `replica =` a copy of
 * the PostgreSQL store of `store =` (man/apikey-syncd.8, doc/STORES.md).
 *
 * A full copy at start, in one snapshot with the change log's position;
 * then the change log (store/pgsql/pgsql_changes.h) from the last change
 * applied. Each batch of changes and its position commit in one SQLite
 * transaction, so a kill at any moment leaves a replica that is whole as of
 * some position and resumes from it (a change applied twice does no harm:
 * a change is "apply the key's current row"). NOTIFY only wakes the loop;
 * the log is read at least once a second anyway, and the contact line
 * records, after each read that found the replica up to date, when that
 * read began.
 */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "syncd.h"
#include "../store/pgsql/pgsql_changes.h"
#include "../store/pgsql/pgsql_row.h"

enum { BATCH = 1000, FETCH_ROWS = 10000, POLL_MS = 1000, CONTACT_EVERY_MS = 250 };
/* Reads woken by a notification begin at least this far apart: under a
 * stream of writes (1,000 a second) each read then takes the changes of a
 * couple of milliseconds, not one, and the server plans, and the replica
 * commits, half as often; a change arriving after a quiet spell is read at
 * once (doc/STORES.md, "A fleet"). */
#define READ_GAP_US 2000

/* Uses told by hosts, carried to the store of record at most once a
 * second. Only last_used changes: the log's trigger ignores it. */
#define Q_USES                                                                                   \
    "UPDATE " SQL_TABLE_NOW " k SET last_used = u.t FROM unnest($1::text[], $2::bigint[]) AS u(id, t)" \
    " WHERE k.id = u.id AND k.last_used < u.t"

/* The number of the last change: the log's, or after a trim that left it
 * empty, the trim mark. */
#define Q_LAST                                                                                   \
    "greatest((SELECT coalesce(max(seq), 0) FROM apikey_changes),"                               \
    " (SELECT seq FROM apikey_changes_trimmed))"
/* The changes after $1, each with its key's row (NULL when the key is
 * gone), the trim mark and the log's last number, in one snapshot; always
 * at least one row. The trim mark is a scalar subquery, not a table joined:
 * PostgreSQL guesses 2,260 rows for a table it has not yet analyzed, and
 * the one-row trim table, rarely written, stays unanalyzed for long. Joined,
 * that guess times the 1,000 changes made a plan of ~900,000 that crossed
 * jit_above_cost, and the server compiled every read with LLVM: 1-9 s per
 * read on a new store of record, until autovacuum analyzed the log
 * (doc/STORES.md, "A fleet"). Read this way, the estimate stays in the
 * hundreds whatever the statistics.
 *
 * Each change's key is its own lookup (LATERAL, LIMIT 1: a subquery the
 * planner cannot turn back into a join), by the id index, one per change
 * read. As a plain join, the plan prepared on a store of record of up to
 * some tens of thousands of keys hashed the whole key table at every read
 * (it guesses a third of the log after $1, where a read finds a few), and
 * the session keeps that plan as the store grows: 5 ms a read at 10,000
 * keys, 26 ms at 40,000, until autovacuum next analyzed the tables. */
#define Q_CHANGES                                                                                \
    "SELECT (SELECT seq FROM apikey_changes_trimmed), " Q_LAST ", x.* FROM (VALUES (0)) one"     \
    " LEFT JOIN (SELECT c.seq AS change, c.id AS changed, k.*"                                   \
    " FROM apikey_changes c LEFT JOIN LATERAL (SELECT " SQL_COLS_NOW " FROM " SQL_TABLE_NOW         \
    " WHERE id = c.id LIMIT 1) k ON true"                                                        \
    " WHERE c.seq > $1::bigint ORDER BY c.seq LIMIT 1000) x ON true ORDER BY x.change"
enum { C_TRIMMED, C_LAST, C_CHANGE, C_CHANGED, C_KEY };
/* Q_CHANGES prepared once a session, on a direct connection (a pooler in
 * transaction mode may hand the next read to a session that never
 * prepared it): planning it was about 95% of a read's cost to the server
 * (2.4 ms against 0.13 ms a read on this machine's test cluster, pgbench),
 * and under 1,000 changes a second each syncd reads up to 500 times a
 * second. Its plan is the generic one, whatever the statistics say: the
 * log's primary key from $1, LIMIT 1000, each key by its id; planned
 * again only when the tables change (PostgreSQL's plan cache). */
#define READ_NAME "apikey_syncd_changes"

static volatile sig_atomic_t stopping;

void syncd_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("apikey-syncd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    return mono_us() / 1000;
}

/* libpq's messages span lines; the journal gets one. */
static const char *one_line(const char *msg)
{
    static char buf[512];
    size_t n = 0;
    for (const char *p = msg && *msg ? msg : "no detail from libpq"; *p && n + 1 < sizeof buf; p++)
        if (*p != '\n' || (p[1] && n && buf[n - 1] != ' '))
            buf[n++] = *p == '\n' || *p == '\t' ? ' ' : *p;
    buf[n] = '\0';
    return buf;
}

typedef struct syncd {
    config_file cfg;
    const char *conninfo;
    PGconn *conn;
    replica_db rep;
    int said_down, said_pooler, said_uses;
    int prepared; /* this session holds Q_CHANGES as READ_NAME (a direct one) */
    int64_t contact_written; /* monotonic ms */
    int uses_fd;             /* -1: uses are not carried */
    int64_t uses_sent;       /* monotonic ms */
    uses_table uses;
} syncd;

static int64_t be64(const PGresult *res, int row, int col)
{
    uint64_t v = 0;
    if (PQgetlength(res, row, col) == 8)
        memcpy(&v, PQgetvalue(res, row, col), 8);
    return (int64_t)be64toh(v);
}

static int valid_id(const char *s, int len)
{
    apikey_record probe = {0};
    if (len != APIKEY_ID_LEN)
        return 0;
    memcpy(probe.id, s, APIKEY_ID_LEN);
    snprintf(probe.account, sizeof probe.account, "x");
    probe.created = 1;
    return apikey_record_ok(&probe);
}

/* A key's row into the replica. A row that does not decode is kept as a
 * record that the sqlite store refuses to read (no creation time), so hosts
 * answer unavailable for that key, never with an older copy of it. */
static int apply_row(syncd *d, const PGresult *res, int row, int col0)
{
    apikey_record rec;
    if (pgsql_decode_row(res, row, col0, &rec) == 0) {
        int rc = replica_db_put(&d->rep, &rec);
        OPENSSL_cleanse(&rec, sizeof rec);
        return rc;
    }
    const char *id = PQgetvalue(res, row, col0);
    if (!valid_id(id, PQgetlength(res, row, col0))) {
        syncd_say("the store of record holds a key row that is malformed and has no valid id; skipped");
        return 0;
    }
    memset(&rec, 0, sizeof rec);
    memcpy(rec.id, id, APIKEY_ID_LEN);
    snprintf(rec.account, sizeof rec.account, "?");
    syncd_say("key %s: its row in the store of record is malformed; hosts answer unavailable for it", rec.id);
    return replica_db_put(&d->rep, &rec);
}

static void drop(syncd *d, const char *what, const char *msg)
{
    if (!d->said_down)
        syncd_say("the store of record: %s: %s; trying again every second", what, one_line(msg));
    d->said_down = 1;
    PQfinish(d->conn);
    d->conn = NULL;
}

static int run_ok(syncd *d, PGresult *res, const char *what)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 1;
    drop(d, what, res ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
    PQclear(res);
    return 0;
}

/* The whole store, in one snapshot with the log's position. */
static int full_copy(syncd *d)
{
    int64_t start = mono_ms(), n = 0;
    PGresult *res = PQexec(d->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (!run_ok(d, res, "starting the full copy"))
        return -1;
    PQclear(res);
    res = PQexecParams(d->conn, "SELECT " Q_LAST, 0, NULL, NULL, NULL, NULL, 1);
    if (!run_ok(d, res, "reading the change log"))
        return -1;
    int64_t at = be64(res, 0, 0);
    PQclear(res);
    res = PQexec(d->conn, "DECLARE apikey_copy BINARY CURSOR FOR SELECT " SQL_COLS_NOW " FROM " SQL_TABLE_NOW
                          " ORDER BY seq");
    if (!run_ok(d, res, "copying the keys"))
        return -1;
    PQclear(res);
    if (replica_db_begin(&d->rep, 1) != 0)
        return -1;
    for (;;) {
        res = PQexec(d->conn, "FETCH 10000 FROM apikey_copy");
        if (!run_ok(d, res, "copying the keys")) {
            replica_db_rollback(&d->rep);
            return -1;
        }
        int rows = PQntuples(res);
        for (int i = 0; i < rows; i++)
            if (apply_row(d, res, i, 0) != 0) {
                PQclear(res);
                replica_db_rollback(&d->rep);
                return -1;
            }
        PQclear(res);
        n += rows;
        if (rows < FETCH_ROWS)
            break;
    }
    PQclear(PQexec(d->conn, "COMMIT"));
    if (replica_db_commit(&d->rep, at) != 0)
        return -1;
    replica_db_compact(&d->rep);
    int64_t ms = mono_ms() - start;
    syncd_say("full copy: %lld keys at change %lld in %lld.%03lld s", (long long)n, (long long)at,
              (long long)(ms / 1000), (long long)(ms % 1000));
    return 0;
}

/* One read of the log and the batch it gave applied: the number of
 * changes (BATCH or more: read again at once), or -1. */
static PGresult *read_changes(syncd *d, const char *from, PGresult **used);
static void uses_done(syncd *d, PGresult *used);
static int apply_changes(syncd *d, PGresult *res);
static int follow(syncd *d)
{
    char from[24];
    snprintf(from, sizeof from, "%lld", (long long)d->rep.applied);
    PGresult *used = NULL;
    PGresult *res = read_changes(d, from, &used);
    int got = apply_changes(d, res);
    if (used)
        uses_done(d, used);
    return got;
}

/* The read's rows applied to the replica: as follow. */
static int apply_changes(syncd *d, PGresult *res)
{
    if (!run_ok(d, res, "reading the change log"))
        return -1;
    int rows = PQntuples(res);
    if (rows < 1 || PQnfields(res) != C_KEY + SQL_NCOLS) {
        PQclear(res);
        syncd_say("the store of record's change log does not read as this build expects");
        return -1;
    }
    int64_t trimmed = be64(res, 0, C_TRIMMED), last = be64(res, 0, C_LAST);
    if (trimmed > d->rep.applied || last < d->rep.applied) {
        PQclear(res);
        syncd_say(trimmed > d->rep.applied
                      ? "the change log was trimmed past this replica's position (change %lld): copying the whole store again"
                      : "the change log ends before this replica's position (change %lld; another or a restored database): copying the whole store again",
                  (long long)d->rep.applied);
        return full_copy(d) == 0 ? BATCH : -1;
    }
    if (PQgetisnull(res, 0, C_CHANGE)) {
        PQclear(res);
        return 0;
    }
    int64_t seq = d->rep.applied;
    int bad = replica_db_begin(&d->rep, 0);
    for (int i = 0; i < rows && !bad; i++) {
        seq = be64(res, i, C_CHANGE);
        const char *id = PQgetvalue(res, i, C_CHANGED);
        if (PQgetisnull(res, i, C_CHANGED) || !valid_id(id, PQgetlength(res, i, C_CHANGED)))
            /* Names no key a host could check: nothing to apply. */
            syncd_say("change %lld: malformed (no key id); skipped", (long long)seq);
        else if (PQgetisnull(res, i, C_KEY))
            bad = replica_db_delete(&d->rep, id);
        else
            bad = apply_row(d, res, i, C_KEY);
    }
    PQclear(res);
    if (bad)
        replica_db_rollback(&d->rep);
    return bad || replica_db_commit(&d->rep, seq) != 0 ? -1 : rows;
}

/* A pooler answers with its own backend key: LISTEN then reaches a server
 * session that another client may hold when the notification comes
 * (pgbouncer's transaction pooling drops it). */
static void listen_or_say(syncd *d)
{
    PGresult *res = PQexec(d->conn, "LISTEN " PGSQL_CHANNEL);
    PQclear(res);
    res = PQexecParams(d->conn, "SELECT pg_backend_pid()::text", 0, NULL, NULL, NULL, NULL, 0);
    int direct = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                 atoi(PQgetvalue(res, 0, 0)) == PQbackendPID(d->conn);
    PQclear(res);
    /* The session's plan_cache_mode: the read's plan would otherwise go
     * back to one planned at every read once ANALYZE finds the few newest
     * changes cheaper to read than the generic estimate (the other
     * statements here run at most once a second). A failure leaves the
     * unnamed read. */
    d->prepared = 0;
    if (direct) {
        res = PQexec(d->conn, "SET plan_cache_mode = force_generic_plan");
        int set = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        res = set ? PQprepare(d->conn, READ_NAME, Q_CHANGES, 1, NULL) : NULL;
        d->prepared = res && PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!direct && !d->said_pooler)
        syncd_say("the store of record is reached through a connection pooler, where notifications may be"
                  " lost (pgbouncer's transaction pooling drops them): reading the change log every second");
    d->said_pooler |= !direct;
}

/* The log exists once a writer of this build has written: make it so
 * through the store backend's own write (which creates it), if the
 * account may write. */
static int ensure_log(syncd *d)
{
    PGresult *res = PQexecParams(d->conn, PGSQL_LOG_PRESENT, 0, NULL, NULL, NULL, NULL, 0);
    if (!run_ok(d, res, "reading the change log"))
        return -1;
    int present = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (present)
        return 0;
    store_binding b;
    char err[512];
    int st = store_bind(d->cfg.store, 1, &b, err, sizeof err);
    if (st == 0) {
        st = b.ops->begin(b.handle);
        if (st == APIKEY_ST_OK)
            st = b.ops->commit(b.handle);
        snprintf(err, sizeof err, "%s", core_store_line());
        store_unbind(&b);
    }
    if (st != 0) {
        syncd_say("the store of record has no change log and creating it failed (%s); any write by"
                  " apikey of this release creates it", err);
        return -1;
    }
    return 0;
}

/* libpq's notices (the server's "terminating connection" before a
 * restart) span lines; the failure that follows is said in one. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int connect_db(syncd *d)
{
    /* A server that stops answering on TCP (a partition, not a refusal)
     * is noticed by the kernel within about 10 s instead of never; the
     * conninfo's own values come after these and win. */
    const char *keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
                          "tcp_user_timeout", "dbname", "client_encoding", "fallback_application_name", NULL};
    const char *vals[] = {"5", "5", "2", "3", "10000", d->conninfo, "UTF8", "apikey-syncd", NULL};
    d->conn = PQconnectdbParams(keys, vals, 1);
    if (!d->conn || PQstatus(d->conn) != CONNECTION_OK) {
        drop(d, "cannot connect", d->conn ? PQerrorMessage(d->conn) : "out of memory");
        return -1;
    }
    PQsetNoticeProcessor(d->conn, quiet, NULL);
    if (ensure_log(d) != 0) {
        PQfinish(d->conn);
        d->conn = NULL;
        return -1;
    }
    listen_or_say(d);
    if (d->said_down)
        syncd_say("the store of record: connected again");
    d->said_down = 0;
    return 0;
}

/* REPLICA_USES in the folder, writable by the folder's group (hosts that
 * are not root tell their uses through it). */
static void open_uses(syncd *d)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct stat dir, sock;
    d->uses_fd = -1;
    if (snprintf(a.sun_path, sizeof a.sun_path, "%s/" REPLICA_USES, d->cfg.replica) >= (int)sizeof a.sun_path ||
        stat(d->cfg.replica, &dir) != 0)
        return;
    unlink(a.sun_path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || chmod(a.sun_path, 0660) != 0 ||
        stat(a.sun_path, &sock) != 0 || (sock.st_gid != dir.st_gid && chown(a.sun_path, (uid_t)-1, dir.st_gid) != 0)) {
        syncd_say("%s: %s; last-used times of this host are not carried", a.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    d->uses_fd = fd;
}

/* "<id> <seconds>\n" datagrams into the table (the latest time per key);
 * anything else is dropped. A full table is carried at once. */
static void carry_uses(syncd *d);
static void receive_uses(syncd *d)
{
    char m[64];
    ssize_t n;
    int64_t limit = replica_now_ms() / 1000 + 300;
    while (d->uses_fd >= 0 && (n = recv(d->uses_fd, m, sizeof m - 1, MSG_DONTWAIT)) >= 0) {
        m[n] = '\0';
        char *end;
        if (n < APIKEY_ID_LEN + 3 || m[APIKEY_ID_LEN] != ' ' || !valid_id(m, APIKEY_ID_LEN))
            continue;
        long long when = strtoll(m + APIKEY_ID_LEN + 1, &end, 10);
        if (strcmp(end, "\n") != 0 || when <= 0 || when > limit)
            continue;
        if (uses_add(&d->uses, m, when) != 0) {
            carry_uses(d);
            uses_add(&d->uses, m, when); /* dropped if the carry failed */
        }
    }
}

/* Q_USES's two arrays of the table's uses ("{id,...}", "{seconds,...}"),
 * or -1 (out of memory: carried at a later read). */
static int uses_arrays(const syncd *d, char **idsp, char **timesp)
{
    size_t cap = d->uses.n * (APIKEY_ID_LEN + 24) + 4;
    char *ids = malloc(cap), *times = malloc(cap);
    if (!ids || !times) {
        free(ids);
        free(times);
        return -1;
    }
    size_t a = 0, b = 0;
    for (size_t i = 0; i < USES_SLOTS; i++) {
        if (!d->uses.slot[i].id[0])
            continue;
        a += (size_t)snprintf(ids + a, cap - a, "%c%s", a ? ',' : '{', d->uses.slot[i].id);
        b += (size_t)snprintf(times + b, cap - b, "%c%lld", b ? ',' : '{', (long long)d->uses.slot[i].when);
    }
    snprintf(ids + a, cap - a, "}");
    snprintf(times + b, cap - b, "}");
    *idsp = ids;
    *timesp = times;
    return 0;
}

/* Carried: the table emptied. Refused by the server (a permission, a
 * trigger of the operator's): said once until a carry succeeds, the uses
 * kept for the next, the session kept: last use is best effort, and
 * dropping the session for it cost a reconnection and a LISTEN a second.
 * A session that failed is dropped, as for any statement. */
static void uses_done(syncd *d, PGresult *used)
{
    d->uses_sent = mono_ms();
    if (PQresultStatus(used) == PGRES_COMMAND_OK) {
        if (d->said_uses)
            syncd_say("last-used times: recorded again");
        d->said_uses = 0;
        uses_clear(&d->uses);
    } else if (!used || !d->conn || PQstatus(d->conn) != CONNECTION_OK) {
        run_ok(d, used, "recording last-used times");
        return;
    } else if (!d->said_uses) {
        syncd_say("the store of record refused last-used times: %s; kept, tried again every second",
                  one_line(PQresultErrorMessage(used)));
        d->said_uses = 1;
    }
    PQclear(used);
}

/* A full table, at once (receive_uses); otherwise uses go with a read. */
static void carry_uses(syncd *d)
{
    char *ids, *times;
    if (!d->uses.n || !d->conn || uses_arrays(d, &ids, &times) != 0)
        return;
    const char *vals[2] = {ids, times};
    PGresult *res = PQexecParams(d->conn, Q_USES, 2, NULL, vals, NULL, NULL, 0);
    free(ids);
    free(times);
    uses_done(d, res);
}

/* One statement of a pipeline and its sync point: its result (NULL when
 * the connection failed), the NULL that ends it and the sync's consumed. */
static PGresult *pipeline_result(PGconn *conn)
{
    PGresult *res = PQgetResult(conn);
    for (int i = 0; res && i < 3; i++) {
        PGresult *r = PQgetResult(conn);
        int sync = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    return res;
}

/* The changes after from. The uses due (at most once a second) go ahead of
 * the read in one pipeline, each with its own sync point (a refused carry
 * does not abort the read): a round trip of its own held the next read
 * back, so that on a host 50 ms from the store of record a revocation
 * whose notification came meanwhile was refused after twice the delay
 * (bench/fleet.sh's distant replica, p99 102.6 ms). *used: the uses'
 * result, NULL when none went. */
static PGresult *read_changes(syncd *d, const char *from, PGresult **used)
{
    const char *vals[1] = {from};
    char *ids, *times;
    if (!d->uses.n || mono_ms() - d->uses_sent < POLL_MS || uses_arrays(d, &ids, &times) != 0)
        return d->prepared ? PQexecPrepared(d->conn, READ_NAME, 1, vals, NULL, NULL, 1)
                           : PQexecParams(d->conn, Q_CHANGES, 1, NULL, vals, NULL, NULL, 1);
    const char *uvals[2] = {ids, times};
    int sent = PQenterPipelineMode(d->conn) &&
               PQsendQueryParams(d->conn, Q_USES, 2, NULL, uvals, NULL, NULL, 0) && PQpipelineSync(d->conn) &&
               (d->prepared ? PQsendQueryPrepared(d->conn, READ_NAME, 1, vals, NULL, NULL, 1)
                            : PQsendQueryParams(d->conn, Q_CHANGES, 1, NULL, vals, NULL, NULL, 1)) &&
               PQpipelineSync(d->conn);
    free(ids);
    free(times);
    *used = sent ? pipeline_result(d->conn) : NULL;
    PGresult *res = *used ? pipeline_result(d->conn) : NULL;
    if (!PQexitPipelineMode(d->conn)) {
        /* Results left unread: the session is in no state for the next. */
        PQclear(res);
        res = NULL;
    }
    if (!*used)
        d->uses_sent = mono_ms(); /* not sent: tried again in a second */
    return res;
}

/* Until the next notification, or POLL_MS from start (µs, when the last
 * read began); after a notification, until READ_GAP_US from start. */
static void wait_for_change(syncd *d, int64_t start)
{
    for (;;) {
        PGnotify *n;
        int woken = 0;
        while ((n = PQnotifies(d->conn))) {
            woken = 1;
            PQfreemem(n);
        }
        int64_t gap = start + READ_GAP_US - mono_us();
        if (woken && gap > 0 && !stopping) {
            struct timespec s = {0, (long)gap * 1000};
            nanosleep(&s, NULL);
        }
        long left = POLL_MS - (long)((mono_us() - start) / 1000);
        if (woken || left <= 0 || stopping)
            return;
        struct pollfd p[2] = {{.fd = PQsocket(d->conn), .events = POLLIN},
                              {.fd = d->uses_fd, .events = POLLIN}};
        if (poll(p, 2, (int)left) <= 0)
            return;
        if (p[1].revents)
            receive_uses(d);
        if (!p[0].revents)
            continue;
        if (!PQconsumeInput(d->conn)) {
            drop(d, "connection lost", PQerrorMessage(d->conn));
            return;
        }
    }
}

static void run(syncd *d)
{
    while (!stopping) {
        int64_t start = mono_us();
        if (!d->conn && connect_db(d) != 0) {
            struct timespec s = {1, 0};
            nanosleep(&s, NULL);
            continue;
        }
        int64_t at = replica_now_ms();
        int got = d->rep.applied < 0 ? (full_copy(d) == 0 ? BATCH : -1) : follow(d);
        if (got < 0) {
            /* The replica is not touched and no contact is recorded: hosts
             * stop trusting it after replica_max_lag. */
            PQfinish(d->conn);
            d->conn = NULL;
            continue;
        }
        if (got >= BATCH)
            continue;
        /* Not after every batch: under a stream of writes that was a file
         * written and renamed per read, and hosts read the line only when
         * the time it gave runs out. */
        if (mono_ms() - d->contact_written >= CONTACT_EVERY_MS) {
            replica_db_contact(&d->rep, at);
            d->contact_written = mono_ms();
        }
        wait_for_change(d, start);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (o == 'c') {
            config = optarg;
        } else {
            fprintf(o == 'h' ? stdout : stderr, "usage: apikey-syncd [--config FILE]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "usage: apikey-syncd [--config FILE]\n");
        return 2;
    }
    static syncd d; /* the uses table is large */
    char err[512];
    config = core_config_path(config, 0);
    if (config_load(config, &d.cfg, err, sizeof err) != 0) {
        syncd_say("%s", err);
        return 1;
    }
    if (strncmp(d.cfg.store, "pgsql:", 6) != 0 || !d.cfg.replica) {
        syncd_say("%s: needs store = pgsql:... (the store of record) and replica = FOLDER", config);
        return 1;
    }
    d.conninfo = d.cfg.store + 6;
    /* As the pgsql store: no password where apikey.conf is readable. */
    PQconninfoOption *ci = PQconninfoParse(d.conninfo, NULL);
    int has_password = 0;
    for (PQconninfoOption *opt = ci; opt && opt->keyword; opt++)
        has_password |= strcmp(opt->keyword, "password") == 0 && opt->val && *opt->val;
    PQconninfoFree(ci);
    if (!ci || has_password) {
        syncd_say("%s: the store's conninfo is %s", config,
                  ci ? "refused: it holds a password (use a pgpass file)" : "malformed");
        return 1;
    }
    umask(027);
    if (replica_db_open(&d.rep, d.cfg.replica) != 0)
        return 1;
    open_uses(&d);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stderr, NULL, _IOLBF, 0);
    run(&d);
    PQfinish(d.conn);
    if (d.uses_fd >= 0)
        close(d.uses_fd);
    replica_db_close(&d.rep);
    config_free(&d.cfg);
    return 0;
}
