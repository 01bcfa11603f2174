/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The per-process context kept between PAM logins (loader/ctx_cache.c): it
 * is reused while the configuration is unchanged, never trades away a
 * revocation, is replaced when the configuration changes, and is never used
 * by a forked child.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "testutil.h"

static char *store_config(void)
{
    char *uri = tu_new_store_uri();
    char *cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    free(uri);
    return cfg;
}

static apikey_decision check(apikey_ctx *ctx, const char *key)
{
    apikey_result res;
    return apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res);
}

static void test_reused_and_revocation_seen(void)
{
    char *cfg = store_config();
    char *key = tu_create_key(cfg, "alice");
    char err[512];
    apikey_ctx *a = ctx_cache_acquire(cfg, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(check(a, key), APIKEY_ALLOWED);
    ctx_cache_release(a);
    apikey_ctx *b = ctx_cache_acquire(cfg, 0, err, sizeof err);
    CU_ASSERT_PTR_EQUAL(a, b);
    char id[12];
    snprintf(id, sizeof id, "%.11s", key);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "revoke", id, NULL), 0);
    CU_ASSERT_EQUAL(check(b, key), APIKEY_REFUSED);
    ctx_cache_release(b);
    free(key);
    free(cfg);
}

static void test_changed_config_opens_anew(void)
{
    char *cfg = store_config();
    char *key = tu_create_key(cfg, "alice");
    char err[512];
    apikey_ctx *a = ctx_cache_acquire(cfg, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(check(a, key), APIKEY_ALLOWED);
    /* Held by a request in flight while the file changes: the new context
     * serves the next request, the old one lives until released. */
    size_t len;
    char *text = tu_read(cfg, &len);
    char *unmapped = strstr(text, "sshd = proxies:read");
    CU_ASSERT_PTR_NOT_NULL_FATAL(unmapped);
    memcpy(unmapped, "sshX", 4);
    FILE *f = fopen(cfg, "w");
    fputs(text, f);
    fclose(f);
    apikey_ctx *b = ctx_cache_acquire(cfg, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_EQUAL(a, b);
    CU_ASSERT_EQUAL(check(a, key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(b, key), APIKEY_REFUSED);
    ctx_cache_release(a);
    ctx_cache_release(b);
    /* A configuration made insecure is refused at once, not served from before. */
    CU_ASSERT_EQUAL(chmod(cfg, 0666), 0);
    CU_ASSERT_PTR_NULL(ctx_cache_acquire(cfg, 0, err, sizeof err));
    CU_ASSERT_EQUAL(chmod(cfg, 0600), 0);
    free(text);
    free(key);
    free(cfg);
}

static void test_child_opens_its_own(void)
{
    char *cfg = store_config();
    char *key = tu_create_key(cfg, "alice");
    char err[512];
    apikey_ctx *a = ctx_cache_acquire(cfg, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    ctx_cache_release(a);
    pid_t pid = fork();
    if (pid == 0) {
        apikey_ctx *c = ctx_cache_acquire(cfg, 0, err, sizeof err);
        int ok = c && c != a && check(c, key) == APIKEY_ALLOWED;
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    apikey_ctx *b = ctx_cache_acquire(cfg, 0, err, sizeof err);
    CU_ASSERT_PTR_EQUAL(a, b);
    CU_ASSERT_EQUAL(check(b, key), APIKEY_ALLOWED);
    ctx_cache_release(b);
    free(key);
    free(cfg);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"reused between requests; a revocation is refused at the next check",
         test_reused_and_revocation_seen},
        {"a changed configuration opens a new context", test_changed_config_opens_anew},
        {"a forked child opens its own", test_child_opens_its_own},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"context kept between PAM logins", NULL, NULL, NULL, NULL, tests},
                             CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
