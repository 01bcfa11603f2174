/* Loads the one store backend that the configuration names. */
#include <dlfcn.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

/* $APIKEY_STORE_DIR (ignored in setuid programs such as su, whose PAM stack
 * may hold this module), else beside the module or program that holds this
 * code (build/store/ when run in place), else the installed directory. */
static int backend_path(const char *scheme, char *out, size_t len)
{
    const char *dir_env = secure_getenv("APIKEY_STORE_DIR");
    if (dir_env && *dir_env) {
        int n = snprintf(out, len, "%s/apikey_store_%s.so", dir_env, scheme);
        return n > 0 && (size_t)n < len ? 0 : -1;
    }
    Dl_info info;
    if (dladdr((void *)backend_path, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", info.dli_fname);
        *strrchr(dir, '/') = '\0';
        int n = snprintf(out, len, "%s/store/apikey_store_%s.so", dir, scheme);
        if (n > 0 && (size_t)n < len && access(out, R_OK) == 0)
            return 0;
    }
    int n = snprintf(out, len, "%s/apikey_store_%s.so", APIKEY_STOREDIR, scheme);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

int store_bind(const char *uri, int create, store_binding *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *colon = strchr(uri, ':');
    size_t slen = colon ? (size_t)(colon - uri) : 0;
    char scheme[16];
    if (!colon || slen == 0 || slen >= sizeof scheme || strspn(uri, "abcdefghijklmnopqrstuvwxyz") != slen) {
        snprintf(err, errlen, "store '%s' must be json:PATH, sqlite:PATH or pgsql:CONNINFO", uri);
        return -1;
    }
    memcpy(scheme, uri, slen);
    scheme[slen] = '\0';
    char path[PATH_MAX];
    if (backend_path(scheme, path, sizeof path) != 0) {
        snprintf(err, errlen, "store '%s': path too long", scheme);
        return -1;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, errlen, "store '%s': cannot load its backend: %s", scheme, dlerror());
        return -1;
    }
    apikey_store_entry_fn entry = (apikey_store_entry_fn)dlsym(dl, APIKEY_STORE_ENTRY);
    const apikey_store_ops *ops = entry ? entry() : NULL;
    /* Every slot of ABI 1 is required; later slots are checked by size at use. */
    if (!ops || ops->abi < 1 || !STORE_HAS(ops, touch) ||
        strcmp(ops->scheme, scheme) != 0) {
        snprintf(err, errlen, "store '%s': %s is not a usable backend", scheme, path);
        dlclose(dl);
        return -1;
    }
    int st = ops->open(colon + 1, create, &core_store_host, &out->handle);
    if (st != APIKEY_ST_OK) {
        /* A file path helps; a conninfo may hold what must not be logged
         * (the backend refuses a password there, but this line would show it). */
        if (colon[1] == '/')
            snprintf(err, errlen, "store '%s': cannot open %s", scheme, colon + 1);
        else
            snprintf(err, errlen, "store '%s': cannot open it", scheme);
        dlclose(dl);
        return -1;
    }
    out->ops = ops;
    out->dl = dl;
    return 0;
}

void store_unbind(store_binding *b)
{
    if (b->ops && b->handle)
        b->ops->close(b->handle);
    if (b->dl)
        dlclose(b->dl);
    memset(b, 0, sizeof *b);
}
