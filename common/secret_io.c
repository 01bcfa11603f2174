/* SPDX-License-Identifier: BSD-2-Clause */
#include "secret_io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "apikey_io.h"

void secret_reader_init(secret_reader *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
}

void secret_reader_wipe(secret_reader *r)
{
    OPENSSL_cleanse(r->buf, sizeof r->buf);
    r->len = 0;
}

/* Drop the first n bytes held, leaving no copy of them behind. */
static void consume(secret_reader *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    OPENSSL_cleanse(r->buf + (r->len - n), n);
    r->len -= n;
}

ssize_t secret_read_line(secret_reader *r, char *line, size_t cap)
{
    int too_long = 0;
    for (;;) {
        if (r->eof && r->len == 0)
            return too_long ? SECRET_LINE_LONG : SECRET_LINE_EOF;
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl || r->eof || r->len == sizeof r->buf) {
            size_t n = nl ? (size_t)(nl - r->buf) : r->len;
            if (!too_long) {
                /* A long line keeps its start: the helper answers a
                 * refusal on the channel that opens it. */
                size_t k = n < cap ? n : cap - 1;
                memcpy(line, r->buf, k);
                line[k] = '\0';
                too_long = n >= cap;
            }
            consume(r, nl ? n + 1 : n);
            if (nl || r->eof)
                return too_long ? SECRET_LINE_LONG : (ssize_t)n;
            too_long = 1; /* the buffer is full and the line goes on */
            continue;
        }
        ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return SECRET_LINE_ERROR;
        if (n == 0)
            r->eof = 1;
        r->len += (size_t)n;
    }
}

ssize_t secret_read_all(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    while (have < cap) {
        ssize_t n = read(fd, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

int secret_write_line(int fd, const char *text, size_t len)
{
    return apikey_write_all(fd, text, len) == 0 && apikey_write_all(fd, "\n", 1) == 0 ? 0 : -1;
}
