/* SPDX-License-Identifier: BSD-2-Clause */
/* See libload.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dlinfo; nginx builds this file without it */
#endif
#include "libload.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Exactly the file checked: the check is made on an open descriptor and the loader is
 * given that descriptor's /proc/self/fd link, so nothing can be swapped in
 * between. glibc recognises an object already loaded by its device and
 * inode, so a second context shares the first one's.
 *
 * But glibc first matches the name: "/proc/self/fd/N" names the object
 * that an earlier load opened on descriptor N (objects stay loaded), and
 * would give that one back whatever file N is now. So when the name is
 * taken by another file, the descriptor moves to a higher number, under a
 * lock against our own loads in other threads. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether the object dl was mapped from the file st describes: the mapping
 * that holds its dynamic section, in /proc/self/maps. */
static int mapped_from(void *dl, const struct stat *st)
{
    struct link_map *lm = NULL;
    FILE *maps = NULL;
    if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !(maps = fopen("/proc/self/maps", "re")))
        return 0;
    uintptr_t at = (uintptr_t)lm->l_ld;
    char line[512];
    int same = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi, ino;
        unsigned maj, min;
        if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &lo, &hi, &maj, &min, &ino) == 5 && at >= lo &&
            at < hi) {
            same = makedev(maj, min) == st->st_dev && ino == st->st_ino;
            break;
        }
    }
    fclose(maps);
    return same;
}

void *libload_dlopen_fd(int fd, const char *path, char *err, size_t errlen)
{
    char self[64];
    int n = fd;
    void *dl = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    pthread_mutex_lock(&load_lock);
    for (;;) {
        snprintf(self, sizeof self, "/proc/self/fd/%d", n);
        void *taken = dlopen(self, RTLD_LAZY | RTLD_NOLOAD);
        if (!taken)
            break;
        if (mapped_from(taken, &st)) { /* this very file, loaded before */
            dl = taken;
            goto done;
        }
        dlclose(taken);
        int next = fcntl(fd, F_DUPFD_CLOEXEC, n + 1);
        if (n != fd)
            close(n);
        if ((n = next) < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto done;
        }
    }
    if (!(dl = dlopen(self, RTLD_NOW | RTLD_LOCAL)))
        snprintf(err, errlen, "%s: %s", path, dlerror());
done:
    if (n != fd && n >= 0)
        close(n);
    pthread_mutex_unlock(&load_lock);
    return dl;
}


const apikey_api *libload_apikey(const char *const *paths, size_t count, char *err, size_t errlen)
{
    snprintf(err, errlen, "no libapikey.so.1 found");
    for (size_t i = 0; i < count; i++) {
        /* A link is followed (build/libapikey.so.1 is one): what is checked
         * and loaded is the file the descriptor holds. */
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            snprintf(err, errlen, "%s: %s", paths[i], strerror(errno));
            return NULL;
        }
        struct stat st;
        void *lib = NULL;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
            (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022))
            snprintf(err, errlen, "%s: not a file of root's, or writable by others; refusing it",
                     paths[i]);
        else
            lib = libload_dlopen_fd(fd, paths[i], err, errlen);
        close(fd);
        if (!lib)
            return NULL;
        apikey_entry_fn entry = (apikey_entry_fn)dlsym(lib, APIKEY_ENTRY_SYMBOL);
        const apikey_api *api = entry ? entry() : NULL;
        /* The table only grows: a newer library is fine, an older one lacks
         * slots that each host tests for (APIKEY_API_HAS) before use. */
        if (!api || api->version != APIKEY_API_VERSION || !APIKEY_API_HAS(api, http_status)) {
            snprintf(err, errlen, "%s: not a libapikey of API version %d", paths[i],
                     APIKEY_API_VERSION);
            return NULL; /* left loaded: nodelete, and harmless */
        }
        return api;
    }
    return NULL;
}
