/* SPDX-License-Identifier: BSD-2-Clause */
/* Helpers shared by the CUnit test programs: temporary folders, config
 * files, running the real apikey command. */
#ifndef APIKEY_TESTUTIL_H
#define APIKEY_TESTUTIL_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <CUnit/Basic.h>

#include "apikey.h"
#include "apikey_store.h"

/* A fresh private folder under $TMPDIR; removed by tu_cleanup(). */
const char *tu_tmpdir(void);
void tu_cleanup(void);
/* Write text to dir/name with mode; returns the malloc'd path. */
char *tu_write(const char *name, const char *text, int mode);
/* dir/name in the private folder (malloc'd). */
char *tu_path(const char *name);
/* Lines in s (NULL: 0). */
int tu_count_lines(const char *s);
/* A new key of account with scope proxies:read, through the apikey
 * command (fails the test when it cannot); malloc'd, no newline. */
char *tu_create_key(const char *config, const char *account);
/* key checked for the service "sshd" on an open context. In line: the
 * programs that load libapikey at run time (test_host_admin,
 * test_host_dlopen) link testutil.c without it. */
static inline apikey_decision tu_verify_key(apikey_ctx *ctx, const char *key, apikey_result *res)
{
    return apikey_verify(ctx, "sshd", NULL, key, strlen(key), res);
}
/* Read a whole file (NULL when missing); *len gets its size. */
char *tu_read(const char *path, size_t *len);
/* Standard error of this process (and of the children it starts) into a
 * file, from begin until end, which returns what was written (malloc'd). */
void tu_stderr_begin(void);
char *tu_stderr_end(void);
/* How many times needle occurs in haystack. */
int tu_count(const char *haystack, const char *needle);

/* The store URI the suite runs against: $APIKEY_TEST_STORE names its
 * scheme: json (the default), sqlite, pgsql (needs $APIKEY_TEST_PG, a
 * conninfo prefix, and a fresh database per call) or any other, whose
 * backend is $APIKEY_STORE_DIR/apikey_store_<scheme>.so and whose fresh
 * location is $APIKEY_TEST_STORE_LOCATION with %d replaced by a new number
 * (default: a new path in the run's temporary folder). */
char *tu_new_store_uri(void);
/* The same for a given kind; whether that kind can run here (its backend
 * built and, for pgsql, the harness's variables set). */
char *tu_new_store_uri_of(const char *kind);
int tu_store_available(const char *kind);
/* A config file for store uri with the default catalogue and these services. */
char *tu_config(const char *store_uri, const char *extra_top, const char *services);

/* Run build/apikey with the config and args; stdin_text may be NULL.
 * Returns the exit status; *out and *err (may be NULL) get what it printed. */
int tu_apikey(const char *config, const char *stdin_text, char **out, char **err, ...)
    __attribute__((sentinel));

/* `apikey list` with config exits 2, saying why in one line. */
void tu_expect_refusal(const char *config, const char *why);

/* A record as a store holds it, made now, never expiring, with these texts
 * copied as they are (no check: tests plant what the library refuses). */
void tu_record(apikey_record *rec, const char *id, const char *account, const char *name, const char *scopes);

/* For tests that load a store backend themselves: a host as the core makes
 * one (apikey_store.h), logging through log. Its
 * check_file, tu_check_file, refuses what is not a private regular file;
 * the core's refuses more (owners, folders), which is enough here. */
int tu_check_file(int fd, const char *path, char *why, size_t whylen);
#define TU_STORE_HOST(log)                                                                   \
    {                                                                                        \
        .size = sizeof(apikey_store_host), .log_error = (log), .check_file = tu_check_file, \
        .record_size = sizeof(apikey_record),                                                \
    }

/* build/basic_apikey_auth on pipes, as Squid runs it. */
typedef struct tu_helper {
    int pid;
    FILE *to, *from;
} tu_helper;
tu_helper tu_helper_start(const char *config, const char *service, int concurrency);
/* Close its input and wait: its wait status. */
int tu_helper_stop(tu_helper *h);
/* Send one line (printf-style, the newline added) and return the answer
 * line without its newline, in a static buffer; "(no answer)" when none. */
const char *tu_helper_ask(tu_helper *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run a suite array; returns the process exit code. */
int tu_run(CU_SuiteInfo *suites);

#endif
