/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the two SQL stores (sqlite, pgsql) share: their tables and
 * migrations, their statements (so the rule that a revocation is neither
 * cleared nor moved is one WHERE clause), the schema verdict, and the
 * decoding of a row into a record. Compiled into each of them (the
 * Makefile's STORE_SHARED); it links nothing.
 *
 * The statements are string constants built by macros, as SQLite and
 * PostgreSQL name parameters differently: P(n) is "?" #n or "$" #n.
 */
#ifndef APIKEY_SQL_SCHEMA_H
#define APIKEY_SQL_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "apikey_store.h"

#define SQL_SCHEMA_VERSION 3
/* The oldest version this build reads: a reader (a host, which may not
 * write) keeps working on it until a writer upgrades it. */
#define SQL_SCHEMA_OLDEST 1

/* Migrations[v] brings a store from version v to v + 1, in a dialect's
 * types: an auto-numbered primary key (creation order), bytes, 64-bit
 * integers. An initializer for const char *const [SQL_SCHEMA_VERSION].
 *
 * Every change of the keys' row layout moves the keys to a table of a new
 * name (SQL_TABLE), so a statement prepared against the old layout, in a
 * running host of this build or of an older one, fails ("no such table")
 * instead of reading on without the new columns: SQLite and PostgreSQL keep
 * such a statement valid across ADD COLUMN, and a host of the previous
 * release would pass a key created with an allowlist from any address.
 * This build's readers then re-read the version, prepare anew and retry
 * once (a cost only on that failure, none on the hot path); older builds answer "unavailable", and refuse the
 * store when they reopen it (its version is newer). 1 -> 2 is O(1) in both
 * databases (a rename and a column with a constant default).
 * 2 -> 3, the rate limits step: the keys move to apikey_keys_v3 and gain
 * rate_limit, rate_period and rate_burst (0: no limit), O(1) the same way;
 * it touches nothing but the keys' table. */
#define SQL_MIGRATIONS(SEQ, BYTES, INT64)                                                        \
    {                                                                                            \
        "CREATE TABLE apikey_schema (version INTEGER NOT NULL);"                                 \
        "INSERT INTO apikey_schema VALUES (0);"                                                  \
        "CREATE TABLE apikey_keys ("                                                             \
        " seq " SEQ ","                                                                          \
        " id TEXT NOT NULL UNIQUE,"                                                              \
        " account TEXT NOT NULL,"                                                                \
        " name TEXT NOT NULL,"                                                                   \
        " scopes TEXT NOT NULL,"                                                                 \
        " hash " BYTES " NOT NULL,"                                                              \
        " created " INT64 " NOT NULL,"                                                           \
        " expires " INT64 " NOT NULL DEFAULT 0,"                                                 \
        " last_used " INT64 " NOT NULL DEFAULT 0,"                                               \
        " revoked " INT64 " NOT NULL DEFAULT 0);"                                                \
        "CREATE INDEX apikey_keys_account ON apikey_keys(account);",                             \
        "ALTER TABLE apikey_keys RENAME TO " SQL_TABLE_2 ";"                                     \
        "ALTER TABLE " SQL_TABLE_2 " ADD COLUMN allow_from TEXT NOT NULL DEFAULT '';",           \
        "ALTER TABLE " SQL_TABLE_2 " RENAME TO " SQL_TABLE_3 ";"                                 \
        "ALTER TABLE " SQL_TABLE_3 " ADD COLUMN rate_limit " INT64 " NOT NULL DEFAULT 0;"        \
        "ALTER TABLE " SQL_TABLE_3 " ADD COLUMN rate_period " INT64 " NOT NULL DEFAULT 0;"       \
        "ALTER TABLE " SQL_TABLE_3 " ADD COLUMN rate_burst " INT64 " NOT NULL DEFAULT 0;",       \
    }

/* The keys' table and columns of each layout (a version from
 * SQL_SCHEMA_OLDEST up), in the order sql_decode_record takes them.
 * Version 1 has no allowlists: its rows read as "" (any address); versions
 * 1 and 2 have no rate limits: their rows read as 0 (none). */
#define SQL_TABLE_1 "apikey_keys"
#define SQL_TABLE_2 "apikey_keys_v2"
#define SQL_TABLE_3 "apikey_keys_v3"
#define SQL_COLS_BASE "id, account, name, scopes, hash, created, expires, last_used, revoked"
#define SQL_NO_RATE ", CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT)"
#define SQL_COLS_1 SQL_COLS_BASE ", CAST('' AS TEXT)" SQL_NO_RATE
#define SQL_COLS_2 SQL_COLS_BASE ", allow_from" SQL_NO_RATE
#define SQL_COLS_3 SQL_COLS_BASE ", allow_from, rate_limit, rate_period, rate_burst"
/* The layout this build writes (SQL_SCHEMA_VERSION's): what the change log,
 * apikey-syncd and a replica use. */
#define SQL_TABLE_NOW SQL_TABLE_3
#define SQL_COLS_NOW SQL_COLS_3
enum { SQL_NCOLS = 13, SQL_LAYOUTS = SQL_SCHEMA_VERSION - SQL_SCHEMA_OLDEST + 1 };

/* The reads, per layout (T a table, C its columns). The key, else its
 * neighbour in id order after it: a miss reads and decodes a row as a hit
 * does (the stores add what they need around it). */
#define SQL_LOOKUP_AFTER(P, T, C) "SELECT " C " FROM " T " WHERE id >= " P(1) " ORDER BY id LIMIT 1"
#define SQL_EACH(T, C) "SELECT " C " FROM " T " ORDER BY seq"
#define SQL_EACH_ACCOUNT(P, T, C) "SELECT " C " FROM " T " WHERE account = " P(1) " ORDER BY seq"

/* The writes: only ever at the newest layout, as a write transaction
 * first brings the store to it. */
#define SQL_INSERT(P)                                                                            \
    "INSERT INTO " SQL_TABLE_3 " (" SQL_COLS_3 ") VALUES (" P(1) ", " P(2) ", " P(3) ", " P(4)     \
    ", " P(5) ", " P(6) ", " P(7) ", " P(8) ", " P(9) ", " P(10) ", " P(11) ", " P(12) ", " P(13) ")"
/* A revocation is never cleared nor moved: such an update changes no row,
 * and sql_unchanged tells why. */
#define SQL_UPDATE(P)                                                                            \
    "UPDATE " SQL_TABLE_3 " SET account = " P(2) ", name = " P(3) ", scopes = " P(4)               \
    ", hash = " P(5) ", created = " P(6) ", expires = " P(7) ", last_used = " P(8)                \
    ", revoked = " P(9) ", allow_from = " P(10) ", rate_limit = " P(11) ", rate_period = " P(12)  \
    ", rate_burst = " P(13) " WHERE id = " P(1)                                                   \
    " AND (revoked = 0 OR revoked = " P(9) ")"
#define SQL_PRESENT(P) "SELECT revoked FROM " SQL_TABLE_3 " WHERE id = " P(1)

/* An update that changed no row: the key is missing (NOTFOUND), or there
 * and its revocation would change (CONFLICT). present: SQL_PRESENT found it. */
static inline int sql_unchanged(int present)
{
    return present ? APIKEY_ST_CONFLICT : APIKEY_ST_NOTFOUND;
}

/* Whether a reader can use a store at schema version v (-1: it has no
 * schema): from SQL_SCHEMA_OLDEST to SQL_SCHEMA_VERSION. OK, or
 * UNAVAILABLE with the line logged; store names it ("sqlite:/path",
 * "pgsql:dbname=..."). */
int sql_schema_check(const apikey_store_host *host, const char *store, int v);
/* After migrating to v: UNAVAILABLE (logged) when the store is newer. */
int sql_schema_newer(const apikey_store_host *host, const char *store, int v);

/* One column's value as a store read it. */
typedef enum { SQL_TEXT, SQL_BYTES, SQL_INT64, SQL_OTHER } sql_kind;
typedef struct sql_value {
    sql_kind kind; /* what the column holds; SQL_OTHER: NULL or another type */
    const void *p; /* text or bytes, len long (text need not end in NUL) */
    size_t len;
    int64_t i;
} sql_value;

/* A row of SQL_COLS_<layout> into a record: 0, or -1 when a value is of another
 * type, does not fit, or the record fails apikey_record_ok. */
int sql_decode_record(const sql_value v[SQL_NCOLS], apikey_record *out);

#endif
