/* SPDX-License-Identifier: BSD-2-Clause */
/* The key lifecycle: create, revoke, rotate, list and copy. All policy
 * (limits, scopes, expiry, irreversibility) is enforced here, inside one
 * store write transaction per command. api.c offers it to hosts as
 * include/apikey.h's apikey_create()... Each returns an apikey_status with
 * one line in err: a store's own line when it gave one. */
#ifndef APIKEY_ADMIN_H
#define APIKEY_ADMIN_H

#include "core.h"
#include "keycodec.h"

typedef struct admin_request {
    const char *account;
    const char *name;
    const char *scopes;  /* "a,b", "a b" or "*"; required */
    const char *expires; /* NULL: the configured default_expiry */
    const char *allow_from; /* CIDR entries, commas or spaces; NULL or "": any address */
    const char *rate;       /* "N/s", "N/min", "N/h", "none"; NULL: default_rate */
    uint32_t burst;         /* 0: the limit */
} admin_request;

typedef struct admin_issued {
    char key[APIKEY_KEY_MAX]; /* shown once; the caller wipes it */
    apikey_record rec;
} admin_issued;

/* Check every request, then create all of them or none. out has n slots. */
apikey_status admin_create(apikey_ctx *ctx, const admin_request *reqs, size_t n, admin_issued *out,
                           char *err, size_t errlen);
/* One record by public id, its hash wiped. */
apikey_status admin_get(apikey_ctx *ctx, const char *public_id, apikey_record *rec, char *err,
                        size_t errlen);
apikey_status admin_revoke(apikey_ctx *ctx, const char *public_id, char *err, size_t errlen);
/* grace: a duration the old key keeps working; NULL or "" or "0" revokes it now. */
apikey_status admin_rotate(apikey_ctx *ctx, const char *public_id, const char *grace,
                           admin_issued *out, char *err, size_t errlen);
/* Walk records (of one account, or all) under the context's lock. */
apikey_status admin_each(apikey_ctx *ctx, const char *account, apikey_record_cb cb, void *arg,
                         char *err, size_t errlen);
/* Copy every record as it is into the store at uri. */
apikey_status admin_copy(apikey_ctx *ctx, const char *uri, size_t *copied, char *err,
                         size_t errlen);

/* "ak_20fe9a1c" or "20fe9a1c" into a bare id. */
int admin_parse_id(const apikey_ctx *ctx, const char *text, char id[APIKEY_ID_LEN + 1]);

#endif
