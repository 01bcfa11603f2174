/* SPDX-License-Identifier: BSD-2-Clause */
/* The pgsql store in a privileged host (pam_apikey(8)): libpq takes nothing
 * from the environment, neither options (PGPORT, PGHOSTADDR, PGOPTIONS,
 * PGSERVICE) nor its message catalogue (PGLOCALEDIR), and the environment is
 * whole again afterwards. Unprivileged, the same environment does reach
 * libpq: the control that shows the variables matter. Runs itself under
 * tests/pg_harness.sh (a private server on the default port, which the
 * conninfo leaves out so that PGPORT could move it). */
#include <libintl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "testutil.h"

static char *uri;

static void hostile_environment(void)
{
    setenv("PGPORT", "1", 1);
    setenv("PGHOSTADDR", "127.0.0.2", 1);
    setenv("PGOPTIONS", "-c search_path=nowhere", 1);
    setenv("PGSERVICE", "attacker", 1);
    setenv("PGLOCALEDIR", "/attacker/locale", 1);
}

/* Open the store with the host's privileged flag as given: the status. */
static int open_store(int privileged)
{
    char err[512];
    store_binding b;
    CU_ASSERT_FATAL(store_load(uri, 0, &b, err, sizeof err) == 0);
    b.host.privileged = privileged;
    int st = store_connect(&b, 0);
    if (st == APIKEY_ST_OK) {
        apikey_record rec;
        st = b.ops->lookup(b.handle, "AAAAAAAA", &rec);
        CU_ASSERT_EQUAL(st, APIKEY_ST_NOTFOUND);
        st = APIKEY_ST_OK;
    }
    store_unbind(&b);
    return st;
}

static void test_privileged_ignores_environment(void)
{
    hostile_environment();
    CU_ASSERT_EQUAL(open_store(1), APIKEY_ST_OK);
    /* libpq's catalogue, bound at its first message, which may come later
     * outside any connect (here: a malformed conninfo): the compiled folder,
     * never PGLOCALEDIR. */
    char *e = NULL, domain[32];
    PQconninfoFree(PQconninfoParse("y", &e));
    PQfreemem(e);
    snprintf(domain, sizeof domain, "libpq5-%d", PQlibVersion() / 10000);
    const char *dir = bindtextdomain(domain, NULL);
    CU_ASSERT_PTR_NOT_NULL(dir);
    CU_ASSERT(dir && strcmp(dir, "/attacker/locale") != 0);
    /* The environment is the caller's again. */
    CU_ASSERT(getenv("PGPORT") && strcmp(getenv("PGPORT"), "1") == 0);
}

static void test_unprivileged_reads_environment(void)
{
    hostile_environment();
    CU_ASSERT_EQUAL(open_store(0), APIKEY_ST_UNAVAILABLE);
    setenv("PGPORT", getenv("APIKEY_PG_PORT"), 1);
    unsetenv("PGHOSTADDR");
    unsetenv("PGSERVICE");
    CU_ASSERT_EQUAL(open_store(0), APIKEY_ST_UNAVAILABLE); /* PGOPTIONS alone */
    unsetenv("PGOPTIONS");
    CU_ASSERT_EQUAL(open_store(0), APIKEY_ST_OK);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!getenv("APIKEY_PG_HOST")) {
        execl("/bin/sh", "sh", "tests/pg_harness.sh", argv[0], (char *)NULL);
        perror("tests/pg_harness.sh");
        return 2;
    }
    setenv("APIKEY_BIN", "build/apikey", 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "createdb -h '%s' -p '%s' -U '%s' priv_env", getenv("APIKEY_PG_HOST"),
             getenv("APIKEY_PG_PORT"), getenv("APIKEY_PG_USER"));
    if (system(cmd) != 0 ||
        asprintf(&uri, "pgsql:host=%s user=%s dbname=priv_env", getenv("APIKEY_PG_HOST"),
                 getenv("APIKEY_PG_USER")) < 0)
        return 2;
    /* The schema, made by the real command before any hostile variable. */
    char *conf = tu_config(uri, NULL, "svc = proxies:read\n");
    if (tu_apikey(conf, NULL, NULL, NULL, "list", NULL) != 0)
        return 2;
    free(conf);
    CU_TestInfo tests[] = {
        /* First: libpq binds its catalogue once per process. */
        {"privileged: no PG* variable reaches libpq", test_privileged_ignores_environment},
        {"unprivileged: they do (the control)", test_unprivileged_reads_environment},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"pgsql in a privileged host", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
