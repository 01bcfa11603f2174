/* SPDX-License-Identifier: BSD-2-Clause */
/* The key codec: round trips, the check refusing every one-character
 * change before any store is read, and id retries on collision. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "admin.h"
#include "keycodec.h"
#include "testutil.h"

static const char ALPHA[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_!";

static void test_round_trip(void)
{
    for (int i = 0; i < 200; i++) {
        char id[APIKEY_ID_LEN + 1], key[APIKEY_KEY_MAX], back[APIKEY_ID_LEN + 1];
        CU_ASSERT_EQUAL_FATAL(keycodec_random62(id, APIKEY_ID_LEN), 0);
        id[APIKEY_ID_LEN] = '\0';
        CU_ASSERT_EQUAL_FATAL(keycodec_make("ak", id, key), 0);
        CU_ASSERT_EQUAL(strlen(key), 3 + 8 + 32 + 6);
        CU_ASSERT_EQUAL(strncmp(key, "ak_", 3), 0);
        CU_ASSERT_EQUAL(keycodec_parse("ak", key, strlen(key), back), 0);
        CU_ASSERT_STRING_EQUAL(back, id);
        /* Another deployment's prefix is not ours. */
        CU_ASSERT_NOT_EQUAL(keycodec_parse("ak2", key, strlen(key), back), 0);
    }
}

static void test_every_single_change_refused(void)
{
    char id[] = "20fe9a1c", key[APIKEY_KEY_MAX], back[APIKEY_ID_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(keycodec_make("ak", id, key), 0);
    size_t len = strlen(key);
    int accepted = 0, tried = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (const char *c = ALPHA; *c; c++) {
            if (*c == key[pos])
                continue;
            char copy[APIKEY_KEY_MAX];
            memcpy(copy, key, len + 1);
            copy[pos] = *c;
            tried++;
            accepted += keycodec_parse("ak", copy, len, back) == 0;
        }
    }
    CU_ASSERT(tried > 3000);
    CU_ASSERT_EQUAL(accepted, 0);
    /* Truncated, extended and NUL-bearing keys too. */
    CU_ASSERT_NOT_EQUAL(keycodec_parse("ak", key, len - 1, back), 0);
    char longer[APIKEY_KEY_MAX + 2];
    memcpy(longer, key, len);
    longer[len] = 'x';
    CU_ASSERT_NOT_EQUAL(keycodec_parse("ak", longer, len + 1, back), 0);
    char withnul[APIKEY_KEY_MAX];
    memcpy(withnul, key, len + 1);
    withnul[10] = '\0';
    CU_ASSERT_NOT_EQUAL(keycodec_parse("ak", withnul, len, back), 0);
    CU_ASSERT_NOT_EQUAL(keycodec_parse("ak", "", 0, back), 0);
}

/* A malformed key is refused without the store: the store here is missing,
 * so any lookup would answer "unavailable". */
static void test_refused_before_store(void)
{
    char *cfg = tu_config("json:/nonexistent/apikey/keys.json", NULL, "sshd = proxies:read\n");
    apikey_ctx *ctx = apikey_open(cfg, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char key[APIKEY_KEY_MAX];
    CU_ASSERT_EQUAL_FATAL(keycodec_make("ak", "20fe9a1c", key), 0);
    apikey_result res;
    key[20] = key[20] == 'a' ? 'b' : 'a';
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_MALFORMED);
    key[20] = key[20] == 'a' ? 'b' : 'a';
    /* The well-formed one does reach the store, which is missing. */
    keycodec_make("ak", "20fe9a1c", key);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res), APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_STORE);
    apikey_close(ctx);
    free(cfg);
}

/* Hands out the same bytes for the first id of two keys, then real ones. */
static int calls;
static int colliding_rand(unsigned char *buf, int len)
{
    calls++;
    if (calls == 1 || calls == 3) {
        memset(buf, 7, (size_t)len);
        return 1;
    }
    return RAND_bytes(buf, len);
}

static void test_id_collision_retried(void)
{
    char *uri = tu_new_store_uri();
    char *cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    apikey_ctx *ctx = core_open(cfg, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    admin_request req = {.account = "alice", .name = "a", .scopes = "proxies:read"};
    admin_issued one, two;
    char err[256];
    keycodec_set_rand(colliding_rand);
    calls = 0;
    CU_ASSERT_EQUAL(admin_create(ctx, &req, 1, &one, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(admin_create(ctx, &req, 1, &two, err, sizeof err), APIKEY_OK);
    keycodec_set_rand(NULL);
    CU_ASSERT(calls >= 5); /* the second id was drawn twice */
    CU_ASSERT_STRING_NOT_EQUAL(one.rec.id, two.rec.id);
    apikey_result res;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", one.key, strlen(one.key), &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", two.key, strlen(two.key), &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    free(cfg);
    free(uri);
}

static void test_ids_unique(void)
{
    /* 8 base62 characters: 2^47 ids; 20,000 draws must not repeat. */
    enum { N = 20000 };
    char (*ids)[APIKEY_ID_LEN + 1] = calloc(N, sizeof *ids);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(keycodec_random62(ids[i], APIKEY_ID_LEN), 0);
    qsort(ids, N, sizeof *ids, (int (*)(const void *, const void *))strcmp);
    int dups = 0;
    for (int i = 1; i < N; i++)
        dups += strcmp(ids[i - 1], ids[i]) == 0;
    CU_ASSERT_EQUAL(dups, 0);
    free(ids);
}

/* Keys made by an earlier build (apikey create, before the check was read
 * as a number) still parse; the CRC is zlib's; a check whose number is
 * the CRC plus 2^32 (six characters still) is refused, as is any one
 * character changed in the check. */
/* CRC-32 a bit at a time, as the standard defines it: the reference for
 * keycodec_crc32, which takes the table or the carry-less multiply path
 * by length and CPU. */
static uint32_t crc32_bitwise(const unsigned char *d, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int b = 0; b < 8; b++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void test_crc_every_length(void)
{
    unsigned char buf[300];
    unsigned seed = 12345;
    int wrong = 0;
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 16);
        /* Every length, from every alignment of the first byte. */
        for (size_t off = 0; off < 16; off++)
            for (size_t n = 0; off + n <= 260; n++)
                wrong += keycodec_crc32(buf + off, n) != crc32_bitwise(buf + off, n);
    }
    CU_ASSERT_EQUAL(wrong, 0);
}

static void test_earlier_keys_and_vectors(void)
{
    static const char *made[] = {
        "ak_hV5HmKYdixqiWNNgx1rKygqoU8JjMWaJzSo1oleN2usQ6K",
        "ak_jd8Q2DfrWSjlrlenXAC8isH2cvZBhNI5QHSFs9rl3Rkjq7",
        "ak_3PYYlHajkQszjgo6G4jO2BicVDGkhOPj6p4aWXaA2h39o5",
    };
    char back[APIKEY_ID_LEN + 1];
    CU_ASSERT_EQUAL(keycodec_crc32((const unsigned char *)"123456789", 9), 0xCBF43926u);
    CU_ASSERT_EQUAL(keycodec_crc32((const unsigned char *)"", 0), 0);
    for (size_t k = 0; k < sizeof made / sizeof *made; k++) {
        size_t len = strlen(made[k]), body = len - APIKEY_CHECK_LEN;
        CU_ASSERT_EQUAL(keycodec_parse("ak", made[k], len, back), 0);
        CU_ASSERT_EQUAL(strncmp(back, made[k] + 3, APIKEY_ID_LEN), 0);
        /* The same CRC plus 2^32, written in six base62 characters. */
        uint64_t over = (uint64_t)keycodec_crc32((const unsigned char *)made[k], body) + (1ull << 32);
        char forged[APIKEY_KEY_MAX];
        memcpy(forged, made[k], len + 1);
        for (int i = APIKEY_CHECK_LEN - 1; i >= 0; i--, over /= 62)
            forged[body + (size_t)i] = ALPHA[over % 62];
        CU_ASSERT_NOT_EQUAL(keycodec_parse("ak", forged, len, back), 0);
        for (size_t i = body; i < len; i++) {
            memcpy(forged, made[k], len + 1);
            forged[i] = forged[i] == 'z' ? '0' : (char)(forged[i] == '9' ? 'A' : forged[i] + 1);
            CU_ASSERT_NOT_EQUAL(keycodec_parse("ak", forged, len, back), 0);
        }
    }
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"round trip", test_round_trip},
        {"every one-character change is refused", test_every_single_change_refused},
        {"malformed keys are refused before the store", test_refused_before_store},
        {"an id collision is retried", test_id_collision_retried},
        {"ids are unique", test_ids_unique},
        {"keys of an earlier build parse; zlib's CRC; a check past 32 bits refused", test_earlier_keys_and_vectors},
        {"the CRC of every length from 0 to 260, at every alignment, as the standard defines it", test_crc_every_length},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"keycodec", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
