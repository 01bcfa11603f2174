/* Where libapikey's messages go, and the services handed to store backends. */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "core.h"
#include "secfile.h"

static int to_stderr;
/* An admin call's buffer for a backend's line, on this thread only. */
static __thread char *report;
static __thread size_t report_len;

void core_log_to_stderr(int on)
{
    to_stderr = on;
}

static void vlog(int priority, const char *fmt, va_list ap)
{
    if (to_stderr) {
        fputs("apikey: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    } else {
        vsyslog(LOG_AUTHPRIV | priority, fmt, ap);
    }
}

void core_log(int priority, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(priority, fmt, ap);
    va_end(ap);
}

void core_report_to(char *buf, size_t len)
{
    report = buf;
    report_len = len;
    if (buf)
        buf[0] = '\0';
}

/* The first line is the cause; what follows it (a rollback failing after a
 * lost connection) adds nothing the caller can act on. */
static void store_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void store_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (report && !report[0])
        vsnprintf(report, report_len, fmt, ap);
    else if (!report)
        vlog(LOG_ERR, fmt, ap);
    va_end(ap);
}

const apikey_store_host core_store_host = {
    .size = sizeof(apikey_store_host),
    .log_error = store_log_error,
    .check_file = secfile_check,
};
