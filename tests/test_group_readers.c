/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Hosts that run as another user (Squid's helpers, as proxy) read a JSON
 * store through its group: the store root:GROUP 0640. A write keeps that
 * for the store and its index, and gives it to the lock file too, which
 * readers open to see whether a writer is between renaming the store and
 * its index. A reader in the group, and only in the group, gets at all
 * three. Needs root (chgrp, and a child that becomes nobody).
 *
 * Everything the reader opens sits in a fresh 0755 folder under /tmp, the
 * store backend included (a copy): nobody cannot enter a source tree in a
 * 0700 home folder (Debian 12's), where make deb runs this.
 */
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apikey.h"
#include "testutil.h"

#define NOBODY 65534
#define GROUP 65534 /* nogroup */
#define OUTSIDER 65533 /* a group of nobody's own */

enum { READ_OK, NO_STORE, NO_LOCK, NO_SHARED_LOCK, NOT_ALLOWED };

static char *reader_store_dir;

/* The json backend copied out of the build tree, root's and 0755 as an
 * installed one (the library loads no other). */
static char *copy_backend(void)
{
    char *dir = tu_path("store"), *from, *to;
    if (asprintf(&from, "%s/apikey_store_json.so", getenv("APIKEY_STORE_DIR")) < 0 ||
        asprintf(&to, "%s/apikey_store_json.so", dir) < 0)
        abort();
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    CU_ASSERT_FATAL(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        CU_ASSERT_EQUAL_FATAL(write(out, buf, (size_t)n), n);
    CU_ASSERT_EQUAL_FATAL(n, 0);
    CU_ASSERT_EQUAL_FATAL(fchmod(out, 0755), 0);
    close(in);
    close(out);
    free(from);
    free(to);
    return dir;
}

/* What a process of uid nobody with groups (n of them) can do with the
 * store: one of the values above, as its exit status. */
static int reader_as_nobody(const char *cfg, const char *path, const char *key, gid_t *groups,
                            int n)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        if (setgroups((size_t)n, groups) != 0 || setgid(n ? groups[0] : OUTSIDER) != 0 ||
            setuid(NOBODY) != 0 || setenv("APIKEY_STORE_DIR", reader_store_dir, 1) != 0)
            _exit(99);
        char lock[4096];
        snprintf(lock, sizeof lock, "%s.lock", path);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            _exit(NO_STORE);
        close(fd);
        if ((fd = open(lock, O_RDONLY)) < 0)
            _exit(NO_LOCK);
        if (flock(fd, LOCK_SH | LOCK_NB) != 0)
            _exit(NO_SHARED_LOCK);
        close(fd);
        char err[512];
        apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
        apikey_result res;
        int allowed = ctx && apikey_verify(ctx, "sshd", NULL, key, strlen(key), &res) == APIKEY_ALLOWED;
        apikey_close(ctx);
        _exit(allowed ? READ_OK : NOT_ALLOWED);
    }
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_FATAL(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_lock_follows_the_store(void)
{
    if (geteuid() != 0)
        return;
    reader_store_dir = copy_backend();
    char *path = tu_path("grouped.json"), *uri;
    if (asprintf(&uri, "json:%s", path) < 0)
        abort();
    char *cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    char *key = tu_create_key(cfg, "alice");
    char *lock, *idx;
    if (asprintf(&lock, "%s.lock", path) < 0 || asprintf(&idx, "%s.idx", path) < 0)
        abort();
    /* As the packages set it up; the next write carries it over. */
    CU_ASSERT_EQUAL(chown(path, 0, GROUP), 0);
    CU_ASSERT_EQUAL(chmod(path, 0640), 0);
    free(tu_create_key(cfg, "bob"));
    const char *files[] = {path, idx, lock};
    for (int i = 0; i < 3; i++) {
        struct stat st;
        CU_ASSERT_EQUAL_FATAL(stat(files[i], &st), 0);
        if (st.st_gid != GROUP || (st.st_mode & 07777) != 0640)
            fprintf(stderr, "%s: gid %u mode %04o\n", files[i], (unsigned)st.st_gid,
                    (unsigned)(st.st_mode & 07777));
        CU_ASSERT_EQUAL(st.st_gid, GROUP);
        CU_ASSERT_EQUAL(st.st_mode & 07777, 0640);
    }
    gid_t in_group[] = {GROUP};
    CU_ASSERT_EQUAL(reader_as_nobody(cfg, path, key, in_group, 1), READ_OK);
    /* Outside the group, nothing: the test is not passing for the mode. */
    CU_ASSERT_EQUAL(reader_as_nobody(cfg, path, key, NULL, 0), NO_STORE);
    free(idx);
    free(lock);
    free(key);
    free(cfg);
    free(uri);
    free(path);
    free(reader_store_dir);
}

int main(void)
{
    /* Not $TMPDIR: it may be a folder of root's alone (libpam-tmpdir's). */
    setenv("TMPDIR", "/tmp", 1);
    CU_TestInfo tests[] = {
        {"a write gives the lock the store's group and mode; a reader in the group reads all",
         test_lock_follows_the_store},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {
        {"group readers", NULL, NULL, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    return tu_run(suites);
}
