/* SPDX-License-Identifier: BSD-2-Clause */
/* Values from outside in log lines (common/logvalue.h): one field each,
 * whatever they hold; and the library's audit line, which names a key's
 * account and name as the caller chose them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "admin.h"
#include "logvalue.h"
#include "testutil.h"

static void expect(const char *in, const char *want, size_t len)
{
    char out[LOG_VALUE_LEN];
    CU_ASSERT_STRING_EQUAL(log_value(in, out, len), want);
    if (strcmp(out, want) != 0)
        fprintf(stderr, "log_value: want [%s], got [%s]\n", want, out);
}

static void test_values(void)
{
    expect("alice", "alice", LOG_VALUE_LEN);
    expect("ak_20fe9a1c", "ak_20fe9a1c", LOG_VALUE_LEN);
    expect("2001:db8::1", "2001:db8::1", LOG_VALUE_LEN);
    expect(NULL, "-", LOG_VALUE_LEN);
    expect("", "\"\"", LOG_VALUE_LEN);
    expect("bob allowed account=alice", "\"bob allowed account=alice\"", LOG_VALUE_LEN);
    expect("a=b", "\"a=b\"", LOG_VALUE_LEN);
    expect("say \"hi\\\"", "\"say \\\"hi\\\\\\\"\"", LOG_VALUE_LEN);
    expect("two\nlines\r", "\"two\\x0alines\\x0d\"", LOG_VALUE_LEN);
    expect("caf\xc3\xa9\xe2\x80\xae", "\"caf\\xc3\\xa9\\xe2\\x80\\xae\"", LOG_VALUE_LEN);
    expect("\x7f", "\"\\x7f\"", LOG_VALUE_LEN);
    /* Cut short: still one quoted field, never half an escape. */
    expect("abcdefghij", "\"abc...\"", 9);
    expect("abcdefgh", "abcdefgh", 9);
    expect("abc", "abc", 9);
    expect("\n\n\n", "\"...\"", 8);
    expect("x\n\n", "\"x...\"", 9);
    /* Any value up to LOG_VALUE_MAX bytes fits whole. */
    char all[LOG_VALUE_MAX + 1], out[LOG_VALUE_LEN];
    memset(all, '\x01', LOG_VALUE_MAX);
    all[LOG_VALUE_MAX] = '\0';
    log_value(all, out, sizeof out);
    CU_ASSERT_EQUAL(strlen(out), 2 + 4 * LOG_VALUE_MAX);
    CU_ASSERT_PTR_NULL(strstr(out, "..."));
}

/* The audit line of a create: a key named to look like more fields. */
static void test_audit_line(void)
{
    char *uri = tu_new_store_uri_of("json"), *cfg = tu_config(uri, NULL, NULL);
    apikey_ctx *ctx = core_open(cfg, APIKEY_OPEN_CREATE, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    admin_request req = {.account = "alice", .name = "first", .scopes = "proxies:read"};
    admin_issued k;
    char err[512];
    /* The library opens its log at its first line; then a copy to stderr. */
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    openlog("apikey", LOG_PERROR, LOG_AUTHPRIV);
    tu_stderr_begin();
    req = (admin_request){.account = "bob allowed", .name = "x allow_from=10.0.0.0/8 revoked",
                          .scopes = "proxies:read", .allow_from = "192.0.2.7,2001:db8::/32"};
    CU_ASSERT_EQUAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    char *log = tu_stderr_end();
    closelog();
    char want[300];
    snprintf(want, sizeof want,
             "created key ak_%s account=\"bob allowed\" name=\"x allow_from=10.0.0.0/8 revoked\" "
             "allow_from=\"192.0.2.7/32 2001:db8::/32\"\n", k.rec.id);
    CU_ASSERT_EQUAL(tu_count(log, want), 1);
    if (tu_count(log, want) != 1)
        fprintf(stderr, "want: %slog: %s\n", want, log);
    free(log);
    apikey_close(ctx);
    free(cfg);
    free(uri);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"a value is one field, whatever it holds", test_values},
        {"the audit line quotes a key's account and name", test_audit_line},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"log values", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
