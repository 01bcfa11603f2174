/* SPDX-License-Identifier: BSD-2-Clause */
/* Which address a request comes from, for per-key allowlists: the peer's,
 * unless the peer is a proxy named in trusted_proxies. Then the header that
 * forwarded_header names (and no other) is read, every line of it as one
 * list, from its end (the hop the proxy itself saw) back, skipping trusted
 * proxies, as nginx's realip module does with real_ip_recursive: the
 * entries further left were written by the client and prove nothing. A
 * proxy that appends a line of its own (HAProxy's option forwardfor) is
 * read the same as one that appends to the line. X-Real-IP holds one
 * address, or it is unknown.
 * Anything unparsable gives "" (unknown), which an allowlist refuses.
 * Addresses and trusted_proxies follow the allowlists' rules (cidr.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "authd.h"

typedef authd_ip ip;

/* Room for a long chain; a longer one is unknown, not cut. */
#define FORWARDED_MAX 4096

static int parse_ip(const char *s, size_t n, ip *out)
{
    char buf[AUTHD_ADDR_MAX];
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return addr_parse(buf, out);
}

static int trusted(const authd_settings *s, const ip *a)
{
    for (size_t i = 0; i < s->nproxies; i++)
        if (cidr_match(&s->proxies[i], a))
            return 1;
    return 0;
}

void authd_ip_text(const authd_ip *a, char *out, size_t outlen)
{
    if (!a->family || !inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, out, (socklen_t)outlen))
        snprintf(out, outlen, "%s", "");
}

/* The peer's address read as a client's text would be (a mapped IPv6
 * address is the IPv4 one): 0, or -1 when the peer has none. */
static int peer_ip(const struct sockaddr *peer, ip *out)
{
    char text[AUTHD_ADDR_MAX];
    const void *a = !peer                         ? NULL
                    : peer->sa_family == AF_INET  ? (const void *)&((const struct sockaddr_in *)peer)->sin_addr
                    : peer->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr
                                                  : NULL;
    if (!a || !inet_ntop(peer->sa_family, a, text, sizeof text))
        return -1;
    return addr_parse(text, out);
}

int authd_peer_trusted(const authd_settings *s, const struct sockaddr *peer)
{
    ip a;
    return peer_ip(peer, &a) == 0 ? trusted(s, &a) : (peer && peer->sa_family == AF_UNIX && s->trust_unix);
}

void authd_client_address(const authd_settings *s, const struct sockaddr *peer, authd_header_fn header,
                          void *arg, authd_ip *out)
{
    ip a;
    int have_peer = peer_ip(peer, &a) == 0;
    memset(out, 0, sizeof *out);
    if (!authd_peer_trusted(s, peer)) {
        if (have_peer)
            *out = a;
        return;
    }
    char list[FORWARDED_MAX] = "";
    const char *name = s->forwarded_header ? s->forwarded_header : "X-Forwarded-For";
    int got = header(arg, name, list, sizeof list);
    /* X-Real-IP holds one address: two (two lines) are unknown. */
    if (got < 0 || (strcmp(name, "X-Real-IP") == 0 && strchr(list, ',')))
        return;
    if (got == 0 || !list[0]) {
        if (have_peer) /* a trusted proxy that forwarded nothing: itself */
            *out = a;
        return;
    }
    for (size_t end = strlen(list);;) {
        size_t start = end;
        while (start > 0 && list[start - 1] != ',')
            start--;
        ip hop;
        if (parse_ip(list + start, end - start, &hop) != 0)
            return;
        if (!trusted(s, &hop) || start == 0) {
            *out = hop;
            return;
        }
        end = start - 1;
    }
}
