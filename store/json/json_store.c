/*
 * The embedded JSON store: one human-readable file (format in README.md).
 *
 * Writers serialise on an flock of PATH.lock, re-read the file under the
 * lock, write PATH.tmp.XXXXXX, fsync it, rename it over PATH and fsync the
 * folder, so a reader sees the old file or the new one, never a torn one,
 * and a writer killed at any point loses only what it had not acknowledged.
 * Readers take no lock: they stat the file at every check and re-parse only
 * when it changed.
 *
 * Last-used times are appended to PATH.used ("ID SECONDS" lines) by hosts,
 * never by rewriting the store, and folded into it at the next write.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apikey_store.h"
#include "json_format.h"

#define EXPORT __attribute__((visibility("default")))
#define MAX_STORE_BYTES ((size_t)1 << 30)

typedef struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

typedef struct jstore {
    const apikey_store_host *host;
    char *path, *lock_path, *used_path;
    int create;
    json_db db;
    int loaded;      /* db mirrors the file identified by id (or its absence) */
    file_id id;
    off_t used_off;  /* how much of PATH.used has been applied */
    file_id used_id;
    int lock_fd;     /* >= 0 inside a write transaction */
    int dirty;
    struct stat owner; /* owner, group and mode a rewrite keeps */
    int have_owner;
} jstore;

static int same_file(const file_id *a, const struct stat *st)
{
    return a->dev == st->st_dev && a->ino == st->st_ino && a->size == st->st_size &&
           a->mtime.tv_sec == st->st_mtim.tv_sec && a->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void remember(file_id *a, const struct stat *st)
{
    a->dev = st->st_dev;
    a->ino = st->st_ino;
    a->size = st->st_size;
    a->mtime = st->st_mtim;
}

static char *path_with(const char *path, const char *suffix)
{
    char *out = NULL;
    return asprintf(&out, "%s%s", path, suffix) < 0 ? NULL : out;
}

/* Apply PATH.used from where we stopped; a new file starts over. */
static void apply_used(jstore *s)
{
    int fd = open(s->used_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto done;
    if (st.st_ino != s->used_id.ino || st.st_dev != s->used_id.dev || st.st_size < s->used_off)
        s->used_off = 0;
    remember(&s->used_id, &st);
    if (st.st_size == s->used_off)
        goto done;
    size_t len = (size_t)(st.st_size - s->used_off);
    if (len > 64 * 1024 * 1024)
        goto done;
    char *buf = malloc(len + 1);
    if (!buf)
        goto done;
    ssize_t n = pread(fd, buf, len, s->used_off);
    if (n > 0) {
        buf[n] = '\0';
        /* Only whole lines: a line still being appended is read next time. */
        char *last_nl = memrchr(buf, '\n', (size_t)n);
        if (last_nl) {
            *last_nl = '\0';
            json_db_apply_used(&s->db, buf);
            s->used_off += last_nl - buf + 1;
        }
    }
    free(buf);
done:
    close(fd);
}

/* Bring the in-memory copy up to date with the file; parse only on change. */
static int refresh(jstore *s)
{
    struct stat st;
    if (stat(s->path, &st) != 0) {
        if (errno == ENOENT && s->create) {
            if (!s->loaded || s->id.ino != 0) {
                json_db_clear(&s->db);
                memset(&s->id, 0, sizeof s->id);
                s->loaded = 1;
            }
            return APIKEY_ST_OK;
        }
        s->host->log_error("store %s: %s", s->path, strerror(errno));
        s->loaded = 0;
        return APIKEY_ST_UNAVAILABLE;
    }
    if (s->loaded && same_file(&s->id, &st)) {
        apply_used(s);
        return APIKEY_ST_OK;
    }
    s->loaded = 0;
    int fd = open(s->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        s->host->log_error("store %s: %s", s->path,
                           errno == ELOOP ? "is a symbolic link; refusing it" : strerror(errno));
        return APIKEY_ST_UNAVAILABLE;
    }
    char why[512];
    int rc = APIKEY_ST_UNAVAILABLE;
    if (s->host->check_file(fd, s->path, why, sizeof why) != 0) {
        s->host->log_error("store %s", why);
        goto done;
    }
    if (fstat(fd, &st) != 0 || (size_t)st.st_size > MAX_STORE_BYTES) {
        s->host->log_error("store %s: unreadable or larger than 1 GiB", s->path);
        goto done;
    }
    s->owner = st;
    s->have_owner = 1;
    json_db_clear(&s->db);
    rc = json_db_load(&s->db, fd, why, sizeof why);
    if (rc != APIKEY_ST_OK) {
        s->host->log_error("store %s: %s", s->path, why);
        json_db_clear(&s->db);
        goto done;
    }
    remember(&s->id, &st);
    s->loaded = 1;
    s->used_off = 0;
    memset(&s->used_id, 0, sizeof s->used_id);
    apply_used(s);
done:
    close(fd);
    return rc;
}

static int js_open(const char *location, int create, const apikey_store_host *host, void **handle)
{
    if (location[0] != '/') {
        host->log_error("store json:%s: the path must be absolute", location);
        return APIKEY_ST_UNAVAILABLE;
    }
    jstore *s = calloc(1, sizeof *s);
    if (!s)
        return APIKEY_ST_NOMEM;
    s->host = host;
    s->create = create;
    s->lock_fd = -1;
    s->path = strdup(location);
    s->lock_path = path_with(location, ".lock");
    s->used_path = path_with(location, ".used");
    if (!s->path || !s->lock_path || !s->used_path || json_db_init(&s->db) != 0) {
        free(s->path);
        free(s->lock_path);
        free(s->used_path);
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
    json_db_free(&s->db);
    free(s->path);
    free(s->lock_path);
    free(s->used_path);
    free(s);
}

static int js_lookup(void *handle, const char *id, apikey_record *out)
{
    jstore *s = handle;
    if (s->lock_fd < 0) {
        int st = refresh(s);
        if (st != APIKEY_ST_OK)
            return st;
    }
    return json_db_get(&s->db, id, out);
}

static int js_each(void *handle, const char *account, apikey_record_cb cb, void *arg)
{
    jstore *s = handle;
    if (s->lock_fd < 0) {
        int st = refresh(s);
        if (st != APIKEY_ST_OK)
            return st;
    }
    return json_db_each(&s->db, account, cb, arg);
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
    int st = refresh(s);
    if (st != APIKEY_ST_OK) {
        close(s->lock_fd);
        s->lock_fd = -1;
        return st;
    }
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

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
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

/* Write the whole store beside the old one and rename it into place. */
static int write_store(jstore *s)
{
    char *tmp = path_with(s->path, ".tmp.XXXXXX");
    char *text = NULL;
    size_t len = 0;
    int fd = -1, rc = APIKEY_ST_UNAVAILABLE;
    const char *what = "serialise";
    if (!tmp || json_db_dump(&s->db, &text, &len) != 0) {
        rc = APIKEY_ST_NOMEM;
        goto done;
    }
    what = "create a temporary file";
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
        goto done;
    what = "keep owner and mode";
    if (s->have_owner) {
        if (fchown(fd, s->owner.st_uid, s->owner.st_gid) != 0 && geteuid() == 0)
            goto done;
        if (fchmod(fd, s->owner.st_mode & 07777) != 0)
            goto done;
    } else if (fchmod(fd, 0640) != 0) {
        goto done;
    }
    what = "write";
    if (write_all(fd, text, len) != 0)
        goto done;
    what = "fsync";
    if (fsync(fd) != 0)
        goto done;
    what = "close";
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0)
        goto done;
    what = "rename";
    if (rename(tmp, s->path) != 0)
        goto done;
    what = "fsync the folder";
    if (fsync_dir(s->path) != 0)
        goto done;
    rc = APIKEY_ST_OK;
done:
    if (rc != APIKEY_ST_OK) {
        s->host->log_error("store %s: cannot %s: %s", s->path, what, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (tmp)
            unlink(tmp);
    }
    if (text) {
        memset(text, 0, len);
        free(text);
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

static int js_commit(void *handle)
{
    jstore *s = handle;
    if (s->lock_fd < 0)
        return APIKEY_ST_UNAVAILABLE;
    int rc = APIKEY_ST_OK;
    if (s->dirty) {
        off_t folded = s->used_off;
        rc = write_store(s);
        if (rc == APIKEY_ST_OK) {
            /* Its lines are in the store now; keep any appended since. */
            struct stat st;
            if (stat(s->used_path, &st) == 0 && st.st_size == folded && folded > 0 &&
                truncate(s->used_path, 0) == 0)
                s->used_off = 0;
        }
        /* Re-read at the next check: the rename gave the file a new identity. */
        s->loaded = 0;
    }
    end_txn(s);
    return rc;
}

static void js_rollback(void *handle)
{
    jstore *s = handle;
    if (s->lock_fd < 0)
        return;
    s->loaded = 0; /* drop the changes held in memory */
    end_txn(s);
}

static int js_touch(void *handle, const char *id, int64_t when)
{
    jstore *s = handle;
    char line[64];
    int n = snprintf(line, sizeof line, "%s %lld\n", id, (long long)when);
    mode_t mode = s->have_owner ? s->owner.st_mode & 0660 : 0640;
    int fd = open(s->used_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
                  mode);
    if (fd < 0)
        return APIKEY_ST_UNAVAILABLE; /* an unprivileged reader: fine */
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size == 0 && s->have_owner && geteuid() == 0)
        (void)!fchown(fd, s->owner.st_uid, s->owner.st_gid);
    /* One write of a short line to an O_APPEND file lands whole. */
    int rc = write(fd, line, (size_t)n) == n ? APIKEY_ST_OK : APIKEY_ST_UNAVAILABLE;
    close(fd);
    return rc;
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
};

EXPORT const apikey_store_ops *apikey_store_entry_v1(void)
{
    return &json_ops;
}
