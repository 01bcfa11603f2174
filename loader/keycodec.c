/* SPDX-License-Identifier: BSD-2-Clause */
#include "keycodec.h"
#include "hot_path.h"

#include <string.h>
#include <openssl/rand.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static apikey_rand_fn rand_source = RAND_bytes;

void keycodec_set_rand(apikey_rand_fn fn)
{
    rand_source = fn ? fn : RAND_bytes;
}

/* A table rather than three range tests: every character of every key
 * passes through it. Each base62 character's value plus one; 0 for any
 * other byte. */
#define R10(c, v) [c] = v + 1, [c + 1] = v + 2, [c + 2] = v + 3, [c + 3] = v + 4, [c + 4] = v + 5, \
                  [c + 5] = v + 6, [c + 6] = v + 7, [c + 7] = v + 8, [c + 8] = v + 9, [c + 9] = v + 10
static const unsigned char b62_plus1[256] = {
    R10('0', 0),
    R10('A', 10), R10('K', 20), ['U'] = 31, ['V'] = 32, ['W'] = 33, ['X'] = 34, ['Y'] = 35, ['Z'] = 36,
    R10('a', 36), R10('k', 46), ['u'] = 57, ['v'] = 58, ['w'] = 59, ['x'] = 60, ['y'] = 61, ['z'] = 62,
};
#undef R10

static int is_b62(unsigned char c)
{
    return b62_plus1[c] != 0;
}

/* Whether s[0..n) is all base62, 16 characters at a time where SSE2 is
 * there (every x86-64): a byte at a time was a tenth of a warm verify. */
HOT_PATH static int all_b62(const unsigned char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    if (n >= 16) {
        /* Signed compares: c - lo + (-128) < span - 128 tests lo <= c < lo + span. */
        const __m128i bias = _mm_set1_epi8(-128);
        __m128i bad = _mm_setzero_si128();
        for (;; i += 16) {
            if (i + 16 > n)
                i = n - 16; /* the last block overlaps the one before */
            __m128i c = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i dig = _mm_cmplt_epi8(_mm_add_epi8(_mm_sub_epi8(c, _mm_set1_epi8('0')), bias),
                                         _mm_set1_epi8(10 - 128));
            __m128i up = _mm_cmplt_epi8(_mm_add_epi8(_mm_sub_epi8(c, _mm_set1_epi8('A')), bias),
                                        _mm_set1_epi8(26 - 128));
            __m128i low = _mm_cmplt_epi8(_mm_add_epi8(_mm_sub_epi8(c, _mm_set1_epi8('a')), bias),
                                         _mm_set1_epi8(26 - 128));
            bad = _mm_or_si128(bad, _mm_andnot_si128(_mm_or_si128(dig, _mm_or_si128(up, low)),
                                                     _mm_set1_epi8(-1)));
            if (i + 16 >= n)
                break;
        }
        return _mm_movemask_epi8(bad) == 0;
    }
#endif
    for (; i < n; i++)
        if (!is_b62(s[i]))
            return 0;
    return 1;
}

int keycodec_is_base62(const char *s, size_t n)
{
    return all_b62((const unsigned char *)s, n);
}

int keycodec_prefix_valid(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n < 1 || n > APIKEY_PREFIX_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((prefix[i] >= 'a' && prefix[i] <= 'z') || (prefix[i] >= '0' && prefix[i] <= '9')))
            return 0;
    return 1;
}

int keycodec_random62(char *out, size_t n)
{
    unsigned char buf[64];
    size_t have = 0;
    while (have < n) {
        if (rand_source(buf, sizeof buf) != 1)
            return -1;
        /* Rejection sampling: 248 = 4 * 62, so every character is equally likely. */
        for (size_t i = 0; i < sizeof buf && have < n; i++)
            if (buf[i] < 248)
                out[have++] = B62[buf[i] % 62];
    }
    memset(buf, 0, sizeof buf);
    return 0;
}

/* CRC-32 (IEEE 802.3, as zlib's crc32), sliced by 8 from tables built once:
 * it runs on every check before any store is touched, and a byte at a time
 * its chain of dependent table loads cost about a third of a warm verify. */
/* 8 KiB on two whole pages, not straddling three. */
static uint32_t crc_table[8][256] __attribute__((aligned(4096)));

/* Built as the library loads: a pthread_once at every check was a call
 * into libc's page of it. */
__attribute__((constructor)) static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int b = 0; b < 8; b++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

#if defined(__x86_64__)
#include <immintrin.h>
#define CLMUL_MAX 128
static int have_clmul;

/* CRC-32 by carry-less multiplication, for a key's body (16 to CLMUL_MAX
 * bytes) where the CPU has PCLMULQDQ (every x86-64 since 2010): folds of 16
 * bytes and a Barrett reduction, as Intel's "Fast CRC Computation for
 * Generic Polynomials Using PCLMULQDQ" describes them, with the constants
 * of Linux's crc32-pclmul for this polynomial. The tables' chain of
 * dependent loads cost 45 ns a check in an nginx worker, whose own work
 * had evicted them from the cache; this touches no table.
 *
 * Zero bytes go in front, to a multiple of 16: with a register of zero
 * they change nothing, and the register's initial ones are xored into the
 * message's first four bytes instead, which is the same. */
HOT_PATH __attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_clmul(const unsigned char *data,
                                                                             size_t len)
{
    unsigned char buf[CLMUL_MAX + 16] __attribute__((aligned(16)));
    size_t pad = (16 - len % 16) % 16, n = len + pad;
    memset(buf, 0, 16);
    memcpy(buf + pad, data, len);
    for (size_t i = pad; i < pad + 4; i++)
        buf[i] ^= 0xFF;
    const __m128i r4r3 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
    const __m128i r5 = _mm_set_epi64x(0, 0x163cd6124LL);
    const __m128i upoly = _mm_set_epi64x(0x1f7011641LL, 0x1db710641LL);
    const __m128i low32 = _mm_set_epi32(0, 0, 0, -1);
    __m128i x = _mm_load_si128((const __m128i *)buf);
    for (size_t i = 16; i < n; i += 16)
        x = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, r4r3, 0x00), _mm_clmulepi64_si128(x, r4r3, 0x11)),
                          _mm_load_si128((const __m128i *)(buf + i)));
    /* 128 bits to 64, 64 to 32, then Barrett's reduction. */
    x = _mm_xor_si128(_mm_clmulepi64_si128(x, r4r3, 0x10), _mm_srli_si128(x, 8));
    x = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x, low32), r5, 0x00), _mm_srli_si128(x, 4));
    __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x, low32), upoly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), upoly, 0x00);
    x = _mm_xor_si128(x, t);
    explicit_bzero(buf, n);
    return ~(uint32_t)_mm_extract_epi32(x, 1);
}

__attribute__((constructor)) static void clmul_init(void)
{
    __builtin_cpu_init();
    have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}
#endif

HOT_PATH uint32_t keycodec_crc32(const unsigned char *data, size_t len)
{
#if defined(__x86_64__)
    if (have_clmul && len >= 16 && len <= CLMUL_MAX)
        return crc32_clmul(data, len);
#endif
    uint32_t crc = 0xFFFFFFFFu;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        const unsigned char *d = data + i;
        uint32_t lo = crc ^ ((uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24);
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][d[4]] ^
              crc_table[2][d[5]] ^ crc_table[1][d[6]] ^ crc_table[0][d[7]];
    }
    for (; i < len; i++)
        crc = crc_table[0][(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static void encode_check(uint32_t crc, char *out)
{
    for (int i = APIKEY_CHECK_LEN - 1; i >= 0; i--) {
        out[i] = B62[crc % 62];
        crc /= 62;
    }
}

int keycodec_make(const char *prefix, const char *id, char *out)
{
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    out[p] = '_';
    memcpy(out + p + 1, id, APIKEY_ID_LEN);
    char *secret = out + p + 1 + APIKEY_ID_LEN;
    if (keycodec_random62(secret, APIKEY_SECRET_LEN) != 0)
        return -1;
    size_t body = p + 1 + APIKEY_ID_LEN + APIKEY_SECRET_LEN;
    encode_check(keycodec_crc32((const unsigned char *)out, body), out + body);
    out[body + APIKEY_CHECK_LEN] = '\0';
    return 0;
}

HOT_PATH int keycodec_parse(const char *prefix, const char *key, size_t len, char *id_out)
{
    /* The prefix compared as it is measured, in line: a few bytes, where
     * strlen and memcmp were two libc pages more a check. */
    size_t p = 0;
    for (; prefix[p]; p++)
        if (p >= len || key[p] != prefix[p])
            return -1;
    if (len != p + 1 + APIKEY_ID_LEN + APIKEY_SECRET_LEN + APIKEY_CHECK_LEN || key[p] != '_')
        return -1;
    if (!all_b62((const unsigned char *)key + p + 1, len - p - 1))
        return -1;
    size_t body = len - APIKEY_CHECK_LEN;
    /* The check characters read as the number they encode (all base62, as
     * tested above): one multiply-add each, where encoding the CRC again
     * took a division each. Six digits hold any 32-bit CRC once (62^6 >
     * 2^32), so the number equals the CRC exactly when encode_check would
     * have written these six characters. */
    uint64_t check = 0;
    for (size_t i = body; i < len; i++)
        check = check * 62 + (uint64_t)(b62_plus1[(unsigned char)key[i]] - 1);
    if (check != keycodec_crc32((const unsigned char *)key, body))
        return -1;
    memcpy(id_out, key + p + 1, APIKEY_ID_LEN);
    id_out[APIKEY_ID_LEN] = '\0';
    return 0;
}
