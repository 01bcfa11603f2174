/* SPDX-License-Identifier: BSD-2-Clause */
/* Loading a shared object the one way this project loads any: open the
 * file, check the open descriptor (a regular file of root's or the
 * caller's, writable by nobody else), and give the dynamic loader that very
 * descriptor, so nothing can be swapped in between the check and the load.
 * libapikey loads its store backends so (after its stricter check of the
 * file's folders, see loader/secfile.h); the HTTP hosts load libapikey so. */
#ifndef APIKEY_LIBLOAD_H
#define APIKEY_LIBLOAD_H

#include <stddef.h>

#include "apikey.h"

#pragma GCC visibility push(hidden)

/* dlopen (RTLD_NOW | RTLD_LOCAL) the file open on fd, named path in
 * messages. NULL with err on failure. */
void *libload_dlopen_fd(int fd, const char *path, char *err, size_t errlen);

/* libapikey's table from the first of paths (count of them) that exists,
 * checked and loaded as above, whose table is of this header's API version
 * and holds at least the slots up to http_status. NULL with err. */
const apikey_api *libload_apikey(const char *const *paths, size_t count, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
