/* SPDX-License-Identifier: BSD-2-Clause */
/* The host's two verify calls over the one pipeline of verify.c: the frozen
 * apikey_verify, and apikey_verify_with, whose sized structs grow and whose
 * verdict carries why a check could not tell. */
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "hot_path.h"

/* The first version of each: what a host built against 1.2 hands in. */
#define REQUEST_V1_SIZE (offsetof(apikey_verify_request, keylen) + sizeof(size_t))
#define VERDICT_V1_SIZE (offsetof(apikey_verdict, error) + APIKEY_ERROR_MAX)

HOT_PATH APIKEY_EXPORT apikey_decision apikey_verify(apikey_ctx *ctx, const char *service,
                                            const char *account, const char *key, size_t keylen,
                                            apikey_result *res)
{
    core_store_line_clear();
    return core_verify(ctx, service, account, key, keylen, NULL, res, NULL, 0);
}

HOT_PATH APIKEY_EXPORT apikey_decision apikey_verify_with(apikey_ctx *ctx, const apikey_verify_request *req,
                                                 apikey_verdict *out)
{
    return core_verify_with(ctx, req, out, 0);
}

HOT_PATH apikey_decision core_verify_with(apikey_ctx *ctx, const apikey_verify_request *req,
                                          apikey_verdict *out, unsigned flags)
{
    if (!out || out->size < VERDICT_V1_SIZE)
        return APIKEY_UNAVAILABLE;
    /* A verdict of this version or a later one is filled in place; an
     * older, smaller one through a copy cut to its size. In place, the
     * error line is set as a string (its first byte when there is nothing
     * to say): zeroing and copying the whole verdict was 2 KiB of stores a
     * check, a tenth of what an nginx worker adds for the module. */
    apikey_verdict mine, *v = out->size >= sizeof mine ? out : &mine;
    size_t their_size = out->size;
    v->error[0] = '\0';
    core_store_line_clear();
    if (!req || req->size < REQUEST_V1_SIZE || !core_tail_zero(req, sizeof *req, req->size)) {
        /* A field this library does not know (an address allowlist) is
         * never silently dropped. */
        memset(&v->result, 0, sizeof v->result);
        v->result.decision = APIKEY_UNAVAILABLE;
        v->result.reason = APIKEY_REASON_ARGUMENT;
        v->rate_limit = v->rate_period = v->rate_remaining = v->retry_after = 0;
        snprintf(v->error, sizeof v->error, "%s",
                 req && req->size >= REQUEST_V1_SIZE
                     ? "the request sets a field this libapikey does not know (it is older than the program)"
                     : "no request, or a request too small");
    } else {
        const char *client =
            APIKEY_HAS_FIELD(apikey_verify_request, req, client_addr) ? req->client_addr : NULL;
        core_rate rate;
        core_verify(ctx, req->service, req->account, req->key, req->keylen, client, &v->result,
                    &rate, flags);
        v->rate_limit = rate.limit;
        v->rate_period = rate.period;
        v->rate_remaining = rate.remaining;
        v->retry_after = rate.retry_after;
        /* Formatted only when the store said something: a check that
         * could tell (nearly every one) pays no printf. */
        const char *said = core_store_line();
        if (*said)
            snprintf(v->error, sizeof v->error, "%s", said);
    }
    if (v == out) {
        /* A later host's fields beyond this version's are zeroed, as a
         * copy cut to size would leave them. */
        memset((char *)out + sizeof *out, 0, their_size - sizeof *out);
        out->size = sizeof *out;
    } else {
        mine.size = sizeof mine;
        out->size = core_sized_out(&mine, sizeof mine, out, their_size);
    }
    return out->result.decision;
}
