/*
 * The JSON store's compiled index, PATH.idx: what postmap is to a Postfix
 * table. Every write rebuilds it beside the JSON file; hosts map it and find
 * a key in the slots its id names instead of parsing the whole store at
 * every login.
 *
 * The JSON file stays the store of record. The index names the JSON file it
 * was built from (device, inode, size, mtime); one that does not match is
 * ignored and the JSON is parsed instead. A writer marks the index it
 * replaces as stale, so a host holding the old one mapped sees the change at
 * its next check by reading one word of memory, without a system call.
 *
 * Last-used times are written by hosts straight into their record of the
 * index (one aligned 8-byte pwrite, no lock) and carried into the JSON file
 * by the next write.
 */
#ifndef APIKEY_JSON_INDEX_H
#define APIKEY_JSON_INDEX_H

#include <stdint.h>
#include <sys/stat.h>

#include "json_format.h"

typedef struct json_index {
    void *map;
    size_t len;
    uint64_t count;
    dev_t dev;
    ino_t ino;
    uint64_t nslots;
} json_index;

/* Build PATH.idx for db, describing the JSON file st, with owner's owner,
 * group and mode (NULL: 0640). Written beside it and renamed into place;
 * the previous index is then marked stale. Returns 0 or -1 with why. */
int json_index_write(const char *idx_path, const json_db *db, const struct stat *json_st,
                     const struct stat *owner, char *why, size_t whylen);

/* Map PATH.idx if it was built from the JSON file st. check is the host's
 * file-security check. Returns 0, or -1 when missing, foreign or corrupt. */
int json_index_open(json_index *ix, const char *idx_path, const struct stat *json_st,
                    int (*check)(int fd, const char *path, char *why, size_t whylen));
void json_index_close(json_index *ix);
int json_index_matches(const json_index *ix, const struct stat *json_st);
int json_index_is_stale(const json_index *ix);

/* OK, NOTFOUND, or UNAVAILABLE for a record that points outside the map.
 * with_name 0 leaves out->name empty (a verification does not read it). */
int json_index_get(const json_index *ix, const char *id, apikey_record *out, int with_name);
/* What prefetch needs of an index, kept apart from the mapping so that it
 * can be read without a lock while the index is replaced. */
typedef struct json_index_hint {
    const char *slots;
    uint64_t mul, nhome, nslots;
} json_index_hint;
/* Record where ix's slots are (none when ix is closed), atomically. */
void json_index_publish(const json_index *ix, json_index_hint *hint);
/* Start fetching the cache lines a lookup of id will read. Never reads the
 * index: the hint may describe one just unmapped. */
void json_index_prefetch(const json_index_hint *hint, const char *id);
/* Every record into db, in creation order. Its strings point into the map:
 * db must be dropped before ix is closed. */
int json_index_load(const json_index *ix, json_db *db);
/* Raise each record's last_used in db to what hosts wrote in the index. */
void json_index_merge_last_used(const json_index *ix, json_db *db);
/* Record a use in PATH.idx; fails quietly when the host may not write it. */
int json_index_touch(const json_index *ix, const char *idx_path, const char *id, int64_t when);

#endif
