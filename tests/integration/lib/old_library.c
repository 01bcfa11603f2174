/* SPDX-License-Identifier: BSD-2-Clause */
/* A libapikey.so.1 as a library older than the admin operations would be:
 * the real library's table cut before its first admin slot. Built by
 * tests/integration/authd_admin.sh with -DREAL="path of the real one". */
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

#include "apikey.h"

static apikey_api old;

__attribute__((visibility("default"))) const apikey_api *apikey_api_v1(void)
{
    void *real = dlopen(REAL, RTLD_NOW | RTLD_LOCAL);
    apikey_entry_fn entry = real ? (apikey_entry_fn)dlsym(real, APIKEY_ENTRY_SYMBOL) : NULL;
    if (!entry || !entry())
        return NULL;
    memcpy(&old, entry(), offsetof(apikey_api, open_with));
    old.size = offsetof(apikey_api, open_with);
    return &old;
}
