/* SPDX-License-Identifier: BSD-2-Clause */
/* What a key may do: its state at a time, and whether its scopes cover
 * what a service needs. */
#include "core.h"
#include "hot_path.h"

HOT_PATH apikey_key_state core_key_state(const apikey_record *rec, int64_t now)
{
    if (rec->revoked)
        return APIKEY_KEY_REVOKED;
    if (rec->expires && rec->expires <= now)
        return APIKEY_KEY_EXPIRED;
    return APIKEY_KEY_ACTIVE;
}

/* Scope lists are a few short words: scanned here, byte by byte, where
 * strcspn, memcmp and strcmp were three libc pages more a check. */
HOT_PATH static size_t word_len(const char *s)
{
    size_t n = 0;
    while (s[n] && s[n] != ' ')
        n++;
    return n;
}

/* Each word of list compared as it is read, where measuring it first
 * read it twice. word: n bytes, none a space or a NUL. */
HOT_PATH static int has_word(const char *list, const char *word, size_t n)
{
    while (*list) {
        size_t i = 0;
        while (i < n && list[i] == word[i])
            i++;
        if (i == n && (list[n] == ' ' || list[n] == '\0'))
            return 1;
        list += i;
        while (*list && *list != ' ')
            list++;
        while (*list == ' ')
            list++;
    }
    return 0;
}

HOT_PATH int scopes_grant(const char *have, const char *need)
{
    if (have[0] == '*' && have[1] == '\0')
        return 1;
    while (*need) {
        size_t n = word_len(need);
        if (n && !has_word(have, need, n))
            return 0;
        need += n;
        while (*need == ' ')
            need++;
    }
    return 1;
}
