/* SPDX-License-Identifier: BSD-2-Clause */
/* Warm verify: one open context, THREADS threads verifying KEYS (one per
 * line in KEYFILE) for SECONDS, after one untimed pass over every key (a
 * host's first look at a part of a store reads it into its copy: that
 * warm-up, its time printed on stderr, is not the steady state measured);
 * and the bound, a loop that only computes
 * SHA-256 of the same keys. Also the peak RSS of the context. With
 * from=ADDR, each check goes through apikey_verify_with with that client
 * address (keys with an allowlist).
 * usage: verify_loop CONFIG SERVICE KEYFILE THREADS SECONDS [sha|rss|from=ADDR]
 * Prints verifications (or hashes) per second of the wall clock; with
 * VERIFY_LOOP_PER_CPU=1 in the environment, per CPU second of a worker
 * thread times THREADS: what the threads do with a core each, whatever
 * else the shared machine ran meanwhile. Exits 1 on a refusal. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "apikey.h"

static apikey_ctx *ctx;
static const char *service;
static char **keys;
static size_t nkeys;
static double seconds;
static int sha_only, failed;
static const char *client; /* from=ADDR */
static EVP_MD *sha256; /* fetched once, as libapikey does */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One check, as the row asks for: 1 when allowed. */
static int check(const char *k)
{
    if (client) {
        apikey_verify_request q = {.size = sizeof q, .service = service, .key = k,
                                   .keylen = strlen(k), .client_addr = client};
        apikey_verdict v = {.size = sizeof v};
        return apikey_verify_with(ctx, &q, &v) == APIKEY_ALLOWED;
    }
    apikey_result res;
    return apikey_verify(ctx, service, NULL, k, strlen(k), &res) == APIKEY_ALLOWED;
}

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long cpu_used_ns; /* by the workers */

static void *worker(void *arg)
{
    long *count = arg;
    double end = now() + seconds, cpu = thread_cpu();
    /* Threads start apart; the index wraps by a compare, not a division
     * (a 64-bit divide per check was the loop's, not the check's, cost). */
    size_t i = (size_t)(uintptr_t)count * 7919 % nkeys;
    unsigned char md[32];
    unsigned int mdlen;
    while (now() < end) {
        for (int b = 0; b < 256; b++, i = i + 1 == nkeys ? 0 : i + 1) {
            const char *k = keys[i];
            if (sha_only)
                EVP_Digest(k, strlen(k), md, &mdlen, sha256, NULL);
            else if (!check(k))
                failed = 1;
        }
        *count += 256;
    }
    cpu = thread_cpu() - cpu;
    __atomic_fetch_add((long *)&cpu_used_ns, (long)(cpu * 1e9), __ATOMIC_RELAXED);
    return NULL;
}

/* A line "NAME: N kB" of a /proc/self file, in kB; -1 when absent. */
static long proc_kb(const char *file, const char *name)
{
    FILE *f = fopen(file, "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static long peak_rss_kb(void)
{
    return proc_kb("/proc/self/status", "VmHWM");
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: verify_loop CONFIG SERVICE KEYFILE THREADS SECONDS [sha|rss|from=ADDR]\n");
        return 2;
    }
    service = argv[2];
    int threads = atoi(argv[4]);
    seconds = atof(argv[5]);
    sha_only = argc > 6 && strcmp(argv[6], "sha") == 0;
    int rss_only = argc > 6 && strcmp(argv[6], "rss") == 0;
    if (argc > 6 && strncmp(argv[6], "from=", 5) == 0)
        client = argv[6] + 5;
    FILE *f = fopen(argv[3], "r");
    if (!f)
        return 2;
    char line[256];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (nkeys == cap) {
            cap = cap ? cap * 2 : 1024;
            keys = realloc(keys, cap * sizeof *keys);
        }
        keys[nkeys++] = strdup(line);
    }
    fclose(f);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    long before = peak_rss_kb();
    char err[512];
    if (!sha_only && !(ctx = apikey_open(argv[1], err, sizeof err))) {
        fprintf(stderr, "verify_loop: %s\n", err);
        return 2;
    }
    if (rss_only) {
        /* The context's own footprint: open it, verify every key once. */
        for (size_t i = 0; i < nkeys; i++) {
            apikey_result res;
            if (apikey_verify(ctx, service, NULL, keys[i], strlen(keys[i]), &res) != APIKEY_ALLOWED)
                return 1;
        }
        printf("%ld\n", (peak_rss_kb() - before) * 1024);
        return 0;
    }
    if (!sha_only) {
        double began = now();
        for (size_t i = 0; i < nkeys; i++)
            if (!check(keys[i]))
                failed = 1;
        fprintf(stderr, "verify_loop: warm-up, every key once: %.3f s\n", now() - began);
    }
    pthread_t t[64];
    long counts[64] = {0};
    for (int i = 0; i < threads && i < 64; i++)
        pthread_create(&t[i], NULL, worker, &counts[i]);
    long total = 0;
    for (int i = 0; i < threads && i < 64; i++) {
        pthread_join(t[i], NULL);
        total += counts[i];
    }
    /* On a shared machine the wall-clock rate varies with the others' load;
     * per CPU second, much less. */
    double per_cpu = cpu_used_ns > 0 ? total / (cpu_used_ns / 1e9) : 0;
    const char *mode = getenv("VERIFY_LOOP_PER_CPU");
    printf("%.0f\n", mode && strcmp(mode, "1") == 0 ? per_cpu * threads : total / seconds);
    if (cpu_used_ns > 0)
        fprintf(stderr, "verify_loop: %.0f per CPU second of the workers\n", per_cpu);
    /* Whether the copy of the index took huge pages (the TLB misses of a
     * check, where perf cannot count them). */
    if (!sha_only)
        fprintf(stderr, "verify_loop: AnonHugePages %ld kB\n", proc_kb("/proc/self/smaps_rollup", "AnonHugePages"));
    apikey_close(ctx);
    return failed;
}
