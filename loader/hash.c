/* SPDX-License-Identifier: BSD-2-Clause */
/* Hashing a whole key: SHA-256, or HMAC-SHA256 with the deployment's
 * pepper, which is loaded here. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core.h"
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

/* One digest context per thread, kept: EVP_Digest allocates, sets up and
 * frees one at every call, about a third of hashing a key. libapikey is
 * never unloaded (-z nodelete), so the key's destructor stays valid. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static int md_key_ok;

static void md_free(void *c)
{
    EVP_MD_CTX_free(c);
}

static void md_key_init(void)
{
    md_key_ok = pthread_key_create(&md_key, md_free) == 0;
}

static EVP_MD_CTX *thread_md_ctx(void)
{
    pthread_once(&md_once, md_key_init);
    if (!md_key_ok)
        return NULL;
    EVP_MD_CTX *c = pthread_getspecific(md_key);
    if (!c && (c = EVP_MD_CTX_new()) && pthread_setspecific(md_key, c) != 0) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    return c;
}

int core_hash_key(const apikey_ctx *ctx, const char *key, size_t len,
                  unsigned char out[APIKEY_HASH_LEN])
{
    unsigned int n = 0;
    if (ctx->pepper_len)
        return HMAC(ctx->md, ctx->pepper, (int)ctx->pepper_len, (const unsigned char *)key, len,
                    out, &n) && n == APIKEY_HASH_LEN ? 0 : -1;
    EVP_MD_CTX *c = thread_md_ctx();
    if (!c)
        return EVP_Digest(key, len, out, &n, ctx->md, NULL) == 1 && n == APIKEY_HASH_LEN ? 0 : -1;
    return EVP_DigestInit_ex2(c, ctx->md, NULL) == 1 && EVP_DigestUpdate(c, key, len) == 1 &&
                   EVP_DigestFinal_ex(c, out, &n) == 1 && n == APIKEY_HASH_LEN
               ? 0
               : -1;
}
