/* SPDX-License-Identifier: BSD-2-Clause */
#include "helper_line.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode %XX escapes of [in, in+n) into out; a NUL byte is refused. */
static int unescape(const char *in, size_t n, char *out, size_t max, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(in[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(in[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi << 4 | lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= max)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

int helper_parse_line(const char *line, size_t len, int concurrency, helper_request *req)
{
    memset(req, 0, sizeof *req);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    const char *end = line + len;
    if (memchr(line, '\0', len))
        return -1;
    if (concurrency) {
        const char *sp = memchr(line, ' ', len);
        size_t n = sp ? (size_t)(sp - line) : len;
        if (n == 0 || n >= sizeof req->channel)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (line[i] < '0' || line[i] > '9')
                return -1;
        memcpy(req->channel, line, n);
        if (!sp)
            return -1;
        line = sp + 1;
    }
    const char *sp = memchr(line, ' ', (size_t)(end - line));
    if (!sp || sp == line || sp + 1 >= end)
        return -1;
    size_t ulen;
    if (unescape(line, (size_t)(sp - line), req->user, sizeof req->user, &ulen) != 0)
        return -1;
    const char *pw = sp + 1;
    const char *pw_end = memchr(pw, ' ', (size_t)(end - pw));
    if (!pw_end)
        return unescape(pw, (size_t)(end - pw), req->password, sizeof req->password, &req->password_len);
    /* key_extras: "%>a" first. Squid writes a logformat value as it is
     * (an address needs no escaping), but "%#>a" would URL-escape it. */
    const char *extra = pw_end + 1, *extra_end = memchr(extra, ' ', (size_t)(end - extra));
    if (!extra_end)
        extra_end = end;
    size_t alen;
    if (pw_end == pw || extra_end == extra ||
        unescape(pw, (size_t)(pw_end - pw), req->password, sizeof req->password, &req->password_len) != 0 ||
        unescape(extra, (size_t)(extra_end - extra), req->client_addr_buf, sizeof req->client_addr_buf,
                 &alen) != 0)
        return -1;
    /* A value Squid does not have yet expands as a dash: unknown. */
    req->client_addr = strcmp(req->client_addr_buf, "-") == 0 ? NULL : req->client_addr_buf;
    return 0;
}
