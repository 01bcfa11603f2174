/* SPDX-License-Identifier: BSD-2-Clause */
/* A fast client of tests/integration/ratelimit.sh, for the 100,000/s row
 * that forked logins and Python cannot ask at: asks with one key (on
 * stdin) at most RATE times a second until DEADLINE (Unix time), and
 * prints one JSON line as rate_driver.py does, but with the number let in
 * and the first and last times they were let in, not every time.
 *
 * usage: rate_load library RATE DEADLINE CONFIG SERVICE
 *          apikey_verify in this process (libapikey, as any host)
 *        rate_load helper RATE DEADLINE HELPER CONFIG SERVICE ACCOUNT
 *          lines piped in bulk to one basic_apikey_auth (up to 256 not yet
 *          answered), the answers read by a second thread
 * Built by the test itself: cc -Iinclude ... -lapikey -lpthread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apikey.h"

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct {
    long asked, in, other;
    double first, last;
    char other_what[128];
} run;

static void answered_at(double t);

/* An answer came: let in or not. */
static void answered(int in)
{
    double t = unix_now();
    answered_at(t);
    if (!in)
        return;
    if (run.in++ == 0)
        run.first = t;
    run.last = t;
}

/* How many answers came in each millisecond (Unix time), in order: the
 * demand the limit met, for the test to replay. */
static struct {
    long long ms;
    long n;
} *answered_ms;
static size_t n_ms, cap_ms;

static void answered_at(double t)
{
    long long ms = (long long)(t * 1000);
    if (n_ms && answered_ms[n_ms - 1].ms == ms) {
        answered_ms[n_ms - 1].n++;
        return;
    }
    if (n_ms == cap_ms) {
        void *more = realloc(answered_ms, (cap_ms = cap_ms ? 2 * cap_ms : 4096) * sizeof *answered_ms);
        if (!more)
            abort();
        answered_ms = more;
    }
    answered_ms[n_ms].ms = ms;
    answered_ms[n_ms++].n = 1;
}

static void note(const char *what)
{
    if (run.other++ == 0) {
        snprintf(run.other_what, sizeof run.other_what, "%s", what);
        for (char *c = run.other_what; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                *c = '\''; /* JSON-safe */
    }
}

static FILE *to_helper, *from_helper;

/* Asks through ask() paced at rate until deadline: whatever the pace fell
 * behind is asked at once, then a short sleep, so no core is spun. */
static void pace(double rate, double deadline, void (*ask)(void))
{
    double start = unix_now();
    for (double now = start; now < deadline; now = unix_now()) {
        long due = (long)((now - start) * rate) + 1;
        /* Behind the pace: catch up, but never past the deadline. */
        while (run.asked < due && ((run.asked & 1023) || unix_now() < deadline)) {
            run.asked++;
            ask();
        }
        if (to_helper)
            fflush(to_helper);
        usleep(200);
    }
}

static apikey_ctx *ctx;
static const char *service;
static char key[256];

static void ask_library(void)
{
    apikey_result res;
    int in = apikey_verify(ctx, service, NULL, key, strlen(key), &res) == APIKEY_ALLOWED;
    answered(in);
    if (!in && res.reason != APIKEY_REASON_RATE)
        note(apikey_reason_string(res.reason));
}

static char line[512];

/* Answers read: at most WINDOW lines wait in the pipes, so the helper
 * answers while the others ask, not a backlog long after them. */
static long read_back;
#define WINDOW 256

static void ask_helper(void)
{
    while (run.asked - __atomic_load_n(&read_back, __ATOMIC_ACQUIRE) > WINDOW) {
        fflush(to_helper);
        usleep(100);
    }
    fputs(line, to_helper);
}

static void *read_answers(void *arg)
{
    (void)arg;
    char got[256];
    while (fgets(got, sizeof got, from_helper)) {
        got[strcspn(got, "\n")] = '\0';
        __atomic_add_fetch(&read_back, 1, __ATOMIC_RELEASE);
        answered(strcmp(got, "OK") == 0);
        if (strcmp(got, "OK") != 0 && strcmp(got, "ERR message=\"rate limited\"") != 0)
            note(got);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 6 || !fgets(key, sizeof key, stdin)) {
        fprintf(stderr, "usage: rate_load library|helper RATE DEADLINE ARGS... (the key on stdin)\n");
        return 2;
    }
    key[strcspn(key, "\n")] = '\0';
    double rate = atof(argv[2]), deadline = atof(argv[3]);
    char err[512];
    if (strcmp(argv[1], "library") == 0) {
        service = argv[5];
        if (!(ctx = apikey_open(argv[4], err, sizeof err))) {
            fprintf(stderr, "rate_load: %s\n", err);
            return 1;
        }
        pace(rate, deadline, ask_library);
        apikey_close(ctx);
    } else if (strcmp(argv[1], "helper") == 0 && argc == 8) {
        int in[2], out[2];
        if (pipe(in) || pipe(out))
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            dup2(in[0], 0);
            dup2(out[1], 1);
            close(in[1]);
            close(out[0]);
            execl(argv[4], argv[4], "--config", argv[5], "--service", argv[6], (char *)NULL);
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        to_helper = fdopen(in[1], "w");
        from_helper = fdopen(out[0], "r");
        snprintf(line, sizeof line, "%s %s\n", argv[7], key);
        pthread_t reader;
        pthread_create(&reader, NULL, read_answers, NULL);
        pace(rate, deadline, ask_helper);
        fclose(to_helper);
        pthread_join(reader, NULL);
        waitpid(pid, NULL, 0);
    } else {
        fprintf(stderr, "rate_load: unknown mode %s\n", argv[1]);
        return 2;
    }
    explicit_bzero(key, sizeof key);
    explicit_bzero(line, sizeof line);
    printf("{\"mode\": \"%s\", \"asked\": %ld, \"in\": %ld, \"first\": %.6f, \"last\": %.6f, "
           "\"other\": {",
           argv[1], run.asked, run.in, run.first, run.last);
    if (run.other)
        printf("\"%s\": %ld", run.other_what, run.other);
    printf("}, \"answered_ms\": [");
    for (size_t i = 0; i < n_ms; i++)
        printf("%s[%lld, %ld]", i ? ", " : "", answered_ms[i].ms, answered_ms[i].n);
    printf("]}\n");
    free(answered_ms);
    return 0;
}
