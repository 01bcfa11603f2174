/* SPDX-License-Identifier: BSD-2-Clause */
/* libapikey, loaded at run time through its versioned table, as any host of
 * include/apikey.h may: the daemon links neither libapikey nor OpenSSL, and
 * checks the table's size before it uses a slot, so it runs with any newer
 * library (and, later, can tell a library without the admin slots).
 *
 * Looked for beside the binary first (build/, where make puts both), then
 * in the library folder it was installed for. Either file must be root's
 * (or the caller's) and writable by no one else, like a store backend. */
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authd.h"

#ifndef APIKEY_LIBDIR
#define APIKEY_LIBDIR "/usr/local/lib"
#endif

static const apikey_api *load(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
        (st.st_mode & 022)) {
        snprintf(err, errlen, "%s: %s", path,
                 errno == ENOENT ? "not found" : "not a file of root's, or writable by others");
        return NULL;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "%s", dlerror());
        return NULL;
    }
    apikey_entry_fn entry = (apikey_entry_fn)dlsym(lib, APIKEY_ENTRY_SYMBOL);
    const apikey_api *api = entry ? entry() : NULL;
    if (!api || api->version != APIKEY_API_VERSION ||
        api->size < offsetof(apikey_api, http_status) + sizeof api->http_status) {
        snprintf(err, errlen, "%s: not a libapikey of API version %d", path, APIKEY_API_VERSION);
        return NULL; /* left loaded: nodelete, and harmless */
    }
    return api;
}

const apikey_api *authd_load_library(char *err, size_t errlen)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(path, sizeof path, "%s/libapikey.so.1", dirname(self));
        if (access(path, F_OK) == 0)
            return load(path, err, errlen);
    }
    return load(APIKEY_LIBDIR "/libapikey.so.1", err, errlen);
}
