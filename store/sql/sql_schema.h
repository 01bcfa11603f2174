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

#define SQL_SCHEMA_VERSION 1

/* Migrations[v] brings a store from version v to v + 1, in a dialect's
 * types: an auto-numbered primary key (creation order), bytes, 64-bit
 * integers. An initializer for const char *const [SQL_SCHEMA_VERSION]. */
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
    }

/* The columns of a record, in the order sql_decode_record takes them. */
#define SQL_COLS "id, account, name, scopes, hash, created, expires, last_used, revoked"
enum { SQL_NCOLS = 9 };

/* The key, else its neighbour in id order after it: a miss reads and
 * decodes a row as a hit does (the stores add what they need around it). */
#define SQL_LOOKUP_AFTER(P) "SELECT " SQL_COLS " FROM apikey_keys WHERE id >= " P(1) " ORDER BY id LIMIT 1"
#define SQL_EACH "SELECT " SQL_COLS " FROM apikey_keys ORDER BY seq"
#define SQL_EACH_ACCOUNT(P) "SELECT " SQL_COLS " FROM apikey_keys WHERE account = " P(1) " ORDER BY seq"
#define SQL_INSERT(P)                                                                            \
    "INSERT INTO apikey_keys (" SQL_COLS ") VALUES (" P(1) ", " P(2) ", " P(3) ", " P(4) ", " P(5) \
    ", " P(6) ", " P(7) ", " P(8) ", " P(9) ")"
/* A revocation is never cleared nor moved: such an update changes no row,
 * and sql_unchanged tells why. */
#define SQL_UPDATE(P)                                                                            \
    "UPDATE apikey_keys SET account = " P(2) ", name = " P(3) ", scopes = " P(4) ", hash = " P(5) \
    ", created = " P(6) ", expires = " P(7) ", last_used = " P(8) ", revoked = " P(9)             \
    " WHERE id = " P(1) " AND (revoked = 0 OR revoked = " P(9) ")"
#define SQL_PRESENT(P) "SELECT revoked FROM apikey_keys WHERE id = " P(1)

/* An update that changed no row: the key is missing (NOTFOUND), or there
 * and its revocation would change (CONFLICT). present: SQL_PRESENT found it. */
static inline int sql_unchanged(int present)
{
    return present ? APIKEY_ST_CONFLICT : APIKEY_ST_NOTFOUND;
}

/* Whether a reader can use a store at schema version v (-1: it has no
 * schema). OK, or UNAVAILABLE with the line logged; store names it
 * ("sqlite:/path", "pgsql:dbname=..."). */
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

/* A row of SQL_COLS into a record: 0, or -1 when a value is of another
 * type, does not fit, or the record fails apikey_record_ok. */
int sql_decode_record(const sql_value v[SQL_NCOLS], apikey_record *out);

#endif
