/* Opening and closing a context: configuration, pepper and store. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core.h"
#include "secfile.h"

static int64_t system_clock(void)
{
    return (int64_t)time(NULL);
}

int core_load_pepper(apikey_ctx *ctx, char *err, size_t errlen)
{
    if (!ctx->cfg.pepper_file)
        return 0;
    char *text = NULL;
    size_t len = 0;
    if (secfile_read(ctx->cfg.pepper_file, 4096, &text, &len, err, errlen) != 0)
        return -1;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    int rc = -1;
    if (len < 16 || len > sizeof ctx->pepper) {
        snprintf(err, errlen, "%s: a pepper must hold 16 to %zu bytes", ctx->cfg.pepper_file,
                 sizeof ctx->pepper);
    } else {
        memcpy(ctx->pepper, text, len);
        ctx->pepper_len = len;
        rc = 0;
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

/* One digest context per thread, kept: EVP_Digest allocates, sets up and
 * frees one at every call, about a third of hashing a key. libapikey is
 * never unloaded (-z nodelete), so the key's destructor stays valid. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static int md_key_ok;

static void md_free(void *c)
{
    EVP_MD_CTX_free(c);
}

static void md_key_init(void)
{
    md_key_ok = pthread_key_create(&md_key, md_free) == 0;
}

static EVP_MD_CTX *thread_md_ctx(void)
{
    pthread_once(&md_once, md_key_init);
    if (!md_key_ok)
        return NULL;
    EVP_MD_CTX *c = pthread_getspecific(md_key);
    if (!c && (c = EVP_MD_CTX_new()) && pthread_setspecific(md_key, c) != 0) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    return c;
}

int core_hash_key(const apikey_ctx *ctx, const char *key, size_t len,
                  unsigned char out[APIKEY_HASH_LEN])
{
    unsigned int n = 0;
    if (ctx->pepper_len)
        return HMAC(ctx->md, ctx->pepper, (int)ctx->pepper_len, (const unsigned char *)key, len,
                    out, &n) && n == APIKEY_HASH_LEN ? 0 : -1;
    EVP_MD_CTX *c = thread_md_ctx();
    if (!c)
        return EVP_Digest(key, len, out, &n, ctx->md, NULL) == 1 && n == APIKEY_HASH_LEN ? 0 : -1;
    return EVP_DigestInit_ex2(c, ctx->md, NULL) == 1 && EVP_DigestUpdate(c, key, len) == 1 &&
                   EVP_DigestFinal_ex(c, out, &n) == 1 && n == APIKEY_HASH_LEN
               ? 0
               : -1;
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
    apikey_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ctx->privileged = privileged;
    ctx->now = system_clock;
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
        core_load_pepper(ctx, err, errlen) != 0 ||
        store_load(ctx->cfg.store, privileged, &ctx->store, err, errlen) != 0) {
        apikey_close(ctx);
        return NULL;
    }
    if ((flags & (CORE_OPEN_CREATE | CORE_OPEN_CONNECT)) &&
        store_connect_or_say(&ctx->store, flags & CORE_OPEN_CREATE, err, errlen) != 0) {
        apikey_close(ctx);
        return NULL;
    }
    ctx->concurrent_lookup = STORE_HAS(ctx->store.ops, flags) &&
                             (ctx->store.ops->flags & APIKEY_STORE_CONCURRENT_LOOKUP);
    ctx->can_prefetch = ctx->concurrent_lookup && STORE_HAS(ctx->store.ops, prefetch) &&
                        ctx->store.ops->prefetch;
    ctx->lookup_auth = STORE_HAS(ctx->store.ops, lookup_auth) && ctx->store.ops->lookup_auth
                           ? ctx->store.ops->lookup_auth
                           : ctx->store.ops->lookup;
    return ctx;
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
    store_unbind(&ctx->store);
    config_free(&ctx->cfg);
    pthread_rwlock_destroy(&ctx->lock);
    EVP_MD_free(ctx->md);
    OPENSSL_cleanse(ctx->pepper, sizeof ctx->pepper);
    free(ctx);
}

void core_public_id(const apikey_ctx *ctx, const char *id, char *out, size_t len)
{
    /* On every allowed check: no printf machinery. */
    size_t p = strlen(ctx->cfg.key_prefix), n = strnlen(id, APIKEY_ID_LEN);
    if (p + 1 + n >= len) {
        out[0] = '\0';
        return;
    }
    memcpy(out, ctx->cfg.key_prefix, p);
    out[p] = '_';
    memcpy(out + p + 1, id, n);
    out[p + 1 + n] = '\0';
}

key_status core_status(const apikey_record *rec, int64_t now)
{
    if (rec->revoked)
        return KEY_REVOKED;
    if (rec->expires && rec->expires <= now)
        return KEY_EXPIRED;
    return KEY_ACTIVE;
}

const char *core_status_name(key_status s)
{
    return s == KEY_ACTIVE ? "active" : s == KEY_REVOKED ? "revoked" : "expired";
}

static int has_word(const char *list, const char *word, size_t n)
{
    while (*list) {
        size_t m = strcspn(list, " ");
        if (m == n && memcmp(list, word, n) == 0)
            return 1;
        list += m;
        while (*list == ' ')
            list++;
    }
    return 0;
}

int scopes_grant(const char *have, const char *need)
{
    if (strcmp(have, "*") == 0)
        return 1;
    while (*need) {
        size_t n = strcspn(need, " ");
        if (n && !has_word(have, need, n))
            return 0;
        need += n;
        while (*need == ' ')
            need++;
    }
    return 1;
}
