/* SPDX-License-Identifier: BSD-2-Clause */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int addr_parse(const char *text, cidr_addr *out)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return -1;
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) != 1)
        return -1;
    out->family = 6;
    if (memcmp(out->bytes, v4_mapped, sizeof v4_mapped) == 0) {
        memmove(out->bytes, out->bytes + 12, 4);
        memset(out->bytes + 4, 0, 12);
        out->family = 4;
    }
    return 0;
}

static int host_bits_clear(const cidr_range *c)
{
    size_t len = c->addr.family == 4 ? 4 : 16;
    for (size_t bit = c->prefix; bit < len * 8; bit++)
        if (c->addr.bytes[bit / 8] & (0x80u >> (bit % 8)))
            return 0;
    return 1;
}

int cidr_parse(const char *text, cidr_range *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    char addr[64];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    int mapped = 0;
    if (n == 0 || n >= sizeof addr)
        goto bad;
    memcpy(addr, text, n);
    addr[n] = '\0';
    /* An IPv6 entry written in its mapped form keeps its IPv6 prefix
     * length until it is turned into the IPv4 one below. */
    mapped = strchr(addr, ':') != NULL;
    if (addr_parse(addr, &out->addr) != 0)
        goto bad;
    mapped = mapped && out->addr.family == 4;
    unsigned max = out->addr.family == 4 && !mapped ? 32 : 128;
    unsigned long prefix = max;
    if (slash) {
        char *end;
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1]))
            goto bad;
        prefix = strtoul(p, &end, 10);
        if (*end)
            goto bad;
        if (prefix > max) {
            snprintf(why, whylen, "'%s': the prefix can be at most %u", text, max);
            return -1;
        }
    }
    if (mapped) {
        if (prefix < 96) {
            snprintf(why, whylen, "'%s': an IPv4-mapped entry needs a prefix of 96 or more", text);
            return -1;
        }
        prefix -= 96;
    }
    out->prefix = (uint8_t)prefix;
    if (!host_bits_clear(out)) {
        snprintf(why, whylen, "'%s' has bits set beyond its prefix; write the network address", text);
        return -1;
    }
    return 0;
bad:
    snprintf(why, whylen, "'%.60s' is not an address or ADDRESS/PREFIX", text);
    return -1;
}

int cidr_parse_list(const char *text, cidr_range *out, size_t max, char *why, size_t whylen)
{
    size_t count = 0;
    const char *p = text ? text : "";
    for (int comma = 0;; comma = *p == ',', p += comma) {
        p += strspn(p, " ");
        /* "a,,b", ",a" or "a,": most likely a value left out ("$OFFICE,$VPN"
         * with one unset), refused rather than read as a shorter list. */
        if (*p == ',' || (!*p && comma)) {
            snprintf(why, whylen, "entry %zu is empty (two commas, or a comma at an end)", count + 1);
            return -1;
        }
        if (!*p)
            return (int)count;
        size_t n = strcspn(p, ", ");
        char entry[64];
        if (n >= sizeof entry) {
            snprintf(why, whylen, "'%.60s...' is not an address or ADDRESS/PREFIX", p);
            return -1;
        }
        memcpy(entry, p, n);
        entry[n] = '\0';
        if (count == max) {
            snprintf(why, whylen, "more than %zu addresses: '%s' is one too many", max, entry);
            return -1;
        }
        if (cidr_parse(entry, &out[count], why, whylen) != 0)
            return -1;
        count++;
        p += n;
        p += strspn(p, " ");
    }
}

void cidr_format(const cidr_range *c, char out[APIKEY_CIDR_TEXT_MAX])
{
    char addr[INET6_ADDRSTRLEN];
    if (!inet_ntop(c->addr.family == 4 ? AF_INET : AF_INET6, c->addr.bytes, addr, sizeof addr))
        addr[0] = '\0';
    snprintf(out, APIKEY_CIDR_TEXT_MAX, "%s/%u", addr, c->prefix);
}

int cidr_match(const cidr_range *c, const cidr_addr *a)
{
    if (c->addr.family != a->family)
        return 0;
    unsigned whole = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr.bytes, a->bytes, whole) != 0)
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (c->addr.bytes[whole] & mask) == (a->bytes[whole] & mask);
}

int cidr_canonical_list(const char *text, char out[APIKEY_ALLOW_FROM_MAX], char *why,
                        size_t whylen)
{
    cidr_range list[APIKEY_ALLOW_ENTRIES];
    int n = cidr_parse_list(text ? text : "", list, APIKEY_ALLOW_ENTRIES, why, whylen);
    if (n < 0)
        return -1;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char one[APIKEY_CIDR_TEXT_MAX];
        cidr_format(&list[i], one);
        /* 16 entries of at most 49 characters and their separators fit. */
        used += (size_t)snprintf(out + used, APIKEY_ALLOW_FROM_MAX - used, "%s%s", i ? " " : "", one);
    }
    return 0;
}

int cidr_allows(const char *allow_from, const char *client)
{
    cidr_range list[APIKEY_ALLOW_ENTRIES];
    char why[128];
    int n = cidr_parse_list(allow_from, list, APIKEY_ALLOW_ENTRIES, why, sizeof why);
    if (n < 0)
        return -1;
    cidr_addr a;
    if (!client || addr_parse(client, &a) != 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (cidr_match(&list[i], &a))
            return 1;
    return 0;
}
