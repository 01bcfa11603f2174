/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The SQLite store: one database file in WAL mode, so a reader never waits
 * for a writer (an authentication answers while `apikey` holds a write
 * transaction), and a writer's BEGIN IMMEDIATE serialises writers across
 * processes. Every statement is prepared once per handle with bound
 * parameters. synchronous=FULL: a commit that returned is on disk.
 *
 * The tables are those of the PostgreSQL store, and carry their version, so
 * a store made by a newer build is refused rather than misread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../store_wait.h"
#include "apikey_store.h"
#include "../../common/hot_path.h"
#include "../../common/id_hash.h"
#include "../sql/sql_schema.h"

#define EXPORT __attribute__((visibility("default")))
#define WRITER_WAIT_MS 10000
#define WAL_KEEP_BYTES (256 * 1024)

#define P(n) "?" #n
static const char *const migrations[SQL_SCHEMA_VERSION] = SQL_MIGRATIONS("INTEGER PRIMARY KEY", "BLOB", "INTEGER");

enum { Q_LOOKUP, Q_EACH, Q_EACH_ACCOUNT, Q_TOUCH, Q_INSERT, Q_UPDATE, Q_PRESENT, Q_COUNT };
/* A miss reads and decodes a row as a hit does, so an unknown id costs
 * what a wrong secret costs (one index seek and one row either way; a
 * UNION that also covered an id after the last one cost every hit 6%: see
 * sq_lookup). */
#define READS(T, C)                                                                              \
    [Q_LOOKUP] = SQL_LOOKUP_AFTER(P, T, C), [Q_EACH] = SQL_EACH(T, C),                           \
    [Q_EACH_ACCOUNT] = SQL_EACH_ACCOUNT(P, T, C),                                                \
    [Q_TOUCH] = "UPDATE " T " SET last_used = ?2 WHERE id = ?1 AND last_used < ?2"
/* The statements of each layout (version - SQL_SCHEMA_OLDEST): a store of
 * an older one is only read (and touched) until a write upgrades it. */
static const char *const queries[SQL_LAYOUTS][Q_COUNT] = {
    {READS(SQL_TABLE_1, SQL_COLS_1)},
    {READS(SQL_TABLE_2, SQL_COLS_2)},
    {READS(SQL_TABLE_3, SQL_COLS_3), [Q_INSERT] = SQL_INSERT(P), [Q_UPDATE] = SQL_UPDATE(P),
     [Q_PRESENT] = SQL_PRESENT(P)},
};
#undef READS
#undef P

/* Lookups run in several threads at once (APIKEY_STORE_CONCURRENT_LOOKUP),
 * and one SQLite connection runs one statement at a time: each lookup takes
 * a free reader. Reader 0 is the main connection (the core never runs
 * anything else beside a lookup); the others open only when threads meet,
 * so a single-threaded host keeps one connection. */
#define READERS 4
typedef struct reader {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *lookup;
    int layout; /* the schema version lookup was prepared for; 0: none */
    int read_once; /* a lookup ran: its WAL index may be looked at */
} reader;

typedef struct answers answers;

typedef struct sstore {
    const apikey_store_host *host;
    answers *cache; /* see "Answers kept" below; NULL: none */
    char *path;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    int layout; /* the schema version q was prepared for; 0: none */
    int open_flags;
    reader rd[READERS];
    int in_txn;
    int wrote; /* committed a write transaction: empty the WAL at close */
} sstore;

/* One line for the operator; the message never holds a key or a hash.
 * Out of memory is the core's to say (it adds that line itself): saying it
 * here too would make two. */
static int fail_on(sstore *s, sqlite3 *db, const char *what)
{
    int code = db ? sqlite3_errcode(db) : SQLITE_ERROR;
    if (code == SQLITE_NOMEM)
        return APIKEY_ST_NOMEM;
    s->host->log_error("store sqlite:%s: %s: %s", s->path, what, db ? sqlite3_errmsg(db) : "cannot open");
    return APIKEY_ST_UNAVAILABLE;
}

static int fail(sstore *s, const char *what)
{
    return fail_on(s, s->db, what);
}

static int exec(sstore *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? APIKEY_ST_OK : fail(s, sql);
}

/* Switching a fresh file to WAL takes an exclusive lock, and SQLite answers
 * BUSY at once, without its busy handler, when another process opening the
 * same new store holds a lock meanwhile (four first writers at once lost
 * about one in thirty): wait for it as the busy timeout would. */
static int wal_mode(sstore *s)
{
    for (int waited = 0;; waited += 5) {
        int rc = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return APIKEY_ST_OK;
        if ((rc & 0xff) != SQLITE_BUSY || waited >= WRITER_WAIT_MS)
            return fail(s, "PRAGMA journal_mode = WAL");
        sqlite3_sleep(5);
    }
}

/* NULL when the statements could not be prepared for the store's layout. */
static sqlite3_stmt *stmt(sstore *s, int which)
{
    sqlite3_stmt *st = s->q[which];
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return st;
}

/* A row into a record: -1 when a value has the wrong type or does not fit. */
static int decode_row(sqlite3_stmt *st, apikey_record *out)
{
    sql_value v[SQL_NCOLS];
    for (int c = 0; c < SQL_NCOLS; c++) {
        v[c] = (sql_value){.kind = SQL_OTHER};
        switch (sqlite3_column_type(st, c)) {
        case SQLITE_TEXT:
            v[c] = (sql_value){.kind = SQL_TEXT, .p = sqlite3_column_text(st, c)};
            break;
        case SQLITE_BLOB:
            v[c] = (sql_value){.kind = SQL_BYTES, .p = sqlite3_column_blob(st, c)};
            break;
        case SQLITE_INTEGER:
            v[c] = (sql_value){.kind = SQL_INT64, .i = sqlite3_column_int64(st, c)};
            continue; /* no length: sqlite3_column_bytes would convert it to text */
        default:
            continue;
        }
        /* After the text or blob, which it must not convert. NULL text is
         * a failed allocation; a NULL blob has no bytes. */
        v[c].len = (size_t)sqlite3_column_bytes(st, c);
        if (!v[c].p && (v[c].kind == SQL_TEXT || v[c].len))
            return -1;
    }
    return sql_decode_record(v, out);
}

/* A row that does not decode is a corrupt store. */
static int read_row(sstore *s, sqlite3_stmt *st, apikey_record *out)
{
    if (decode_row(st, out) == 0)
        return APIKEY_ST_OK;
    s->host->log_error("store sqlite:%s: a malformed key record", s->path);
    return APIKEY_ST_UNAVAILABLE;
}

static void bind_record(sqlite3_stmt *st, const apikey_record *r)
{
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->scopes, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, r->hash, APIKEY_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->created);
    sqlite3_bind_int64(st, 7, r->expires);
    sqlite3_bind_int64(st, 8, r->last_used);
    sqlite3_bind_int64(st, 9, r->revoked);
    sqlite3_bind_text(st, 10, r->allow_from, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, r->rate_limit);
    sqlite3_bind_int64(st, 12, r->rate_period);
    sqlite3_bind_int64(st, 13, r->rate_burst);
}

/* On db, one of the handle's connections. */
static int schema_version(sstore *s, sqlite3 *db, int *version)
{
    sqlite3_stmt *st;
    *version = -1;
    if (sqlite3_prepare_v2(db, "SELECT version FROM apikey_schema", -1, &st, NULL) != SQLITE_OK) {
        /* No such table: a fresh (or foreign) database. */
        int missing = strstr(sqlite3_errmsg(db), "no such table") != NULL;
        return missing ? APIKEY_ST_NOTFOUND : fail_on(s, db, "reading its schema");
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? APIKEY_ST_OK : fail_on(s, db, "reading its schema");
}

/* The version a reader can use (OK), else UNAVAILABLE, logged. */
static int readable_version(sstore *s, sqlite3 *db, int *version)
{
    int st = schema_version(s, db, version);
    if (st != APIKEY_ST_OK && st != APIKEY_ST_NOTFOUND)
        return st;
    char where[4200];
    snprintf(where, sizeof where, "sqlite:%s", s->path);
    return sql_schema_check(s->host, where, *version);
}

static int prepare(sstore *s, sqlite3 *db, int version, int which, sqlite3_stmt **out)
{
    const char *sql = queries[version - SQL_SCHEMA_OLDEST][which];
    if (!sql || sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) == SQLITE_OK)
        return APIKEY_ST_OK;
    return fail_on(s, db, "preparing a statement");
}

/* The main connection's statements, for a store at version (readable). */
static int prepare_main(sstore *s, int version)
{
    s->layout = 0;
    int st = APIKEY_ST_OK;
    for (int i = 0; i < Q_COUNT; i++) {
        sqlite3_finalize(s->q[i]);
        s->q[i] = NULL;
        if (st == APIKEY_ST_OK)
            st = prepare(s, s->db, version, i, &s->q[i]);
    }
    if (st == APIKEY_ST_OK)
        s->layout = version;
    return st;
}

static int prepare_reader(sstore *s, reader *r, int version)
{
    sqlite3_finalize(r->lookup);
    r->lookup = NULL;
    int st = prepare(s, r->db, version, Q_LOOKUP, &r->lookup);
    r->layout = st == APIKEY_ST_OK ? version : 0;
    return st;
}

/* After a read failed: whether a writer moved the store to another layout
 * since the connection's statements were prepared (their table is gone,
 * see SQL_MIGRATIONS), and they are now prepared for the new one, so the
 * read may run again once. r is the reader that failed (rd[0]: the main
 * connection). */
static int follow_layout(sstore *s, reader *r)
{
    int main = r == &s->rd[0], v;
    if (readable_version(s, main ? s->db : r->db, &v) != APIKEY_ST_OK ||
        v == (main ? s->layout : r->layout))
        return 0;
    return (main ? prepare_main(s, v) : prepare_reader(s, r, v)) == APIKEY_ST_OK;
}

/* A database without our schema that holds tables is someone else's. */
static int is_empty(sstore *s)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM sqlite_master LIMIT 1", -1, &st, NULL) != SQLITE_OK)
        return fail(s, "reading its tables");
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return APIKEY_ST_OK;
    if (rc != SQLITE_ROW)
        return fail(s, "reading its tables");
    s->host->log_error("store sqlite:%s: not an apikey store (it holds other tables)", s->path);
    return APIKEY_ST_UNAVAILABLE;
}

/* Bring the schema to SQL_SCHEMA_VERSION, and the statements with it,
 * inside the write transaction (BEGIN IMMEDIATE), so that of several first
 * writers one migrates and the others find it done; the migration commits
 * or rolls back with the write. */
static int upgrade(sstore *s)
{
    int v;
    int st = schema_version(s, s->db, &v);
    if (st == APIKEY_ST_NOTFOUND && (st = is_empty(s)) == APIKEY_ST_OK)
        v = 0;
    for (; st == APIKEY_ST_OK && v < SQL_SCHEMA_VERSION; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "UPDATE apikey_schema SET version = %d", v + 1);
        st = exec(s, migrations[v]);
        if (st == APIKEY_ST_OK)
            st = exec(s, bump);
    }
    if (st == APIKEY_ST_OK) {
        char where[4200];
        snprintf(where, sizeof where, "sqlite:%s", s->path);
        st = sql_schema_newer(s->host, where, v);
    }
    /* A rollback may undo a migration under statements prepared for it:
     * they then fail, and follow_layout prepares them for the old one. */
    if (st == APIKEY_ST_OK && s->layout != SQL_SCHEMA_VERSION)
        st = prepare_main(s, SQL_SCHEMA_VERSION);
    return st;
}

static int sq_begin(void *handle)
{
    sstore *s = handle;
    int st = exec(s, "BEGIN IMMEDIATE");
    if (st != APIKEY_ST_OK)
        return st;
    st = upgrade(s);
    if (st != APIKEY_ST_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    s->in_txn = 1;
    return st;
}

static int sq_commit(void *handle);

/* A store without a schema gets one when create; an older one stays as it
 * is until the first write (a read never needs the write lock: an admin
 * command that only reads, list, must not wait behind a writer). */
static int open_schema(sstore *s, int create)
{
    int v, st = schema_version(s, s->db, &v);
    if (st == APIKEY_ST_NOTFOUND && create && (st = sq_begin(s)) == APIKEY_ST_OK)
        st = sq_commit(s);
    if (st == APIKEY_ST_OK || st == APIKEY_ST_NOTFOUND)
        st = readable_version(s, s->db, &v);
    return st == APIKEY_ST_OK ? prepare_main(s, v) : st;
}

/* One file: it must exist (unless may_miss, or creating) and pass the
 * core's ownership and mode rules. */
static int check_one(sstore *s, const char *path, int create, int may_miss)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (create ? O_CREAT : 0),
                  0640);
    if (fd < 0 && may_miss && errno == ENOENT)
        return APIKEY_ST_OK;
    if (fd < 0) {
        s->host->log_error("store sqlite:%s: %s: %s", s->path, path,
                           errno == ELOOP ? "is a symbolic link; refusing it" : strerror(errno));
        return APIKEY_ST_UNAVAILABLE;
    }
    char why[512];
    int ok = s->host->check_file(fd, path, why, sizeof why) == 0;
    close(fd);
    if (!ok) {
        s->host->log_error("store sqlite:%s: %s", s->path, why);
        return APIKEY_ST_UNAVAILABLE;
    }
    return APIKEY_ST_OK;
}

/* The database and, when present, the side files SQLite would read with
 * it: a -wal or -journal planted by someone else is replayed into what the
 * store answers. All must pass the core's rules before SQLite opens them. */
static int check_path(sstore *s, int create)
{
    static const char *const sides[] = {"-wal", "-shm", "-journal"};
    int st = check_one(s, s->path, create, 0);
    for (size_t i = 0; st == APIKEY_ST_OK && i < sizeof sides / sizeof *sides; i++) {
        char side[4096];
        if (snprintf(side, sizeof side, "%s%s", s->path, sides[i]) >= (int)sizeof side)
            return APIKEY_ST_UNAVAILABLE;
        st = check_one(s, side, 0, 1);
    }
    return st;
}

/* Answers kept. A lookup on SQLite is a read transaction: locks taken and
 * released (two fcntl), and, for a host that may only read the store (the
 * WAL index then cannot be shared: SQLite reads the WAL again at each
 * transaction), eight preads and three stats more (bench/RESULTS.md). An
 * answer read once is kept, per process, while the store has not changed.
 *
 * What says it has not changed is the WAL index header: every commit in WAL
 * mode rewrites it (its change counter, last frame and checksums) in the
 * -shm file that SQLite maps in every connection, before the COMMIT returns.
 * It is read from the connection's own mapping (xShmMap of region 0 hands
 * back the pages SQLite already maps: no system call), both copies, as
 * SQLite reads it: copies that differ are a commit under way, and the
 * answer is read from SQLite. The store sets WAL mode and never leaves
 * it, so a change of the store is a change of this header (a store switched
 * out of WAL mode by hand under read-only hosts is not: doc/STORES.md).
 *
 * An answer is kept with the header seen before it was read, and used only
 * while the header still reads the same: a commit between the two makes the
 * next check read again. A revocation is refused at the first check after
 * the COMMIT returned. A miss (the neighbour's row, read as a hit's is) is
 * kept as a hit is, so an unknown id costs what a known one costs, cached or
 * not.
 *
 * Kept compact (the numbers and the five texts, about 130 bytes for a
 * usual key, where a whole apikey_record is 2,464), in up to 2,097,152
 * answers in sets of four, whose table is allocated 256 answers (8 KiB) at
 * a time as ids land in it: a host holds about what the keys it checks
 * take, as the JSON store's copy of its index does (doc/STORES.md), and
 * a host checking every key of a store of 1,000,000 answers from memory
 * (with 16,384 answers of whole records, each check there read SQLite:
 * two fcntl locks and a page's pread). Bounded: a flood of ids only
 * evicts, and at most twice as many records are kept as the store had
 * keys at open (ANSWERS_MIN at least), so a flood of unknown ids makes a
 * host hold about what checking every key would: the JSON store's bound. */
#define WAL_HDR 48
#define ANSWER_SET_BITS 19
#define ANSWER_SETS (1 << ANSWER_SET_BITS) /* of WAYS answers */
#define GROUP_SETS 64         /* the sets allocated at once */
#define ANSWER_LOCKS 64       /* a group's sets each under its own */
#define WAYS 4
#define ANSWERS_MIN 16384

/* A record as kept: its numbers, then id, account, name, scopes and
 * allow_from, each with its NUL. */
typedef struct packed {
    int64_t created, expires, last_used, revoked;
    uint32_t rate_limit, rate_period, rate_burst;
    uint16_t cap;              /* bytes of text[] allocated */
    uint16_t len[5];           /* of each text, NUL included */
    unsigned char hash[APIKEY_HASH_LEN];
    char text[];
} packed;

#define TEXT(f) {offsetof(apikey_record, f), sizeof((apikey_record *)0)->f}
static const struct {
    size_t at, size;
} texts[5] = {TEXT(id), TEXT(account), TEXT(name), TEXT(scopes), TEXT(allow_from)};
#undef TEXT

typedef struct answer {
    char id[APIKEY_ID_LEN]; /* the id asked */
    int state;              /* OK or NOTFOUND */
    uint64_t gen;           /* of the header it was read under */
    packed *rec;            /* what the lookup gave; NULL: empty */
} answer;

typedef struct group {
    answer e[GROUP_SETS * WAYS];
    unsigned char turn[GROUP_SETS]; /* the way a full set gives up next */
} group;

struct answers {
    pthread_mutex_t lock; /* what follows, to slot_lock */
    unsigned char seen[WAL_HDR];
    uint64_t gen; /* bumped when seen changes; answers of another are stale */
    int gen_ok;   /* gen is the store's as last read, at checked_ns */
    int64_t checked_ns;
    /* Read without the lock (fresh_gen): gen, and until when it holds
     * without a look at the file (0: look). */
    uint64_t fresh_gen;
    int64_t fresh_until_ns;
    int no_map;   /* SQLite does not map the header for this store's connections */
    int shm_fd;   /* -1: none (SQLite's mapping, or not yet opened) */
    struct stat shm_st; /* of shm_fd */
    pthread_mutex_t slot_lock[ANSWER_LOCKS]; /* set i under slot_lock[i % ANSWER_LOCKS] */
    group *g[ANSWER_SETS / GROUP_SETS];      /* NULL until an answer lands in it */
    size_t kept, limit; /* records allocated (atomic), and at most */
};

static void answers_free(answers *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < ANSWER_SETS / GROUP_SETS; i++) {
        for (size_t j = 0; a->g[i] && j < GROUP_SETS * WAYS; j++)
            free(a->g[i]->e[j].rec);
        free(a->g[i]);
    }
    for (size_t i = 0; i < ANSWER_LOCKS; i++)
        pthread_mutex_destroy(&a->slot_lock[i]);
    pthread_mutex_destroy(&a->lock);
    if (a->shm_fd >= 0)
        close(a->shm_fd);
    free(a);
}

/* The WAL index header as r's connection can read it into hdr (both
 * copies, as SQLite reads them): 1, or 0 when it cannot tell. A connection
 * that may write the -shm file has it mapped by SQLite, and it is read
 * there (xShmMap of region 0 hands back the pages already mapped: no system
 * call). One that may only read it (a host reading the store through its
 * group) does not map it (SQLITE_READONLY_CANTINIT), and it is read from
 * the file: one pread, and a stat that it is still the store's -shm file
 * and not one replaced under it. */
static int wal_header(sstore *s, reader *r, unsigned char hdr[2 * WAL_HDR])
{
    sqlite3 *db = r == &s->rd[0] ? s->db : r->db;
    sqlite3_file *f = NULL;
    volatile void *p = NULL;
    answers *a = s->cache;
    /* Asked once: each refusal costs SQLite an fcntl. */
    if (!a->no_map && sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f &&
        f->pMethods && f->pMethods->iVersion >= 2 && f->pMethods->xShmMap &&
        f->pMethods->xShmMap(f, 0, 32768, 0, &p) == SQLITE_OK && p) {
        const volatile unsigned char *m = p;
        for (int i = 0; i < 2 * WAL_HDR; i++)
            hdr[i] = m[i];
        return 1;
    }
    a->no_map = 1;
    char shm[4200];
    struct stat now;
    snprintf(shm, sizeof shm, "%s-shm", s->path);
    if (a->shm_fd < 0) {
        a->shm_fd = open(shm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (a->shm_fd < 0)
            return 0;
        if (fstat(a->shm_fd, &a->shm_st) != 0) {
            close(a->shm_fd);
            a->shm_fd = -1;
            return 0;
        }
    }
    if (pread(a->shm_fd, hdr, 2 * WAL_HDR, 0) != 2 * WAL_HDR || stat(shm, &now) != 0 ||
        now.st_dev != a->shm_st.st_dev || now.st_ino != a->shm_st.st_ino) {
        close(a->shm_fd); /* opened again at the next check */
        a->shm_fd = -1;
        return 0;
    }
    return 1;
}

/* The generation of the store as r's connection sees it now, 0 when it
 * cannot tell (not in WAL mode, a commit under way). The header is read
 * again only when the last read began SQLITE_RECHECK_NS ago or more by the
 * recheck clock; sq_commit waits SQLITE_WRITER_WAIT_NS of that clock after
 * a COMMIT, so a check begun after it returned reads it (store_wait_for_hosts
 * says why). A writer that does not wait (the sqlite3 shell, apikey-syncd on
 * a replica) is seen within the recheck. 1 ms and 2 ms, the JSON index's: at
 * 0.2 ms an nginx worker paid the pread and the stat about one request in
 * five (bench/RESULTS.md, "SQLite: warm verify at 1,000,000 keys and
 * nginx"). A host that may write the store reads SQLite's mapping, with no
 * system call, but trusts it as long: read at every check, the header's
 * lock, SQLite's file control and the mapping's lookup were about 1,000
 * instructions a check and one lock shared by every thread (two threads
 * checked fewer keys a second than one). */
#define SQLITE_RECHECK_NS 1000000LL     /* 1 ms */
#define SQLITE_WRITER_WAIT_NS 2000000LL /* 2 ms */
static uint64_t store_gen(sstore *s, reader *r)
{
    answers *a = s->cache;
    if (!a)
        return 0;
    int64_t began = store_recheck_clock_ns();
    pthread_mutex_lock(&a->lock);
    uint64_t gen = 0;
    unsigned char hdr[2 * WAL_HDR];
    if (a->gen_ok && began - a->checked_ns < SQLITE_RECHECK_NS) {
        gen = a->gen;
    } else if (wal_header(s, r, hdr) && memcmp(hdr, hdr + WAL_HDR, WAL_HDR) == 0 && hdr[12]) {
        /* Copies that differ: a commit under way. isInit (byte 12) unset:
         * SQLite has yet to build the index. */
        if (!a->gen_ok || memcmp(a->seen, hdr, WAL_HDR) != 0) {
            memcpy(a->seen, hdr, WAL_HDR);
            a->gen++;

        }
        gen = a->gen;
        a->gen_ok = 1;
        a->checked_ns = began;
        __atomic_store_n(&a->fresh_gen, gen, __ATOMIC_RELEASE);
        __atomic_store_n(&a->fresh_until_ns, began + SQLITE_RECHECK_NS, __ATOMIC_RELEASE);
    } else {
        a->gen_ok = 0;
        __atomic_store_n(&a->fresh_until_ns, 0, __ATOMIC_RELEASE);

    }
    pthread_mutex_unlock(&a->lock);
    return gen;
}

/* store_gen's answer while it needs no look at the file, without its lock
 * or a reader (0: ask store_gen): a check answered from the kept answers
 * then takes one lock, its set's. The generation is stored before the
 * time it holds until, so a time read comes with its generation or a
 * later one. */
HOT_PATH static uint64_t fresh_gen(answers *a)
{
    int64_t until = __atomic_load_n(&a->fresh_until_ns, __ATOMIC_ACQUIRE);
    uint64_t gen = __atomic_load_n(&a->fresh_gen, __ATOMIC_ACQUIRE);
    return until && store_recheck_clock_ns() < until ? gen : 0;
}

/* Four ways a set: 1,000 keys in use rarely share one, where direct-mapped
 * slots left about 6% of them evicting each other at every check. */
HOT_PATH static size_t set_of(const char *id)
{
    return (size_t)id_hash_top(id, ANSWER_SET_BITS);
}

/* The set's ways, NULL when its group has none yet (make: allocated then,
 * NULL only out of memory). */
HOT_PATH static answer *ways_of(answers *a, size_t set, int make, unsigned char **turn)
{
    group **slot = &a->g[set / GROUP_SETS];
    group *g = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!g && make && (g = calloc(1, sizeof *g))) {
        group *none = NULL;
        /* Sets of one group are under different locks: one wins. */
        if (!__atomic_compare_exchange_n(slot, &none, g, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            free(g);
            g = none;
        }
    }
    if (!g)
        return NULL;
    if (turn)
        *turn = &g->turn[set % GROUP_SETS];
    return &g->e[(set % GROUP_SETS) * WAYS];
}

/* whole: every byte of out set, the texts' tails zeroed (lookup); else
 * (lookup_auth, the check's hot path) only the fields and their NULs, as
 * the JSON store's lookup does: zeroing the 2,464-byte record was 39
 * cache lines written at every check on a replica. */
HOT_PATH static void unpack(const packed *p, apikey_record *out, int whole)
{
    if (whole)
        memset(out, 0, sizeof *out);
    const char *t = p->text;
    for (int i = 0; i < 5; i++) {
        memcpy((char *)out + texts[i].at, t, p->len[i]);
        t += p->len[i];
    }
    /* The account is copied out whole into the caller's result: nothing
     * of an earlier stack frame behind its NUL. */
    if (!whole)
        memset(out->account + p->len[1], 0, sizeof out->account - p->len[1]);
    memcpy(out->hash, p->hash, APIKEY_HASH_LEN);
    out->created = p->created;
    out->expires = p->expires;
    out->last_used = p->last_used;
    out->revoked = p->revoked;
    out->rate_limit = p->rate_limit;
    out->rate_period = p->rate_period;
    out->rate_burst = p->rate_burst;
}

/* rec into *pp, reusing it when it is large enough: 0, or -1 out of memory. */
static int pack(const apikey_record *rec, packed **pp)
{
    uint16_t len[5];
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        /* A miss's record is the neighbour's, or (an empty store) not
         * filled at all: each text is cut at its field's end. */
        len[i] = (uint16_t)(strnlen((const char *)rec + texts[i].at, texts[i].size - 1) + 1);
        total += len[i];
    }
    packed *p = *pp;
    if (!p || p->cap < total) {
        free(p);
        *pp = p = malloc(sizeof *p + total);
        if (!p)
            return -1;
        p->cap = (uint16_t)total;
    }
    char *t = p->text;
    for (int i = 0; i < 5; i++) {
        p->len[i] = len[i];
        memcpy(t, (const char *)rec + texts[i].at, len[i] - 1u);
        t[len[i] - 1] = '\0';
        t += len[i];
    }
    memcpy(p->hash, rec->hash, APIKEY_HASH_LEN);
    p->created = rec->created;
    p->expires = rec->expires;
    p->last_used = rec->last_used;
    p->revoked = rec->revoked;
    p->rate_limit = rec->rate_limit;
    p->rate_period = rec->rate_period;
    p->rate_burst = rec->rate_burst;
    return 0;
}

/* The kept answer for id under gen into out: its state, or -1. */
HOT_PATH static int answer_get(answers *a, uint64_t gen, const char *id, apikey_record *out, int whole)
{
    size_t set = set_of(id);
    answer *ways = ways_of(a, set, 0, NULL);
    int st = -1;
    if (!ways)
        return st;
    pthread_mutex_lock(&a->slot_lock[set % ANSWER_LOCKS]);
    for (answer *e = ways; e < ways + WAYS; e++) {
        if (e->rec && e->gen == gen && memcmp(e->id, id, APIKEY_ID_LEN) == 0) {
            unpack(e->rec, out, whole);
            st = e->state;
            break;
        }
    }
    pthread_mutex_unlock(&a->slot_lock[set % ANSWER_LOCKS]);
    return st;
}

static void answer_put(answers *a, uint64_t gen, const char *id, int state, const apikey_record *rec)
{
    size_t set = set_of(id);
    unsigned char *turn;
    answer *ways = ways_of(a, set, 1, &turn), *e = NULL;
    if (!ways)
        return; /* out of memory: not kept */
    pthread_mutex_lock(&a->slot_lock[set % ANSWER_LOCKS]);
    /* The id's own way, else an empty or stale one, else, at one full
     * set's miss in four, the next in turn: five keys or more checked in
     * turn in one set would otherwise evict each other at every check
     * (at 1,000,000 keys, one in eight of them). */
    for (int w = 0; w < WAYS && !e; w++)
        if (ways[w].rec && memcmp(ways[w].id, id, APIKEY_ID_LEN) == 0)
            e = &ways[w];
    int room = __atomic_load_n(&a->kept, __ATOMIC_RELAXED) < a->limit;
    for (int w = 0; w < WAYS && !e; w++)
        if (ways[w].rec ? ways[w].gen != gen : room)
            e = &ways[w];
    if (!e && (*turn)++ % 4 == 0)
        e = &ways[*turn / 4 % WAYS];
    if (e && !e->rec)
        __atomic_fetch_add(&a->kept, 1, __ATOMIC_RELAXED);
    if (e && pack(rec, &e->rec) == 0) {
        memcpy(e->id, id, APIKEY_ID_LEN);
        e->gen = gen;
        e->state = state;
    } else if (e) {
        __atomic_fetch_sub(&a->kept, 1, __ATOMIC_RELAXED); /* out of memory: left empty */
    }
    pthread_mutex_unlock(&a->slot_lock[set % ANSWER_LOCKS]);
}

static off_t wal_bytes(const sstore *s)
{
    char wal[4096];
    struct stat st;
    if (snprintf(wal, sizeof wal, "%s-wal", s->path) >= (int)sizeof wal || stat(wal, &st) != 0)
        return 0;
    return st.st_size;
}

static void sq_close(void *handle)
{
    sstore *s = handle;
    answers_free(s->cache);
    for (int i = 0; i < READERS; i++) {
        sqlite3_finalize(s->rd[i].lookup);
        sqlite3_close(s->rd[i].db);
        pthread_mutex_destroy(&s->rd[i].lock);
    }
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    /* A long WAL makes every later connection re-read it to build its index
     * (with a 100,000-key batch: 30 ms per PAM login). A writer that leaves
     * one behind empties it; a small one is not worth the fsyncs. Best
     * effort: a busy reader keeps it. */
    if (s->wrote && wal_bytes(s) > WAL_KEEP_BYTES) {
        sqlite3_busy_timeout(s->db, 0);
        sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    }
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

/* How many answers a host keeps: twice the keys the store holds now (its
 * highest seq, creation order), ANSWERS_MIN at least. */
static size_t answers_limit(sstore *s)
{
    static const char *const tables[SQL_LAYOUTS] = {SQL_TABLE_1, SQL_TABLE_2, SQL_TABLE_3};
    char q[128];
    sqlite3_stmt *st;
    int64_t keys = 0;
    if (s->layout < SQL_SCHEMA_OLDEST)
        return ANSWERS_MIN;
    snprintf(q, sizeof q, "SELECT max(seq) FROM %s", tables[s->layout - SQL_SCHEMA_OLDEST]);
    if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            keys = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return keys > ANSWERS_MIN / 2 ? (size_t)keys * 2 : ANSWERS_MIN;
}

static int sq_open(const char *location, int create, const apikey_store_host *host, void **handle)
{
    if (apikey_store_host_check(host, "sqlite") != APIKEY_ST_OK)
        return APIKEY_ST_UNAVAILABLE;
    sstore *s = calloc(1, sizeof *s);
    if (!s)
        return APIKEY_ST_NOMEM;
    s->host = host;
    for (int i = 0; i < READERS; i++)
        pthread_mutex_init(&s->rd[i].lock, NULL);
    /* Without it (out of memory), every lookup reads SQLite: slower, as right. */
    if ((s->cache = calloc(1, sizeof *s->cache))) {
        s->cache->shm_fd = -1;
        pthread_mutex_init(&s->cache->lock, NULL);
        for (int i = 0; i < ANSWER_LOCKS; i++)
            pthread_mutex_init(&s->cache->slot_lock[i], NULL);
    }
    s->path = strdup(location);
    if (!s->path) {
        free(s);
        return APIKEY_ST_NOMEM;
    }
    if (location[0] != '/') {
        host->log_error("store sqlite:%s: the path must be absolute", location);
        sq_close(s);
        return APIKEY_ST_UNAVAILABLE;
    }
    int st = check_path(s, create);
    if (st != APIKEY_ST_OK) {
        sq_close(s);
        return st;
    }
    /* A reader that may not write (Squid's helpers, as proxy) opens read-only. */
    int flags = (create || access(location, W_OK) == 0) ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    s->open_flags = flags;
    if (sqlite3_open_v2(location, &s->db, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) !=
        SQLITE_OK) {
        st = fail(s, "cannot open");
        sq_close(s);
        return st;
    }
    sqlite3_extended_result_codes(s->db, 0);
    /* No checkpoint, with its fsyncs, at every close: the commit made the
     * write durable in the WAL, and sq_close empties a WAL that grew long. */
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    /* Keep -wal and -shm after the last writer closes: a reader that may not
     * create them (another user, through the group) can still open the store. */
    int persist = 1;
    sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    sqlite3_busy_timeout(s->db, WRITER_WAIT_MS);
    /* temp_store: no temporary file ever, so never a folder from
     * SQLITE_TMPDIR or TMPDIR, which a privileged host's caller may set. */
    st = exec(s, "PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY");
    if (st == APIKEY_ST_OK && flags == SQLITE_OPEN_READWRITE)
        st = wal_mode(s);
    if (st == APIKEY_ST_OK)
        st = open_schema(s, create);
    if (st != APIKEY_ST_OK) {
        sq_close(s);
        return st;
    }
    if (s->cache)
        s->cache->limit = answers_limit(s);
    *handle = s;
    return APIKEY_ST_OK;
}

/* Another connection for a reader: the file passes the same checks as at
 * open, since it may have been replaced since. */
static int open_reader(sstore *s, reader *r)
{
    int st = check_path(s, 0);
    if (st != APIKEY_ST_OK)
        return st;
    int v;
    if (sqlite3_open_v2(s->path, &r->db, s->open_flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(r->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL) != SQLITE_OK)
        st = fail_on(s, r->db, "opening a reader");
    else if ((st = readable_version(s, r->db, &v)) == APIKEY_ST_OK)
        st = prepare_reader(s, r, v);
    if (st != APIKEY_ST_OK) {
        sqlite3_close(r->db);
        r->db = NULL;
        return st;
    }
    sqlite3_db_config(r->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(r->db, WRITER_WAIT_MS);
    return APIKEY_ST_OK;
}

static reader *take_reader(sstore *s)
{
    for (int i = 0; i < READERS; i++)
        if (pthread_mutex_trylock(&s->rd[i].lock) == 0)
            return &s->rd[i];
    pthread_mutex_lock(&s->rd[0].lock);
    return &s->rd[0];
}

/* One lookup on r's connection; -1: its statement failed, which may mean
 * the store moved to another layout (follow_layout). */
static int lookup_on(sstore *s, reader *r, const char *id, apikey_record *out)
{
    /* Each use ends with a reset, and the one parameter is bound anew. */
    sqlite3_stmt *st = r == &s->rd[0] ? s->q[Q_LOOKUP] : r->lookup;
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        /* An id after the last one: the first key ("0" sorts before
         * every base62 id) is its neighbour. */
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, "0", -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    int res;
    /* The type first: reading a BLOB as text would convert it. */
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT &&
        strcmp((const char *)sqlite3_column_text(st, 0), id) == 0) {
        res = read_row(s, st, out);
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        /* The neighbour, decoded and dropped; whether it is sound is
         * its own check's business. */
        if (rc == SQLITE_ROW)
            (void)decode_row(st, out);
        else
            memset(out, 0, sizeof *out); /* an empty store: kept as it is */
        memset(out, 0, offsetof(apikey_record, account));
        res = APIKEY_ST_NOTFOUND;
    } else {
        res = rc == SQLITE_ERROR || rc == SQLITE_SCHEMA ? -1 : fail_on(s, sqlite3_db_handle(st), "reading a key");
    }
    sqlite3_reset(st);
    return res;
}

HOT_PATH static int lookup(void *handle, const char *id, apikey_record *out, int whole)
{
    sstore *s = handle;
    uint64_t fresh = s->cache ? fresh_gen(s->cache) : 0;
    int res = fresh ? answer_get(s->cache, fresh, id, out, whole) : -1;
    if (res >= 0)
        return res;
    reader *r = take_reader(s);
    res = APIKEY_ST_OK;
    if (r != &s->rd[0] && !r->db)
        res = open_reader(s, r);
    if (res == APIKEY_ST_OK) {
        uint64_t gen = r->read_once ? store_gen(s, r) : 0;
        if (!gen || (res = answer_get(s->cache, gen, id, out, whole)) < 0) {
            res = lookup_on(s, r, id, out);
            if (res == -1 && follow_layout(s, r))
                res = lookup_on(s, r, id, out);
            if (res == -1)
                res = fail_on(s, r == &s->rd[0] ? s->db : r->db, "reading a key");
            else if (gen && (res == APIKEY_ST_OK || res == APIKEY_ST_NOTFOUND))
                answer_put(s->cache, gen, id, res, out);
            /* SQLite has mapped the WAL index now, if it is in WAL mode. */
            r->read_once = 1;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return res;
}

static int sq_lookup(void *handle, const char *id, apikey_record *out)
{
    return lookup(handle, id, out, 1);
}

HOT_PATH static int sq_lookup_auth(void *handle, const char *id, apikey_record *out)
{
    return lookup(handle, id, out, 0);
}

/* The walk's statement and its first step. */
static int first_step(sstore *s, const char *account, sqlite3_stmt **st)
{
    *st = stmt(s, account ? Q_EACH_ACCOUNT : Q_EACH);
    if (!*st)
        return SQLITE_ERROR;
    if (account)
        sqlite3_bind_text(*st, 1, account, -1, SQLITE_STATIC);
    return sqlite3_step(*st);
}

static int sq_each(void *handle, const char *account, apikey_record_cb cb, void *arg)
{
    sstore *s = handle;
    sqlite3_stmt *st;
    int rc = first_step(s, account, &st);
    /* A failure before the first row may be the store's layout moving. */
    if ((rc == SQLITE_ERROR || rc == SQLITE_SCHEMA) && follow_layout(s, &s->rd[0]))
        rc = first_step(s, account, &st);
    if (!st)
        return fail(s, "reading keys");
    apikey_record rec;
    int res = APIKEY_ST_OK;
    for (; rc == SQLITE_ROW; rc = sqlite3_step(st)) {
        res = read_row(s, st, &rec);
        if (res == APIKEY_ST_OK)
            res = cb(&rec, arg);
        if (res != APIKEY_ST_OK)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        res = fail(s, "reading keys");
    sqlite3_reset(st);
    return res == APIKEY_ST_STOP ? APIKEY_ST_OK : res;
}

static int write_record(sstore *s, int which, const apikey_record *rec)
{
    sqlite3_stmt *st = stmt(s, which);
    bind_record(st, rec);
    int rc = sqlite3_step(st);
    int changed = sqlite3_changes(s->db);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT)
        return APIKEY_ST_CONFLICT;
    if (rc != SQLITE_DONE)
        return fail(s, which == Q_INSERT ? "adding a key" : "changing a key");
    if (which == Q_INSERT || changed == 1)
        return APIKEY_ST_OK;
    /* No row changed: the key is missing, or its revocation would change. */
    st = stmt(s, Q_PRESENT);
    sqlite3_bind_text(st, 1, rec->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? sql_unchanged(rc == SQLITE_ROW) : fail(s, "reading a key");
}

static int sq_insert(void *handle, const apikey_record *rec)
{
    return write_record(handle, Q_INSERT, rec);
}

static int sq_update(void *handle, const apikey_record *rec)
{
    return write_record(handle, Q_UPDATE, rec);
}

/* A COMMIT that failed syncing the WAL has already written its frames
 * there, commit mark included: this connection rolls back, but the next one
 * to rebuild the WAL index from the file (the first to open the store) would
 * find the transaction committed, though we said it failed. A transaction
 * written at the same place ends the WAL before them: their checksums no
 * longer chain. It changes nothing but must write a page (SQLite skips a
 * row rewritten with the same bytes), hence the two updates. Returns
 * whether that worked. */
static int overwrite_failed_commit(sstore *s)
{
    if (sqlite3_exec(s->db,
                     "BEGIN IMMEDIATE; UPDATE apikey_schema SET version = -version;"
                     " UPDATE apikey_schema SET version = -version; COMMIT",
                     NULL, NULL, NULL) == SQLITE_OK)
        return 1;
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return 0;
}

/* This process wrote the store: the next check reads the header again,
 * rather than trust the one read before the write for the rest of its
 * millisecond (a use recorded would otherwise be recorded again). */
static void answers_expire(answers *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->gen_ok = 0;
    __atomic_store_n(&a->fresh_until_ns, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&a->lock);
}

static int sq_commit(void *handle)
{
    sstore *s = handle;
    int st = APIKEY_ST_OK;
    s->in_txn = 0;
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int code = sqlite3_errcode(s->db);
        char why[256];
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(s->db));
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        int undone = overwrite_failed_commit(s);
        if (code == SQLITE_NOMEM && undone)
            return APIKEY_ST_NOMEM; /* the core says it */
        s->host->log_error("store sqlite:%s: COMMIT: %s%s", s->path, why,
                           undone ? "" : "; the change may still be there");
        return APIKEY_ST_UNAVAILABLE;
    }
    s->wrote = 1;
    answers_expire(s->cache);
    /* Other hosts trust the header they read for a while (see store_gen):
     * past it, before the writer says done. */
    store_wait_for_hosts(SQLITE_WRITER_WAIT_NS);
    return st;
}

static void sq_rollback(void *handle)
{
    sstore *s = handle;
    if (s->in_txn)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_txn = 0;
}

/* Best effort and never waiting: a busy writer means this use goes
 * unrecorded, and no fsync: losing the newest last-used time in a power cut
 * is cheaper than a disk flush inside an authentication. */
static int sq_touch(void *handle, const char *id, int64_t when)
{
    sstore *s = handle;
    sqlite3_stmt *st = stmt(s, Q_TOUCH);
    if (!st)
        return APIKEY_ST_UNAVAILABLE;
    sqlite3_busy_timeout(s->db, 0);
    sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, when);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    sqlite3_busy_timeout(s->db, WRITER_WAIT_MS);
    if (rc != SQLITE_DONE)
        return APIKEY_ST_UNAVAILABLE;
    if (sqlite3_changes(s->db))
        answers_expire(s->cache);
    return APIKEY_ST_OK;
}

/* The id's set of kept answers into the cache while the key is hashed: on
 * a replica at 100,000 keys it was a miss at nearly every check. Only
 * memory the handle holds; a group not made yet has nothing to fetch. */
HOT_PATH static void sq_prefetch(void *handle, const char *id)
{
    sstore *s = handle;
    if (!s->cache)
        return;
    size_t set = set_of(id);
    answer *ways = ways_of(s->cache, set, 0, NULL);
    if (ways) {
        __builtin_prefetch(ways);
        __builtin_prefetch((const char *)(ways + WAYS) - 1);
    }
}

static const apikey_store_ops sqlite_ops = {
    .size = sizeof(apikey_store_ops),
    .abi = APIKEY_STORE_ABI_VERSION,
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .lookup = sq_lookup,
    .each = sq_each,
    .begin = sq_begin,
    .insert = sq_insert,
    .update = sq_update,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .touch = sq_touch,
    .flags = APIKEY_STORE_CONCURRENT_LOOKUP | APIKEY_STORE_LOCAL,
    .prefetch = sq_prefetch,
    .lookup_auth = sq_lookup_auth,
};

EXPORT const apikey_store_ops *apikey_store_entry_v1(void)
{
    return &sqlite_ops;
}
