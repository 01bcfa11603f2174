/* SPDX-License-Identifier: BSD-2-Clause */
/* Expiry presets and durations. */
#ifndef APIKEY_TIMEUTIL_H
#define APIKEY_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* --expires: 30d, 90d, 6m, 1y (any N with d, w, m = months, y), never, or
 * YYYY-MM-DD (midnight UTC). *out is 0 for never. Returns 0 or -1 when the
 * text is not an expiry. Does not check that it lies in the future. */
int timeutil_expiry(const char *text, int64_t now, int64_t *out);

/* --grace and granularities: N, Ns, Nmin, Nh, Nd, Nw. Returns 0 or -1. */
int timeutil_duration(const char *text, int64_t *secs);

#endif
