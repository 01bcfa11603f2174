/* SPDX-License-Identifier: BSD-2-Clause */
#include "admin.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <openssl/crypto.h>

#include "cidr.h"
#include "logvalue.h"
#include "timeutil.h"

#define ID_ATTEMPTS 16

/* A backend reports its own failure in one line, naming the store; only
 * what it cannot know is added here, so the operator reads one line. */
static apikey_status store_error(char *err, size_t errlen, const char *what, int st)
{
    if (st == APIKEY_ST_UNAVAILABLE) {
        const char *said = core_store_line();
        if (*said)
            snprintf(err, errlen, "%s", said);
        else
            snprintf(err, errlen, "store: %s failed (unavailable)", what);
        return APIKEY_E_UNAVAILABLE;
    }
    snprintf(err, errlen, "store: %s failed (%s)", what,
             st == APIKEY_ST_NOMEM ? "out of memory" : "conflicting record");
    return st == APIKEY_ST_NOMEM ? APIKEY_E_NOMEM : APIKEY_E_CONFLICT;
}

/* Bidirectional controls: they reorder what a terminal, a log viewer or a
 * dashboard shows ("Trojan Source"), so a name could pass for another. */
static int is_bidi_control(uint32_t c)
{
    return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0x200e ||
           c == 0x200f || c == 0x061c;
}

/* Every text a key is stored with passes here, for the command and every
 * host alike: valid UTF-8 (JSON holds nothing else; a store holding other
 * bytes could no longer be read), and nothing that is not printed as
 * itself: C0 and C1 controls (texts end up in tables, logs and
 * tab-separated batch files) and bidirectional controls. */
static int check_text(const char *what, const char *s, size_t max, char *err, size_t errlen)
{
    size_t n = strlen(s);
    if (n == 0) {
        snprintf(err, errlen, "%s is empty", what);
        return -1;
    }
    if (n >= max) {
        snprintf(err, errlen, "%s is longer than %zu bytes", what, max - 1);
        return -1;
    }
    for (size_t i = 0, len; i < n; i += len) {
        uint32_t c;
        if (!(len = apikey_utf8_char(s + i, n - i, &c))) {
            snprintf(err, errlen, "%s is not valid UTF-8 (byte %zu)", what, i + 1);
            return -1;
        }
        if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
            snprintf(err, errlen, "%s holds a control character (newline, tab...)", what);
            return -1;
        }
        if (is_bidi_control(c)) {
            snprintf(err, errlen, "%s holds a bidirectional control character (U+%04X)", what, c);
            return -1;
        }
    }
    return 0;
}

typedef struct count_arg {
    int64_t now;
    const char *skip_id;
    int count;
} count_arg;

static int count_active_cb(const apikey_record *rec, void *arg)
{
    count_arg *c = arg;
    if (core_key_state(rec, c->now) == APIKEY_KEY_ACTIVE && (!c->skip_id || strcmp(rec->id, c->skip_id) != 0))
        c->count++;
    return APIKEY_ST_OK;
}

static int count_active(apikey_ctx *ctx, const char *account, const char *skip_id, int64_t now,
                        int *count)
{
    count_arg c = {.now = now, .skip_id = skip_id};
    int st = ctx->store.ops->each(ctx->store.handle, account, count_active_cb, &c);
    *count = c.count;
    return st;
}

static int validate(apikey_ctx *ctx, const admin_request *r, int64_t now, apikey_record *rec,
                    char *err, size_t errlen)
{
    char why[256];
    memset(rec, 0, sizeof *rec);
    if (check_text("account", r->account ? r->account : "", APIKEY_ACCOUNT_MAX, err, errlen) ||
        check_text("name", r->name ? r->name : "", APIKEY_NAME_MAX, err, errlen))
        return -1;
    if (!r->scopes || !*r->scopes) {
        snprintf(err, errlen, "no scopes given: use --scopes S1,S2 or '*' for every scope");
        return -1;
    }
    if (config_normalise_scopes(&ctx->cfg, r->scopes, rec->scopes, sizeof rec->scopes, why, sizeof why)) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    const char *exp = r->expires ? r->expires : ctx->cfg.default_expiry;
    if (timeutil_expiry(exp, now, &rec->expires) != 0) {
        snprintf(err, errlen, "expiry '%s' is not 30d, 90d, 6m, 1y, 24h, never or YYYY-MM-DD", exp);
        return -1;
    }
    if (rec->expires && rec->expires <= now) {
        snprintf(err, errlen, "expiry '%s' is not in the future", exp);
        return -1;
    }
    if (cidr_canonical_list(r->allow_from, rec->allow_from, why, sizeof why) != 0) {
        snprintf(err, errlen, "allow_from: %s", why);
        return -1;
    }
    rate_spec rate = ctx->cfg.default_rate;
    if (r->rate && strcmp(r->rate, "none") == 0)
        rate = (rate_spec){0, 0, 0};
    else if (r->rate && rate_parse(r->rate, &rate, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (r->burst && !rate.limit) {
        snprintf(err, errlen, "a burst needs a rate: use --rate N/s, N/min or N/h");
        return -1;
    }
    if (r->burst > APIKEY_RATE_MAX) {
        snprintf(err, errlen, "burst %u is above %u", r->burst, APIKEY_RATE_MAX);
        return -1;
    }
    rec->rate_limit = rate.limit;
    rec->rate_period = rate.period;
    rec->rate_burst = r->burst ? r->burst : rate.burst;
    snprintf(rec->account, sizeof rec->account, "%s", r->account);
    snprintf(rec->name, sizeof rec->name, "%s", r->name);
    rec->created = now;
    return 0;
}

/* Fill in id, key and hash of a record validated above, and insert it.
 * The insert is the id's check: a store refuses a taken id (CONFLICT,
 * apikey_store.h), and a fresh one is drawn. No lookup first: against a
 * database that would be a round trip per key inside the writers' lock. */
static apikey_status issue(apikey_ctx *ctx, admin_issued *out, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < ID_ATTEMPTS; attempt++) {
        if (keycodec_random62(out->rec.id, APIKEY_ID_LEN) != 0) {
            snprintf(err, errlen, "the random number generator failed; nothing was created");
            return APIKEY_E_INTERNAL;
        }
        out->rec.id[APIKEY_ID_LEN] = '\0';
        if (keycodec_make(ctx->cfg.key_prefix, out->rec.id, out->key) != 0 ||
            core_hash_key(ctx, out->key, strlen(out->key), out->rec.hash) != 0) {
            snprintf(err, errlen, "the random number generator or hash failed");
            return APIKEY_E_INTERNAL;
        }
        int st = ctx->store.ops->insert(ctx->store.handle, &out->rec);
        if (st == APIKEY_ST_OK)
            return APIKEY_OK;
        if (st != APIKEY_ST_CONFLICT)
            return store_error(err, errlen, "insert", st);
    }
    snprintf(err, errlen, "could not find a free key id in %d attempts", ID_ATTEMPTS);
    return APIKEY_E_INTERNAL;
}

/* Take the context's lock with its store open. A host's context opens its
 * store at first use, and a verify closes one that failed: open it here
 * too, and close it again when it fails, so a long-lived host recovers.
 * create: make the store when missing (a key is being created), for every
 * caller alike: the command, and a host's management API on a fresh
 * install. */
static apikey_status lock_store(apikey_ctx *ctx, int create, char *err, size_t errlen)
{
    pthread_rwlock_wrlock(&ctx->lock);
    int st = store_connect(&ctx->store, create);
    if (st == APIKEY_ST_OK)
        return APIKEY_OK;
    pthread_rwlock_unlock(&ctx->lock);
    return store_error(err, errlen, "opening", st);
}

static apikey_status unlock_store(apikey_ctx *ctx, apikey_status rc)
{
    if (rc == APIKEY_E_UNAVAILABLE)
        store_disconnect(&ctx->store);
    pthread_rwlock_unlock(&ctx->lock);
    return rc;
}

static apikey_status begin(apikey_ctx *ctx, int create, char *err, size_t errlen)
{
    apikey_status rc = lock_store(ctx, create, err, errlen);
    if (rc != APIKEY_OK)
        return rc;
    int st = ctx->store.ops->begin(ctx->store.handle);
    return st == APIKEY_ST_OK ? APIKEY_OK
                              : unlock_store(ctx, store_error(err, errlen, "starting a write", st));
}

/* Commit when rc says so, else roll back; always releases the lock. */
static apikey_status finish(apikey_ctx *ctx, apikey_status rc, char *err, size_t errlen)
{
    if (rc == APIKEY_OK) {
        int st = ctx->store.ops->commit(ctx->store.handle);
        if (st != APIKEY_ST_OK)
            rc = store_error(err, errlen, "commit", st);
    } else {
        ctx->store.ops->rollback(ctx->store.handle);
    }
    return unlock_store(ctx, rc);
}

static void audit(apikey_ctx *ctx, const char *what, const apikey_record *rec, const char *extra)
{
    char pid[APIKEY_KEY_ID_MAX];
    core_public_id(ctx, rec->id, pid, sizeof pid);
    static int opened;
    if (!opened) {
        openlog("apikey", LOG_PID, LOG_AUTHPRIV);
        opened = 1;
    }
    /* Account and name are whatever the caller chose ("x allow_from=10.0.0.0/8
     * revoked"): each stays one field (common/logvalue.h). */
    char account[LOG_VALUE_LEN], name[LOG_VALUE_LEN], allow[LOG_VALUE_LEN];
    syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s key %s account=%s name=%s%s%s%s", what, pid,
           log_value(rec->account, account, sizeof account), log_value(rec->name, name, sizeof name),
           rec->allow_from[0] ? " allow_from=" : "",
           rec->allow_from[0] ? log_value(rec->allow_from, allow, sizeof allow) : "", extra ? extra : "");
}

static apikey_status limit_refusal(const char *account, int count, char *err, size_t errlen)
{
    snprintf(err, errlen, "account %s has %d active key%s, the limit; revoke or rotate one first",
             account, count, count == 1 ? "" : "s");
    return APIKEY_E_LIMIT;
}

/* Refuse when the account would hold more active keys than the limit. */
static apikey_status check_limit(apikey_ctx *ctx, const char *account, const char *skip_id, int64_t now,
                       char *err, size_t errlen)
{
    int count;
    int st = count_active(ctx, account, skip_id, now, &count);
    if (st != APIKEY_ST_OK)
        return store_error(err, errlen, "counting keys", st);
    if (count >= ctx->cfg.max_keys_per_account)
        return limit_refusal(account, count, err, errlen);
    return APIKEY_OK;
}

/* Active keys per account of a batch, counted in one pass over the store:
 * a batch of a million lines must not walk the store a million times. */
typedef struct tally_entry {
    const char *account;
    int count;
} tally_entry;

typedef struct tally {
    tally_entry *v;
    size_t n;
    int64_t now;
} tally;

static int cmp_tally(const void *a, const void *b)
{
    return strcmp(((const tally_entry *)a)->account, ((const tally_entry *)b)->account);
}

static tally_entry *tally_find(const tally *t, const char *account)
{
    tally_entry key = {.account = account};
    return bsearch(&key, t->v, t->n, sizeof *t->v, cmp_tally);
}

static int tally_cb(const apikey_record *rec, void *arg)
{
    tally *t = arg;
    tally_entry *e;
    if (core_key_state(rec, t->now) == APIKEY_KEY_ACTIVE && (e = tally_find(t, rec->account)))
        e->count++;
    return APIKEY_ST_OK;
}

static int tally_build(apikey_ctx *ctx, const admin_issued *out, size_t n, int64_t now, tally *t)
{
    t->now = now;
    t->n = 0;
    if (!(t->v = calloc(n, sizeof *t->v)))
        return APIKEY_ST_NOMEM;
    for (size_t i = 0; i < n; i++)
        t->v[i].account = out[i].rec.account;
    qsort(t->v, n, sizeof *t->v, cmp_tally);
    for (size_t i = 0; i < n; i++)
        if (t->n == 0 || strcmp(t->v[t->n - 1].account, t->v[i].account) != 0)
            t->v[t->n++] = t->v[i];
    /* One account: let the store count (pgsql: in the database, not
     * every row sent here), else filter (an index in SQL). */
    const apikey_store_ops *ops = ctx->store.ops;
    if (t->n == 1 && APIKEY_STORE_HAS(ops, count_active) && ops->count_active) {
        uint64_t count;
        int st = ops->count_active(ctx->store.handle, t->v[0].account, now, &count);
        if (st == APIKEY_ST_OK)
            t->v[0].count = count > INT_MAX ? INT_MAX : (int)count;
        return st;
    }
    return ops->each(ctx->store.handle, t->n == 1 ? t->v[0].account : NULL, tally_cb, t);
}

apikey_status admin_create(apikey_ctx *ctx, const admin_request *reqs, size_t n, admin_issued *out,
                           char *err, size_t errlen)
{
    int64_t now = ctx->now();
    if (n == 0) {
        snprintf(err, errlen, "no keys requested");
        return APIKEY_E_INVALID;
    }
    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        char why[512];
        if (validate(ctx, &reqs[i], now, &out[i].rec, why, sizeof why) != 0) {
            if (n > 1)
                snprintf(err, errlen, "line %zu: %s; nothing was created", i + 1, why);
            else
                snprintf(err, errlen, "%s", why);
            return APIKEY_E_INVALID;
        }
    }
    apikey_status rc = begin(ctx, 1, err, errlen);
    if (rc != APIKEY_OK)
        return rc;
    tally t = {0};
    int st = tally_build(ctx, out, n, now, &t);
    if (st != APIKEY_ST_OK)
        rc = store_error(err, errlen, "counting keys", st);
    for (size_t i = 0; i < n && rc == APIKEY_OK; i++) {
        tally_entry *e = tally_find(&t, out[i].rec.account);
        if (e->count >= ctx->cfg.max_keys_per_account)
            rc = limit_refusal(e->account, e->count, err, errlen);
        else if ((rc = issue(ctx, &out[i], err, errlen)) == APIKEY_OK)
            e->count++;
        /* An empty err: the store has said why in its line; a second
         * line with nothing to add would only break the one-line rule. */
        if (rc != APIKEY_OK && n > 1 && err[0]) {
            char why[512];
            snprintf(why, sizeof why, "line %zu: %s; nothing was created", i + 1, err);
            snprintf(err, errlen, "%s", why);
        }
    }
    free(t.v);
    rc = finish(ctx, rc, err, errlen);
    if (rc != APIKEY_OK) {
        OPENSSL_cleanse(out, n * sizeof *out);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        audit(ctx, "created", &out[i].rec, NULL);
    return APIKEY_OK;
}

int admin_parse_id(const apikey_ctx *ctx, const char *text, char id[APIKEY_ID_LEN + 1])
{
    size_t p = strlen(ctx->cfg.key_prefix);
    if (strncmp(text, ctx->cfg.key_prefix, p) == 0 && text[p] == '_')
        text += p + 1;
    /* Accept the "ak_20fe9a1c..." form that list prints. */
    size_t n = strlen(text);
    while (n > APIKEY_ID_LEN && text[n - 1] == '.')
        n--;
    if (n != APIKEY_ID_LEN || !keycodec_is_base62(text, n))
        return -1;
    memcpy(id, text, n);
    id[n] = '\0';
    return 0;
}

/* Look up an id, in the write transaction or under the lock; refuses
 * unknown keys. */
static apikey_status find(apikey_ctx *ctx, const char *public_id, apikey_record *rec, char *err,
                          size_t errlen)
{
    char id[APIKEY_ID_LEN + 1];
    if (admin_parse_id(ctx, public_id, id) != 0) {
        /* Never echo more than an id's length: it may be a whole key, pasted. */
        int shown = (int)(strlen(ctx->cfg.key_prefix) + 1 + APIKEY_ID_LEN);
        snprintf(err, errlen, "'%.*s%s' is not a key id such as %s_20fe9a1c", shown, public_id,
                 strlen(public_id) > (size_t)shown ? "..." : "", ctx->cfg.key_prefix);
        return APIKEY_E_INVALID;
    }
    int st = ctx->store.ops->lookup(ctx->store.handle, id, rec);
    if (st == APIKEY_ST_NOTFOUND) {
        snprintf(err, errlen, "no key %s_%s in the store", ctx->cfg.key_prefix, id);
        return APIKEY_E_NOT_FOUND;
    }
    return st == APIKEY_ST_OK ? APIKEY_OK : store_error(err, errlen, "lookup", st);
}

apikey_status admin_get(apikey_ctx *ctx, const char *public_id, apikey_record *rec, char *err,
                        size_t errlen)
{
    apikey_status rc = lock_store(ctx, 0, err, errlen);
    if (rc != APIKEY_OK)
        return rc;
    rc = unlock_store(ctx, find(ctx, public_id, rec, err, errlen));
    OPENSSL_cleanse(rec->hash, sizeof rec->hash); /* never kept beyond need */
    return rc;
}

apikey_status admin_revoke(apikey_ctx *ctx, const char *public_id, char *err, size_t errlen)
{
    apikey_record rec;
    apikey_status rc = begin(ctx, 0, err, errlen);
    if (rc != APIKEY_OK)
        return rc;
    rc = find(ctx, public_id, &rec, err, errlen);
    int already = rc == APIKEY_OK && rec.revoked;
    if (rc == APIKEY_OK && !already) {
        rec.revoked = ctx->now();
        int st = ctx->store.ops->update(ctx->store.handle, &rec);
        if (st != APIKEY_ST_OK)
            rc = store_error(err, errlen, "update", st);
    }
    int wrote = rc == APIKEY_OK && !already;
    /* Nothing written is rolled back, which keeps err as it is. */
    apikey_status fin = finish(ctx, wrote ? APIKEY_OK : APIKEY_E_CONFLICT, err, errlen);
    if (wrote && fin == APIKEY_OK)
        audit(ctx, "revoked", &rec, NULL);
    if (wrote)
        return fin;
    if (already)
        snprintf(err, errlen, "key %s_%s was already revoked", ctx->cfg.key_prefix, rec.id);
    return already ? APIKEY_OK : rc;
}

apikey_status admin_rotate(apikey_ctx *ctx, const char *public_id, const char *grace_text,
                           admin_issued *out, char *err, size_t errlen)
{
    apikey_record old;
    int64_t now = ctx->now(), grace = 0;
    memset(out, 0, sizeof *out);
    if (grace_text && *grace_text && timeutil_after(grace_text, now, &grace) != 0) {
        snprintf(err, errlen, "grace '%s' is not a duration such as 30min, 24h, 7d or 1m", grace_text);
        return APIKEY_E_INVALID;
    }
    grace = grace_text && *grace_text ? grace - now : 0;
    apikey_status rc = begin(ctx, 0, err, errlen);
    if (rc != APIKEY_OK)
        return rc;
    rc = find(ctx, public_id, &old, err, errlen);
    if (rc == APIKEY_OK && core_key_state(&old, now) != APIKEY_KEY_ACTIVE) {
        snprintf(err, errlen, "key %s_%s is %s; only an active key can be rotated",
                 ctx->cfg.key_prefix, old.id, apikey_state_string(core_key_state(&old, now)));
        rc = APIKEY_E_CONFLICT;
    }
    /* The replacement takes the old key's slot, so single-key accounts rotate. */
    if (rc == APIKEY_OK)
        rc = check_limit(ctx, old.account, old.id, now, err, errlen);
    if (rc == APIKEY_OK) {
        out->rec = old;
        out->rec.created = now;
        out->rec.last_used = 0;
        out->rec.expires = old.expires ? now + (old.expires - old.created) : 0;
        rc = issue(ctx, out, err, errlen);
    }
    if (rc == APIKEY_OK) {
        if (grace > 0 && (!old.expires || old.expires > now + grace))
            old.expires = now + grace;
        else if (grace <= 0)
            old.revoked = now;
        int st = ctx->store.ops->update(ctx->store.handle, &old);
        if (st != APIKEY_ST_OK)
            rc = store_error(err, errlen, "update", st);
    }
    rc = finish(ctx, rc, err, errlen);
    if (rc != APIKEY_OK) {
        OPENSSL_cleanse(out, sizeof *out);
        return rc;
    }
    char extra[64];
    char pid[APIKEY_KEY_ID_MAX];
    core_public_id(ctx, out->rec.id, pid, sizeof pid);
    snprintf(extra, sizeof extra, " replaced_by=%s grace=%llds", pid, (long long)grace);
    audit(ctx, "rotated", &old, extra);
    audit(ctx, "created", &out->rec, NULL);
    return APIKEY_OK;
}

apikey_status admin_each(apikey_ctx *ctx, const char *account, apikey_record_cb cb, void *arg,
                         char *err, size_t errlen)
{
    apikey_status rc = lock_store(ctx, 0, err, errlen);
    if (rc != APIKEY_OK)
        return rc;
    int st = ctx->store.ops->each(ctx->store.handle, account, cb, arg);
    return unlock_store(ctx, st == APIKEY_ST_OK ? APIKEY_OK : store_error(err, errlen, "reading keys", st));
}

/* The target's ids, read once: a key it does not hold is inserted without a
 * lookup, so a pgsql target takes the inserts in batches (pgsql_store.c)
 * instead of one round trip per key. Fixed-width, sorted, searched. */
typedef struct id_set {
    char (*ids)[APIKEY_ID_LEN];
    size_t n, cap;
} id_set;

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, APIKEY_ID_LEN);
}

static int collect_id(const apikey_record *rec, void *arg)
{
    id_set *set = arg;
    if (set->n == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 4096;
        void *ids = reallocarray(set->ids, cap, sizeof *set->ids);
        if (!ids)
            return APIKEY_ST_NOMEM;
        set->ids = ids;
        set->cap = cap;
    }
    memcpy(set->ids[set->n++], rec->id, APIKEY_ID_LEN);
    return APIKEY_ST_OK;
}

typedef struct copy_arg {
    store_binding *to;
    id_set there;
    size_t copied;
    int st;
    char conflict[APIKEY_ID_LEN + 1];
} copy_arg;

static int copy_cb(const apikey_record *rec, void *arg)
{
    copy_arg *c = arg;
    apikey_record there;
    int st = APIKEY_ST_NOTFOUND;
    /* Under the target's writers' lock since begin: the set stays true. */
    if (c->there.n && bsearch(rec->id, c->there.ids, c->there.n, sizeof *c->there.ids, id_cmp))
        st = c->to->ops->lookup(c->to->handle, rec->id, &there);
    if (st == APIKEY_ST_OK) {
        /* The same key copied before is fine; another key with its id is not. */
        if (CRYPTO_memcmp(there.hash, rec->hash, APIKEY_HASH_LEN) != 0) {
            snprintf(c->conflict, sizeof c->conflict, "%s", rec->id);
            c->st = APIKEY_ST_CONFLICT;
            return c->st;
        }
        /* A revocation there is permanent, time and all (apikey_store.h). */
        st = there.revoked ? APIKEY_ST_OK : c->to->ops->update(c->to->handle, rec);
    } else if (st == APIKEY_ST_NOTFOUND) {
        st = c->to->ops->insert(c->to->handle, rec);
    }
    if (st != APIKEY_ST_OK) {
        c->st = st;
        return st;
    }
    c->copied++;
    return APIKEY_ST_OK;
}

apikey_status admin_copy(apikey_ctx *ctx, const char *uri, size_t *copied, char *err, size_t errlen)
{
    store_binding to;
    if (store_bind(uri, 1, &to, err, errlen) != 0)
        return APIKEY_E_UNAVAILABLE;
    copy_arg c = {.to = &to};
    apikey_status rc = APIKEY_OK;
    int st = to.ops->begin(to.handle);
    if (st != APIKEY_ST_OK) {
        rc = store_error(err, errlen, "starting a write on the target", st);
        goto done;
    }
    if ((st = to.ops->each(to.handle, NULL, collect_id, &c.there)) != APIKEY_ST_OK) {
        rc = store_error(err, errlen, "reading the target's keys", st);
        to.ops->rollback(to.handle);
        goto done;
    }
    if (c.there.n)
        qsort(c.there.ids, c.there.n, sizeof *c.there.ids, id_cmp);
    if ((rc = lock_store(ctx, 0, err, errlen)) != APIKEY_OK) {
        to.ops->rollback(to.handle);
        goto done;
    }
    st = ctx->store.ops->each(ctx->store.handle, NULL, copy_cb, &c);
    /* A failure the callback returned is the target's: the source stays open. */
    int source_failed = st == APIKEY_ST_UNAVAILABLE && c.st == APIKEY_ST_OK;
    unlock_store(ctx, source_failed ? APIKEY_E_UNAVAILABLE : APIKEY_OK);
    if (c.st == APIKEY_ST_CONFLICT) {
        snprintf(err, errlen, "the target holds another key with id %s_%s; nothing was copied",
                 ctx->cfg.key_prefix, c.conflict);
        rc = APIKEY_E_CONFLICT;
    } else if (st != APIKEY_ST_OK || c.st != APIKEY_ST_OK) {
        rc = store_error(err, errlen, "copy", st != APIKEY_ST_OK ? st : c.st);
    }
    if (rc == APIKEY_OK && (st = to.ops->commit(to.handle)) != APIKEY_ST_OK)
        rc = store_error(err, errlen, "commit on the target", st);
    else if (rc != APIKEY_OK)
        to.ops->rollback(to.handle);
    *copied = c.copied;
done:
    free(c.there.ids);
    store_unbind(&to);
    return rc;
}
