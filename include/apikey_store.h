/*
 * apikey_store.h - the ABI between libapikey and a store backend.
 *
 * A backend is a shared object build/store/apikey_store_<scheme>.so that
 * exports one symbol, APIKEY_STORE_ENTRY, returning its operations table.
 * libapikey loads only the backend that the configuration names.
 *
 * Versioning follows SQLite's VFS: the table only grows at its end, and its
 * first field is its size. The core checks ->size before it calls a slot that
 * a newer ABI added, so an old backend keeps working with a newer core. The
 * core hands its services to the backend in apikey_store_host (also sized),
 * so a backend links nothing of the core.
 *
 * A backend reads and writes records and enforces nothing but integrity (ids
 * unique, revocation permanent). It never sees a key or secret: only the id
 * and the one-way hash. Policy (limits, scopes, expiry) lives in libapikey.
 *
 * Status codes keep "not found" apart from "unavailable" (as glibc NSS does),
 * so a store that is down never looks like a bad key.
 */
#ifndef APIKEY_STORE_H
#define APIKEY_STORE_H

#include <stddef.h>
#include <stdint.h>

#define APIKEY_STORE_ABI_VERSION 1
#define APIKEY_STORE_ENTRY "apikey_store_entry_v1"

enum {
    APIKEY_ST_OK = 0,
    APIKEY_ST_NOTFOUND = 1,
    APIKEY_ST_UNAVAILABLE = 2, /* I/O, corrupt store, database down */
    APIKEY_ST_CONFLICT = 3,    /* id already present, or un-revoking */
    APIKEY_ST_NOMEM = 4,
    APIKEY_ST_STOP = 5,        /* returned by an each() callback to stop early */
};

#define APIKEY_ID_LEN 8
#define APIKEY_HASH_LEN 32
#define APIKEY_ACCOUNT_MAX 256 /* including the NUL */
#define APIKEY_NAME_MAX 256
#define APIKEY_SCOPES_MAX 1024 /* space-separated scope names, or "*" */

typedef struct apikey_record {
    char id[APIKEY_ID_LEN + 1]; /* 8 base62 characters, unique */
    char account[APIKEY_ACCOUNT_MAX];
    char name[APIKEY_NAME_MAX];
    char scopes[APIKEY_SCOPES_MAX];
    unsigned char hash[APIKEY_HASH_LEN]; /* SHA-256 or HMAC-SHA256 of the whole key */
    int64_t created;   /* Unix seconds */
    int64_t expires;   /* 0: never */
    int64_t last_used; /* 0: never */
    int64_t revoked;   /* 0: not revoked; else when */
} apikey_record;

/* The latest time a record holds, 9999-12-31T23:59:59Z: the last that the
 * JSON store can write. */
#define APIKEY_TIME_MAX INT64_C(253402300799)

static inline int apikey_text_ok_(const char *s, size_t cap, int may_be_empty)
{
    size_t n = 0;
    for (; n < cap && s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
            return 0;
    return n < cap && (n > 0 || may_be_empty);
}

static inline int apikey_time_ok_(int64_t t, int may_be_zero)
{
    return (t == 0 && may_be_zero) || (t > 0 && t <= APIKEY_TIME_MAX);
}

/* A creation time, and every other time 0 or in range. */
static inline int apikey_record_times_ok(const apikey_record *r)
{
    return apikey_time_ok_(r->created, 0) && apikey_time_ok_(r->expires, 1) &&
           apikey_time_ok_(r->last_used, 1) && apikey_time_ok_(r->revoked, 1);
}

/* Whether a record decoded from a store holds what a store may hold: an id
 * of 8 base62 characters, an account, texts without control characters,
 * a creation time, and every other time either 0 ("never", "not revoked")
 * or a time from 1970-01-01T00:00:01Z to APIKEY_TIME_MAX. A backend
 * checks every record it decodes and answers UNAVAILABLE (a corrupt
 * record) for one that fails, after checking each value's type: a value
 * it cannot read must never pass for "not revoked" or "never expires".
 * The name may be empty (lookup_auth leaves it so). */
static inline int apikey_record_ok(const apikey_record *r)
{
    for (int i = 0; i < APIKEY_ID_LEN; i++) {
        char c = r->id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return r->id[APIKEY_ID_LEN] == '\0' && apikey_text_ok_(r->account, sizeof r->account, 0) &&
           apikey_text_ok_(r->name, sizeof r->name, 1) &&
           apikey_text_ok_(r->scopes, sizeof r->scopes, 1) && apikey_record_times_ok(r);
}

/* What the core offers a backend. */
typedef struct apikey_store_host {
    size_t size;
    /* One clear line for the operator: the core routes it to stderr or syslog. */
    void (*log_error)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    /* Refuse a file that is group/world-writable, or owned by someone other than
     * root or the caller, or not a regular file, or that lies in a folder
     * (from its own up to /) that is owned by someone else, or group- or
     * world-writable and not sticky. Returns 0 when acceptable, else -1 with
     * a reason in why. fd is an open descriptor of the file, path its name. */
    int (*check_file)(int fd, const char *path, char *why, size_t whylen);
    /* Fields added later go here; a backend checks STORE_HOST_HAS first. */

    /* Nonzero in a privileged process (a PAM module, or AT_SECURE: su, sudo,
     * login, sshd), where the caller may control the environment. The
     * backend then takes nothing from the environment, neither itself nor
     * through the libraries it links (libpq's PG*, SQLite's temporary
     * folders, ...): the location in the configuration is all there is. */
    int privileged;
} apikey_store_host;

/* Whether the core that opened a backend is recent enough to offer a field. */
#define STORE_HOST_HAS(host, field) \
    ((host)->size >= offsetof(apikey_store_host, field) + sizeof(((apikey_store_host *)0)->field))

typedef int (*apikey_record_cb)(const apikey_record *rec, void *arg);

typedef struct apikey_store_ops {
    size_t size;     /* sizeof(apikey_store_ops) the backend was built with */
    unsigned abi;    /* APIKEY_STORE_ABI_VERSION */
    const char *scheme; /* "json", "sqlite", "pgsql" */

    /* location is what follows "scheme:" in the configuration. create: make
     * the store when missing (admin commands); hosts open with create = 0 and
     * a missing store is then unavailable. */
    int (*open)(const char *location, int create, const apikey_store_host *host, void **handle);
    void (*close)(void *handle);

    /* Hot path: fetch one record by id from the store of record, seeing every
     * committed change. OK, NOTFOUND or UNAVAILABLE. A miss should cost
     * what a hit costs (timing must not tell which ids exist): a backend may
     * read a neighbour into out, which then holds nothing of use. */
    int (*lookup)(void *handle, const char *id, apikey_record *out);

    /* Every record, or those of one account (NULL: all), in creation order.
     * The callback returning APIKEY_ST_STOP ends the walk with OK. */
    int (*each)(void *handle, const char *account, apikey_record_cb cb, void *arg);

    /* A write transaction: exclusive against other writers in any process or
     * host, reads inside it see the latest committed state, and commit makes
     * everything durable at once or nothing at all. */
    int (*begin)(void *handle);
    /* Insert (id must be new: CONFLICT) or update (id must exist: NOTFOUND).
     * A backend refuses to clear a revocation (CONFLICT). */
    int (*insert)(void *handle, const apikey_record *rec);
    int (*update)(void *handle, const apikey_record *rec);
    int (*commit)(void *handle);
    void (*rollback)(void *handle);

    /* Record a use, best effort and without blocking: a failure (read-only
     * store, busy lock) is ignored by the caller. Outside any transaction. */
    int (*touch)(void *handle, const char *id, int64_t when);

    /* APIKEY_STORE_* flags. Read only when ->size covers it. */
    unsigned flags;
    /* Slots added later go here; the core checks ->size before use. */

    /* Optional (NULL: none). A hint that a lookup of id follows soon: start
     * fetching what it will read, so the memory latency overlaps the
     * hashing of the key that the core does meanwhile. Must not block. */
    void (*prefetch)(void *handle, const char *id);
    /* Optional (NULL: lookup is used). lookup for a verification, which
     * reads neither name nor created: they may be left empty and 0. */
    int (*lookup_auth)(void *handle, const char *id, apikey_record *out);
} apikey_store_ops;

/* lookup() may run in several threads at once on one handle (every other
 * call is still made by one thread at a time, never beside a lookup). */
#define APIKEY_STORE_CONCURRENT_LOOKUP 1u

/* Whether a backend's table is recent enough to hold a slot. */
#define STORE_HAS(ops, field) \
    ((ops)->size >= offsetof(apikey_store_ops, field) + sizeof(((apikey_store_ops *)0)->field))

typedef const apikey_store_ops *(*apikey_store_entry_fn)(void);

#endif
