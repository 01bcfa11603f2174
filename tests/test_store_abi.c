/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A store backend on its own, through its operations table only: dlopen
 * $APIKEY_STORE_DIR/apikey_store_<scheme>.so ($APIKEY_TEST_STORE, default
 * json), hand it a host table of this test's own, and check each rule of
 * include/apikey_store.h that a caller can see. Nothing of libapikey is
 * linked: a third party runs this against their store as it is.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apikey_store.h"
#include "testutil.h"

static const char *scheme;
static const apikey_store_ops *ops;
static int logged; /* lines the backend logged */

static void log_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  (store) ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    logged++;
}

static const apikey_store_host host = TU_STORE_HOST(log_line);

/* A fresh location of the store under test (what follows "scheme:"). */
static char *fresh_location(void)
{
    char *uri = tu_new_store_uri_of(scheme);
    char *loc = strdup(strchr(uri, ':') + 1);
    free(uri);
    return loc;
}

static void *open_new(char **loc)
{
    void *h = NULL;
    *loc = fresh_location();
    CU_ASSERT_EQUAL(ops->open(*loc, 1, &host, &h), APIKEY_ST_OK);
    return h;
}

static apikey_record rec_of(const char *id, const char *account, int64_t created)
{
    apikey_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.account, sizeof r.account, "%s", account);
    snprintf(r.name, sizeof r.name, "name of %s", id);
    snprintf(r.scopes, sizeof r.scopes, "proxies:read");
    for (int i = 0; i < APIKEY_HASH_LEN; i++)
        r.hash[i] = (unsigned char)(id[i % APIKEY_ID_LEN] + i);
    r.created = created;
    r.expires = created + 86400;
    /* Some records carry an address allowlist (ABI 2), as the core writes it. */
    if (id[3] == 'A')
        snprintf(r.allow_from, sizeof r.allow_from, "10.0.0.0/8 2001:db8::/32");
    return r;
}

static int same(const apikey_record *a, const apikey_record *b)
{
    return !strcmp(a->id, b->id) && !strcmp(a->account, b->account) && !strcmp(a->name, b->name) &&
           !strcmp(a->scopes, b->scopes) && !memcmp(a->hash, b->hash, APIKEY_HASH_LEN) &&
           a->created == b->created && a->expires == b->expires && a->last_used == b->last_used &&
           a->revoked == b->revoked && !strcmp(a->allow_from, b->allow_from);
}

static int insert_all(void *h, const apikey_record *r, int n)
{
    int st = ops->begin(h);
    for (int i = 0; i < n && st == APIKEY_ST_OK; i++)
        st = ops->insert(h, &r[i]);
    if (st != APIKEY_ST_OK) {
        ops->rollback(h);
        return st;
    }
    return ops->commit(h);
}

static void test_table(void)
{
    CU_ASSERT(ops->size >= offsetof(apikey_store_ops, touch) + sizeof ops->touch);
    CU_ASSERT_EQUAL(ops->abi, APIKEY_STORE_ABI_VERSION);
    CU_ASSERT_STRING_EQUAL(ops->scheme, scheme);
    size_t n = strlen(ops->scheme);
    CU_ASSERT(n >= 1 && n <= 15 && strspn(ops->scheme, "abcdefghijklmnopqrstuvwxyz") == n);
    CU_ASSERT(ops->open && ops->close && ops->lookup && ops->each && ops->begin && ops->insert &&
              ops->update && ops->commit && ops->rollback && ops->touch);
}

/* Without create, a missing store is UNAVAILABLE (logged), never an empty one. */
static void test_missing_store_unavailable(void)
{
    char *loc = fresh_location();
    void *h = (void *)&h;
    int before = logged;
    int st = ops->open(loc, 0, &host, &h);
    if (st == APIKEY_ST_OK) { /* a backend that opens at the first read */
        apikey_record out;
        st = ops->lookup(h, "abiNone1", &out);
        ops->close(h);
    } else {
        CU_ASSERT_PTR_EQUAL(h, (void *)&h); /* left alone */
    }
    CU_ASSERT_EQUAL(st, APIKEY_ST_UNAVAILABLE);
    CU_ASSERT(logged > before);
    free(loc);
}

static int count_cb(const apikey_record *r, void *arg)
{
    (void)r;
    ++*(int *)arg;
    return APIKEY_ST_OK;
}

static void test_empty_store(void)
{
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    apikey_record out;
    CU_ASSERT_EQUAL(ops->lookup(h, "abiNone1", &out), APIKEY_ST_NOTFOUND);
    int n = 0;
    CU_ASSERT_EQUAL(ops->each(h, NULL, count_cb, &n), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(n, 0);
    ops->close(h);
    /* Made once, it opens without create. */
    h = NULL;
    CU_ASSERT_EQUAL(ops->open(loc, 0, &host, &h), APIKEY_ST_OK);
    if (h)
        ops->close(h);
    free(loc);
}

/* Inside a transaction, reads see its own writes; insert of a present id
 * is CONFLICT, update of a missing one NOTFOUND; commit keeps it all. */
static void test_transaction(void)
{
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    apikey_record a = rec_of("abiAaaa1", "alice", 1800000000), out;
    apikey_record b = rec_of("abiBbbb2", "bob", 1800000001);
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->insert(h, &a), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &a));
    CU_ASSERT_EQUAL(ops->insert(h, &a), APIKEY_ST_CONFLICT);
    CU_ASSERT_EQUAL(ops->update(h, &b), APIKEY_ST_NOTFOUND);
    /* A refused write leaves the transaction usable. */
    CU_ASSERT_EQUAL(ops->insert(h, &b), APIKEY_ST_OK);
    a.expires = 0;
    snprintf(a.scopes, sizeof a.scopes, "*");
    CU_ASSERT_EQUAL(ops->update(h, &a), APIKEY_ST_OK);
    int n = 0;
    CU_ASSERT_EQUAL(ops->each(h, NULL, count_cb, &n), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(ops->commit(h), APIKEY_ST_OK);
    ops->close(h);

    /* Durable: another handle sees it. */
    h = NULL;
    CU_ASSERT_EQUAL_FATAL(ops->open(loc, 0, &host, &h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &a));
    CU_ASSERT_EQUAL(ops->lookup(h, b.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &b));
    if (ops->size >= offsetof(apikey_store_ops, lookup_auth) + sizeof ops->lookup_auth &&
        ops->lookup_auth) {
        CU_ASSERT_EQUAL(ops->lookup_auth(h, b.id, &out), APIKEY_ST_OK);
        CU_ASSERT(!memcmp(out.hash, b.hash, APIKEY_HASH_LEN) && out.revoked == 0);
        CU_ASSERT_EQUAL(ops->lookup_auth(h, "abiNone1", &out), APIKEY_ST_NOTFOUND);
    }
    ops->close(h);
    free(loc);
}

static void test_rollback(void)
{
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    apikey_record a = rec_of("abiAaaa1", "alice", 1800000000), c = rec_of("abiCccc3", "carol", 1800000002);
    CU_ASSERT_EQUAL_FATAL(insert_all(h, &a, 1), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->insert(h, &c), APIKEY_ST_OK);
    apikey_record a2 = a;
    snprintf(a2.name, sizeof a2.name, "renamed");
    CU_ASSERT_EQUAL(ops->update(h, &a2), APIKEY_ST_OK);
    ops->rollback(h);
    apikey_record out;
    CU_ASSERT_EQUAL(ops->lookup(h, c.id, &out), APIKEY_ST_NOTFOUND);
    CU_ASSERT_EQUAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &a));
    ops->close(h);
    free(loc);
}

typedef struct walk {
    char ids[8][APIKEY_ID_LEN + 1];
    int n, stop_after, answer;
} walk;

static int walk_cb(const apikey_record *r, void *arg)
{
    walk *w = arg;
    if (w->n < 8)
        snprintf(w->ids[w->n], sizeof w->ids[0], "%s", r->id);
    return ++w->n == w->stop_after ? w->answer : APIKEY_ST_OK;
}

/* Creation order, the account filter, STOP ends with OK, any other answer
 * ends with that answer. */
static void test_each(void)
{
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    /* Inserted out of id order: the walk follows creation, not ids. */
    apikey_record r[3] = {rec_of("abiZzzz9", "alice", 1800000000), rec_of("abiMmmm5", "bob", 1800000001),
                          rec_of("abiAaaa1", "alice", 1800000002)};
    CU_ASSERT_EQUAL_FATAL(insert_all(h, r, 3), APIKEY_ST_OK);
    walk w = {.stop_after = -1};
    CU_ASSERT_EQUAL(ops->each(h, NULL, walk_cb, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(w.n, 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_STRING_EQUAL(w.ids[i], r[i].id);
    w = (walk){.stop_after = -1};
    CU_ASSERT_EQUAL(ops->each(h, "alice", walk_cb, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(w.n, 2);
    CU_ASSERT_STRING_EQUAL(w.ids[0], r[0].id);
    CU_ASSERT_STRING_EQUAL(w.ids[1], r[2].id);
    w = (walk){.stop_after = 1, .answer = APIKEY_ST_STOP};
    CU_ASSERT_EQUAL(ops->each(h, NULL, walk_cb, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(w.n, 1);
    w = (walk){.stop_after = 2, .answer = APIKEY_ST_CONFLICT};
    CU_ASSERT_EQUAL(ops->each(h, NULL, walk_cb, &w), APIKEY_ST_CONFLICT);
    CU_ASSERT_EQUAL(w.n, 2);
    w = (walk){.stop_after = -1};
    CU_ASSERT_EQUAL(ops->each(h, "nobody", walk_cb, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(w.n, 0);
    ops->close(h);
    free(loc);
}

/* touch raises last_used, never lowers it, outside any transaction. */
static void test_touch(void)
{
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    apikey_record a = rec_of("abiAaaa1", "alice", 1800000000), out;
    CU_ASSERT_EQUAL_FATAL(insert_all(h, &a, 1), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(out.last_used, 0);
    CU_ASSERT_EQUAL(ops->touch(h, a.id, 1800000500), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(out.last_used, 1800000500);
    CU_ASSERT_EQUAL(ops->touch(h, a.id, 1800000100), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(out.last_used, 1800000500);
    CU_ASSERT_NOT_EQUAL(ops->touch(h, "abiNone1", 1800000600), APIKEY_ST_UNAVAILABLE);
    ops->close(h);
    free(loc);
}

/* A revocation is neither cleared nor moved; other fields of a revoked
 * record may still change; a refusal changes nothing. */
static void test_revocation_permanent(void)
{
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    apikey_record a = rec_of("abiAaaa1", "alice", 1800000000), out;
    a.revoked = 1800000100;
    CU_ASSERT_EQUAL_FATAL(insert_all(h, &a, 1), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    apikey_record w = a;
    w.revoked = 0;
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_CONFLICT);
    w.revoked = a.revoked + 1;
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_CONFLICT);
    w.revoked = a.revoked - 1;
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_CONFLICT);
    CU_ASSERT_EQUAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &a));
    w = a;
    w.expires = 0;
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->commit(h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->lookup(h, a.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &w));
    ops->close(h);
    free(loc);
}

typedef struct lists {
    int n, same;
    const apikey_record *want;
} lists;

static int list_cb(const apikey_record *rec, void *arg)
{
    lists *l = arg;
    l->same += !strcmp(rec->allow_from, l->want[l->n].allow_from);
    l->n++;
    return APIKEY_ST_OK;
}

/* allow_from is kept as it is, through every read, and an update replaces
 * it: to nothing, and to the longest list the core writes. */
static void test_allow_from(void)
{
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    apikey_record r[2] = {rec_of("abiAaaa1", "alice", 1800000000), rec_of("abiBbbb2", "bob", 1800000001)};
    CU_ASSERT_STRING_EQUAL(r[0].allow_from, "10.0.0.0/8 2001:db8::/32");
    CU_ASSERT_EQUAL_FATAL(insert_all(h, r, 2), APIKEY_ST_OK);
    apikey_record out;
    memset(&out, 'x', sizeof out);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, r[0].id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &r[0]));
    memset(&out, 'x', sizeof out);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, r[1].id, &out), APIKEY_ST_OK);
    CU_ASSERT_STRING_EQUAL(out.allow_from, "");
    if (APIKEY_STORE_HAS(ops, lookup_auth) && ops->lookup_auth) {
        memset(&out, 'x', sizeof out);
        CU_ASSERT_EQUAL(ops->lookup_auth(h, r[0].id, &out), APIKEY_ST_OK);
        CU_ASSERT_STRING_EQUAL(out.allow_from, r[0].allow_from);
    }
    lists l = {.want = r};
    CU_ASSERT_EQUAL(ops->each(h, NULL, list_cb, &l), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(l.n, 2);
    CU_ASSERT_EQUAL(l.same, 2);

    /* 16 entries of 49 characters and 15 spaces: 799 characters. */
    apikey_record w = r[1];
    size_t used = 0;
    for (int i = 0; i < APIKEY_ALLOW_ENTRIES; i++)
        used += (size_t)snprintf(w.allow_from + used, sizeof w.allow_from - used,
                                 "%sffff:ffff:ffff:ffff:ffff:ffff:255.255.255.%d/128", i ? " " : "",
                                 100 + i);
    CU_ASSERT_EQUAL(strlen(w.allow_from), sizeof w.allow_from - 1);
    apikey_record v = r[0];
    v.allow_from[0] = '\0';
    CU_ASSERT_EQUAL_FATAL(ops->begin(h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->update(h, &w), APIKEY_ST_OK);
    CU_ASSERT_EQUAL(ops->update(h, &v), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->commit(h), APIKEY_ST_OK);
    ops->close(h);
    h = NULL;
    CU_ASSERT_EQUAL_FATAL(ops->open(loc, 0, &host, &h), APIKEY_ST_OK);
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, w.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &w));
    CU_ASSERT_EQUAL_FATAL(ops->lookup(h, v.id, &out), APIKEY_ST_OK);
    CU_ASSERT(same(&out, &v));
    ops->close(h);
    free(loc);
}

/* A store that cannot be read answers UNAVAILABLE, never NOTFOUND: for the
 * file stores, a file of garbage; for pgsql, a server that is not there. */
static void test_unreadable_unavailable(void)
{
    void *h = NULL;
    char *loc = NULL;
    if (!strcmp(scheme, "pgsql")) {
        loc = strdup("host=127.0.0.1 port=1 dbname=nothing connect_timeout=2");
    } else if (!strcmp(scheme, "json") || !strcmp(scheme, "sqlite")) {
        h = open_new(&loc);
        apikey_record a = rec_of("abiAaaa1", "alice", 1800000000);
        CU_ASSERT_EQUAL_FATAL(insert_all(h, &a, 1), APIKEY_ST_OK);
        ops->close(h);
        h = NULL;
        /* A new file of garbage in its place (SQLite's WAL, if any, gone). */
        char *tmp = tu_path("garbage"), wal[4200];
        FILE *f = fopen(tmp, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        for (int i = 0; i < 8192; i++)
            fputc("{]\x01garbage"[i % 10], f);
        fclose(f);
        CU_ASSERT_EQUAL(rename(tmp, loc), 0);
        snprintf(wal, sizeof wal, "%s-wal", loc);
        unlink(wal);
        free(tmp);
    } else {
        return; /* a third party's store: only the missing store above */
    }
    int before = logged;
    int st = ops->open(loc, 0, &host, &h);
    if (st == APIKEY_ST_OK) {
        apikey_record out;
        st = ops->lookup(h, "abiAaaa1", &out);
        if (st == APIKEY_ST_UNAVAILABLE) {
            CU_ASSERT_EQUAL(ops->lookup(h, "abiNone1", &out), APIKEY_ST_UNAVAILABLE);
        }
        ops->close(h);
    }
    if (st != APIKEY_ST_UNAVAILABLE)
        fprintf(stderr, "  an unreadable %s store answered %d\n", scheme, st);
    CU_ASSERT_EQUAL(st, APIKEY_ST_UNAVAILABLE);
    CU_ASSERT(logged > before);
    free(loc);
}

/* A store's prefetch, where it has one, is a hint and only for a store
 * that allows concurrent lookups: called for any id, on an empty store, on
 * a host's handle before anything of the store was read and between
 * lookups, it changes no answer and never faults. */
static void test_prefetch_is_a_hint(void)
{
    if (ops->size < offsetof(apikey_store_ops, prefetch) + sizeof ops->prefetch || !ops->prefetch)
        return;
    CU_ASSERT(ops->flags & APIKEY_STORE_CONCURRENT_LOOKUP);
    const char *ids[] = {"abiAaaa1", "abiNone1", "00000000", "zzzzzzzz", "ZZZZZZZZ"};
    size_t nids = sizeof ids / sizeof *ids;
    char *loc;
    void *h = open_new(&loc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    for (size_t i = 0; i < nids; i++)
        ops->prefetch(h, ids[i]);
    apikey_record r[3] = {rec_of("abiAaaa1", "alice", 1800000000), rec_of("abiBbbb2", "bob", 1800000001),
                          rec_of("abiCccc3", "carol", 1800000002)},
                  out;
    CU_ASSERT_EQUAL_FATAL(insert_all(h, r, 3), APIKEY_ST_OK);
    ops->close(h);
    h = NULL;
    CU_ASSERT_EQUAL_FATAL(ops->open(loc, 0, &host, &h), APIKEY_ST_OK);
    for (size_t i = 0; i < nids; i++)
        ops->prefetch(h, ids[i]);
    for (int i = 0; i < 3; i++) {
        ops->prefetch(h, r[i].id);
        CU_ASSERT_EQUAL(ops->lookup(h, r[i].id, &out), APIKEY_ST_OK);
        CU_ASSERT(same(&out, &r[i]));
    }
    for (size_t i = 0; i < nids; i++)
        ops->prefetch(h, ids[i]);
    CU_ASSERT_EQUAL(ops->lookup(h, "abiNone1", &out), APIKEY_ST_NOTFOUND);
    ops->close(h);
    free(loc);
}

int main(void)
{
    scheme = getenv("APIKEY_TEST_STORE") ? getenv("APIKEY_TEST_STORE") : "json";
    const char *dir = getenv("APIKEY_STORE_DIR") ? getenv("APIKEY_STORE_DIR") : "build/store";
    if (!tu_store_available(scheme)) {
        fprintf(stderr, "test_store_abi: no usable %s/apikey_store_%s.so\n", dir, scheme);
        return 77;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/apikey_store_%s.so", dir, scheme);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    apikey_store_entry_fn entry = dl ? (apikey_store_entry_fn)dlsym(dl, APIKEY_STORE_ENTRY) : NULL;
    ops = entry ? entry() : NULL;
    if (!ops) {
        fprintf(stderr, "test_store_abi: %s: no %s: %s\n", path, APIKEY_STORE_ENTRY, dlerror());
        return 1;
    }
    printf("store ABI of %s\n", path);
    CU_TestInfo tests[] = {
        {"the table: size, abi, scheme, every required slot", test_table},
        {"without create, a missing store is unavailable", test_missing_store_unavailable},
        {"an empty store: not found, no records; opens again without create", test_empty_store},
        {"a transaction reads its own writes; conflict, not found; commit is durable", test_transaction},
        {"rollback applies nothing", test_rollback},
        {"each: creation order, account, STOP, another answer", test_each},
        {"touch raises last used, never lowers it", test_touch},
        {"a revocation is neither cleared nor moved", test_revocation_permanent},
        {"allow_from is kept as it is and replaced by an update", test_allow_from},
        {"an unreadable store is unavailable, not empty", test_unreadable_unavailable},
        {"a prefetch is a hint: any id, any state, no answer changed", test_prefetch_is_a_hint},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"store ABI", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
