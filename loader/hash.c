/* SPDX-License-Identifier: BSD-2-Clause */
/* Hashing a whole key: SHA-256, or HMAC-SHA256 with the deployment's
 * pepper, which is loaded here. */
/* SHA256_Init and its kin are deprecated in OpenSSL 3 for EVP, which costs
 * more than the hash of a key (core_hash_key below); they remain in 3.x. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "core.h"
#include "hot_path.h"
#include "secfile.h"

int core_load_pepper(apikey_ctx *ctx, char *err, size_t errlen)
{
    if (!ctx->cfg.pepper_file)
        return 0;
    char *text = NULL;
    size_t len = 0;
    if (secfile_read(ctx->cfg.pepper_file, 4096, &text, &len, err, errlen) != 0)
        return -1;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    int rc = -1;
    if (len < 16 || len > sizeof ctx->pepper) {
        snprintf(err, errlen, "%s: a pepper must hold 16 to %zu bytes", ctx->cfg.pepper_file,
                 sizeof ctx->pepper);
    } else {
        memcpy(ctx->pepper, text, len);
        ctx->pepper_len = len;
        rc = 0;
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

HOT_PATH int core_hash_key(const apikey_ctx *ctx, const char *key, size_t len,
                  unsigned char out[APIKEY_HASH_LEN])
{
    unsigned int n = 0;
    if (ctx->pepper_len)
        return HMAC(ctx->md, ctx->pepper, (int)ctx->pepper_len, (const unsigned char *)key, len,
                    out, &n) && n == APIKEY_HASH_LEN ? 0 : -1;
    /* OpenSSL's own SHA-256 (the same code its provider runs, SHA-NI where
     * the CPU has it) on a context on the stack: through EVP, a key's one
     * block cost less than setting the digest up again and finishing it
     * (bench/RESULTS.md, "Third pass"). */
    SHA256_CTX c;
    int ok = SHA256_Init(&c) == 1 && SHA256_Update(&c, key, len) == 1 && SHA256_Final(out, &c) == 1;
    wipe_secret(&c, sizeof c); /* it held the key */
    return ok ? 0 : -1;
}
