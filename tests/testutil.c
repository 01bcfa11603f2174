/* SPDX-License-Identifier: BSD-2-Clause */
#include "testutil.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

const char *tu_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/apikey-test.XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
        chmod(tmpdir, 0755);
    }
    return tmpdir;
}

void tu_cleanup(void)
{
    if (tmpdir[0] && !getenv("APIKEY_TEST_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    tmpdir[0] = '\0';
}

char *tu_write(const char *name, const char *text, int mode)
{
    char *path = tu_path(name);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror(path);
        exit(2);
    }
    fchmod(fd, mode);
    close(fd);
    return path;
}

char *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (n + got + 1 > cap) {
            cap = (n + got + 1) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + n, chunk, got);
        n += got;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static int stderr_saved = -1;
static char *stderr_path;

void tu_stderr_begin(void)
{
    free(stderr_path);
    stderr_path = tu_path("stderr.txt");
    fflush(stderr);
    stderr_saved = dup(2);
    int fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(stderr_saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
}

char *tu_stderr_end(void)
{
    fflush(stderr);
    dup2(stderr_saved, 2);
    close(stderr_saved);
    stderr_saved = -1;
    return tu_read(stderr_path, NULL);
}

int tu_count(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static int store_counter;

int tu_store_available(const char *kind)
{
    char so[4200];
    const char *dir = getenv("APIKEY_STORE_DIR") ? getenv("APIKEY_STORE_DIR") : "build/store";
    snprintf(so, sizeof so, "%s/apikey_store_%s.so", dir, kind);
    if (access(so, R_OK) != 0)
        return 0;
    return strcmp(kind, "pgsql") != 0 || (getenv("APIKEY_TEST_PG") && getenv("APIKEY_TEST_PG_ADMIN"));
}

char *tu_new_store_uri_of(const char *kind)
{
    char *uri;
    int n = ++store_counter;
    if (strcmp(kind, "pgsql") == 0) {
        /* A fresh database per store, created through the direct socket. */
        const char *admin = getenv("APIKEY_TEST_PG_ADMIN");
        const char *prefix = getenv("APIKEY_TEST_PG");
        if (!admin || !prefix) {
            fprintf(stderr, "APIKEY_TEST_PG and APIKEY_TEST_PG_ADMIN must be set for pgsql\n");
            exit(2);
        }
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s t%d_%d >/dev/null", admin, (int)getpid(), n);
        if (system(cmd) != 0) {
            fprintf(stderr, "createdb failed: %s\n", cmd);
            exit(2);
        }
        if (asprintf(&uri, "pgsql:%s dbname=t%d_%d", prefix, (int)getpid(), n) < 0)
            abort();
    } else if (strcmp(kind, "sqlite") == 0) {
        if (asprintf(&uri, "sqlite:%s/keys%d.db", tu_tmpdir(), n) < 0)
            abort();
    } else if (strcmp(kind, "json") == 0) {
        if (asprintf(&uri, "json:%s/keys%d.json", tu_tmpdir(), n) < 0)
            abort();
    } else {
        /* Another scheme (a third party's store): a fresh location from the
         * template $APIKEY_TEST_STORE_LOCATION, whose %d is a number new to
         * each store; else a fresh path in this run's folder. */
        const char *tmpl = getenv("APIKEY_TEST_STORE_LOCATION");
        char loc[1024];
        if (tmpl && *tmpl)
            snprintf(loc, sizeof loc, tmpl, (int)getpid() * 1000 + n);
        else
            snprintf(loc, sizeof loc, "%s/keys%d.%s", tu_tmpdir(), n, kind);
        if (asprintf(&uri, "%s:%s", kind, loc) < 0)
            abort();
    }
    return uri;
}

char *tu_new_store_uri(void)
{
    return tu_new_store_uri_of(getenv("APIKEY_TEST_STORE") ? getenv("APIKEY_TEST_STORE") : "json");
}

char *tu_config(const char *store_uri, const char *extra_top, const char *services)
{
    static int n;
    char name[64], *text;
    snprintf(name, sizeof name, "apikey%d.conf", ++n);
    if (asprintf(&text, "store = %s\n%s\n[services]\n%s\n", store_uri, extra_top ? extra_top : "",
                 services ? services : "sshd = proxies:read\n") < 0)
        abort();
    char *path = tu_write(name, text, 0644);
    free(text);
    return path;
}

static char *slurp_fd(int fd)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    char chunk[4096];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0) {
        if (n + (size_t)got + 1 > cap) {
            cap = (n + (size_t)got + 1) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + n, chunk, (size_t)got);
        n += (size_t)got;
    }
    if (!buf)
        buf = calloc(1, 1);
    buf[n] = '\0';
    return buf;
}

int tu_apikey(const char *config, const char *stdin_text, char **out, char **err, ...)
{
    const char *argv[64];
    int argc = 0;
    const char *bin = getenv("APIKEY_BIN") ? getenv("APIKEY_BIN") : "build/apikey";
    argv[argc++] = bin;
    argv[argc++] = "--config";
    argv[argc++] = config;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) && argc < 62)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char inpath[300];
    snprintf(inpath, sizeof inpath, "%s/stdin.XXXXXX", tu_tmpdir());
    int infd = mkstemp(inpath);
    if (stdin_text && write(infd, stdin_text, strlen(stdin_text)) < 0)
        abort();
    lseek(infd, 0, SEEK_SET);
    unlink(inpath);
    int po[2], pe[2];
    if (pipe(po) || pipe(pe))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        /* Only the command under test gets the fault injector. */
        if (getenv("APIKEY_PRELOAD"))
            setenv("LD_PRELOAD", getenv("APIKEY_PRELOAD"), 1);
        alarm(60); /* a hang is a failure, not a stuck suite */
        dup2(infd, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(infd);
    close(po[1]);
    close(pe[1]);
    /* stderr is small; read stdout first, then stderr. */
    char *o = slurp_fd(po[0]);
    char *e = slurp_fd(pe[0]);
    close(po[0]);
    close(pe[0]);
    int status;
    waitpid(pid, &status, 0);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

tu_helper tu_helper_start(const char *config, const char *service, int concurrency)
{
    int in[2], out[2];
    tu_helper h = {0};
    /* Close-on-exec: a server started later (pg_ctl start) must not inherit
     * the helper's stdin and keep it from ever seeing end of file. */
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
        abort();
    h.pid = fork();
    if (h.pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl("build/basic_apikey_auth", "basic_apikey_auth", "--config", config, "--service",
              service, concurrency ? "--concurrency" : (char *)NULL, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    h.to = fdopen(in[1], "w");
    h.from = fdopen(out[0], "r");
    return h;
}

int tu_helper_stop(tu_helper *h)
{
    int status = -1;
    fclose(h->to);
    fclose(h->from);
    waitpid(h->pid, &status, 0);
    return status;
}

const char *tu_helper_ask(tu_helper *h, const char *fmt, ...)
{
    static char answer[512];
    va_list ap;
    va_start(ap, fmt);
    vfprintf(h->to, fmt, ap);
    va_end(ap);
    fputc('\n', h->to);
    fflush(h->to);
    if (!fgets(answer, sizeof answer, h->from))
        return "(no answer)";
    answer[strcspn(answer, "\n")] = '\0';
    return answer;
}

void tu_expect_refusal(const char *config, const char *why)
{
    char *err = NULL;
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, NULL, &err, "list", NULL), 2);
    CU_ASSERT_EQUAL(tu_count_lines(err), 1);
    if (!err || !strstr(err, why))
        fprintf(stderr, "expected '%s' in: %s", why, err ? err : "(nothing)");
    CU_ASSERT_PTR_NOT_NULL(err ? strstr(err, why) : NULL);
    free(err);
}

int tu_run(CU_SuiteInfo *suites)
{
    /* Test programs live in build/tests/; their stores are in build/store/. */
    if (!getenv("APIKEY_STORE_DIR")) {
        char cwd[4096], dir[4200];
        if (getcwd(cwd, sizeof cwd)) {
            snprintf(dir, sizeof dir, "%s/build/store", cwd);
            setenv("APIKEY_STORE_DIR", dir, 1);
        }
    }
    if (CU_initialize_registry() != CUE_SUCCESS || CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    tu_cleanup();
    return failed || ran == 0 ? 1 : 0;
}

char *tu_path(const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", tu_tmpdir(), name) < 0)
        abort();
    return p;
}

int tu_count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

char *tu_create_key(const char *config, const char *account)
{
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(config, NULL, &out, NULL, "create", account, "--name", "k",
                                    "--scopes", "proxies:read", NULL), 0);
    out[strcspn(out, "\n")] = 0;
    return out;
}

int tu_check_file(int fd, const char *path, char *why, size_t whylen)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 022)) {
        snprintf(why, whylen, "%s: not a private regular file", path);
        return -1;
    }
    return 0;
}

void tu_record(apikey_record *rec, const char *id, const char *account, const char *name, const char *scopes)
{
    memset(rec, 0, sizeof *rec);
    snprintf(rec->id, sizeof rec->id, "%s", id);
    snprintf(rec->account, sizeof rec->account, "%s", account);
    snprintf(rec->name, sizeof rec->name, "%s", name);
    snprintf(rec->scopes, sizeof rec->scopes, "%s", scopes);
    rec->created = time(NULL);
}
