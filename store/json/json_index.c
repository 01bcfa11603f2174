#include "json_index.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define IDX_MAGIC "AKIDX\x01\r\n"
#define IDX_VERSION 3

typedef struct idx_header {
    char magic[8];
    uint32_t version;
    uint32_t record_size;
    uint64_t count;
    uint64_t json_dev, json_ino, json_size;
    int64_t json_mtime_sec, json_mtime_nsec;
    uint64_t keys_off;   /* uint64 ids as numbers, in record order, for the search */
    uint64_t order_off;  /* uint32 record positions in creation order */
    uint64_t strings_off, strings_len;
    uint32_t stale; /* set by the writer that replaced this index */
    uint32_t pad;
} idx_header;

typedef struct idx_rec {
    char id[APIKEY_ID_LEN];
    unsigned char hash[APIKEY_HASH_LEN];
    int64_t created, expires, last_used, revoked;
    uint32_t account, name, scopes; /* offsets into the string table */
    uint32_t seq;                   /* creation order */
} idx_rec;

static const idx_header *header(const json_index *ix)
{
    return ix->map;
}

static const idx_rec *records(const json_index *ix)
{
    return (const idx_rec *)((const char *)ix->map + sizeof(idx_header));
}

int json_index_matches(const json_index *ix, const struct stat *st)
{
    const idx_header *h = header(ix);
    return h->json_dev == (uint64_t)st->st_dev && h->json_ino == (uint64_t)st->st_ino &&
           h->json_size == (uint64_t)st->st_size && h->json_mtime_sec == st->st_mtim.tv_sec &&
           h->json_mtime_nsec == st->st_mtim.tv_nsec;
}

int json_index_is_stale(const json_index *ix)
{
    return __atomic_load_n(&header(ix)->stale, __ATOMIC_ACQUIRE) != 0;
}

/* An id as a base62 number (62^8 < 2^48). The alphabet is in ASCII order,
 * so numbers sort as ids do, and random ids are uniform numbers. */
static uint64_t id_value(const char *id)
{
    uint64_t v = 0;
    for (int i = 0; i < APIKEY_ID_LEN; i++) {
        unsigned char c = (unsigned char)id[i];
        v = v * 62 + (c <= '9' ? c - '0' : c <= 'Z' ? c - 'A' + 10 : c - 'a' + 36);
    }
    return v;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(((const idx_rec *)a)->id, ((const idx_rec *)b)->id, APIKEY_ID_LEN);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Lay out header, records sorted by id, and strings in one buffer. */
static char *build(const json_db *db, const struct stat *st, size_t *len_out)
{
    size_t strings = 0;
    for (size_t i = 0; i < db->n; i++)
        strings += strlen(db->recs[i].account) + strlen(db->recs[i].name) + strlen(db->recs[i].scopes) + 3;
    size_t rec_bytes = db->n * sizeof(idx_rec), order_bytes = db->n * sizeof(uint32_t);
    size_t keys_bytes = db->n * sizeof(uint64_t);
    size_t len = sizeof(idx_header) + rec_bytes + keys_bytes + order_bytes + strings;
    if (strings > UINT32_MAX)
        return NULL;
    char *buf = calloc(1, len);
    if (!buf)
        return NULL;
    idx_header *h = (idx_header *)buf;
    memcpy(h->magic, IDX_MAGIC, sizeof h->magic);
    h->version = IDX_VERSION;
    h->record_size = sizeof(idx_rec);
    h->count = db->n;
    h->json_dev = (uint64_t)st->st_dev;
    h->json_ino = (uint64_t)st->st_ino;
    h->json_size = (uint64_t)st->st_size;
    h->json_mtime_sec = st->st_mtim.tv_sec;
    h->json_mtime_nsec = st->st_mtim.tv_nsec;
    h->keys_off = sizeof(idx_header) + rec_bytes;
    h->order_off = h->keys_off + keys_bytes;
    h->strings_off = h->order_off + order_bytes;
    h->strings_len = strings;
    idx_rec *r = (idx_rec *)(buf + sizeof(idx_header));
    char *s = buf + h->strings_off;
    uint32_t off = 0;
    for (size_t i = 0; i < db->n; i++) {
        const json_rec *j = &db->recs[i];
        memcpy(r[i].id, j->id, APIKEY_ID_LEN);
        memcpy(r[i].hash, j->hash, APIKEY_HASH_LEN);
        r[i].created = j->created;
        r[i].expires = j->expires;
        r[i].last_used = j->last_used;
        r[i].revoked = j->revoked;
        r[i].seq = (uint32_t)i;
        const char *fields[3] = {j->account, j->name, j->scopes};
        uint32_t *slots[3] = {&r[i].account, &r[i].name, &r[i].scopes};
        for (int f = 0; f < 3; f++) {
            size_t n = strlen(fields[f]) + 1;
            *slots[f] = off;
            memcpy(s + off, fields[f], n);
            off += (uint32_t)n;
        }
    }
    qsort(r, db->n, sizeof *r, cmp_id);
    uint32_t *order = (uint32_t *)(buf + h->order_off);
    uint64_t *keys = (uint64_t *)(buf + h->keys_off);
    for (size_t i = 0; i < db->n; i++) {
        order[r[i].seq] = (uint32_t)i;
        keys[i] = id_value(r[i].id);
    }
    *len_out = len;
    return buf;
}

int json_index_write(const char *idx_path, const json_db *db, const struct stat *json_st,
                     const struct stat *owner, char *why, size_t whylen)
{
    char *tmp = NULL, *buf = NULL;
    int fd = -1, rc = -1;
    const char *what = "build";
    size_t len = 0;
    /* The index it replaces is marked stale at the end, whatever happens:
     * hosts must not go on trusting it once the JSON file has changed. */
    int old = open(idx_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (asprintf(&tmp, "%s.tmp.XXXXXX", idx_path) < 0) {
        tmp = NULL;
        goto done;
    }
    if (!(buf = build(db, json_st, &len)))
        goto done;
    what = "create";
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
        goto done;
    what = "keep owner and mode";
    if (owner && fchown(fd, owner->st_uid, owner->st_gid) != 0 && geteuid() == 0)
        goto done;
    if (fchmod(fd, owner ? owner->st_mode & 07777 : 0640) != 0)
        goto done;
    what = "write";
    if (write_all(fd, buf, len) != 0)
        goto done;
    what = "fsync";
    if (fsync(fd) != 0)
        goto done;
    what = "rename";
    if (rename(tmp, idx_path) != 0)
        goto done;
    rc = 0;
done:
    if (old >= 0) {
        uint32_t one = 1;
        (void)!pwrite(old, &one, sizeof one, offsetof(idx_header, stale));
        close(old);
    }
    if (rc != 0) {
        snprintf(why, whylen, "cannot %s the index %s: %s", what, idx_path,
                 errno ? strerror(errno) : "out of memory");
        if (tmp && fd >= 0)
            unlink(tmp);
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    free(tmp);
    return rc;
}

int json_index_open(json_index *ix, const char *idx_path, const struct stat *json_st,
                    int (*check)(int fd, const char *path, char *why, size_t whylen))
{
    memset(ix, 0, sizeof *ix);
    int fd = open(idx_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char why[256];
    struct stat st;
    int rc = -1;
    if (check(fd, idx_path, why, sizeof why) != 0 || fstat(fd, &st) != 0 ||
        (size_t)st.st_size < sizeof(idx_header))
        goto done;
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        goto done;
    ix->map = map;
    ix->len = (size_t)st.st_size;
    ix->dev = st.st_dev;
    ix->ino = st.st_ino;
    const idx_header *h = map;
    /* Everything a lookup trusts is checked once here. */
    if (memcmp(h->magic, IDX_MAGIC, sizeof h->magic) != 0 || h->version != IDX_VERSION ||
        h->record_size != sizeof(idx_rec) || h->count > (ix->len - sizeof *h) / sizeof(idx_rec) ||
        h->keys_off != sizeof *h + h->count * sizeof(idx_rec) ||
        h->order_off != h->keys_off + h->count * sizeof(uint64_t) ||
        h->strings_off != h->order_off + h->count * sizeof(uint32_t) ||
        h->strings_len != ix->len - h->strings_off || (h->strings_len && ((const char *)map)[ix->len - 1] != '\0') ||
        h->stale || !json_index_matches(ix, json_st)) {
        json_index_close(ix);
        goto done;
    }
    ix->count = h->count;
    rc = 0;
done:
    close(fd);
    return rc;
}

void json_index_close(json_index *ix)
{
    if (ix->map)
        munmap(ix->map, ix->len);
    memset(ix, 0, sizeof *ix);
}


/* The record at pos, when it really holds id (a forged index may lie). */
static const idx_rec *check_hit(const json_index *ix, size_t pos, const char *id)
{
    const idx_rec *r = &records(ix)[pos];
    return memcmp(r->id, id, APIKEY_ID_LEN) == 0 ? r : NULL;
}

/* Ids are uniformly random numbers, so interpolation over the compact array
 * of ids finds a key in two or three probes where bisection of a million
 * records takes twenty cache misses. Bisection takes over after a few
 * guesses, whatever the ids; the record itself is touched once. */
static const idx_rec *find_near(const json_index *ix, const char *id, size_t *near)
{
    const uint64_t *keys = (const uint64_t *)((const char *)ix->map + header(ix)->keys_off);
    uint64_t want = id_value(id);
    size_t lo = 0, hi = ix->count;
    for (int guess = 0; guess < 4 && hi - lo > 16; guess++) {
        uint64_t vlo = keys[lo], vhi = keys[hi - 1];
        if (want < vlo || want > vhi)
            break; /* outside the range: the bisection ends at an edge */
        if (vhi == vlo)
            break;
        size_t mid = lo + (size_t)((double)(want - vlo) / (double)(vhi - vlo) * (double)(hi - 1 - lo));
        *near = mid;
        if (keys[mid] == want)
            return check_hit(ix, mid, id);
        if (keys[mid] < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        *near = mid;
        if (keys[mid] == want)
            return check_hit(ix, mid, id);
        if (keys[mid] < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const idx_rec *find(const json_index *ix, const char *id)
{
    size_t near = 0;
    return find_near(ix, id, &near);
}

/* A string of the table, or NULL when the offset or its length is bad. */
static const char *string_at(const json_index *ix, uint32_t off, size_t max)
{
    const idx_header *h = header(ix);
    if (off >= h->strings_len)
        return NULL;
    const char *s = (const char *)ix->map + h->strings_off + off;
    size_t n = strnlen(s, h->strings_len - off);
    return n < max ? s : NULL;
}

static int to_record(const json_index *ix, const idx_rec *r, apikey_record *out)
{
    const char *a = string_at(ix, r->account, sizeof out->account);
    const char *n = string_at(ix, r->name, sizeof out->name);
    const char *s = string_at(ix, r->scopes, sizeof out->scopes);
    if (!a || !n || !s)
        return APIKEY_ST_UNAVAILABLE;
    memcpy(out->id, r->id, APIKEY_ID_LEN);
    out->id[APIKEY_ID_LEN] = '\0';
    memcpy(out->hash, r->hash, APIKEY_HASH_LEN);
    out->created = r->created;
    out->expires = r->expires;
    out->last_used = __atomic_load_n(&r->last_used, __ATOMIC_RELAXED);
    out->revoked = r->revoked;
    strcpy(out->account, a);
    strcpy(out->name, n);
    strcpy(out->scopes, s);
    return APIKEY_ST_OK;
}

int json_index_get(const json_index *ix, const char *id, apikey_record *out)
{
    size_t near = 0;
    const idx_rec *r = find_near(ix, id, &near);
    if (r)
        return to_record(ix, r, out);
    /* Read a neighbour as a hit would be read: an unknown id must cost what
     * a wrong secret costs, or timing tells which ids exist. */
    if (ix->count && to_record(ix, &records(ix)[near], out) == APIKEY_ST_OK)
        memset(out, 0, offsetof(apikey_record, account));
    return APIKEY_ST_NOTFOUND;
}

int json_index_load(const json_index *ix, json_db *db)
{
    const uint32_t *order = (const uint32_t *)((const char *)ix->map + header(ix)->order_off);
    for (uint64_t i = 0; i < ix->count; i++) {
        if (order[i] >= ix->count)
            return APIKEY_ST_UNAVAILABLE;
        const idx_rec *r = &records(ix)[order[i]];
        json_rec v;
        memcpy(v.id, r->id, APIKEY_ID_LEN);
        v.id[APIKEY_ID_LEN] = '\0';
        memcpy(v.hash, r->hash, APIKEY_HASH_LEN);
        v.created = r->created;
        v.expires = r->expires;
        v.last_used = __atomic_load_n(&r->last_used, __ATOMIC_RELAXED);
        v.revoked = r->revoked;
        v.account = (char *)string_at(ix, r->account, APIKEY_ACCOUNT_MAX);
        v.name = (char *)string_at(ix, r->name, APIKEY_NAME_MAX);
        v.scopes = (char *)string_at(ix, r->scopes, APIKEY_SCOPES_MAX);
        if (!v.account || !v.name || !v.scopes)
            return APIKEY_ST_UNAVAILABLE;
        int st = json_db_append(db, &v);
        if (st != APIKEY_ST_OK)
            return st == APIKEY_ST_CONFLICT ? APIKEY_ST_UNAVAILABLE : st;
    }
    return APIKEY_ST_OK;
}

void json_index_merge_last_used(const json_index *ix, json_db *db)
{
    const idx_rec *r = records(ix);
    for (uint64_t i = 0; i < ix->count; i++) {
        char id[APIKEY_ID_LEN + 1];
        memcpy(id, r[i].id, APIKEY_ID_LEN);
        id[APIKEY_ID_LEN] = '\0';
        json_db_raise_last_used(db, id, __atomic_load_n(&r[i].last_used, __ATOMIC_RELAXED));
    }
}

int json_index_touch(const json_index *ix, const char *idx_path, const char *id, int64_t when)
{
    const idx_rec *r = find(ix, id);
    if (!r)
        return APIKEY_ST_NOTFOUND;
    int fd = open(idx_path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return APIKEY_ST_UNAVAILABLE; /* an unprivileged host: fine */
    struct stat st;
    int rc = APIKEY_ST_UNAVAILABLE;
    /* Only into the very file that is mapped, never a newer one. */
    if (fstat(fd, &st) == 0 && st.st_dev == ix->dev && st.st_ino == ix->ino) {
        off_t off = (off_t)((const char *)&r->last_used - (const char *)ix->map);
        if (pwrite(fd, &when, sizeof when, off) == (ssize_t)sizeof when)
            rc = APIKEY_ST_OK;
    }
    close(fd);
    return rc;
}
