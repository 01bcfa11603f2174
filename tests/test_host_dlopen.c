/* A host that knows only include/apikey.h: it links neither libapikey nor
 * OpenSSL, dlopens build/libapikey.so with RTLD_LOCAL through the versioned
 * entry symbol, and authenticates, from several threads at once. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "testutil.h"

static const apikey_api *api;
static apikey_ctx *ctx;
static char key[128];

static void load(void)
{
    void *lib = dlopen("build/libapikey.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        fprintf(stderr, "%s\n", dlerror());
    CU_ASSERT_PTR_NOT_NULL_FATAL(lib);
    /* Nothing of the library leaks into the global namespace. */
    CU_ASSERT_PTR_NULL(dlsym(RTLD_DEFAULT, "apikey_verify"));
    apikey_entry_fn entry = (apikey_entry_fn)dlsym(lib, APIKEY_ENTRY_SYMBOL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
    api = entry();
    CU_ASSERT_PTR_NOT_NULL_FATAL(api);
    CU_ASSERT(api->size >= sizeof(apikey_api));
    CU_ASSERT_EQUAL(api->version, APIKEY_API_VERSION);
    /* Internal symbols stay hidden. */
    CU_ASSERT_PTR_NULL(dlsym(lib, "core_open"));
    CU_ASSERT_PTR_NULL(dlsym(lib, "admin_create"));
}

static void test_verify_through_table(void)
{
    load();
    char *uri;
    if (asprintf(&uri, "json:%s/host.json", tu_tmpdir()) < 0)
        abort();
    char *cfg = tu_config(uri, NULL, "web = proxies:read\nbilling = balance:read\n");
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(cfg, NULL, &out, NULL, "create", "alice", "--name", "h",
                                    "--scopes", "proxies:read", NULL), 0);
    snprintf(key, sizeof key, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    char err[512];
    ctx = api->open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    CU_ASSERT_EQUAL(api->verify(ctx, "web", "alice", key, strlen(key), &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(api->http_status(&res), 200);
    CU_ASSERT_EQUAL(api->verify(ctx, "billing", "alice", key, strlen(key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(api->http_status(&res), 403);
    CU_ASSERT_STRING_EQUAL(api->reason_string(res.reason), "missing scope");
    CU_ASSERT_EQUAL(api->verify(ctx, "web", "bob", key, strlen(key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(api->http_status(&res), 401);
    CU_ASSERT_EQUAL(api->verify(ctx, "web", NULL, "nonsense", 8, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(api->http_status(&res), 401);
    /* A service nobody mapped: nothing could pass, so no key's scopes are
     * wanting: 401, as for a key that does not count (issue 13). */
    CU_ASSERT_EQUAL(api->verify(ctx, "unmapped", "alice", key, strlen(key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_UNMAPPED);
    CU_ASSERT_EQUAL(api->http_status(&res), 401);
    CU_ASSERT_EQUAL(api->verify(ctx, NULL, NULL, key, strlen(key), &res), APIKEY_UNAVAILABLE);
    /* A bad configuration fails to open with a reason. */
    CU_ASSERT_PTR_NULL(api->open("/nonexistent.conf", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent.conf"));
    free(cfg);
    free(uri);
}

static void *hammer(void *arg)
{
    long *allowed = arg;
    for (int i = 0; i < 2000; i++) {
        apikey_result res;
        *allowed += api->verify(ctx, "web", "alice", key, strlen(key), &res) == APIKEY_ALLOWED;
    }
    return NULL;
}

static void test_threads(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    pthread_t t[4];
    long allowed[4] = {0};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, &allowed[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(allowed[i], 2000);
}

static void test_unavailable_store(void)
{
    char *cfg = tu_config("json:/nonexistent/dir/keys.json", NULL, "web = proxies:read\n");
    char err[512];
    apikey_ctx *c = api->open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    apikey_result res;
    CU_ASSERT_EQUAL(api->verify(c, "web", "alice", key, strlen(key), &res), APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(api->http_status(&res), 503);
    api->close(c);
    api->close(ctx);
    free(cfg);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"verify through the dlopen'ed table", test_verify_through_table},
        {"one context, four threads", test_threads},
        {"an unavailable store answers 503", test_unavailable_store},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"host API via dlopen", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
