/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A fault injector for tests, preloaded into the real apikey command:
 * APIKEY_FAULT="write:3" makes the third call to write() fail, every other
 * call runs. When the run ends, the number of calls seen goes to
 * $APIKEY_FAULT_COUNT (a file), so the test knows how many call sites there
 * are to try in turn. The names are those of the table below: the system
 * calls the stores write through (SQLite's unix VFS calls pread64, pwrite64,
 * fdatasync, ftruncate64, fcntl64 locks, fstat64, mmap64 and unlink through
 * the PLT, so they are interposed like ours), the allocators, and SQLite's
 * own entry points.
 *
 * Allocations are counted only from the opening of $APIKEY_FAULT_AFTER
 * (the configuration file): OpenSSL's own initialisation, which comes
 * first, reports success after a failed allocation and then crashes, a
 * defect of OpenSSL 3.0 that no caller can guard against. Nor are they
 * failed inside dlopen: the constructors of libraries that libpq pulls in
 * (GnuTLS, through libldap) print "Error in GnuTLS initialization" to
 * stderr after a failed allocation and carry on, a second line that no
 * caller can stop.
 *
 * SQLite calls its own API through the PLT too (sqlite3_exec calls
 * sqlite3_prepare_v2 and sqlite3_step): only the outermost call counts, or
 * a failed inner step would be one sqlite3_exec ignores, a fault no real
 * database can produce. A failed call runs nothing, so the injector also
 * answers sqlite3_errcode and sqlite3_errmsg for that handle until its next
 * call, as SQLite would after a real failure.
 *
 * libpq (the pgsql store, which also loads it privately) fails the way a
 * server or a network does, so libpq itself produces the state and the
 * message the store then reads:
 *   PQconnectdbParams  the server cannot be reached: the real call made to a
 *                      socket folder that does not exist (CONNECTION_BAD,
 *                      libpq's own message naming ".../apikey-injected-fault")
 *   PQsendQuery,       the server refuses the statement: a statement that
 *   PQsendQueryParams, raises SQLSTATE 53100 (disk full) is sent instead, so
 *   PQsendPrepare,     nothing of the original runs and a transaction aborts
 *   PQsendQueryPrepared (the last two: the check's named statement)
 *   PQgetResult        the reply is lost after the server acted on it: the
 *                      result becomes a PGRES_FATAL_ERROR with no SQLSTATE and
 *                      the socket is shut down (on COMMIT: committed, yet the
 *                      client sees an error)
 *   PQconsumeInput     the connection drops while a reply is awaited
 *   send, recv         the same at the socket, on stream sockets only (not
 *                      syslog's datagrams): the call fails (EPIPE, ECONNRESET)
 *                      and the socket is shut down, as after a reset
 * libpq's allocations fail through malloc like any other (PQconnectdbParams
 * then answers NULL, libpq's out of memory). The store uses no PQexec,
 * PQprepare or PQexecPrepared; libpq calls none of these interposed
 * functions from inside another, but only the outermost counts anyway.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static char target[32];
static long nth = -1, seen;
static int armed, allocs_armed;
static int resolving; /* dlopen and dlsym allocate: never fail them */
static int loading;   /* inside the program's own dlopen: no allocation fails */

__attribute__((constructor)) static void init(void)
{
    const char *f = getenv("APIKEY_FAULT");
    if (!f)
        return;
    const char *colon = strchr(f, ':');
    if (!colon || (size_t)(colon - f) >= sizeof target)
        return;
    memcpy(target, f, (size_t)(colon - f));
    nth = atol(colon + 1);
    armed = 1;
}

__attribute__((destructor)) static void report(void)
{
    const char *out = getenv("APIKEY_FAULT_COUNT");
    if (!armed || !out)
        return;
    armed = 0;
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f, "%ld\n", seen);
        fclose(f);
    }
}

/* Whether this call of name should fail. */
static int hit(const char *name)
{
    if (!armed || resolving || strcmp(name, target) != 0)
        return 0;
    int alloc = !strcmp(name, "malloc") || !strcmp(name, "calloc") || !strcmp(name, "realloc");
    if (alloc && (!allocs_armed || loading))
        return 0;
    if (++seen != nth)
        return 0;
    if (getenv("APIKEY_FAULT_TRACE")) { /* where did it hit? for debugging */
        void *frames[32];
        backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
    }
    return 1;
}

/* The next definition of a symbol. A library the store dlopened
 * RTLD_LOCAL (libsqlite3) is outside RTLD_NEXT's scope: ask it directly. */
static void *next(const char *name)
{
    resolving++;
    void *f = dlsym(RTLD_NEXT, name);
    if (!f && (!strncmp(name, "sqlite3_", 8) || !strncmp(name, "PQ", 2))) {
        void *lib = dlopen(name[0] == 'P' ? "libpq.so.5" : "libsqlite3.so.0", RTLD_LAZY | RTLD_NOLOAD);
        f = lib ? dlsym(lib, name) : NULL;
    }
    resolving--;
    if (!f) {
        fprintf(stderr, "faultinject: no %s\n", name);
        abort();
    }
    return f;
}

#define REAL(ret, name, params) static ret(*real_##name) params; \
    if (!real_##name) real_##name = (ret(*) params)next(#name)

/* A function that fails as fault, with errno err, or calls through. Its
 * alias is the same call under its other name (pread and pread64 are one
 * function on LP64). */
#define FAULTY(ret, name, fault, failed, err, params, args) \
    ret name params \
    { \
        REAL(ret, name, params); \
        if (hit(fault)) { \
            errno = err; \
            return failed; \
        } \
        return real_##name args; \
    }

FAULTY(ssize_t, read, "read", -1, EIO, (int fd, void *buf, size_t n), (fd, buf, n))
FAULTY(ssize_t, write, "write", -1, ENOSPC, (int fd, const void *buf, size_t n), (fd, buf, n))
FAULTY(ssize_t, pread64, "pread", -1, EIO, (int fd, void *buf, size_t n, off_t at), (fd, buf, n, at))
FAULTY(ssize_t, pwrite64, "pwrite", -1, ENOSPC, (int fd, const void *buf, size_t n, off_t at),
       (fd, buf, n, at))
FAULTY(int, fsync, "fsync", -1, EIO, (int fd), (fd))
FAULTY(int, fdatasync, "fdatasync", -1, EIO, (int fd), (fd))
FAULTY(int, ftruncate64, "ftruncate", -1, EIO, (int fd, off_t len), (fd, len))
FAULTY(int, fstat, "fstat", -1, EIO, (int fd, struct stat *st), (fd, st))
FAULTY(int, fstat64, "fstat", -1, EIO, (int fd, struct stat64 *st), (fd, st))
FAULTY(void *, mmap64, "mmap", MAP_FAILED, ENOMEM,
       (void *a, size_t n, int prot, int flags, int fd, off_t at), (a, n, prot, flags, fd, at))
FAULTY(int, rename, "rename", -1, EIO, (const char *a, const char *b), (a, b))
FAULTY(int, unlink, "unlink", -1, EIO, (const char *path), (path))
FAULTY(int, mkostemp, "mkostemp", -1, ENOSPC, (char *tmpl, int flags), (tmpl, flags))
FAULTY(int, fchmod, "fchmod", -1, EPERM, (int fd, mode_t mode), (fd, mode))
FAULTY(int, fchown, "fchown", -1, EPERM, (int fd, uid_t u, gid_t g), (fd, u, g))
FAULTY(int, flock, "flock", -1, ENOLCK, (int fd, int op), (fd, op))

ssize_t pread(int, void *, size_t, off_t) __attribute__((alias("pread64")));
ssize_t pwrite(int, const void *, size_t, off_t) __attribute__((alias("pwrite64")));
int ftruncate(int, off_t) __attribute__((alias("ftruncate64")));
void *mmap(void *, size_t, int, int, int, off_t) __attribute__((alias("mmap64")));

void *dlopen(const char *file, int mode)
{
    REAL(void *, dlopen, (const char *, int));
    loading++;
    void *h = real_dlopen(file, mode);
    loading--;
    return h;
}

int open(const char *path, int flags, ...)
{
    REAL(int, open, (const char *, int, ...));
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    const char *after = getenv("APIKEY_FAULT_AFTER");
    if (after && strcmp(path, after) == 0)
        allocs_armed = 1;
    if (hit("open")) {
        errno = EACCES;
        return -1;
    }
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

/* Only the locks: SQLite's and the JSON store's serialisation. */
int fcntl(int fd, int cmd, ...)
{
    REAL(int, fcntl, (int, int, ...));
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *); /* every fcntl argument fits; glibc reads it so */
    va_end(ap);
    int lock = cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK || cmd == F_OFD_SETLK ||
               cmd == F_OFD_SETLKW || cmd == F_OFD_GETLK;
    if (lock && hit("fcntl")) {
        errno = EIO;
        return -1;
    }
    return real_fcntl(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

void *malloc(size_t n)
{
    if (hit("malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (hit("calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (hit("realloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

/* SQLite's entry points, declared here so the injector builds without
 * sqlite3.h; the codes are SQLite's stable ones. */
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
enum { SQ_OK = 0, SQ_NOMEM = 7, SQ_IOERR = 10, SQ_CANTOPEN = 14 };

static int depth;            /* inside an interposed SQLite call */
static sqlite3 *faulted_db;  /* the handle whose last call we failed */
static int faulted_rc;

/* Whether this outermost database call should fail, as code rc. */
static int db_hit(const char *name, sqlite3 *db, int rc)
{
    if (depth > 0)
        return 0;
    faulted_db = NULL;
    if (!hit(name))
        return 0;
    faulted_db = db;
    faulted_rc = rc;
    return 1;
}

#define DBCALL(name, db, rc, params, args) \
    int name params \
    { \
        REAL(int, name, params); \
        if (db_hit(#name, db, rc)) \
            return rc; \
        depth++; \
        int r = real_##name args; \
        depth--; \
        return r; \
    }

/* Through next(): the injector links no libsqlite3, and binds now. */
static sqlite3 *db_of(sqlite3_stmt *st)
{
    REAL(sqlite3 *, sqlite3_db_handle, (sqlite3_stmt *));
    return real_sqlite3_db_handle(st);
}

DBCALL(sqlite3_step, db_of(st), SQ_IOERR, (sqlite3_stmt * st), (st))
DBCALL(sqlite3_exec, db, SQ_IOERR,
       (sqlite3 * db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg,
        char **err),
       (db, sql, cb, arg, err))
DBCALL(sqlite3_prepare_v2, db, SQ_NOMEM,
       (sqlite3 * db, const char *sql, int n, sqlite3_stmt **st, const char **tail),
       (db, sql, n, st, tail))
DBCALL(sqlite3_prepare_v3, db, SQ_NOMEM,
       (sqlite3 * db, const char *sql, int n, unsigned flags, sqlite3_stmt **st, const char **tail),
       (db, sql, n, flags, st, tail))

int sqlite3_open_v2(const char *path, sqlite3 **db, int flags, const char *vfs)
{
    REAL(int, sqlite3_open_v2, (const char *, sqlite3 **, int, const char *));
    if (db_hit("sqlite3_open_v2", NULL, SQ_CANTOPEN)) {
        *db = NULL; /* as SQLite leaves it when it could not allocate one */
        return SQ_CANTOPEN;
    }
    depth++;
    int r = real_sqlite3_open_v2(path, db, flags, vfs);
    depth--;
    return r;
}

int sqlite3_errcode(sqlite3 *db)
{
    REAL(int, sqlite3_errcode, (sqlite3 *));
    return db && db == faulted_db && depth == 0 ? faulted_rc : real_sqlite3_errcode(db);
}

const char *sqlite3_errmsg(sqlite3 *db)
{
    REAL(const char *, sqlite3_errmsg, (sqlite3 *));
    if (db && db == faulted_db && depth == 0)
        return faulted_rc == SQ_NOMEM ? "out of memory (injected)" : "disk I/O error (injected)";
    return real_sqlite3_errmsg(db);
}

/* libpq's entry points and the codes of libpq-fe.h (stable ABI). */
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;
enum { PQ_FATAL_ERROR = 7 };

static int pq_depth;
static PGresult *lost_result; /* the result we made up, until cleared */

static int pq_hit(const char *name)
{
    return pq_depth == 0 && hit(name);
}

/* The connection breaks as after a reset: both directions, so the server
 * sees end of file and rolls back what it has not committed. */
static void drop_socket(int fd)
{
    shutdown(fd, SHUT_RDWR);
}

static int is_stream(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    REAL(ssize_t, send, (int, const void *, size_t, int));
    if (is_stream(fd) && hit("send")) {
        drop_socket(fd);
        errno = EPIPE;
        return -1;
    }
    return real_send(fd, buf, n, flags);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    REAL(ssize_t, recv, (int, void *, size_t, int));
    if (is_stream(fd) && hit("recv")) {
        drop_socket(fd);
        errno = ECONNRESET;
        return -1;
    }
    return real_recv(fd, buf, n, flags);
}

PGconn *PQconnectdbParams(const char *const *keys, const char *const *vals, int expand)
{
    REAL(PGconn *, PQconnectdbParams, (const char *const *, const char *const *, int));
    if (pq_hit("PQconnectdbParams")) {
        /* A later keyword overrides the expanded dbname's own host. */
        const char *k[64], *v[64];
        int n = 0;
        for (; keys[n] && n < 62; n++) {
            k[n] = keys[n];
            v[n] = vals[n];
        }
        k[n] = "host";
        v[n++] = "/nonexistent/apikey-injected-fault";
        k[n] = v[n] = NULL;
        pq_depth++;
        PGconn *c = real_PQconnectdbParams(k, v, expand);
        pq_depth--;
        return c;
    }
    pq_depth++;
    PGconn *c = real_PQconnectdbParams(keys, vals, expand);
    pq_depth--;
    return c;
}

/* Raised by the server like a real refusal, with its SQLSTATE. */
static const char refused_sql[] = "DO $$BEGIN RAISE EXCEPTION 'could not extend file: No space left on device"
                                  " (injected)' USING ERRCODE = '53100'; END$$";

int PQsendQuery(PGconn *conn, const char *sql)
{
    REAL(int, PQsendQuery, (PGconn *, const char *));
    int faulted = pq_hit("PQsendQuery");
    pq_depth++;
    int r = real_PQsendQuery(conn, faulted ? refused_sql : sql);
    pq_depth--;
    return r;
}

int PQsendQueryParams(PGconn *conn, const char *sql, int n, const Oid *types, const char *const *vals,
                      const int *lens, const int *fmts, int result_fmt)
{
    REAL(int, PQsendQueryParams,
         (PGconn *, const char *, int, const Oid *, const char *const *, const int *, const int *, int));
    pq_depth++;
    int r = pq_depth == 1 && hit("PQsendQueryParams")
                ? real_PQsendQueryParams(conn, refused_sql, 0, NULL, NULL, NULL, NULL, result_fmt)
                : real_PQsendQueryParams(conn, sql, n, types, vals, lens, fmts, result_fmt);
    pq_depth--;
    return r;
}

/* The check's named statement: its preparation, and its runs. */
int PQsendPrepare(PGconn *conn, const char *name, const char *sql, int n, const Oid *types)
{
    REAL(int, PQsendPrepare, (PGconn *, const char *, const char *, int, const Oid *));
    REAL(int, PQsendQueryParams,
         (PGconn *, const char *, int, const Oid *, const char *const *, const int *, const int *, int));
    pq_depth++;
    int r = pq_depth == 1 && hit("PQsendPrepare")
                ? real_PQsendQueryParams(conn, refused_sql, 0, NULL, NULL, NULL, NULL, 1)
                : real_PQsendPrepare(conn, name, sql, n, types);
    pq_depth--;
    return r;
}

int PQsendQueryPrepared(PGconn *conn, const char *name, int n, const char *const *vals, const int *lens,
                        const int *fmts, int result_fmt)
{
    REAL(int, PQsendQueryPrepared,
         (PGconn *, const char *, int, const char *const *, const int *, const int *, int));
    REAL(int, PQsendQueryParams,
         (PGconn *, const char *, int, const Oid *, const char *const *, const int *, const int *, int));
    pq_depth++;
    int r = pq_depth == 1 && hit("PQsendQueryPrepared")
                ? real_PQsendQueryParams(conn, refused_sql, 0, NULL, NULL, NULL, NULL, result_fmt)
                : real_PQsendQueryPrepared(conn, name, n, vals, lens, fmts, result_fmt);
    pq_depth--;
    return r;
}

/* Only a call that has a result to lose counts. */
PGresult *PQgetResult(PGconn *conn)
{
    REAL(PGresult *, PQgetResult, (PGconn *));
    REAL(PGresult *, PQmakeEmptyPGresult, (PGconn *, int));
    REAL(void, PQclear, (PGresult *));
    REAL(int, PQsocket, (const PGconn *));
    pq_depth++;
    PGresult *r = real_PQgetResult(conn);
    pq_depth--;
    if (!r || !pq_hit("PQgetResult"))
        return r;
    real_PQclear(r);
    drop_socket(real_PQsocket(conn));
    pq_depth++;
    lost_result = real_PQmakeEmptyPGresult(conn, PQ_FATAL_ERROR);
    pq_depth--;
    return lost_result;
}

int PQconsumeInput(PGconn *conn)
{
    REAL(int, PQconsumeInput, (PGconn *));
    REAL(int, PQsocket, (const PGconn *));
    if (pq_hit("PQconsumeInput"))
        drop_socket(real_PQsocket(conn));
    pq_depth++;
    int r = real_PQconsumeInput(conn);
    pq_depth--;
    return r;
}

/* An empty result carries the connection's message, usually none: say
 * what a lost reply says. */
char *PQresultErrorMessage(const PGresult *res)
{
    REAL(char *, PQresultErrorMessage, (const PGresult *));
    if (res && res == lost_result)
        return "server closed the connection unexpectedly (injected: the reply was lost)\n";
    return real_PQresultErrorMessage(res);
}

void PQclear(PGresult *res)
{
    REAL(void, PQclear, (PGresult *));
    if (res && res == lost_result)
        lost_result = NULL;
    real_PQclear(res);
}
