/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The change log of a PostgreSQL store of record (doc/STORES.md, "A
 * fleet"): what the store creates and trims, and what apikey-syncd reads.
 *
 * A trigger on the keys' table appends the id of every key written to
 * apikey_changes, in the writing transaction, so every writer is covered:
 * create, batch, revoke, rotate, update, copy, a host of the previous
 * release, an UPDATE typed by hand. A change of last_used alone is not
 * logged (a use is not a change a replica needs). The test is in the
 * function, not in a WHEN clause: a trigger's WHEN ties the columns, and
 * PostgreSQL would then refuse to alter their types. The row says which key
 * changed, not how: a reader applies the key's current row, so applying a
 * change twice, or late, does no harm.
 *
 * The trigger takes the writers' advisory lock before it draws a sequence
 * number, so numbers are drawn in commit order: a reader that has applied
 * everything up to n never later finds a committed n - 1 it skipped (a
 * plain bigserial would let a slower transaction commit a smaller number
 * after a reader passed it). pg_notify is a wake-up only: its payload is
 * empty, and a listener that missed it loses nothing (the log is read by
 * number).
 *
 * apikey_changes_trimmed holds the highest number deleted by the trim:
 * a reader whose position is below it has missed changes and copies the
 * whole store again.
 */
#ifndef APIKEY_PGSQL_CHANGES_H
#define APIKEY_PGSQL_CHANGES_H

#include "../sql/sql_schema.h"

/* pg_advisory_xact_lock key of the writers' lock ("apky"). */
#define PGSQL_WRITER_LOCK "1634758777"
#define PGSQL_CHANNEL "apikey_changes"

/* Whether the log exists (one boolean). */
#define PGSQL_LOG_PRESENT                                                                        \
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c"                                           \
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"                                  \
    " WHERE c.relname = 'apikey_changes_trimmed' AND n.nspname = ANY (current_schemas(false)))"

/* The log, its trim mark and its trigger, on the keys' table of schema
 * SQL_SCHEMA_VERSION (a rename of that table keeps its triggers). Run
 * under the writers' lock inside a write transaction. */
#define PGSQL_LOG_CREATE                                                                         \
    "CREATE TABLE apikey_changes (seq BIGSERIAL PRIMARY KEY, id TEXT,"                           \
    " at TIMESTAMPTZ NOT NULL DEFAULT now());"                                                   \
    "CREATE TABLE apikey_changes_trimmed (seq BIGINT NOT NULL);"                                 \
    "INSERT INTO apikey_changes_trimmed VALUES (0);"                                             \
    "CREATE FUNCTION apikey_log_change() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"          \
    " IF TG_OP = 'UPDATE' AND (OLD.id, OLD.account, OLD.name, OLD.scopes, OLD.hash, OLD.created," \
    " OLD.expires, OLD.revoked, OLD.allow_from, OLD.rate_limit, OLD.rate_period, OLD.rate_burst)" \
    " IS NOT DISTINCT FROM (NEW.id, NEW.account, NEW.name, NEW.scopes, NEW.hash, NEW.created,"   \
    " NEW.expires, NEW.revoked, NEW.allow_from, NEW.rate_limit, NEW.rate_period, NEW.rate_burst)" \
    " THEN RETURN NULL; END IF;"                                                                 \
    " PERFORM pg_advisory_xact_lock(" PGSQL_WRITER_LOCK ");"                                     \
    " INSERT INTO apikey_changes (id) VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id"            \
    " ELSE NEW.id END);"                                                                         \
    " PERFORM pg_notify('" PGSQL_CHANNEL "', '');"                                               \
    " RETURN NULL; END $f$;"                                                                     \
    "CREATE TRIGGER apikey_log AFTER INSERT OR UPDATE OR DELETE ON " SQL_TABLE_NOW                 \
    " FOR EACH ROW EXECUTE PROCEDURE apikey_log_change();"

/* How long the log keeps a change: a replica away longer copies the
 * whole store again. */
#define PGSQL_LOG_KEEP "7 days"
/* Run inside one write transaction in PGSQL_LOG_TRIM_ONE_IN (the writer
 * draws, from arc4random: parsing and planning it is most of what a
 * revocation costs the server, so the other writes do not send it): deletes
 * what is older than PGSQL_LOG_KEEP and raises the trim mark to the
 * highest number deleted. The oldest change, read through the primary key,
 * gates the scan of the whole log (it has no index on at): while it is
 * younger than PGSQL_LOG_KEEP there is nothing to delete, bar a
 * transaction that began that long before its COMMIT, which a later trim
 * takes. */
#define PGSQL_LOG_TRIM_ONE_IN 64
#define PGSQL_LOG_TRIM                                                                           \
    "WITH d AS (DELETE FROM apikey_changes WHERE at < now() - interval '" PGSQL_LOG_KEEP "'"     \
    " AND (SELECT at FROM apikey_changes ORDER BY seq LIMIT 1) < now() - interval '"            \
    PGSQL_LOG_KEEP "' RETURNING seq) UPDATE apikey_changes_trimmed SET seq = (SELECT max(seq)"  \
    " FROM d) WHERE (SELECT max(seq) FROM d) > seq"
/* Whether the log is there, with the schema's version (one int4): a write
 * transaction that does not trim still fails when the log is missing, and
 * then takes the long way that creates it. */
#define PGSQL_VERSION_AND_LOG "SELECT version, (SELECT seq FROM apikey_changes_trimmed) FROM apikey_schema"

#endif
