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
 * defect of OpenSSL 3.0 that no caller can guard against.
 *
 * SQLite calls its own API through the PLT too (sqlite3_exec calls
 * sqlite3_prepare_v2 and sqlite3_step): only the outermost call counts, or
 * a failed inner step would be one sqlite3_exec ignores, a fault no real
 * database can produce. A failed call runs nothing, so the injector also
 * answers sqlite3_errcode and sqlite3_errmsg for that handle until its next
 * call, as SQLite would after a real failure.
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
    if (alloc && !allocs_armed)
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
    if (!f && !strncmp(name, "sqlite3_", 8)) {
        void *lib = dlopen("libsqlite3.so.0", RTLD_LAZY | RTLD_NOLOAD);
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
