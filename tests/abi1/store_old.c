/* SPDX-License-Identifier: BSD-2-Clause */
/* A store backend built for store ABI 1, whose records were smaller (no
 * allow_from): test_old_backend checks that the core refuses to load it
 * rather than let it drop lists on write and read past its records. Only
 * its table matters; no slot is ever called. */
#include <stddef.h>

#include "apikey_store.h"

static int old_open(const char *location, int create, const apikey_store_host *host, void **handle)
{
    (void)location, (void)create, (void)host, (void)handle;
    return APIKEY_ST_UNAVAILABLE;
}
static void old_close(void *handle) { (void)handle; }
static int old_lookup(void *h, const char *id, apikey_record *out)
{
    (void)h, (void)id, (void)out;
    return APIKEY_ST_UNAVAILABLE;
}
static int old_each(void *h, const char *a, apikey_record_cb cb, void *arg)
{
    (void)h, (void)a, (void)cb, (void)arg;
    return APIKEY_ST_UNAVAILABLE;
}
static int old_begin(void *h) { (void)h; return APIKEY_ST_UNAVAILABLE; }
static int old_write(void *h, const apikey_record *r) { (void)h, (void)r; return APIKEY_ST_UNAVAILABLE; }
static int old_commit(void *h) { (void)h; return APIKEY_ST_UNAVAILABLE; }
static void old_rollback(void *h) { (void)h; }
static int old_touch(void *h, const char *id, int64_t when)
{
    (void)h, (void)id, (void)when;
    return APIKEY_ST_UNAVAILABLE;
}

static const apikey_store_ops ops = {
    .size = sizeof ops,
    .abi = 1,
    .scheme = "old",
    .open = old_open,
    .close = old_close,
    .lookup = old_lookup,
    .each = old_each,
    .begin = old_begin,
    .insert = old_write,
    .update = old_write,
    .commit = old_commit,
    .rollback = old_rollback,
    .touch = old_touch,
};

__attribute__((visibility("default"))) const apikey_store_ops *apikey_store_entry_v1(void)
{
    return &ops;
}
