/* SPDX-License-Identifier: BSD-2-Clause */
/* libapikey, loaded at run time through its versioned table, as any host of
 * include/apikey.h may: the daemon links neither libapikey nor OpenSSL, and
 * checks the table's size before it uses a slot, so it runs with any newer
 * library (and, later, can tell a library without the admin slots).
 *
 * Looked for beside the binary first (build/, where make puts both), then
 * in the library folder it was installed for, checked and loaded by its
 * descriptor as libapikey loads a store backend (common/libload.h). */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "authd.h"
#include "libload.h"

#ifndef APIKEY_LIBDIR
#define APIKEY_LIBDIR "/usr/local/lib"
#endif

const apikey_api *authd_load_library(char *err, size_t errlen)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(path, sizeof path, "%s/libapikey.so.1", dirname(self));
    } else {
        path[0] = '\0';
    }
    const char *paths[] = {path, APIKEY_LIBDIR "/libapikey.so.1"};
    return libload_apikey(paths + !path[0], 2 - !path[0], err, errlen);
}
