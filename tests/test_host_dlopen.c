/* SPDX-License-Identifier: BSD-2-Clause */
/* A host that knows only include/apikey.h: it links neither libapikey nor
 * OpenSSL, dlopens build/libapikey.so with RTLD_LOCAL through the versioned
 * entry symbol, and authenticates, from several threads at once. */
#include <dlfcn.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* A store that fails: the library prints nothing of its own (a host's
 * stderr may be a client's socket or a terminal), and the store's line
 * reaches the host: in the verdict, and in err of open and admin calls. */
static int no_key(const apikey_key_info *info, void *arg)
{
    (void)info;
    (void)arg;
    return 1;
}

static void test_store_failure_reaches_host_only(void)
{
    CU_ASSERT_FATAL(APIKEY_API_HAS(api, verify_with));
    char *corrupt = tu_write("corrupt.json", "{\"keys\": [ {\"id\": tru", 0644), *uri;
    if (asprintf(&uri, "json:%s", corrupt) < 0)
        abort();
    char *cfg = tu_config(uri, NULL, "web = proxies:read\n");
    char err[512] = "x", list_err[512] = "x", open_err[512] = "x";
    tu_stderr_begin();
    apikey_ctx *c = api->open(cfg, err, sizeof err);
    apikey_verify_request q = {.size = sizeof q, .service = "web", .key = key, .keylen = strlen(key)};
    apikey_verdict v = {.size = sizeof v};
    apikey_decision d = c ? api->verify_with(c, &q, &v) : APIKEY_ALLOWED;
    apikey_result res;
    apikey_decision old = c ? api->verify(c, "web", NULL, key, strlen(key), &res) : APIKEY_ALLOWED;
    apikey_status st = c ? api->list(c, NULL, 0, no_key, NULL, list_err, sizeof list_err) : APIKEY_OK;
    apikey_ctx *connected = api->open_with(cfg, APIKEY_OPEN_CONNECT, open_err, sizeof open_err);
    api->close(c);
    api->close(connected);
    char *printed = tu_stderr_end();
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(d, APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_STORE);
    CU_ASSERT_EQUAL(v.size, sizeof v);
    CU_ASSERT_PTR_NOT_NULL(strstr(v.error, "not valid JSON"));
    CU_ASSERT_PTR_NOT_NULL(strstr(v.error, corrupt));
    CU_ASSERT_EQUAL(old, APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(st, APIKEY_E_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(list_err, "not valid JSON"));
    /* The JSON store reads its file at the first use: open_with connects. */
    if (!connected)
        CU_ASSERT_PTR_NOT_NULL(strstr(open_err, "not valid JSON"));
    CU_ASSERT_STRING_EQUAL(printed, "");
    /* A check the store answered carries no line from an earlier failure. */
    v.size = sizeof v;
    q.service = "web";
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, &v), APIKEY_ALLOWED);
    CU_ASSERT_STRING_EQUAL(v.error, "");
    free(printed);
    free(cfg);
    free(uri);
    free(corrupt);
}

/* apikey_result is frozen; the sized structs grow: an older or newer host
 * is answered within what it allocated, and a request field this library
 * does not know is refused, not dropped. */
static void test_sized_verify(void)
{
    apikey_verify_request q = {.size = sizeof q, .service = "web", .account = "alice", .key = key,
                               .keylen = strlen(key)};
    /* Too small a verdict, or none: nothing written, cannot tell. */
    apikey_verdict v;
    memset(&v, 0xAA, sizeof v);
    v.size = offsetof(apikey_verdict, error);
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, &v), APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(v.size, offsetof(apikey_verdict, error));
    CU_ASSERT_EQUAL((unsigned char)v.error[0], 0xAA);
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, NULL), APIKEY_UNAVAILABLE);
    /* A newer host's verdict: the library's part written, the rest zeroed. */
    struct {
        apikey_verdict v;
        char later[64];
    } big;
    memset(&big, 0xAA, sizeof big);
    big.v.size = sizeof big;
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, &big.v), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(big.v.size, sizeof(apikey_verdict));
    CU_ASSERT_EQUAL(big.v.result.decision, APIKEY_ALLOWED);
    CU_ASSERT_STRING_EQUAL(big.v.result.account, "alice");
    CU_ASSERT_EQUAL(big.later[0], 0);
    CU_ASSERT_EQUAL(big.later[63], 0);
    /* A newer host's request: an unknown field left zero is fine... */
    struct {
        apikey_verify_request q;
        const char *client_address;
    } newer = {q, NULL};
    newer.q.size = sizeof newer;
    v.size = sizeof v;
    CU_ASSERT_EQUAL(api->verify_with(ctx, &newer.q, &v), APIKEY_ALLOWED);
    /* ...one set is never ignored: the key is not let through without it. */
    newer.client_address = "192.0.2.1";
    CU_ASSERT_EQUAL(api->verify_with(ctx, &newer.q, &v), APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(v.error, "does not know"));
    /* An older, smaller request than the first version: a bad call. */
    q.size = offsetof(apikey_verify_request, keylen);
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, &v), APIKEY_UNAVAILABLE);
    CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ARGUMENT);
    /* The frozen call still answers within sizeof(apikey_result). */
    struct {
        apikey_result r;
        char after[32];
    } old;
    memset(&old, 0xAA, sizeof old);
    CU_ASSERT_EQUAL(api->verify(ctx, "web", "alice", key, strlen(key), &old.r), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL((unsigned char)old.after[0], 0xAA);
}

typedef struct lines {
    char text[1024];
} lines;

static int collect(const char *name, const char *value, void *arg)
{
    lines *l = arg;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s=%s|", name, value);
    return 0;
}

/* The three former readers of apikey.conf disagreed on these lines (a
 * repeated scope, spaces, comments, a section after [services]); every
 * host now gets the library's one reading through the table. */
static void test_configuration_through_table(void)
{
    load();
    char *uri;
    if (asprintf(&uri, "json:%s/settings.json", tu_tmpdir()) < 0)
        abort();
    char *cfg = tu_config(uri, NULL,
                          "billing = balance:read, stats:read,stats:read\n"
                          "web = proxies:read   # a comment\n"
                          "open =\n"
                          "[authd]\n"
                          "trusted_proxies = 127.0.0.1, unix ; why\n"
                          "admin_users = root\n"
                          "trusted_proxies = ::1\n");
    char err[512], scopes[APIKEY_SCOPES_MAX];
    apikey_ctx *c = api->open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(APIKEY_API_HAS(api, section));
    CU_ASSERT_FATAL(APIKEY_API_HAS(api, check_may_block));
    CU_ASSERT_EQUAL(api->service_scopes(c, "billing", scopes, sizeof scopes, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(scopes, "balance:read stats:read");
    CU_ASSERT_EQUAL(api->service_scopes(c, "web", scopes, sizeof scopes, NULL, 0), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(scopes, "proxies:read");
    CU_ASSERT_EQUAL(api->service_scopes(c, "open", scopes, sizeof scopes, NULL, 0), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(scopes, "");
    CU_ASSERT_EQUAL(api->service_scopes(c, "nope", scopes, sizeof scopes, err, sizeof err),
                    APIKEY_E_NOT_FOUND);
    CU_ASSERT_EQUAL(api->service_scopes(c, "billing", scopes, 5, NULL, 0), APIKEY_E_ARGUMENT);
    CU_ASSERT_EQUAL(api->service_scopes(NULL, "billing", scopes, sizeof scopes, NULL, 0),
                    APIKEY_E_ARGUMENT);
    lines l = {""};
    CU_ASSERT_EQUAL(api->services(c, collect, &l, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(l.text, "billing=balance:read stats:read|web=proxies:read|open=|");
    memset(&l, 0, sizeof l);
    CU_ASSERT_EQUAL(api->section(c, "authd", collect, &l, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(l.text,
                           "trusted_proxies=127.0.0.1, unix|admin_users=root|trusted_proxies=::1|");
    memset(&l, 0, sizeof l);
    CU_ASSERT_EQUAL(api->section(c, "", collect, &l, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(l.text, "key_prefix=ak|max_keys_per_account=10|default_expiry=90d|"
                                   "last_used_granularity=60s|");
    memset(&l, 0, sizeof l);
    CU_ASSERT_EQUAL(api->section(c, "nosuch", collect, &l, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(l.text, "");
    /* A json store answers from a local file: checks may run inline. */
    CU_ASSERT_EQUAL(api->store_may_block(c), 0);
    CU_ASSERT_EQUAL(api->check_may_block(c), 0);
    api->close(c);
    free(cfg);
    /* A database store may block, and so does a context that is not one. */
    char *pg = tu_config("pgsql:host=/nonexistent dbname=x", NULL, NULL);
    c = api->open(pg, err, sizeof err);
    if (c) {
        CU_ASSERT_EQUAL(api->store_may_block(c), 1);
        CU_ASSERT_EQUAL(api->check_may_block(c), 1);
        api->close(c);
    }
    CU_ASSERT_EQUAL(api->store_may_block(NULL), 1);
    CU_ASSERT_EQUAL(api->check_may_block(NULL), 1);
    free(pg);
    /* A misspelt section is still an error, not a host's section. */
    char *bad = tu_config(uri, NULL, "web = proxies:read\n[authdd]\nx = 1\n");
    CU_ASSERT_PTR_NULL(api->open(bad, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown section [authdd]"));
    free(bad);
    free(uri);
}

/* A fleet's replica through the table (library 1.5): its contact line as
 * apikey-syncd writes it, and a configuration without one. */
static void test_replica_through_table(void)
{
    load();
    CU_ASSERT_FATAL(APIKEY_API_HAS(api, replica));
    char *uri, *dir, *contact, top[600], err[512];
    if (asprintf(&uri, "json:%s/replica.json", tu_tmpdir()) < 0 ||
        asprintf(&dir, "%s/replica", tu_tmpdir()) < 0 || asprintf(&contact, "%s/contact", dir) < 0)
        abort();
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0750), 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    FILE *f = fopen(contact, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "apikey-replica 1 %lld 42\n", (long long)now.tv_sec * 1000 - 1500);
    fclose(f);
    chmod(contact, 0640);
    snprintf(top, sizeof top, "replica = %s\nreplica_max_lag = 10s", dir);
    char *cfg = tu_config(uri, top, NULL), *plain = tu_config(uri, NULL, NULL);
    apikey_ctx *c = api->open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    apikey_replica_state st = {.size = sizeof st};
    CU_ASSERT_EQUAL(api->replica(c, &st, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(st.last_change, 42);
    CU_ASSERT(st.lag_ms >= 1500 && st.lag_ms < 10000);
    CU_ASSERT_EQUAL(st.max_lag_ms, 10000);
    CU_ASSERT_TRUE(st.trusted);
    /* No contact line: unavailable, with the reason. */
    unlink(contact);
    CU_ASSERT_EQUAL(api->replica(c, &st, err, sizeof err), APIKEY_E_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "contact"));
    api->close(c);
    c = api->open(plain, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(api->replica(c, &st, err, sizeof err), APIKEY_E_INVALID);
    api->close(c);
    free(cfg);
    free(plain);
    free(contact);
    free(dir);
    free(uri);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"verify through the dlopen'ed table", test_verify_through_table},
        {"one context, four threads", test_threads},
        {"a store failure: the host gets the line, nothing printed", test_store_failure_reaches_host_only},
        {"sized verify: older and newer hosts", test_sized_verify},
        {"an unavailable store answers 503", test_unavailable_store},
        {"the configuration read through the table", test_configuration_through_table},
        {"a fleet's replica through the table", test_replica_through_table},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"host API via dlopen", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
