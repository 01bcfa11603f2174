/* SPDX-License-Identifier: BSD-2-Clause */
/* A backend built for store ABI 1 (records without allow_from) is refused
 * with a clear line: loaded, it would drop a key's allowlist on write and
 * the core would read past its records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikey.h"
#include "testutil.h"

static void test_abi1_refused(void)
{
    /* Built beside this program, whichever build folder that is. */
    char dir[4096];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 8);
    CU_ASSERT_FATAL(n > 0);
    dir[n] = '\0';
    strcpy(strrchr(dir, '/'), "/abi1");
    setenv("APIKEY_STORE_DIR", dir, 1);
    char *conf = tu_config("old:/nowhere", NULL, "sshd = proxies:read\n");
    char err[512] = "";
    apikey_ctx *ctx = apikey_open_with(conf, 0, err, sizeof err);
    CU_ASSERT_PTR_NULL(ctx);
    if (ctx)
        apikey_close(ctx);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "follows store ABI 1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "rebuild"));
    free(conf);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"a backend of store ABI 1 is refused, with why", test_abi1_refused},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"old backends", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
