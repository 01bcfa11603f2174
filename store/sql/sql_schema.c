/* SPDX-License-Identifier: BSD-2-Clause */
/* The SQL stores' shared schema verdicts and row decoding (sql_schema.h). */
#include "sql_schema.h"

#include <string.h>

int sql_schema_check(const apikey_store_host *host, const char *store, int v)
{
    if (v < 0) {
        host->log_error("store %s: not an apikey store (no apikey_schema table); an apikey admin"
                        " command such as 'apikey list' creates it", store);
        return APIKEY_ST_UNAVAILABLE;
    }
    if (v < SQL_SCHEMA_OLDEST || v > SQL_SCHEMA_VERSION) {
        host->log_error("store %s: schema version %d, this build reads %d to %d", store, v,
                        SQL_SCHEMA_OLDEST, SQL_SCHEMA_VERSION);
        return APIKEY_ST_UNAVAILABLE;
    }
    return APIKEY_ST_OK;
}

int sql_schema_newer(const apikey_store_host *host, const char *store, int v)
{
    if (v <= SQL_SCHEMA_VERSION)
        return APIKEY_ST_OK;
    host->log_error("store %s: schema version %d is newer than this build (%d)", store, v,
                    SQL_SCHEMA_VERSION);
    return APIKEY_ST_UNAVAILABLE;
}

static int copy_text(const sql_value *v, char *dst, size_t cap)
{
    if (v->kind != SQL_TEXT || v->len >= cap || (v->len && memchr(v->p, 0, v->len)))
        return -1;
    memcpy(dst, v->p, v->len);
    dst[v->len] = '\0';
    return 0;
}

/* A column's declared type is no promise (SQLite's is an affinity; either
 * may be altered by hand): each value's own type is checked, so 'yes' in
 * revoked never reads as 0, "not revoked". */
int sql_decode_record(const sql_value v[SQL_NCOLS], apikey_record *out)
{
    memset(out, 0, sizeof *out);
    if (copy_text(&v[0], out->id, sizeof out->id) || copy_text(&v[1], out->account, sizeof out->account) ||
        copy_text(&v[2], out->name, sizeof out->name) || copy_text(&v[3], out->scopes, sizeof out->scopes) ||
        copy_text(&v[9], out->allow_from, sizeof out->allow_from) ||
        v[4].kind != SQL_BYTES || v[4].len != APIKEY_HASH_LEN)
        return -1;
    memcpy(out->hash, v[4].p, APIKEY_HASH_LEN);
    int64_t *times[4] = {&out->created, &out->expires, &out->last_used, &out->revoked};
    for (int i = 0; i < 4; i++) {
        if (v[5 + i].kind != SQL_INT64)
            return -1;
        *times[i] = v[5 + i].i;
    }
    uint32_t *rate[3] = {&out->rate_limit, &out->rate_period, &out->rate_burst};
    for (int i = 0; i < 3; i++) {
        if (v[10 + i].kind != SQL_INT64 || v[10 + i].i < 0 || v[10 + i].i > UINT32_MAX)
            return -1;
        *rate[i] = (uint32_t)v[10 + i].i;
    }
    return apikey_record_ok(out) ? 0 : -1;
}
