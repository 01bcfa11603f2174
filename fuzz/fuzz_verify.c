/* SPDX-License-Identifier: BSD-2-Clause */
/* libFuzzer: the whole verify pipeline with arbitrary (service, account, key)
 * triples against a small real JSON store. Only the one real key, for its
 * account and services, may ever be allowed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"

static apikey_ctx *ctx;
static admin_issued issued;

static void setup(void)
{
    char dir[] = "/tmp/apikey-fuzz.XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char cfg[256], text[512];
    snprintf(cfg, sizeof cfg, "%s/apikey.conf", dir);
    snprintf(text, sizeof text, "store = json:%s/keys.json\n[services]\nsshd = proxies:read\nbilling = balance:read stats:read\n", dir);
    FILE *f = fopen(cfg, "w");
    fputs(text, f);
    fclose(f);
    ctx = core_open(cfg, 1, NULL, 0);
    if (!ctx)
        abort();
    admin_request req = {.account = "alice", .name = "f", .scopes = "proxies:read"};
    char err[256];
    if (admin_create(ctx, &req, 1, &issued, err, sizeof err) != APIKEY_OK)
        abort();
    ctx->cfg.last_used_granularity = 1 << 30; /* no journal writes while fuzzing */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx)
        setup();
    /* service NUL account NUL key; a lone 'K' byte at the start splices in
     * the real key, so the fuzzer explores around it. */
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *service = buf;
    const char *account = memchr(buf, 0, size) ? buf + strlen(buf) + 1 : "";
    size_t used = (size_t)(account - buf);
    const char *key = used < size && memchr(account, 0, size - used) ? account + strlen(account) + 1 : "";
    size_t keylen = (size_t)(buf + size - key);
    if (key > buf + size) {
        key = "";
        keylen = 0;
    }
    char spliced[128];
    if (keylen == 1 && key[0] == 'K') {
        snprintf(spliced, sizeof spliced, "%s", issued.key);
        key = spliced;
        keylen = strlen(spliced);
    }
    apikey_result res;
    apikey_decision d = apikey_verify(ctx, service, *account ? account : NULL, key, keylen, &res);
    if (d == APIKEY_ALLOWED) {
        int real = keylen == strlen(issued.key) && memcmp(key, issued.key, keylen) == 0;
        if (!real || strcmp(service, "sshd") != 0 || (*account && strcmp(account, "alice") != 0))
            abort();
    }
    free(buf);
    return 0;
}
