/* SPDX-License-Identifier: BSD-2-Clause */
/* libapikey's internals: the context, the store binding and the admin
 * operations. Adapters (PAM module, helper, command) see include/apikey.h;
 * the PAM module (its context cache) and the tests also use what is here. */
#ifndef APIKEY_CORE_H
#define APIKEY_CORE_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "apikey.h"
#include "apikey_store.h"
#include "config.h"
#include "ratelimit.h"

#define APIKEY_EXPORT __attribute__((visibility("default")))

typedef int64_t (*apikey_clock_fn)(void);

/* A loaded store backend and its open handle. */
typedef struct store_binding {
    const apikey_store_ops *ops;
    void *handle;
    void *dl;
    const char *location; /* what follows "scheme:", owned by the caller */
    apikey_store_host host; /* what the backend is given; it keeps a pointer */
    int handle_creates; /* handle was opened with create */
} store_binding;

struct apikey_ctx {
    config_file cfg;
    store_binding store;
    /* A store handle is used by one thread at a time, except lookups of a
     * store that allows them concurrently (APIKEY_STORE_CONCURRENT_LOOKUP). */
    pthread_rwlock_t lock;
    int concurrent_lookup;
    /* lookup_auth when the store has it, else lookup. */
    int (*lookup_auth)(void *handle, const char *id, apikey_record *out);
    /* The store's prefetch, when it has one and allows concurrent lookups. */
    void (*prefetch)(void *handle, const char *id);
    struct evp_md_st *md; /* SHA-256 for HMAC with the pepper, fetched once: a fetch per hash costs more than the hash */
    unsigned char pepper[64];
    size_t pepper_len; /* 0: plain SHA-256 */
    apikey_clock_fn now;
    int privileged; /* see CORE_OPEN_PRIVILEGED */
    int cached, cache_refs; /* held by ctx_cache.c, under its lock */
    /* One connect to the store at a time (context.c): monotonic ms since a
     * connect began (0: none), no new attempt before retry_at, and the
     * pause after the last slow failure (under the write lock). */
    _Atomic int64_t connect_since, retry_at;
    int64_t connect_pause;
    struct replica *replica; /* NULL, or the replica checks read first (replica.h) */
    rate_table rate; /* opened at the first check of a key with a limit */
    /* No last-used write before this time: one failed (a host that may
     * only read the store), and is tried again a granularity step later,
     * not at every check. Read and written atomically. */
    int64_t touch_after;
    /* The file it was opened from. Last: in the middle, it put what a check
     * reads on both sides of 4 KiB, two pages where one does. */
    char config_path[4096];
};

/* What store backends are given. Their error line stays on the thread of
 * the call it failed (the first line since the clear): each public call
 * clears it first and hands it to its caller; the library prints nothing. */
extern const apikey_store_host core_store_host;
void core_store_line_clear(void);
const char *core_store_line(void); /* "" when the store said nothing */

/* Open a context. With no flag (hosts) the store is opened at the first
 * verify and re-opened after it failed, so a host started while its store is
 * down recovers by itself; the command connects at once. */
#define CORE_OPEN_CREATE APIKEY_OPEN_CREATE   /* connect, creating the store when missing */
#define CORE_OPEN_CONNECT APIKEY_OPEN_CONNECT /* connect now */
/* The caller runs where the environment may be an attacker's (pam_apikey(8),
 * doc/SECURITY.md): the PAM module says so; a process with AT_SECURE is so anyway. Then
 * no APIKEY_CONFIG, no APIKEY_STORE_DIR, no OpenSSL configuration, and the
 * store backend is told (apikey_store_host.privileged). Beside the public
 * APIKEY_OPEN_* flags. */
#define CORE_OPEN_PRIVILEGED 4
apikey_ctx *core_open(const char *config_path, int flags, char *err, size_t errlen);
void core_set_clock(apikey_ctx *ctx, apikey_clock_fn now);
/* A check facing a store that does not answer does not queue behind a
 * connect waiting for its timeout: unavailable at once while another
 * connect has been waiting CORE_CONNECT_PATIENCE_MS, or within the pause
 * after one that failed slowly (doubling up to CORE_CONNECT_PAUSE_MAX_MS). */
#define CORE_CONNECT_PATIENCE_MS 1000
#define CORE_CONNECT_PAUSE_MAX_MS 8000
int core_store_stalled(apikey_ctx *ctx);
/* store_connect under the write lock, within those rules. */
int core_store_connect(apikey_ctx *ctx);
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
 * store has left its line, see core_store_line); with create, a handle
 * opened without it is opened again, so that a host's first key makes its
 * store as the command's does. store_bind does both, -1
 * with err (the store's line when it gave one). */
int store_load(const char *uri, int privileged, store_binding *out, char *err, size_t errlen);
int store_connect(store_binding *b, int create);
/* store_connect for a caller that reports: 0, or -1 with err. */
int store_connect_or_say(store_binding *b, int create, char *err, size_t errlen);
void store_disconnect(store_binding *b);
int store_bind(const char *uri, int create, store_binding *out, char *err, size_t errlen);
void store_unbind(store_binding *b);
/* The lookup a check calls: the store's lookup_auth when it has one (it
 * may leave out what a check never reads), else its lookup. */
typedef int (*store_lookup_fn)(void *handle, const char *id, apikey_record *out);
store_lookup_fn store_check_lookup(const apikey_store_ops *ops);

/* What a check says of the key's rate limit: all 0 for a key without one. */
typedef struct core_rate {
    uint32_t limit, period, remaining, retry_after;
} core_rate;

/* The one verify pipeline (verify.c); verify_api.c offers it to hosts.
 * rate may be NULL. flags: 0 or CORE_VERIFY_NO_CELL. */
apikey_decision core_verify(apikey_ctx *ctx, const char *service, const char *account,
                            const char *key, size_t keylen, const char *client,
                            apikey_result *res, core_rate *rate, unsigned flags);
/* A second check of a request already counted (the PAM module's account
 * phase after its auth phase): it spends no cell of the key's rate limit,
 * so a login costs one. */
#define CORE_VERIFY_NO_CELL 1u
/* apikey_verify_with with flags. */
apikey_decision core_verify_with(apikey_ctx *ctx, const apikey_verify_request *req,
                                 apikey_verdict *out, unsigned flags);

/* The growing structs of include/apikey.h (see "Growing structs" there).
 * Whether the bytes of a caller's struct past the known ones are all zero;
 * and a struct the library filled (mine) copied into the caller's, the
 * rest zeroed, returning the bytes written for its size field. */
int core_tail_zero(const void *theirs, size_t known, size_t their_size);
size_t core_sized_out(const void *mine, size_t my_size, void *theirs, size_t their_size);

/* Hashing of a whole key (hash.c): SHA-256, or HMAC-SHA256 with the pepper. */
int core_hash_key(const apikey_ctx *ctx, const char *key, size_t len,
                  unsigned char out[APIKEY_HASH_LEN]);
int core_load_pepper(apikey_ctx *ctx, char *err, size_t errlen);

/* Whether rec grants every scope of the space-separated list need. */
int scopes_grant(const char *have, const char *need);

/* The public id of a record: "<prefix>_<id>". */
void core_public_id(const apikey_ctx *ctx, const char *id, char *out, size_t len);

/* A record's state at now (policy.c, with scopes_grant). */
apikey_key_state core_key_state(const apikey_record *rec, int64_t now);

/* Zero what held a key or its hash, in line: a memset of a size known here
 * compiles to a few stores, and the asm that may read the memory keeps the
 * compiler from dropping them as dead stores, as explicit_bzero does, but
 * without a call into libc on every check. */
static inline void wipe_secret(void *p, size_t n)
{
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

#endif
