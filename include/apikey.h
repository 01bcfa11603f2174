/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * apikey.h - the one header a host needs to ask "may this key use service S?"
 *
 * Two ways to use it:
 *   - link libapikey (-lapikey) and call apikey_open()/apikey_verify()/...;
 *   - or dlopen(APIKEY_LIBRARY, RTLD_NOW|RTLD_LOCAL) - "libapikey.so.1", the
 *     name of this ABI; "libapikey.so" exists only where the development
 *     files are installed - look up APIKEY_ENTRY_SYMBOL and call it: it
 *     returns a table of functions. The table only grows at its end: test
 *     APIKEY_API_HAS(api, slot) before calling a slot newer than open..
 *     http_status, so a host built against this header runs with an older
 *     library too (and with any newer one).
 *
 * A context is safe to use from several threads. Every verify consults the
 * store of record, so a revocation is seen on the next check.
 *
 * The library prints nothing and logs only the audit lines of the admin
 * calls: why a call failed - a store's own line included - comes back to
 * the host (err, apikey_verdict.error), which says it its own way.
 */
#ifndef APIKEY_H
#define APIKEY_H

#include <stddef.h>
#include <stdint.h>

#include "apikey_key.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APIKEY_API_VERSION 1
#define APIKEY_LIBRARY "libapikey.so.1"
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
    APIKEY_REASON_ADDRESS,       /* the key has an allowlist and the client address
                                    is not in it, unknown or not numeric (401) */
    /* The library never answers it: an HTTP host sets it when a request
     * carries no credential at all (401 "missing key"), so that no host
     * extends this enum. reason_string names it "missing key"; a library
     * that predates it answers "unknown reason". Reasons appended later
     * come after it (a value is never reused): a host that meets one it
     * does not know takes reason_string's text and counts it as other. */
    APIKEY_REASON_MISSING,
    APIKEY_REASON_RATE,          /* a valid key over its rate limit (refused, HTTP 429;
                                    library 1.5) */
} apikey_reason;

/* Frozen: hosts allocate it and libraries before 1.2 clear
 * sizeof(apikey_result) of their own, so it never grows. What a check
 * gains later (the reason's text, a client address) goes into
 * apikey_verify_request and apikey_verdict, which carry their size. */
typedef struct apikey_result {
    apikey_decision decision;
    apikey_reason reason;
    char key_id[APIKEY_KEY_ID_MAX]; /* public id (ak_20fe9a1c) when known, else "" */
    char account[256];              /* the key's account when known, else "" */
} apikey_result;

/* Open a context from a configuration file (NULL: $APIKEY_CONFIG, else
 * /etc/apikey/apikey.conf). On a bad or unsafe configuration, or a store
 * backend that cannot be loaded, returns NULL and, when err is not NULL,
 * writes one line explaining why (a store's own line when it gave one); the
 * host logs it. The store itself is opened at the first
 * verify, and again after it failed: a store that is down makes verify
 * answer APIKEY_UNAVAILABLE until it is back, without a new context. */
apikey_ctx *apikey_open(const char *config_path, char *err, size_t errlen);
void apikey_close(apikey_ctx *ctx);

/* Verify key (keylen bytes, need not be NUL-terminated) for service. account
 * may be NULL to accept a key of any account. Returns result->decision.
 * apikey_verify_with (below) is the same check, and also says why it could
 * not tell: the library itself never prints or logs. */
apikey_decision apikey_verify(apikey_ctx *ctx, const char *service, const char *account,
                              const char *key, size_t keylen, apikey_result *result);

/* A short English phrase for a reason: "revoked", "missing scope", ... */
const char *apikey_reason_string(apikey_reason reason);

/* HTTP status a web host should answer: 200, 401, 403, 429 or 503. */
int apikey_http_status(const apikey_result *result);

/* ---- Administration: the key lifecycle (apikey(1), apikey-authd(8)) ----
 *
 * What `apikey` and apikey-authd's management API do, with the same checks:
 * the library holds every rule (scopes, expiry, the per-account limit,
 * all-or-none batches, permanent revocation). Each call that writes is one
 * store transaction. A context for these calls is best opened with
 * apikey_open_with(..., APIKEY_OPEN_CONNECT or APIKEY_OPEN_CREATE, ...).
 *
 * Every call returns an apikey_status and, when err is not NULL, leaves one
 * line in err for the operator: why it failed (the store's own line when
 * the store failed). On success err is "", or a note: apikey_revoke's, or
 * a store's warning. err never holds a key or a hash. The library prints
 * nothing: the host says err; the library logs only an audit line
 * (created, revoked, rotated) to syslog. */

typedef enum apikey_status {
    APIKEY_OK = 0,
    APIKEY_E_INVALID,     /* a bad request: unknown scope, bad or past expiry, bad
                             account or name, malformed id, bad grace (HTTP 400) */
    APIKEY_E_NOT_FOUND,   /* no key with that id (404) */
    APIKEY_E_LIMIT,       /* the account holds max_keys_per_account active keys (409) */
    APIKEY_E_CONFLICT,    /* the key's state forbids it (rotating a revoked or
                             expired key), or copy met another key with the same id (409) */
    APIKEY_E_UNAVAILABLE, /* the store (or copy's target) cannot be read or
                             written: down, corrupt, full; nothing was changed (503) */
    APIKEY_E_NOMEM,       /* out of memory; nothing was changed (503) */
    APIKEY_E_INTERNAL,    /* the random number generator or hash failed (500) */
    APIKEY_E_ARGUMENT,    /* a bad call: NULL where a value is needed, a size
                             field too small (500) */
} apikey_status;

/* "ok", "invalid request", "not found", ... */
const char *apikey_status_string(apikey_status st);
/* The HTTP status a management API answers for st (success: 200; a host
 * answering a create or a rotate uses 201, a revoke 204). */
int apikey_status_http(apikey_status st);

/* apikey_open_with flags. With neither, it is apikey_open: the store is
 * opened at the first use. */
#define APIKEY_OPEN_CREATE 1u  /* open the store now, creating it when missing */
#define APIKEY_OPEN_CONNECT 2u /* open the store now: one that is down fails the open */
apikey_ctx *apikey_open_with(const char *config_path, unsigned flags, char *err, size_t errlen);

/* Growing structs. apikey_key_info, apikey_create_request and
 * apikey_issued start with a size that the caller sets to sizeof of the
 * struct it was built with; fields are only ever appended (as Linux's
 * openat2 and clone3 do). The library reads what both know and:
 *   - for a request larger than it knows, refuses with APIKEY_E_INVALID
 *     unless the unknown tail is all zero: a newer field (an address
 *     allowlist) is never silently dropped;
 *   - for a struct it fills, writes the fields both know, zeroes the rest
 *     and sets ->size to the bytes it wrote. A field added later is there
 *     when APIKEY_HAS_FIELD(type, p, field).
 * Start with `apikey_key_info info = {.size = sizeof info};`. */
#define APIKEY_HAS_FIELD(type, p, field) \
    ((p)->size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---- A check, sized (library 1.2: APIKEY_API_HAS(api, verify_with)) ---- */

typedef struct apikey_verify_request {
    size_t size;         /* sizeof(apikey_verify_request) of the host */
    const char *service;
    const char *account; /* NULL: a key of any account */
    const char *key;     /* keylen bytes, need not be NUL-terminated */
    size_t keylen;
    /* Appended in library 1.4. The client's numeric address ("192.0.2.7",
     * "2001:db8::1", "::ffff:192.0.2.7" is read as 192.0.2.7), or NULL when
     * the host does not know it. A key with an allowlist is refused
     * (APIKEY_REASON_ADDRESS) when the address is not in it, NULL, empty or
     * not numeric (a host name). A library older than 1.4 answers a request
     * that sets it APIKEY_UNAVAILABLE, APIKEY_REASON_ARGUMENT. */
    const char *client_addr;
} apikey_verify_request;

#define APIKEY_ERROR_MAX 512

typedef struct apikey_verdict {
    size_t size;          /* set by the host, then by the library (see above) */
    apikey_result result; /* as apikey_verify fills it */
    /* What result.reason's phrase leaves out, for the host's log: why the
     * check could not tell, in the store's own words ("sqlite:
     * /var/lib/apikey/keys.db: disk I/O error"), or a store's warning on a
     * check it answered; "" when there is nothing more. Never a key. */
    char error[APIKEY_ERROR_MAX];
    /* Appended in library 1.5 (APIKEY_HAS_FIELD(apikey_verdict, p,
     * retry_after)): the key's rate limit, for an HTTP host's
     * X-RateLimit-Limit, X-RateLimit-Remaining and Retry-After. All 0 for a
     * key without a limit (and for a check that never reached it). */
    uint32_t rate_limit;     /* requests per rate_period seconds */
    uint32_t rate_period;    /* 1, 60 or 3600 */
    uint32_t rate_remaining; /* requests left at once after this one */
    uint32_t retry_after;    /* refused with APIKEY_REASON_RATE: seconds to wait, >= 1 */
} apikey_verdict;

/* apikey_verify with its arguments in req. A verdict smaller than this
 * first version, or a NULL one, gets nothing written and the answer
 * APIKEY_UNAVAILABLE; a request with an unknown field set is not checked:
 * APIKEY_UNAVAILABLE, APIKEY_REASON_ARGUMENT. Start with
 * `apikey_verdict v = {.size = sizeof v};`. Every field the verdict's size
 * covers is written (those this library does not know, zeroed), error as a
 * string: the bytes after its NUL may be left as they were. */
apikey_decision apikey_verify_with(apikey_ctx *ctx, const apikey_verify_request *req,
                                   apikey_verdict *out);

typedef enum apikey_key_state {
    APIKEY_KEY_ACTIVE = 0,
    APIKEY_KEY_REVOKED,
    APIKEY_KEY_EXPIRED,
} apikey_key_state;

/* "active", "revoked", "expired" (the words of `apikey list --json`). */
const char *apikey_state_string(apikey_key_state state);

/* One key, as `apikey list --json` shows it. Never its hash. */
typedef struct apikey_key_info {
    size_t size;
    char id[APIKEY_KEY_ID_MAX]; /* public id: "ak_20fe9a1c" */
    char account[APIKEY_ACCOUNT_MAX];
    char name[APIKEY_NAME_MAX];
    char scopes[APIKEY_SCOPES_MAX]; /* "geo:read proxies:read", or "*" for every scope */
    int64_t created;                /* Unix seconds */
    int64_t expires;                /* 0: never */
    int64_t last_used;              /* 0: never */
    int64_t revoked;                /* 0: not revoked, else when */
    apikey_key_state state;         /* as of the call */
    /* Appended in library 1.4 (APIKEY_HAS_FIELD(apikey_key_info, p,
     * allow_from)): the address allowlist, canonical CIDR entries separated
     * by one space ("10.0.0.0/8 2001:db8::/32"), "" for any address. */
    char allow_from[APIKEY_ALLOW_FROM_MAX];
    /* Appended in library 1.5 (APIKEY_HAS_FIELD(apikey_key_info, p,
     * rate_burst)): rate_limit requests per rate_period seconds (1, 60 or
     * 3600), at most rate_burst at once; all 0 for no limit. */
    uint32_t rate_limit;
    uint32_t rate_period;
    uint32_t rate_burst;
} apikey_key_info;

/* What to create. */
typedef struct apikey_create_request {
    size_t size;
    const char *account;
    const char *name;
    const char *scopes;  /* "a,b", "a b" or "*" (every scope); required */
    const char *expires; /* 30d, 90d, 6m, 1y, never or YYYY-MM-DD; NULL: default_expiry */
    /* Appended in library 1.4: the addresses the key may be used from,
     * IPv4 and IPv6 CIDR entries separated by commas or spaces, at most
     * APIKEY_ALLOW_ENTRIES; NULL or "": any address. An entry with host
     * bits set (10.0.0.1/8) or a prefix above 32 or 128 is refused
     * (APIKEY_E_INVALID), not corrected. A library older than 1.4 refuses
     * a request that sets it, rather than make a key without its list. */
    const char *allow_from;
    /* Appended in library 1.5: the key's rate limit, "N/s", "N/min" or "N/h"
     * (N from 1 to 1,000,000), "none" for none; NULL: the configuration's
     * default_rate. burst: how many requests may come at once, 1 to
     * 1,000,000; 0: N. A library older than 1.5 refuses a request that
     * sets either. */
    const char *rate;
    uint32_t burst;
} apikey_create_request;

/* A key just made. key is its only copy anywhere: show it once, then wipe
 * it (apikey_wipe(issued.key, sizeof issued.key)). It ends with info and
 * grows only through info, whose size the library derives from size. */
typedef struct apikey_issued {
    size_t size;
    char key[APIKEY_KEY_MAX];
    apikey_key_info info;
} apikey_issued;

/* Create one key. */
apikey_status apikey_create(apikey_ctx *ctx, const apikey_create_request *req, apikey_issued *out,
                            char *err, size_t errlen);
/* Create n keys in one transaction: every request is checked first, then all
 * are created or none (err then names the line, "line 3: ..."). reqs and
 * out are arrays of n structs of the caller's size (reqs[0].size,
 * out[0].size); out[i] answers reqs[i]. On failure every key field of out
 * is zeroed, here and in apikey_create and apikey_rotate. */
apikey_status apikey_create_batch(apikey_ctx *ctx, const apikey_create_request *reqs, size_t n,
                                  apikey_issued *out, char *err, size_t errlen);

/* Called once per key; return 0 to go on, anything else to stop (the call
 * still returns APIKEY_OK). info->size is the library's. The context is
 * locked meanwhile: the callback must not call the library with it. */
typedef int (*apikey_key_cb)(const apikey_key_info *info, void *arg);
#define APIKEY_LIST_ALL 1u /* revoked and expired keys too; else active ones only */
/* The keys of account (NULL: of every account), in creation order. */
apikey_status apikey_list(apikey_ctx *ctx, const char *account, unsigned flags, apikey_key_cb cb,
                          void *arg, char *err, size_t errlen);

/* The active keys (of one account, or all) that expire within the duration
 * `within` ("7d", "24h", "2w"...; E_INVALID when it is not one), in creation
 * order: for a cron job that warns their owners. Library 1.3. */
apikey_status apikey_list_expiring(apikey_ctx *ctx, const char *account, const char *within,
                                   apikey_key_cb cb, void *arg, char *err, size_t errlen);
/* One key by its public id ("ak_20fe9a1c"; the bare "20fe9a1c" and list's
 * "ak_20fe9a1c..." are accepted too), whatever its state. */
apikey_status apikey_get(apikey_ctx *ctx, const char *id, apikey_key_info *out, char *err,
                         size_t errlen);
/* Revoke now and for good, seen by every later check in every process.
 * Revoking a revoked key changes nothing and returns APIKEY_OK with a note
 * in err ("key ak_20fe9a1c was already revoked"). */
apikey_status apikey_revoke(apikey_ctx *ctx, const char *id, char *err, size_t errlen);
/* Replace an active key: a new key of the same account, name and scopes,
 * its expiry as long as the old one's. grace: NULL, "" or "0" revokes the
 * old key now; a duration (30min, 24h, 7d) lets it expire then instead. */
apikey_status apikey_rotate(apikey_ctx *ctx, const char *id, const char *grace, apikey_issued *out,
                            char *err, size_t errlen);

/* The scope catalogue of the configuration, in its order; cb as above. */
typedef int (*apikey_scope_cb)(const char *scope, const char *description, void *arg);
apikey_status apikey_scopes(apikey_ctx *ctx, apikey_scope_cb cb, void *arg, char *err,
                            size_t errlen);

/* Copy every key as it is (hashes, times, revocations) into the store at
 * store_uri ("sqlite:/path", ...), in one transaction there; copying again
 * is harmless. *copied (may be NULL) gets the number of keys. */
apikey_status apikey_copy(apikey_ctx *ctx, const char *store_uri, size_t *copied, char *err,
                          size_t errlen);

/* The replica of `replica =` (a fleet: apikey-syncd keeps it from the
 * store of record). Library 1.5, in the table as APIKEY_API_HAS(api,
 * replica); a growing struct (see above). */
typedef struct apikey_replica_state {
    size_t size;
    int64_t contact_ms;  /* last confirmed contact with the store of record, Unix ms */
    int64_t lag_ms;      /* now - contact_ms */
    int64_t max_lag_ms;  /* replica_max_lag */
    int64_t last_change; /* the last change of the store of record applied */
    int trusted;         /* lag_ms < max_lag_ms: checks read the replica */
} apikey_replica_state;
/* APIKEY_E_INVALID when the configuration has no replica; UNAVAILABLE
 * (err says why) when its contact line cannot be read. */
apikey_status apikey_replica(apikey_ctx *ctx, apikey_replica_state *out, char *err, size_t errlen);

/* Overwrite len bytes at p in a way the compiler keeps (a key, once shown). */
void apikey_wipe(void *p, size_t len);

/* ---- What a host reads of the configuration (library 1.4) ----
 * A host never parses apikey.conf itself: it asks the context it checks
 * with, so every host reads the file by the library's one set of rules
 * (owner and mode checked, no symlink, strict syntax), from the same reading
 * as its checks. cb returns 0 to go on, non-zero to stop. */
typedef int (*apikey_setting_cb)(const char *name, const char *value, void *arg);

/* Each service of [services] with the scopes it requires, in file order,
 * the scopes as the library reads them: space-separated, each once. */
apikey_status apikey_services(apikey_ctx *ctx, apikey_setting_cb cb, void *arg, char *err,
                              size_t errlen);
/* The scopes one service requires, as above, into out ("" for a service
 * that needs only a valid key): APIKEY_OK; APIKEY_E_NOT_FOUND when the
 * service is not mapped; APIKEY_E_ARGUMENT when out is too small
 * (APIKEY_SCOPES_MAX always suffices). */
apikey_status apikey_service_scopes(apikey_ctx *ctx, const char *service, char *out,
                                    size_t outlen, char *err, size_t errlen);
/* 1 when a check may wait on a network (a database store), so a host with
 * an event loop runs it elsewhere (nginx's thread pool); 0 when the store
 * answers from local files. Decided by the store backend's own flag. */
int apikey_store_may_block(apikey_ctx *ctx);
/* Library 1.6. Whether the next check on ctx may wait on a network, asked
 * per check: 0 when it will be answered from local files (a local store,
 * or a replica trusted at this moment); otherwise as apikey_store_may_block.
 * A host still needs apikey_store_may_block at start, to have somewhere to
 * run the checks that do block (a replica goes stale when apikey-syncd
 * stops, and its checks then ask the store of record). */
int apikey_check_may_block(apikey_ctx *ctx);
/* The lines of a host's own section (section "authd" for [authd]) as the
 * library read them, in file order: name and value trimmed, the inline
 * comment removed, every line given (a name written twice comes twice).
 * The host judges the names and values. APIKEY_OK also when the section
 * is absent. Section "" gives the library's own settings as it uses them,
 * defaults filled in: key_prefix, max_keys_per_account, default_expiry and
 * last_used_granularity (in seconds, "60s"). */
apikey_status apikey_section(apikey_ctx *ctx, const char *section, apikey_setting_cb cb,
                             void *arg, char *err, size_t errlen);

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
    /* Administration, appended: test APIKEY_API_HAS(api, copy) or the slot used. */
    apikey_ctx *(*open_with)(const char *config_path, unsigned flags, char *err, size_t errlen);
    const char *(*status_string)(apikey_status st);
    int (*status_http)(apikey_status st);
    const char *(*state_string)(apikey_key_state state);
    apikey_status (*create)(apikey_ctx *ctx, const apikey_create_request *req, apikey_issued *out,
                            char *err, size_t errlen);
    apikey_status (*create_batch)(apikey_ctx *ctx, const apikey_create_request *reqs, size_t n,
                                  apikey_issued *out, char *err, size_t errlen);
    apikey_status (*list)(apikey_ctx *ctx, const char *account, unsigned flags, apikey_key_cb cb,
                          void *arg, char *err, size_t errlen);
    apikey_status (*get)(apikey_ctx *ctx, const char *id, apikey_key_info *out, char *err,
                         size_t errlen);
    apikey_status (*revoke)(apikey_ctx *ctx, const char *id, char *err, size_t errlen);
    apikey_status (*rotate)(apikey_ctx *ctx, const char *id, const char *grace, apikey_issued *out,
                            char *err, size_t errlen);
    apikey_status (*scopes)(apikey_ctx *ctx, apikey_scope_cb cb, void *arg, char *err,
                            size_t errlen);
    apikey_status (*copy)(apikey_ctx *ctx, const char *store_uri, size_t *copied, char *err,
                          size_t errlen);
    void (*wipe)(void *p, size_t len);
    /* Library 1.2. */
    apikey_decision (*verify_with)(apikey_ctx *ctx, const apikey_verify_request *req,
                                   apikey_verdict *out);
    /* Library 1.3. */
    apikey_status (*list_expiring)(apikey_ctx *ctx, const char *account, const char *within,
                                   apikey_key_cb cb, void *arg, char *err, size_t errlen);
    /* Library 1.4. */
    apikey_status (*services)(apikey_ctx *ctx, apikey_setting_cb cb, void *arg, char *err,
                              size_t errlen);
    apikey_status (*service_scopes)(apikey_ctx *ctx, const char *service, char *out,
                                    size_t outlen, char *err, size_t errlen);
    int (*store_may_block)(apikey_ctx *ctx);
    apikey_status (*section)(apikey_ctx *ctx, const char *section, apikey_setting_cb cb,
                             void *arg, char *err, size_t errlen);
    /* Library 1.5. */
    apikey_status (*replica)(apikey_ctx *ctx, apikey_replica_state *out, char *err, size_t errlen);
    /* Library 1.6. */
    int (*check_may_block)(apikey_ctx *ctx);
} apikey_api;

/* Whether a library's table is recent enough to hold a slot. */
#define APIKEY_API_HAS(api, slot) APIKEY_HAS_FIELD(apikey_api, api, slot)

typedef const apikey_api *(*apikey_entry_fn)(void);
const apikey_api *apikey_api_v1(void);

#ifdef __cplusplus
}
#endif
#endif
