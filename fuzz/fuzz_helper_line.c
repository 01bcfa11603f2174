/* SPDX-License-Identifier: BSD-2-Clause */
/* libFuzzer: one line of Squid's helper protocol. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helper_line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    memcpy(line, data, size);
    for (int concurrency = 0; concurrency < 2; concurrency++) {
        helper_request req;
        if (helper_parse_line(line, size, concurrency, &req) == 0) {
            if (!req.user[0] || strlen(req.user) >= sizeof req.user ||
                req.password_len >= sizeof req.password || memchr(req.password, 0, req.password_len))
                abort();
            if (req.client_addr && (req.client_addr != req.client_addr_buf || !req.client_addr[0] ||
                                    strlen(req.client_addr) >= sizeof req.client_addr_buf))
                abort();
        }
    }
    free(line);
    return 0;
}
