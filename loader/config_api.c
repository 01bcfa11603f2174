/* SPDX-License-Identifier: BSD-2-Clause */
/* What hosts read of the configuration (library 1.4). A host asks the
 * context it checks with, so every host reads apikey.conf by the one set of
 * rules of config.c, from the same reading as its checks: never a second
 * parser that disagrees, never a file replaced between two reads. */
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "replica.h"

static apikey_status said(char *err, size_t errlen, apikey_status st, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", what);
    return st;
}

APIKEY_EXPORT apikey_status apikey_services(apikey_ctx *ctx, apikey_setting_cb cb, void *arg,
                                            char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!ctx || !cb)
        return said(err, errlen, APIKEY_E_ARGUMENT, "bad call: no context or no callback");
    for (size_t i = 0; i < ctx->cfg.nservices; i++)
        if (cb(ctx->cfg.services[i].name, ctx->cfg.services[i].scopes, arg))
            break;
    return APIKEY_OK;
}

APIKEY_EXPORT apikey_status apikey_service_scopes(apikey_ctx *ctx, const char *service, char *out,
                                                  size_t outlen, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!ctx || !service || !out || !outlen)
        return said(err, errlen, APIKEY_E_ARGUMENT, "bad call: no context, service or room");
    out[0] = '\0';
    const config_service *s = config_find_service(&ctx->cfg, service);
    if (!s)
        return said(err, errlen, APIKEY_E_NOT_FOUND, "the service is not in [services]");
    if (strlen(s->scopes) >= outlen)
        return said(err, errlen, APIKEY_E_ARGUMENT, "bad call: no room for the scopes");
    memcpy(out, s->scopes, strlen(s->scopes) + 1);
    return APIKEY_OK;
}

APIKEY_EXPORT int apikey_store_may_block(apikey_ctx *ctx)
{
    /* Only a backend that says it answers from local files is taken at its
     * word: an older or unknown one may wait on a network. */
    if (!ctx || !ctx->store.ops || !APIKEY_STORE_HAS(ctx->store.ops, flags))
        return 1;
    return !(ctx->store.ops->flags & APIKEY_STORE_LOCAL);
}

APIKEY_EXPORT int apikey_check_may_block(apikey_ctx *ctx)
{
    /* A replica that cannot be read after this answer sends that one check
     * to the store of record inline: rare, and still a right answer. */
    if (ctx && ctx->replica && replica_trusted_now(ctx))
        return 0;
    return apikey_store_may_block(ctx);
}

APIKEY_EXPORT apikey_status apikey_section(apikey_ctx *ctx, const char *section,
                                           apikey_setting_cb cb, void *arg, char *err,
                                           size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!ctx || !section || !cb)
        return said(err, errlen, APIKEY_E_ARGUMENT, "bad call: no context, section or callback");
    if (!*section) {
        /* The library's own settings, as it uses them (defaults filled in);
         * never the store's location or the pepper's, which are secrets'
         * neighbours and of no use to a host. */
        char max[24], every[24];
        snprintf(max, sizeof max, "%d", ctx->cfg.max_keys_per_account);
        snprintf(every, sizeof every, "%llds", (long long)ctx->cfg.last_used_granularity);
        const char *own[][2] = {{"key_prefix", ctx->cfg.key_prefix},
                                {"max_keys_per_account", max},
                                {"default_expiry", ctx->cfg.default_expiry},
                                {"last_used_granularity", every}};
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
            if (cb(own[i][0], own[i][1], arg))
                break;
        return APIKEY_OK;
    }
    for (size_t i = 0; i < ctx->cfg.nsettings; i++) {
        const config_setting *s = &ctx->cfg.settings[i];
        if (strcmp(s->section, section) == 0 && cb(s->name, s->value, arg))
            break;
    }
    return APIKEY_OK;
}
