/* SPDX-License-Identifier: BSD-2-Clause */
/* Per-key rate limits by GCRA (generic cell rate algorithm) in one table
 * shared by every process of a host: a file mapped MAP_SHARED (default
 * /run/apikey/rate), a key id in one 16-byte slot of a bucket of four,
 * updated lock-free.
 * A leaf module: it knows nothing of the context, the store or the
 * configuration. doc/ARCHITECTURE.md ("Rate limits") gives the trust model. */
#ifndef APIKEY_RATELIMIT_H
#define APIKEY_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* A key's limit: limit cells per period seconds, at most burst at once. */
typedef struct rate_spec {
    uint32_t limit;  /* 0: no limit */
    uint32_t period; /* seconds: 1, 60 or 3600 */
    uint32_t burst;  /* 1..RATE_BURST_MAX */
} rate_spec;

#define RATE_LIMIT_MAX 1000000u
#define RATE_BURST_MAX 1000000u

/* Parse "N/s", "N/min", "N/h" (N in 1..RATE_LIMIT_MAX) into limit and
 * period, burst = limit. 0, or -1 with err. */
int rate_parse(const char *text, rate_spec *out, char *err, size_t errlen);
/* "N/s", "N/min", "N/h" of a spec with a limit, else "". */
void rate_format(const rate_spec *r, char *out, size_t len);

enum { RATE_ALLOWED = 0, RATE_LIMITED = 1, RATE_UNAVAILABLE = 2 };

typedef struct rate_answer {
    uint32_t remaining;   /* cells left at once after this one (allowed) */
    uint32_t retry_after; /* seconds before a cell is free again (limited), >= 1 */
} rate_answer;

/* A process's view of the table. Safe to use from several threads. */
typedef struct rate_table {
    pthread_rwlock_t lock; /* readers take cells; the writer (re)maps */
    char *path;
    int fd;
    void *map;
    size_t map_len;
    uint32_t mask;       /* buckets - 1 (four slots each) */
    int64_t checked_ns;  /* when the file's identity was last checked */
    uint32_t create_slots; /* the slots of a table this process makes */
    char err[256];       /* why the table is unavailable, "" else */
} rate_table;

/* Slots in a table this build creates unless told (rate_slots); a table
 * keeps its own count, read from its header. */
#define RATE_SLOTS_DEFAULT (1u << 18)
#define RATE_SLOTS_MIN 16u
#define RATE_SLOTS_MAX (1u << 24)

void rate_table_init(rate_table *t, const char *path);
void rate_table_free(rate_table *t);
/* The monotonic clock the table counts in, ns. */
int64_t rate_now_ns(void);
/* Take one cell of key id's (8 bytes) limit at now_ns. RATE_ALLOWED with
 * remaining, RATE_LIMITED with retry_after, or RATE_UNAVAILABLE (the table
 * cannot be opened or mapped, or every slot of the key's bucket is held by
 * another key that is not idle) with the reason in err. Opens or follows the file as
 * needed: its identity is checked again at most once a second. */
/* Start fetching key id's bucket into the cache, when the table is mapped,
 * so that a rate_take a little later does not wait on memory. Never blocks
 * or faults; a table not yet opened is left alone. */
void rate_prefetch(rate_table *t, const char id[8]);
int rate_take(rate_table *t, const char id[8], const rate_spec *r, int64_t now_ns,
              rate_answer *out, char *err, size_t errlen);

#endif
