/* SPDX-License-Identifier: BSD-2-Clause */
/* Revocation propagation in a fleet: revoke a key in the store of record
 * (apikey_revoke returns once COMMIT is acknowledged), then check it on a
 * host reading the replica until it is refused; N times, a key each.
 * usage: propagation RECORD_CONFIG HOST_CONFIG SERVICE KEYFILE N
 * Prints "p50 p99 max" in ms; exits 1 when a key stays accepted 10 s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apikey.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: propagation RECORD_CONFIG HOST_CONFIG SERVICE KEYFILE N\n");
        return 2;
    }
    char err[512], line[256];
    apikey_ctx *record = apikey_open_with(argv[1], APIKEY_OPEN_CONNECT, err, sizeof err);
    apikey_ctx *host = record ? apikey_open(argv[2], err, sizeof err) : NULL;
    FILE *f = fopen(argv[4], "r");
    int n = atoi(argv[5]);
    double *lat = calloc((size_t)n + 1, sizeof *lat);
    if (!record || !host || !f || !lat) {
        fprintf(stderr, "propagation: %s\n", err);
        return 2;
    }
    int done = 0;
    while (done < n && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        apikey_result res;
        if (apikey_verify(host, argv[3], NULL, line, strlen(line), &res) != APIKEY_ALLOWED)
            continue; /* not on the replica yet, or already revoked */
        char id[16];
        snprintf(id, sizeof id, "%.11s", line);
        if (apikey_revoke(record, id, err, sizeof err) != APIKEY_OK) {
            fprintf(stderr, "propagation: revoke: %s\n", err);
            return 2;
        }
        double t0 = now_ms();
        while (apikey_verify(host, argv[3], NULL, line, strlen(line), &res) == APIKEY_ALLOWED)
            if (now_ms() - t0 > 10000) {
                fprintf(stderr, "propagation: a revoked key still accepted after 10 s\n");
                return 1;
            }
        lat[done++] = now_ms() - t0;
    }
    qsort(lat, (size_t)done, sizeof *lat, cmp);
    if (!done)
        return 2;
    printf("%.1f %.1f %.1f\n", lat[done / 2], lat[(done * 99) / 100 < done ? (done * 99) / 100 : done - 1],
           lat[done - 1]);
    apikey_close(host);
    apikey_close(record);
    return 0;
}
