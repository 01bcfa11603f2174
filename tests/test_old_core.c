/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * An old core against today's backends, the mirror of test_old_backend: a
 * partial upgrade (the tools package alone, or dpkg's unpack window) can
 * leave the previous release's libapikey loading today's store backends.
 * That core hands a host table and records of store ABI 1: no
 * record_size, and an apikey_record without allow_from. Each backend built
 * (build/store/apikey_store_*.so, or $APIKEY_STORE_DIR) must refuse it at
 * open, with a line, and never write a record. Nothing of libapikey is
 * linked: the old core is played here, its table laid out as that release's
 * include/apikey_store.h had it.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apikey_store.h"
#include "testutil.h"

/* The previous release's host table, field for field. */
struct host_v1 {
    size_t size;
    void (*log_error)(const char *fmt, ...);
    int (*check_file)(int fd, const char *path, char *why, size_t whylen);
    int privileged;
};

/* Its record ended where allow_from now begins. */
#define RECORD_V1_SIZE offsetof(apikey_record, allow_from)

static char said[512];

static void log_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(said, sizeof said, fmt, ap);
    va_end(ap);
}

static const apikey_store_host today = TU_STORE_HOST(log_line);

static const apikey_store_ops *load(const char *scheme)
{
    const char *dir = getenv("APIKEY_STORE_DIR") ? getenv("APIKEY_STORE_DIR") : "build/store";
    char path[4200];
    snprintf(path, sizeof path, "%s/apikey_store_%s.so", dir, scheme);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    apikey_store_entry_fn entry = dl ? (apikey_store_entry_fn)dlsym(dl, APIKEY_STORE_ENTRY) : NULL;
    if (!entry)
        fprintf(stderr, "  %s not loaded: %s\n", path, dlerror());
    return entry ? entry() : NULL;
}

/* A store holding a key with a 16-entry IPv6 allowlist and one without,
 * written with today's host. */
static char *fill(const apikey_store_ops *ops, const char *scheme)
{
    char *uri = tu_new_store_uri_of(scheme), *loc = strdup(strchr(uri, ':') + 1);
    free(uri);
    void *h = NULL;
    CU_ASSERT_EQUAL_FATAL(ops->open(loc, 1, &today, &h), APIKEY_ST_OK);
    apikey_record r[2];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 2; i++) {
        memcpy(r[i].id, i ? "oldCore1" : "oldCore0", sizeof r[i].id);
        snprintf(r[i].account, sizeof r[i].account, "alice");
        snprintf(r[i].scopes, sizeof r[i].scopes, "proxies:read");
        r[i].created = 1800000000;
    }
    size_t used = 0;
    for (int i = 1; i <= 16; i++)
        used += (size_t)snprintf(r[0].allow_from + used, sizeof r[0].allow_from - used, "%s2001:db8:%x::/48",
                                 i > 1 ? " " : "", i);
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->insert(h, &r[0]), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->insert(h, &r[1]), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->commit(h), APIKEY_ST_OK);
    ops->close(h);
    return loc;
}

static sigjmp_buf fault;

static void on_fault(int sig)
{
    (void)sig;
    siglongjmp(fault, 1);
}

/* What the old core would go on to do had open passed: look a key up into
 * a record of its size, which here ends at an inaccessible page. */
static int writes_past(const apikey_store_ops *ops, void *h, const char *id)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t len = (RECORD_V1_SIZE + (size_t)page - 1) / (size_t)page * (size_t)page;
    char *map = mmap(NULL, len + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return -1;
    mprotect(map + len, (size_t)page, PROT_NONE);
    apikey_record *rec = (apikey_record *)(map + len - RECORD_V1_SIZE);
    struct sigaction sa = {.sa_handler = on_fault}, old;
    sigaction(SIGSEGV, &sa, &old);
    int past = 1;
    if (sigsetjmp(fault, 1) == 0) {
        ops->lookup(h, id, rec);
        past = 0;
    }
    sigaction(SIGSEGV, &old, NULL);
    munmap(map, len + (size_t)page);
    return past;
}

static void refused(const char *scheme)
{
    const apikey_store_ops *ops = load(scheme);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
    /* pgsql is refused before it connects: no server is needed here. */
    char *loc = strcmp(scheme, "pgsql") == 0 ? strdup("host=/nonexistent dbname=none") : fill(ops, scheme);
    /* Exactly the old table's size: a backend that read record_size
     * without checking size would read past it (ASan, valgrind). */
    struct host_v1 *old = malloc(sizeof *old);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    *old = (struct host_v1){.size = sizeof *old, .log_error = log_line, .check_file = tu_check_file};
    said[0] = '\0';
    void *h = (void *)&h;
    int st = ops->open(loc, 0, (const apikey_store_host *)old, &h);
    CU_ASSERT_EQUAL(st, APIKEY_ST_UNAVAILABLE);
    if (st == APIKEY_ST_OK) {
        CU_ASSERT_FALSE(writes_past(ops, h, "oldCore0")); /* the 16-entry list */
        CU_ASSERT_FALSE(writes_past(ops, h, "oldCore1"));
        ops->close(h);
    } else {
        CU_ASSERT_PTR_EQUAL(h, (void *)&h); /* left alone */
    }
    printf("\n  %s: %s\n", scheme, said);
    CU_ASSERT_PTR_NOT_NULL(strstr(said, "libapikey is older than this store backend"));
    free(old);

    /* Today's core still reads it, allowlist and all. */
    if (strcmp(scheme, "pgsql") != 0) {
        apikey_record out;
        h = NULL;
        CU_ASSERT_EQUAL_FATAL(ops->open(loc, 0, &today, &h), APIKEY_ST_OK);
        CU_ASSERT_EQUAL(ops->lookup(h, "oldCore0", &out), APIKEY_ST_OK);
        CU_ASSERT_PTR_NOT_NULL(strstr(out.allow_from, "2001:db8:10::/48"));
        ops->close(h);
    }
    free(loc);
}

static void test_json(void)
{
    refused("json");
}

static void test_sqlite(void)
{
    refused("sqlite");
}

static void test_pgsql(void)
{
    refused("pgsql");
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"json refuses a core of the previous release", test_json},
        {"sqlite refuses a core of the previous release", test_sqlite},
        {"pgsql refuses a core of the previous release", test_pgsql},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"old cores", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
