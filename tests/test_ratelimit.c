/* SPDX-License-Identifier: BSD-2-Clause */
/* The GCRA table (loader/ratelimit.c) with an injected clock: exact counts,
 * no window edge, shared between processes, eviction of idle keys only, and
 * a table deleted, truncated or replaced under a running user. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ratelimit.h"
#include "testutil.h"

#define SEC INT64_C(1000000000)
#define T0 (INT64_C(1000) * SEC)

/* Paths made for the tests, freed when they end (the sanitizer build
 * counts every byte). */
static char *made[64];
static int nmade;
static char *path_of(const char *name)
{
    char *p = tu_path(name);
    if (nmade < 64)
        made[nmade++] = p;
    return p;
}

static void free_paths(void)
{
    while (nmade > 0)
        free(made[--nmade]);
}

static char err[256];

static int take(rate_table *t, const char *id, rate_spec r, int64_t now, rate_answer *a)
{
    rate_answer dummy;
    return rate_take(t, id, &r, now, a ? a : &dummy, err, sizeof err);
}

static void table(rate_table *t, const char *name)
{
    rate_table_init(t, path_of(name));
}

/* Counts the cells allowed for id over [from, from + span) at one every
 * step ns. */
static long hammer(rate_table *t, const char *id, rate_spec r, int64_t from, int64_t span,
                   int64_t step)
{
    long n = 0;
    for (int64_t now = from; now < from + span; now += step)
        n += take(t, id, r, now, NULL) == RATE_ALLOWED;
    return n;
}

static void test_parse(void)
{
    rate_spec r;
    CU_ASSERT_EQUAL(rate_parse("10/s", &r, err, sizeof err), 0);
    CU_ASSERT(r.limit == 10 && r.period == 1 && r.burst == 10);
    CU_ASSERT_EQUAL(rate_parse("600/min", &r, err, sizeof err), 0);
    CU_ASSERT(r.limit == 600 && r.period == 60);
    CU_ASSERT_EQUAL(rate_parse("1/h", &r, err, sizeof err), 0);
    CU_ASSERT(r.period == 3600);
    char text[32];
    rate_format(&r, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "1/h");
    static const char *bad[] = {"", "0/s", "10", "10/", "/s", "10/d", "-1/s", "1000001/s",
                                "10/sec", " 10/s", "10/s ", "1e3/s", "99999999999999999999/s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(rate_parse(bad[i], &r, err, sizeof err), -1);
        CU_ASSERT(strstr(err, "bad rate") != NULL);
    }
}

/* limit x period + burst, exactly, at 10/s, 1,000/s and 100,000/s. */
static void test_counts(void)
{
    static const struct {
        uint32_t limit, burst;
    } cases[] = {{10, 10}, {10, 1}, {1000, 50}, {100000, 100000}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rate_table t;
        table(&t, "counts");
        rate_spec r = {cases[i].limit, 1, cases[i].burst};
        /* Twice the limit, for 10 s. */
        int64_t step = SEC / (2 * cases[i].limit);
        long n = hammer(&t, "countKey", r, T0, 10 * SEC, step);
        long want = (long)cases[i].limit * 10 + cases[i].burst;
        CU_ASSERT(n >= want - 1 && n <= want);
        if (n < want - 1 || n > want)
            fprintf(stderr, "limit %u burst %u: %ld allowed, %ld expected\n", r.limit, r.burst, n,
                    want);
        rate_table_free(&t);
        unlink(path_of("counts"));
    }
}

/* A fixed window lets a burst at its end and one at the next one's start
 * through: twice the limit in an instant. GCRA lets burst through, then
 * one per interval. */
static void test_window_edge(void)
{
    rate_table t;
    table(&t, "edge");
    rate_spec r = {10, 1, 10};
    rate_answer a;
    CU_ASSERT_EQUAL(hammer(&t, "edgeKey1", r, T0 + SEC - SEC / 1000, SEC / 1000, SEC / 100000),
                    10);
    /* Just past the "window edge": nothing more, and the wait is said. */
    CU_ASSERT_EQUAL(take(&t, "edgeKey1", r, T0 + SEC + 1, &a), RATE_LIMITED);
    CU_ASSERT_EQUAL(a.retry_after, 1);
    CU_ASSERT_EQUAL(hammer(&t, "edgeKey1", r, T0 + SEC, SEC / 1000, SEC / 100000), 0);
    /* One interval (100 ms) later, one more. */
    CU_ASSERT_EQUAL(take(&t, "edgeKey1", r, T0 + SEC + SEC / 10, &a), RATE_ALLOWED);
    CU_ASSERT_EQUAL(a.remaining, 0);
    /* A fresh key: remaining counts down from burst - 1. */
    CU_ASSERT_EQUAL(take(&t, "edgeKey2", r, T0, &a), RATE_ALLOWED);
    CU_ASSERT_EQUAL(a.remaining, 9);
    CU_ASSERT_EQUAL(take(&t, "edgeKey2", r, T0, &a), RATE_ALLOWED);
    CU_ASSERT_EQUAL(a.remaining, 8);
    /* Retry-After rounds up: 1/h with burst 1 waits an hour. */
    rate_spec hourly = {1, 3600, 1};
    CU_ASSERT_EQUAL(take(&t, "edgeKey3", hourly, T0, &a), RATE_ALLOWED);
    CU_ASSERT_EQUAL(take(&t, "edgeKey3", hourly, T0 + 1, &a), RATE_LIMITED);
    CU_ASSERT_EQUAL(a.retry_after, 3600);
    rate_table_free(&t);
}

/* Four processes share one key's budget. */
static void test_processes(void)
{
    rate_table t;
    table(&t, "procs");
    rate_spec r = {1000, 1, 100};
    int fds[4][2];
    for (int p = 0; p < 4; p++) {
        CU_ASSERT_FATAL(pipe(fds[p]) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            rate_table mine;
            table(&mine, "procs");
            /* Interleaved clocks: each process sees its own instants. */
            long n = hammer(&mine, "procKey1", r, T0 + p, 10 * SEC, SEC / 1000);
            (void)!write(fds[p][1], &n, sizeof n);
            _exit(0);
        }
        close(fds[p][1]);
    }
    long total = 0;
    for (int p = 0; p < 4; p++) {
        long n = 0;
        CU_ASSERT(read(fds[p][0], &n, sizeof n) == sizeof n);
        close(fds[p][0]);
        total += n;
        wait(NULL);
    }
    /* Processes run one after the other or at once: either way a cell is
     * counted once, so 4 x 1,000/s asked gets limit x 10 + burst (unshared,
     * each would get that much), and at least what the one ahead asked. */
    CU_ASSERT(total <= 1000 * 10 + 100 + 4);
    CU_ASSERT(total >= 1000 * 10 - 100);
    rate_table_free(&t);
}

/* A 16-slot table holding 16 busy keys: a 17th is unavailable rather than
 * evicting one of them; once one is idle its slot is taken over and the
 * evicted key starts afresh, which its idle state equals. */
static void test_full_table(void)
{
    const char *path = path_of("tiny");
    rate_table t;
    rate_spec r = {1, 60, 1};
    /* A 16-slot table (rate_slots = 16). */
    rate_table_init(&t, path);
    t.create_slots = 16;
    char id[9];
    int busy = 0, unavailable = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "full%04u", (unsigned)i % 10000);
        int d = take(&t, id, r, T0, NULL);
        busy += d == RATE_ALLOWED;
        unavailable += d == RATE_UNAVAILABLE;
    }
    CU_ASSERT(busy <= 16);
    CU_ASSERT_EQUAL(busy + unavailable, 200);
    /* Every key that got its cell stays limited while busy: no eviction. */
    int limited = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "full%04u", (unsigned)i % 10000);
        limited += take(&t, id, r, T0 + SEC, NULL) == RATE_LIMITED;
    }
    CU_ASSERT_EQUAL(limited, busy);
    /* A minute on, all are idle: new keys take their slots over. */
    int later = 0;
    for (int i = 200; i < 400; i++) {
        snprintf(id, sizeof id, "full%04u", (unsigned)i % 10000);
        later += take(&t, id, r, T0 + 61 * SEC, NULL) == RATE_ALLOWED;
    }
    CU_ASSERT(later >= 1 && later <= 16);
    rate_table_free(&t);
}

/* Deleted, truncated, replaced by garbage, replaced by a fresh table: a
 * running user answers right or unavailable, and never crashes. */
static void test_faults(void)
{
    const char *path = path_of("faulty");
    rate_table t;
    rate_table_init(&t, path);
    rate_spec r = {10, 1, 10};
    rate_answer a;
    int64_t now = T0;
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now, &a), RATE_ALLOWED);

    /* Deleted: within a second the user makes and follows a new table. */
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now + 1, &a), RATE_ALLOWED);
    now += 2 * SEC;
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now, &a), RATE_ALLOWED);
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);

    /* Replaced by a short file (a truncated copy): unavailable, not SIGBUS. */
    char *tmp = path_of("faulty.new");
    free(tu_write("faulty.new", "APIKRT01 short", 0660));
    CU_ASSERT_EQUAL(rename(tmp, path), 0);
    now += 2 * SEC;
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now, &a), RATE_UNAVAILABLE);
    CU_ASSERT(strstr(err, "not a rate table") != NULL);
    /* Truncated in place to nothing: still unavailable. */
    CU_ASSERT_EQUAL(truncate(path, 0), 0);
    now += 2 * SEC;
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now, &a), RATE_UNAVAILABLE);
    /* Writable by anyone: refused. */
    unlink(path);
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now + 2 * SEC, &a), RATE_ALLOWED);
    chmod(path, 0666);
    now += 4 * SEC;
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now, &a), RATE_UNAVAILABLE);
    /* Removed again: a fresh table, counting again. */
    unlink(path);
    now += 2 * SEC;
    long n = hammer(&t, "faultKy2", r, now, SEC / 10, SEC / 1000);
    CU_ASSERT_EQUAL(n, 10);
    /* Another process replaces the table (rename of a new one) while we
     * hold the old mapping: within a second we count on the new one. */
    rate_spec slow = {1, 3600, 10};
    pid_t pid = fork();
    if (pid == 0) {
        unlink(path);
        rate_table mine;
        rate_table_init(&mine, path);
        _exit(take(&mine, "faultKy3", slow, now, &a) == RATE_ALLOWED ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    now += 2 * SEC;
    /* faultKy3 took one cell in the new table: 8 remain after ours. */
    CU_ASSERT_EQUAL(take(&t, "faultKy3", slow, now, &a), RATE_ALLOWED);
    CU_ASSERT_EQUAL(a.remaining, 8);
    /* A FIFO planted at the path: refused without blocking. */
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_EQUAL(mkfifo(path, 0660), 0);
    now += 2 * SEC;
    CU_ASSERT_EQUAL(take(&t, "faultKy1", r, now, &a), RATE_UNAVAILABLE);
    CU_ASSERT_EQUAL(unlink(path), 0);
    /* No folder: unavailable with the reason. */
    rate_table bad;
    rate_table_init(&bad, "/nonexistent/folder/rate");
    CU_ASSERT_EQUAL(take(&bad, "faultKy1", r, now, &a), RATE_UNAVAILABLE);
    CU_ASSERT(strstr(err, "/nonexistent/folder/rate") != NULL);
    rate_table_free(&bad);
    rate_table_free(&t);
}

/* A table of an earlier boot (its times are of another clock) is replaced. */
static void test_other_boot(void)
{
    const char *path = path_of("boot");
    rate_table t;
    rate_table_init(&t, path);
    rate_spec r = {1, 3600, 1};
    CU_ASSERT_EQUAL(take(&t, "bootKey1", r, T0, NULL), RATE_ALLOWED);
    CU_ASSERT_EQUAL(take(&t, "bootKey1", r, T0 + 1, NULL), RATE_LIMITED);
    rate_table_free(&t);
    int fd = open(path, O_RDWR);
    CU_ASSERT_EQUAL_FATAL(pwrite(fd, "X", 1, 16), 1);
    close(fd);
    rate_table_init(&t, path);
    CU_ASSERT_EQUAL(take(&t, "bootKey1", r, T0 + 2, NULL), RATE_ALLOWED);
    rate_table_free(&t);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"N/s, N/min, N/h parsed strictly", test_parse},
        {"limit x period + burst at 10/s, 1,000/s, 100,000/s", test_counts},
        {"no twice the limit at a window edge; Retry-After", test_window_edge},
        {"four processes share a key's budget", test_processes},
        {"a full table evicts only idle keys", test_full_table},
        {"deleted, truncated, replaced: right or unavailable", test_faults},
        {"a table of an earlier boot is replaced", test_other_boot},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"ratelimit", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    int rc = tu_run(suites);
    free_paths();
    return rc;
}
