/* SPDX-License-Identifier: BSD-2-Clause */
#include "json_index.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../store_wait.h"
#include "../../common/hot_path.h"
#include "apikey_io.h"

#define IDX_MAGIC "AKIDX\x01\r\n"
/* 4: a table of 128-byte slots addressed by id (ordered linear probing).
 * 5: records carry allow_from. An index of 4, left by the previous release,
 * is still read (idx_rec_v4) until the next write replaces it: ignoring it
 * made every check parse the whole JSON file until somebody wrote.
 * 6: records carry the rate limit, in 12 bytes taken from the inline
 * account. An index of 5 is read as 4 is, beside the file it was built
 * from (version 2, no limits). */
#define IDX_VERSION 6
#define IDX_VERSION_V5 5
#define IDX_VERSION_V4 4
#define REC_ALIGN 128
/* A key sits a slot or two after its home on average; a forged index
 * cannot make a lookup scan more than this. */
#define MAX_SCAN 32
/* Slots read at once: the home slot and the next few, where most keys are. */
#define READ_SLOTS 4


/* Slots per key: 4/3, so that lookups scan 2.5 slots on average. */
#define SLOTS_PER_KEY(n) ((n) + (n) / 3 + 1)
#define ACCOUNT_INLINE UINT32_MAX
/* allow_from offset of a key without a list, which most keys are: a check
 * reads no string for it. */
#define ALLOW_ANY UINT32_MAX
#define ID_RANGE 218340105584896ull /* 62^8 */


/* Everything a verification reads sits in one aligned pair of cache lines
 * (the first holds what a scan compares); names and scope lists are shared
 * strings, and most accounts fit inline. */
typedef struct idx_rec {
    char id[APIKEY_ID_LEN];
    unsigned char hash[APIKEY_HASH_LEN];
    int64_t last_used; /* 8-aligned: hosts pwrite it */
    int64_t expires, revoked;
    int64_t created;
    uint32_t scopes, name; /* offsets into the string table */
    uint32_t account;      /* offset, or ACCOUNT_INLINE */
    uint32_t allow_from;   /* offset, or ALLOW_ANY */
    uint32_t rate_limit, rate_period, rate_burst; /* all 0: no limit */
    char account_inline[28];
} idx_rec;

_Static_assert(sizeof(idx_rec) == REC_ALIGN, "an index record is two cache lines");
_Static_assert(sizeof(json_index_header) <= REC_ALIGN, "the header fits before the slots");

/* The previous release's slot: the same but for its tail, where version 5
 * has allow_from and four bytes less of inline account. A slot of either
 * is read as an idx_rec; the tail is read through inline_account() and
 * allow_of(), and everything else (hosts pwrite last_used) is where it was. */
typedef struct idx_rec_v4 {
    char id[APIKEY_ID_LEN];
    unsigned char hash[APIKEY_HASH_LEN];
    int64_t last_used;
    int64_t expires, revoked;
    int64_t created;
    uint32_t scopes, name;
    uint32_t account;
    char account_inline[44];
} idx_rec_v4;

#define SAME_PLACE(f) _Static_assert(offsetof(idx_rec, f) == offsetof(idx_rec_v4, f), #f " moved")
SAME_PLACE(id);
SAME_PLACE(hash);
SAME_PLACE(last_used);
SAME_PLACE(expires);
SAME_PLACE(revoked);
SAME_PLACE(created);
SAME_PLACE(scopes);
SAME_PLACE(name);
SAME_PLACE(account);
_Static_assert(sizeof(idx_rec_v4) == REC_ALIGN, "a version 4 slot is as long");
_Static_assert(offsetof(idx_rec_v4, account_inline) == offsetof(idx_rec, allow_from),
               "only the tail differs");
/* A version 5 slot: allow_from, then 40 bytes of inline account where
 * version 6 has the rate limit and 28. */
#define V5_INLINE_OFF (offsetof(idx_rec, allow_from) + sizeof(uint32_t))
_Static_assert(V5_INLINE_OFF == offsetof(idx_rec, rate_limit), "the rate comes after allow_from");

/* A version 4 index was built from a version 1 JSON file, which has no
 * lists: every key is allowed from any address. */
HOT_PATH static uint32_t allow_of(const json_index *ix, const idx_rec *r)
{
    return ix->old == IDX_VERSION_V4 ? ALLOW_ANY : r->allow_from;
}

/* The inline account of slot r (not necessarily terminated) and its size. */
HOT_PATH static const char *inline_account(const json_index *ix, const idx_rec *r, size_t *size)
{
    size_t off = ix->old == IDX_VERSION_V4   ? offsetof(idx_rec_v4, account_inline)
                 : ix->old == IDX_VERSION_V5 ? V5_INLINE_OFF
                                             : offsetof(idx_rec, account_inline);
    *size = REC_ALIGN - off;
    return (const char *)r + off;
}

/* The rate limit of slot r into out: none in an index before 6, built from
 * a file before version 3, which has none. */
HOT_PATH static void rate_of(const json_index *ix, const idx_rec *r, uint32_t out[3])
{
    int has = !ix->old;
    out[0] = has ? r->rate_limit : 0;
    out[1] = has ? r->rate_period : 0;
    out[2] = has ? r->rate_burst : 0;
}

HOT_PATH static const json_index_header *header(const json_index *ix)
{
    return &ix->head;
}

/* The index file is read with pread, never mapped. A file mapped
 * MAP_SHARED (or MAP_PRIVATE, for the pages not yet copied) that someone
 * truncates in place (truncate, cp over it, rsync --inplace) raises SIGBUS
 * at the next touch of a page past its new end, and that kills the host: a
 * library may not catch signals. A short read is only an error. */
static int file_read(const json_index *ix, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(ix->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* Lookups read the host's own copy of the file instead: a pread per slot
 * and per string cost three system calls a check, each several times the
 * check's own work (bench/RESULTS.md). The copy is an anonymous mapping of
 * the file's size, filled a 4 KiB page at a time the first time a lookup
 * needs it, so a host holds the pages its keys use: about 4 KiB per key
 * used (a login, two or three pages; a host that checks 10,000 keys of a
 * million, 40 MB of a 174 MB index, where 64 KiB blocks took all of it),
 * and a rewrite of a million-key store costs it nothing until it looks.
 * Once a quarter of the pages are in, the host evidently uses keys all
 * over the index: a miss then reads on to the end of its 64 KiB run of
 * pages, a sixteenth of the system calls. Pages read at different times
 * belong to the same file: a writer never changes an index in place (but
 * for its stale mark and hosts' last-used times), and a page is only kept
 * when the header still reads as at open after it was read, so one copied
 * over in place is not mixed with the old one. */
#define BLOCK 4096
#define RUN_BLOCKS 16

static int fill(json_index *ix, uint64_t b)
{
    int rc = 0;
    pthread_mutex_lock(&ix->fill_lock);
    if (!__atomic_load_n(&ix->filled[b], __ATOMIC_ACQUIRE)) {
        uint64_t end = b + 1;
        if (ix->nfilled * 4 >= ix->nblocks) /* never over a filled page: it is being read */
            while (end < ix->nblocks && end % RUN_BLOCKS && !ix->filled[end])
                end++;
        uint64_t off = b * BLOCK;
        size_t n = (size_t)((end * BLOCK < ix->len ? end * BLOCK : ix->len) - off);
        json_index_header now;
        rc = file_read(ix, ix->mem + off, n, off) != 0 || file_read(ix, &now, sizeof now, 0) != 0 ||
                     memcmp(&now, &ix->head, sizeof now) != 0
                 ? -1
                 : 0;
        for (uint64_t k = b; rc == 0 && k < end; k++)
            __atomic_store_n(&ix->filled[k], 1, __ATOMIC_RELEASE);
        if (rc == 0)
            ix->nfilled += end - b;
        else /* replaced or marked stale under us: the next is_stale reads the header */
            __atomic_store_n(&ix->checked_ns, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&ix->fill_lock);
    return rc;
}

/* len bytes at off in the host's copy, filled first where they are not
 * yet: a lookup reads them in place, touching only the cache lines it
 * compares. NULL when out of the file or it cannot be read. */
HOT_PATH static const char *view(json_index *ix, size_t len, uint64_t off)
{
    if (off > ix->len || len > ix->len - off || len == 0)
        return NULL;
    for (uint64_t b = off / BLOCK; b <= (off + len - 1) / BLOCK; b++)
        if (!__atomic_load_n(&ix->filled[b], __ATOMIC_ACQUIRE) && fill(ix, b) != 0)
            return NULL;
    return ix->mem + off;
}

HOT_PATH static uint64_t slot_off(const json_index *ix, uint64_t slot)
{
    return header(ix)->rec_off + slot * sizeof(idx_rec);
}

int json_index_matches(const json_index *ix, const struct stat *st)
{
    const json_index_header *h = header(ix);
    return h->json_dev == (uint64_t)st->st_dev && h->json_ino == (uint64_t)st->st_ino &&
           h->json_size == (uint64_t)st->st_size && h->json_mtime_sec == st->st_mtim.tv_sec &&
           h->json_mtime_nsec == st->st_mtim.tv_nsec;
}

HOT_PATH int json_index_is_open(const json_index *ix)
{
    return ix->is_open;
}

/* Stale when a writer has marked it so, or when the file no longer starts
 * with the header read at open (rewritten in place, truncated).
 *
 * The header is read again only when the last read that found it the same
 * began JSON_INDEX_RECHECK_NS ago or more by the recheck clock: a check
 * then costs no system call. A revocation is still refused at the first
 * check that begins after the writer returned: the writer marks this index
 * stale, then waits JSON_INDEX_WRITER_WAIT_NS of the recheck clock
 * (store_wait_for_hosts, whose comment gives the argument), so any read a
 * later check trusts began after the mark, and found the index stale. */
HOT_PATH int json_index_is_stale(json_index *ix)
{
    int64_t began = store_recheck_clock_ns();
    if (began - __atomic_load_n(&ix->checked_ns, __ATOMIC_ACQUIRE) < JSON_INDEX_RECHECK_NS)
        return 0;
    json_index_header now;
    if (file_read(ix, &now, sizeof now, 0) != 0 || memcmp(&now, header(ix), sizeof now) != 0)
        return 1;
    /* Never backwards: another thread may have recorded a later read. */
    int64_t seen = __atomic_load_n(&ix->checked_ns, __ATOMIC_RELAXED);
    while (seen < began &&
           !__atomic_compare_exchange_n(&ix->checked_ns, &seen, began, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
    return 0;
}

/* An id as a base62 number (62^8 < 2^48). The alphabet is in ASCII order,
 * so numbers sort as ids do, and random ids are uniform numbers. */
static const unsigned char b62_value[256] = {
#define D10(c, v) [c] = v, [c + 1] = v + 1, [c + 2] = v + 2, [c + 3] = v + 3, [c + 4] = v + 4, \
                  [c + 5] = v + 5, [c + 6] = v + 6, [c + 7] = v + 7, [c + 8] = v + 8, [c + 9] = v + 9
    D10('0', 0),  D10('A', 10), D10('K', 20), ['U'] = 30, ['V'] = 31, ['W'] = 32, ['X'] = 33,
    ['Y'] = 34,   ['Z'] = 35,   D10('a', 36), D10('k', 46), ['u'] = 56, ['v'] = 57, ['w'] = 58,
    ['x'] = 59,   ['y'] = 60,   ['z'] = 61,
#undef D10
};

HOT_PATH static uint64_t id_value(const char *id)
{
    /* Two halves at once: the chain of multiplies is on every lookup. A
     * table, not range tests: the characters are random, so the branches
     * of the tests were mispredicted. */
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < APIKEY_ID_LEN / 2; i++) {
        hi = hi * 62 + b62_value[(unsigned char)id[i]];
        lo = lo * 62 + b62_value[(unsigned char)id[i + APIKEY_ID_LEN / 2]];
    }
    return hi * (62 * 62 * 62 * 62) + lo;
}

/* Ids are uniform, so scaling the value spreads keys evenly over the
 * slots and a key's place is known from its id alone: no search, no
 * directory, and the slots it may be in can be fetched while the key is
 * being hashed. Monotonic in the id, so the table stays sorted. */
HOT_PATH static uint64_t home_of(uint64_t v, uint64_t mul, uint64_t nhome)
{
    uint64_t b = (uint64_t)(((unsigned __int128)v * mul) >> 64);
    return b < nhome ? b : nhome - 1;
}

/* Ids compare as big-endian numbers of their 8 characters (ASCII order is
 * base62 order). */
HOT_PATH static uint64_t id_order(const char *id)
{
    uint64_t k;
    memcpy(&k, id, sizeof k);
    return __builtin_bswap64(k);
}

/* Strings shared through a hash set while building: a store's names and
 * scope lists repeat, and each repeat would be another cache line. */
typedef struct strtab {
    char *buf;
    size_t len, cap;
    uint32_t *slots; /* offset + 1, 0 empty */
    size_t mask;
} strtab;

static uint64_t str_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The offset of s in the table, added when new; UINT32_MAX on failure. */
static uint32_t strtab_add(strtab *t, const char *s)
{
    size_t n = strlen(s);
    size_t i = str_hash(s, n) & t->mask;
    for (; t->slots[i]; i = (i + 1) & t->mask) {
        const char *have = t->buf + t->slots[i] - 1;
        if (memcmp(have, s, n + 1) == 0)
            return t->slots[i] - 1;
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap * 2 > t->len + n + 1 ? t->cap * 2 : t->len + n + 1;
        char *grown = realloc(t->buf, cap);
        if (!grown)
            return UINT32_MAX;
        t->buf = grown;
        t->cap = cap;
    }
    if (t->len + n + 1 >= UINT32_MAX)
        return UINT32_MAX;
    uint32_t off = (uint32_t)t->len;
    memcpy(t->buf + off, s, n + 1);
    t->len += n + 1;
    t->slots[i] = off + 1;
    return off;
}

/* The slot of each key into pos (db->n of them), as lookups find it: at
 * its home slot (from the id itself) or just after the key before it, the
 * table sorted by home and then by id. Returns the number of slots, or 0
 * when memory runs out. */
static size_t place_keys(const json_db *db, size_t nhome, uint64_t mul, uint32_t *pos)
{
    size_t n = db->n, nslots = 0;
    uint64_t *vals = malloc((n + 1) * sizeof *vals);
    uint32_t *home = malloc((n + 1) * sizeof *home), *by_id = malloc((n + 1) * sizeof *by_id);
    uint32_t *cnt = calloc(nhome + 1, sizeof *cnt), *fill = malloc((nhome + 1) * sizeof *fill);
    if (!vals || !home || !by_id || !cnt || !fill)
        goto done;
    /* Counting sort by home slot, then by id among the few sharing one. */
    for (size_t i = 0; i < n; i++) {
        vals[i] = id_value(db->recs[i].id);
        home[i] = (uint32_t)home_of(vals[i], mul, nhome);
        cnt[home[i] + 1]++;
    }
    for (size_t b = 0; b < nhome; b++)
        cnt[b + 1] += cnt[b];
    memcpy(fill, cnt, (nhome + 1) * sizeof *fill);
    for (size_t i = 0; i < n; i++) {
        uint32_t b = home[i], at = fill[b]++;
        while (at > cnt[b] && vals[by_id[at - 1]] > vals[i]) {
            by_id[at] = by_id[at - 1];
            at--;
        }
        by_id[at] = (uint32_t)i;
    }
    /* Each key at its home or just after the key before it. */
    for (size_t r = 0; r < n; r++) {
        size_t p = home[by_id[r]];
        if (r > 0 && p <= pos[by_id[r - 1]])
            p = pos[by_id[r - 1]] + 1;
        pos[by_id[r]] = (uint32_t)p;
        nslots = p + 1;
    }
    if (nslots < nhome)
        nslots = nhome;
done:
    free(vals);
    free(home);
    free(by_id);
    free(cnt);
    free(fill);
    return nslots;
}

/* Each key's account (or ACCOUNT_INLINE when it fits in its slot), name,
 * scope list and allowlist (or ALLOW_ANY) into t, their offsets into offs,
 * four a key. 0, or -1 when memory or the table's offsets run out. */
static int add_strings(const json_db *db, strtab *t, uint32_t *offs)
{
    for (size_t i = 0; i < db->n; i++) {
        const json_rec *j = &db->recs[i];
        uint32_t *o = &offs[4 * i];
        int inline_account = strlen(j->account) < sizeof((idx_rec *)0)->account_inline;
        o[0] = inline_account ? ACCOUNT_INLINE : strtab_add(t, j->account);
        o[1] = strtab_add(t, j->name);
        o[2] = strtab_add(t, j->scopes);
        o[3] = j->allow_from[0] ? strtab_add(t, j->allow_from) : ALLOW_ANY;
        if ((o[0] == UINT32_MAX && !inline_account) || o[1] == UINT32_MAX || o[2] == UINT32_MAX ||
            (o[3] == UINT32_MAX && j->allow_from[0]))
            return -1;
    }
    return 0;
}

/* Each key's record into its slot of recs. */
static void fill_slots(const json_db *db, const uint32_t *pos, const uint32_t *offs, idx_rec *recs)
{
    for (size_t i = 0; i < db->n; i++) {
        const json_rec *j = &db->recs[i];
        idx_rec *x = &recs[pos[i]];
        memcpy(x->id, j->id, APIKEY_ID_LEN);
        memcpy(x->hash, j->hash, APIKEY_HASH_LEN);
        x->created = j->created;
        x->expires = j->expires;
        x->last_used = j->last_used;
        x->revoked = j->revoked;
        x->account = offs[4 * i];
        if (x->account == ACCOUNT_INLINE)
            strcpy(x->account_inline, j->account);
        x->name = offs[4 * i + 1];
        x->scopes = offs[4 * i + 2];
        x->allow_from = offs[4 * i + 3];
        x->rate_limit = j->rate_limit;
        x->rate_period = j->rate_period;
        x->rate_burst = j->rate_burst;
    }
}

/* The header of an index of n keys in nslots slots, the creation order
 * after them and then the strings, describing the JSON file st. */
static void fill_header(json_index_header *h, const struct stat *st, size_t n, size_t nhome,
                        uint64_t mul, size_t nslots, size_t strings_len)
{
    memcpy(h->magic, IDX_MAGIC, sizeof h->magic);
    h->version = IDX_VERSION;
    h->record_size = sizeof(idx_rec);
    h->count = n;
    h->json_dev = (uint64_t)st->st_dev;
    h->json_ino = (uint64_t)st->st_ino;
    h->json_size = (uint64_t)st->st_size;
    h->json_mtime_sec = st->st_mtim.tv_sec;
    h->json_mtime_nsec = st->st_mtim.tv_nsec;
    h->nhome = nhome;
    h->home_mul = mul;
    h->nslots = nslots;
    h->rec_off = REC_ALIGN;
    h->order_off = h->rec_off + nslots * sizeof(idx_rec);
    h->strings_off = h->order_off + n * sizeof(uint32_t);
    h->strings_len = strings_len;
}

/* Lay out header, slots, creation order and strings in one mapping
 * (unmapped by the caller, *len_out bytes): the keys placed, then the
 * strings gathered first, so that the records can be laid out in place in
 * the one buffer (a second copy of a store's index was a fifth of a write). */
static char *build(const json_db *db, const struct stat *st, size_t *len_out)
{
    size_t n = db->n, nhome = SLOTS_PER_KEY(n), nslots = 0;
    uint32_t *pos = malloc((n + 1) * sizeof *pos), *offs = malloc((4 * n + 1) * sizeof *offs);
    strtab t = {0};
    size_t nts = 64;
    while (nts < 3 * n + 16)
        nts *= 2;
    t.slots = calloc(nts, sizeof *t.slots);
    t.mask = nts - 1;
    t.cap = 4096;
    t.buf = malloc(t.cap);
    char *buf = NULL;
    if (!pos || !offs || !t.slots || !t.buf || nhome >= UINT32_MAX / 2)
        goto done;
    uint64_t mul = (uint64_t)((((unsigned __int128)nhome) << 64) / ID_RANGE);
    if (!(nslots = place_keys(db, nhome, mul, pos)) || add_strings(db, &t, offs) != 0)
        goto done;
    json_index_header head = {0};
    fill_header(&head, st, n, nhome, mul, nslots, t.len);
    size_t len = head.strings_off + t.len;
    /* Populated at once, in huge pages where the system allows: page faults
     * one by one cost more than the writing. */
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        goto done;
    (void)madvise(m, len, MADV_HUGEPAGE);
    (void)madvise(m, len, MADV_POPULATE_WRITE);
    buf = m;
    fill_slots(db, pos, offs, (idx_rec *)(buf + head.rec_off));
    memcpy(buf, &head, sizeof head);
    memcpy(buf + head.order_off, pos, n * sizeof(uint32_t));
    memcpy(buf + head.strings_off, t.buf, t.len);
    *len_out = len;
done:
    free(pos);
    free(offs);
    free(t.slots);
    free(t.buf);
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
    if (apikey_write_all(fd, buf, len) != 0)
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
        (void)!pwrite(old, &one, sizeof one, offsetof(json_index_header, stale));
        close(old);
        /* Until every host has read the header since the mark, its
         * check may still trust its copy (json_index_is_stale). */
        store_wait_for_hosts(JSON_INDEX_WRITER_WAIT_NS);
    }
    if (rc != 0) {
        snprintf(why, whylen, "cannot %s the index %s: %s", what, idx_path,
                 errno ? strerror(errno) : "out of memory");
        if (tmp && fd >= 0)
            unlink(tmp);
    }
    if (fd >= 0)
        close(fd);
    if (buf)
        munmap(buf, len);
    free(tmp);
    return rc;
}

/* How earlier releases began every file they wrote: a version 4 index is
 * trusted only beside a file that begins so (version 1), a version 5 index
 * beside one of version 2. */
#define OLD_HEAD(v) "{\"format\": \"" JSON_STORE_FORMAT "\", \"version\": " v ", \"keys\": [\n"

static int json_begins(int json_fd, const char *want)
{
    char head[sizeof OLD_HEAD("1") - 1];
    ssize_t n = pread(json_fd, head, sizeof head, 0);
    return n == (ssize_t)sizeof head && memcmp(head, want, sizeof head) == 0;
}

int json_index_open(json_index *ix, const char *idx_path, int json_fd, const struct stat *json_st,
                    int (*check)(int fd, const char *path, char *why, size_t whylen))
{
    memset(ix, 0, sizeof *ix);
    int64_t began = store_recheck_clock_ns();
    int fd = open(idx_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ix->fd = fd;
    char why[256];
    struct stat st;
    if (check(fd, idx_path, why, sizeof why) != 0 || fstat(fd, &st) != 0 ||
        (size_t)st.st_size < sizeof(json_index_header) ||
        file_read(ix, &ix->head, sizeof ix->head, 0) != 0)
        goto fail;
    ix->len = (size_t)st.st_size;
    ix->dev = st.st_dev;
    ix->ino = st.st_ino;
    const json_index_header *h = header(ix);
    /* Everything a lookup trusts is checked once here; what is read later
     * is checked where it is used. */
    uint64_t max_recs = (ix->len - sizeof *h) / sizeof(idx_rec);
    char last = 0;
    ix->old = h->version == IDX_VERSION_V4 || h->version == IDX_VERSION_V5 ? (int)h->version : 0;
    if (memcmp(h->magic, IDX_MAGIC, sizeof h->magic) != 0 ||
        (h->version != IDX_VERSION && !ix->old) ||
        h->record_size != sizeof(idx_rec) || h->nslots > max_recs || h->count > h->nslots ||
        h->nhome == 0 || h->nhome > h->nslots || h->rec_off != REC_ALIGN ||
        h->order_off != h->rec_off + h->nslots * sizeof(idx_rec) ||
        h->strings_off != h->order_off + h->count * sizeof(uint32_t) || h->strings_off > ix->len ||
        h->strings_len != ix->len - h->strings_off ||
        (h->strings_len && (file_read(ix, &last, 1, ix->len - 1) != 0 || last != '\0')) ||
        h->stale || !json_index_matches(ix, json_st))
        goto fail;
    /* Only the previous release wrote a version 4 index, and only beside the
     * version 1 file it had just written, whose device, inode, size and
     * mtime it names. A file edited since (to version 2, to add a list) no
     * longer matches: an edit changes its mtime, a copy its inode. Only an
     * in-place edit that kept the size and had its mtime put back by hand
     * could still match; the head of the file is read, once here, so that
     * even then a version 2 file is never answered from lists-free slots.
     * The same holds for a version 5 index, of a version 2 file, which has
     * no rate limits. */
    if ((ix->old == IDX_VERSION_V4 && !json_begins(json_fd, OLD_HEAD("1"))) ||
        (ix->old == IDX_VERSION_V5 && !json_begins(json_fd, OLD_HEAD("2"))))
        goto fail;
    ix->mem = mmap(NULL, ix->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ix->mem == MAP_FAILED) {
        ix->mem = NULL;
        goto fail;
    }
    ix->nblocks = (ix->len + BLOCK - 1) / BLOCK;
    if (!(ix->filled = calloc(ix->nblocks, 1)))
        goto fail;
    pthread_mutex_init(&ix->fill_lock, NULL);
    ix->checked_ns = began;
    ix->count = h->count;
    ix->nslots = h->nslots;
    ix->is_open = 1;
    return 0;
fail:
    close(fd);
    if (ix->mem)
        munmap(ix->mem, ix->len);
    memset(ix, 0, sizeof *ix);
    return -1;
}

void json_index_close(json_index *ix)
{
    if (ix->is_open) {
        close(ix->fd);
        munmap(ix->mem, ix->len);
        free(ix->filled);
        pthread_mutex_destroy(&ix->fill_lock);
    }
    free(ix->copy);
    memset(ix, 0, sizeof *ix);
}

static size_t home_slot(const json_index *ix, const char *id)
{
    const json_index_header *h = header(ix);
    return home_of(id_value(id), h->home_mul, h->nhome);
}

/* The home slot and the next three, all a scan may read for most keys: a
 * key sits at its home for 37% of ids, one slot on for 26%, two for 15%
 * (bench/RESULTS.md). Fetching only the home slot left the found slot's
 * second line to be fetched once the scan had compared the first: a miss
 * after the hash, not beside it. Only slots in the home slot's page: the
 * processor waits on a prefetch for its page's address translation, and a
 * second page would be a second wait. */
#define PREFETCH_SLOTS 4

HOT_PATH void json_index_prefetch(const json_index *ix, const char *id)
{
    uint64_t off = slot_off(ix, home_slot(ix, id)), page = off / BLOCK;
    if (off >= ix->len || !__atomic_load_n(&ix->filled[page], __ATOMIC_ACQUIRE))
        return;
    /* Slots are 128-byte aligned: none straddles a page. */
    for (int k = 0; k < PREFETCH_SLOTS && off / BLOCK == page && off + sizeof(idx_rec) <= ix->len;
         k++, off += sizeof(idx_rec)) {
        __builtin_prefetch(ix->mem + off);
        __builtin_prefetch(ix->mem + off + 64);
    }
}

/* The slot holding id (compared in full: a forged index may lie) into
 * *found, returning 1; else 0 with the slot where the scan stopped (and its
 * record in *found); -1 when the file cannot be read. The table is sorted
 * and a key is at its home or after it, with no empty slot between. The
 * slots are compared in the copy, where only their first cache line is
 * touched, and the answer is read there too: a copy of the slot cost a
 * check 128 bytes more to move, and left the key's hash on the stack. */
HOT_PATH static int find_near(json_index *ix, const char *id, const idx_rec **found, uint64_t *slot)
{
    uint64_t i = home_slot(ix, id), end = i + MAX_SCAN;
    if (end > ix->nslots)
        end = ix->nslots;
    uint64_t want = id_order(id);
    const idx_rec *last = NULL;
    *slot = i;
    while (i < end) {
        size_t n = end - i < READ_SLOTS ? (size_t)(end - i) : READ_SLOTS;
        const idx_rec *r = (const idx_rec *)view(ix, n * sizeof *r, slot_off(ix, i));
        if (!r)
            return -1;
        for (size_t k = 0; k < n; k++, i++) {
            *slot = i;
            last = &r[k];
            if (!r[k].id[0])
                break;
            uint64_t have = id_order(r[k].id);
            if (have >= want) {
                *found = last;
                return have == want;
            }
        }
        if (!last->id[0])
            break;
    }
    *found = last; /* an empty slot, or the last of the scan: the neighbour */
    return last ? 0 : -1;
}

/* Up to max bytes of src into dst, through its NUL: the string's length,
 * or max when there is no NUL within them. Strings here are short, and
 * strnlen and memcpy were two libc pages more a check. */
HOT_PATH static size_t copy_string(char *dst, const char *src, size_t max)
{
    for (size_t i = 0; i < max; i++)
        if ((dst[i] = src[i]) == '\0')
            return i;
    return max;
}

/* A string of the table into buf (max bytes), or NULL when the offset or
 * its length is bad or it cannot be read. Measured in the copy and only
 * the string copied out: a scope list's buffer is 1 KiB. */
HOT_PATH static const char *string_at(json_index *ix, uint32_t off, char *buf, size_t max)
{
    const json_index_header *h = header(ix);
    if (off >= h->strings_len)
        return NULL;
    size_t n = h->strings_len - off < max ? (size_t)(h->strings_len - off) : max;
    const char *p = view(ix, n, h->strings_off + off);
    return p && copy_string(buf, p, n) < n ? buf : NULL;
}

/* The account into buf (APIKEY_ACCOUNT_MAX bytes, more than an inline
 * one), measured once: an inline one was measured and then strcpy'd. */
HOT_PATH static const char *account_of(json_index *ix, const idx_rec *r, char *buf)
{
    if (r->account != ACCOUNT_INLINE)
        return string_at(ix, r->account, buf, APIKEY_ACCOUNT_MAX);
    size_t size;
    const char *a = inline_account(ix, r, &size);
    return copy_string(buf, a, size) < size ? buf : NULL;
}
_Static_assert(REC_ALIGN - offsetof(idx_rec_v4, account_inline) <= APIKEY_ACCOUNT_MAX,
               "an inline account fits a record's");

/* The strings are read straight into out. */
HOT_PATH static int to_record(json_index *ix, const idx_rec *r, apikey_record *out, int with_name)
{
    uint32_t allow = allow_of(ix, r);
    const char *a = account_of(ix, r, out->account);
    const char *n = with_name ? string_at(ix, r->name, out->name, sizeof out->name) : "";
    const char *s = string_at(ix, r->scopes, out->scopes, sizeof out->scopes);
    const char *l = out->allow_from;
    out->allow_from[0] = '\0';
    if (allow != ALLOW_ANY)
        l = string_at(ix, allow, out->allow_from, sizeof out->allow_from);
    /* A list stored but empty would read as "any address": corrupt. */
    if (!a || !n || !s || !l || (allow != ALLOW_ANY && !l[0]))
        return APIKEY_ST_UNAVAILABLE;
    memcpy(out->id, r->id, APIKEY_ID_LEN);
    out->id[APIKEY_ID_LEN] = '\0';
    memcpy(out->hash, r->hash, APIKEY_HASH_LEN);
    out->created = r->created;
    out->expires = r->expires;
    /* Another thread's touch may store it meanwhile (json_index_touch). */
    out->last_used = __atomic_load_n(&r->last_used, __ATOMIC_RELAXED);
    out->revoked = r->revoked;
    if (!with_name)
        out->name[0] = '\0';
    uint32_t rate[3];
    rate_of(ix, r, rate);
    out->rate_limit = rate[0];
    out->rate_period = rate[1];
    out->rate_burst = rate[2];
    /* The texts were checked when the JSON was parsed and are bounded
     * above; the times and the limit, which decide, are checked again on
     * this hot path (the whole record's would walk every text again at
     * every check). */
    return apikey_record_times_ok(out) && apikey_record_rate_ok(out) ? APIKEY_ST_OK
                                                                     : APIKEY_ST_UNAVAILABLE;
}

/* What an empty slot reads as, for the time an unknown id takes: a key
 * whose account is inline, as most are, with no list and no limit. In a
 * version 4 slot the bytes of allow_from are the inline account's. */
static const idx_rec empty_slot = {.account = ACCOUNT_INLINE, .allow_from = ALLOW_ANY};
static const idx_rec empty_slot_v4 = {.account = ACCOUNT_INLINE};

/* From the slots and strings of the file. */
static int read_record(json_index *ix, const char *id, apikey_record *out, int with_name)
{
    uint64_t slot = 0;
    const idx_rec *r = NULL;
    int hit = find_near(ix, id, &r, &slot);
    if (hit < 0)
        return APIKEY_ST_UNAVAILABLE;
    if (hit)
        return to_record(ix, r, out, with_name);
    /* Read the neighbour's strings as a hit's are read: an unknown id must
     * cost what a wrong secret costs, or timing tells which ids exist.
     * Only for the time it takes: an unknown id is not found whatever its
     * neighbour holds (an empty slot has no creation time). */
    if (!r->id[0])
        r = ix->old == IDX_VERSION_V4 ? &empty_slot_v4 : &empty_slot;
    (void)to_record(ix, r, out, with_name);
    return APIKEY_ST_NOTFOUND;
}

HOT_PATH int json_index_get(json_index *ix, const char *id, apikey_record *out, int with_name)
{
    int st = read_record(ix, id, out, with_name);
    if (st == APIKEY_ST_NOTFOUND)
        memset(out, 0, offsetof(apikey_record, account));
    return st;
}

int json_index_load(json_index *ix, json_db *db)
{
    /* Every record is read: the whole file into private memory, which the
     * borrowed strings point into until the index is closed. */
    free(ix->copy);
    if (!(ix->copy = malloc(ix->len)))
        return APIKEY_ST_NOMEM;
    if (file_read(ix, ix->copy, ix->len, 0) != 0 ||
        memcmp(ix->copy, &ix->head, sizeof ix->head) != 0 || ix->copy[ix->len - 1] != '\0')
        return APIKEY_ST_UNAVAILABLE;
    const json_index_header *h = header(ix);
    idx_rec *recs = (idx_rec *)(ix->copy + h->rec_off);
    const char *strings = ix->copy + h->strings_off;
    const uint32_t *order = (const uint32_t *)(ix->copy + h->order_off);
    if (json_db_reserve(db, ix->count) != APIKEY_ST_OK)
        return APIKEY_ST_NOMEM;
    for (uint64_t i = 0; i < ix->count; i++) {
        /* Creation order is random in the id-ordered slots: fetch ahead. */
        if (i + 8 < ix->count && order[i + 8] < ix->nslots) {
            const idx_rec *ahead = &recs[order[i + 8]];
            __builtin_prefetch(ahead);
            __builtin_prefetch((const char *)ahead + 64);
            if (i + 4 < ix->count && order[i + 4] < ix->nslots)
                json_db_prefetch_slot(db, recs[order[i + 4]].id);
        }
        if (order[i] >= ix->nslots || !recs[order[i]].id[0])
            return APIKEY_ST_UNAVAILABLE;
        idx_rec *r = &recs[order[i]];
        json_rec v;
        memcpy(v.id, r->id, APIKEY_ID_LEN);
        v.id[APIKEY_ID_LEN] = '\0';
        memcpy(v.hash, r->hash, APIKEY_HASH_LEN);
        v.created = r->created;
        v.expires = r->expires;
        v.last_used = r->last_used;
        v.revoked = r->revoked;
        /* Strings stay in the copy (the table ends in a NUL, checked at open). */
        size_t inline_size;
        char *inline_at = (char *)inline_account(ix, r, &inline_size); /* in our copy */
        uint32_t allow = allow_of(ix, r), rate[3];
        rate_of(ix, r, rate);
        v.rate_limit = rate[0];
        v.rate_period = rate[1];
        v.rate_burst = rate[2];
        v.account = r->account == ACCOUNT_INLINE ? inline_at
                    : r->account < h->strings_len  ? (char *)strings + r->account
                                                   : NULL;
        v.name = r->name < h->strings_len ? (char *)strings + r->name : NULL;
        v.scopes = r->scopes < h->strings_len ? (char *)strings + r->scopes : NULL;
        v.allow_from = allow == ALLOW_ANY      ? (char *)""
                       : allow < h->strings_len ? (char *)strings + allow
                                                : NULL;
        if (r->account == ACCOUNT_INLINE)
            inline_at[inline_size - 1] = '\0';
        if (!v.account || !v.name || !v.scopes || !v.allow_from ||
            strlen(v.account) >= APIKEY_ACCOUNT_MAX || strlen(v.name) >= APIKEY_NAME_MAX ||
            strlen(v.scopes) >= APIKEY_SCOPES_MAX || strlen(v.allow_from) >= APIKEY_ALLOW_FROM_MAX ||
            (allow != ALLOW_ANY && !v.allow_from[0]))
            return APIKEY_ST_UNAVAILABLE;
        int st = json_db_append_borrowed(db, &v);
        if (st != APIKEY_ST_OK)
            return st == APIKEY_ST_CONFLICT ? APIKEY_ST_UNAVAILABLE : st;
    }
    return APIKEY_ST_OK;
}

void json_index_merge_last_used(const json_index *ix, json_db *db)
{
    idx_rec r[256];
    for (uint64_t i = 0; i < ix->nslots; i += 256) {
        size_t n = ix->nslots - i < 256 ? (size_t)(ix->nslots - i) : 256;
        /* From the file: other hosts' uses are not in this one's copy. */
        if (file_read(ix, r, n * sizeof *r, slot_off(ix, i)) != 0)
            return; /* best effort, as the uses were */
        for (size_t k = 0; k < n; k++) {
            if (!r[k].id[0])
                continue;
            char id[APIKEY_ID_LEN + 1];
            memcpy(id, r[k].id, APIKEY_ID_LEN);
            id[APIKEY_ID_LEN] = '\0';
            json_db_raise_last_used(db, id, r[k].last_used);
        }
    }
}

int json_index_touch(json_index *ix, const char *idx_path, const char *id, int64_t when)
{
    uint64_t slot = 0;
    const idx_rec *r;
    if (find_near(ix, id, &r, &slot) != 1)
        return APIKEY_ST_NOTFOUND;
    /* The file's time, not the copy's: other hosts record uses too. */
    int64_t *mine = (int64_t *)(ix->mem + slot_off(ix, slot) + offsetof(idx_rec, last_used));
    off_t off = (off_t)(slot_off(ix, slot) + offsetof(idx_rec, last_used));
    int64_t theirs;
    if (file_read(ix, &theirs, sizeof theirs, (uint64_t)off) != 0)
        return APIKEY_ST_UNAVAILABLE;
    if (when <= theirs) {
        __atomic_store_n(mine, theirs, __ATOMIC_RELAXED); /* seen: no need to look again */
        return APIKEY_ST_OK; /* a use is only ever recorded forward */
    }
    int fd = open(idx_path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return APIKEY_ST_UNAVAILABLE; /* an unprivileged host: fine */
    struct stat st;
    int rc = APIKEY_ST_UNAVAILABLE;
    /* Only into the very file that was read, never a newer one. */
    if (fstat(fd, &st) == 0 && st.st_dev == ix->dev && st.st_ino == ix->ino &&
        pwrite(fd, &when, sizeof when, off) == (ssize_t)sizeof when)
        rc = APIKEY_ST_OK;
    close(fd);
    if (rc == APIKEY_ST_OK) /* the copy says so too, or the next check would write again */
        __atomic_store_n(mine, when, __ATOMIC_RELAXED);
    return rc;
}
