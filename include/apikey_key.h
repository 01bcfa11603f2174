/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * apikey_key.h - the sizes of a key and of its record (apikey(1)), shared by hosts
 * (apikey.h) and store backends (apikey_store.h).
 *
 * A key is <prefix>_<id><secret><check>: a deployment prefix of 1 to 8
 * lowercase letters or digits, '_', a public id of 8 base62 characters
 * (what a store is keyed by), a secret of 32 base62 characters, and 6
 * base62 characters of CRC-32 over all before them. A store never sees the
 * key or its secret: only the id and a 32-byte hash (SHA-256, or
 * HMAC-SHA256 with the deployment's pepper) of the whole key.
 */
#ifndef APIKEY_KEY_H
#define APIKEY_KEY_H

#define APIKEY_PREFIX_MAX 8
#define APIKEY_ID_LEN 8
#define APIKEY_SECRET_LEN 32
#define APIKEY_CHECK_LEN 6
#define APIKEY_HASH_LEN 32
/* The longest key with its NUL: prefix, '_', id, secret, check. */
#define APIKEY_KEY_MAX 56
#define APIKEY_KEY_ID_MAX 24 /* "<prefix>_<id>" with its NUL */

/* A key record's text fields, each with its NUL. */
#define APIKEY_ACCOUNT_MAX 256
#define APIKEY_NAME_MAX 256
#define APIKEY_SCOPES_MAX 1024 /* space-separated scope names, or "*" */

/* A key's address allowlist (apikey(1)): at most APIKEY_ALLOW_ENTRIES
 * CIDR entries in their canonical text ("10.0.0.0/8", "2001:db8::/32"),
 * separated by one space, "" for any address. An entry is at most 49
 * characters (45 of IPv6 text and "/128"), so 16 of them with their
 * separators and the NUL fit. */
#define APIKEY_ALLOW_ENTRIES 16
#define APIKEY_ALLOW_FROM_MAX 800

#endif
