/* SPDX-License-Identifier: BSD-2-Clause */
/* Every shared object we ship loads with RTLD_NOW (no symbol left to chance
 * at run time), and exports its entry points and nothing else: a stray
 * export from pam_apikey.so could interpose on a symbol of sshd or of
 * another module in the same process. */
#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void *load(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fprintf(stderr, "\n  dlopen %s: %s\n", path, dlerror());
    CU_ASSERT_PTR_NOT_NULL(h);
    return h;
}

/* Counts the dynamic symbols that path defines; each must start with one of
 * the allowed prefixes (NULL-terminated). Version nodes (type A) are names
 * of the version script, not symbols. */
static int only_exports(const char *path, const char *const *allowed)
{
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", path);
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        char type[8], name[400];
        if (sscanf(line, "%*s %7s %399s", type, name) != 2 || strcmp(type, "A") == 0)
            continue;
        name[strcspn(name, "@")] = '\0';
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strncmp(name, *a, strlen(*a)) == 0;
        if (!ok)
            fprintf(stderr, "\n  %s exports %s\n", path, name);
        CU_ASSERT(ok);
        n++;
    }
    CU_ASSERT_EQUAL(pclose(p), 0);
    return n;
}

static void test_pam_module(void)
{
    const char *path = "build/pam_apikey.so";
    void *h = load(path);
    if (h) {
        CU_ASSERT_PTR_NOT_NULL(dlsym(h, "pam_sm_authenticate"));
        CU_ASSERT_PTR_NOT_NULL(dlsym(h, "pam_sm_acct_mgmt"));
        CU_ASSERT_PTR_NOT_NULL(dlsym(h, "pam_sm_setcred"));
        /* The library is linked in, hidden: not a second copy in view. */
        CU_ASSERT_PTR_NULL(dlsym(h, "apikey_verify"));
        CU_ASSERT_PTR_NULL(dlsym(h, "parse_args"));
        dlclose(h);
    }
    const char *pam[] = {"pam_sm_", NULL};
    CU_ASSERT_EQUAL(only_exports(path, pam), 3);
}

static void test_library(void)
{
    void *h = load("build/libapikey.so");
    if (h) {
        CU_ASSERT_PTR_NOT_NULL(dlsym(h, "apikey_api_v1"));
        dlclose(h);
    }
    const char *api[] = {"apikey_", NULL};
    CU_ASSERT(only_exports("build/libapikey.so", api) >= 6);
}

static void test_stores(void)
{
    glob_t g;
    CU_ASSERT_EQUAL_FATAL(glob("build/store/apikey_store_*.so", 0, NULL, &g), 0);
    const char *store[] = {"apikey_store_entry_v", NULL};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        void *h = load(g.gl_pathv[i]);
        if (h) {
            CU_ASSERT_PTR_NOT_NULL(dlsym(h, "apikey_store_entry_v1"));
            dlclose(h);
        }
        CU_ASSERT(only_exports(g.gl_pathv[i], store) >= 1);
    }
    CU_ASSERT(g.gl_pathc >= 1);
    globfree(&g);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"pam_apikey.so loads with RTLD_NOW and exports only pam_sm_*", test_pam_module},
        {"libapikey.so loads and exports only apikey_*", test_library},
        {"each store loads and exports only its entry", test_stores},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"shared objects", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
