/* SPDX-License-Identifier: BSD-2-Clause */
/* A fleet's hosts checking in a loop while the store of record changes
 * (bench/fleet.sh). One thread per host, each checking the key under
 * watch every INTERVAL_MS through the host's own interface:
 *   helper:CONF           the Squid helper, build/basic_apikey_auth, on a pipe
 *   pam:CONFDIR           PAM logins through build/pam_try -l, on a pipe
 *   nginx:PORT:PATH       the nginx module, HTTP/1.1 kept alive on loopback
 * Modes:
 *   revoke N    N keys of KEYFILE, one at a time: each accepted by every
 *               host, then revoked (apikey_revoke returned: COMMIT
 *               acknowledged); the time to the first refusal on each host
 *   create N    N new keys: COMMIT to the first acceptance on every host
 *   churn RATE SECONDS WATCH BATCH  RATE changes a second while KEYFILE's
 *               first WATCH keys are revoked and watched as in revoke:
 *               with BATCH 1, revocations of the keys after them, one a
 *               transaction (the first 8 of them revoked by the 8 writers
 *               before the clock, to warm their sessions); else new keys,
 *               BATCH a transaction
 * usage: propagation MODE ARG... RECORD_CONFIG SERVICE ACCOUNT KEYFILE INTERVAL_MS [HOST...]
 * (churn with no host and WATCH 0: what the writers alone sustain)
 * Prints "p50 p99 max" (ms) of every (host, key) pair, then one line per
 * host kind, then for churn "rate achieved/s" and the writers' lateness
 * (see report_late); exits 1 when a key stays accepted (or refused, for
 * create) 10 s. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apikey.h"

enum { MAX_HOSTS = 64, MAX_KEYS = 1 << 20 };

typedef struct host {
    char spec[512];
    char kind[8];
    int in, out; /* pipe to the host, and its answers; or the socket */
    FILE *answers;
    int port;
    char path[256];
    pthread_t thread;
    /* The key under watch as this host last answered it. */
    int answered;           /* key index */
    int allowed;            /* its answer */
    double first_refused;   /* when it first refused the key under watch */
    double first_accepted;
} host;

static host hosts[MAX_HOSTS];
static int nhosts, interval_us;
static const char *account, *service;
static char **keys;
static int nkeys;
static int watch = -1; /* key index under watch, atomically */
static int stopping;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "propagation: %s\n", what);
    exit(2);
}

static void spawn(host *h, char *const argv[])
{
    int to[2], from[2];
    if (pipe(to) != 0 || pipe(from) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    h->in = to[1];
    h->answers = fdopen(from[0], "r");
}

static void nginx_connect(host *h)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)h->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    h->in = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(h->in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(h->in, (struct sockaddr *)&a, sizeof a) != 0)
        die("cannot connect to nginx");
    h->answers = fdopen(dup(h->in), "r");
}

static void start(host *h)
{
    char conf[512];
    if (sscanf(h->spec, "helper:%511s", conf) == 1) {
        strcpy(h->kind, "helper");
        char *argv[] = {"build/basic_apikey_auth", "--config", conf, "--service", (char *)service, NULL};
        spawn(h, argv);
    } else if (sscanf(h->spec, "pam:%511s", conf) == 1) {
        strcpy(h->kind, "pam");
        char *argv[] = {"build/pam_try", "-l", conf, "fleet", (char *)account, NULL};
        spawn(h, argv);
    } else if (sscanf(h->spec, "nginx:%d:%255s", &h->port, h->path) == 2) {
        strcpy(h->kind, "nginx");
        nginx_connect(h);
    } else {
        die("a host is helper:CONF, pam:CONFDIR or nginx:PORT:PATH");
    }
}

/* 1 allowed, 0 refused, -1 neither (unavailable, an error). */
static int check(host *h, const char *key)
{
    char line[1024];
    if (h->kind[0] == 'n') {
        int status = -1;
        long length = 0;
        /* nginx closes a connection after keepalive_requests: once more on a new one. */
        for (int tries = 0; status < 0 && tries < 2; tries++) {
            if (tries) {
                fclose(h->answers);
                close(h->in);
                nginx_connect(h);
            }
            dprintf(h->in, "GET %s HTTP/1.1\r\nHost: fleet\r\nAuthorization: Bearer %s\r\n\r\n", h->path, key);
            if (!fgets(line, sizeof line, h->answers) || sscanf(line, "HTTP/1.1 %d", &status) != 1)
                status = -1;
        }
        if (status < 0)
            die("nginx does not answer");
        while (fgets(line, sizeof line, h->answers) && strcmp(line, "\r\n") != 0)
            if (strncasecmp(line, "Content-Length:", 15) == 0)
                length = atol(line + 15);
        for (; length > 0; length--)
            fgetc(h->answers);
        return status == 200 ? 1 : status == 401 || status == 403 ? 0 : -1;
    }
    if (h->kind[0] == 'h')
        dprintf(h->in, "%s %s\n", account, key);
    else
        dprintf(h->in, "%s\n", key);
    if (!fgets(line, sizeof line, h->answers))
        die("a host stopped answering");
    if (h->kind[0] == 'p')
        return strcmp(line, "let in\n") == 0;
    return strncmp(line, "OK", 2) == 0 ? 1 : strncmp(line, "ERR", 3) == 0 ? 0 : -1;
}

static void *checker(void *arg)
{
    host *h = arg;
    while (!__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) {
        int k = __atomic_load_n(&watch, __ATOMIC_ACQUIRE);
        if (k >= 0) {
            int a = check(h, keys[k]);
            double t = now_ms();
            pthread_mutex_lock(&lock);
            if (h->answered != k) {
                h->answered = k;
                h->first_refused = h->first_accepted = 0;
            }
            h->allowed = a;
            if (a == 0 && !h->first_refused)
                h->first_refused = t;
            if (a == 1 && !h->first_accepted)
                h->first_accepted = t;
            pthread_mutex_unlock(&lock);
        }
        usleep((useconds_t)interval_us);
    }
    return NULL;
}

/* Until every host has answered key k with want (its first such answer
 * recorded): 1, or 0 after limit_ms. */
static int all_answered(int k, int want, double limit_ms)
{
    double t0 = now_ms();
    for (;;) {
        int n = 0;
        pthread_mutex_lock(&lock);
        for (int i = 0; i < nhosts; i++)
            n += hosts[i].answered == k && (want ? hosts[i].first_accepted : hosts[i].first_refused) != 0;
        pthread_mutex_unlock(&lock);
        if (n == nhosts)
            return 1;
        if (now_ms() - t0 > limit_ms)
            return 0;
        usleep(200);
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *label, double *lat, int n)
{
    if (!n)
        return;
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    int p99 = (n * 99) / 100 < n ? (n * 99) / 100 : n - 1;
    printf("%s %.1f %.1f %.1f %d\n", label, lat[n / 2], lat[p99], lat[n - 1], n);
}

/* Latencies of every host, and by kind, from t0 (COMMIT acknowledged) to
 * each host's first answer want; a host that answered before the
 * acknowledgement arrived (the NOTIFY raced it) counts 0. */
static double *lat_all;
static int nlat;
static void record(double t0, int want)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nhosts; i++) {
        double d = (want ? hosts[i].first_accepted : hosts[i].first_refused) - t0;
        lat_all[nlat++] = d > 0 ? d : 0;
        if (getenv("PROPAGATION_SLOW") && d > atof(getenv("PROPAGATION_SLOW")))
            fprintf(stderr, "propagation: %s took %.1f ms (at %.1f)\n", hosts[i].spec, d, t0);
    }
    pthread_mutex_unlock(&lock);
}

static void report_all(void)
{
    double *copy = malloc(sizeof *copy * (size_t)(nlat + 1));
    memcpy(copy, lat_all, sizeof *copy * (size_t)nlat);
    report("all", copy, nlat);
    const char *kinds[] = {"helper", "pam", "nginx"};
    for (int k = 0; k < 3; k++) {
        int n = 0;
        for (int j = 0; j < nlat; j++)
            if (strcmp(hosts[j % nhosts].kind, kinds[k]) == 0)
                copy[n++] = lat_all[j];
        report(kinds[k], copy, n);
    }
    free(copy);
}

static apikey_ctx *record_ctx;
static const char *record_conf;
static int churn_rate, churn_done, split, churn_batch;
static double churn_seconds;

/* RATE revocations a second from CHURNERS threads, each on its own
 * connection (a writer waits for the store of record's round trips, not
 * for a core), paced against the clock: a late one is sent at once, so
 * the rate achieved says what the store took. The clock starts once every
 * writer has connected: opening 8 sessions at once on a loaded machine
 * took tens of milliseconds, which the writers then had to catch up
 * within the 10 s, so the rate said something of connecting too. */
enum { CHURNERS = 8 };
static double churn_t0;
/* Each write of the schedule (a revocation, or a batch): when it was due,
 * and when its COMMIT was acknowledged (0: never sent), from churn_t0. */
static double *slot_due, *slot_acked;
static int nslots;
static pthread_barrier_t churn_ready;
static void *churner(void *arg)
{
    int t = (int)(long)arg;
    char err[512], id[16];
    apikey_ctx *ctx = apikey_open_with(record_conf, APIKEY_OPEN_CONNECT, err, sizeof err);
    if (!ctx)
        die(err);
    /* One revocation of its own before the clock: a writer's first write
     * also loads the session's catalog caches and compiles the change
     * log's trigger, which a long-lived writer has done long before. */
    if (churn_batch <= 1 && split + t < nkeys) {
        snprintf(id, sizeof id, "%.11s", keys[split + t]);
        if (apikey_revoke(ctx, id, err, sizeof err) != APIKEY_OK)
            die(err);
    }
    pthread_barrier_wait(&churn_ready); /* connected and warm */
    pthread_barrier_wait(&churn_ready); /* churn_t0 set */
    if (churn_batch > 1) {
        /* One writer, a batch of new keys every 1/10 s. */
        size_t b = (size_t)churn_batch;
        apikey_create_request *reqs = calloc(b, sizeof *reqs);
        apikey_issued *out = calloc(b, sizeof *out);
        for (size_t j = 0; j < b; j++) {
            reqs[j] = (apikey_create_request){.size = sizeof *reqs, .account = "churn", .name = "c",
                                              .scopes = "proxies:read", .expires = "never"};
            out[j].size = sizeof *out;
        }
        for (int round = 0; t == 0; round++) {
            double wait = churn_t0 + round * 1000.0 * churn_batch / churn_rate - now_ms();
            if (wait > 0)
                usleep((useconds_t)(wait * 1000));
            if (now_ms() - churn_t0 >= churn_seconds * 1000)
                break;
            if (apikey_create_batch(ctx, reqs, b, out, err, sizeof err) != APIKEY_OK)
                die(err);
            if (round < nslots)
                slot_acked[round] = now_ms() - churn_t0;
            apikey_wipe(out, b * sizeof *out);
            for (size_t j = 0; j < b; j++)
                out[j].size = sizeof *out;
            __atomic_add_fetch(&churn_done, churn_batch, __ATOMIC_RELEASE);
        }
        free(reqs);
        free(out);
    }
    /* The schedule's keys follow the watched ones and the writers' own. */
    const int first = split + CHURNERS;
    for (int i = first + t; churn_batch <= 1 && i < nkeys; i += CHURNERS) {
        double wait = churn_t0 + (double)(i - first) * 1000.0 / churn_rate - now_ms();
        if (wait > 0)
            usleep((useconds_t)(wait * 1000));
        if (now_ms() - churn_t0 >= churn_seconds * 1000)
            break;
        snprintf(id, sizeof id, "%.11s", keys[i]);
        if (apikey_revoke(ctx, id, err, sizeof err) != APIKEY_OK)
            die(err);
        slot_acked[i - first] = now_ms() - churn_t0;
        __atomic_add_fetch(&churn_done, 1, __ATOMIC_RELEASE);
    }
    apikey_close(ctx);
    return NULL;
}

/* Whether the writers fall behind steadily or pay one tail at the end:
 * "late AT_S BACKLOG MS" at 2, 5 and 9 s of the schedule and at its end
 * (BACKLOG the writes due by then and not yet acknowledged, MS the same in
 * milliseconds of the schedule: a backlog that grows is a rate not
 * sustained), "late tail MS UNSENT" (how long after the schedule's end the
 * last writer was done, and the writes due that never went out as the
 * clock ran out), "late max MS AT_S" (the worst acknowledged minus due of
 * any write, and when it was due) and "late p50 MS" (of the acknowledged
 * writes: a write on time still shows its own round trips), "late
 * each-half-second N..." (writes acknowledged in each 0.5 s). */
static void report_late(double end_ms)
{
    double span = churn_seconds * 1000, per = slot_due[1] > 0 ? slot_due[1] : 1;
    double per_write = (double)(churn_batch > 1 ? churn_batch : 1);
    int n = 0, unsent = 0, nacked = 0;
    while (n < nslots && slot_due[n] < span)
        n++;
    if (!n)
        return;
    double *late = malloc(sizeof *late * (size_t)n), worst = 0, worst_at = 0;
    for (int j = 0; j < n; j++) {
        unsent += !slot_acked[j];
        if (!slot_acked[j])
            continue;
        late[nacked++] = slot_acked[j] - slot_due[j];
        if (late[nacked - 1] > worst)
            worst = late[nacked - 1], worst_at = slot_due[j];
    }
    const double at[] = {2000, 5000, 9000, span};
    const char *names[] = {"2", "5", "9", "end"};
    for (int c = 0; c < 4; c++) {
        if (at[c] > span) { /* a schedule shorter than that */
            printf("late %s - -\n", names[c]);
            continue;
        }
        int backlog = 0;
        for (int j = 0; j < n && slot_due[j] <= at[c]; j++)
            backlog += !slot_acked[j] || slot_acked[j] > at[c];
        printf("late %s %.0f %.1f\n", names[c], backlog * per_write, backlog * per);
    }
    /* Writes acknowledged in each half second: a slow start, a steady
     * shortfall or a stall. */
    int buckets[64] = {0}, nb = (int)(end_ms / 500) + 1;
    nb = nb < 64 ? nb : 64;
    for (int j = 0; j < n; j++)
        if (slot_acked[j] && (int)(slot_acked[j] / 500) < nb)
            buckets[(int)(slot_acked[j] / 500)]++;
    printf("late each-half-second");
    for (int b = 0; b < nb; b++)
        printf(" %.0f", buckets[b] * per_write);
    printf("\n");
    /* Sustained: writes acknowledged from the schedule's second second to
     * its end, a second. On schedule that is the rate asked; a fleet that
     * falls behind steadily shows less, and one that catches up a slow
     * first second may show a little more. */
    int steady = 0;
    for (int j = 0; j < n; j++)
        steady += slot_acked[j] >= 1000 && slot_acked[j] <= span;
    printf("late steady %.0f\n", span > 1000 ? steady * per_write / ((span - 1000) / 1000) : 0.0);
    printf("late tail %.1f %.0f\n", end_ms - span, unsent * per_write);
    printf("late max %.1f %.2f\n", worst, worst_at / 1000);
    qsort(late, (size_t)nacked, sizeof *late, cmp);
    printf("late p50 %.1f\n", nacked ? late[nacked / 2] : 0.0);
    free(late);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* bench/fleet.sh may point this driver's writers at another build's
     * library (FLEET_BEFORE); the hosts it starts stay on their own. */
    unsetenv("LD_LIBRARY_PATH");
    if (argc < 3)
        die("usage: propagation revoke N|create N|churn RATE SECONDS WATCH BATCH RECORD_CONFIG SERVICE ACCOUNT KEYFILE INTERVAL_MS HOST...");
    const char *mode = argv[1];
    int n = atoi(argv[2]), a = 3;
    if (strcmp(mode, "churn") == 0) {
        churn_rate = n;
        churn_seconds = atof(argv[a++]);
        split = atoi(argv[a++]);
        churn_batch = atoi(argv[a++]);
    }
    if (argc - a < 5)
        die("too few arguments");
    record_conf = argv[a++];
    service = argv[a++];
    account = argv[a++];
    const char *keyfile = argv[a++];
    interval_us = (int)(atof(argv[a++]) * 1000);
    char err[512], line[256];
    record_ctx = apikey_open_with(record_conf, APIKEY_OPEN_CONNECT, err, sizeof err);
    if (!record_ctx)
        die(err);
    keys = calloc(MAX_KEYS, sizeof *keys);
    FILE *f = strcmp(mode, "create") ? fopen(keyfile, "r") : NULL;
    while (f && nkeys < MAX_KEYS && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        keys[nkeys++] = strdup(line);
    }
    if (f)
        fclose(f);
    for (; a < argc && nhosts < MAX_HOSTS; a++) {
        host *h = &hosts[nhosts++];
        snprintf(h->spec, sizeof h->spec, "%s", argv[a]);
        h->answered = -1;
        start(h);
        pthread_create(&h->thread, NULL, checker, h);
    }
    lat_all = calloc((size_t)(n + 64) * (size_t)(nhosts + 1) * 2, sizeof *lat_all);
    int bad = 0, done = 0;
    double churn_end = 0;
    if (strcmp(mode, "create") == 0) {
        for (int i = 0; i < n && !bad; i++) {
            apikey_create_request req = {.size = sizeof req, .account = account, .name = "fleet-new",
                                         .scopes = "proxies:read", .expires = "never"};
            apikey_issued out = {.size = sizeof out};
            if (apikey_create(record_ctx, &req, &out, err, sizeof err) != APIKEY_OK)
                die(err);
            double t0 = now_ms();
            keys[nkeys] = strdup(out.key);
            apikey_wipe(&out, sizeof out);
            __atomic_store_n(&watch, nkeys++, __ATOMIC_RELEASE);
            bad = !all_answered(nkeys - 1, 1, 10000);
            record(t0, 1);
        }
    } else {
        /* The hosts' first checks (each opens its replica, PAM its first
         * login) before the clock starts, as the writers' connections: begun
         * with the clock they held the writers back for its first second
         * (5-15 writes acknowledged in the first half second against 270
         * with no host; bench/RESULTS.md). The first key under watch is
         * then accepted everywhere, and the loop below goes on from it. */
        if (churn_rate && split > 0) {
            __atomic_store_n(&watch, 0, __ATOMIC_RELEASE);
            all_answered(0, 1, 2000);
        }
        pthread_t churn[CHURNERS];
        /* The schedule: a revocation of each key after split, or a batch
         * every churn_batch / churn_rate s. */
        nslots = churn_batch > 1 ? (int)(churn_seconds * churn_rate / churn_batch) + 1 : nkeys - split - CHURNERS;
        nslots = nslots > 0 ? nslots : 0;
        slot_due = calloc((size_t)nslots + 1, sizeof *slot_due);
        slot_acked = calloc((size_t)nslots + 1, sizeof *slot_acked);
        for (int j = 0; j < nslots; j++)
            slot_due[j] = (double)j * 1000.0 * (churn_batch > 1 ? churn_batch : 1) / churn_rate;
        pthread_barrier_init(&churn_ready, NULL, CHURNERS + 1);
        double t_connect = now_ms();
        for (long t = 0; churn_rate && t < CHURNERS; t++)
            pthread_create(&churn[t], NULL, churner, (void *)t);
        if (churn_rate)
            pthread_barrier_wait(&churn_ready);
        churn_t0 = now_ms();
        if (churn_rate) {
            fprintf(stderr, "propagation: %d writers connected and warmed (one revocation each) in %.1f ms\n", CHURNERS, churn_t0 - t_connect);
            pthread_barrier_wait(&churn_ready);
        }
        if (!churn_rate)
            split = nkeys;
        for (int i = 0; i < split && !bad && (churn_rate ? now_ms() - churn_t0 < churn_seconds * 1000 : done < n); i++) {
            __atomic_store_n(&watch, i, __ATOMIC_RELEASE);
            if (!all_answered(i, 1, 2000))
                continue; /* not on every replica yet, or already revoked */
            char id[16];
            snprintf(id, sizeof id, "%.11s", keys[i]);
            if (apikey_revoke(record_ctx, id, err, sizeof err) != APIKEY_OK)
                die(err);
            double t0 = now_ms();
            bad = !all_answered(i, 0, 10000);
            record(t0, 0);
            done++;
        }
        /* The watched keys while the churn lasts, then the churn's end. */
        for (int t = 0; churn_rate && t < CHURNERS; t++)
            pthread_join(churn[t], NULL);
        churn_end = now_ms() - churn_t0;
    }
    __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < nhosts; i++) {
        pthread_join(hosts[i].thread, NULL);
        if (hosts[i].kind[0] != 'n')
            close(hosts[i].in);
    }
    if (bad)
        fprintf(stderr, "propagation: a host did not answer as expected within 10 s\n");
    report_all();
    if (churn_rate) {
        printf("rate %.0f\n", churn_done / (churn_end / 1000));
        report_late(churn_end);
    }
    apikey_close(record_ctx);
    while (wait(NULL) > 0)
        ;
    return bad;
}
