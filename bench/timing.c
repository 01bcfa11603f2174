/* SPDX-License-Identifier: BSD-2-Clause */
/* Timing: an unknown id against a wrong secret for a known id. Both must
 * cost the same (a hash and a constant-time compare), so that a caller
 * cannot learn which ids exist. Interleaved batches, medians compared.
 * usage: timing CONFIG SERVICE KEYFILE ROUNDS
 * Prints: unknown-id ns, wrong-secret ns, difference %. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apikey.h"
#include "keycodec.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    apikey_ctx *ctx = apikey_open(argv[1], NULL, 0);
    FILE *f = fopen(argv[3], "r");
    if (!ctx || !f)
        return 2;
    enum { N = 256 };
    char unknown[N][APIKEY_KEY_MAX], wrong[N][APIKEY_KEY_MAX], line[128];
    /* Known ids spread over the whole store, as the unknown ids' neighbours
     * are: the first keys created sit together in a table's pages, and
     * would find them cached where a random record is not. */
    long lines = 0, step;
    while (fgets(line, sizeof line, f))
        lines++;
    step = lines / N > 0 ? lines / N : 1;
    rewind(f);
    for (long l = 0, i = 0; i < N && fgets(line, sizeof line, f); l++) {
        if (l % step != 0)
            continue;
        char id[APIKEY_ID_LEN + 1];
        memcpy(id, line + 3, APIKEY_ID_LEN);
        id[APIKEY_ID_LEN] = '\0';
        keycodec_make("ak", id, wrong[i]); /* its id, another secret */
        /* A random id, spread as real ids are; in a store of a million keys
         * the chance that it exists is one in two hundred million. */
        keycodec_random62(id, APIKEY_ID_LEN);
        keycodec_make("ak", id, unknown[i]);
        i++;
    }
    fclose(f);
    int rounds = atoi(argv[4]);
    double *tu = malloc(rounds * sizeof *tu), *tw = malloc(rounds * sizeof *tw);
    apikey_result res;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        for (int i = 0; i < N; i++)
            apikey_verify(ctx, argv[2], NULL, unknown[i], strlen(unknown[i]), &res);
        double t1 = now_ns();
        for (int i = 0; i < N; i++)
            apikey_verify(ctx, argv[2], NULL, wrong[i], strlen(wrong[i]), &res);
        double t2 = now_ns();
        tu[r] = (t1 - t0) / N;
        tw[r] = (t2 - t1) / N;
    }
    qsort(tu, rounds, sizeof *tu, cmp);
    qsort(tw, rounds, sizeof *tw, cmp);
    double mu = tu[rounds / 2], mw = tw[rounds / 2];
    printf("%.0f %.0f %.1f\n", mu, mw, (mu - mw) / mw * 100);
    return 0;
}
