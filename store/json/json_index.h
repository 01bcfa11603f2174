/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The JSON store's compiled index, PATH.idx: what postmap is to a Postfix
 * table. Every write rebuilds it beside the JSON file; hosts read the slots
 * a key's id names from a private copy filled with pread (never a mapping
 * of the file: see json_index.c) instead of parsing the whole store at
 * every login.
 *
 * The JSON file stays the store of record. The index names the JSON file it
 * was built from (device, inode, size, mtime); one that does not match is
 * ignored and the JSON is parsed instead. A writer marks the index it
 * replaces as stale and waits out the hosts' recheck, so a host holding the
 * old one open sees the change at its next check (json_index_is_stale).
 *
 * Last-used times are written by hosts straight into their record of the
 * index (one aligned 8-byte pwrite, no lock) and carried into the JSON file
 * by the next write.
 */
#ifndef APIKEY_JSON_INDEX_H
#define APIKEY_JSON_INDEX_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "json_format.h"

typedef struct json_index_header {
    char magic[8];
    uint32_t version;
    uint32_t record_size;
    uint64_t count;  /* keys */
    uint64_t json_dev, json_ino, json_size;
    int64_t json_mtime_sec, json_mtime_nsec;
    uint64_t nhome, home_mul; /* home slot of an id: mulhi(id value, home_mul) < nhome */
    uint64_t nslots;          /* slots, nhome and the overflow after them */
    uint64_t rec_off;         /* the slots, in id order; an empty one has id[0] = 0 */
    uint64_t order_off;       /* uint32 slots of the keys in creation order */
    uint64_t strings_off, strings_len;
    uint32_t stale; /* set by the writer that replaced this index */
    uint32_t pad;
} json_index_header;

typedef struct json_index {
    int fd, is_open;
    json_index_header head; /* as read at open */
    char *copy;             /* the whole file, once json_index_load needs it */
    size_t len;
    uint64_t count;
    dev_t dev;
    ino_t ino;
    uint64_t nslots;
    int old; /* 4 or 5: an earlier release's index (no lists, no limits), see json_index.c; else 0 */
    /* The host's private copy of the file, filled a page at a time as
     * lookups need it (json_index.c): an anonymous mapping, so a file cut
     * short under it is a failed read, never SIGBUS. */
    char *mem;
    unsigned char *filled; /* per block, set once its bytes are in mem */
    uint64_t nblocks, nfilled; /* nfilled: under fill_lock */
    pthread_mutex_t fill_lock;
    int64_t checked_ns; /* when the header last read the same (CLOCK_MONOTONIC_COARSE) */
} json_index;

/* Build PATH.idx for db, describing the JSON file st, with owner's owner,
 * group and mode (NULL: 0640). Written beside it and renamed into place;
 * the previous index is then marked stale. Returns 0 or -1 with why. */
int json_index_write(const char *idx_path, const json_db *db, const struct stat *json_st,
                     const struct stat *owner, char *why, size_t whylen);

/* Open PATH.idx if it was built from the JSON file st (open as json_fd).
 * check is the host's file-security check. Returns 0, or -1 when missing,
 * foreign or corrupt. Reads this release's version and, read-only until the
 * next write replaces it, the previous release's. */
int json_index_open(json_index *ix, const char *idx_path, int json_fd, const struct stat *json_st,
                    int (*check)(int fd, const char *path, char *why, size_t whylen));
void json_index_close(json_index *ix);
int json_index_is_open(const json_index *ix);
int json_index_matches(const json_index *ix, const struct stat *json_st);
/* Replaced by a writer, or changed in place since it was opened. Reads the
 * header at most once every JSON_INDEX_RECHECK_NS of CLOCK_MONOTONIC_COARSE;
 * a writer that replaced the index waits JSON_INDEX_WRITER_WAIT_NS of that
 * same clock (and of CLOCK_MONOTONIC) before it returns, so that a check
 * begun after it returned reads the header again (json_index.c). */
#define JSON_INDEX_RECHECK_NS 1000000LL   /* 1 ms */
#define JSON_INDEX_WRITER_WAIT_NS 2000000LL /* 2 ms */
int json_index_is_stale(json_index *ix);

/* OK, NOTFOUND, or UNAVAILABLE for a record that points outside the index
 * or a file that cannot be read (cut short since it was opened).
 * with_name 0 leaves out->name empty (a verification does not read it).
 * Read from the host's copy; safe in several threads at once. */
int json_index_get(json_index *ix, const char *id, apikey_record *out, int with_name);
/* Start fetching id's home slot and the next three in its page into the
 * CPU cache, when that part of the copy is filled (the store's prefetch: a
 * hint, no read of the file). */
void json_index_prefetch(const json_index *ix, const char *id);
/* Every record into db, in creation order. Its strings point into a copy
 * of the index held by ix: db must be dropped before ix is closed. */
int json_index_load(json_index *ix, json_db *db);
/* Raise each record's last_used in db to what hosts wrote in the index. */
void json_index_merge_last_used(const json_index *ix, json_db *db);
/* Record a use in PATH.idx; fails quietly when the host may not write it. */
int json_index_touch(json_index *ix, const char *idx_path, const char *id, int64_t when);

#endif
