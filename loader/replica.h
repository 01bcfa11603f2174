/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A host's replica (doc/STORES.md, "A fleet"): the folder of
 * `replica =` that apikey-syncd keeps, holding
 *   keys.db   an SQLite store (the sqlite backend's tables), read by hosts
 *             through the sqlite backend like any "sqlite:" store;
 *   contact   one line, "apikey-replica 1 <ms> <seq>\n": the time (Unix
 *             milliseconds) at which syncd last found the replica holding
 *             every change of the store of record, and the last change
 *             applied. syncd replaces it (rename) at least once a second.
 * A host trusts keys.db until contact's time plus replica_max_lag; then it
 * asks the store of record (`store =`) directly.
 */
#ifndef APIKEY_REPLICA_H
#define APIKEY_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "apikey_store.h"

#define REPLICA_DB "keys.db"
#define REPLICA_CONTACT "contact"
#define REPLICA_CONTACT_MAX 96
/* A datagram socket syncd reads: "<id> <unix seconds>\n" per use of a key
 * on this host, which syncd carries to the store of record's last_used. */
#define REPLICA_USES "uses.sock"

typedef struct replica_contact {
    int64_t at_ms; /* last confirmed contact, Unix ms */
    int64_t seq;   /* last change applied */
} replica_contact;

/* The line for contact (NUL-terminated in buf): its length, or -1. */
int replica_contact_format(const replica_contact *c, char *buf, size_t cap);
/* Read folder's contact strictly (file checks as for a store): 0, or -1
 * with a reason in why. */
int replica_contact_read(const char *folder, replica_contact *c, char *why, size_t whylen);
/* Now, in Unix milliseconds. */
int64_t replica_now_ms(void);

struct apikey_ctx;
/* The replica of ctx's configuration (ctx->cfg.replica set): 0, or -1 with
 * err. Nothing is opened before the first check. */
int replica_attach(struct apikey_ctx *ctx, char *err, size_t errlen);
void replica_detach(struct apikey_ctx *ctx);
/* A lookup on the replica while it is trusted: a store status; or
 * REPLICA_STALE, when the caller asks the store of record instead (the
 * replica is older than replica_max_lag, or cannot be read). */
#define REPLICA_STALE (-1)
/* held: replica_prefetch's answer for this id (the shared lock, which this
 * releases). */
int replica_lookup(struct apikey_ctx *ctx, const char *id, apikey_record *out, int held);
/* Whether the replica is trusted now (then a check is answered from it
 * without the store of record): 1 or 0. */
int replica_trusted_now(struct apikey_ctx *ctx);
/* Tell syncd that key id was used at when: best effort, never blocking,
 * at most once per last_used_granularity per key and process. */
void replica_touch(struct apikey_ctx *ctx, const char *id, int64_t when);
/* Fetch into the cache what replica_touch and the lookup will read for
 * id, and take the replica's shared lock for the lookup (1: held, for
 * replica_lookup, or replica_release when the check ends before it). */
int replica_prefetch(struct apikey_ctx *ctx, const char *id);
void replica_release(struct apikey_ctx *ctx);

#endif
