#include "secfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    return 0;
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
