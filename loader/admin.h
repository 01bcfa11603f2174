/* The key lifecycle: create, revoke, rotate, list and copy. All policy
 * (limits, scopes, expiry, irreversibility) is enforced here, inside one
 * store write transaction per command. */
#ifndef APIKEY_ADMIN_H
#define APIKEY_ADMIN_H

#include "core.h"
#include "keycodec.h"

/* Outcomes, matching the command's exit codes. */
enum { ADMIN_OK = 0, ADMIN_REFUSED = 1, ADMIN_ERROR = 2 };

typedef struct admin_request {
    const char *account;
    const char *name;
    const char *scopes;  /* "a,b", "a b" or "*"; NULL: every scope? no: required */
    const char *expires; /* NULL: the configured default_expiry */
} admin_request;

typedef struct admin_issued {
    char key[APIKEY_KEY_MAX]; /* shown once; the caller wipes it */
    apikey_record rec;
} admin_issued;

/* Check every request, then create all of them or none. out has n slots. */
int admin_create(apikey_ctx *ctx, const admin_request *reqs, size_t n, admin_issued *out,
                 char *err, size_t errlen);
int admin_revoke(apikey_ctx *ctx, const char *public_id, char *err, size_t errlen);
/* grace: seconds the old key keeps working; 0 revokes it now. */
int admin_rotate(apikey_ctx *ctx, const char *public_id, int64_t grace, admin_issued *out,
                 char *err, size_t errlen);
/* Walk records (of one account, or all) under the context's lock. */
int admin_each(apikey_ctx *ctx, const char *account, apikey_record_cb cb, void *arg, char *err,
               size_t errlen);
/* Copy every record as it is into the store at uri. */
int admin_copy(apikey_ctx *ctx, const char *uri, size_t *copied, char *err, size_t errlen);

/* "ak_20fe9a1c" or "20fe9a1c" into a bare id. */
int admin_parse_id(const apikey_ctx *ctx, const char *text, char id[APIKEY_ID_LEN + 1]);

#endif
