/* Loads the one store backend that the configuration names. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core.h"
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
    Dl_info info;
    struct link_map *lm = NULL;
    char dir[PATH_MAX] = "";
    if (dladdr1((void *)backend_path, &info, (void **)&lm, RTLD_DL_LINKMAP) && lm) {
        if (lm->l_name && lm->l_name[0]) {
            snprintf(dir, sizeof dir, "%s", lm->l_name); /* a shared object: its path */
        } else {
            /* The program itself, whose dli_fname would be argv[0]: a host may
             * set that to anything (Squid runs its helpers as "(name)"). */
            ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
            dir[n > 0 ? n : 0] = '\0';
        }
    }
    if (strchr(dir, '/')) {
        *strrchr(dir, '/') = '\0';
        int n = snprintf(out, len, "%s/store/apikey_store_%s.so", dir, scheme);
        if (n > 0 && (size_t)n < len && access(out, R_OK) == 0)
            return 0;
    }
    int n = snprintf(out, len, "%s/apikey_store_%s.so", APIKEY_STOREDIR, scheme);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* dlopen a backend only when it is a file like the configuration (owned by
 * root or the caller, written by nobody else, no symlink), and exactly the
 * file checked: the check is made on an open descriptor and the loader is
 * given that descriptor's /proc/self/fd link, so nothing can be swapped in
 * between. glibc recognises an object already loaded by its device and
 * inode, so a second context shares the first one's.
 *
 * But glibc first matches the name: "/proc/self/fd/N" names the backend
 * that an earlier load opened on descriptor N (backends stay loaded), and
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

static void *dlopen_fd(int fd, const char *path, char *err, size_t errlen)
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
        dl = dlopen_fd(fd, path, err, errlen);
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
    if (b->handle)
        return APIKEY_ST_OK;
    void *handle = NULL;
    int st = b->ops->open(b->location, create, &b->host, &handle);
    if (st == APIKEY_ST_OK)
        b->handle = handle;
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
