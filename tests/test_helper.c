/* SPDX-License-Identifier: BSD-2-Clause */
/* basic_apikey_auth as Squid runs it: a long-lived process fed request
 * lines on a pipe, answering OK, ERR or BH. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

typedef tu_helper helper;

static helper start(const char *config, int concurrency)
{
    return tu_helper_start(config, "squid", concurrency);
}

static const char *ask(helper *h, const char *line)
{
    return tu_helper_ask(h, "%s", line);
}

static void stop(helper *h)
{
    int status = tu_helper_stop(h);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static char *config, *good, *scoped, *pid_good;

static char *create(const char *account, const char *scopes)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, &out, NULL, "create", account, "--name", "h",
                              "--scopes", scopes, NULL), 0);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static void test_answers(void)
{
    char *uri;
    if (asprintf(&uri, "json:%s/helper.json", tu_tmpdir()) < 0)
        abort();
    config = tu_config(uri, NULL, "squid = proxies:read\n");
    good = create("alice", "proxies:read");
    scoped = create("alice", "geo:read");
    pid_good = strndup(good, 11);
    helper h = start(config, 0);
    char line[512];
    snprintf(line, sizeof line, "alice %s", good);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "OK");
    snprintf(line, sizeof line, "bob %s", good);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "ERR message=\"wrong account\"");
    snprintf(line, sizeof line, "alice %s", scoped);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "ERR message=\"missing scope\"");
    CU_ASSERT_STRING_EQUAL(ask(&h, "alice ak_nonsense"), "ERR message=\"malformed key\"");
    /* URL-escaped user names, as Squid sends them. */
    char *odd = create("o'brien smith", "proxies:read");
    snprintf(line, sizeof line, "o%%27brien%%20smith %s", odd);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "OK");
    /* Malformed lines: no separator, bad escapes, an escaped NUL. */
    CU_ASSERT_STRING_EQUAL(ask(&h, "alice"), "BH message=\"malformed request\"");
    CU_ASSERT_STRING_EQUAL(ask(&h, "al%zzice key"), "BH message=\"malformed request\"");
    CU_ASSERT_STRING_EQUAL(ask(&h, "alice ke%00y"), "BH message=\"malformed request\"");
    char *huge = malloc(200000);
    memset(huge, 'a', 199999);
    huge[199999] = '\0';
    huge[5] = ' ';
    CU_ASSERT_STRING_EQUAL(ask(&h, huge), "BH message=\"malformed request\"");
    free(huge);
    /* A revocation reaches the next answer of the running helper. */
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, NULL, NULL, "revoke", pid_good, NULL), 0);
    snprintf(line, sizeof line, "alice %s", good);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "ERR message=\"revoked\"");
    stop(&h);
    free(odd);
    free(uri);
}

/* Whether the running process pid holds needle anywhere in its readable
 * memory (root, or its parent: we started it). -1 when it cannot be read. */
static int process_holds(int pid, const char *needle)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "r");
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int mem = open(path, O_RDONLY);
    if (!maps || mem < 0) {
        if (maps)
            fclose(maps);
        if (mem >= 0)
            close(mem);
        return -1;
    }
    int found = 0, regions = 0;
    size_t n = strlen(needle);
    enum { CHUNK = 1 << 20 };
    char line[512], *buf = malloc(CHUNK + 64);
    while (buf && !found && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        /* Regions of a gigabyte and more are a sanitizer's shadow memory,
         * reserved, not used: no buffer of the helper lives there. */
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
            strstr(line, "[vvar]") || strstr(line, "[vsyscall]") || hi - lo >= (1ul << 30))
            continue;
        /* In chunks that overlap by the needle's length, so no copy that
         * straddles two chunks is missed. */
        for (unsigned long at = lo; !found && at < hi; at += CHUNK) {
            size_t want = hi - at < CHUNK + n ? hi - at : CHUNK + n;
            ssize_t got = pread(mem, buf, want, (off_t)at);
            if (got <= 0)
                break;
            regions += at == lo;
            found = memmem(buf, (size_t)got, needle, n) != NULL;
        }
    }
    free(buf);
    fclose(maps);
    close(mem);
    return regions ? found : -1;
}

/* After an answer, the helper keeps no copy of the line it read: not in
 * stdio's stdin buffer, not in its own buffers (issue 11, item 6). */
static void test_no_key_left_in_memory(void)
{
    char *fine = create("carol", "proxies:read"), *narrow = create("carol", "geo:read");
    helper h = start(config, 1);
    char line[512];
    snprintf(line, sizeof line, "7 carol %s", fine);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "7 OK");
    snprintf(line, sizeof line, "8 carol %s", narrow);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "8 ERR message=\"missing scope\"");
    /* The secret part alone: the id is public and may stay. */
    CU_ASSERT_EQUAL(process_holds(h.pid, fine + 11), 0);
    CU_ASSERT_EQUAL(process_holds(h.pid, narrow + 11), 0);
    stop(&h);
    free(fine);
    free(narrow);
}

static void test_concurrency_channels(void)
{
    char *fresh = create("carol", "proxies:read");
    helper h = start(config, 1);
    char line[512];
    snprintf(line, sizeof line, "7 carol %s", fresh);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "7 OK");
    snprintf(line, sizeof line, "12 alice %s", good);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "12 ERR message=\"revoked\"");
    CU_ASSERT_STRING_EQUAL(ask(&h, "3 carol"), "3 BH message=\"malformed request\"");
    stop(&h);
    free(fresh);
}

/* A key pinned to allow_from, through `apikey create --allow-from`. */
static char *create_pinned(const char *allow_from)
{
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(config, NULL, &out, NULL, "create", "dave", "--name", "pinned",
                                    "--scopes", "proxies:read", "--allow-from", allow_from, NULL),
                          0);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* Squid with key_extras "%>a" writes the client address after the
 * password: "[channel ]user password address[ more extras]". */
static void test_key_extras(void)
{
    char *v4 = create_pinned("127.0.0.1/32"), *v6 = create_pinned("::1/128"),
         *any = create("dave", "proxies:read");
#define NOT_ALLOWED "ERR message=\"address not allowed\""
#define MALFORMED "BH message=\"malformed request\""
    struct {
        const char *key, *extras, *answer;
    } cases[] = {
        {v4, " 127.0.0.1", "OK"},
        {v4, " ::ffff:127.0.0.1", "OK"},          /* a dual-stack port's IPv4 client */
        {v4, " %3A%3Affff%3A127.0.0.1", "OK"},    /* "%#>a" escapes it */
        {v4, " 127.0.0.1 3128 -", "OK"},          /* more extras are not read */
        {v4, " 127.0.0.2", NOT_ALLOWED},
        {v4, " ::1", NOT_ALLOWED},
        {v4, "", NOT_ALLOWED},   /* no key_extras: unknown */
        {v4, " -", NOT_ALLOWED}, /* Squid did not know it */
        {v4, " localhost", NOT_ALLOWED},
        {v6, " ::1", "OK"},
        {v6, " 127.0.0.1", NOT_ALLOWED},
        {any, " 127.0.0.2", "OK"},
        {any, " ::1", "OK"},
        {any, " -", "OK"},
        {any, " localhost", "OK"},
        {any, "", "OK"},
        /* Malformed as before: empty fields, bad escapes, too long. */
        {any, " ", MALFORMED},
        {any, "  127.0.0.1", MALFORMED},
        {any, " 127.0.0.1%zz", MALFORMED},
        {any, " 127.0.0.1%00", MALFORMED},
        {any, " 1111111111111111111111111111111111111111111111111111111111111111", MALFORMED},
    };
    char line[512], want[128];
    for (int concurrency = 0; concurrency < 2; concurrency++) {
        helper h = start(config, concurrency);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            snprintf(line, sizeof line, "%s%sdave %s%s", concurrency ? "41" : "", concurrency ? " " : "",
                     cases[i].key, cases[i].extras);
            snprintf(want, sizeof want, "%s%s%s", concurrency ? "41" : "", concurrency ? " " : "",
                     cases[i].answer);
            const char *got = ask(&h, line);
            CU_ASSERT_STRING_EQUAL(got, want);
            if (strcmp(got, want) != 0)
                fprintf(stderr, "extras '%s' (concurrency %d): %s\n", cases[i].extras, concurrency, got);
        }
        stop(&h);
    }
    free(v4);
    free(v6);
    free(any);
#undef NOT_ALLOWED
#undef MALFORMED
}

static void test_unavailable_is_bh(void)
{
    char *bad = tu_config("json:/nonexistent/dir/keys.json", NULL, "squid = proxies:read\n");
    helper h = start(bad, 0);
    char line[512];
    snprintf(line, sizeof line, "alice %s", scoped);
    CU_ASSERT_STRING_EQUAL(ask(&h, line), "BH message=\"store unavailable\"");
    stop(&h);
    /* The store's own line goes to the helper's stderr (Squid's cache.log),
     * once a check, never to the client. */
    char *corrupt = tu_write("corrupt.json", "{\"keys\": [ {\"id\": tru", 0644), uri[400];
    snprintf(uri, sizeof uri, "json:%s", corrupt);
    char *broken = tu_config(uri, NULL, "squid = proxies:read\n");
    tu_stderr_begin();
    helper hb = start(broken, 0);
    const char *answer = ask(&hb, line);
    CU_ASSERT_STRING_EQUAL(answer, "BH message=\"store unavailable\"");
    stop(&hb);
    char *said = tu_stderr_end();
    char expect[600];
    snprintf(expect, sizeof expect, "basic_apikey_auth: store %s: not valid JSON", corrupt);
    CU_ASSERT_EQUAL(tu_count(said, expect), 1);
    CU_ASSERT_EQUAL(tu_count_lines(said), 1);
    free(said);
    free(broken);
    free(corrupt);
    /* An unusable configuration: BH to every line, never OK. */
    helper h2 = start("/nonexistent.conf", 0);
    CU_ASSERT_STRING_EQUAL(ask(&h2, line), "BH message=\"apikey configuration unusable\"");
    stop(&h2);
    free(bad);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    signal(SIGPIPE, SIG_IGN);
    CU_TestInfo tests[] = {
        {"OK, ERR and BH; escapes; revocation reaches the next answer", test_answers},
        {"channel ids with --concurrency", test_concurrency_channels},
        {"key_extras: the client address after the password", test_key_extras},
        {"an unavailable store or config answers BH", test_unavailable_is_bh},
        {"no key left in the helper's memory after its answer", test_no_key_left_in_memory},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"basic_apikey_auth", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    int rc = tu_run(suites);
    free(config);
    free(good);
    free(scoped);
    free(pid_good);
    return rc;
}
