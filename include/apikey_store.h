/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * apikey_store.h - the ABI between libapikey and a store backend: all a
 * third party needs to write a store. Every rule a backend must follow is
 * stated here; doc/STORES.md describes the three stores shipped.
 *
 * THE FILE. A backend is a shared object apikey_store_<scheme>.so that
 * exports one symbol, APIKEY_STORE_ENTRY, a function returning its
 * operations table (a static const table: the core never frees it).
 *   - The scheme is 1 to 15 lowercase ASCII letters (a-z, nothing else),
 *     the part before ':' in the configuration's "store = scheme:location".
 *     It is the file's name and ops->scheme, byte for byte.
 *   - It is installed in the store folder: `pkg-config --variable=storedir
 *     apikey` (the build's STOREDIR, /usr/local/lib/apikey/store by
 *     default), a regular file owned by root (or the user running the
 *     program) and writable by no one else, in folders that pass the same
 *     test: the core refuses any other file. An unprivileged process also looks in
 *     $APIKEY_STORE_DIR, then in store/ beside libapikey (a build tree).
 *   - It links nothing of the core: what it needs of the core comes in
 *     apikey_store_host. It must export nothing else (store/store.map).
 *
 * VERSIONS. Two numbers; SQLite's VFS has only the first (its iVersion):
 *   - ops->size is sizeof(apikey_store_ops) the backend was built with: it
 *     says which slots exist. The table only grows at its end; the core
 *     checks APIKEY_STORE_HAS() before it reads a slot newer than touch.
 *     The same holds, the other way, for apikey_store_host and
 *     APIKEY_STORE_HOST_HAS(), and a backend refuses a core whose records
 *     are smaller than its own: apikey_store_host_check() in its open.
 *   - ops->abi is APIKEY_STORE_ABI_VERSION: the version of the rules below
 *     the backend follows. The core refuses a backend whose abi is 0. A
 *     rule that an old backend would break gets a new version (and, if the
 *     table's meaning changes, a new entry symbol), never a silent change.
 *
 * RECORDS. A backend stores records and enforces nothing but integrity:
 *   - ids are unique (insert of a present id: CONFLICT);
 *   - a revocation is permanent: once a record's revoked is nonzero, an
 *     update that clears it or changes its time is refused with CONFLICT
 *     and changes nothing;
 *   - every record it decodes passes apikey_record_ok() (below), else the
 *     answer is UNAVAILABLE: a value it cannot read never passes for
 *     "not revoked" or "never expires".
 * It never sees a key or secret, only the id and the one-way hash, and it
 * never logs, prints or returns the hash other than in a record. Policy
 * (limits, scopes, expiry) lives in libapikey.
 *
 * STATUS AND LOGGING. Every slot returns an APIKEY_ST_* code. "Not found"
 * is kept apart from "unavailable" (as glibc NSS does), so a store that is
 * down never looks like a bad key.
 *   - UNAVAILABLE (I/O, a corrupt store or record, a database down): the
 *     backend reports the cause itself, one line through host->log_error,
 *     naming the store and what failed (never a key or hash). The core
 *     hands that line to its caller, and only the caller's adapter (the
 *     PAM module, the helper, the command, a host) prints or logs it.
 *   - NOMEM: not logged; the core reports it.
 *   - NOTFOUND, CONFLICT, STOP: answers, not failures; not logged.
 *
 * THREADS. A handle is used by one thread at a time, unless flags holds
 * APIKEY_STORE_CONCURRENT_LOOKUP: then lookup (and lookup_auth) may run in
 * several threads at once, never beside any other call on that handle.
 * Separate handles (two contexts) may be used in separate threads at once,
 * so a backend keeps no state outside its handle that is not thread-safe.
 */
#ifndef APIKEY_STORE_H
#define APIKEY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "apikey_key.h"

/* 2: records carry allow_from, which a backend keeps and returns as it
 * keeps the other texts. The record grew, so the core refuses a backend of
 * abi 1 (built with the smaller record): rebuild it.
 * 3: records carry a rate limit (rate_limit, rate_period, rate_burst),
 * kept and returned as the times are; the record grew again, so a backend
 * of abi 2 is refused too. */
#define APIKEY_STORE_ABI_VERSION 3
#define APIKEY_STORE_ENTRY "apikey_store_entry_v1"

enum {
    APIKEY_ST_OK = 0,
    APIKEY_ST_NOTFOUND = 1,
    APIKEY_ST_UNAVAILABLE = 2, /* I/O, corrupt store, database down */
    APIKEY_ST_CONFLICT = 3,    /* id already present, or a revocation cleared or moved */
    APIKEY_ST_NOMEM = 4,
    APIKEY_ST_STOP = 5,        /* returned by an each() callback to stop early */
};

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
    /* The address allowlist, as apikey_key.h says: canonical entries
     * separated by one space, "" for any address. The backend stores the
     * text as it is; the core parses and enforces it. (ABI 2) */
    char allow_from[APIKEY_ALLOW_FROM_MAX];
    /* The key's rate limit (ABI 3): rate_limit requests per rate_period
     * seconds (1, 60 or 3600), at most rate_burst at once; all three 0 for
     * no limit. The backend keeps the numbers; the core enforces them. */
    uint32_t rate_limit;  /* 0, or 1 to APIKEY_RATE_MAX */
    uint32_t rate_period; /* 0 (no limit), 1, 60 or 3600 */
    uint32_t rate_burst;  /* 0 (no limit), or 1 to APIKEY_RATE_MAX */
} apikey_record;

#define APIKEY_RATE_MAX 1000000u

/* No limit (all three 0), or a limit and a burst in range over a period of
 * 1, 60 or 3600 seconds. */
static inline int apikey_record_rate_ok(const apikey_record *r)
{
    if (r->rate_limit == 0)
        return r->rate_period == 0 && r->rate_burst == 0;
    return r->rate_limit <= APIKEY_RATE_MAX && r->rate_burst >= 1 &&
           r->rate_burst <= APIKEY_RATE_MAX &&
           (r->rate_period == 1 || r->rate_period == 60 || r->rate_period == 3600);
}

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

/* The length of the UTF-8 character that s (n bytes) starts with, its code
 * point in *cp; 0 when s does not start with one: a stray continuation
 * byte, a sequence cut short, an overlong form, a surrogate, or past
 * U+10FFFF. JSON holds only valid UTF-8: the JSON store checks each text
 * with it before it writes, and libapikey refuses any other text at once. */
static inline size_t apikey_utf8_char(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0)
        return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    size_t len = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc0 ? 2 : 0;
    if (len == 0 || u[0] > 0xf4 || n < len)
        return 0;
    uint32_t c = u[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (u[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < least[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
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
 * The name, the scopes and allow_from may be empty (lookup_auth leaves the
 * name so). Whether allow_from parses is the core's to check. The rate
 * limit passes apikey_record_rate_ok. */
static inline int apikey_record_ok(const apikey_record *r)
{
    for (int i = 0; i < APIKEY_ID_LEN; i++) {
        char c = r->id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return r->id[APIKEY_ID_LEN] == '\0' && apikey_text_ok_(r->account, sizeof r->account, 0) &&
           apikey_text_ok_(r->name, sizeof r->name, 1) &&
           apikey_text_ok_(r->scopes, sizeof r->scopes, 1) &&
           apikey_text_ok_(r->allow_from, sizeof r->allow_from, 1) && apikey_record_times_ok(r) &&
           apikey_record_rate_ok(r);
}

/* What the core offers a backend. */
typedef struct apikey_store_host {
    size_t size;
    /* One clear line for the operator. The core keeps it and hands it to
     * its caller (err, apikey_verdict.error); the library never prints it. */
    void (*log_error)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    /* Refuse a file that is group/world-writable, or owned by someone other than
     * root or the caller, or not a regular file, or that lies in a folder
     * (from its own up to /) that is owned by someone else, or group- or
     * world-writable and not sticky. Returns 0 when acceptable, else -1 with
     * a reason in why. fd is an open descriptor of the file, path its name.
     * A file-based backend runs it on every file it reads (the store and
     * any side file: index, lock, journal) before it trusts the content,
     * and answers UNAVAILABLE, logged with the reason, for one it refuses. */
    int (*check_file)(int fd, const char *path, char *why, size_t whylen);
    /* Fields added later go here; a backend checks APIKEY_STORE_HOST_HAS first. */

    /* Nonzero in a privileged process (a PAM module, or AT_SECURE: su, sudo,
     * login, sshd), where the caller may control the environment. The
     * backend then takes nothing from the environment, neither itself nor
     * through the libraries it links (libpq's PG*, SQLite's temporary
     * folders, ...): the location in the configuration is all there is. */
    int privileged;

    /* sizeof(apikey_record) of the core: the room in every record it hands
     * a backend. A size_t, not an int, so that the host table grows: an
     * int would sit in the padding after privileged, where a core that
     * never set it leaves anything. */
    size_t record_size;
} apikey_store_host;

/* Whether the core that opened a backend is recent enough to offer a field. */
#define APIKEY_STORE_HOST_HAS(host, field) \
    ((host)->size >= offsetof(apikey_store_host, field) + sizeof(((apikey_store_host *)0)->field))

/* The first thing every backend's open does: refuse a core whose records
 * are smaller than this header's (libapikey of an earlier release, left
 * behind by a partial upgrade: its apikey_record has no allow_from, and a
 * lookup would write past it). Returns APIKEY_ST_OK, or logs one line and
 * returns APIKEY_ST_UNAVAILABLE, which open returns as it is. */
static inline int apikey_store_host_check(const apikey_store_host *host, const char *scheme)
{
    if (APIKEY_STORE_HOST_HAS(host, record_size) && host->record_size >= sizeof(apikey_record))
        return APIKEY_ST_OK;
    host->log_error("store %s: refused: libapikey is older than this store backend (its key "
                    "records are smaller); install libapikey and the store backends of one release",
                    scheme);
    return APIKEY_ST_UNAVAILABLE;
}

typedef int (*apikey_record_cb)(const apikey_record *rec, void *arg);

typedef struct apikey_store_ops {
    size_t size;     /* sizeof(apikey_store_ops) the backend was built with */
    unsigned abi;    /* APIKEY_STORE_ABI_VERSION: the rules it follows */
    const char *scheme; /* "json", "sqlite", "pgsql": see THE FILE above */

    /* Every slot from open to touch is required (the core refuses a table
     * without them). */

    /* location is what follows "scheme:" in the configuration. create: make
     * the store when missing (admin commands); hosts open with create = 0 and
     * a missing store is then UNAVAILABLE, either here or, for a backend
     * that opens at its first read, from that read (never an empty store).
     * host outlives the handle. On OK, *handle is the backend's own; else it
     * is left alone and nothing is held. A privileged host
     * (host->privileged) must be obeyed here and in every later call. */
    int (*open)(const char *location, int create, const apikey_store_host *host, void **handle);
    /* Frees all; a transaction still open is rolled back. */
    void (*close)(void *handle);

    /* Hot path: fetch one record by id (APIKEY_ID_LEN characters and a NUL)
     * from the store of record, seeing every committed change (no cache that
     * could hide a revocation), and, inside a transaction, that
     * transaction's own writes. OK, NOTFOUND or UNAVAILABLE (or NOMEM).
     * On OK, out holds the record, which passed apikey_record_ok. On any
     * other answer out holds nothing of use: the core reads none of it. A
     * miss should cost what a hit costs (timing must not tell which ids
     * exist): a backend may read a neighbour into out to do so. */
    int (*lookup)(void *handle, const char *id, apikey_record *out);

    /* Every record, or those of one account (NULL: all), in creation order,
     * each as lookup gives it, inside a transaction with its own writes.
     * The callback returns OK to go on, APIKEY_ST_STOP to end the walk with
     * OK, or any other code to end it with that code. The callback must
     * not call back into this handle (no lookup, no write, no nested
     * each): the backend may hold a statement, a lock or a cursor open
     * meanwhile. Another store's handle is fine (apikey copy writes to
     * one). rec is valid only during the call. */
    int (*each)(void *handle, const char *account, apikey_record_cb cb, void *arg);

    /* A write transaction: exclusive against other writers in any process or
     * host, reads inside it see the latest committed state and its own
     * writes, and commit makes everything durable at once or nothing at all.
     * No nesting: begin inside a transaction is a caller error.
     * begin: OK or UNAVAILABLE (e.g. the lock cannot be had). */
    int (*begin)(void *handle);
    /* Inside a transaction only. insert: the id must be new (CONFLICT; the
     * core draws a new id then, and does not look a new id up first).
     * update: the id must exist (NOTFOUND); every field but id is replaced;
     * clearing or changing a revocation is CONFLICT (see RECORDS). A refused
     * write changes nothing, and the transaction stays usable. */
    int (*insert)(void *handle, const apikey_record *rec);
    int (*update)(void *handle, const apikey_record *rec);
    /* Ends the transaction either way: OK, all of it durable; else nothing
     * of it applied (UNAVAILABLE, logged, or NOMEM). */
    int (*commit)(void *handle);
    /* Ends the transaction, applying nothing. Never fails. */
    void (*rollback)(void *handle);

    /* Record a use: raise last_used to when if it is earlier (never lower
     * it). Best effort and without blocking: a failure (read-only store,
     * busy lock) is ignored by the caller. Called outside any transaction.
     * OK (also when nothing changed), NOTFOUND or UNAVAILABLE. */
    int (*touch)(void *handle, const char *id, int64_t when);

    /* APIKEY_STORE_* flags. Read only when ->size covers it. */
    unsigned flags;
    /* Slots added later go here; the core checks ->size before use. */

    /* Optional (NULL: none), and only for a store with
     * APIKEY_STORE_CONCURRENT_LOOKUP: id is about to be looked up. Called
     * once the key has passed its check, before it is hashed, so that the
     * store can start fetching the id's record into the CPU cache (memory
     * latency, overlapped with the hash). A hint: it may not block, fail,
     * nor read anything but memory the handle holds. */
    void (*prefetch)(void *handle, const char *id);
    /* Optional (NULL: lookup is used). lookup for a verification, which
     * reads neither name nor created: they may be left empty and 0. Every
     * other rule of lookup holds. */
    int (*lookup_auth)(void *handle, const char *id, apikey_record *out);
    /* Optional (NULL: each is used). Inside a transaction: in *count, how
     * many of account's records each would give that are active at now
     * (not revoked, and never expiring or expiring after now), as the
     * count for the per-account limit, under the lock each would hold.
     * A record that cannot be read is counted (a limit errs toward
     * refusing a new key). OK, UNAVAILABLE or NOMEM; *count is set on OK. */
    int (*count_active)(void *handle, const char *account, int64_t now, uint64_t *count);
} apikey_store_ops;

/* lookup() may run in several threads at once on one handle (every other
 * call is still made by one thread at a time, never beside a lookup). */
#define APIKEY_STORE_CONCURRENT_LOOKUP 1u
/* Every call answers from local files and never waits on a network: hosts
 * with an event loop may check inline. A backend without it is taken to
 * block (apikey_store_may_block). */
#define APIKEY_STORE_LOCAL 2u

/* Whether a backend's table is recent enough to hold a slot. */
#define APIKEY_STORE_HAS(ops, field) \
    ((ops)->size >= offsetof(apikey_store_ops, field) + sizeof(((apikey_store_ops *)0)->field))

typedef const apikey_store_ops *(*apikey_store_entry_fn)(void);

#endif
