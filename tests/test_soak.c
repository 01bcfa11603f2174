/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A concurrency soak on one store ($APIKEY_TEST_STORE): four writer
 * processes create, rotate and revoke keys; two verifier processes check
 * keys all the while; a fifth writer is killed with SIGKILL at random
 * moments. Afterwards every acknowledged write is there, no verifier saw a
 * torn or unavailable store or a revoked key granted, and the store loads.
 * APIKEY_SOAK_SECONDS sets the length (default 15). A writer runs on past
 * it until it has MIN_WRITES acknowledged (the soak must have written
 * something to check, however slow the machine: under sanitizers on shared
 * cores four writers once acknowledged 14 keys in 15 s), within 20 times
 * the length; the verifiers run until every writer has ended.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define LIVE 6
#define DEAD 6
#define MIN_WRITES 8

static char *cfg;
static char live[LIVE][64], dead[DEAD][64];
static double seconds;
static char done_mark[600]; /* made once every writer has ended */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int create(const char *account, char *key)
{
    char *out = NULL;
    int rc = tu_apikey(cfg, NULL, &out, NULL, "create", account, "--name", "soak", "--scopes", "proxies:read", NULL);
    if (rc == 0)
        snprintf(key, 64, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    return rc;
}

static int verify(const char *key)
{
    char line[80];
    snprintf(line, sizeof line, "%.64s\n", key);
    char *err = NULL;
    int rc = tu_apikey(cfg, line, NULL, &err, "verify", "--service", "sshd", NULL);
    if (rc == 2)
        fprintf(stderr, "verify: %s", err ? err : "?\n");
    free(err);
    return rc;
}

static char *id_of(const char *key, char *buf)
{
    snprintf(buf, 16, "%.11s", key);
    return buf;
}

/* A writer: its acknowledged operations go to its log, one a line:
 * "live KEY" or "dead KEY", the final word on each key it touched. */
static void writer(int n, const char *log)
{
    FILE *f = fopen(log, "w");
    setvbuf(f, NULL, _IOLBF, 0);
    char mine[256][64];
    int count = 0;
    char account[32];
    snprintf(account, sizeof account, "writer%d", n);
    srand((unsigned)getpid());
    double end = now() + seconds, last = now() + 20 * seconds;
    while ((now() < end || count < MIN_WRITES) && now() < last && count < 250) {
        int op = count < 3 ? 0 : rand() % 3;
        char id[16];
        if (op == 0) {
            if (create(account, mine[count]) == 0)
                fprintf(f, "live %s\n", mine[count++]);
        } else {
            int pick = rand() % count;
            if (mine[pick][0] == '\0')
                continue;
            if (op == 1) {
                char *out = NULL;
                if (tu_apikey(cfg, NULL, &out, NULL, "rotate", id_of(mine[pick], id), NULL) == 0) {
                    fprintf(f, "dead %s\n", mine[pick]);
                    snprintf(mine[count], 64, "%.*s", (int)strcspn(out, "\n"), out);
                    fprintf(f, "live %s\n", mine[count++]);
                    mine[pick][0] = '\0';
                }
                free(out);
            } else if (tu_apikey(cfg, NULL, NULL, NULL, "revoke", id_of(mine[pick], id), NULL) == 0) {
                fprintf(f, "dead %s\n", mine[pick]);
                mine[pick][0] = '\0';
            }
        }
    }
    fclose(f);
    _exit(0);
}

/* The victim: creates keys and is killed mid-command at random. */
static void victim(const char *log)
{
    FILE *f = fopen(log, "w");
    setvbuf(f, NULL, _IOLBF, 0);
    srand((unsigned)getpid());
    double end = now() + seconds;
    while (now() < end) {
        int p[2];
        if (pipe(p))
            _exit(3);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(p[1], 1);
            close(p[0]);
            execl("build/apikey", "apikey", "--config", cfg, "create", "victim", "--name", "v",
                  "--scopes", "proxies:read", (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        usleep((useconds_t)(rand() % 8000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        char buf[128] = "";
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        if (n > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            fprintf(f, "live %.*s\n", (int)strcspn(buf, "\n"), buf);
    }
    fclose(f);
    _exit(0);
}

/* A verifier: a revoked key never passes, a live one never meets a torn
 * or unavailable store. Exits with the number of violations. */
static void verifier(void)
{
    int bad = 0, rc;
    while (access(done_mark, F_OK) != 0) {
        for (int i = 0; i < DEAD; i++)
            if ((rc = verify(dead[i])) != 1) {
                fprintf(stderr, "verifier: revoked key %.11s not refused (exit %d)\n", dead[i], rc);
                bad++;
            }
        for (int i = 0; i < LIVE; i++)
            if ((rc = verify(live[i])) != 0) {
                fprintf(stderr, "verifier: live key %.11s not allowed (exit %d)\n", live[i], rc);
                bad++;
            }
    }
    _exit(bad > 100 ? 100 : bad);
}

static void test_soak(void)
{
    char *uri = tu_new_store_uri();
    cfg = tu_config(uri, "max_keys_per_account = 100000", "sshd = proxies:read\n");
    for (int i = 0; i < LIVE; i++)
        CU_ASSERT_EQUAL_FATAL(create("steady", live[i]), 0);
    for (int i = 0; i < DEAD; i++) {
        char id[16];
        CU_ASSERT_EQUAL_FATAL(create("gone", dead[i]), 0);
        CU_ASSERT_EQUAL_FATAL(tu_apikey(cfg, NULL, NULL, NULL, "revoke", id_of(dead[i], id), NULL), 0);
    }
    pid_t pids[7];
    char logs[5][600];
    snprintf(done_mark, sizeof done_mark, "%s/soak.done", tu_tmpdir());
    for (int w = 0; w < 5; w++) {
        snprintf(logs[w], sizeof logs[w], "%s/soak-%d.log", tu_tmpdir(), w);
        if ((pids[w] = fork()) == 0) {
            if (w < 4)
                writer(w, logs[w]);
            victim(logs[w]);
        }
    }
    for (int v = 5; v < 7; v++)
        if ((pids[v] = fork()) == 0)
            verifier();
    int violations = 0;
    for (int i = 0; i < 7; i++) {
        int status;
        if (i == 5)
            fclose(fopen(done_mark, "w"));
        waitpid(pids[i], &status, 0);
        if (i >= 5)
            violations += WIFEXITED(status) ? WEXITSTATUS(status) : 100;
    }
    CU_ASSERT_EQUAL(violations, 0);
    /* Every acknowledged write is there. */
    int checked = 0, wrong = 0;
    for (int w = 0; w < 5; w++) {
        FILE *f = fopen(logs[w], "r");
        char state[8], key[80];
        /* The last word on a key wins: replay each log into a small table. */
        static char keys[2048][64];
        static int alive[2048];
        int n = 0;
        while (f && fscanf(f, "%7s %79s", state, key) == 2) {
            int at = -1;
            for (int i = 0; i < n; i++)
                if (strcmp(keys[i], key) == 0)
                    at = i;
            if (at < 0 && n < 2048) {
                at = n++;
                snprintf(keys[at], 64, "%.63s", key);
            }
            if (at >= 0)
                alive[at] = strcmp(state, "live") == 0;
        }
        if (f)
            fclose(f);
        for (int i = 0; i < n; i++) {
            int rc = verify(keys[i]);
            checked++;
            if (rc != (alive[i] ? 0 : 1)) {
                fprintf(stderr, "after the soak: %.11s should be %s, verify says %d\n", keys[i],
                        alive[i] ? "live" : "revoked", rc);
                wrong++;
            }
        }
    }
    printf("(%d acknowledged keys checked after %.0f s) ", checked, seconds);
    CU_ASSERT(checked >= 4 * MIN_WRITES);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", "--all", NULL), 0);
    free(uri);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    seconds = getenv("APIKEY_SOAK_SECONDS") ? atof(getenv("APIKEY_SOAK_SECONDS")) : 15;
    CU_TestInfo tests[] = {{"writers, verifiers and a killed writer at once", test_soak}, CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"soak", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
