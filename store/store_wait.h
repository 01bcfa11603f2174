/* SPDX-License-Identifier: BSD-2-Clause */
/* For the file stores whose hosts trust what they last read for a short
 * while (the JSON index's header, SQLite's WAL index): a writer waits that
 * while out before it says done, so a check that starts after the write
 * returned reads anew (doc/STORES.md, "Hosts: what a check costs"). */
#ifndef APIKEY_STORE_WAIT_H
#define APIKEY_STORE_WAIT_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

static inline void store_wait_ns(long ns)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += ns;
    until.tv_sec += until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
}

/* The clock of the hosts' recheck: CLOCK_MONOTONIC_COARSE, the kernel's
 * time as of its last tick, one value that every process of the kernel
 * reads from the same page (a time namespace offsets it, never slows it).
 * It costs 3.5 ns against 28 ns for CLOCK_MONOTONIC under this project's
 * hypervisors, read on every check. It lags by up to a tick (4 ms at
 * 250 Hz), which does not matter: a writer waits on this same clock
 * (store_wait_for_hosts), never compares it with another. */
static inline int64_t store_recheck_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* After a write that hosts trust their last read of for up to a recheck
 * (shorter than wait_ns): until every host has read it anew, a check may
 * still trust what it read before. The wait is counted on the recheck
 * clock, read after the write; at most a tick more than the wait itself
 * (the coarse clock moves a tick at a time). It is also a full wait_ns of
 * CLOCK_MONOTONIC, which the hosts of earlier releases, still running after
 * an upgrade, recheck by.
 *
 * Why it is enough: the writer reads m on the recheck clock after the
 * write, and returns once that clock reads m + wait or more. A check that
 * begins after it returned reads c >= m + wait; if it trusts what it read
 * without reading again, that read began at b > c - recheck > m (wait >
 * recheck). The clock is one value for all and never goes back, so that
 * read began after the writer's reading of m, after the write, and saw
 * it. */
static inline void store_wait_for_hosts(long wait_ns)
{
    int64_t until = store_recheck_clock_ns() + wait_ns;
    store_wait_ns(wait_ns);
    for (int64_t now; (now = store_recheck_clock_ns()) < until;)
        store_wait_ns(until - now < 1000000 ? until - now : 1000000);
}

#endif
