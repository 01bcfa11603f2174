/* SPDX-License-Identifier: BSD-2-Clause */
/* Address allowlists (apikey(1)): CIDR entries as an operator writes
 * them, client addresses as hosts report them, and the match between them.
 * Deliberate choices, fail closed:
 *   - an entry with host bits set (10.0.0.1/8) is refused, not masked: it
 *     is most likely a typo, and masking would widen what the operator
 *     wrote; a prefix above 32 (IPv4) or 128 (IPv6) is refused;
 *   - an address without a prefix is one host (/32 or /128);
 *   - IPv4-mapped IPv6 (::ffff:127.0.0.1) is the IPv4 address it carries,
 *     both as a client address and as an entry, so a dual-stack listener
 *     matches IPv4 lists;
 *   - a client address must be numeric: a host name, a zone id or an empty
 *     string is not an address, and a key with a list is then refused. */
#ifndef APIKEY_CIDR_H
#define APIKEY_CIDR_H

#include <stddef.h>
#include <stdint.h>

#include "apikey_key.h"

#define APIKEY_CIDR_TEXT_MAX 50 /* the longest IPv6 text (45), "/128" and its NUL */

typedef struct cidr_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t bytes[16];
} cidr_addr;

typedef struct cidr_range {
    cidr_addr addr;
    uint8_t prefix;
} cidr_range;

/* A numeric client address: 0, or -1 when it is not one. */
int addr_parse(const char *text, cidr_addr *out);
/* One entry: 0, or -1 with why. */
int cidr_parse(const char *text, cidr_range *out, char *why, size_t whylen);
/* Entries separated by commas or spaces, at most max: their number, or -1
 * with why (which names the entry). An empty or blank list is 0 entries;
 * an empty entry ("a,,b", ",a", "a,") is refused. */
int cidr_parse_list(const char *text, cidr_range *out, size_t max, char *why, size_t whylen);
/* The canonical text of an entry ("10.0.0.0/8", "2001:db8::/32"). */
void cidr_format(const cidr_range *c, char out[APIKEY_CIDR_TEXT_MAX]);
int cidr_match(const cidr_range *c, const cidr_addr *a);
/* An entry list, as an operator wrote it, into a record's canonical text
 * (apikey_key_info.allow_from): 0, or -1 with why. */
int cidr_canonical_list(const char *text, char out[APIKEY_ALLOW_FROM_MAX], char *why,
                        size_t whylen);
/* Whether client may use a key whose record holds the canonical list
 * allow_from: 1 yes, 0 no (not in it, NULL, empty or not numeric), -1 the
 * list does not parse (a corrupt record: the caller fails closed). */
int cidr_allows(const char *allow_from, const char *client);

#endif
