/* SPDX-License-Identifier: BSD-2-Clause */
/* Expiry presets and durations. */
#ifndef APIKEY_TIMEUTIL_H
#define APIKEY_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* --expires: a span of timeutil_after with its unit (30d, 90d, 6m, 1y,
 * 24h), never, or YYYY-MM-DD (midnight UTC). *out is 0 for never. Returns 0
 * or -1 when the text is not an expiry. Does not check that it lies in the
 * future. */
int timeutil_expiry(const char *text, int64_t now, int64_t *out);

/* --expiring and --grace: the end of a span that starts now, N followed by
 * s, min, h, d, w, m (calendar months) or y (years); N alone is seconds.
 * The same spans as --expires, so that what one option takes the other
 * does. Returns 0 or -1. */
int timeutil_after(const char *text, int64_t now, int64_t *until);

/* Granularities of the configuration: N, Ns, Nmin, Nh, Nd, Nw (no calendar
 * unit: a fixed number of seconds). Returns 0 or -1. */
int timeutil_duration(const char *text, int64_t *secs);

#endif
