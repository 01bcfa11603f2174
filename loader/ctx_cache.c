/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One open context per process for hosts that open and close one per
 * request: libpam loads pam_apikey at every pam_start, and Squid's
 * basic_pam_auth and Dante start a transaction for every login. The parsed
 * configuration and the store connection (an SQLite handle with its WAL
 * index, a PostgreSQL connection) then survive from one login to the next.
 *
 * Nothing read from the store is kept: every verify still asks the store of
 * record, so a revocation is refused at the next check. The configuration
 * file is looked at (one stat) at every acquire, and a changed file opens a
 * new context. A forked child never uses its parent's context: a database
 * connection must not be shared by two processes.
 */
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    apikey_ctx *ctx;
    pid_t pid;
    struct stat st;
} slot;

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Under the lock: the cached context is no longer the one to hand out. */
static void retire(void)
{
    if (slot.ctx && slot.pid == getpid() && slot.ctx->cache_refs == 0)
        apikey_close(slot.ctx);
    /* In use: its last release closes it. In a child: the parent's, left alone. */
    memset(&slot, 0, sizeof slot);
}

apikey_ctx *ctx_cache_acquire(const char *config_path, int flags, char *err, size_t errlen)
{
    flags &= CORE_OPEN_PRIVILEGED;
    const char *path = core_config_path(config_path, core_privileged(flags));
    struct stat st;
    if (lstat(path, &st) != 0)
        return core_open(path, flags, err, errlen); /* which says why, in one line */
    pthread_mutex_lock(&lock);
    apikey_ctx *ctx = NULL;
    if (slot.ctx && slot.pid == getpid() && same_file(&slot.st, &st) &&
        strcmp(slot.ctx->config_path, path) == 0 && slot.ctx->privileged == core_privileged(flags)) {
        ctx = slot.ctx;
    } else {
        retire();
        if ((ctx = core_open(path, flags, err, errlen))) {
            ctx->cached = 1;
            slot.ctx = ctx;
            slot.pid = getpid();
            slot.st = st;
        }
    }
    if (ctx)
        ctx->cache_refs++;
    pthread_mutex_unlock(&lock);
    return ctx;
}

void ctx_cache_release(apikey_ctx *ctx)
{
    if (!ctx)
        return;
    if (!ctx->cached) {
        apikey_close(ctx);
        return;
    }
    pthread_mutex_lock(&lock);
    if (--ctx->cache_refs == 0 && ctx != slot.ctx)
        apikey_close(ctx);
    pthread_mutex_unlock(&lock);
}
