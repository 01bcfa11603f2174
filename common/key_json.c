/* SPDX-License-Identifier: BSD-2-Clause */
#include "key_json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void key_json_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "?");
}

/* null for 0 (never) */
static json_t *json_time(int64_t t)
{
    char buf[32];
    if (!t)
        return json_null();
    key_json_time(t, buf, sizeof buf);
    return json_string(buf);
}

/* Space-separated words (scopes, allowlist entries) as an array of strings;
 * NULL when one cannot be encoded (not UTF-8, out of memory): never an
 * array with a word missing. */
static json_t *words(const char *text)
{
    json_t *arr = json_array();
    for (const char *s = text; arr && *s;) {
        size_t n = strcspn(s, " ");
        if (n && json_array_append_new(arr, json_stringn(s, n)) != 0) {
            json_decref(arr);
            return NULL;
        }
        s += n;
        s += strspn(s, " ");
    }
    return arr;
}

const char *key_json_per(uint32_t period)
{
    return period == 1 ? "1s" : period == 60 ? "1min" : period == 3600 ? "1h" : NULL;
}

/* null for no limit (and from a library older than 1.5, which has none). */
static json_t *rate(const apikey_key_info *k)
{
    if (!APIKEY_HAS_FIELD(apikey_key_info, k, rate_burst) || !k->rate_limit ||
        !key_json_per(k->rate_period))
        return json_null();
    return json_pack("{s:I, s:s, s:I}", "limit", (json_int_t)k->rate_limit, "per",
                     key_json_per(k->rate_period), "burst", (json_int_t)k->rate_burst);
}

json_t *key_json(const apikey_key_info *k, const char *state)
{
    /* A library older than 1.4 has no allowlists: it fills none, "" here. */
    const char *allow = APIKEY_HAS_FIELD(apikey_key_info, k, allow_from) ? k->allow_from : "";
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:o}", "id", k->id, "account",
                     k->account, "name", k->name, "scopes", words(k->scopes), "created",
                     json_time(k->created), "expires", json_time(k->expires), "last_used",
                     json_time(k->last_used), "status", state, "allow_from", words(allow),
                     "rate", rate(k));
}
