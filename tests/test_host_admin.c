/* SPDX-License-Identifier: BSD-2-Clause */
/* The admin operations as a host sees them: only include/apikey.h, the
 * library dlopened by its soname, every admin slot driven through the
 * table on a real store, and each error status with its HTTP mapping. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apikey.h"
#include "testutil.h"

#define SERVICES "web = proxies:read\nbilling = balance:read\n"

static const apikey_api *api;

static void test_load(void)
{
    void *lib = dlopen("build/" APIKEY_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        fprintf(stderr, "%s\n", dlerror());
    CU_ASSERT_PTR_NOT_NULL_FATAL(lib);
    apikey_entry_fn entry = (apikey_entry_fn)dlsym(lib, APIKEY_ENTRY_SYMBOL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
    api = entry();
    CU_ASSERT_PTR_NOT_NULL_FATAL(api);
    CU_ASSERT(APIKEY_API_HAS(api, http_status));
    CU_ASSERT(APIKEY_API_HAS(api, open_with));
    CU_ASSERT(APIKEY_API_HAS(api, wipe));
}

/* An older library: its table ends earlier, and the host sees it. */
static void test_older_table(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(api);
    apikey_api old = *api;
    old.size = offsetof(apikey_api, open_with);
    CU_ASSERT(APIKEY_API_HAS(&old, http_status));
    CU_ASSERT(!APIKEY_API_HAS(&old, open_with));
    CU_ASSERT(!APIKEY_API_HAS(&old, create));
    CU_ASSERT(!APIKEY_API_HAS(&old, wipe));
    /* Cut inside the admin slots: what is there is there, no more. */
    old.size = offsetof(apikey_api, copy);
    CU_ASSERT(APIKEY_API_HAS(&old, scopes));
    CU_ASSERT(!APIKEY_API_HAS(&old, copy));
    old.size = offsetof(apikey_api, copy) + sizeof old.copy - 1;
    CU_ASSERT(!APIKEY_API_HAS(&old, copy));
}

static apikey_ctx *open_store(const char *uri, unsigned flags, const char *extra)
{
    char *cfg = tu_config(uri, extra, SERVICES);
    char err[512];
    apikey_ctx *ctx = api->open_with(cfg, flags, err, sizeof err);
    if (!ctx)
        fprintf(stderr, "open: %s\n", err);
    free(cfg);
    return ctx;
}

static apikey_status create(apikey_ctx *ctx, const char *account, const char *scopes,
                            const char *expires, apikey_issued *out, char *err, size_t errlen)
{
    apikey_create_request req = {.size = sizeof req, .account = account, .name = "deploy",
                                 .scopes = scopes, .expires = expires};
    *out = (apikey_issued){.size = sizeof *out};
    return api->create(ctx, &req, out, err, errlen);
}

static apikey_decision check(apikey_ctx *ctx, const char *service, const char *key)
{
    apikey_result res;
    return api->verify(ctx, service, NULL, key, strlen(key), &res);
}

typedef struct seen {
    int n;
    int stop_after; /* 0: never */
    char ids[32][APIKEY_KEY_ID_MAX];
    apikey_key_state state[32];
} seen;

static int note(const apikey_key_info *k, void *arg)
{
    seen *s = arg;
    if (s->n < 32) {
        snprintf(s->ids[s->n], sizeof s->ids[0], "%s", k->id);
        s->state[s->n] = k->state;
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static int count(apikey_ctx *ctx, const char *account, unsigned flags)
{
    seen s = {0};
    char err[512];
    apikey_status st = api->list(ctx, account, flags, note, &s, err, sizeof err);
    CU_ASSERT_EQUAL(st, APIKEY_OK);
    return st == APIKEY_OK ? s.n : -1;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* The public id under the shortest, the default and the longest prefix:
 * what create shows, what a check answers, and the key's own start. */
static void test_public_id(void)
{
    static const char *const prefixes[] = {"z", "ak", "abcdefgh"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        char extra[64], want[APIKEY_KEY_ID_MAX], err[512];
        snprintf(extra, sizeof extra, "key_prefix = %s", prefixes[i]);
        char *uri = tu_new_store_uri();
        apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, extra);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        apikey_issued k;
        CU_ASSERT_EQUAL_FATAL(create(ctx, "alice", "proxies:read", "30d", &k, err, sizeof err), APIKEY_OK);
        size_t n = strlen(prefixes[i]) + 1 + APIKEY_ID_LEN;
        snprintf(want, sizeof want, "%.*s", (int)n, k.key);
        CU_ASSERT_EQUAL(strncmp(want, prefixes[i], strlen(prefixes[i])), 0);
        CU_ASSERT_EQUAL(want[strlen(prefixes[i])], '_');
        CU_ASSERT_STRING_EQUAL(k.info.id, want);
        apikey_result res;
        CU_ASSERT_EQUAL(api->verify(ctx, "web", NULL, k.key, strlen(k.key), &res), APIKEY_ALLOWED);
        CU_ASSERT_STRING_EQUAL(res.key_id, want);
        api->close(ctx);
        free(uri);
    }
}

static void test_create_get_list(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[512];
    apikey_issued k;
    time_t before = time(NULL);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "alice", "proxies:read,geo:read", "30d", &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_EQUAL(k.size, sizeof k);
    CU_ASSERT_EQUAL(k.info.size, sizeof k.info);
    CU_ASSERT_EQUAL(strncmp(k.key, "ak_", 3), 0);
    CU_ASSERT_EQUAL(strlen(k.info.id), 11);
    CU_ASSERT_EQUAL(strncmp(k.key, k.info.id, 11), 0); /* the key starts with its id */
    CU_ASSERT_STRING_EQUAL(k.info.account, "alice");
    CU_ASSERT_STRING_EQUAL(k.info.name, "deploy");
    CU_ASSERT_PTR_NOT_NULL(strstr(k.info.scopes, "proxies:read"));
    CU_ASSERT_PTR_NOT_NULL(strstr(k.info.scopes, "geo:read"));
    CU_ASSERT(k.info.created >= before && k.info.created <= time(NULL));
    CU_ASSERT_EQUAL(k.info.expires - k.info.created, 30 * 86400);
    CU_ASSERT_EQUAL(k.info.last_used, 0);
    CU_ASSERT_EQUAL(k.info.revoked, 0);
    CU_ASSERT_EQUAL(k.info.state, APIKEY_KEY_ACTIVE);
    CU_ASSERT_STRING_EQUAL(api->state_string(k.info.state), "active");
    CU_ASSERT_EQUAL(check(ctx, "web", k.key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(ctx, "billing", k.key), APIKEY_REFUSED);

    /* get: by public id, by the bare id and by list's form. */
    apikey_key_info info = {.size = sizeof info};
    CU_ASSERT_EQUAL(api->get(ctx, k.info.id, &info, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(info.id, k.info.id);
    CU_ASSERT_STRING_EQUAL(info.scopes, k.info.scopes);
    CU_ASSERT_EQUAL(info.expires, k.info.expires);
    CU_ASSERT(info.last_used > 0); /* the verify above */
    char form[32];
    CU_ASSERT_EQUAL(api->get(ctx, k.info.id + 3, &info, err, sizeof err), APIKEY_OK);
    snprintf(form, sizeof form, "%s...", k.info.id);
    CU_ASSERT_EQUAL(api->get(ctx, form, &info, err, sizeof err), APIKEY_OK);

    /* The key is shown once and wiped by its holder. */
    api->wipe(k.key, sizeof k.key);
    CU_ASSERT(all_zero(k.key, sizeof k.key));

    /* A batch: all of them, in order. */
    apikey_create_request reqs[3] = {
        {.size = sizeof reqs[0], .account = "bob", .name = "b1", .scopes = "proxies:read"},
        {.size = sizeof reqs[0], .account = "bob", .name = "b2", .scopes = "*", .expires = "never"},
        {.size = sizeof reqs[0], .account = "carol", .name = "c1", .scopes = "balance:read"},
    };
    apikey_issued out[3];
    for (int i = 0; i < 3; i++)
        out[i] = (apikey_issued){.size = sizeof out[i]};
    CU_ASSERT_EQUAL_FATAL(api->create_batch(ctx, reqs, 3, out, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(out[0].info.name, "b1");
    CU_ASSERT_STRING_EQUAL(out[1].info.scopes, "*");
    CU_ASSERT_EQUAL(out[1].info.expires, 0);
    CU_ASSERT_STRING_EQUAL(out[2].info.account, "carol");
    CU_ASSERT_STRING_NOT_EQUAL(out[0].key, out[1].key);
    CU_ASSERT_EQUAL(check(ctx, "billing", out[2].key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(ctx, "web", out[1].key), APIKEY_ALLOWED);
    for (int i = 0; i < 3; i++)
        api->wipe(out[i].key, sizeof out[i].key);

    /* All or none: the second line is bad, so the first is not created. */
    reqs[1].scopes = "proxies:read,teleport";
    CU_ASSERT_EQUAL(api->create_batch(ctx, reqs, 2, out, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "teleport"));
    CU_ASSERT_EQUAL(count(ctx, "bob", APIKEY_LIST_ALL), 2);

    /* list: one account or all; a callback may stop the walk. */
    CU_ASSERT_EQUAL(count(ctx, "alice", 0), 1);
    CU_ASSERT_EQUAL(count(ctx, "bob", 0), 2);
    CU_ASSERT_EQUAL(count(ctx, NULL, 0), 4);
    CU_ASSERT_EQUAL(count(ctx, "nobody", APIKEY_LIST_ALL), 0);
    seen s = {.stop_after = 2};
    CU_ASSERT_EQUAL(api->list(ctx, NULL, APIKEY_LIST_ALL, note, &s, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(s.n, 2);
    CU_ASSERT_STRING_EQUAL(s.ids[0], k.info.id); /* creation order */
    api->close(ctx);
    free(uri);
}

static void test_revoke_rotate(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[512];
    apikey_issued a, b, fresh;
    CU_ASSERT_EQUAL_FATAL(create(ctx, "alice", "proxies:read", "90d", &a, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "alice", "proxies:read", "90d", &b, err, sizeof err), APIKEY_OK);

    /* revoke: now, for good; again is harmless, with a note. */
    CU_ASSERT_EQUAL(api->revoke(ctx, a.info.id, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_EQUAL(check(ctx, "web", a.key), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(api->revoke(ctx, a.info.id, err, sizeof err), APIKEY_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already revoked"));
    apikey_key_info info = {.size = sizeof info};
    CU_ASSERT_EQUAL(api->get(ctx, a.info.id, &info, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(info.state, APIKEY_KEY_REVOKED);
    CU_ASSERT(info.revoked > 0);
    CU_ASSERT_EQUAL(count(ctx, "alice", 0), 1);
    CU_ASSERT_EQUAL(count(ctx, "alice", APIKEY_LIST_ALL), 2);

    /* rotate without grace: the old key is revoked at once. */
    fresh = (apikey_issued){.size = sizeof fresh};
    CU_ASSERT_EQUAL_FATAL(api->rotate(ctx, b.info.id, NULL, &fresh, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_NOT_EQUAL(fresh.info.id, b.info.id);
    CU_ASSERT_STRING_EQUAL(fresh.info.account, "alice");
    CU_ASSERT_STRING_EQUAL(fresh.info.scopes, b.info.scopes);
    CU_ASSERT_EQUAL(fresh.info.expires - fresh.info.created, b.info.expires - b.info.created);
    CU_ASSERT_EQUAL(check(ctx, "web", fresh.key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(ctx, "web", b.key), APIKEY_REFUSED);

    /* rotate with grace: the old key works until then. */
    apikey_issued graced = {.size = sizeof graced};
    CU_ASSERT_EQUAL_FATAL(api->rotate(ctx, fresh.info.id, "1h", &graced, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(check(ctx, "web", fresh.key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(ctx, "web", graced.key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(api->get(ctx, fresh.info.id, &info, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(info.state, APIKEY_KEY_ACTIVE);
    CU_ASSERT_EQUAL(info.revoked, 0);
    CU_ASSERT(info.expires >= graced.info.created + 3600 && info.expires <= graced.info.created + 3601);

    /* Only an active key rotates; a grace must be a duration. */
    CU_ASSERT_EQUAL(api->rotate(ctx, a.info.id, NULL, &fresh, err, sizeof err), APIKEY_E_CONFLICT);
    CU_ASSERT_EQUAL(api->status_http(APIKEY_E_CONFLICT), 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "revoked"));
    CU_ASSERT(all_zero(fresh.key, sizeof fresh.key)); /* nothing issued, nothing left */
    CU_ASSERT_EQUAL(api->rotate(ctx, graced.info.id, "soon", &fresh, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "soon"));
    CU_ASSERT_EQUAL(check(ctx, "web", graced.key), APIKEY_ALLOWED);
    api->wipe(&a, sizeof a);
    api->wipe(&b, sizeof b);
    api->wipe(&graced, sizeof graced);
    api->close(ctx);
    free(uri);
}

typedef struct catalogue {
    int n;
    int found;
} catalogue;

static int scope_seen(const char *scope, const char *description, void *arg)
{
    catalogue *c = arg;
    c->n++;
    c->found |= strcmp(scope, "proxies:read") == 0 &&
                strcmp(description, "List and retrieve proxy details and configuration") == 0;
    return 0;
}

static void test_scopes_and_copy(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[512];
    catalogue c = {0};
    CU_ASSERT_EQUAL(api->scopes(ctx, scope_seen, &c, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(c.n, 5);
    CU_ASSERT(c.found);

    apikey_issued live, dead;
    CU_ASSERT_EQUAL_FATAL(create(ctx, "alice", "proxies:read", NULL, &live, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "bob", "proxies:read", NULL, &dead, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(api->revoke(ctx, dead.info.id, err, sizeof err), APIKEY_OK);
    char *target = tu_new_store_uri_of(tu_store_available("sqlite") ? "sqlite" : "json");
    size_t copied = 0;
    CU_ASSERT_EQUAL(api->copy(ctx, target, &copied, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(copied, 2);
    CU_ASSERT_EQUAL(api->copy(ctx, target, &copied, err, sizeof err), APIKEY_OK); /* again: harmless */
    apikey_ctx *there = open_store(target, APIKEY_OPEN_CONNECT, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(there);
    CU_ASSERT_EQUAL(check(there, "web", live.key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(check(there, "web", dead.key), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(count(there, NULL, APIKEY_LIST_ALL), 2);
    /* A target that cannot be opened. */
    CU_ASSERT_EQUAL(api->copy(ctx, "json:/nonexistent/dir/keys.json", &copied, err, sizeof err),
                    APIKEY_E_UNAVAILABLE);
    CU_ASSERT_NOT_EQUAL(err[0], '\0');
    api->wipe(&live, sizeof live);
    api->wipe(&dead, sizeof dead);
    api->close(there);
    api->close(ctx);
    free(target);
    free(uri);
}

/* Each refusal: its status, its HTTP code, one line, the store unchanged. */
static void test_refusals(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[512];
    apikey_issued k;
    CU_ASSERT_EQUAL(create(ctx, "alice", "proxies:read,teleport", NULL, &k, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_EQUAL(api->status_http(APIKEY_E_INVALID), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "teleport"));
    CU_ASSERT_EQUAL(create(ctx, "alice", "proxies:read", "2000-01-01", &k, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not in the future"));
    CU_ASSERT_EQUAL(create(ctx, "alice", "proxies:read", "someday", &k, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_EQUAL(create(ctx, "ali\nce", "proxies:read", NULL, &k, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_EQUAL(create(ctx, "alice", NULL, NULL, &k, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_EQUAL(count(ctx, NULL, APIKEY_LIST_ALL), 0);

    /* The eleventh active key of an account. */
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL_FATAL(create(ctx, "dave", "proxies:read", NULL, &k, err, sizeof err), APIKEY_OK);
        api->wipe(k.key, sizeof k.key);
    }
    CU_ASSERT_EQUAL(create(ctx, "dave", "proxies:read", NULL, &k, err, sizeof err), APIKEY_E_LIMIT);
    CU_ASSERT_EQUAL(api->status_http(APIKEY_E_LIMIT), 409);
    CU_ASSERT_STRING_EQUAL(err, "account dave has 10 active keys, the limit; revoke or rotate one first");
    CU_ASSERT_STRING_EQUAL(api->status_string(APIKEY_E_LIMIT), "limit reached");
    CU_ASSERT_EQUAL(count(ctx, "dave", APIKEY_LIST_ALL), 10);

    /* Unknown and malformed ids. */
    apikey_key_info info = {.size = sizeof info};
    k = (apikey_issued){.size = sizeof k};
    apikey_status got = api->get(ctx, "ak_00000000", &info, err, sizeof err);
    if (got != APIKEY_E_NOT_FOUND)
        fprintf(stderr, "\nget ak_00000000: %d: %s\n", got, err);
    CU_ASSERT_EQUAL(got, APIKEY_E_NOT_FOUND);
    CU_ASSERT_EQUAL(api->status_http(APIKEY_E_NOT_FOUND), 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ak_00000000"));
    CU_ASSERT_EQUAL(api->revoke(ctx, "ak_00000000", err, sizeof err), APIKEY_E_NOT_FOUND);
    CU_ASSERT_EQUAL(api->rotate(ctx, "ak_00000000", NULL, &k, err, sizeof err), APIKEY_E_NOT_FOUND);
    CU_ASSERT_EQUAL(api->revoke(ctx, "ak_../../x", err, sizeof err), APIKEY_E_INVALID);
    /* A whole key pasted for its id: refused, and its secret not echoed. */
    CU_ASSERT_EQUAL_FATAL(create(ctx, "erin", "proxies:read", NULL, &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(api->revoke(ctx, k.key, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, k.info.id));
    CU_ASSERT_PTR_NULL(strstr(err, k.key + 11));
    CU_ASSERT_PTR_NULL(strstr(err, k.key + 40));
    api->wipe(k.key, sizeof k.key);
    CU_ASSERT_EQUAL(api->get(ctx, "", &info, err, sizeof err), APIKEY_E_INVALID);

    /* Bad calls. */
    CU_ASSERT_EQUAL(api->list(ctx, NULL, 0x80, note, NULL, err, sizeof err), APIKEY_E_ARGUMENT);
    CU_ASSERT_EQUAL(api->status_http(APIKEY_E_ARGUMENT), 500);
    CU_ASSERT_EQUAL(api->revoke(NULL, "ak_00000000", err, sizeof err), APIKEY_E_ARGUMENT);
    apikey_key_info tiny = {.size = offsetof(apikey_key_info, state)};
    CU_ASSERT_EQUAL(api->get(ctx, "ak_00000000", &tiny, err, sizeof err), APIKEY_E_ARGUMENT);
    CU_ASSERT_PTR_NULL(api->open_with(NULL, 0x100, err, sizeof err));
    CU_ASSERT_EQUAL(api->revoke(ctx, "ak_00000000", NULL, 0), APIKEY_E_NOT_FOUND); /* err may be NULL */
    api->close(ctx);
    free(uri);
}

/* A store that cannot be read: 503, with the store's reason, and back to
 * work once it is repaired, in the same context. */
static void test_unavailable(void)
{
    char err[512];
    apikey_issued k;
    /* A store that refuses to open: the open fails with the store's line. */
    char *cfg = tu_config("json:relative/keys.json", NULL, SERVICES);
    CU_ASSERT_PTR_NULL(api->open_with(cfg, APIKEY_OPEN_CONNECT, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "must be absolute"));
    free(cfg);
    /* A host's context opens its store at first use: nothing there yet. */
    apikey_ctx *lazy = open_store("json:/nonexistent/dir/keys.json", 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lazy);
    CU_ASSERT_EQUAL(create(lazy, "alice", "proxies:read", NULL, &k, err, sizeof err), APIKEY_E_UNAVAILABLE);
    CU_ASSERT_EQUAL(api->status_http(APIKEY_E_UNAVAILABLE), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/dir/keys.json"));
    CU_ASSERT_PTR_NULL(strchr(err, '\n'));
    CU_ASSERT_EQUAL(api->list(lazy, NULL, 0, note, &(seen){0}, err, sizeof err), APIKEY_E_UNAVAILABLE);
    api->close(lazy);

    char *uri = tu_new_store_uri_of("json");
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "alice", "proxies:read", NULL, &k, err, sizeof err), APIKEY_OK);
    size_t len;
    char *good = tu_read(uri + 5, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(good);
    FILE *f = fopen(uri + 5, "w");
    fputs("{\"format\": \"apikey-store\", \"keys\": [", f); /* cut short */
    fclose(f);
    apikey_key_info info = {.size = sizeof info};
    CU_ASSERT_EQUAL(api->get(ctx, k.info.id, &info, err, sizeof err), APIKEY_E_UNAVAILABLE);
    CU_ASSERT_NOT_EQUAL(err[0], '\0');
    CU_ASSERT_EQUAL(api->revoke(ctx, k.info.id, err, sizeof err), APIKEY_E_UNAVAILABLE);
    CU_ASSERT_PTR_NULL(strstr(err, k.key + 11)); /* never the secret */
    apikey_issued more;
    CU_ASSERT_EQUAL(create(ctx, "alice", "proxies:read", NULL, &more, err, sizeof err), APIKEY_E_UNAVAILABLE);
    f = fopen(uri + 5, "w");
    fwrite(good, 1, len, f);
    fclose(f);
    CU_ASSERT_EQUAL(api->get(ctx, k.info.id, &info, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(info.state, APIKEY_KEY_ACTIVE);
    api->wipe(&k, sizeof k);
    free(good);
    api->close(ctx);
    free(uri);
}

/* Structs from a newer host: unknown request fields are refused unless
 * zero; a larger record is filled as far as the library knows. */
/* Expiry warnings (apikey(1)): the active keys expiring within a duration. */
static void test_expiring(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_FATAL(APIKEY_API_HAS(api, list_expiring));
    char err[512];
    apikey_issued soon, later, never, gone, other;
    CU_ASSERT_EQUAL_FATAL(create(ctx, "erin", "proxies:read", "30d", &soon, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "erin", "proxies:read", "90d", &later, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "erin", "proxies:read", "never", &never, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "erin", "proxies:read", "30d", &gone, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "finn", "proxies:read", "30d", &other, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(api->revoke(ctx, gone.info.id, err, sizeof err), APIKEY_OK);
    seen s = {0};
    CU_ASSERT_EQUAL(api->list_expiring(ctx, "erin", "31d", note, &s, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(s.n, 1); /* not the revoked one, not the later or never */
    CU_ASSERT_STRING_EQUAL(s.ids[0], soon.info.id);
    s = (seen){0};
    CU_ASSERT_EQUAL(api->list_expiring(ctx, NULL, "91d", note, &s, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(s.n, 3); /* soon and later of erin, other of finn */
    s = (seen){0};
    CU_ASSERT_EQUAL(api->list_expiring(ctx, NULL, "1d", note, &s, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(s.n, 0);
    /* Not a duration: refused, saying so. */
    CU_ASSERT_EQUAL(api->list_expiring(ctx, NULL, "soon", note, &s, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a duration"));
    CU_ASSERT_EQUAL(api->list_expiring(ctx, NULL, "0", note, &s, err, sizeof err), APIKEY_E_INVALID);
    /* The command: accounts shown, --all refused beside it. */
    char *cfg = tu_config(uri, NULL, SERVICES), *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, &out, NULL, "list", "erin", "--expiring", "31d", NULL), 0);
    CU_ASSERT_EQUAL(tu_count_lines(out), 2); /* the header and one key */
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "Account"));
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", "--expiring", "31d", "--all", NULL), 2);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, NULL, "list", "--expiring", "later", NULL), 1);
    free(cfg);
    api->close(ctx);
    free(uri);
}

/* One context, as apikey-authd's dashboard holds it: a list of one account,
 * a check that records a use, and the next list shows it (on json, the use
 * is in the index and read for the account's keys only). */
static int last_used_of(const apikey_key_info *k, void *arg)
{
    *(int64_t *)arg = k->last_used;
    return 0;
}

static void test_list_sees_uses(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, "last_used_granularity = 0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[512];
    apikey_issued k, other;
    CU_ASSERT_EQUAL_FATAL(create(ctx, "frank", "proxies:read", NULL, &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL_FATAL(create(ctx, "grace", "proxies:read", NULL, &other, err, sizeof err), APIKEY_OK);
    int64_t used = -1;
    CU_ASSERT_EQUAL(api->list(ctx, "frank", 0, last_used_of, &used, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(used, 0);
    CU_ASSERT_EQUAL(check(ctx, "web", k.key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(api->list(ctx, "frank", 0, last_used_of, &used, err, sizeof err), APIKEY_OK);
    CU_ASSERT(used > 0);
    /* Another account's list is not raised by it. */
    CU_ASSERT_EQUAL(api->list(ctx, "grace", 0, last_used_of, &used, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(used, 0);
    CU_ASSERT_EQUAL(check(ctx, "web", other.key), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(api->list(ctx, NULL, 0, last_used_of, &used, err, sizeof err), APIKEY_OK);
    CU_ASSERT(used > 0); /* the last listed is grace's, used now */
    api->wipe(k.key, sizeof k.key);
    api->wipe(other.key, sizeof other.key);
    api->close(ctx);
    free(uri);
}

static void test_growth(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[512];
    struct newer_request {
        apikey_create_request v1;
        const char *allow_from;
    } req = {.v1 = {.size = sizeof req, .account = "alice", .name = "n", .scopes = "proxies:read"},
             .allow_from = "10.0.0.0/8"};
    struct newer_issued {
        apikey_issued v1;
        char later[40];
    } out;
    memset(&out, 0xAA, sizeof out);
    out.v1.size = sizeof out;
    CU_ASSERT_EQUAL(api->create(ctx, &req.v1, &out.v1, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not know"));
    CU_ASSERT_EQUAL(count(ctx, NULL, APIKEY_LIST_ALL), 0);
    req.allow_from = NULL;
    CU_ASSERT_EQUAL_FATAL(api->create(ctx, &req.v1, &out.v1, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(out.v1.size, sizeof(apikey_issued));
    CU_ASSERT_EQUAL(out.v1.info.size, sizeof(apikey_key_info));
    CU_ASSERT(all_zero(out.later, sizeof out.later));
    struct newer_info {
        apikey_key_info v1;
        char allow_from[16][44];
    } info;
    memset(&info, 0xAA, sizeof info);
    info.v1.size = sizeof info;
    CU_ASSERT_EQUAL(api->get(ctx, out.v1.info.id, &info.v1, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(info.v1.size, sizeof(apikey_key_info));
    CU_ASSERT(all_zero(info.allow_from, sizeof info.allow_from));
    CU_ASSERT_STRING_EQUAL(info.v1.account, "alice");
    /* A batch whose requests differ in size is a bad call. */
    apikey_create_request two[2] = {{.size = sizeof two[0], .account = "a", .name = "n", .scopes = "*"},
                                    {.size = sizeof two[0] + 8, .account = "a", .name = "n", .scopes = "*"}};
    apikey_issued keys[2] = {{.size = sizeof keys[0]}, {.size = sizeof keys[0]}};
    CU_ASSERT_EQUAL(api->create_batch(ctx, two, 2, keys, err, sizeof err), APIKEY_E_ARGUMENT);
    api->wipe(&out, sizeof out);
    api->close(ctx);
    free(uri);
}

/* An allowlist through the table (apikey(1)): kept canonical by create, get
 * and rotate, enforced by verify_with from the client's address. */
static void test_allowlist(void)
{
    char *uri = tu_new_store_uri();
    apikey_ctx *ctx = open_store(uri, APIKEY_OPEN_CREATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    char err[512];
    apikey_create_request req = {.size = sizeof req, .account = "alice", .name = "ci", .scopes = "proxies:read",
                                 .allow_from = "192.0.2.0/24,2001:DB8::1"};
    apikey_issued k = {.size = sizeof k}, r = {.size = sizeof r};
    CU_ASSERT_EQUAL_FATAL(api->create(ctx, &req, &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT(APIKEY_HAS_FIELD(apikey_key_info, &k.info, allow_from));
    CU_ASSERT_STRING_EQUAL(k.info.allow_from, "192.0.2.0/24 2001:db8::1/128");
    apikey_key_info info = {.size = sizeof info};
    CU_ASSERT_EQUAL(api->get(ctx, k.info.id, &info, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(info.allow_from, "192.0.2.0/24 2001:db8::1/128");
    apikey_verify_request q = {.size = sizeof q, .service = "web", .key = k.key, .keylen = strlen(k.key),
                               .client_addr = "192.0.2.9"};
    apikey_verdict v = {.size = sizeof v};
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, &v), APIKEY_ALLOWED);
    q.client_addr = "198.51.100.1";
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, &v), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ADDRESS);
    CU_ASSERT_EQUAL(api->http_status(&v.result), 401);
    /* rotate keeps it */
    CU_ASSERT_EQUAL_FATAL(api->rotate(ctx, k.info.id, NULL, &r, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(r.info.allow_from, "192.0.2.0/24 2001:db8::1/128");
    q.key = r.key;
    q.keylen = strlen(r.key);
    CU_ASSERT_EQUAL(api->verify_with(ctx, &q, &v), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(v.result.reason, APIKEY_REASON_ADDRESS);
    /* A malformed list: E_INVALID (400), naming the entry, nothing made. */
    req.allow_from = "192.0.2.1/24";
    CU_ASSERT_EQUAL(api->create(ctx, &req, &k, err, sizeof err), APIKEY_E_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'192.0.2.1/24'"));
    CU_ASSERT_EQUAL(api->status_http(APIKEY_E_INVALID), 400);
    CU_ASSERT_EQUAL(count(ctx, "alice", APIKEY_LIST_ALL), 2);
    api->wipe(&k, sizeof k);
    api->wipe(&r, sizeof r);
    api->close(ctx);
    free(uri);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"the library by its soname, admin slots in its table", test_load},
        {"APIKEY_API_HAS on an older library's table", test_older_table},
        {"create, a batch, get and list", test_create_get_list},
        {"the public id under a 1-, 2- and 8-character prefix", test_public_id},
        {"revoke, rotate with and without grace", test_revoke_rotate},
        {"the scope catalogue and copy", test_scopes_and_copy},
        {"refusals: invalid, limit, not found, bad calls", test_refusals},
        {"an unavailable store answers 503 and recovers", test_unavailable},
        {"structs grow: a newer host's fields", test_growth},
        {"keys expiring within a duration, for warnings", test_expiring},
        {"an allowlist: create, get, rotate, verify from an address", test_allowlist},
        {"a context's list shows the uses its checks recorded", test_list_sees_uses},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"admin operations via dlopen", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
