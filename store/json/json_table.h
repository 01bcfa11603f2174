/* SPDX-License-Identifier: BSD-2-Clause */
/* The JSON store's records in memory: in creation order, and found by id
 * through an open-addressing table. Knows nothing of files. */
#ifndef APIKEY_JSON_TABLE_H
#define APIKEY_JSON_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include "apikey_store.h"

typedef struct json_rec {
    char id[APIKEY_ID_LEN + 1];
    unsigned char hash[APIKEY_HASH_LEN];
    int64_t created, expires, last_used, revoked;
    char *account, *name, *scopes, *allow_from;
    uint32_t rate_limit, rate_period, rate_burst; /* all 0: no limit */
    /* The strings are this record's own, one allocation that account
     * starts; else borrowed (json_db_append_borrowed). */
    int owned;
    /* A hash of account: one account's list compares it, in the record,
     * before following the pointer (100,000 strcmp through pointers were a
     * list's whole cost). Set by the table. */
    uint32_t account_tag;
} json_rec;

typedef struct json_db {
    json_rec *recs; /* in creation order */
    size_t n, cap;
    /* Open addressing by id: record index + 1 in the low half, 0 empty, and
     * 32 more bits of the id's hash in the high half, so that a probe reads
     * a record only when it very likely holds the id. */
    uint64_t *slots;
    size_t nslots;
    char *arena; /* strings copied for borrowed records (json_db_arena) */
} json_db;

int json_db_init(json_db *db);
void json_db_clear(json_db *db);
void json_db_free(json_db *db);
int json_db_get(const json_db *db, const char *id, apikey_record *out);
int json_db_each(const json_db *db, const char *account, apikey_record_cb cb, void *arg);
int json_db_insert(json_db *db, const apikey_record *rec);
/* The same for a record whose strings are borrowed and copied. */
int json_db_append(json_db *db, const json_rec *view);
/* The same, keeping the strings' pointers: they must outlive the record
 * (the mapped index, while a write transaction reads from it). */
int json_db_append_borrowed(json_db *db, const json_rec *view);
/* Memory for len bytes of strings, freed with the records; NULL on failure.
 * Replaces the previous one: call it once per load. */
char *json_db_arena(json_db *db, size_t len);
/* A load that knows the ids to come starts fetching their hash slots. */
void json_db_prefetch_slot(const json_db *db, const char *id);
/* Room for n records, so a load does not grow and rehash as it goes. */
int json_db_reserve(json_db *db, size_t n);
int json_db_update(json_db *db, const apikey_record *rec);
/* Raise a record's last-used time (hosts record uses in the index). */
void json_db_raise_last_used(json_db *db, const char *id, int64_t when);

#endif
