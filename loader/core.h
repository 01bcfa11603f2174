/* libapikey's internals: the context, the store binding and the admin
 * operations. Adapters (PAM module, helper, command) see include/apikey.h;
 * the PAM module (its context cache) and the tests also use what is here. */
#ifndef APIKEY_CORE_H
#define APIKEY_CORE_H

#include <pthread.h>
#include <stdint.h>

#include "apikey.h"
#include "apikey_store.h"
#include "config.h"

#define APIKEY_EXPORT __attribute__((visibility("default")))
/* The old name, for context.c until its split (issue 12) renames its uses. */
#define STORE_HAS APIKEY_STORE_HAS

typedef int64_t (*apikey_clock_fn)(void);

/* A loaded store backend and its open handle. */
typedef struct store_binding {
    const apikey_store_ops *ops;
    void *handle;
    void *dl;
    const char *location; /* what follows "scheme:", owned by the caller */
    apikey_store_host host; /* what the backend is given; it keeps a pointer */
} store_binding;

struct apikey_ctx {
    apikey_config cfg;
    store_binding store;
    /* A store handle is used by one thread at a time, except lookups of a
     * store that allows them concurrently (APIKEY_STORE_CONCURRENT_LOOKUP). */
    pthread_rwlock_t lock;
    int concurrent_lookup;
    int can_prefetch; /* the store has prefetch and concurrent lookups */
    /* lookup_auth when the store has it, else lookup. */
    int (*lookup_auth)(void *handle, const char *id, apikey_record *out);
    struct evp_md_st *md; /* SHA-256, fetched once: a fetch per hash costs more than the hash */
    unsigned char pepper[64];
    size_t pepper_len; /* 0: plain SHA-256 */
    apikey_clock_fn now;
    char config_path[4096]; /* the file it was opened from */
    int privileged; /* see CORE_OPEN_PRIVILEGED */
    int cached, cache_refs; /* held by ctx_cache.c, under its lock */
};

/* Where core messages go: syslog (hosts, the default) or stderr (commands). */
void core_log_to_stderr(int on);
void core_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern const apikey_store_host core_store_host;
/* While buf is set (not NULL), a backend's line on this thread goes into it,
 * the first one only, instead of the log: an admin call hands it to its
 * caller in err, and the adapter says it once. */
void core_report_to(char *buf, size_t len);

/* Open a context. With no flag (hosts) the store is opened at the first
 * verify and re-opened after it failed, so a host started while its store is
 * down recovers by itself; the command connects at once. */
#define CORE_OPEN_CREATE APIKEY_OPEN_CREATE   /* connect, creating the store when missing */
#define CORE_OPEN_CONNECT APIKEY_OPEN_CONNECT /* connect now */
/* The caller runs where the environment may be an attacker's (SPEC section
 * 9): the PAM module says so; a process with AT_SECURE is so anyway. Then
 * no APIKEY_CONFIG, no APIKEY_STORE_DIR, no OpenSSL configuration, and the
 * store backend is told (apikey_store_host.privileged). Beside the public
 * APIKEY_OPEN_* flags. */
#define CORE_OPEN_PRIVILEGED 4
apikey_ctx *core_open(const char *config_path, int flags, char *err, size_t errlen);
void core_set_clock(apikey_ctx *ctx, apikey_clock_fn now);
/* Whether a context opened with these flags is privileged (see above). */
int core_privileged(int flags);
/* The configuration file a context opens: the path given, else
 * $APIKEY_CONFIG (never in a privileged process), else the default. */
const char *core_config_path(const char *given, int privileged);

/* For hosts that open a context per request (the PAM module): a context
 * kept open between requests, see ctx_cache.c. Release, never close, what
 * acquire returned. flags: 0 or CORE_OPEN_PRIVILEGED. */
apikey_ctx *ctx_cache_acquire(const char *config_path, int flags, char *err, size_t errlen);
void ctx_cache_release(apikey_ctx *ctx);

/* Load the backend .so of "scheme:location": -1 with err on a bad URI or
 * backend. store_connect opens the store (a backend status; an unavailable
 * store has logged why). store_bind does both, -1 with err ("" when the
 * store said why). */
int store_load(const char *uri, int privileged, store_binding *out, char *err, size_t errlen);
int store_connect(store_binding *b, int create);
/* store_connect for a caller that reports: 0, or -1 with err. */
int store_connect_or_say(store_binding *b, int create, char *err, size_t errlen);
void store_disconnect(store_binding *b);
int store_bind(const char *uri, int create, store_binding *out, char *err, size_t errlen);
void store_unbind(store_binding *b);

/* Hashing of a whole key: SHA-256, or HMAC-SHA256 with the pepper. */
int core_hash_key(const apikey_ctx *ctx, const char *key, size_t len,
                  unsigned char out[APIKEY_HASH_LEN]);
int core_load_pepper(apikey_ctx *ctx, char *err, size_t errlen);

/* Whether rec grants every scope of the space-separated list need. */
int scopes_grant(const char *have, const char *need);

/* The public id of a record: "<prefix>_<id>". */
void core_public_id(const apikey_ctx *ctx, const char *id, char *out, size_t len);

typedef enum { KEY_ACTIVE, KEY_REVOKED, KEY_EXPIRED } key_status;
key_status core_status(const apikey_record *rec, int64_t now);
const char *core_status_name(key_status s);

#endif
