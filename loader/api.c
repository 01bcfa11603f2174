/* The run-time entry point for hosts that dlopen libapikey, and the small
 * mappings every host needs. */
#include <stddef.h>

#include "core.h"

APIKEY_EXPORT const char *apikey_reason_string(apikey_reason reason)
{
    switch (reason) {
    case APIKEY_REASON_NONE: return "allowed";
    case APIKEY_REASON_MALFORMED: return "malformed key";
    case APIKEY_REASON_UNKNOWN: return "unknown key";
    case APIKEY_REASON_WRONG_ACCOUNT: return "wrong account";
    case APIKEY_REASON_EXPIRED: return "expired";
    case APIKEY_REASON_REVOKED: return "revoked";
    case APIKEY_REASON_MISSING_SCOPE: return "missing scope";
    case APIKEY_REASON_UNMAPPED: return "service not configured";
    case APIKEY_REASON_STORE: return "store unavailable";
    case APIKEY_REASON_CONFIG: return "configuration error";
    case APIKEY_REASON_NOMEM: return "out of memory";
    case APIKEY_REASON_ARGUMENT: return "bad argument";
    }
    return "unknown reason";
}

APIKEY_EXPORT int apikey_http_status(const apikey_result *res)
{
    if (!res)
        return 503;
    switch (res->decision) {
    case APIKEY_ALLOWED: return 200;
    case APIKEY_REFUSED:
        /* The key is genuine but may not do this: forbidden, not unauthenticated. */
        return res->reason == APIKEY_REASON_MISSING_SCOPE || res->reason == APIKEY_REASON_UNMAPPED ? 403 : 401;
    case APIKEY_UNAVAILABLE: break;
    }
    return 503;
}

static const apikey_api api_v1 = {
    .size = sizeof(apikey_api),
    .version = APIKEY_API_VERSION,
    .open = apikey_open,
    .close = apikey_close,
    .verify = apikey_verify,
    .reason_string = apikey_reason_string,
    .http_status = apikey_http_status,
};

APIKEY_EXPORT const apikey_api *apikey_api_v1(void)
{
    return &api_v1;
}
