/* SPDX-License-Identifier: BSD-2-Clause */
/* The JSON store's records in memory: creation order, and an open-addressing
 * table by id. */
#include "json_table.h"

#include <stdlib.h>
#include <string.h>

static uint64_t id_hash(const char *id)
{
    uint64_t k;
    memcpy(&k, id, sizeof k);
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 29);
}

/* FNV-1a */
static uint32_t account_tag(const char *account)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)account; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

#define SLOT_TAG(h) ((h) & 0xFFFFFFFF00000000ull)
#define SLOT_REC(v) ((uint32_t)(v))

static size_t find_slot(const json_db *db, const char *id)
{
    uint64_t h = id_hash(id);
    size_t mask = db->nslots - 1, i = (size_t)(h >> 7) & mask;
    while (db->slots[i] && (SLOT_TAG(db->slots[i]) != SLOT_TAG(h) ||
                            strcmp(db->recs[SLOT_REC(db->slots[i]) - 1].id, id) != 0))
        i = (i + 1) & mask;
    return i;
}

void json_db_prefetch_slot(const json_db *db, const char *id)
{
    __builtin_prefetch(&db->slots[(size_t)(id_hash(id) >> 7) & (db->nslots - 1)]);
}

static void set_slot(json_db *db, size_t slot, const char *id, size_t r)
{
    db->slots[slot] = SLOT_TAG(id_hash(id)) | (uint32_t)(r + 1);
}

static int rehash(json_db *db, size_t nslots)
{
    uint64_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return -1;
    free(db->slots);
    db->slots = slots;
    db->nslots = nslots;
    for (size_t r = 0; r < db->n; r++)
        set_slot(db, find_slot(db, db->recs[r].id), db->recs[r].id, r);
    return 0;
}

static int grow_index(json_db *db)
{
    return rehash(db, db->nslots ? db->nslots * 2 : 64);
}

static int grow_recs(json_db *db, size_t cap)
{
    /* Not zeroed: append initialises each record it uses. */
    json_rec *recs = realloc(db->recs, cap * sizeof *recs);
    if (!recs)
        return -1;
    db->recs = recs;
    db->cap = cap;
    return 0;
}

char *json_db_arena(json_db *db, size_t len)
{
    free(db->arena);
    return db->arena = malloc(len ? len : 1);
}

int json_db_reserve(json_db *db, size_t n)
{
    size_t nslots = db->nslots;
    while (nslots < 2 * (n + 1))
        nslots *= 2;
    if (nslots != db->nslots && rehash(db, nslots) != 0)
        return APIKEY_ST_NOMEM;
    /* With room for the few records a write then adds. */
    if (n > db->cap && grow_recs(db, n + 64) != 0)
        return APIKEY_ST_NOMEM;
    return APIKEY_ST_OK;
}

int json_db_init(json_db *db)
{
    memset(db, 0, sizeof *db);
    return grow_index(db);
}

void json_db_clear(json_db *db)
{
    for (size_t i = 0; i < db->n; i++) {
        if (db->recs[i].owned)
            free(db->recs[i].account);
    }
    free(db->arena);
    db->arena = NULL;
    db->n = 0;
    memset(db->slots, 0, db->nslots * sizeof *db->slots);
}

void json_db_free(json_db *db)
{
    json_db_clear(db);
    free(db->recs);
    free(db->slots);
    memset(db, 0, sizeof *db);
}

static const json_rec *get(const json_db *db, const char *id)
{
    uint32_t r = SLOT_REC(db->slots[find_slot(db, id)]);
    return r ? &db->recs[r - 1] : NULL;
}

/* -1 for a record that is not sound (one read from a forged index). */
static int to_record(const json_rec *j, apikey_record *out)
{
    memcpy(out->id, j->id, sizeof out->id);
    memcpy(out->hash, j->hash, sizeof out->hash);
    out->created = j->created;
    out->expires = j->expires;
    out->last_used = j->last_used;
    out->revoked = j->revoked;
    /* Lengths were checked when the record entered the store. */
    strcpy(out->account, j->account);
    strcpy(out->name, j->name);
    strcpy(out->scopes, j->scopes);
    strcpy(out->allow_from, j->allow_from);
    out->rate_limit = j->rate_limit;
    out->rate_period = j->rate_period;
    out->rate_burst = j->rate_burst;
    return apikey_record_ok(out) ? 0 : -1;
}

int json_db_get(const json_db *db, const char *id, apikey_record *out)
{
    const json_rec *j = get(db, id);
    if (j)
        return to_record(j, out) == 0 ? APIKEY_ST_OK : APIKEY_ST_UNAVAILABLE;
    /* Copy some record as a hit would: an unknown id must cost what a wrong
     * secret costs, or timing tells which ids exist. */
    if (db->n) {
        (void)to_record(&db->recs[id_hash(id) % db->n], out);
        memset(out, 0, offsetof(apikey_record, account));
    }
    return APIKEY_ST_NOTFOUND;
}

int json_db_each(const json_db *db, const char *account, apikey_record_cb cb, void *arg)
{
    apikey_record rec;
    uint32_t tag = account ? account_tag(account) : 0;
    for (size_t i = 0; i < db->n; i++) {
        if (account && (db->recs[i].account_tag != tag || strcmp(db->recs[i].account, account) != 0))
            continue;
        if (to_record(&db->recs[i], &rec) != 0)
            return APIKEY_ST_UNAVAILABLE;
        int st = cb(&rec, arg);
        if (st == APIKEY_ST_STOP)
            return APIKEY_ST_OK;
        if (st != APIKEY_ST_OK)
            return st;
    }
    return APIKEY_ST_OK;
}

/* Copy a record whose strings are borrowed (view) into j: its four
 * strings in one allocation, one malloc a record as a store is loaded. */
static int fill_view(json_rec *j, const json_rec *view)
{
    const char *from[4] = {view->account, view->name, view->scopes, view->allow_from};
    size_t len[4], total = 0;
    for (int i = 0; i < 4; i++)
        total += len[i] = strlen(from[i]) + 1;
    char *block = malloc(total), *at = block;
    if (!block)
        return APIKEY_ST_NOMEM;
    char *to[4];
    for (int i = 0; i < 4; i++) {
        to[i] = memcpy(at, from[i], len[i]);
        at += len[i];
    }
    if (j->owned)
        free(j->account);
    *j = *view;
    j->id[APIKEY_ID_LEN] = '\0';
    j->account = to[0];
    j->name = to[1];
    j->scopes = to[2];
    j->allow_from = to[3];
    j->owned = 1;
    j->account_tag = account_tag(j->account);
    return APIKEY_ST_OK;
}

static json_rec view_of(const apikey_record *rec)
{
    json_rec v;
    memcpy(v.id, rec->id, sizeof v.id);
    memcpy(v.hash, rec->hash, sizeof v.hash);
    v.created = rec->created;
    v.expires = rec->expires;
    v.last_used = rec->last_used;
    v.revoked = rec->revoked;
    v.account = (char *)rec->account;
    v.name = (char *)rec->name;
    v.scopes = (char *)rec->scopes;
    v.allow_from = (char *)rec->allow_from;
    v.rate_limit = rec->rate_limit;
    v.rate_period = rec->rate_period;
    v.rate_burst = rec->rate_burst;
    return v;
}

int json_db_insert(json_db *db, const apikey_record *rec)
{
    json_rec v = view_of(rec);
    return json_db_append(db, &v);
}

static int append(json_db *db, const json_rec *view, int borrow)
{
    if (strnlen(view->id, sizeof view->id) != APIKEY_ID_LEN)
        return APIKEY_ST_CONFLICT;
    size_t slot = find_slot(db, view->id);
    if (db->slots[slot])
        return APIKEY_ST_CONFLICT;
    if ((db->n + 1) * 2 > db->nslots) {
        if (grow_index(db) != 0)
            return APIKEY_ST_NOMEM;
        slot = find_slot(db, view->id);
    }
    if (db->n == db->cap && grow_recs(db, db->cap ? db->cap * 2 : 16) != 0)
        return APIKEY_ST_NOMEM;
    json_rec *j = &db->recs[db->n];
    if (borrow) {
        *j = *view;
        j->id[APIKEY_ID_LEN] = '\0';
        j->owned = 0;
        j->account_tag = account_tag(j->account);
    } else {
        j->owned = 0;
        int st = fill_view(j, view);
        if (st != APIKEY_ST_OK)
            return st;
    }
    set_slot(db, slot, view->id, db->n);
    db->n++;
    return APIKEY_ST_OK;
}

int json_db_append(json_db *db, const json_rec *view)
{
    return append(db, view, 0);
}

int json_db_append_borrowed(json_db *db, const json_rec *view)
{
    return append(db, view, 1);
}

int json_db_update(json_db *db, const apikey_record *rec)
{
    json_rec *j = (json_rec *)get(db, rec->id);
    if (!j)
        return APIKEY_ST_NOTFOUND;
    if (j->revoked && rec->revoked != j->revoked)
        return APIKEY_ST_CONFLICT; /* revocation is permanent: neither cleared nor moved */
    json_rec v = view_of(rec);
    return fill_view(j, &v);
}

void json_db_raise_last_used(json_db *db, const char *id, int64_t when)
{
    json_rec *j = (json_rec *)get(db, id);
    if (j && when > j->last_used)
        j->last_used = when;
}
