/* SPDX-License-Identifier: BSD-2-Clause */
/* The HTTP hosts' credential rules (common/credential.c) on what a client
 * sends: the first byte says how many Authorization and key-header lines
 * there were, the rest up to a NUL is the Authorization value, the remainder
 * the key header's. Whatever is read stays within its buffers, a refusal
 * leaves nothing behind, and the challenge always fits or is refused. */
#include <stdint.h>
#include <string.h>

#include "credential.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    const char *nul = memchr(in, '\0', n);
    size_t alen = nul ? (size_t)(nul - in) : n;
    credential_header auth = {in, alen, data[0] & 3};
    credential_header key = {nul ? nul + 1 : NULL, nul ? n - alen - 1 : 0, (data[0] >> 2) & 3};
    if (!auth.count)
        auth.value = NULL, auth.len = 0;
    if (!key.count || !key.value)
        key.value = NULL, key.len = 0, key.count = 0;
    credential c;
    apikey_reason why = credential_read(&auth, &key, &c);
    if (why == APIKEY_REASON_NONE) {
        if (c.keylen == 0 || c.keylen >= sizeof c.key || c.key[c.keylen] != '\0' ||
            strlen(c.account) >= sizeof c.account)
            __builtin_trap();
    } else {
        static const credential zero;
        if (memcmp(&c, &zero, sizeof c) != 0 ||
            (why != APIKEY_REASON_MISSING && why != APIKEY_REASON_MALFORMED))
            __builtin_trap();
    }
    /* The value as service name and scopes, into a buffer of any size. */
    char out[600], svc[200];
    size_t sl = alen < sizeof svc - 1 ? alen : sizeof svc - 1;
    memcpy(svc, in, sl);
    svc[sl] = '\0';
    size_t outlen = data[0] * 2 + 1 < sizeof out ? (size_t)data[0] * 2 + 1 : sizeof out;
    size_t got = credential_challenge(out, outlen, data[0] & 0x40 ? 403 : 401, svc, why != APIKEY_REASON_MISSING,
                                      svc);
    if (got && (got >= outlen || strlen(out) != got))
        __builtin_trap();
    credential_service_ok(in, alen);
    credential_wipe(&c);
    return 0;
}
