/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey-syncd (man/apikey-syncd.8): keeps a host's replica of a
 * PostgreSQL store of record. */
#ifndef APIKEY_SYNCD_H
#define APIKEY_SYNCD_H

#include <sqlite3.h>
#include <stdint.h>

#include "apikey_store.h"
#include "replica.h"
#include "../store/sql/sql_schema.h"

/* One line on standard error (the journal under systemd). */
void syncd_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

typedef struct replica_db {
    const char *folder;
    char path[4200];
    sqlite3 *db;
    sqlite3_stmt *upsert, *del, *seq;
    int64_t applied; /* the last change applied; -1: never copied */
} replica_db;

/* 0, or -1 said. */
int replica_db_open(replica_db *r, const char *folder);
void replica_db_close(replica_db *r);
/* A transaction of changes; whole: a full copy (every row replaced). */
int replica_db_begin(replica_db *r, int whole);
int replica_db_put(replica_db *r, const apikey_record *rec);
int replica_db_delete(replica_db *r, const char *id);
/* Commit with seq as the last change applied, or roll back. */
int replica_db_commit(replica_db *r, int64_t seq);
void replica_db_rollback(replica_db *r);
/* After a full copy: the WAL moved into the file. */
void replica_db_compact(replica_db *r);
/* Replace the contact line: contact at at_ms, the last change applied. */
int replica_db_contact(replica_db *r, int64_t at_ms);

/* Uses told by hosts, the latest time per key, until carried. At most
 * USES_MAX keys (three quarters of the slots); syncd carries them at once
 * when it is full. */
enum { USES_SLOTS = 65536, USES_MAX = USES_SLOTS / 4 * 3 };
typedef struct uses_table {
    size_t n;
    struct {
        char id[APIKEY_ID_LEN + 1]; /* id[0] 0: empty */
        int64_t when;
    } slot[USES_SLOTS];
} uses_table;

/* 0, or -1 when the table is full (the use is dropped). */
int uses_add(uses_table *t, const char *id, int64_t when);
void uses_clear(uses_table *t);

#endif
