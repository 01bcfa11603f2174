/* SPDX-License-Identifier: BSD-2-Clause */
#include "logvalue.h"

#include <stdio.h>
#include <string.h>

static int plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

const char *log_value(const char *value, char *out, size_t len)
{
    const char *v = value ? value : "-";
    size_t n = strlen(v), i = 0;
    while (i < n && plain((unsigned char)v[i]))
        i++;
    if (n > 0 && i == n && n < len) {
        memcpy(out, v, n + 1);
        return out;
    }
    size_t o = 0;
    out[o++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        char esc[5];
        size_t k = 1;
        esc[0] = (char)c;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            k = 4;
        }
        /* Always room left for a cut's ...", and the NUL. */
        if (o + k + 5 > len) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, esc, k);
        o += k;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
