/* Which address a request comes from, for per-key allowlists: the peer's,
 * unless the peer is a proxy named in trusted_proxies. Then the forwarded
 * chain is read from its end (the hop the proxy itself saw) back, skipping
 * trusted proxies, as nginx's realip module does with real_ip_recursive:
 * the entries further left were written by the client and prove nothing.
 * Anything unparsable gives "" (unknown), which an allowlist refuses. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "authd.h"

typedef authd_ip ip;

/* An IPv4-mapped IPv6 address is the IPv4 address it carries. */
static void unmap(ip *a)
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (a->family == AF_INET6 && memcmp(a->addr, prefix, 12) == 0) {
        memmove(a->addr, a->addr + 12, 4);
        a->family = AF_INET;
    }
}

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
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -1;
    unmap(out);
    return 0;
}

static int in_net(const ip *a, const authd_net *n)
{
    if (a->family != n->family)
        return 0;
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(a->addr, n->addr, full) != 0)
        return 0;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return rest == 0 || (a->addr[full] & mask) == (n->addr[full] & mask);
}

static int trusted(const authd_settings *s, const ip *a)
{
    for (size_t i = 0; i < s->nproxies; i++)
        if (in_net(a, &s->proxies[i]))
            return 1;
    return 0;
}

void authd_ip_text(const authd_ip *a, char *out, size_t outlen)
{
    if (!a->family || !inet_ntop(a->family, a->addr, out, (socklen_t)outlen))
        snprintf(out, outlen, "%s", "");
}

/* The peer's IP address; 0 when it has none (a Unix socket). */
static int peer_ip(const struct sockaddr *peer, ip *a)
{
    if (peer && peer->sa_family == AF_INET) {
        a->family = AF_INET;
        memcpy(a->addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        return 1;
    }
    if (peer && peer->sa_family == AF_INET6) {
        a->family = AF_INET6;
        memcpy(a->addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
        unmap(a);
        return 1;
    }
    return 0;
}

int authd_peer_trusted(const authd_settings *s, const struct sockaddr *peer)
{
    ip a = {0};
    return peer_ip(peer, &a) ? trusted(s, &a) : (peer && peer->sa_family == AF_UNIX && s->trust_unix);
}

void authd_client_address(const authd_settings *s, const struct sockaddr *peer, authd_header_fn header,
                          void *arg, authd_ip *out)
{
    ip a = {0};
    int have_peer = peer_ip(peer, &a);
    memset(out, 0, sizeof *out);
    if (!authd_peer_trusted(s, peer)) {
        if (have_peer)
            *out = a;
        return;
    }
    const char *xff = header(arg, "X-Forwarded-For"), *real_ip;
    if (xff && *xff) {
        size_t end = strlen(xff);
        for (;;) {
            size_t start = end;
            while (start > 0 && xff[start - 1] != ',')
                start--;
            ip hop;
            if (parse_ip(xff + start, end - start, &hop) != 0)
                return;
            if (!trusted(s, &hop) || start == 0) {
                *out = hop;
                return;
            }
            end = start - 1;
        }
    }
    if ((real_ip = header(arg, "X-Real-IP")) && *real_ip) {
        if (parse_ip(real_ip, strlen(real_ip), &a) == 0)
            *out = a;
        return;
    }
    if (have_peer) /* a trusted proxy that forwarded nothing: itself */
        *out = a;
}
