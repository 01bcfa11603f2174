/* SPDX-License-Identifier: BSD-2-Clause */
/* Header-only descriptor I/O for the core's leaves (common/) and the store
 * backends alike: a store sees only include/ and links nothing of the core,
 * so what both need is a static inline here. Not installed: no part of the
 * public contract. */
#ifndef APIKEY_IO_H
#define APIKEY_IO_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

/* All of buf to fd, through short writes and EINTR; 0, or -1 with errno
 * set (a write of 0 bytes counts as a failure). */
static inline int apikey_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#endif
