/* SPDX-License-Identifier: BSD-2-Clause */
/* The admin operations of include/apikey.h over admin.c, which holds their
 * rules: here only the callers' struct sizes, the records turned into
 * apikey_key_info (never a hash), and the one line every call leaves in err. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "timeutil.h"

/* The smallest structs a caller may hand in: version 1's fields. */
#define INFO_V1_SIZE (offsetof(apikey_key_info, state) + sizeof(apikey_key_state))
#define REQUEST_V1_SIZE (offsetof(apikey_create_request, expires) + sizeof(const char *))
#define ISSUED_V1_SIZE (offsetof(apikey_issued, info) + INFO_V1_SIZE)

/* One admin call: where its line goes. */
typedef struct call {
    char *err;
    size_t errlen;
    char scratch[512];
} call;

static void call_begin(call *c, char *err, size_t errlen)
{
    c->err = err && errlen ? err : c->scratch;
    c->errlen = err && errlen ? errlen : sizeof c->scratch;
    c->err[0] = '\0';
    core_store_line_clear();
}

/* A failure without a line of its own takes the store's, else its name. A
 * line a store gave for a call that succeeded is handed on as a note, not
 * lost. */
static apikey_status call_end(call *c, apikey_status st)
{
    const char *said = core_store_line();
    if (!c->err[0] && (*said || st != APIKEY_OK))
        snprintf(c->err, c->errlen, "%s", *said ? said : apikey_status_string(st));
    return st;
}
static apikey_status bad_call(call *c, const char *what)
{
    snprintf(c->err, c->errlen, "bad call: %s", what);
    return call_end(c, APIKEY_E_ARGUMENT);
}

static void info_from(const apikey_ctx *ctx, const apikey_record *rec, int64_t now,
                      apikey_key_info *info)
{
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    core_public_id(ctx, rec->id, info->id, sizeof info->id);
    snprintf(info->account, sizeof info->account, "%s", rec->account);
    snprintf(info->name, sizeof info->name, "%s", rec->name);
    snprintf(info->scopes, sizeof info->scopes, "%s", rec->scopes);
    info->created = rec->created;
    info->expires = rec->expires;
    info->last_used = rec->last_used;
    info->revoked = rec->revoked;
    info->state = core_key_state(rec, now);
    snprintf(info->allow_from, sizeof info->allow_from, "%s", rec->allow_from);
    info->rate_limit = rec->rate_limit;
    info->rate_period = rec->rate_period;
    info->rate_burst = rec->rate_burst;
}

static void info_out(const apikey_key_info *mine, apikey_key_info *theirs, size_t their_size)
{
    theirs->size = core_sized_out(mine, sizeof *mine, theirs, their_size);
}

static void issued_out(const apikey_ctx *ctx, const admin_issued *k, int64_t now,
                       apikey_issued *out, size_t out_size)
{
    apikey_key_info info;
    info_from(ctx, &k->rec, now, &info);
    memcpy(out->key, k->key, sizeof out->key);
    info_out(&info, &out->info, out_size - offsetof(apikey_issued, info));
    out->size = offsetof(apikey_issued, info) + out->info.size;
}

/* A request from a newer host may set fields this library does not know
 * (an address allowlist): refuse it rather than make a key without them. */
static apikey_status request_in(const apikey_create_request *r, admin_request *out, char *err,
                                size_t errlen)
{
    if (!core_tail_zero(r, sizeof *r, r->size)) {
        snprintf(err, errlen, "the request sets a field this libapikey does not know"
                              " (it is older than the program); nothing was created");
        return APIKEY_E_INVALID;
    }
    *out = (admin_request){.account = r->account, .name = r->name, .scopes = r->scopes,
                           .expires = r->expires,
                           .allow_from = APIKEY_HAS_FIELD(apikey_create_request, r, allow_from)
                                             ? r->allow_from
                                             : NULL,
                           .rate = APIKEY_HAS_FIELD(apikey_create_request, r, rate) ? r->rate : NULL,
                           .burst = APIKEY_HAS_FIELD(apikey_create_request, r, burst) ? r->burst : 0};
    return APIKEY_OK;
}

APIKEY_EXPORT apikey_status apikey_create_batch(apikey_ctx *ctx, const apikey_create_request *reqs,
                                                size_t n, apikey_issued *out, char *err,
                                                size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || (n && (!reqs || !out)))
        return bad_call(&c, "no context, requests or room for the keys");
    size_t rsize = n ? reqs->size : 0, osize = n ? out->size : 0;
    if (n && (rsize < REQUEST_V1_SIZE || osize < ISSUED_V1_SIZE))
        return bad_call(&c, "the size of a request or of an issued key is too small");
    admin_request *ar = calloc(n ? n : 1, sizeof *ar);
    admin_issued *keys = calloc(n ? n : 1, sizeof *keys);
    apikey_status st = ar && keys ? APIKEY_OK : APIKEY_E_NOMEM;
    for (size_t i = 0; i < n && st == APIKEY_OK; i++) {
        const apikey_create_request *r = (const void *)((const char *)reqs + i * rsize);
        if (r->size != rsize) {
            free(ar);
            free(keys);
            return bad_call(&c, "the requests of a batch differ in size");
        }
        st = request_in(r, &ar[i], c.err, c.errlen);
    }
    if (st == APIKEY_OK)
        st = admin_create(ctx, ar, n, keys, c.err, c.errlen);
    for (size_t i = 0; i < n; i++) {
        apikey_issued *o = (void *)((char *)out + i * osize);
        if (st == APIKEY_OK)
            issued_out(ctx, &keys[i], keys[i].rec.created, o, osize);
        else /* no key of an earlier call left to be mistaken for one */
            OPENSSL_cleanse(o->key, sizeof o->key);
    }
    if (keys)
        OPENSSL_cleanse(keys, n * sizeof *keys);
    free(keys);
    free(ar);
    return call_end(&c, st);
}

APIKEY_EXPORT apikey_status apikey_create(apikey_ctx *ctx, const apikey_create_request *req,
                                          apikey_issued *out, char *err, size_t errlen)
{
    if (!req || !out) {
        call c;
        call_begin(&c, err, errlen);
        return bad_call(&c, "no request or no room for the key");
    }
    return apikey_create_batch(ctx, req, 1, out, err, errlen);
}

typedef struct list_arg {
    const apikey_ctx *ctx;
    int64_t now;
    int all;
    int64_t until; /* > 0: only active keys that expire by then */
    apikey_key_cb cb;
    void *arg;
} list_arg;

static int list_one(const apikey_record *rec, void *arg)
{
    list_arg *l = arg;
    apikey_key_info info;
    info_from(l->ctx, rec, l->now, &info);
    if (!l->all && info.state != APIKEY_KEY_ACTIVE)
        return APIKEY_ST_OK;
    if (l->until && (!info.expires || info.expires > l->until))
        return APIKEY_ST_OK;
    return l->cb(&info, l->arg) ? APIKEY_ST_STOP : APIKEY_ST_OK;
}

APIKEY_EXPORT apikey_status apikey_list(apikey_ctx *ctx, const char *account, unsigned flags,
                                        apikey_key_cb cb, void *arg, char *err, size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || !cb)
        return bad_call(&c, "no context or no callback");
    /* A filter this library does not know would list keys it was meant to leave out. */
    if (flags & ~APIKEY_LIST_ALL)
        return bad_call(&c, "unknown list flags");
    list_arg l = {.ctx = ctx, .now = ctx->now(), .all = (flags & APIKEY_LIST_ALL) != 0, .cb = cb, .arg = arg};
    return call_end(&c, admin_each(ctx, account, list_one, &l, c.err, c.errlen));
}

APIKEY_EXPORT apikey_status apikey_list_expiring(apikey_ctx *ctx, const char *account,
                                                 const char *within, apikey_key_cb cb, void *arg,
                                                 char *err, size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || !cb || !within)
        return bad_call(&c, "no context, no callback or no duration");
    list_arg l = {.ctx = ctx, .now = ctx->now(), .cb = cb, .arg = arg};
    if (timeutil_after(within, l.now, &l.until) != 0 || l.until <= l.now) {
        snprintf(c.err, c.errlen, "'%.40s' is not a duration such as 24h, 7d, 2w, 6m or 1y", within);
        return call_end(&c, APIKEY_E_INVALID);
    }
    return call_end(&c, admin_each(ctx, account, list_one, &l, c.err, c.errlen));
}

APIKEY_EXPORT apikey_status apikey_get(apikey_ctx *ctx, const char *id, apikey_key_info *out,
                                       char *err, size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || !id || !out || out->size < INFO_V1_SIZE)
        return bad_call(&c, "no context, no id, or no room for the key's record");
    apikey_record rec;
    apikey_status st = admin_get(ctx, id, &rec, c.err, c.errlen);
    if (st == APIKEY_OK) {
        apikey_key_info info;
        info_from(ctx, &rec, ctx->now(), &info);
        info_out(&info, out, out->size);
    }
    return call_end(&c, st);
}

APIKEY_EXPORT apikey_status apikey_revoke(apikey_ctx *ctx, const char *id, char *err, size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || !id)
        return bad_call(&c, "no context or no id");
    return call_end(&c, admin_revoke(ctx, id, c.err, c.errlen));
}

APIKEY_EXPORT apikey_status apikey_rotate(apikey_ctx *ctx, const char *id, const char *grace,
                                          apikey_issued *out, char *err, size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || !id || !out || out->size < ISSUED_V1_SIZE)
        return bad_call(&c, "no context, no id, or no room for the new key");
    admin_issued k;
    apikey_status st = admin_rotate(ctx, id, grace, &k, c.err, c.errlen);
    if (st == APIKEY_OK)
        issued_out(ctx, &k, k.rec.created, out, out->size);
    else
        OPENSSL_cleanse(out->key, sizeof out->key);
    OPENSSL_cleanse(&k, sizeof k);
    return call_end(&c, st);
}

APIKEY_EXPORT apikey_status apikey_scopes(apikey_ctx *ctx, apikey_scope_cb cb, void *arg, char *err,
                                          size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || !cb)
        return bad_call(&c, "no context or no callback");
    for (size_t i = 0; i < ctx->cfg.nscopes; i++)
        if (cb(ctx->cfg.scopes[i].name, ctx->cfg.scopes[i].description, arg))
            break;
    return call_end(&c, APIKEY_OK);
}

APIKEY_EXPORT apikey_status apikey_copy(apikey_ctx *ctx, const char *store_uri, size_t *copied,
                                        char *err, size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (!ctx || !store_uri)
        return bad_call(&c, "no context or no target store");
    size_t n = 0;
    apikey_status st = admin_copy(ctx, store_uri, &n, c.err, c.errlen);
    if (copied)
        *copied = n;
    return call_end(&c, st);
}

APIKEY_EXPORT apikey_ctx *apikey_open_with(const char *config_path, unsigned flags, char *err,
                                           size_t errlen)
{
    call c;
    call_begin(&c, err, errlen);
    if (flags & ~(APIKEY_OPEN_CREATE | APIKEY_OPEN_CONNECT)) {
        bad_call(&c, "unknown open flags");
        return NULL;
    }
    apikey_ctx *ctx = core_open(config_path, (int)flags, c.err, c.errlen);
    call_end(&c, ctx ? APIKEY_OK : APIKEY_E_UNAVAILABLE);
    return ctx;
}

APIKEY_EXPORT void apikey_wipe(void *p, size_t len)
{
    if (p)
        OPENSSL_cleanse(p, len);
}
