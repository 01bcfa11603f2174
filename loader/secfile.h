/* SPDX-License-Identifier: BSD-2-Clause */
/* Opening configuration, store and pepper files the way pam-u2f does. */
#ifndef APIKEY_SECFILE_H
#define APIKEY_SECFILE_H

#include <stddef.h>

/* A file is refused when it is not a regular file, is group- or
 * world-writable, or is owned by someone other than root or the caller; or
 * when a folder above it, up to /, is owned by someone else or is group- or
 * world-writable without being sticky (OpenSSH's StrictModes; secfile.c). */
int secfile_check(int fd, const char *path, char *why, size_t whylen);

/* Open path read-only without following a symlink, check it, and read it
 * whole (NUL-terminated). Refuses files over maxlen. Returns 0, or -1 with
 * one line in err. *out is malloc'd; the caller wipes it when secret. */
int secfile_read(const char *path, size_t maxlen, char **out, size_t *outlen, char *err,
                 size_t errlen);

#endif
