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

/* Many keys busy at once in the default table (262,144 slots): none is
 * refused for want of a slot. With one slot per key about one in 130
 * was (two keys' ids hashed to one slot); a key now has a bucket of four. */
static void test_collisions(void)
{
    rate_table t;
    table(&t, "busy");
    rate_spec r = {1, 60, 1};
    char id[9];
    int unavailable = 0, limited = 0;
    for (unsigned i = 0; i < 4096; i++) {
        snprintf(id, sizeof id, "bz%06u", i % 1000000);
        unavailable += take(&t, id, r, T0, NULL) == RATE_UNAVAILABLE;
    }
    /* And each is still counted: busy, so limited. */
    for (unsigned i = 0; i < 4096; i++) {
        snprintf(id, sizeof id, "bz%06u", i % 1000000);
        limited += take(&t, id, r, T0 + SEC, NULL) == RATE_LIMITED;
    }
    CU_ASSERT_EQUAL(unavailable, 0);
    CU_ASSERT_EQUAL(limited, 4096);
    if (unavailable || limited != 4096)
        fprintf(stderr, "4096 busy keys: %d unavailable, %d limited\n", unavailable, limited);
    rate_table_free(&t);
}

/* A 16-slot table (4 buckets), 8 keys at a time in turn for 1.25 s each,
 * 4 processes at once on the real clock (a shared clock that processes read
 * a little apart, as hosts do): keys wait for a slot, take over idle ones,
 * race to claim a key's first slot. However that goes, no key is let in
 * more than its limit allows over its 1.25 s, counted over the processes. */
#define FULL_KEYS 32
static void test_full_never_over(void)
{
    const char *path = path_of("crowded");
    rate_spec r = {10, 1, 10};
    int64_t start = rate_now_ns(), window = SEC + SEC / 4;
    int fds[4][2];
    for (int p = 0; p < 4; p++) {
        CU_ASSERT_FATAL(pipe(fds[p]) == 0);
        if (fork() == 0) {
            rate_table mine;
            rate_table_init(&mine, path);
            mine.create_slots = 16;
            long n[FULL_KEYS + 1] = {0}; /* the last: unavailable */
            char id[9];
            for (int64_t now; (now = rate_now_ns()) < start + 4 * window;) {
                for (int k = 0; k < 8; k++) {
                    int key = (int)((now - start) / window) % 4 * 8 + k;
                    snprintf(id, sizeof id, "fk%06d", key % 100);
                    int d = take(&mine, id, r, rate_now_ns(), NULL);
                    n[d == RATE_UNAVAILABLE ? FULL_KEYS : key] += d != RATE_LIMITED;
                }
                usleep(500);
            }
            (void)!write(fds[p][1], n, sizeof n);
            rate_table_free(&mine);
            _exit(0);
        }
        close(fds[p][1]);
    }
    long n[FULL_KEYS + 1] = {0};
    for (int p = 0; p < 4; p++) {
        long part[FULL_KEYS + 1];
        CU_ASSERT(read(fds[p][0], part, sizeof part) == sizeof part);
        close(fds[p][0]);
        for (int k = 0; k <= FULL_KEYS; k++)
            n[k] += part[k];
        wait(NULL);
    }
    /* Burst 10 + 1.25 s at 10/s, and one for the window's rounding. */
    long over = 0, allowed = 0;
    for (int k = 0; k < FULL_KEYS; k++) {
        allowed += n[k];
        if (n[k] > 10 + 13 + 1) {
            over++;
            fprintf(stderr, "key %d: %ld let in over its 1.25 s at 10/s\n", k, n[k]);
        }
    }
    CU_ASSERT_EQUAL(over, 0);
    /* The table was crowded (some unavailable), and keys took idle slots
     * over: more keys got in than the table has slots. */
    int got_in = 0;
    for (int k = 0; k < FULL_KEYS; k++)
        got_in += n[k] > 0;
    CU_ASSERT(n[FULL_KEYS] > 0);
    CU_ASSERT(got_in > 16);
    if (n[FULL_KEYS] == 0 || got_in <= 16)
        fprintf(stderr, "%ld unavailable, %d keys got in\n", n[FULL_KEYS], got_in);
    unlink(path);
}

/* The slots of the bucket holding id in t's mapping (found by its live slot). */
static uint64_t *bucket_of(rate_table *t, const char *id)
{
    uint64_t key;
    memcpy(&key, id, 8);
    uint64_t *slots = (uint64_t *)((char *)t->map + 64);
    for (size_t i = 0; i < (t->map_len - 64) / 16; i++)
        if (slots[2 * i] == key)
            return slots + 2 * (i & ~(size_t)3);
    return NULL;
}

/* Claims left pending, as by a process killed between its two steps, or
 * racing another's claim of the same key: a pending claim is never counted
 * in. Beside a live slot of the key it is given back (the key's state is
 * the live one's); alone it becomes the key's slot; another key's, left
 * for over a second, is taken. */
static void test_pending(void)
{
    rate_table t;
    table(&t, "pending");
    rate_spec r = {1, 3600, 1};
    uint64_t pending = UINT64_C(1) << 63, key;
    memcpy(&key, "pendKey1", 8);
    CU_ASSERT_EQUAL(take(&t, "pendKey1", r, T0, NULL), RATE_ALLOWED);
    uint64_t *b = bucket_of(&t, "pendKey1");
    CU_ASSERT_FATAL(b != NULL);
    uint64_t live[2] = {0, 0};
    for (int i = 0; i < 4; i++)
        if (b[2 * i] == key)
            memcpy(live, b + 2 * i, 16);
    /* Busy in the last slot, pending in the first: still limited. */
    memset(b, 0, 64);
    memcpy(b + 6, live, 16);
    b[0] = key;
    b[1] = pending | (uint64_t)T0;
    CU_ASSERT_EQUAL(take(&t, "pendKey1", r, T0 + 1, NULL), RATE_LIMITED);
    CU_ASSERT(b[0] == 0 && b[1] == 0);
    CU_ASSERT_EQUAL(b[6], key);
    /* Pending alone (its claimer gone): the key's slot, idle from its claim. */
    memset(b, 0, 64);
    b[2] = key;
    b[3] = pending | (uint64_t)T0;
    CU_ASSERT_EQUAL(take(&t, "pendKey1", r, T0 + 2, NULL), RATE_ALLOWED);
    CU_ASSERT_EQUAL(take(&t, "pendKey1", r, T0 + 3, NULL), RATE_LIMITED);
    /* Three busy keys and another key's claim, left for over a second:
     * taken. Left for less: the key is unavailable. */
    for (int i = 0; i < 4; i++) {
        b[2 * i] = key + 1 + (uint64_t)i;
        b[2 * i + 1] = (uint64_t)(T0 + 3600 * SEC);
    }
    b[7] = pending | (uint64_t)T0;
    CU_ASSERT_EQUAL(take(&t, "pendKey1", r, T0 + SEC / 2, NULL), RATE_UNAVAILABLE);
    CU_ASSERT(strstr(err, "busy key") != NULL);
    CU_ASSERT_EQUAL(take(&t, "pendKey1", r, T0 + 2 * SEC, NULL), RATE_ALLOWED);
    CU_ASSERT_EQUAL(b[6], key);
    rate_table_free(&t);
}

/* A table of format 01 (one slot per key) is never read: it is replaced.
 * The new table says format 02, which a host of 01 refuses by its magic. */
static void test_old_format(void)
{
    const char *path = path_of("format");
    /* Format 01: the header, then 16 slots of one busy key each (a key
     * a day), whatever slot a host of 01 would look at. */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0660);
    char header[64] = "APIKRT01";
    uint32_t slots = 16;
    memcpy(header + 8, &slots, sizeof slots);
    CU_ASSERT_EQUAL_FATAL(pwrite(fd, header, sizeof header, 0), 64);
    for (unsigned i = 0; i < slots; i++) {
        uint64_t slot[2] = {0, (uint64_t)T0 + 86400 * (uint64_t)SEC};
        memcpy(&slot[0], "fmtKey01", 8);
        CU_ASSERT_EQUAL(pwrite(fd, slot, sizeof slot, 64 + 16 * i), 16);
    }
    close(fd);
    rate_table t;
    rate_table_init(&t, path);
    rate_spec r = {1, 3600, 1};
    CU_ASSERT_EQUAL(take(&t, "fmtKey01", r, T0, NULL), RATE_ALLOWED);
    CU_ASSERT_EQUAL(take(&t, "fmtKey01", r, T0 + 1, NULL), RATE_LIMITED);
    char magic[9] = "";
    fd = open(path, O_RDONLY);
    CU_ASSERT_EQUAL(pread(fd, magic, 8, 0), 8);
    close(fd);
    CU_ASSERT_STRING_EQUAL(magic, "APIKRT02");
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
    free(tu_write("faulty.new", "APIKRT02 short", 0660));
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

/* rate_prefetch: a table not yet opened is left alone (a host whose keys
 * have no limit never makes one), and a mapping whose file was truncated
 * under it, where a load would die of SIGBUS, is only a useless fetch. */
static void test_prefetch(void)
{
    rate_table t;
    table(&t, "prefetch");
    const char *path = path_of("prefetch");
    unlink(path);
    rate_prefetch(&t, "pfKey001");
    CU_ASSERT(access(path, F_OK) != 0);
    rate_spec r = {10, 1, 10};
    CU_ASSERT_EQUAL(take(&t, "pfKey001", r, T0, NULL), RATE_ALLOWED);
    CU_ASSERT_EQUAL_FATAL(truncate(path, 0), 0);
    for (unsigned i = 0; i < 1000; i++) {
        char id[16]; /* room for any unsigned: the sanitizer build checks truncation */
        snprintf(id, sizeof id, "pf%06u", i);
        rate_prefetch(&t, id);
    }
    /* Still here: the next check looks at the file again. */
    CU_ASSERT_NOT_EQUAL(take(&t, "pfKey001", r, T0 + 2 * SEC, NULL), RATE_LIMITED);
    rate_table_free(&t);
    unlink(path);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"N/s, N/min, N/h parsed strictly", test_parse},
        {"limit x period + burst at 10/s, 1,000/s, 100,000/s", test_counts},
        {"no twice the limit at a window edge; Retry-After", test_window_edge},
        {"four processes share a key's budget", test_processes},
        {"a full table evicts only idle keys", test_full_table},
        {"4,096 busy keys: none refused for want of a slot", test_collisions},
        {"a crowded table in 4 processes: no key over its limit", test_full_never_over},
        {"a table of format 01 is replaced, never read", test_old_format},
        {"a pending claim is never counted in", test_pending},
        {"deleted, truncated, replaced: right or unavailable", test_faults},
        {"a table of an earlier boot is replaced", test_other_boot},
        {"a prefetch opens nothing and never faults", test_prefetch},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"ratelimit", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    int rc = tu_run(suites);
    free_paths();
    return rc;
}
