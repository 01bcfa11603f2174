/* SPDX-License-Identifier: BSD-2-Clause */
/* What a key may do: its state at a time, and whether its scopes cover
 * what a service needs. */
#include <string.h>

#include "core.h"

apikey_key_state core_key_state(const apikey_record *rec, int64_t now)
{
    if (rec->revoked)
        return APIKEY_KEY_REVOKED;
    if (rec->expires && rec->expires <= now)
        return APIKEY_KEY_EXPIRED;
    return APIKEY_KEY_ACTIVE;
}

static int has_word(const char *list, const char *word, size_t n)
{
    while (*list) {
        size_t m = strcspn(list, " ");
        if (m == n && memcmp(list, word, n) == 0)
            return 1;
        list += m;
        while (*list == ' ')
            list++;
    }
    return 0;
}

int scopes_grant(const char *have, const char *need)
{
    if (strcmp(have, "*") == 0)
        return 1;
    while (*need) {
        size_t n = strcspn(need, " ");
        if (n && !has_word(have, need, n))
            return 0;
        need += n;
        while (*need == ' ')
            need++;
    }
    return 1;
}
