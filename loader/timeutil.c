/* SPDX-License-Identifier: BSD-2-Clause */
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reads a positive decimal count and returns the rest of the text. */
static const char *read_count(const char *text, long long *n)
{
    if (*text < '0' || *text > '9')
        return NULL;
    char *end;
    errno = 0;
    *n = strtoll(text, &end, 10);
    if (errno || *n < 0 || *n > 100000)
        return NULL;
    return end;
}

static int add_months(int64_t now, long long months, int64_t *out)
{
    time_t t = (time_t)now;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return -1;
    long long m = tm.tm_mon + months;
    tm.tm_year += (int)(m / 12);
    tm.tm_mon = (int)(m % 12);
    /* 31 January + 1 month is the last day of February, not 3 March. */
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = tm.tm_year + 1900;
    int last = mdays[tm.tm_mon] + (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (tm.tm_mday > last)
        tm.tm_mday = last;
    *out = (int64_t)timegm(&tm);
    return 0;
}

static int parse_date(const char *text, int64_t *out)
{
    int y, m, d;
    char tail;
    if (strlen(text) != 10 || sscanf(text, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return -1;
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d) /* 2027-02-30 */
        return -1;
    *out = (int64_t)t;
    return 0;
}

int timeutil_expiry(const char *text, int64_t now, int64_t *out)
{
    if (strcmp(text, "never") == 0) {
        *out = 0;
        return 0;
    }
    if (strchr(text, '-'))
        return parse_date(text, out);
    long long n;
    const char *unit = read_count(text, &n);
    if (!unit || !*unit || n == 0) /* "30" would be 30 seconds: surely not meant */
        return -1;
    return timeutil_after(text, now, out);
}

int timeutil_after(const char *text, int64_t now, int64_t *until)
{
    int64_t secs;
    if (timeutil_duration(text, &secs) == 0) {
        *until = now + secs;
        return 0;
    }
    long long n;
    const char *unit = read_count(text, &n);
    if (unit && strcmp(unit, "m") == 0)
        return add_months(now, n, until);
    if (unit && strcmp(unit, "y") == 0)
        return add_months(now, n * 12, until);
    return -1;
}

int timeutil_duration(const char *text, int64_t *secs)
{
    long long n;
    const char *unit = read_count(text, &n);
    if (!unit)
        return -1;
    static const struct { const char *name; int64_t secs; } units[] = {
        {"", 1}, {"s", 1}, {"min", 60}, {"h", 3600}, {"d", 86400}, {"w", 7 * 86400},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].name) == 0) {
            *secs = n * units[i].secs;
            return 0;
        }
    return -1;
}
