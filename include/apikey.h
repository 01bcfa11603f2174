/*
 * apikey.h - the one header a host needs to ask "may this key use service S?"
 *
 * Two ways to use it:
 *   - link libapikey.so and call apikey_open()/apikey_verify()/apikey_close();
 *   - or dlopen("libapikey.so", RTLD_NOW|RTLD_LOCAL), look up
 *     APIKEY_ENTRY_SYMBOL and call it: it returns a table of functions. The
 *     table only grows at its end; check ->size before touching a slot, so a
 *     host built against this header runs with any newer library.
 *
 * A context is safe to use from several threads. Every verify consults the
 * store of record, so a revocation is seen on the next check.
 */
#ifndef APIKEY_H
#define APIKEY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define APIKEY_API_VERSION 1
#define APIKEY_ENTRY_SYMBOL "apikey_api_v1"

typedef struct apikey_ctx apikey_ctx;

typedef enum apikey_decision {
    APIKEY_ALLOWED = 0,     /* HTTP 200 */
    APIKEY_REFUSED = 1,     /* HTTP 401 or 403, see reason */
    APIKEY_UNAVAILABLE = 2, /* HTTP 503: cannot tell, fail closed */
} apikey_decision;

typedef enum apikey_reason {
    APIKEY_REASON_NONE = 0,
    APIKEY_REASON_MALFORMED,     /* not a key of this deployment (refused) */
    APIKEY_REASON_UNKNOWN,       /* unknown id or wrong secret (refused) */
    APIKEY_REASON_WRONG_ACCOUNT, /* key of another account (refused) */
    APIKEY_REASON_EXPIRED,       /* refused */
    APIKEY_REASON_REVOKED,       /* refused */
    APIKEY_REASON_MISSING_SCOPE, /* valid key, service needs more (403) */
    APIKEY_REASON_UNMAPPED,      /* service not in [services] (refused) */
    APIKEY_REASON_STORE,         /* store unreadable or down (unavailable) */
    APIKEY_REASON_CONFIG,        /* bad configuration (unavailable) */
    APIKEY_REASON_NOMEM,         /* out of memory (unavailable) */
    APIKEY_REASON_ARGUMENT,      /* bad call: NULL service... (unavailable) */
} apikey_reason;

#define APIKEY_KEY_ID_MAX 24 /* "<prefix>_<id>" with its NUL */

typedef struct apikey_result {
    apikey_decision decision;
    apikey_reason reason;
    char key_id[APIKEY_KEY_ID_MAX]; /* public id (ak_20fe9a1c) when known, else "" */
    char account[256];              /* the key's account when known, else "" */
} apikey_result;

/* Open a context from a configuration file (NULL: $APIKEY_CONFIG, else
 * /etc/apikey/apikey.conf). On a bad or unsafe configuration, or a store
 * backend that cannot be loaded, returns NULL and, when err is not NULL,
 * writes one line explaining why. The store itself is opened at the first
 * verify, and again after it failed: a store that is down makes verify
 * answer APIKEY_UNAVAILABLE until it is back, without a new context. */
apikey_ctx *apikey_open(const char *config_path, char *err, size_t errlen);
void apikey_close(apikey_ctx *ctx);

/* Verify key (keylen bytes, need not be NUL-terminated) for service. account
 * may be NULL to accept a key of any account. Returns result->decision. */
apikey_decision apikey_verify(apikey_ctx *ctx, const char *service, const char *account,
                              const char *key, size_t keylen, apikey_result *result);

/* A short English phrase for a reason: "revoked", "missing scope", ... */
const char *apikey_reason_string(apikey_reason reason);

/* HTTP status a web host should answer: 200, 401, 403 or 503. */
int apikey_http_status(const apikey_result *result);

/* The run-time table. Slots are only ever appended. */
typedef struct apikey_api {
    size_t size;      /* sizeof(struct apikey_api) of the library */
    unsigned version; /* APIKEY_API_VERSION of the library */
    apikey_ctx *(*open)(const char *config_path, char *err, size_t errlen);
    void (*close)(apikey_ctx *ctx);
    apikey_decision (*verify)(apikey_ctx *ctx, const char *service, const char *account,
                              const char *key, size_t keylen, apikey_result *result);
    const char *(*reason_string)(apikey_reason reason);
    int (*http_status)(const apikey_result *result);
} apikey_api;

typedef const apikey_api *(*apikey_entry_fn)(void);
const apikey_api *apikey_api_v1(void);

#ifdef __cplusplus
}
#endif
#endif
