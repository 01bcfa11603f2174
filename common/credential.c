/* SPDX-License-Identifier: BSD-2-Clause */
/* The HTTP hosts' credential rules (credential.h). Compiled into the nginx
 * module by nginx's own build (nginx/config) and into apikey-authd by the
 * Makefile: nothing here knows either server. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* explicit_bzero */
#endif
#include <stdio.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "credential.h"

/* Decoded Basic user-pass: an account of up to 255 bytes, a colon, a key. */
#define CREDENTIAL_BASIC_MAX (CREDENTIAL_ACCOUNT_MAX + CREDENTIAL_KEY_MAX)

/* What was written, not the whole 776 bytes at every request: the key's
 * bytes are only ever its keylen and a NUL (take_key copies them once they
 * passed), the account its string. A keylen out of range wipes it all. */
void credential_wipe(credential *c)
{
    if (c->keylen >= sizeof c->key) {
        explicit_bzero(c, sizeof *c);
        return;
    }
    explicit_bzero(c->key, c->keylen + 1);
    explicit_bzero(c->account, strnlen(c->account, sizeof c->account - 1) + 1);
    c->keylen = 0;
}

static int blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* RFC 7230's obs-text aside, a header value holds no control character;
 * neither does a key, nor (RFC 7617) a Basic user-id or password. */
static int ctl(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f;
}

/* "Scheme " at the start of v (any case, one space, as nginx reads it):
 * the rest, else NULL. */
static const char *after_scheme(const credential_header *h, const char *scheme, size_t *len)
{
    size_t n = strlen(scheme);
    if (h->count != 1 || h->len <= n || strncasecmp(h->value, scheme, n) != 0 || h->value[n] != ' ')
        return NULL;
    *len = h->len - n - 1;
    return h->value + n + 1;
}

/* Whether p[0..n) holds a control character or a space, 16 bytes at a
 * time where SSE2 is there (every x86-64): a byte at a time was 430
 * instructions of every request's key, more than its CRC and its base62
 * check together. */
static int ctl_or_space(const char *p, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    if (n >= 16) {
        const __m128i space = _mm_set1_epi8(' '), del = _mm_set1_epi8(0x7f);
        __m128i bad = _mm_setzero_si128();
        for (;; i += 16) {
            if (i + 16 > n)
                i = n - 16; /* the last block overlaps the one before */
            __m128i c = _mm_loadu_si128((const __m128i *)(p + i));
            /* c <= ' ' unsigned (every control character but DEL, and the
             * space) is min(c, ' ') == c. */
            bad = _mm_or_si128(bad, _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(c, space), c),
                                                 _mm_cmpeq_epi8(c, del)));
            if (i + 16 >= n)
                break;
        }
        return _mm_movemask_epi8(bad) != 0;
    }
#endif
    for (; i < n; i++)
        if (ctl((unsigned char)p[i]) || p[i] == ' ')
            return 1;
    return 0;
}

/* The key in p (blanks around it dropped) into out. */
static apikey_reason take_key(const char *p, size_t n, credential *out)
{
    while (n && blank(*p))
        p++, n--;
    while (n && blank(p[n - 1]))
        n--;
    if (n == 0 || n >= sizeof out->key || ctl_or_space(p, n))
        return APIKEY_REASON_MALFORMED;
    memcpy(out->key, p, n);
    out->key[n] = '\0';
    out->keylen = n;
    return APIKEY_REASON_NONE;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Strict standard base64 (RFC 4648 section 4): padding only at the end and
 * only as much as the length needs, or none. -1 when malformed or longer
 * than out. */
static int base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *got)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0, i, pad = 0;

    while (pad < 2 && len > pad && in[len - 1 - pad] == '=')
        pad++;
    if (pad && len % 4 != 0)
        return -1;
    len -= pad;
    if (len % 4 == 1)
        return -1;
    for (i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outlen)
                return -1;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* The bits left over must be zero, as a canonical encoder leaves them. */
    if (acc & ((1u << bits) - 1))
        return -1;
    *got = o;
    return 0;
}

/* RFC 7617: base64 of account:key. */
static apikey_reason take_basic(const char *p, size_t n, credential *out)
{
    unsigned char plain[CREDENTIAL_BASIC_MAX];
    size_t got = 0, i, colon;
    apikey_reason why = APIKEY_REASON_MALFORMED;

    while (n && p[0] == ' ')
        p++, n--;
    while (n && blank(p[n - 1]))
        n--;
    if (n == 0 || base64_decode(p, n, plain, sizeof plain, &got) != 0)
        goto done;
    for (i = 0; i < got; i++)
        if (ctl(plain[i]))
            goto done;
    for (colon = 0; colon < got && plain[colon] != ':'; colon++)
        ;
    if (colon == 0 || colon == got || colon >= sizeof out->account)
        goto done;
    memcpy(out->account, plain, colon);
    out->account[colon] = '\0';
    why = take_key((const char *)plain + colon + 1, got - colon - 1, out);
done:
    explicit_bzero(plain, sizeof plain);
    return why;
}

apikey_reason credential_read(const credential_header *authorization, const credential_header *key_header,
                              credential *out)
{
    const char *p;
    size_t n;
    apikey_reason why;

    /* All of it: out may be a fresh buffer on the stack, or hold an
     * earlier request's key. */
    explicit_bzero(out, sizeof *out);
    /* Two lines of either header: neither is taken (nginx itself answers
     * 400 to a second Authorization). */
    if (authorization->count > 1 || key_header->count > 1)
        return APIKEY_REASON_MALFORMED;
    if ((p = after_scheme(authorization, "Bearer", &n)))
        why = take_key(p, n, out);
    else if (key_header->count == 1)
        why = take_key(key_header->value, key_header->len, out);
    else if ((p = after_scheme(authorization, "Basic", &n)))
        why = take_basic(p, n, out);
    else
        return APIKEY_REASON_MISSING;
    if (why != APIKEY_REASON_NONE)
        credential_wipe(out);
    return why;
}

int credential_service_ok(const char *name, size_t len)
{
    static const char extra[] = "._-@+";
    if (len == 0 || len > CREDENTIAL_SERVICE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

/* RFC 6750's scope-token characters: %x21 / %x23-5B / %x5D-7E. */
static int scope_char(char ch)
{
    return ch > ' ' && ch < 0x7f && ch != '"' && ch != '\\' && ch != ',';
}

size_t credential_challenge(char *out, size_t outlen, int status, const char *service, int given,
                            const char *scopes)
{
    const char *realm = service && credential_service_ok(service, strlen(service)) ? service : "apikey";
    size_t o;
    int n;

    if (status == 401)
        n = snprintf(out, outlen, "Bearer realm=\"%s\"%s", realm, given ? ", error=\"invalid_token\"" : "");
    else if (status == 403)
        n = snprintf(out, outlen, "Bearer realm=\"%s\", error=\"insufficient_scope\"", realm);
    else
        return 0;
    if (n < 0 || (size_t)n >= outlen)
        return 0;
    o = (size_t)n;
    if (status == 403 && scopes) {
        /* space-delimited, one space between tokens (RFC 6750 section 3) */
        const char *head = ", scope=\"";
        size_t hl = strlen(head), start = o;
        if (o + hl + 2 > outlen) /* the closing quote, the NUL */
            return 0;
        memcpy(out + o, head, hl);
        o += hl;
        for (const char *s = scopes; *s;) {
            size_t tl = 0;
            while (*s && !scope_char(*s))
                s++;
            while (scope_char(s[tl]))
                tl++;
            if (tl == 0)
                break;
            size_t sep = o > start + hl;
            if (o + sep + tl + 2 > outlen)
                return 0;
            if (sep)
                out[o++] = ' ';
            memcpy(out + o, s, tl);
            o += tl;
            s += tl;
        }
        out[o++] = '"';
        out[o] = '\0';
    }
    return o;
}

const char *credential_reason_string(const apikey_api *api, apikey_reason reason)
{
    return reason == APIKEY_REASON_MISSING ? "missing key" : api->reason_string(reason);
}
