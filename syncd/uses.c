/* SPDX-License-Identifier: BSD-2-Clause */
/* The uses hosts tell apikey-syncd (syncd.h): the latest time per key until
 * they are carried to the store of record. Open addressing on the id, so a
 * datagram costs the same however many keys wait; a linear table of 8,192
 * cost a scan of all of them per datagram, and dropped every use past the
 * 8,192nd of a second. */
#include <string.h>

#include "syncd.h"

static size_t slot_of(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < APIKEY_ID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
    return (size_t)(h >> 16) & (USES_SLOTS - 1);
}

int uses_add(uses_table *t, const char *id, int64_t when)
{
    size_t i = slot_of(id);
    while (t->slot[i].id[0] && memcmp(t->slot[i].id, id, APIKEY_ID_LEN) != 0)
        i = (i + 1) & (USES_SLOTS - 1);
    if (!t->slot[i].id[0]) {
        if (t->n == USES_MAX)
            return -1;
        memcpy(t->slot[i].id, id, APIKEY_ID_LEN);
        t->slot[i].when = 0;
        t->n++;
    }
    if (when > t->slot[i].when)
        t->slot[i].when = when;
    return 0;
}

void uses_clear(uses_table *t)
{
    if (t->n)
        memset(t->slot, 0, sizeof t->slot);
    t->n = 0;
}
