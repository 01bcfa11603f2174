/* SPDX-License-Identifier: BSD-2-Clause */
/* The services handed to store backends. A backend's error line is kept
 * here, on the thread whose call it failed, never printed or logged: the
 * call hands it to its caller (err, or apikey_verdict.error) and only the
 * adapters - PAM module, helper, command, nginx module - say it, each in its
 * own way. */
#include <stdarg.h>
#include <stdio.h>

#include "core.h"
#include "hot_path.h"
#include "secfile.h"

static __thread char line[512];
/* Whether any thread has ever kept a line. Until then no thread's line can
 * hold anything, and a check touches no thread-local storage: in a library
 * that hosts dlopen, each touch is a call to __tls_get_addr and two more
 * pages (doc/ARCHITECTURE.md, "The check's footprint"). A thread sets it
 * before keeping its own line, so it never reads 0 past a line of its own. */
static int line_kept;

HOT_PATH void core_store_line_clear(void)
{
    if (__atomic_load_n(&line_kept, __ATOMIC_RELAXED))
        line[0] = '\0';
}

HOT_PATH const char *core_store_line(void)
{
    return __atomic_load_n(&line_kept, __ATOMIC_RELAXED) ? line : "";
}

/* The first line is the cause; what follows it (a rollback failing after a
 * lost connection) adds nothing the caller can act on. */
static void store_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void store_log_error(const char *fmt, ...)
{
    if (line[0])
        return;
    __atomic_store_n(&line_kept, 1, __ATOMIC_RELAXED);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One line, whatever a server's message held: adapters write it to
     * logs that are read a line at a time. */
    size_t n = 0;
    for (char *c = line; *c; c++, n++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    while (n > 0 && line[n - 1] == ' ')
        line[--n] = '\0';
}

const apikey_store_host core_store_host = {
    .size = sizeof(apikey_store_host),
    .log_error = store_log_error,
    .check_file = secfile_check,
    .record_size = sizeof(apikey_record),
};
