/* SPDX-License-Identifier: BSD-2-Clause */
/* Parsing one line of Squid's basic authentication helper protocol. */
#ifndef APIKEY_HELPER_LINE_H
#define APIKEY_HELPER_LINE_H

#include <stddef.h>

typedef struct helper_request {
    char channel[32]; /* "" without concurrency */
    char user[256];
    char password[1024];
    size_t password_len;
    /* The first key_extras field: the client address with
     * key_extras "%>a". NULL when the line has no extras or Squid did not
     * know the value ("-"); else client_addr_buf. */
    const char *client_addr;
    char client_addr_buf[64];
} helper_request;

/* Returns 0, or -1 for a line that is not "[channel ]user password[ extras]"
 * (fields separated by one space, none empty) with valid %-escapes in the
 * user, the password and the first extra field, and those fields fitting.
 * Squid writes key_extras after the password, as its format expands them:
 * the fields after the first are not read. The channel is filled whenever
 * it could be read, so even a refusal reaches the right request. */
int helper_parse_line(const char *line, size_t len, int concurrency, helper_request *req);

#endif
