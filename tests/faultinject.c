/*
 * A fault injector for tests, preloaded into the real apikey command:
 * APIKEY_FAULT="write:3" makes the third call to write() fail (EIO; ENOSPC
 * for write; ENOMEM for the allocators), every other call runs. When the
 * run ends, the number of calls seen goes to $APIKEY_FAULT_COUNT (a file),
 * so the test knows how many call sites there are to try in turn.
 *
 * Allocations are counted only from the opening of $APIKEY_FAULT_AFTER
 * (the configuration file): OpenSSL's own initialisation, which comes
 * first, reports success after a failed allocation and then crashes, a
 * defect of OpenSSL 3.0 that no caller can guard against.
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
#include <sys/types.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static char target[32];
static long nth = -1, seen;
static int armed, allocs_armed;

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
    if (!armed || strcmp(name, target) != 0)
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

#define REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

int open(const char *path, int flags, ...)
{
    REAL(int, open, const char *, int, ...);
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

ssize_t read(int fd, void *buf, size_t n)
{
    REAL(ssize_t, read, int, void *, size_t);
    if (hit("read")) {
        errno = EIO;
        return -1;
    }
    return real_read(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(ssize_t, write, int, const void *, size_t);
    if (hit("write")) {
        errno = ENOSPC;
        return -1;
    }
    return real_write(fd, buf, n);
}

int fsync(int fd)
{
    REAL(int, fsync, int);
    if (hit("fsync")) {
        errno = EIO;
        return -1;
    }
    return real_fsync(fd);
}

int rename(const char *a, const char *b)
{
    REAL(int, rename, const char *, const char *);
    if (hit("rename")) {
        errno = EIO;
        return -1;
    }
    return real_rename(a, b);
}

int mkostemp(char *tmpl, int flags)
{
    REAL(int, mkostemp, char *, int);
    if (hit("mkostemp")) {
        errno = ENOSPC;
        return -1;
    }
    return real_mkostemp(tmpl, flags);
}

int fchmod(int fd, mode_t mode)
{
    REAL(int, fchmod, int, mode_t);
    if (hit("fchmod")) {
        errno = EPERM;
        return -1;
    }
    return real_fchmod(fd, mode);
}

int flock(int fd, int op)
{
    REAL(int, flock, int, int);
    if (hit("flock")) {
        errno = ENOLCK;
        return -1;
    }
    return real_flock(fd, op);
}

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
