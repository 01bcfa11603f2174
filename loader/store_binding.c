/* SPDX-License-Identifier: BSD-2-Clause */
/* Loads the one store backend that the configuration names. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "libload.h"
#include "secfile.h"

/* $APIKEY_STORE_DIR (never in a privileged process: the PAM module, su),
 * else beside the module or program that holds this code (build/store/ when
 * run in place), else the installed directory. */
static int backend_path(const char *scheme, int privileged, char *out, size_t len)
{
    const char *dir_env = privileged ? NULL : secure_getenv("APIKEY_STORE_DIR");
    if (dir_env && *dir_env) {
        int n = snprintf(out, len, "%s/apikey_store_%s.so", dir_env, scheme);
        return n > 0 && (size_t)n < len ? 0 : -1;
    }
    /* The file this code was mapped from, as the kernel names it: neither
     * argv[0] (a host may set that to anything: Squid runs its helpers as
     * "(name)") nor the name it was loaded by, which for a library loaded
     * by its descriptor (common/libload.h) is /proc/self/fd/N. */
    char dir[PATH_MAX] = "";
    FILE *maps = fopen("/proc/self/maps", "re");
    uintptr_t at = (uintptr_t)backend_path;
    char line[PATH_MAX + 128];
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        int off = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) == 2 && off && at >= lo &&
            at < hi) {
            snprintf(dir, sizeof dir, "%s", line + off);
            dir[strcspn(dir, "\n")] = '\0';
            char *deleted = strstr(dir, " (deleted)"); /* replaced since: same folder */
            if (deleted && !deleted[10])
                *deleted = '\0';
            break;
        }
    }
    if (maps)
        fclose(maps);
    if (strchr(dir, '/')) {
        *strrchr(dir, '/') = '\0';
        int n = snprintf(out, len, "%s/store/apikey_store_%s.so", dir, scheme);
        if (n > 0 && (size_t)n < len && access(out, R_OK) == 0)
            return 0;
    }
    int n = snprintf(out, len, "%s/apikey_store_%s.so", APIKEY_STOREDIR, scheme);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* A backend is loaded only when it is a file like the configuration (owned
 * by root or the caller, written by nobody else, no symlink, in folders
 * that pass secfile's checks), and exactly the file checked (libload.h). */
static void *open_backend(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path,
                 errno == ELOOP ? "is a symbolic link; refusing it" : strerror(errno));
        return NULL;
    }
    void *dl = NULL;
    if (secfile_check(fd, path, err, errlen) == 0)
        dl = libload_dlopen_fd(fd, path, err, errlen);
    close(fd);
    return dl;
}

int store_load(const char *uri, int privileged, store_binding *out, char *err, size_t errlen)
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
    if (backend_path(scheme, privileged, path, sizeof path) != 0) {
        snprintf(err, errlen, "store '%s': path too long", scheme);
        return -1;
    }
    char why[PATH_MAX + 128];
    void *dl = open_backend(path, why, sizeof why);
    if (!dl) {
        snprintf(err, errlen, "store '%s': cannot load its backend: %s", scheme, why);
        return -1;
    }
    apikey_store_entry_fn entry = (apikey_store_entry_fn)dlsym(dl, APIKEY_STORE_ENTRY);
    const apikey_store_ops *ops = entry ? entry() : NULL;
    if (ops && ops->abi < APIKEY_STORE_ABI_VERSION) {
        /* Its records are smaller than ours (ABI 2 added allow_from, 3 the
         * rate limit): it would drop a key's allowlist or limit on write
         * and read past its records. */
        snprintf(err, errlen, "store '%s': %s follows store ABI %u, this libapikey needs %d"
                 " (records carry address allowlists and rate limits): rebuild the backend", scheme, path,
                 ops->abi, APIKEY_STORE_ABI_VERSION);
        dlclose(dl);
        return -1;
    }
    /* Every slot up to touch is required; later slots are checked by size at use. */
    if (!ops || !APIKEY_STORE_HAS(ops, touch) ||
        strcmp(ops->scheme, scheme) != 0) {
        snprintf(err, errlen, "store '%s': %s is not a usable backend", scheme, path);
        dlclose(dl);
        return -1;
    }
    out->ops = ops;
    out->dl = dl;
    out->location = colon + 1;
    out->host = core_store_host;
    out->host.privileged = privileged;
    return 0;
}

int store_connect(store_binding *b, int create)
{
    if (b->handle && (b->handle_creates || !create))
        return APIKEY_ST_OK;
    store_disconnect(b);
    void *handle = NULL;
    int st = b->ops->open(b->location, create, &b->host, &handle);
    if (st == APIKEY_ST_OK) {
        b->handle = handle;
        b->handle_creates = create;
    }
    return st;
}

void store_disconnect(store_binding *b)
{
    if (b->handle)
        b->ops->close(b->handle);
    b->handle = NULL;
}

int store_connect_or_say(store_binding *b, int create, char *err, size_t errlen)
{
    int st = store_connect(b, create);
    if (st == APIKEY_ST_OK)
        return 0;
    const char *said = core_store_line();
    snprintf(err, errlen, "%s", st == APIKEY_ST_NOMEM ? "out of memory"
                                : *said             ? said
                                                    : "the store cannot be opened");
    return -1;
}

int store_bind(const char *uri, int create, store_binding *out, char *err, size_t errlen)
{
    if (store_load(uri, core_privileged(0), out, err, errlen) != 0)
        return -1;
    if (store_connect_or_say(out, create, err, errlen) == 0)
        return 0;
    store_unbind(out);
    return -1;
}

void store_unbind(store_binding *b)
{
    if (b->ops)
        store_disconnect(b);
    if (b->dl)
        dlclose(b->dl);
    memset(b, 0, sizeof *b);
}

store_lookup_fn store_check_lookup(const apikey_store_ops *ops)
{
    return APIKEY_STORE_HAS(ops, lookup_auth) && ops->lookup_auth ? ops->lookup_auth : ops->lookup;
}
