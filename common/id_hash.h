/* SPDX-License-Identifier: BSD-2-Clause */
/* A key id's set in a table of one process (the SQLite store's kept
 * answers, a replica's uses told to apikey-syncd): the id's 8 characters
 * as one word, by Fibonacci hashing, the top bits of one multiply, where
 * FNV-1a was a multiply a byte, twice a check for each table. Never on
 * disk: a table it indexes lives and dies with its process. */
#ifndef APIKEY_ID_HASH_H
#define APIKEY_ID_HASH_H

#include <stdint.h>
#include <string.h>

#include "apikey_key.h"

_Static_assert(APIKEY_ID_LEN == sizeof(uint64_t), "an id is hashed as one word");

/* The top bits of the hash: a set of a table of 2^bits sets. */
static inline uint64_t id_hash_top(const char *id, unsigned bits)
{
    uint64_t w;
    memcpy(&w, id, sizeof w);
    return (w * 0x9e3779b97f4a7c15ull) >> (64 - bits);
}

#endif
