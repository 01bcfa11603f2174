/* Parsing one line of Squid's basic authentication helper protocol. */
#ifndef APIKEY_HELPER_LINE_H
#define APIKEY_HELPER_LINE_H

#include <stddef.h>

typedef struct helper_request {
    char channel[32]; /* "" without concurrency */
    char user[256];
    char password[1024];
    size_t password_len;
} helper_request;

/* Returns 0, or -1 for a line that is not "[channel ]user password" with
 * valid %-escapes and fields that fit. The channel is filled whenever it
 * could be read, so even a refusal reaches the right request. */
int helper_parse_line(const char *line, size_t len, int concurrency, helper_request *req);

#endif
