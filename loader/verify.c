/* SPDX-License-Identifier: BSD-2-Clause */
/* The one verify pipeline behind the PAM module, the helper, the command and
 * the host API: check, lookup, constant-time compare, revoked/expired,
 * allowlist, account, scopes, and last the rate limit. */
#include <string.h>
#include <openssl/crypto.h>

#include "core.h"
#include "cidr.h"
#include "hot_path.h"
#include "keycodec.h"
#include "replica.h"

/* OpenSSL's constant-time comparison: no early exit on the first byte that
 * differs. A word-wise compare of our own saved about 230 instructions of a
 * check's 4,500 (branch jsonhot); the comparison that guards every key stays
 * the well-kept library's. */
HOT_PATH static int hash_differs(const unsigned char *a, const unsigned char *b)
{
    return CRYPTO_memcmp(a, b, APIKEY_HASH_LEN) != 0;
}

HOT_PATH static apikey_decision decide(apikey_result *res, apikey_decision d, apikey_reason r)
{
    res->decision = d;
    res->reason = r;
    return d;
}

enum { CHECKED, MALFORMED, NO_HASH };

/* Check the key, hash it, then look its id up. A store that allows
 * concurrent lookups is read under the shared lock; any other, or a store that is not
 * open or has just failed, under the exclusive one. Nothing of the store is
 * read before the key has passed its check; a store with a prefetch is
 * told the id then, before the hashing, so that its memory latency and
 * the hash overlap.
 *
 * A store that is not open (a host started while it was down) is opened
 * here, and one that failed is closed, so the next check opens it afresh
 * and a long-lived host recovers by itself. *stage says how far it got;
 * CHECKED: id and want hold the id and the hash, and the store's answer is
 * returned. */
HOT_PATH static int check_and_lookup(apikey_ctx *ctx, const char *key, size_t keylen, char *id,
                            unsigned char want[APIKEY_HASH_LEN], int *stage, apikey_record *rec)
{
    void *used = NULL;
    int st = APIKEY_ST_UNAVAILABLE;
    *stage = MALFORMED;
    if (keycodec_parse(ctx->cfg.key_prefix, key, keylen, id) != 0)
        return st;
    *stage = NO_HASH;
    /* A store read in place with no replica before it (the JSON store):
     * one hold of the shared lock covers its prefetch, the hash and the
     * lookup, where a hold for each cost a lock round trip more a check. */
    int direct = ctx->concurrent_lookup && !ctx->replica && !core_store_stalled(ctx);
    if (direct || ctx->prefetch)
        pthread_rwlock_rdlock(&ctx->lock);
    if (ctx->prefetch && ctx->store.handle)
        /* The store fetches the id's record into the cache while the key
         * is hashed: at 1,000,000 keys that miss was the costliest step. */
        ctx->prefetch(ctx->store.handle, id);
    /* Likewise the key's slot of the rate table, once a key with a limit
     * has opened it here (a host whose keys have none never maps it). */
    rate_prefetch(&ctx->rate, id);
    if (!direct && ctx->prefetch)
        pthread_rwlock_unlock(&ctx->lock);
    /* An allowed check on a replica reads its set of uses told to syncd
     * last (replica_touch): a miss at 100,000 keys, overlapped here too.
     * The replica's shared lock, taken there, is held to its lookup. */
    int held = ctx->replica && replica_prefetch(ctx, id);
    int hashed = core_hash_key(ctx, key, keylen, want) == 0;
    if (direct) {
        if (hashed && (used = ctx->store.handle))
            st = ctx->lookup_auth(used, id, rec);
        pthread_rwlock_unlock(&ctx->lock);
    }
    if (!hashed) {
        if (held)
            replica_release(ctx);
        return APIKEY_ST_UNAVAILABLE;
    }
    *stage = CHECKED;
    if (direct) {
        if (used && st != APIKEY_ST_UNAVAILABLE)
            return st;
    } else {
        if (ctx->replica && (st = replica_lookup(ctx, id, rec, held)) != REPLICA_STALE)
            return st;
        st = APIKEY_ST_UNAVAILABLE;
        if (core_store_stalled(ctx))
            return st;
        if (ctx->concurrent_lookup) {
            pthread_rwlock_rdlock(&ctx->lock);
            if ((used = ctx->store.handle))
                st = ctx->lookup_auth(used, id, rec);
            pthread_rwlock_unlock(&ctx->lock);
            if (used && st != APIKEY_ST_UNAVAILABLE)
                return st;
        }
    }
    pthread_rwlock_wrlock(&ctx->lock);
    if (!used || used != ctx->store.handle) {
        /* Not tried yet under this handle (or another thread re-opened it). */
        st = core_store_connect(ctx);
        if (st == APIKEY_ST_OK)
            st = ctx->lookup_auth(ctx->store.handle, id, rec);
    }
    if (st == APIKEY_ST_UNAVAILABLE)
        store_disconnect(&ctx->store);
    pthread_rwlock_unlock(&ctx->lock);
    return st;
}

/* One cell of the key's limit, taken only once every other check allowed
 * it: a request refused for another reason never spends the budget. */
HOT_PATH static apikey_decision take_cell(apikey_ctx *ctx, const apikey_record *rec, apikey_result *res,
                                 core_rate *rate)
{
    rate_spec spec = {rec->rate_limit, rec->rate_period, rec->rate_burst};
    rate_answer a;
    char why[320];
    int d = rate_take(&ctx->rate, rec->id, &spec, rate_now_ns(), &a, why, sizeof why);
    rate->limit = rec->rate_limit;
    rate->period = rec->rate_period;
    rate->remaining = a.remaining;
    rate->retry_after = a.retry_after;
    if (d == RATE_ALLOWED)
        return APIKEY_ALLOWED;
    if (d == RATE_LIMITED)
        return decide(res, APIKEY_REFUSED, APIKEY_REASON_RATE);
    if (ctx->cfg.rate_unavailable_allow) {
        /* The operator chose availability over the limit (the verdict
         * still carries why, as a store's warning would be). */
        core_store_host.log_error("%s (rate_unavailable = allow: checked without limit)", why);
        return APIKEY_ALLOWED;
    }
    core_store_host.log_error("%s", why);
    return decide(res, APIKEY_UNAVAILABLE, APIKEY_REASON_STORE);
}

/* Record the use when the last one recorded is a granularity step old.
 * A write that failed (a host that may only read the store: an nginx worker
 * as www-data in the store's group) is not tried again before the next
 * step: it cost a failing open and the exclusive lock at every check. */
HOT_PATH static void touch(apikey_ctx *ctx, const apikey_record *rec, int64_t now)
{
    if (now - rec->last_used < ctx->cfg.last_used_granularity ||
        now < __atomic_load_n(&ctx->touch_after, __ATOMIC_RELAXED))
        return;
    if (ctx->replica) {
        /* apikey-syncd carries it to the store of record. */
        replica_touch(ctx, rec->id, now);
        return;
    }
    int st = APIKEY_ST_UNAVAILABLE;
    pthread_rwlock_wrlock(&ctx->lock);
    if (ctx->store.handle)
        st = ctx->store.ops->touch(ctx->store.handle, rec->id, now);
    pthread_rwlock_unlock(&ctx->lock);
    if (st != APIKEY_ST_OK)
        __atomic_store_n(&ctx->touch_after, now + ctx->cfg.last_used_granularity, __ATOMIC_RELAXED);
}

HOT_PATH apikey_decision core_verify(apikey_ctx *ctx, const char *service, const char *account,
                                     const char *key, size_t keylen, const char *client,
                                     apikey_result *res, core_rate *rate, unsigned flags)
{
    core_rate unused;
    if (!rate)
        rate = &unused;
    memset(rate, 0, sizeof *rate);
    if (!res)
        return APIKEY_UNAVAILABLE;
    memset(res, 0, sizeof *res);
    if (!ctx || !service || (!key && keylen))
        return decide(res, APIKEY_UNAVAILABLE, APIKEY_REASON_ARGUMENT);
    const config_service *svc = config_find_service(&ctx->cfg, service);
    if (!svc)
        return decide(res, APIKEY_REFUSED, APIKEY_REASON_UNMAPPED);
    char id[APIKEY_ID_LEN + 1];
    if (!key)
        return decide(res, APIKEY_REFUSED, APIKEY_REASON_MALFORMED);
    unsigned char want[APIKEY_HASH_LEN];
    apikey_record rec;
    apikey_decision d;
    int stage;
    int st = check_and_lookup(ctx, key, keylen, id, want, &stage, &rec);
    if (stage == MALFORMED)
        return decide(res, APIKEY_REFUSED, APIKEY_REASON_MALFORMED);
    if (stage == NO_HASH) {
        d = decide(res, APIKEY_UNAVAILABLE, APIKEY_REASON_NOMEM);
        goto done;
    }
    if (st == APIKEY_ST_NOTFOUND) {
        /* Compare anyway, so an unknown id costs what a wrong secret costs. */
        memset(rec.hash, 0, sizeof rec.hash);
        int differs = hash_differs(rec.hash, want);
        __asm__ volatile("" : : "r"(differs)); /* kept, though unused */
        d = decide(res, APIKEY_REFUSED, APIKEY_REASON_UNKNOWN);
        goto done;
    }
    if (st != APIKEY_ST_OK) {
        d = decide(res, APIKEY_UNAVAILABLE,
                   st == APIKEY_ST_NOMEM ? APIKEY_REASON_NOMEM : APIKEY_REASON_STORE);
        goto done;
    }
    /* Both ids are APIKEY_ID_LEN characters and a NUL (keycodec_parse, the
     * store): a fixed-size compare, where strcmp was a libc call a check. */
    if (hash_differs(rec.hash, want) || memcmp(rec.id, id, APIKEY_ID_LEN + 1) != 0) {
        d = decide(res, APIKEY_REFUSED, APIKEY_REASON_UNKNOWN);
        goto done;
    }
    core_public_id(ctx, rec.id, res->key_id, sizeof res->key_id);
    memcpy(res->account, rec.account, sizeof res->account);
    int64_t now = ctx->now();
    apikey_key_state ks = core_key_state(&rec, now);
    int allowed;
    if (ks == APIKEY_KEY_REVOKED)
        d = decide(res, APIKEY_REFUSED, APIKEY_REASON_REVOKED);
    else if (ks == APIKEY_KEY_EXPIRED)
        d = decide(res, APIKEY_REFUSED, APIKEY_REASON_EXPIRED);
    else if (rec.allow_from[0] && (allowed = cidr_allows(rec.allow_from, client)) != 1) {
        if (allowed < 0) {
            core_store_host.log_error("store: key %s: its address allowlist cannot be read", res->key_id);
            d = decide(res, APIKEY_UNAVAILABLE, APIKEY_REASON_STORE);
        } else {
            d = decide(res, APIKEY_REFUSED, APIKEY_REASON_ADDRESS);
        }
    } else if (account && strcmp(account, rec.account) != 0)
        d = decide(res, APIKEY_REFUSED, APIKEY_REASON_WRONG_ACCOUNT);
    else if (!scopes_grant(rec.scopes, svc->scopes))
        d = decide(res, APIKEY_REFUSED, APIKEY_REASON_MISSING_SCOPE);
    else
        d = decide(res, APIKEY_ALLOWED, APIKEY_REASON_NONE);
    /* Keys without a limit never touch the table. */
    if (d == APIKEY_ALLOWED && rec.rate_limit && !(flags & CORE_VERIFY_NO_CELL))
        d = take_cell(ctx, &rec, res, rate);
    /* A refused request is never the key's last use. */
    if (d == APIKEY_ALLOWED)
        touch(ctx, &rec, now);
done:
    /* OPENSSL_cleanse wiped a byte at a time, 230 instructions a check for
     * these two; wipe_secret is stores in line (core.h). */
    wipe_secret(want, sizeof want);
    wipe_secret(rec.hash, sizeof rec.hash);
    return d;
}
