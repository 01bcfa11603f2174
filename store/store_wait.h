/* SPDX-License-Identifier: BSD-2-Clause */
/* For the file stores whose hosts trust what they last read for a short
 * while (the JSON index's header, SQLite's WAL index): a writer waits that
 * while out before it says done, so a check that starts after the write
 * returned reads anew (doc/STORES.md, "Hosts: what a check costs"). Each
 * process compares only its own CLOCK_MONOTONIC readings. */
#ifndef APIKEY_STORE_WAIT_H
#define APIKEY_STORE_WAIT_H

#include <errno.h>
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

#endif
