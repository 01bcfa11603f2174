/* SPDX-License-Identifier: BSD-2-Clause */
/* Privileged hosts (pam_apikey(8)), without servers: which store backend
 * files are loaded at all, and what a PAM module (or any AT_SECURE process)
 * takes from an environment that the caller may have set. The real setuid
 * su, with PostgreSQL, is tests/integration/su.sh.
 *
 * A planted object (build/tests/libplanted.so) writes a marker file from
 * its constructor: any load of it, even one refused afterwards, shows. */
#include <limits.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "testutil.h"

static char real_store_dir[PATH_MAX], planted[PATH_MAX], module[PATH_MAX];
static char *marker, *config;

static int loaded(void)
{
    return access(marker, F_OK) == 0;
}

/* A folder holding apikey_store_json.so, a copy of from with mode and owner
 * uid, or a symbolic link to from. */
static char *backend_dir(const char *name, const char *from, int mode, uid_t uid, int symlinked)
{
    char *dir = tu_path(name), *so;
    CU_ASSERT_FATAL(mkdir(dir, 0755) == 0);
    if (asprintf(&so, "%s/apikey_store_json.so", dir) < 0)
        abort();
    if (symlinked) {
        CU_ASSERT_FATAL(symlink(from, so) == 0);
    } else {
        size_t len = 0;
        char *bytes = tu_read(from, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        FILE *f = fopen(so, "w");
        CU_ASSERT_FATAL(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0);
        free(bytes);
        CU_ASSERT_FATAL(chmod(so, (mode_t)mode) == 0 && chown(so, uid, (gid_t)-1) == 0);
    }
    free(so);
    return dir;
}

/* core_open with the backends of dir: NULL and the reason in err, or a context. */
static apikey_ctx *open_with(const char *dir, int flags, char *err, size_t errlen)
{
    setenv("APIKEY_STORE_DIR", dir, 1);
    unlink(marker);
    apikey_ctx *ctx = core_open(config, flags | CORE_OPEN_CONNECT, err, errlen);
    setenv("APIKEY_STORE_DIR", real_store_dir, 1);
    return ctx;
}

static void refused_backend(const char *name, const char *from, int mode, uid_t uid, int symlinked,
                            const char *why)
{
    char err[1024];
    char *dir = backend_dir(name, from, mode, uid, symlinked);
    apikey_ctx *ctx = open_with(dir, 0, err, sizeof err);
    CU_ASSERT_PTR_NULL(ctx);
    apikey_close(ctx);
    if (!strstr(err, why))
        fprintf(stderr, "want '%s' in: %s\n", why, err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, why));
    CU_ASSERT_FALSE(loaded());
    free(dir);
}

static void test_backend_group_writable(void)
{
    refused_backend("gw", planted, 0775, geteuid(), 0, "group- or world-writable");
}

static void test_backend_world_writable(void)
{
    refused_backend("ww", planted, 0757, geteuid(), 0, "group- or world-writable");
}

static void test_backend_foreign_owner(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "(not root: no file of another owner can be made; skipped)\n");
        return;
    }
    refused_backend("foreign", planted, 0755, 65534, 0, "owned by uid 65534");
}

static void test_backend_symlink(void)
{
    char real[PATH_MAX + 32];
    snprintf(real, sizeof real, "%s/apikey_store_json.so", real_store_dir);
    refused_backend("link", real, 0755, geteuid(), 1, "symbolic link");
}

/* The control: a copy of the real backend, as the checks want it, loads. */
static void test_backend_good_copy_loads(void)
{
    char real[PATH_MAX + 32], err[1024];
    snprintf(real, sizeof real, "%s/apikey_store_json.so", real_store_dir);
    char *dir = backend_dir("good", real, 0755, geteuid(), 0);
    apikey_ctx *ctx = open_with(dir, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(ctx);
    if (!ctx)
        fprintf(stderr, "%s\n", err);
    apikey_close(ctx);
    free(dir);
}

/* Backends stay loaded: a second one, opened on the descriptor number that
 * the first was loaded from, is still itself. */
static void test_two_backends_in_one_process(void)
{
    if (!tu_store_available("sqlite")) {
        fprintf(stderr, "(no sqlite backend built: skipped)\n");
        return;
    }
    char err[1024], *uri = tu_new_store_uri_of("sqlite");
    char *other = tu_config(uri, NULL, "svc = proxies:read\n");
    apikey_ctx *a = core_open(config, CORE_OPEN_CREATE, err, sizeof err);
    apikey_ctx *b = core_open(other, CORE_OPEN_CREATE, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    if (a && b) {
        CU_ASSERT_STRING_EQUAL(a->store.ops->scheme, "json");
        CU_ASSERT_STRING_EQUAL(b->store.ops->scheme, "sqlite");
    }
    apikey_close(a);
    apikey_close(b);
    free(uri);
    free(other);
}

static void test_config_path_ignores_environment_when_privileged(void)
{
    setenv("APIKEY_CONFIG", "/attacker/apikey.conf", 1);
    CU_ASSERT_STRING_EQUAL(core_config_path(NULL, 1), APIKEY_DEFAULT_CONFIG);
    CU_ASSERT_STRING_EQUAL(core_config_path(NULL, 0), "/attacker/apikey.conf");
    CU_ASSERT_STRING_EQUAL(core_config_path("/given.conf", 1), "/given.conf");
    unsetenv("APIKEY_CONFIG");
}

/* A privileged open never looks in APIKEY_STORE_DIR, even at a backend that
 * passes every file check. */
static void test_privileged_open_ignores_store_dir(void)
{
    char err[1024];
    char *dir = backend_dir("planted", planted, 0755, geteuid(), 0);
    apikey_ctx *ctx = open_with(dir, CORE_OPEN_PRIVILEGED, err, sizeof err);
    CU_ASSERT_FALSE(loaded());
    CU_ASSERT_PTR_NULL(strstr(err, dir));
    apikey_close(ctx);
    ctx = open_with(dir, 0, err, sizeof err); /* the same, unprivileged: loaded */
    CU_ASSERT_TRUE(loaded());
    CU_ASSERT_PTR_NULL(ctx);
    free(dir);
}

/* pam_apikey through the real libpam in this process (root, not setuid:
 * as under login -p), with the caller's APIKEY_* set. */
static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    for (int i = 0; r && i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
            r[i].resp = strdup(data);
    *resp = r;
    return r ? PAM_SUCCESS : PAM_BUF_ERR;
}

static int pam_login(const char *service, const char *user, const char *key)
{
    char *confdir = tu_path("pam.d");
    struct pam_conv pc = {conv, (void *)key};
    pam_handle_t *pamh = NULL;
    CU_ASSERT_FATAL(pam_start_confdir(service, user, &pc, confdir, &pamh) == PAM_SUCCESS);
    int rc = pam_authenticate(pamh, 0);
    if (rc == PAM_SUCCESS)
        rc = pam_acct_mgmt(pamh, 0);
    pam_end(pamh, rc);
    free(confdir);
    return rc;
}

static void service(const char *name, const char *cfg)
{
    char path[64], text[4 * PATH_MAX + 256], arg[PATH_MAX + 16] = "";
    if (cfg)
        snprintf(arg, sizeof arg, "config=%s", cfg);
    snprintf(path, sizeof path, "pam.d/%s", name);
    snprintf(text, sizeof text, "auth required %s %s service=svc\naccount required %s %s service=svc\n",
             module, arg, module, arg);
    free(tu_write(path, text, 0644));
}

static void test_pam_ignores_store_dir(void)
{
    char *key = tu_create_key(config, "alice");
    char *dir = backend_dir("planted-pam", planted, 0755, geteuid(), 0);
    service("with-config", config);
    setenv("APIKEY_STORE_DIR", dir, 1);
    unlink(marker);
    CU_ASSERT_EQUAL(pam_login("with-config", "alice", key), PAM_SUCCESS);
    CU_ASSERT_FALSE(loaded());
    setenv("APIKEY_STORE_DIR", real_store_dir, 1);
    free(dir);
    free(key);
}

/* No config=: the compiled default (absent here), never APIKEY_CONFIG. */
static void test_pam_ignores_apikey_config(void)
{
    struct stat st;
    if (stat(APIKEY_DEFAULT_CONFIG, &st) == 0) {
        fprintf(stderr, "(%s exists here: skipped)\n", APIKEY_DEFAULT_CONFIG);
        return;
    }
    char *key = tu_create_key(config, "alice");
    service("no-config", NULL);
    setenv("APIKEY_CONFIG", config, 1);
    CU_ASSERT_EQUAL(pam_login("no-config", "alice", key), PAM_SERVICE_ERR);
    unsetenv("APIKEY_CONFIG");
    free(key);
}

/* OpenSSL reads its configuration once per process: a fresh one, pam_try as
 * root with the caller's OPENSSL_CONF and OPENSSL_MODULES. */
static void test_pam_ignores_openssl_config(void)
{
    char *key = tu_create_key(config, "alice"), *cnf, *mods = tu_path("ossl");
    CU_ASSERT_FATAL(mkdir(mods, 0755) == 0);
    char *so;
    if (asprintf(&so, "%s/planted.so", mods) < 0 ||
        asprintf(&cnf, "openssl_conf = init\n[init]\nproviders = prov\n[prov]\ndefault = dflt\n"
                       "planted = planted\n[dflt]\nactivate = 1\n[planted]\nmodule = planted.so\n"
                       "activate = 1\n") < 0)
        abort();
    CU_ASSERT_FATAL(symlink(planted, so) == 0);
    char *cnf_path = tu_write("openssl.cnf", cnf, 0644), *confdir = tu_path("pam.d");
    service("ossl", config);
    unlink(marker);
    pid_t pid = fork();
    if (pid == 0) {
        int in[2];
        if (pipe(in) != 0 || write(in[1], key, strlen(key)) < 0 || write(in[1], "\n", 1) < 0)
            _exit(3);
        close(in[1]);
        dup2(in[0], 0);
        setenv("OPENSSL_CONF", cnf_path, 1);
        setenv("OPENSSL_MODULES", mods, 1);
        execl("build/pam_try", "pam_try", confdir, "ossl", "alice", (char *)NULL);
        _exit(127);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_FALSE(loaded());
    free(key), free(cnf), free(mods), free(so), free(cnf_path), free(confdir);
}

static int setup(void)
{
    const char *d = getenv("APIKEY_STORE_DIR");
    if (!d || !realpath(d, real_store_dir) || !realpath("build/tests/libplanted.so", planted) ||
        !realpath("build/pam_apikey.so", module)) {
        fprintf(stderr, "build/store, build/tests/libplanted.so or build/pam_apikey.so missing\n");
        return 1;
    }
    marker = tu_path("marker");
    setenv("APIKEY_TEST_MARKER", marker, 1);
    char *keys = tu_path("keys.json"), *uri;
    if (asprintf(&uri, "json:%s", keys) < 0)
        abort();
    config = tu_config(uri, NULL, "svc = proxies:read\n");
    free(keys);
    free(uri);
    char *pamd = tu_path("pam.d");
    int rc = mkdir(pamd, 0755);
    free(pamd);
    return rc;
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo backend[] = {
        {"a group-writable backend is not loaded", test_backend_group_writable},
        {"a world-writable backend is not loaded", test_backend_world_writable},
        {"a backend of another owner is not loaded", test_backend_foreign_owner},
        {"a symlinked backend is not loaded", test_backend_symlink},
        {"a copy that passes the checks loads", test_backend_good_copy_loads},
        {"two backends in one process", test_two_backends_in_one_process},
        CU_TEST_INFO_NULL,
    };
    CU_TestInfo env[] = {
        {"APIKEY_CONFIG: ignored when privileged", test_config_path_ignores_environment_when_privileged},
        {"APIKEY_STORE_DIR: ignored when privileged", test_privileged_open_ignores_store_dir},
        {"PAM: APIKEY_STORE_DIR ignored", test_pam_ignores_store_dir},
        {"PAM: APIKEY_CONFIG ignored", test_pam_ignores_apikey_config},
        {"PAM: OPENSSL_CONF and OPENSSL_MODULES ignored", test_pam_ignores_openssl_config},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {
        {"backend files", setup, NULL, NULL, NULL, backend},
        {"privileged environment", NULL, NULL, NULL, NULL, env},
        CU_SUITE_INFO_NULL,
    };
    return tu_run(suites);
}
