/* SPDX-License-Identifier: BSD-2-Clause */
/* Opening and closing a context: configuration, pepper and store; who
 * counts as privileged; the public id of a record. */
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core.h"
#include "hot_path.h"
#include "replica.h"
#include "secfile.h"

HOT_PATH static int64_t system_clock(void)
{
    return (int64_t)time(NULL);
}

int core_privileged(int flags)
{
    /* secure_getenv alone is not enough: a root process that is not setuid
     * but inherits a caller's environment (login -p, a getty or telnetd
     * chain, sshd's children) has no AT_SECURE, and libraries read plain
     * getenv. A PAM module always counts as privileged. */
    return (flags & CORE_OPEN_PRIVILEGED) || getauxval(AT_SECURE) != 0;
}

const char *core_config_path(const char *given, int privileged)
{
    if ((!given || !*given) && !privileged)
        given = secure_getenv("APIKEY_CONFIG");
    return given && *given ? given : APIKEY_DEFAULT_CONFIG;
}

apikey_ctx *core_open(const char *config_path, int flags, char *err, size_t errlen)
{
    char scratch[512];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    core_store_line_clear();
    int privileged = core_privileged(flags);
    /* No atexit handler: libpam unloads us at every pam_end. A failed
     * initialisation (out of memory) leaves OpenSSL unusable: stop here.
     * Privileged: no configuration file, so OPENSSL_CONF and
     * OPENSSL_MODULES cannot load a provider into a root process. The first
     * initialisation decides for the process: libpq's later
     * OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG) then finds the config step
     * done and loads nothing (a RUN_ONCE in OpenSSL's crypto/init.c). */
    if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT | (privileged ? OPENSSL_INIT_NO_LOAD_CONFIG : 0),
                             NULL)) {
        snprintf(err, errlen, "cannot initialise OpenSSL (out of memory?)");
        return NULL;
    }
    config_path = core_config_path(config_path, privileged);
    /* On a page of its own from its start: what a check reads of it (up to
     * config_path, kept last) is then one page, not two. */
    apikey_ctx *ctx = aligned_alloc(4096, (sizeof *ctx + 4095) / 4096 * 4096);
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(ctx, 0, sizeof *ctx);
    ctx->privileged = privileged;
    ctx->now = system_clock;
    rate_table_init(&ctx->rate, NULL);
    snprintf(ctx->config_path, sizeof ctx->config_path, "%s", config_path);
    if (pthread_rwlock_init(&ctx->lock, NULL) != 0) {
        snprintf(err, errlen, "cannot create a lock");
        free(ctx);
        return NULL;
    }
    if (!(ctx->md = EVP_MD_fetch(NULL, "SHA256", NULL))) {
        snprintf(err, errlen, "OpenSSL has no SHA-256");
        apikey_close(ctx);
        return NULL;
    }
    if (config_load(config_path, &ctx->cfg, err, errlen) != 0 ||
        !(ctx->rate.path = strdup(ctx->cfg.rate_table)) ||
        core_load_pepper(ctx, err, errlen) != 0 ||
        store_load(ctx->cfg.store, privileged, &ctx->store, err, errlen) != 0) {
        apikey_close(ctx);
        return NULL;
    }
    if (ctx->cfg.rate_slots)
        ctx->rate.create_slots = ctx->cfg.rate_slots;
    if ((flags & (CORE_OPEN_CREATE | CORE_OPEN_CONNECT)) &&
        store_connect_or_say(&ctx->store, flags & CORE_OPEN_CREATE, err, errlen) != 0) {
        apikey_close(ctx);
        return NULL;
    }
    if (ctx->cfg.replica && replica_attach(ctx, err, errlen) != 0) {
        apikey_close(ctx);
        return NULL;
    }
    ctx->concurrent_lookup = APIKEY_STORE_HAS(ctx->store.ops, flags) &&
                             (ctx->store.ops->flags & APIKEY_STORE_CONCURRENT_LOOKUP);
    ctx->lookup_auth = store_check_lookup(ctx->store.ops);
    ctx->prefetch = ctx->concurrent_lookup && APIKEY_STORE_HAS(ctx->store.ops, prefetch)
                        ? ctx->store.ops->prefetch
                        : NULL;
    return ctx;
}

/* ---- One connect at a time ----
 * A black-holed database makes each connect wait for connect_timeout, under
 * the context's write lock: checks would queue one after another behind
 * it. So a check that finds a connect waiting for more than a moment, or a
 * pause after a slow failure, answers unavailable (503) at once. A connect
 * refused quickly (a server down, a file away) costs nothing and gets no
 * pause: the next check tries again, and recovery is as quick as before. */
static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stalled(apikey_ctx *ctx, int64_t now)
{
    int64_t since = ctx->connect_since;
    if ((since && now - since >= CORE_CONNECT_PATIENCE_MS) || now < ctx->retry_at) {
        ctx->store.host.log_error("the store did not answer the last connect in time: unavailable until "
                                  "one succeeds (one attempt at a time, then a pause of up to %d s)",
                                  CORE_CONNECT_PAUSE_MAX_MS / 1000);
        return 1;
    }
    return 0;
}

HOT_PATH int core_store_stalled(apikey_ctx *ctx)
{
    /* Nothing waiting and no pause: the common case reads no clock (a read
     * of CLOCK_MONOTONIC is a tenth of a warm check under a hypervisor). */
    if (!atomic_load_explicit(&ctx->connect_since, memory_order_relaxed) &&
        !atomic_load_explicit(&ctx->retry_at, memory_order_relaxed))
        return 0;
    return stalled(ctx, monotonic_ms());
}

int core_store_connect(apikey_ctx *ctx)
{
    if (ctx->store.handle)
        return APIKEY_ST_OK;
    int64_t start = monotonic_ms();
    if (stalled(ctx, start)) /* queued behind the slow failure */
        return APIKEY_ST_UNAVAILABLE;
    ctx->connect_since = start;
    int st = store_connect(&ctx->store, 0);
    int64_t end = monotonic_ms();
    if (st == APIKEY_ST_OK || end - start < CORE_CONNECT_PATIENCE_MS) {
        ctx->connect_pause = 0;
        ctx->retry_at = 0;
    } else {
        ctx->connect_pause = ctx->connect_pause ? ctx->connect_pause * 2 : CORE_CONNECT_PATIENCE_MS;
        if (ctx->connect_pause > CORE_CONNECT_PAUSE_MAX_MS)
            ctx->connect_pause = CORE_CONNECT_PAUSE_MAX_MS;
        ctx->retry_at = end + ctx->connect_pause;
    }
    ctx->connect_since = 0;
    return st;
}

void core_set_clock(apikey_ctx *ctx, apikey_clock_fn now)
{
    ctx->now = now ? now : system_clock;
}

APIKEY_EXPORT apikey_ctx *apikey_open(const char *config_path, char *err, size_t errlen)
{
    return core_open(config_path, 0, err, errlen);
}

APIKEY_EXPORT void apikey_close(apikey_ctx *ctx)
{
    if (!ctx)
        return;
    replica_detach(ctx);
    store_unbind(&ctx->store);
    config_free(&ctx->cfg);
    rate_table_free(&ctx->rate);
    pthread_rwlock_destroy(&ctx->lock);
    EVP_MD_free(ctx->md);
    OPENSSL_cleanse(ctx->pepper, sizeof ctx->pepper);
    free(ctx);
}

HOT_PATH void core_public_id(const apikey_ctx *ctx, const char *id, char *out, size_t len)
{
    /* On every allowed check: no printf machinery, and the few bytes
     * copied in line rather than through libc's strlen and memcpy. */
    const char *prefix = ctx->cfg.key_prefix;
    size_t p = 0, n = 0;
    while (prefix[p])
        p++;
    while (n < APIKEY_ID_LEN && id[n])
        n++;
    if (p + 1 + n >= len) {
        out[0] = '\0';
        return;
    }
    if (n == APIKEY_ID_LEN) {
        /* Every id a check finds: two word moves. The prefix's array is
         * APIKEY_PREFIX_MAX bytes and its NUL, and what is copied past
         * the prefix is written over by the '_' and the id. */
        _Static_assert(sizeof ctx->cfg.key_prefix == APIKEY_PREFIX_MAX + 1 && APIKEY_PREFIX_MAX == 8,
                       "the prefix is copied as one word");
        memcpy(out, prefix, APIKEY_PREFIX_MAX);
        out[p] = '_';
        memcpy(out + p + 1, id, APIKEY_ID_LEN);
        out[p + 1 + APIKEY_ID_LEN] = '\0';
        return;
    }
    for (size_t i = 0; i < p; i++)
        out[i] = prefix[i];
    out[p] = '_';
    for (size_t i = 0; i < n; i++)
        out[p + 1 + i] = id[i];
    out[p + 1 + n] = '\0';
}
