/* SPDX-License-Identifier: BSD-2-Clause */
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
    case APIKEY_REASON_ADDRESS: return "address not allowed";
    case APIKEY_REASON_MISSING: return "missing key";
    case APIKEY_REASON_RATE: return "rate limited";
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
        /* The key is genuine but may not do this: forbidden, not
         * unauthenticated. An unmapped service is not a key's want of a
         * scope (no key could pass): 401. */
        return res->reason == APIKEY_REASON_MISSING_SCOPE ? 403
               : res->reason == APIKEY_REASON_RATE        ? 429 /* RFC 6585 */
                                                          : 401;
    case APIKEY_UNAVAILABLE: break;
    }
    return 503;
}

APIKEY_EXPORT const char *apikey_status_string(apikey_status st)
{
    switch (st) {
    case APIKEY_OK: return "ok";
    case APIKEY_E_INVALID: return "invalid request";
    case APIKEY_E_NOT_FOUND: return "not found";
    case APIKEY_E_LIMIT: return "limit reached";
    case APIKEY_E_CONFLICT: return "conflict";
    case APIKEY_E_UNAVAILABLE: return "store unavailable";
    case APIKEY_E_NOMEM: return "out of memory";
    case APIKEY_E_INTERNAL: return "internal error";
    case APIKEY_E_ARGUMENT: return "bad argument";
    }
    return "unknown status";
}

APIKEY_EXPORT int apikey_status_http(apikey_status st)
{
    switch (st) {
    case APIKEY_OK: return 200;
    case APIKEY_E_INVALID: return 400;
    case APIKEY_E_NOT_FOUND: return 404;
    case APIKEY_E_LIMIT:
    case APIKEY_E_CONFLICT: return 409;
    case APIKEY_E_UNAVAILABLE:
    case APIKEY_E_NOMEM: return 503;
    case APIKEY_E_INTERNAL:
    case APIKEY_E_ARGUMENT: break;
    }
    return 500;
}

APIKEY_EXPORT const char *apikey_state_string(apikey_key_state state)
{
    switch (state) {
    case APIKEY_KEY_ACTIVE: return "active";
    case APIKEY_KEY_REVOKED: return "revoked";
    case APIKEY_KEY_EXPIRED: return "expired";
    }
    return "unknown";
}

static const apikey_api api_v1 = {
    .size = sizeof(apikey_api),
    .version = APIKEY_API_VERSION,
    .open = apikey_open,
    .close = apikey_close,
    .verify = apikey_verify,
    .reason_string = apikey_reason_string,
    .http_status = apikey_http_status,
    .open_with = apikey_open_with,
    .status_string = apikey_status_string,
    .status_http = apikey_status_http,
    .state_string = apikey_state_string,
    .create = apikey_create,
    .create_batch = apikey_create_batch,
    .list = apikey_list,
    .get = apikey_get,
    .revoke = apikey_revoke,
    .rotate = apikey_rotate,
    .scopes = apikey_scopes,
    .copy = apikey_copy,
    .wipe = apikey_wipe,
    .verify_with = apikey_verify_with,
    .list_expiring = apikey_list_expiring,
    .services = apikey_services,
    .service_scopes = apikey_service_scopes,
    .store_may_block = apikey_store_may_block,
    .section = apikey_section,
    .replica = apikey_replica,
    .check_may_block = apikey_check_may_block,
};

APIKEY_EXPORT const apikey_api *apikey_api_v1(void)
{
    return &api_v1;
}
