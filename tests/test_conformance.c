/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store conformance suite: every behaviour of apikey(1) and its keys, run
 * through the real apikey command and the host API against the store that
 * $APIKEY_TEST_STORE names (json, sqlite or pgsql; tests/run.sh runs it
 * for each, pgsql directly and through pgbouncer), or a third party's:
 * see doc/STORES.md, "Testing a store of your own".
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "testutil.h"

#define SERVICES                                                                              \
    "sshd = proxies:read\n"                                                                   \
    "writer = proxies:write\n"                                                                \
    "billing = balance:read stats:read\n"                                                     \
    "open =\n"

typedef struct fixture {
    char *uri;
    char *config;
} fixture;

static fixture fresh(const char *extra_top)
{
    fixture f;
    f.uri = tu_new_store_uri();
    f.config = tu_config(f.uri, extra_top, SERVICES);
    return f;
}

static void done(fixture *f)
{
    free(f->uri);
    free(f->config);
}

/* Create a key and return it (malloc'd, no newline); NULL when refused. */
static char *create(const fixture *f, const char *account, const char *scopes, const char *expires)
{
    char *out = NULL, *err = NULL;
    int rc = tu_apikey(f->config, NULL, &out, &err, "create", account, "--name", "test", "--scopes",
                       scopes, "--expires", expires ? expires : "30d", NULL);
    if (rc != 0) {
        /* Said, so a failure among concurrent writers can be told apart. */
        fprintf(stderr, "create %s: exit %d: %s", account, rc, err ? err : "(nothing)\n");
        free(out);
        free(err);
        return NULL;
    }
    free(err);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static int verify(const fixture *f, const char *service, const char *account, const char *key)
{
    char input[1024];
    snprintf(input, sizeof input, "%s\n", key);
    return account ? tu_apikey(f->config, input, NULL, NULL, "verify", "--service", service,
                               "--account", account, NULL)
                   : tu_apikey(f->config, input, NULL, NULL, "verify", "--service", service, NULL);
}

/* "ak_20fe9a1c" of a key. */
static char *public_id(const char *key)
{
    return strndup(key, 3 + 8);
}

/* What the store holds, as the command lists it: a byte-exact witness of
 * "unchanged" that works for every backend. */
static char *snapshot(const fixture *f)
{
    char *out = NULL;
    tu_apikey(f->config, NULL, &out, NULL, "list", "--all", "--json", NULL);
    return out;
}

static char *store_file(const fixture *f)
{
    if (strncmp(f->uri, "json:", 5) == 0 || strncmp(f->uri, "sqlite:", 7) == 0)
        return strchr(f->uri, ':') + 1;
    return NULL;
}

/* "Unchanged", seen twice over: the list, and the store file's bytes
 * (json, sqlite). */
typedef struct witness {
    char *listed, *bytes;
    size_t len;
} witness;

static witness witness_take(const fixture *f)
{
    witness w = {.listed = snapshot(f)};
    if (store_file(f))
        w.bytes = tu_read(store_file(f), &w.len);
    return w;
}

/* Asserts the store is as w saw it, and frees w. */
static void witness_same(const fixture *f, witness *w)
{
    witness now = witness_take(f);
    CU_ASSERT_STRING_EQUAL(w->listed ?: "(no list)", now.listed ?: "(no list)");
    if (w->bytes)
        CU_ASSERT(now.bytes && now.len == w->len && memcmp(now.bytes, w->bytes, w->len) == 0);
    free(now.listed);
    free(now.bytes);
    free(w->listed);
    free(w->bytes);
}

static void test_create_list_verify(void)
{
    fixture f = fresh(NULL);
    char *key = create(&f, "alice", "proxies:read", "30d");
    CU_ASSERT_PTR_NOT_NULL_FATAL(key);
    CU_ASSERT_EQUAL(strlen(key), 3 + 8 + 32 + 6);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", key), 0);
    CU_ASSERT_EQUAL(verify(&f, "sshd", NULL, key), 0);
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", NULL), 0);
    char *pid = public_id(key);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, pid));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Permissions"));
    CU_ASSERT_PTR_NULL(strstr(out, key + 11)); /* never the secret */
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", "alice", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"status\": \"active\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"last_used\""));
    CU_ASSERT_PTR_NULL(strstr(out, key + 11));
    free(out);
    /* The store holds neither the key nor any part of its secret. */
    const char *path = store_file(&f);
    if (path) {
        size_t len;
        char *bytes = tu_read(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
        for (size_t off = 11; off + 8 <= 11 + 32; off += 4)
            CU_ASSERT_PTR_NULL(memmem(bytes, len, key + off, 8));
        free(bytes);
    }
    free(pid);
    free(key);
    done(&f);
}

static void test_limit(void)
{
    fixture f = fresh(NULL);
    for (int i = 0; i < 10; i++) {
        char *k = create(&f, "alice", "proxies:read", NULL);
        CU_ASSERT_PTR_NOT_NULL(k);
        free(k);
    }
    witness before = witness_take(&f);
    char *err = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", "alice", "--name", "x",
                              "--scopes", "proxies:read", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "account alice has 10 active keys, the limit; revoke or rotate one first"));
    free(err);
    witness_same(&f, &before);
    /* Another account is not affected. */
    char *k = create(&f, "bob", "proxies:read", NULL);
    CU_ASSERT_PTR_NOT_NULL(k);
    free(k);
    done(&f);
}

static void test_refusals_leave_store_unchanged(void)
{
    fixture f = fresh(NULL);
    char *k = create(&f, "alice", "proxies:read", NULL);
    char *before = snapshot(&f);
    char *err = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", "alice", "--name", "x",
                              "--scopes", "proxies:read,nope:read", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown scope 'nope:read'"));
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", "alice", "--name", "x",
                              "--scopes", "proxies:read", "--expires", "2001-01-01", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not in the future"));
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", "alice", "--name", "x",
                              "--scopes", "proxies:read", "--expires", "tomorrow", NULL), 1);
    free(err);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "create", "alice", "--name", "a\tb",
                              "--scopes", "proxies:read", NULL), 1);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "create", "alice", NULL), 2);
    char *after = snapshot(&f);
    CU_ASSERT_STRING_EQUAL(before, after);
    free(before);
    free(after);
    free(k);
    done(&f);
}

/* A batch refused as a whole: exit 1, no key printed, one line saying said. */
static void batch_refused(const fixture *f, const char *lines, const char *said)
{
    char *out = NULL, *err = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f->config, lines, &out, &err, "create", "--batch", "-", NULL), 1);
    CU_ASSERT_STRING_EQUAL(out ?: "(nothing)", "");
    CU_ASSERT_EQUAL(tu_count_lines(err), 1);
    if (!err || !strstr(err, said))
        fprintf(stderr, "expected \"%s\" in: %s", said, err ?: "(nothing)\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", said));
    free(out);
    free(err);
}

static void test_batch_all_or_none(void)
{
    fixture f = fresh("max_keys_per_account = 2");
    char *before = snapshot(&f);
    char *out = NULL;
    /* Line 4 pushes carol over her limit: nothing at all is created. */
    batch_refused(&f, "alice\tci\tproxies:read\t30d\ncarol\ta\tgeo:read\tnever\ncarol\tb\t*\t1y\ncarol\tc\tgeo:read\t90d\n",
                  "line 4");
    batch_refused(&f, "alice\tci\tproxies:read\t30d\nbob\tx\tbogus\t30d\n", "line 2");
    char *after = snapshot(&f);
    CU_ASSERT_STRING_EQUAL(before, after);
    const char *good = "alice\tci\tproxies:read\t30d\nbob\tx\tgeo:read proxies:read\tnever\ncarol\ty\t*\t6m\n";
    CU_ASSERT_EQUAL(tu_apikey(f.config, good, &out, NULL, "create", "--batch", "-", NULL), 0);
    char *lines[3] = {0};
    char *save = NULL;
    int n = 0;
    for (char *l = strtok_r(out, "\n", &save); l && n < 3; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", lines[0]), 0);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "bob", lines[1]), 0);
    CU_ASSERT_EQUAL(verify(&f, "billing", "carol", lines[2]), 0);
    free(out);
    free(before);
    free(after);
    done(&f);
}

static void test_scope_rules(void)
{
    fixture f = fresh(NULL);
    char *w = create(&f, "alice", "proxies:write", NULL);
    char *all = create(&f, "alice", "*", NULL);
    char *half = create(&f, "alice", "balance:read", NULL);
    char *both = create(&f, "alice", "balance:read,stats:read", NULL);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", w), 1); /* write does not imply read */
    CU_ASSERT_EQUAL(verify(&f, "writer", "alice", w), 0);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", all), 0);
    CU_ASSERT_EQUAL(verify(&f, "billing", "alice", all), 0);
    CU_ASSERT_EQUAL(verify(&f, "billing", "alice", half), 1); /* needs both */
    CU_ASSERT_EQUAL(verify(&f, "billing", "alice", both), 0);
    CU_ASSERT_EQUAL(verify(&f, "unmapped", "alice", all), 1);
    CU_ASSERT_EQUAL(verify(&f, "open", "alice", half), 0); /* empty list: any valid key */
    CU_ASSERT_EQUAL(verify(&f, "sshd", "bob", all), 1);   /* foreign key */
    free(w);
    free(all);
    free(half);
    free(both);
    done(&f);
}

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

static void test_expiry_with_clock(void)
{
    fixture f = fresh(NULL);
    apikey_ctx *ctx = core_open(f.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    fake_now = 1800000000; /* 2027-01-15 */
    core_set_clock(ctx, fake_clock);
    admin_request req = {.account = "alice", .name = "e", .scopes = "proxies:read", .expires = "30d"};
    admin_issued k;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(k.rec.expires, fake_now + 30 * 86400);
    apikey_result res;
    fake_now += 29 * 86400;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", k.key, strlen(k.key), &res), APIKEY_ALLOWED);
    fake_now += 2 * 86400;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", k.key, strlen(k.key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_EXPIRED);
    /* An expired key frees its slot. */
    req.expires = "30d";
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    /* Presets: 6 months and 1 year are calendar months. */
    fake_now = 1800000000;
    req.account = "carol";
    req.expires = "6m";
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT(k.rec.expires > fake_now + 180 * 86400 && k.rec.expires < fake_now + 185 * 86400);
    req.expires = "1y";
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT(k.rec.expires == fake_now + 365 * 86400 || k.rec.expires == fake_now + 366 * 86400);
    req.expires = "never";
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(k.rec.expires, 0);
    fake_now += 100LL * 365 * 86400;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "carol", k.key, strlen(k.key), &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    done(&f);
}

static void test_revocation_seen_by_open_context(void)
{
    fixture f = fresh(NULL);
    char *key = create(&f, "alice", "proxies:read", NULL);
    apikey_ctx *ctx = apikey_open(f.config, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res), APIKEY_ALLOWED);
    char *pid = public_id(key);
    CU_ASSERT_STRING_EQUAL(res.key_id, pid);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "revoke", pid, NULL), 0);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    /* Revoked stays revoked: revoking again, rotating and copying don't bring it back. */
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "revoke", pid, NULL), 0);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "rotate", pid, NULL), 1);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", key, strlen(key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", key), 1);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "revoke", "ak_00000000", NULL), 1);
    apikey_close(ctx);
    free(pid);
    free(key);
    done(&f);
}

/* A revocation is neither cleared nor moved, by any store (the store's
 * own rule, apikey_store.h): an update doing either is CONFLICT and changes
 * nothing; one that keeps it is fine. Copying onto a store where the key is
 * revoked at another time keeps that time. */
static void test_revocation_permanent_in_store(void)
{
    fixture f = fresh(NULL);
    apikey_ctx *ctx = core_open(f.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    core_set_clock(ctx, fake_clock);
    fake_now = 1800000000;
    admin_request req = {.account = "alice", .name = "r", .scopes = "proxies:read", .expires = "never"};
    admin_issued k;
    char err[256], pid[APIKEY_KEY_ID_MAX];
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    snprintf(pid, sizeof pid, "ak_%s", k.rec.id);

    /* Another store of the same kind with the key, revoked there first. */
    fixture g = fresh(NULL);
    apikey_ctx *other = core_open(g.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    core_set_clock(other, fake_clock);
    size_t copied = 0;
    CU_ASSERT_EQUAL(admin_copy(ctx, g.uri, &copied, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(admin_revoke(other, pid, err, sizeof err), APIKEY_OK);
    fake_now += 100;
    CU_ASSERT_EQUAL_FATAL(admin_revoke(ctx, pid, err, sizeof err), APIKEY_OK);

    const apikey_store_ops *ops = ctx->store.ops;
    void *h = ctx->store.handle;
    apikey_record rec;
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, k.rec.id, &rec), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(rec.revoked, 1800000100);
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    apikey_record w = rec;
    w.revoked = 0;
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_CONFLICT);
    w.revoked = rec.revoked + 5;
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_CONFLICT);
    w.revoked = rec.revoked - 5;
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_CONFLICT);
    w = rec;
    snprintf(w.name, sizeof w.name, "renamed");
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->commit(h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, k.rec.id, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(w.revoked, 1800000100);
    CU_ASSERT_STRING_EQUAL(w.name, "renamed");

    /* Copied again onto the store where it was revoked 100 s earlier. */
    CU_ASSERT_EQUAL(admin_copy(ctx, g.uri, &copied, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(admin_get(other, pid, &w, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(w.revoked, 1800000000);
    apikey_close(other);
    apikey_close(ctx);
    done(&g);
    done(&f);
}

/* Copying onto a store that holds some of the keys already: those are
 * updated, the others added; a key there with the id of another key is
 * CONFLICT, named, and nothing at all is copied. */
static void test_copy_onto_keys_there(void)
{
    fixture f = fresh(NULL), g = fresh(NULL), h = fresh(NULL);
    apikey_ctx *ctx = core_open(f.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    admin_request req = {.account = "alice", .name = "c", .scopes = "proxies:read", .expires = "never"};
    admin_issued k[3];
    char err[256];
    size_t copied = 0;
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k[0], err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(admin_copy(ctx, g.uri, &copied, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(admin_copy(ctx, h.uri, &copied, err, sizeof err), APIKEY_OK);
    for (int i = 1; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k[i], err, sizeof err), APIKEY_OK);
    apikey_record rec;
    CU_ASSERT_EQUAL_FATAL(ctx->store.ops->lookup(ctx->store.handle, k[0].rec.id, &rec), APIKEY_ST_OK);
    snprintf(rec.name, sizeof rec.name, "renamed");
    CU_ASSERT_EQUAL_FATAL(ctx->store.ops->begin(ctx->store.handle), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ctx->store.ops->update(ctx->store.handle, &rec), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ctx->store.ops->commit(ctx->store.handle), APIKEY_ST_OK);

    /* g holds the first key: updated, the two others added. */
    CU_ASSERT_EQUAL(admin_copy(ctx, g.uri, &copied, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(copied, 3);
    apikey_ctx *other = core_open(g.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    for (int i = 0; i < 3; i++) {
        apikey_record there;
        CU_ASSERT_EQUAL_FATAL(other->store.ops->lookup(other->store.handle, k[i].rec.id, &there), APIKEY_ST_OK);
        CU_ASSERT_EQUAL(memcmp(there.hash, k[i].rec.hash, APIKEY_HASH_LEN), 0);
        CU_ASSERT_STRING_EQUAL(there.name, i ? "c" : "renamed");
    }
    apikey_close(other);

    /* h holds the first key and, under the last one's id, another key. */
    other = core_open(h.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    rec = k[2].rec;
    rec.hash[0] ^= 1;
    CU_ASSERT_EQUAL_FATAL(other->store.ops->begin(other->store.handle), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(other->store.ops->insert(other->store.handle, &rec), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(other->store.ops->commit(other->store.handle), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(admin_copy(ctx, h.uri, &copied, err, sizeof err), APIKEY_E_CONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "another key with id"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, k[2].rec.id));
    apikey_record there;
    CU_ASSERT_EQUAL(other->store.ops->lookup(other->store.handle, k[1].rec.id, &there), APIKEY_ST_NOTFOUND);
    CU_ASSERT_EQUAL_FATAL(other->store.ops->lookup(other->store.handle, k[0].rec.id, &there), APIKEY_ST_OK);
    CU_ASSERT_STRING_EQUAL(there.name, "c");
    CU_ASSERT_EQUAL_FATAL(other->store.ops->lookup(other->store.handle, k[2].rec.id, &there), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(there.hash[0], rec.hash[0]);
    explicit_bzero(&rec, sizeof rec);
    explicit_bzero(&there, sizeof there);
    explicit_bzero(k, sizeof k);
    apikey_close(other);
    apikey_close(ctx);
    done(&h);
    done(&g);
    done(&f);
}

/* The per-account count, as the store makes it (pgsql counts in the
 * database): a key expiring at this very second no longer counts, one
 * expiring a second later does. */
static void test_limit_counts_at_expiry(void)
{
    fixture f = fresh("max_keys_per_account = 1");
    apikey_ctx *ctx = core_open(f.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    fake_now = 1800000000;
    core_set_clock(ctx, fake_clock);
    admin_request req = {.account = "alice", .name = "e", .scopes = "proxies:read", .expires = "30d"};
    admin_issued k;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    fake_now += 30 * 86400 - 1;
    CU_ASSERT_EQUAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_E_LIMIT);
    fake_now += 1;
    CU_ASSERT_EQUAL(admin_create(ctx, &req, 1, &k, err, sizeof err), APIKEY_OK);
    explicit_bzero(&k, sizeof k);
    apikey_close(ctx);
    done(&f);
}

static void test_revoked_frees_slot_single_key(void)
{
    fixture f = fresh("max_keys_per_account = 1");
    char *k1 = create(&f, "alice", "proxies:read", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k1);
    char *k2 = create(&f, "alice", "proxies:read", NULL);
    CU_ASSERT_PTR_NULL(k2);
    char *pid = public_id(k1);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "revoke", pid, NULL), 0);
    k2 = create(&f, "alice", "proxies:read", NULL);
    CU_ASSERT_PTR_NOT_NULL(k2);
    /* Single-key rotation: revoke and regenerate in one step. */
    char *pid2 = k2 ? public_id(k2) : strdup("none");
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "rotate", pid2, NULL), 0);
    out[strcspn(out, "\n")] = '\0';
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", out), 0);
    if (k2)
        CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", k2), 1);
    free(out);
    free(pid);
    free(pid2);
    free(k1);
    free(k2);
    done(&f);
}

static void test_rotation(void)
{
    fixture f = fresh(NULL);
    apikey_ctx *ctx = core_open(f.config, 1, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    fake_now = 1800000000;
    core_set_clock(ctx, fake_clock);
    admin_request req = {.account = "alice", .name = "deploy", .scopes = "proxies:read geo:read", .expires = "90d"};
    admin_issued old, fresh_key, graced;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(admin_create(ctx, &req, 1, &old, err, sizeof err), APIKEY_OK);
    fake_now += 10 * 86400;
    char pid[32];
    snprintf(pid, sizeof pid, "ak_%s", old.rec.id);
    CU_ASSERT_EQUAL_FATAL(admin_rotate(ctx, pid, "0", &fresh_key, err, sizeof err), APIKEY_OK);
    CU_ASSERT_STRING_EQUAL(fresh_key.rec.name, "deploy");
    CU_ASSERT_STRING_EQUAL(fresh_key.rec.account, "alice");
    CU_ASSERT_STRING_EQUAL(fresh_key.rec.scopes, "proxies:read geo:read");
    CU_ASSERT_EQUAL(fresh_key.rec.expires - fresh_key.rec.created, 90 * 86400);
    apikey_result res;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", old.key, strlen(old.key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", fresh_key.key, strlen(fresh_key.key), &res), APIKEY_ALLOWED);
    /* With a grace period the old key works until it ends. */
    snprintf(pid, sizeof pid, "ak_%s", fresh_key.rec.id);
    CU_ASSERT_EQUAL_FATAL(admin_rotate(ctx, pid, "1h", &graced, err, sizeof err), APIKEY_OK);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", fresh_key.key, strlen(fresh_key.key), &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", graced.key, strlen(graced.key), &res), APIKEY_ALLOWED);
    fake_now += 3601;
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", fresh_key.key, strlen(fresh_key.key), &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_EXPIRED);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", graced.key, strlen(graced.key), &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    /* Through the command: rotate prints the new key alone. */
    char *out = NULL;
    snprintf(pid, sizeof pid, "ak_%s", graced.rec.id);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "rotate", pid, "--grace", "24h", NULL), 0);
    out[strcspn(out, "\n")] = '\0';
    CU_ASSERT_EQUAL(strlen(out), 49);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", out), 0);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", graced.key), 0);
    free(out);
    done(&f);
}

static void test_concurrent_writers(void)
{
    fixture f = fresh("max_keys_per_account = 1000");
    enum { WRITERS = 4, EACH = 8 };
    int fds[WRITERS];
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        int p[2];
        CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
        pids[w] = fork();
        if (pids[w] == 0) {
            close(p[0]);
            for (int i = 0; i < EACH; i++) {
                char *k = create(&f, w % 2 ? "alice" : "bob", "proxies:read", NULL);
                if (k) {
                    dprintf(p[1], "%s\n", k);
                    free(k);
                }
            }
            _exit(0);
        }
        close(p[1]);
        fds[w] = p[0];
    }
    int got = 0, ok = 0;
    for (int w = 0; w < WRITERS; w++) {
        FILE *in = fdopen(fds[w], "r");
        char line[256];
        while (fgets(line, sizeof line, in)) {
            line[strcspn(line, "\n")] = '\0';
            got++;
            ok += verify(&f, "sshd", NULL, line) == 0;
        }
        fclose(in);
        waitpid(pids[w], NULL, 0);
    }
    CU_ASSERT_EQUAL(got, WRITERS * EACH);
    CU_ASSERT_EQUAL(ok, WRITERS * EACH);
    char *out = NULL;
    tu_apikey(f.config, NULL, &out, NULL, "list", "--json", NULL);
    int listed = 0;
    for (char *p = out; (p = strstr(p, "\"status\"")); p++)
        listed++;
    CU_ASSERT_EQUAL(listed, WRITERS * EACH);
    free(out);
    done(&f);
}

static void test_metacharacters_literal(void)
{
    fixture f = fresh(NULL);
    const char *acct = "o'brien\"; DROP TABLE keys;-- %_\\";
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "create", acct, "--name", "$(rm -rf /) `x` '1'='1'",
                              "--scopes", "proxies:read", NULL), 0);
    out[strcspn(out, "\n")] = '\0';
    CU_ASSERT_EQUAL(verify(&f, "sshd", acct, out), 0);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "o'brien", out), 1);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "%", out), 1);
    char *list = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &list, NULL, "list", "%", NULL), 0);
    CU_ASSERT_PTR_NULL(strstr(list, "ak_"));
    free(list);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &list, NULL, "list", acct, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(list, "$(rm -rf /)"));
    free(list);
    free(out);
    done(&f);
}

static void test_last_used(void)
{
    fixture f = fresh("last_used_granularity = 0");
    char *key = create(&f, "alice", "proxies:read", NULL);
    char *out = NULL;
    tu_apikey(f.config, NULL, &out, NULL, "list", "--json", NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"last_used\": null"));
    free(out);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", key), 0);
    tu_apikey(f.config, NULL, &out, NULL, "list", "--json", NULL);
    CU_ASSERT_PTR_NULL(strstr(out, "\"last_used\": null"));
    free(out);
    /* A write folds it into the store and keeps it. */
    char *k2 = create(&f, "bob", "proxies:read", NULL);
    tu_apikey(f.config, NULL, &out, NULL, "list", "alice", "--json", NULL);
    CU_ASSERT_PTR_NULL(strstr(out, "\"last_used\": null"));
    free(out);
    free(k2);
    free(key);
    done(&f);
}

/* ---- Address allowlists (apikey(1)) ---- */

#define LIST_IN "10.0.0.0/8, 2001:DB8:0::/32 ::ffff:192.0.2.7"
#define LIST_JSON "10.0.0.0/8 2001:db8::/32 192.0.2.7/32" /* canonical */

/* The allow_from of key pid as list --all --json shows it, its entries
 * joined by one space ("" for []); NULL when the key or the field is not
 * there, or is not an array of strings. */
static char *allow_of(const fixture *f, const char *pid)
{
    char *out = NULL, *joined = NULL;
    tu_apikey(f->config, NULL, &out, NULL, "list", "--all", "--json", NULL);
    json_t *arr = out ? json_loads(out, 0, NULL) : NULL, *rec, *e;
    size_t i, j;
    json_array_foreach(arr, i, rec) {
        json_t *list = json_object_get(rec, "allow_from");
        if (strcmp(json_string_value(json_object_get(rec, "id")) ?: "", pid) != 0 || !json_is_array(list))
            continue;
        size_t len = 0;
        joined = calloc(1, 1024);
        json_array_foreach(list, j, e) {
            if (!json_is_string(e) || len + strlen(json_string_value(e)) + 2 > 1024) {
                free(joined);
                joined = NULL;
                break;
            }
            len += (size_t)sprintf(joined + len, "%s%s", len ? " " : "", json_string_value(e));
        }
    }
    json_decref(arr);
    free(out);
    return joined;
}

/* Create a key of alice with an allowlist; the key (malloc'd), NULL when refused. */
static char *create_listed(const fixture *f, const char *list)
{
    char *out = NULL, *err = NULL;
    int rc = tu_apikey(f->config, NULL, &out, &err, "create", "alice", "--name", "ci", "--scopes",
                       "proxies:read", "--allow-from", list, NULL);
    if (rc != 0) {
        fprintf(stderr, "create --allow-from %s: exit %d: %s", list, rc, err ? err : "\n");
        free(out);
        out = NULL;
    } else {
        out[strcspn(out, "\n")] = '\0';
    }
    free(err);
    return out;
}

/* The check from a client address, through the host API. */
static apikey_decision verify_from(const fixture *f, const char *key, const char *client, apikey_reason *why)
{
    apikey_ctx *ctx = apikey_open(f->config, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_verify_request q = {.size = sizeof q, .service = "sshd", .account = "alice", .key = key,
                               .keylen = strlen(key), .client_addr = client};
    apikey_verdict v = {.size = sizeof v};
    apikey_decision d = apikey_verify_with(ctx, &q, &v);
    *why = v.result.reason;
    apikey_close(ctx);
    return d;
}

static void test_allowlist_create_list_verify(void)
{
    fixture f = fresh(NULL);
    char *out = NULL, *err = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(f.config, NULL, &out, NULL, "create", "alice", "--name", "ci", "--scopes",
                                    "proxies:read", "--allow-from", LIST_IN, "--json", NULL), 0);
    /* create --json: the record with its canonical list, and the key. */
    json_t *rec = json_loads(out, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    json_t *list = json_object_get(rec, "allow_from");
    CU_ASSERT_EQUAL(json_array_size(list), 3);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(list, 1)) ?: "", "2001:db8::/32");
    char *key = strdup(json_string_value(json_object_get(rec, "key")));
    json_decref(rec);
    free(out);
    char *open_key = create(&f, "alice", "proxies:read", NULL);
    char *pid = public_id(key), *open_pid = public_id(open_key);

    /* list --json: the store kept the list, canonical; [] for any address. */
    char *allow = allow_of(&f, pid), *none = allow_of(&f, open_pid);
    CU_ASSERT_STRING_EQUAL(allow ?: "(no allow_from)", LIST_JSON);
    CU_ASSERT_STRING_EQUAL(none ?: "(no allow_from)", "");
    /* The table: a column at the end, entries joined by ", ". */
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", "alice", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Created           Allowed from\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "  10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32\n"));
    free(out);
    /* list --expiring --json: the same objects. */
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", "--expiring", "400d", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"2001:db8::/32\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"allow_from\": []"));
    free(out);
    /* Without any list the table is as before. */
    fixture g = fresh(NULL);
    char *other = create(&g, "alice", "proxies:read", NULL);
    CU_ASSERT_EQUAL(tu_apikey(g.config, NULL, &out, NULL, "list", NULL), 0);
    CU_ASSERT_PTR_NULL(strstr(out, "Allowed from"));
    free(out);

    /* apikey verify knows no client address: a key with a list is refused. */
    char input[128];
    snprintf(input, sizeof input, "%s\n", key);
    CU_ASSERT_EQUAL(tu_apikey(f.config, input, NULL, &err, "verify", "--service", "sshd", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", "refused: address not allowed"));
    free(err);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", open_key), 0);
    /* From an address: in the list, mapped, outside it. */
    apikey_reason why;
    CU_ASSERT_EQUAL(verify_from(&f, key, "10.1.2.3", &why), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(verify_from(&f, key, "2001:db8:1::5", &why), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(verify_from(&f, key, "::ffff:192.0.2.7", &why), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(verify_from(&f, key, "192.0.2.8", &why), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(why, APIKEY_REASON_ADDRESS);
    CU_ASSERT_EQUAL(verify_from(&f, open_key, "192.0.2.8", &why), APIKEY_ALLOWED);

    /* rotate keeps the list; the new key is held to it. */
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "rotate", pid, NULL), 0);
    out[strcspn(out, "\n")] = '\0';
    char *new_pid = public_id(out), *kept = allow_of(&f, new_pid);
    CU_ASSERT_STRING_EQUAL(kept ?: "(no allow_from)", LIST_JSON);
    CU_ASSERT_EQUAL(verify_from(&f, out, "10.9.9.9", &why), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL(verify_from(&f, out, "11.9.9.9", &why), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(why, APIKEY_REASON_ADDRESS);
    free(kept);
    free(new_pid);
    free(out);
    free(allow);
    free(none);
    free(pid);
    free(open_pid);
    free(key);
    free(open_key);
    free(other);
    done(&g);
    done(&f);
}

static void test_allowlist_refusals(void)
{
    fixture f = fresh(NULL);
    char *k = create_listed(&f, "10.0.0.0/8");
    CU_ASSERT_PTR_NOT_NULL(k);
    witness before = witness_take(&f);
    char seventeen[17 * 16] = "";
    for (int i = 1; i <= 17; i++)
        snprintf(seventeen + strlen(seventeen), sizeof seventeen - strlen(seventeen), "%s10.0.0.%d", i > 1 ? "," : "", i);
    static const struct {
        const char *list, *said;
    } bad[] = {
        {"192.0.2.0/24,10.0.0.1/8", "'10.0.0.1/8' has bits set beyond its prefix"},
        {"10.0.0.0/33", "'10.0.0.0/33': the prefix can be at most 32"},
        {"::1,2001:db8::/129", "'2001:db8::/129': the prefix can be at most 128"},
        {"db.example.com", "'db.example.com' is not an address"},
        {"10.0.0.0/8,,::1", "entry 2 is empty"},
        {"10.0.0.0/8,", "entry 2 is empty"},
        {"fe80::1%eth0", "'fe80::1%eth0' is not an address"},
        {"", "--allow-from holds no address"},
        {NULL, "more than 16 addresses: '10.0.0.17'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *list = bad[i].list ? bad[i].list : seventeen;
        char *err = NULL;
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", "alice", "--name", "x", "--scopes",
                                  "proxies:read", "--allow-from", list, NULL), 1);
        CU_ASSERT_EQUAL(tu_count_lines(err), 1);
        if (!err || !strstr(err, bad[i].said))
            fprintf(stderr, "--allow-from '%s': expected \"%s\" in: %s", list, bad[i].said, err ?: "(nothing)\n");
        CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", bad[i].said));
        free(err);
    }
    /* Twice is a usage error, not a longer or a shorter list. */
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "create", "alice", "--name", "x", "--scopes",
                              "proxies:read", "--allow-from", "::1", "--allow-from", "::2", NULL), 2);
    witness_same(&f, &before);
    free(k);
    done(&f);
}

static void test_allowlist_batch(void)
{
    fixture f = fresh(NULL);
    char *before = snapshot(&f);
    char *out = NULL;
    /* A bad list on line 3 refuses the batch, naming line 3. */
    batch_refused(&f, "alice\ta\tproxies:read\t30d\t10.0.0.0/8\nbob\tb\tgeo:read\tnever\ncarol\tc\t*\t1y\t10.0.0.1/8\n",
                  "line 3: allow_from: '10.0.0.1/8'");
    /* The file's line, when comments and blank lines come before. */
    batch_refused(&f, "# onboarding\n\nalice\ta\tproxies:read\t30d\t::1,,::2\n", "line 3: allow_from: entry 2 is empty");
    /* The sixth and seventh columns are a rate and a burst, checked as
     * --rate and --burst; an eighth is refused as any extra column is. */
    batch_refused(&f, "alice\ta\tproxies:read\t30d\t::1\textra\n", "line 1: bad rate 'extra'");
    batch_refused(&f, "alice\ta\tproxies:read\t30d\t\t5/s\t0\n",
                  "line 1: expected ACCOUNT<TAB>NAME<TAB>SCOPES<TAB>EXPIRES[<TAB>ALLOW_FROM[<TAB>RATE[<TAB>BURST]]]");
    batch_refused(&f, "alice\ta\tproxies:read\t30d\t\t5/s\t2\tx\n",
                  "line 1: expected ACCOUNT<TAB>NAME<TAB>SCOPES<TAB>EXPIRES[<TAB>ALLOW_FROM[<TAB>RATE[<TAB>BURST]]]");
    batch_refused(&f, "alice\ta\tproxies:read\t30d\t\t\t2\n", "line 1: a burst needs a rate");
    char *after = snapshot(&f);
    CU_ASSERT_STRING_EQUAL(before, after);
    /* A list, an empty fifth column, none: the first alone has a list. */
    const char *good = "alice\ta\tproxies:read\t30d\t10.0.0.0/8 ::1\nbob\tb\tgeo:read\tnever\t\ncarol\tc\t*\t1y\n";
    CU_ASSERT_EQUAL(tu_apikey(f.config, good, &out, NULL, "create", "--batch", "-", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(tu_count_lines(out), 3);
    const char *want[3] = {"10.0.0.0/8 ::1/128", "", ""};
    char *line = out;
    for (int i = 0; i < 3; i++) {
        char *pid = public_id(line), *allow = allow_of(&f, pid);
        CU_ASSERT_STRING_EQUAL(allow ?: "(no allow_from)", want[i]);
        free(allow);
        free(pid);
        line = strchr(line, '\n') + 1;
    }
    free(out);
    free(before);
    free(after);
    done(&f);
}

/* Copy from every store kind to every other (pgsql when the harness runs
 * it): the same keys, not re-issued ones, work before and after, and a
 * revoked key arrives revoked. */
/* Rate limits through the command: --rate and --burst stored and listed,
 * default_rate, rotate keeps it, verify refuses with "rate limited", and a
 * refusal for another reason spends nothing. */
static void test_rate_limits(void)
{
    char extra[512];
    snprintf(extra, sizeof extra, "rate_table = %s/conformance.table\ndefault_rate = 5/s", tu_tmpdir());
    fixture f = fresh(extra);
    char *key = NULL, *out = NULL, *err = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_apikey(f.config, NULL, &key, NULL, "create", "alice", "--name", "k",
                                    "--scopes", "proxies:read", "--rate", "1/h", "--burst", "2", NULL), 0);
    key[strcspn(key, "\n")] = '\0';
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "create", "bob", "--name", "d", "--scopes",
                              "proxies:read", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "\"rate\":{\"limit\":5,\"per\":\"1s\",\"burst\":5}"));
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "create", "bob", "--name", "n", "--scopes",
                              "proxies:read", "--rate", "none", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "\"rate\":null"));
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", "alice", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "\"limit\": 1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "\"per\": \"1h\""));
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", "alice", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "1/h, burst 2"));
    free(out);
    /* Refused for its scope (geo needs geo:read): no cell spent. */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(verify(&f, "geo", "alice", key), 1);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", key), 0);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", key), 0);
    char input[128];
    snprintf(input, sizeof input, "%s\n", key);
    CU_ASSERT_EQUAL(tu_apikey(f.config, input, NULL, &err, "verify", "--service", "sshd", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", "rate limited"));
    free(err);
    char *pid = public_id(key);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "rotate", pid, "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "\"rate\":{\"limit\":1,\"per\":\"1h\",\"burst\":2}"));
    free(out);
    static const char *bad[][2] = {{"--rate", "0/s"}, {"--rate", "5/day"}, {"--rate", "5"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", "alice", "--name", "x",
                                  "--scopes", "proxies:read", bad[i][0], bad[i][1], NULL), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", "bad rate"));
        free(err);
    }
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "create", "alice", "--name", "x", "--scopes",
                              "proxies:read", "--rate", "5/s", "--burst", "0", NULL), 2);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", "alice", "--name", "x", "--scopes",
                              "proxies:read", "--rate", "none", "--burst", "3", NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", "a burst needs a rate"));
    free(err);
    free(pid);
    free(key);
    done(&f);
}

static void test_copy_between_stores(void)
{
    const char *kinds[4] = {"json", "sqlite", "pgsql"}, *own = getenv("APIKEY_TEST_STORE");
    size_t nkinds = 3;
    if (own && strcmp(own, "json") && strcmp(own, "sqlite") && strcmp(own, "pgsql"))
        kinds[nkinds++] = own; /* a third party's store, when the suite runs on one */
    for (size_t from = 0; from < nkinds; from++) {
        if (!tu_store_available(kinds[from]))
            continue;
        fixture f = {.uri = tu_new_store_uri_of(kinds[from])};
        f.config = tu_config(f.uri, NULL, SERVICES);
        char *live = create(&f, "alice", "proxies:read", NULL);
        char *dead = create(&f, "bob", "proxies:read", NULL);
        char *listed = create_listed(&f, LIST_IN);
        CU_ASSERT_PTR_NOT_NULL_FATAL(listed);
        char *limited = NULL; /* its limit is in what is compared */
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &limited, NULL, "create", "carol", "--name", "lim",
                                  "--scopes", "proxies:read", "--rate", "7/min", "--burst", "3", NULL), 0);
        free(limited);
        CU_ASSERT_PTR_NOT_NULL_FATAL(live);
        CU_ASSERT_PTR_NOT_NULL_FATAL(dead);
        char *pid = public_id(dead);
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "revoke", pid, NULL), 0);
        CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", live), 0);
        CU_ASSERT_EQUAL(verify(&f, "sshd", "bob", dead), 1);
        for (size_t to = 0; to < nkinds; to++) {
            if (to == from || !tu_store_available(kinds[to]))
                continue;
            fixture g = {.uri = tu_new_store_uri_of(kinds[to])};
            g.config = tu_config(g.uri, NULL, SERVICES);
            CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "copy", "--to", g.uri, NULL), 0);
            /* Copying again is harmless: the same keys are already there. */
            CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "copy", "--to", g.uri, NULL), 0);
            char *a = snapshot(&f), *b = snapshot(&g), *err = NULL;
            CU_ASSERT_PTR_NOT_NULL(strstr(a, "\"revoked\""));
            CU_ASSERT_PTR_NOT_NULL(strstr(a, "\"2001:db8::/32\"")); /* the list is in what is compared */
            CU_ASSERT_PTR_NOT_NULL(strstr(a, "\"per\": \"1min\"")); /* and the limit */
            CU_ASSERT_STRING_EQUAL(a, b);
            if (strcmp(a, b) != 0)
                fprintf(stderr, "copy %s -> %s differs\n", kinds[from], kinds[to]);
            CU_ASSERT_EQUAL(verify(&g, "sshd", "alice", live), 0);
            apikey_reason why;
            CU_ASSERT_EQUAL(verify_from(&g, listed, "10.1.2.3", &why), APIKEY_ALLOWED);
            CU_ASSERT_EQUAL(verify_from(&g, listed, "11.1.2.3", &why), APIKEY_REFUSED);
            CU_ASSERT_EQUAL(why, APIKEY_REASON_ADDRESS);
            char input[128];
            snprintf(input, sizeof input, "%s\n", dead);
            CU_ASSERT_EQUAL(tu_apikey(g.config, input, NULL, &err, "verify", "--service", "sshd",
                                      "--account", "bob", NULL), 1);
            CU_ASSERT_PTR_NOT_NULL(strstr(err, "revoked"));
            free(err);
            /* The source still answers as before. */
            CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", live), 0);
            CU_ASSERT_EQUAL(verify(&f, "sshd", "bob", dead), 1);
            free(a);
            free(b);
            done(&g);
        }
        free(pid);
        free(live);
        free(dead);
        free(listed);
        done(&f);
    }
}

/* Stored texts are valid UTF-8 without control or bidirectional control
 * characters, refused alike through the command and the host API, the
 * store unchanged: a JSON store could not be written, logs and terminals
 * would show something else. */
static void test_texts_utf8_only(void)
{
    fixture f = fresh(NULL);
    char *k = create(&f, "alice", "proxies:read", NULL);
    witness before = witness_take(&f);
    static const struct {
        const char *account, *name, *said;
    } bad[] = {
        {"carol", "caf\xe9", "name is not valid UTF-8 (byte 4)"},
        {"caf\xc3", "x", "account is not valid UTF-8"},
        {"carol", "\xc0\xaf", "name is not valid UTF-8"},         /* overlong '/' */
        {"carol", "\xed\xa0\x80", "name is not valid UTF-8"},     /* a surrogate */
        {"carol", "a\xc2\x85" "b", "name holds a control character"}, /* U+0085, C1 */
        {"carol", "a\x7f", "name holds a control character"},
        {"carol", "invoice\xe2\x80\xaegpj.exe", "name holds a bidirectional control character (U+202E)"},
        {"al\xe2\x81\xa6ice", "x", "account holds a bidirectional control character (U+2066)"},
        {"carol", "\xe2\x80\x8f", "bidirectional control character (U+200F)"},
        {"carol", "\xd8\x9c", "bidirectional control character (U+061C)"},
    };
    apikey_ctx *ctx = apikey_open_with(f.config, APIKEY_OPEN_CONNECT, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err = NULL;
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "create", bad[i].account, "--name", bad[i].name,
                                  "--scopes", "proxies:read", NULL), 1);
        if (!err || !strstr(err, bad[i].said))
            fprintf(stderr, "case %zu: expected \"%s\" in: %s", i, bad[i].said, err ?: "(nothing)\n");
        CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", bad[i].said));
        free(err);
        apikey_create_request req = {.size = sizeof req, .account = bad[i].account, .name = bad[i].name,
                                     .scopes = "proxies:read"};
        apikey_issued out = {.size = sizeof out};
        char why[512];
        CU_ASSERT_EQUAL(apikey_create(ctx, &req, &out, why, sizeof why), APIKEY_E_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, bad[i].said));
    }
    apikey_close(ctx);
    witness_same(&f, &before);
    /* Any other language is welcome. */
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "create", "jos\xc3\xa9", "--name",
                              "caf\xc3\xa9 \xe2\x9c\x93 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "--scopes",
                              "proxies:read", NULL), 0);
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", "jos\xc3\xa9", "--json", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "caf\xc3\xa9 \xe2\x9c\x93"));
    free(out);
    free(k);
    done(&f);
}

/* A record the store holds with a text that is not UTF-8 (written before
 * libapikey refused them, or by hand): the JSON store refuses to write it
 * and stays readable; a store that keeps it makes list --json fail,
 * never list the others without it (a cron job reads list --expiring). */
static void test_undecodable_record_never_dropped(void)
{
    fixture f = fresh(NULL);
    char *k = create(&f, "alice", "proxies:read", NULL);
    apikey_ctx *ctx = core_open(f.config, APIKEY_OPEN_CONNECT, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_record rec;
    tu_record(&rec, "badUtf80", "carol", "caf\xe9", "proxies:read");
    rec.expires = rec.created + 86400;
    const apikey_store_ops *ops = ctx->store.ops;
    void *h = ctx->store.handle;
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    /* JSON cannot hold it (the commit is refused), nor can PostgreSQL's
     * UTF8 database (the insert is); SQLite keeps any bytes. Either is
     * right, with its consequence below. */
    int st = ops->insert(h, &rec);
    if (st == APIKEY_ST_OK)
        st = ops->commit(h);
    else
        ops->rollback(h);
    apikey_close(ctx);
    char *out = NULL, *err = NULL;
    int rc = tu_apikey(f.config, NULL, &out, &err, "list", "--json", NULL);
    if (st != APIKEY_ST_OK) {
        CU_ASSERT_EQUAL(st, APIKEY_ST_UNAVAILABLE);
        CU_ASSERT_EQUAL(rc, 0); /* the store is as it was */
        CU_ASSERT_PTR_NULL(strstr(out ?: "", "badUtf80"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "\"alice\""));
    } else {
        CU_ASSERT_EQUAL(rc, 2);
        CU_ASSERT_STRING_EQUAL(out ?: "", "");
        CU_ASSERT_PTR_NOT_NULL(strstr(err ?: "", "cannot encode key ak_badUtf80 as JSON"));
        free(out);
        free(err);
        out = err = NULL;
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, &err, "list", "--expiring", "7d", "--json", NULL), 2);
        CU_ASSERT_STRING_EQUAL(out ?: "", "");
        /* The table still shows it, so it can be found and revoked. */
        free(out);
        out = NULL;
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", NULL), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out ?: "", "ak_badUtf80"));
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "revoke", "ak_badUtf80", NULL), 0);
    }
    free(out);
    free(err);
    free(k);
    done(&f);
}

/* A host's first create, on a fresh install where no store exists yet,
 * makes the store as `apikey create` does, with the host's context opened
 * as hosts open theirs (no create, no connect). */
static void test_host_create_makes_store(void)
{
    fixture f = fresh(NULL);
    apikey_ctx *ctx = apikey_open_with(f.config, 0, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    /* A verify first (a host answers requests before any key exists):
     * refused, the store not made by it. */
    apikey_result res;
    const char *nokey = "ak_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB_CCCCC";
    CU_ASSERT_NOT_EQUAL(apikey_verify(ctx, "sshd", NULL, nokey, strlen(nokey), &res), APIKEY_ALLOWED);
    apikey_create_request req = {.size = sizeof req, .account = "alice", .name = "first",
                                 .scopes = "proxies:read"};
    apikey_issued out = {.size = sizeof out};
    char err[512] = "";
    CU_ASSERT_EQUAL(apikey_create(ctx, &req, &out, err, sizeof err), APIKEY_OK);
    if (err[0])
        fprintf(stderr, "create: %s\n", err);
    CU_ASSERT_EQUAL(apikey_verify(ctx, "sshd", "alice", out.key, strlen(out.key), &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    CU_ASSERT_EQUAL(verify(&f, "sshd", "alice", out.key), 0);
    apikey_wipe(&out, sizeof out);
    done(&f);
}

/* --expiring takes every span --expires takes, and the reverse. */
static void test_spans_alike(void)
{
    fixture f = fresh(NULL);
    static const char *const spans[] = {"1y", "6m", "2w", "30d", "24h", "90min"};
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++) {
        char *err = NULL;
        CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, &err, "list", "--expiring", spans[i], NULL), 0);
        if (err && *err)
            fprintf(stderr, "--expiring %s: %s", spans[i], err);
        free(err);
        char *k = create(&f, "alice", "proxies:read", spans[i]);
        CU_ASSERT_PTR_NOT_NULL(k);
        free(k);
    }
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, &out, NULL, "list", "--expiring", "2h", NULL), 0);
    CU_ASSERT_EQUAL(tu_count_lines(out), 2); /* the header and the 90min key */
    free(out);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "list", "--expiring", "0", NULL), 1);
    CU_ASSERT_EQUAL(tu_apikey(f.config, NULL, NULL, NULL, "list", "--expiring", "1x", NULL), 1);
    done(&f);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"create, list and verify; the store holds no secret", test_create_list_verify},
        {"the 11th key is refused and the store is unchanged", test_limit},
        {"unknown scope, past expiry and bad names are refused", test_refusals_leave_store_unchanged},
        {"--batch is all or none", test_batch_all_or_none},
        {"rate limits: --rate, --burst, default_rate, list, rotate, verify", test_rate_limits},
        {"scope rules", test_scope_rules},
        {"expiry with an injected clock", test_expiry_with_clock},
        {"an open context sees a revocation; revoked stays revoked", test_revocation_seen_by_open_context},
        {"a store neither clears nor moves a revocation", test_revocation_permanent_in_store},
        {"copy onto a store holding some of the keys", test_copy_onto_keys_there},
        {"a revoked key frees its slot; single-key rotation", test_revoked_frees_slot_single_key},
        {"the limit counts a key expiring at this second no more", test_limit_counts_at_expiry},
        {"rotation with and without grace", test_rotation},
        {"four concurrent writers lose nothing", test_concurrent_writers},
        {"SQL and shell metacharacters are literal", test_metacharacters_literal},
        {"last used is recorded", test_last_used},
        {"allowlists: create, list, verify, rotate keeps them", test_allowlist_create_list_verify},
        {"allowlists: malformed lists refused, the store unchanged", test_allowlist_refusals},
        {"allowlists: the batch's fifth column, all or none", test_allowlist_batch},
        {"copy from each store to each other keeps keys, lists, revoked stays revoked", test_copy_between_stores},
        {"texts are UTF-8 without control or bidi characters, for the command and hosts", test_texts_utf8_only},
        {"a record that cannot be encoded fails list --json, never dropped", test_undecodable_record_never_dropped},
        {"a host's first create makes the store", test_host_create_makes_store},
        {"--expiring and --expires take the same spans", test_spans_alike},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"conformance", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
