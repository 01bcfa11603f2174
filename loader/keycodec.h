/* SPDX-License-Identifier: BSD-2-Clause */
/* The key format: <prefix>_<id><secret><check> (include/apikey_key.h). */
#ifndef APIKEY_KEYCODEC_H
#define APIKEY_KEYCODEC_H

#include <stddef.h>
#include <stdint.h>
#include "apikey.h"
#include "apikey_store.h"

/* apikey_key.h's sizes, kept in step. */
_Static_assert(APIKEY_KEY_MAX == APIKEY_PREFIX_MAX + 1 + APIKEY_ID_LEN + APIKEY_SECRET_LEN + APIKEY_CHECK_LEN + 1,
               "APIKEY_KEY_MAX is the longest key");

/* A random-bytes source; the default is OpenSSL's RAND_bytes. Tests swap it to
 * force id collisions. Returns 1 on success like RAND_bytes. */
typedef int (*apikey_rand_fn)(unsigned char *buf, int len);
void keycodec_set_rand(apikey_rand_fn fn);

int keycodec_prefix_valid(const char *prefix);

/* Whether s[0..n) is all of the base62 alphabet (the one copy in the core). */
int keycodec_is_base62(const char *s, size_t n);

/* Fill out with n random base62 characters (no NUL). Returns 0, or -1 when
 * the CSPRNG fails. */
int keycodec_random62(char *out, size_t n);

/* Build a key around id with a fresh secret. out has APIKEY_KEY_MAX bytes. */
int keycodec_make(const char *prefix, const char *id, char *out);

/* Parse a candidate key of len bytes (not NUL-terminated) of deployment
 * prefix. Checks length, alphabet and the CRC before anything touches a
 * store. On success copies the id into id_out (APIKEY_ID_LEN + 1). */
int keycodec_parse(const char *prefix, const char *key, size_t len, char *id_out);

uint32_t keycodec_crc32(const unsigned char *data, size_t len);

#endif
