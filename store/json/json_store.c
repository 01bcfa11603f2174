/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The embedded JSON store: one human-readable file (format in doc/STORES.md),
 * with a compiled index beside it (json_index.h).
 *
 * Writers serialise on an flock of PATH.lock, re-read the store under the
 * lock, write PATH.tmp.XXXXXX, fsync it, rename it over PATH, rebuild
 * PATH.idx the same way and fsync the folder, so a reader sees the old store
 * or the new one, never a torn one, and a writer killed at any point loses
 * only what it had not acknowledged.
 *
 * Readers take no lock. They answer from the index while it is not stale
 * and, once a second, stat the JSON file too, so that even a hand edit that
 * bypassed the index is seen. Without a usable index they parse the JSON
 * file, again only when it changed.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apikey_store.h"
#include "json_format.h"
#include "json_index.h"
#include "../../common/hot_path.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_STORE_BYTES ((size_t)1 << 30)
#define RESTAT_MS 1000

typedef struct jstore {
    const apikey_store_host *host;
    /* Lookups share the view; refreshing it is exclusive. */
    pthread_rwlock_t view_lock;
    char *path, *lock_path, *idx_path, *prev_path;
    int create;
    json_index ix;       /* open when it matches the JSON file */
    json_db db;          /* the parsed store, when there is no usable index or
                            inside a write transaction */
    int db_loaded;
    int db_borrows;      /* db's strings point into ix's copy of the index */
    struct stat db_st;   /* the JSON file db was read from (st_ino 0: none) */
    int64_t checked_ms;  /* when the JSON file was last stat'ed */
    int lock_fd;         /* >= 0 inside a write transaction */
    int dirty;
    struct stat owner;   /* owner, group and mode a rewrite keeps */
    int have_owner;
} jstore;

HOT_PATH static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static char *path_with(const char *path, const char *suffix)
{
    char *out = NULL;
    return asprintf(&out, "%s%s", path, suffix) < 0 ? NULL : out;
}

/* Open the JSON file safely. OK with fd and st, NOTFOUND when it does not
 * exist, UNAVAILABLE (logged) otherwise. */
static int open_json(jstore *s, int *fd, struct stat *st)
{
    *fd = open(s->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT)
            return APIKEY_ST_NOTFOUND;
        s->host->log_error("store %s: %s", s->path,
                           errno == ELOOP ? "is a symbolic link; refusing it" : strerror(errno));
        return APIKEY_ST_UNAVAILABLE;
    }
    char why[512];
    if (s->host->check_file(*fd, s->path, why, sizeof why) != 0 || fstat(*fd, st) != 0) {
        s->host->log_error("store %s", why);
        close(*fd);
        return APIKEY_ST_UNAVAILABLE;
    }
    if ((size_t)st->st_size > MAX_STORE_BYTES) {
        s->host->log_error("store %s: larger than 1 GiB; refusing it", s->path);
        close(*fd);
        return APIKEY_ST_UNAVAILABLE;
    }
    s->owner = *st;
    s->have_owner = 1;
    return APIKEY_ST_OK;
}

static void drop_db(jstore *s);

static void close_index(jstore *s)
{
    if (s->db_borrows)
        drop_db(s);
    json_index_close(&s->ix);
}

static void drop_db(jstore *s)
{
    json_db_clear(&s->db);
    s->db_loaded = 0;
    s->db_borrows = 0;
    memset(&s->db_st, 0, sizeof s->db_st);
}

HOT_PATH static int index_fresh(jstore *s)
{
    return json_index_is_open(&s->ix) && !json_index_is_stale(&s->ix) && monotonic_ms() - s->checked_ms < RESTAT_MS;
}

/* Whether a writer holds the lock, between renaming the JSON file and its
 * index. Readers only ask when the two disagree. */
static int writer_active(const jstore *s)
{
    int fd = open(s->lock_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* A lock planted by someone else says nothing: parse the JSON file. */
    char why[512];
    int busy = s->host->check_file(fd, s->lock_path, why, sizeof why) == 0 &&
               flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

/* Make s->ix or s->db reflect the JSON file st (open as fd). want_db:
 * DB_USES, the db with the uses the index recorded since it was read;
 * DB_ONLY, without them (the caller reads the few it needs: merging every
 * record's would read the whole index, 100,000 records for a list of 10). */
enum { DB_USES = 1, DB_ONLY = 2 };
static int load(jstore *s, int fd, const struct stat *st, int want_db)
{
    if (!json_index_is_open(&s->ix) || !json_index_matches(&s->ix, st) || json_index_is_stale(&s->ix)) {
        close_index(s);
        json_index_open(&s->ix, s->idx_path, fd, st, s->host->check_file);
    }
    if (json_index_is_open(&s->ix) && !want_db)
        return APIKEY_ST_OK;
    if (s->db_loaded && same_file(&s->db_st, st)) {
        if (json_index_is_open(&s->ix) && want_db == DB_USES)
            json_index_merge_last_used(&s->ix, &s->db);
        return APIKEY_ST_OK;
    }
    drop_db(s);
    int rc;
    char why[512];
    if (json_index_is_open(&s->ix)) {
        s->db_borrows = 1;
        rc = json_index_load(&s->ix, &s->db);
        if (rc != APIKEY_ST_OK)
            s->host->log_error("store %s: its index %s is corrupt", s->path, s->idx_path);
    } else {
        rc = json_db_load(&s->db, fd, why, sizeof why);
        /* Out of memory is the core's line to write: one line, not two. */
        if (rc != APIKEY_ST_OK && rc != APIKEY_ST_NOMEM)
            s->host->log_error("store %s: %s", s->path, why);
    }
    if (rc != APIKEY_ST_OK) {
        drop_db(s);
        return rc;
    }
    s->db_loaded = 1;
    s->db_st = *st;
    return APIKEY_ST_OK;
}

/* Bring the view up to date. want_db: the whole store is needed (listing,
 * writing), not just lookups. */
static int refresh(jstore *s, int want_db)
{
    int64_t now = monotonic_ms();
    if (!want_db && index_fresh(s))
        return APIKEY_ST_OK;
    int fd;
    struct stat st;
    int rc = open_json(s, &fd, &st);
    if (rc == APIKEY_ST_NOTFOUND) {
        close_index(s);
        drop_db(s);
        if (s->create) {
            s->db_loaded = 1; /* an empty store, created by the first write */
            return APIKEY_ST_OK;
        }
        s->host->log_error("store %s: No such file or directory", s->path);
        return APIKEY_ST_UNAVAILABLE;
    }
    if (rc != APIKEY_ST_OK) {
        close_index(s);
        drop_db(s);
        return rc;
    }
    /* Mid-commit a writer has renamed the JSON file but not yet the index:
     * the open index is the consistent state before it. Otherwise the
     * JSON file was edited by hand, and is parsed. */
    if (!want_db && json_index_is_open(&s->ix) && !json_index_is_stale(&s->ix) && !json_index_matches(&s->ix, &st) &&
        writer_active(s)) {
        close(fd);
        return APIKEY_ST_OK;
    }
    rc = load(s, fd, &st, want_db);
    close(fd);
    if (rc == APIKEY_ST_OK)
        s->checked_ms = now;
    return rc;
}

static int js_open(const char *location, int create, const apikey_store_host *host, void **handle)
{
    if (apikey_store_host_check(host, "json") != APIKEY_ST_OK)
        return APIKEY_ST_UNAVAILABLE;
    if (location[0] != '/') {
        host->log_error("store json:%s: the path must be absolute", location);
        return APIKEY_ST_UNAVAILABLE;
    }
    jstore *s = calloc(1, sizeof *s);
    if (!s)
        return APIKEY_ST_NOMEM;
    s->host = host;
    s->create = create;
    pthread_rwlock_init(&s->view_lock, NULL);
    s->lock_fd = -1;
    s->path = strdup(location);
    s->lock_path = path_with(location, ".lock");
    s->idx_path = path_with(location, ".idx");
    s->prev_path = path_with(location, ".prev");
    if (!s->path || !s->lock_path || !s->idx_path || !s->prev_path || json_db_init(&s->db) != 0) {
        free(s->path);
        free(s->lock_path);
        free(s->idx_path);
        free(s->prev_path);
        free(s);
        return APIKEY_ST_NOMEM;
    }
    *handle = s;
    return APIKEY_ST_OK;
}

static void js_close(void *handle)
{
    jstore *s = handle;
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    close_index(s);
    json_db_free(&s->db);
    pthread_rwlock_destroy(&s->view_lock);
    free(s->path);
    free(s->lock_path);
    free(s->idx_path);
    free(s->prev_path);
    free(s);
}

/* A record that the store holds but that does not decode (a forged index,
 * or a change since the JSON was parsed) makes the answer unavailable. */
static int said(jstore *s, int st)
{
    if (st == APIKEY_ST_UNAVAILABLE)
        s->host->log_error("store %s: a malformed key record", s->path);
    return st;
}

HOT_PATH static int lookup(jstore *s, const char *id, apikey_record *out, int with_name)
{
    if (s->lock_fd >= 0)
        return said(s, json_db_get(&s->db, id, out));
    /* The common case, in any number of threads at once. */
    pthread_rwlock_rdlock(&s->view_lock);
    if (index_fresh(s)) {
        int st = json_index_get(&s->ix, id, out, with_name);
        /* A writer may have replaced the index while this read it (a block
         * read after its stale mark is refused): read what is current. */
        int replaced = st == APIKEY_ST_UNAVAILABLE && json_index_is_stale(&s->ix);
        pthread_rwlock_unlock(&s->view_lock);
        if (!replaced)
            return said(s, st);
    } else {
        pthread_rwlock_unlock(&s->view_lock);
    }
    int st = APIKEY_ST_UNAVAILABLE, replaced = 1;
    /* Writers may follow one another: a few rounds, each on the newest. */
    for (int round = 0; round < 4 && replaced; round++) {
        pthread_rwlock_wrlock(&s->view_lock);
        st = refresh(s, 0);
        replaced = 0;
        if (st == APIKEY_ST_OK) {
            st = json_index_is_open(&s->ix) ? json_index_get(&s->ix, id, out, with_name) : json_db_get(&s->db, id, out);
            replaced = st == APIKEY_ST_UNAVAILABLE && json_index_is_open(&s->ix) && json_index_is_stale(&s->ix);
            if (!replaced)
                st = said(s, st);
        }
        pthread_rwlock_unlock(&s->view_lock);
    }
    return replaced ? said(s, st) : st;
}

static int js_lookup(void *handle, const char *id, apikey_record *out)
{
    return lookup(handle, id, out, 1);
}

HOT_PATH static int js_lookup_auth(void *handle, const char *id, apikey_record *out)
{
    return lookup(handle, id, out, 0);
}

/* One account's records with their last uses read from the index one by
 * one, as json_index_merge_last_used would raise them. */
typedef struct uses_cb {
    jstore *s;
    apikey_record_cb cb;
    void *arg;
} uses_cb;

static int with_uses(const apikey_record *rec, void *arg)
{
    uses_cb *u = arg;
    apikey_record r = *rec, in_ix;
    if (json_index_get(&u->s->ix, rec->id, &in_ix, 0) == APIKEY_ST_OK && in_ix.last_used > r.last_used)
        r.last_used = in_ix.last_used;
    return u->cb(&r, u->arg);
}

static int js_each(void *handle, const char *account, apikey_record_cb cb, void *arg)
{
    jstore *s = handle;
    if (s->lock_fd >= 0)
        return said(s, json_db_each(&s->db, account, cb, arg));
    int st = refresh(s, account ? DB_ONLY : DB_USES);
    if (st != APIKEY_ST_OK)
        return st;
    if (!account || !json_index_is_open(&s->ix))
        return said(s, json_db_each(&s->db, account, cb, arg));
    uses_cb u = {s, cb, arg};
    return said(s, json_db_each(&s->db, account, with_uses, &u));
}

/* A file written beside the store takes its owner, group and mode (a new
 * store: the caller's, 0640), so that hosts reading the store through its
 * group read these too. */
static int keep_owner(const jstore *s, int fd)
{
    if (!s->have_owner)
        return fchmod(fd, 0640);
    if (fchown(fd, s->owner.st_uid, s->owner.st_gid) != 0 && geteuid() == 0)
        return -1;
    return fchmod(fd, s->owner.st_mode & 07777);
}

/* New files take the mode a store's own folder suggests: owner rw, group r. */
static int open_lock(jstore *s)
{
    mode_t mode = s->have_owner ? (s->owner.st_mode & 0640) | 0600 : 0640;
    int fd = open(s->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        s->host->log_error("store %s: cannot open its lock %s: %s", s->path, s->lock_path,
                           strerror(errno));
        return -1;
    }
    /* One planted by someone else could be held to stall every writer. */
    char why[512];
    if (s->host->check_file(fd, s->lock_path, why, sizeof why) != 0) {
        s->host->log_error("store %s: its lock %s", s->path, why);
        close(fd);
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            s->host->log_error("store %s: cannot lock: %s", s->path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

static int js_begin(void *handle)
{
    jstore *s = handle;
    if (s->lock_fd >= 0)
        return APIKEY_ST_UNAVAILABLE;
    s->lock_fd = open_lock(s);
    if (s->lock_fd < 0)
        return APIKEY_ST_UNAVAILABLE;
    int st = refresh(s, 1);
    if (st != APIKEY_ST_OK) {
        close(s->lock_fd);
        s->lock_fd = -1;
        return st;
    }
    /* Readers in the store's group look at the lock too (writer_active):
     * it follows the store, as the rewrite does, once the store is known. */
    if (s->have_owner)
        (void)keep_owner(s, s->lock_fd);
    s->dirty = 0;
    return APIKEY_ST_OK;
}

static int js_insert(void *handle, const apikey_record *rec)
{
    jstore *s = handle;
    if (s->lock_fd < 0)
        return APIKEY_ST_UNAVAILABLE;
    int st = json_db_insert(&s->db, rec);
    s->dirty |= st == APIKEY_ST_OK;
    return st;
}

static int js_update(void *handle, const apikey_record *rec)
{
    jstore *s = handle;
    if (s->lock_fd < 0)
        return APIKEY_ST_UNAVAILABLE;
    int st = json_db_update(&s->db, rec);
    s->dirty |= st == APIKEY_ST_OK;
    return st;
}

static int fsync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return -1;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write the whole store beside the old one and rename it into place; st
 * receives the new file's identity for its index. */
static int write_store(jstore *s, struct stat *st)
{
    char *tmp = path_with(s->path, ".tmp.XXXXXX");
    int fd = -1, rc = APIKEY_ST_UNAVAILABLE;
    const char *what = "name a temporary file";
    if (!tmp) {
        rc = APIKEY_ST_NOMEM;
        goto done;
    }
    what = "create a temporary file";
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
        goto done;
    what = "keep owner and mode";
    if (keep_owner(s, fd) != 0)
        goto done;
    what = "write";
    int wrote = json_db_write(&s->db, fd);
    if (wrote == -2) {
        what = "write a text that is not valid UTF-8 (JSON holds nothing else)";
        errno = EILSEQ;
    }
    if (wrote != 0)
        goto done;
    what = "fsync";
    if (fsync(fd) != 0 || fstat(fd, st) != 0)
        goto done;
    what = "close";
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0)
        goto done;
    what = "rename";
    if (rename(tmp, s->path) != 0)
        goto done;
    rc = APIKEY_ST_OK;
done:
    if (rc != APIKEY_ST_OK) {
        if (rc != APIKEY_ST_NOMEM) /* the core says that one */
            s->host->log_error("store %s: cannot %s: %s", s->path, what, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (tmp)
            unlink(tmp);
    }
    free(tmp);
    return rc;
}

static void end_txn(jstore *s)
{
    close(s->lock_fd);
    s->lock_fd = -1;
    s->dirty = 0;
}

/* Until the folder is fsync'ed, the rename is not durable. If that fails,
 * the previous file (kept as PATH.prev by a hard link) goes back, so a
 * write that is reported failed has not happened. */
static int make_durable(jstore *s, int have_prev)
{
    if (fsync_dir(s->path) == 0)
        return APIKEY_ST_OK;
    int e = errno;
    if (have_prev && rename(s->prev_path, s->path) == 0 && fsync_dir(s->path) == 0)
        s->host->log_error("store %s: cannot fsync its folder (%s); the change was undone",
                           s->path, strerror(e));
    else if (have_prev)
        s->host->log_error("store %s: cannot fsync its folder (%s), nor undo the change; "
                           "check the disk", s->path, strerror(e));
    else
        unlink(s->path); /* it was a new store: no previous state to keep */
    return APIKEY_ST_UNAVAILABLE;
}

static int js_commit(void *handle)
{
    jstore *s = handle;
    if (s->lock_fd < 0)
        return APIKEY_ST_UNAVAILABLE;
    int rc = APIKEY_ST_OK;
    if (s->dirty) {
        struct stat st;
        unlink(s->prev_path);
        int have_prev = link(s->path, s->prev_path) == 0;
        if (!have_prev && errno != ENOENT) {
            s->host->log_error("store %s: cannot keep the previous version as %s: %s", s->path,
                               s->prev_path, strerror(errno));
            rc = APIKEY_ST_UNAVAILABLE;
        }
        if (rc == APIKEY_ST_OK)
            rc = write_store(s, &st);
        if (rc == APIKEY_ST_OK) {
            char why[512];
            /* The JSON file is the record: a missing index costs speed, not
             * correctness, and the one it replaces is marked stale anyway. */
            if (json_index_write(s->idx_path, &s->db, &st, s->have_owner ? &s->owner : NULL, why,
                                 sizeof why) != 0)
                s->host->log_error("store %s: %s", s->path, why);
            rc = make_durable(s, have_prev);
        }
        if (have_prev)
            unlink(s->prev_path);
        drop_db(s);
        close_index(s);
        s->checked_ms = 0;
    }
    end_txn(s);
    return rc;
}

static void js_rollback(void *handle)
{
    jstore *s = handle;
    if (s->lock_fd < 0)
        return;
    drop_db(s); /* forget the changes held in memory */
    end_txn(s);
}

static int js_touch(void *handle, const char *id, int64_t when)
{
    jstore *s = handle;
    return json_index_is_open(&s->ix) ? json_index_touch(&s->ix, s->idx_path, id, when) : APIKEY_ST_UNAVAILABLE;
}

HOT_PATH static void js_prefetch(void *handle, const char *id)
{
    jstore *s = handle;
    if (pthread_rwlock_tryrdlock(&s->view_lock) != 0)
        return;
    if (json_index_is_open(&s->ix))
        json_index_prefetch(&s->ix, id);
    pthread_rwlock_unlock(&s->view_lock);
}

static const apikey_store_ops json_ops = {
    .size = sizeof(apikey_store_ops),
    .abi = APIKEY_STORE_ABI_VERSION,
    .scheme = "json",
    .open = js_open,
    .close = js_close,
    .lookup = js_lookup,
    .each = js_each,
    .begin = js_begin,
    .insert = js_insert,
    .update = js_update,
    .commit = js_commit,
    .rollback = js_rollback,
    .touch = js_touch,
    .flags = APIKEY_STORE_CONCURRENT_LOOKUP | APIKEY_STORE_LOCAL,
    .prefetch = js_prefetch,
    .lookup_auth = js_lookup_auth,
};

EXPORT const apikey_store_ops *apikey_store_entry_v1(void)
{
    return &json_ops;
}
