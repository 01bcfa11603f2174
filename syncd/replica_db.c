/* SPDX-License-Identifier: BSD-2-Clause */
/* The writing side of a replica (loader/replica.h): keys.db, an SQLite
 * store in the sqlite backend's tables, and the contact line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syncd.h"

#define P(n) "?" #n
static const char *const migrations[SQL_SCHEMA_VERSION] = SQL_MIGRATIONS("INTEGER PRIMARY KEY", "BLOB", "INTEGER");
/* An upsert replaces every column but the row's own seq (creation order). */
static const char Q_UPSERT[] =
    SQL_INSERT(P) " ON CONFLICT (id) DO UPDATE SET account = excluded.account, name = excluded.name,"
                  " scopes = excluded.scopes, hash = excluded.hash, created = excluded.created,"
                  " expires = excluded.expires, last_used = excluded.last_used,"
                  " revoked = excluded.revoked, allow_from = excluded.allow_from,"
                  " rate_limit = excluded.rate_limit, rate_period = excluded.rate_period,"
                  " rate_burst = excluded.rate_burst";
#undef P
static const char Q_DELETE[] = "DELETE FROM " SQL_TABLE_NOW " WHERE id = ?1";
static const char Q_SEQ[] = "UPDATE apikey_replica SET seq = ?1";

static int say_db(replica_db *r, const char *what)
{
    syncd_say("replica %s: %s: %s", r->path, what, sqlite3_errmsg(r->db));
    return -1;
}

static int exec(replica_db *r, const char *sql)
{
    return sqlite3_exec(r->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : say_db(r, sql);
}

/* The file in group gid: a no-op in a setgid folder (the unit's), where
 * the call would need a capability. */
static int same_group(int fd, gid_t gid)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    return st.st_gid == gid ? 0 : fchown(fd, (uid_t)-1, gid);
}

/* keys.db as the sqlite backend would make it, readable by the folder's
 * group (hosts that are not root read through it), or opened as it is. */
static int create_file(replica_db *r, const char *folder)
{
    struct stat dir;
    if (stat(folder, &dir) != 0 || !S_ISDIR(dir.st_mode)) {
        syncd_say("replica %s: not a folder (create it: install -d -m 0750 -g apikey %s)", folder, folder);
        return -1;
    }
    int fd = open(r->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0 || same_group(fd, dir.st_gid) != 0 || fchmod(fd, 0640) != 0) {
        syncd_say("replica %s: cannot create: %s", r->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int schema(replica_db *r)
{
    sqlite3_stmt *q;
    int v = 0;
    if (sqlite3_prepare_v2(r->db, "SELECT version FROM apikey_schema", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    if (v > SQL_SCHEMA_VERSION) {
        syncd_say("replica %s: schema version %d is newer than this build (%d)", r->path, v,
                  SQL_SCHEMA_VERSION);
        return -1;
    }
    if (exec(r, "BEGIN IMMEDIATE") != 0)
        return -1;
    int bad = 0;
    for (; !bad && v < SQL_SCHEMA_VERSION; v++) {
        char set[64];
        snprintf(set, sizeof set, "UPDATE apikey_schema SET version = %d", v + 1);
        bad = exec(r, migrations[v]) || exec(r, set);
    }
    /* seq -1: nothing copied yet. */
    bad = bad || exec(r, "CREATE TABLE IF NOT EXISTS apikey_replica (seq INTEGER NOT NULL);"
                         "INSERT INTO apikey_replica SELECT -1 WHERE NOT EXISTS (SELECT 1 FROM apikey_replica)");
    if (bad) {
        exec(r, "ROLLBACK");
        return -1;
    }
    return exec(r, "COMMIT");
}

int replica_db_open(replica_db *r, const char *folder)
{
    memset(r, 0, sizeof *r);
    r->folder = folder;
    if (snprintf(r->path, sizeof r->path, "%s/" REPLICA_DB, folder) >= (int)sizeof r->path) {
        syncd_say("replica %s: the folder's name is too long", folder);
        return -1;
    }
    if (create_file(r, folder) != 0)
        return -1;
    if (sqlite3_open_v2(r->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
        say_db(r, "cannot open");
        replica_db_close(r);
        return -1;
    }
    /* As the sqlite backend's writers do: WAL kept after the last close, so
     * a host that may not create it can read. NORMAL: a batch lost to a
     * power cut is lost with its seq, and copied again. */
    int persist = 1;
    sqlite3_file_control(r->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    sqlite3_busy_timeout(r->db, 10000);
    if (exec(r, "PRAGMA journal_mode = WAL") || exec(r, "PRAGMA synchronous = NORMAL") || schema(r) ||
        sqlite3_prepare_v2(r->db, Q_UPSERT, -1, &r->upsert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db, Q_DELETE, -1, &r->del, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db, Q_SEQ, -1, &r->seq, NULL) != SQLITE_OK) {
        if (r->db)
            say_db(r, "cannot prepare");
        replica_db_close(r);
        return -1;
    }
    sqlite3_stmt *q;
    r->applied = -1;
    if (sqlite3_prepare_v2(r->db, "SELECT seq FROM apikey_replica", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            r->applied = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    return 0;
}

void replica_db_close(replica_db *r)
{
    sqlite3_finalize(r->upsert);
    sqlite3_finalize(r->del);
    sqlite3_finalize(r->seq);
    sqlite3_close(r->db);
    r->db = NULL;
    r->upsert = r->del = r->seq = NULL;
}

int replica_db_begin(replica_db *r, int whole)
{
    if (exec(r, "BEGIN IMMEDIATE") != 0)
        return -1;
    /* A full copy replaces every row in place, in one transaction: hosts
     * read the old rows until it commits (a new file renamed over this one
     * would leave them reading the old file for ever). */
    if (whole && exec(r, "DELETE FROM " SQL_TABLE_NOW) != 0) {
        exec(r, "ROLLBACK");
        return -1;
    }
    return 0;
}

static int step(replica_db *r, sqlite3_stmt *q, const char *what)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE ? 0 : say_db(r, what);
}

int replica_db_put(replica_db *r, const apikey_record *rec)
{
    sqlite3_stmt *q = r->upsert;
    const int64_t nums[4] = {rec->created, rec->expires, rec->last_used, rec->revoked};
    sqlite3_bind_text(q, 1, rec->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, rec->account, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, rec->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, rec->scopes, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 5, rec->hash, APIKEY_HASH_LEN, SQLITE_STATIC);
    for (int i = 0; i < 4; i++)
        sqlite3_bind_int64(q, 6 + i, nums[i]);
    sqlite3_bind_text(q, 10, rec->allow_from, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 11, rec->rate_limit);
    sqlite3_bind_int64(q, 12, rec->rate_period);
    sqlite3_bind_int64(q, 13, rec->rate_burst);
    return step(r, q, "writing a key");
}

int replica_db_delete(replica_db *r, const char *id)
{
    sqlite3_bind_text(r->del, 1, id, -1, SQLITE_STATIC);
    return step(r, r->del, "deleting a key");
}

int replica_db_commit(replica_db *r, int64_t seq)
{
    sqlite3_bind_int64(r->seq, 1, seq);
    if (step(r, r->seq, "recording the change applied") != 0 || exec(r, "COMMIT") != 0) {
        exec(r, "ROLLBACK");
        return -1;
    }
    r->applied = seq;
    return 0;
}

void replica_db_compact(replica_db *r)
{
    /* A full copy wrote the whole store into the WAL: move it into the
     * file and empty the WAL, so readers do not index it at every open. */
    sqlite3_exec(r->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
}

void replica_db_rollback(replica_db *r)
{
    exec(r, "ROLLBACK");
}

int replica_db_contact(replica_db *r, int64_t at_ms)
{
    char line[REPLICA_CONTACT_MAX + 1], tmp[4200], path[4200];
    replica_contact c = {.at_ms = at_ms, .seq = r->applied};
    int n = replica_contact_format(&c, line, sizeof line);
    snprintf(path, sizeof path, "%s/" REPLICA_CONTACT, r->folder);
    snprintf(tmp, sizeof tmp, "%s/." REPLICA_CONTACT ".tmp", r->folder);
    struct stat db;
    if (n < 0 || stat(r->path, &db) != 0)
        return -1;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    int ok = fd >= 0 && same_group(fd, db.st_gid) == 0 && fchmod(fd, 0640) == 0 &&
             write(fd, line, (size_t)n) == n;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) != 0) {
        syncd_say("replica %s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
