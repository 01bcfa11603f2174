/* SPDX-License-Identifier: BSD-2-Clause */
/* Reading and writing text that holds a key, without stdio: stdio keeps
 * its own copy of every byte in a buffer that nobody wipes, so a key read
 * with fgets or printed with printf stays in the process after use. */
#ifndef APIKEY_SECRET_IO_H
#define APIKEY_SECRET_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Lines from a descriptor, held in a buffer that is wiped as lines leave
 * it. A line longer than the caller's room or than buf is skipped whole. */
typedef struct secret_reader {
    int fd;
    int eof;
    size_t len;   /* bytes held in buf */
    char buf[16384];
} secret_reader;

#define SECRET_LINE_EOF (-1)
#define SECRET_LINE_ERROR (-2) /* read failed: errno says why */
#define SECRET_LINE_LONG (-3)  /* too long: skipped; line holds its start */

void secret_reader_init(secret_reader *r, int fd);
/* The next line, without its newline, into line (NUL-terminated; it may
 * hold NUL bytes too): its length, or one of SECRET_LINE_*. A last line
 * without a newline counts as a line. */
ssize_t secret_read_line(secret_reader *r, char *line, size_t cap);
void secret_reader_wipe(secret_reader *r);

/* Up to cap bytes of fd until its end: how many were read, or -1. */
ssize_t secret_read_all(int fd, char *buf, size_t cap);

/* Write text and a newline straight to fd (whatever stdio holds for fd is
 * flushed first by the caller): 0, or -1. */
int secret_write_line(int fd, const char *text, size_t len);

#endif
