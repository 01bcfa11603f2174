/* SPDX-License-Identifier: BSD-2-Clause */
#include "secfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folders from dir up to /, as OpenSSH's StrictModes checks them
 * (auth.c, auth_secure_path): each owned by root or the caller and not
 * writable by group or others. Whoever can write a folder can rename an
 * older file over one in it (putting back a store from before a
 * revocation) or plant a file beside it (an SQLite -wal). One exception:
 * a sticky folder (mode 1777, as /tmp) owned by root or the caller, where
 * others may add names but cannot rename over or delete what is not
 * theirs; what they may add is refused by the file checks, which want the
 * owner to be root or the caller. */
static int check_folders(const char *dir, const char *path, char *why, size_t whylen)
{
    char d[PATH_MAX];
    if (snprintf(d, sizeof d, "%s", dir) >= (int)sizeof d) {
        snprintf(why, whylen, "%s: its folder's name is too long", path);
        return -1;
    }
    for (;;) {
        struct stat st;
        if (stat(d, &st) != 0) {
            snprintf(why, whylen, "%s: its folder %s: %s", path, d, strerror(errno));
            return -1;
        }
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
            snprintf(why, whylen,
                     "%s: its folder %s is owned by uid %u, neither root nor the caller; refusing it",
                     path, d, (unsigned)st.st_uid);
            return -1;
        }
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
            snprintf(why, whylen,
                     "%s: its folder %s is group- or world-writable (mode %04o) and not sticky; "
                     "refusing it",
                     path, d, (unsigned)(st.st_mode & 07777));
            return -1;
        }
        char *slash = strrchr(d, '/');
        if (!slash || (slash == d && !d[1]))
            return 0; /* "/" checked, or a relative name's first folder */
        if (slash == d)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
}

/* The folders of path as written (a symbolic link is checked where it
 * lies) and, when it differs, of where it leads. */
static int check_path_folders(const char *path, char *why, size_t whylen)
{
    char copy[PATH_MAX], real[PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", path) >= (int)sizeof copy) {
        snprintf(why, whylen, "%s: name too long", path);
        return -1;
    }
    char *dir = dirname(copy);
    if (!realpath(dir, real)) {
        snprintf(why, whylen, "%s: its folder %s: %s", path, dir, strerror(errno));
        return -1;
    }
    if (dir[0] == '/' && check_folders(dir, path, why, whylen) != 0)
        return -1;
    return strcmp(dir, real) == 0 ? 0 : check_folders(real, path, why, whylen);
}

int secfile_check(int fd, const char *path, char *why, size_t whylen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s: not a regular file", path);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, whylen, "%s: group- or world-writable (mode %04o); refusing it",
                 path, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(why, whylen, "%s: owned by uid %u, neither root nor the caller; refusing it",
                 path, (unsigned)st.st_uid);
        return -1;
    }
    return check_path_folders(path, why, whylen);
}

int secfile_read(const char *path, size_t maxlen, char **out, size_t *outlen, char *err,
                 size_t errlen)
{
    int rc = -1;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(err, errlen, "%s: is a symbolic link; refusing it", path);
        else
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (secfile_check(fd, path, err, errlen) != 0)
        goto done;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size > maxlen) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, maxlen);
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    size_t have = 0;
    while (have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "changed while read");
            goto done;
        }
        have += (size_t)n;
    }
    buf[have] = '\0';
    *out = buf;
    *outlen = have;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}
