/* SPDX-License-Identifier: BSD-2-Clause */
/* GET /metrics: decisions by service and reason. A service gets its own
 * label only when it is in [services] of a configuration the daemon loaded,
 * so a client that asks for /verify/<anything> cannot grow the set; every
 * other name counts under "(unmapped)" (service names cannot hold
 * parentheses). Rows are never freed, so counters survive reloads; past
 * AUTHD_MAX_ROWS configured names, the rest count under "(other)". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authd.h"

#define AUTHD_MAX_ROWS 1024
/* One counter per reason this daemon knows, and the last for any other. */
#define AUTHD_NREASONS (APIKEY_REASON_RATE + 2)
#define AUTHD_REASON_OTHER (AUTHD_NREASONS - 1)

struct authd_counters {
    char service[129];
    unsigned long n[AUTHD_NREASONS];
};

static struct authd_counters rows[AUTHD_MAX_ROWS] = {{"(unmapped)", {0}}, {"(other)", {0}}};
static size_t nrows = 2;
static pthread_mutex_t rows_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long reloads[2]; /* failed, done */

/* Prometheus label values for the reasons: stable, unlike English text. */
static const char *const reason_label[AUTHD_NREASONS] = {
    [APIKEY_REASON_NONE] = "allowed",
    [APIKEY_REASON_MALFORMED] = "malformed",
    [APIKEY_REASON_UNKNOWN] = "unknown",
    [APIKEY_REASON_WRONG_ACCOUNT] = "wrong_account",
    [APIKEY_REASON_EXPIRED] = "expired",
    [APIKEY_REASON_REVOKED] = "revoked",
    [APIKEY_REASON_MISSING_SCOPE] = "missing_scope",
    [APIKEY_REASON_UNMAPPED] = "unmapped",
    [APIKEY_REASON_STORE] = "store",
    [APIKEY_REASON_CONFIG] = "config",
    [APIKEY_REASON_NOMEM] = "nomem",
    [APIKEY_REASON_ARGUMENT] = "argument",
    [APIKEY_REASON_ADDRESS] = "address",
    [APIKEY_REASON_MISSING] = "missing_key",
    [APIKEY_REASON_RATE] = "rate_limited",
    [AUTHD_REASON_OTHER] = "other",
};

struct authd_counters *authd_counters_unmapped(void)
{
    return &rows[0];
}

/* Called when a configuration is loaded, never for a request. */
struct authd_counters *authd_counters_for(const char *service)
{
    struct authd_counters *c = &rows[1];
    pthread_mutex_lock(&rows_lock);
    for (size_t i = 2; i < nrows; i++)
        if (strcmp(rows[i].service, service) == 0) {
            c = &rows[i];
            goto done;
        }
    if (nrows < AUTHD_MAX_ROWS && strlen(service) < sizeof c->service) {
        c = &rows[nrows];
        memcpy(c->service, service, strlen(service) + 1);
        /* Published after its name: the text reads nrows without the lock. */
        __atomic_store_n(&nrows, nrows + 1, __ATOMIC_RELEASE);
    }
done:
    pthread_mutex_unlock(&rows_lock);
    return c;
}

void authd_count(struct authd_counters *c, apikey_reason reason)
{
    unsigned r = (unsigned)reason < AUTHD_REASON_OTHER ? (unsigned)reason : AUTHD_REASON_OTHER;
    __atomic_fetch_add(&c->n[r], 1, __ATOMIC_RELAXED);
}

void authd_count_reload(int ok)
{
    __atomic_fetch_add(&reloads[ok ? 1 : 0], 1, __ATOMIC_RELAXED);
}

/* With `replica =`: lag and last change applied while its contact line
 * reads, and whether checks trust it (0 too when the line cannot be read:
 * checks then ask the store of record). */
static void replica_metrics(FILE *f, apikey_status st, const apikey_replica_state *r)
{
    if (st == APIKEY_E_INVALID || (st == APIKEY_OK && !r))
        return;
    if (st == APIKEY_OK)
        fprintf(f,
                "# HELP apikey_authd_replica_lag_seconds Time since the replica's last confirmed contact with the store of record.\n"
                "# TYPE apikey_authd_replica_lag_seconds gauge\n"
                "apikey_authd_replica_lag_seconds %.3f\n"
                "# HELP apikey_authd_replica_max_lag_seconds replica_max_lag: past it, checks ask the store of record.\n"
                "# TYPE apikey_authd_replica_max_lag_seconds gauge\n"
                "apikey_authd_replica_max_lag_seconds %.3f\n"
                "# HELP apikey_authd_replica_last_change The last change of the store of record applied to the replica.\n"
                "# TYPE apikey_authd_replica_last_change gauge\n"
                "apikey_authd_replica_last_change %lld\n",
                (double)r->lag_ms / 1000, (double)r->max_lag_ms / 1000, (long long)r->last_change);
    fprintf(f,
            "# HELP apikey_authd_replica_trusted 1 while checks read the replica, 0 while they ask the store of record.\n"
            "# TYPE apikey_authd_replica_trusted gauge\n"
            "apikey_authd_replica_trusted %d\n",
            st == APIKEY_OK && r->trusted);
}

char *authd_metrics_text(apikey_status replica, const apikey_replica_state *rs, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    fputs("# HELP apikey_authd_decisions_total Answers of /verify by service and reason.\n"
          "# TYPE apikey_authd_decisions_total counter\n",
          f);
    size_t n = __atomic_load_n(&nrows, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < AUTHD_NREASONS; r++) {
            unsigned long v = __atomic_load_n(&rows[i].n[r], __ATOMIC_RELAXED);
            if (v)
                fprintf(f, "apikey_authd_decisions_total{service=\"%s\",reason=\"%s\"} %lu\n",
                        rows[i].service, reason_label[r], v);
        }
    fprintf(f,
            "# HELP apikey_authd_reloads_total Configuration reloads by outcome.\n"
            "# TYPE apikey_authd_reloads_total counter\n"
            "apikey_authd_reloads_total{result=\"done\"} %lu\n"
            "apikey_authd_reloads_total{result=\"failed\"} %lu\n",
            __atomic_load_n(&reloads[1], __ATOMIC_RELAXED),
            __atomic_load_n(&reloads[0], __ATOMIC_RELAXED));
    replica_metrics(f, replica, rs);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
