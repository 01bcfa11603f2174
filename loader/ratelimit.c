/* SPDX-License-Identifier: BSD-2-Clause */
/* GCRA in a shared table: see ratelimit.h and doc/ARCHITECTURE.md.
 *
 * Each key keeps one theoretical arrival time (TAT): a cell is allowed when
 * tat - now <= tau, tau = (burst - 1) * interval, and then tat becomes
 * max(tat, now) + interval. No refill thread, no window edge.
 *
 * A slot is {key, tat}, 16 bytes, changed only by one 16-byte
 * compare-and-swap, so a key and its time never tear apart. A key hashes to
 * a bucket of BUCKET slots (one cache line) and may live in any of them,
 * but never counts in two at once: a slot is claimed "pending" first (no
 * cell can be taken in it), every other slot of the bucket is then read,
 * and the claim becomes the key's live slot only if none holds the key;
 * otherwise it is given back. Of two claims racing for one key at least
 * one sees the other (each reads after its own compare-and-swap, a full
 * barrier), so at most one becomes live. Anyone may settle a pending claim
 * of the key it checks, so a claimer killed halfway holds nothing.
 *
 * A slot of another key is taken only when that key has been idle (tat in
 * the past) for GRACE: its state then equals a fresh key's, so taking it
 * loses nothing, even for a process whose clock reading is up to GRACE
 * older. When every slot of the bucket is held by a busy key the check is
 * "unavailable" rather than let any key past its limit. A live key's time
 * only ever grows, so a cell counted is never uncounted. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"
#include "hot_path.h"

/* The format: 02 has buckets of BUCKET slots. A table of format 01 (one
 * slot per key) is never read; it is replaced, as one of an earlier boot.
 * A host of format 01 refuses a table of 02 by its magic. */
#define MAGIC "APIKRT02"
#define MAGIC_01 "APIKRT01"
#define BUCKET 4
/* How long another key must have been idle before its slot is taken. */
#define GRACE INT64_C(1000000000)
/* A slot's time with this bit set: claimed, not yet live; the rest is the
 * claimer's clock. */
#define PENDING (UINT64_C(1) << 63)
#define BOOT_LEN 48

typedef struct rate_header {
    char magic[8];
    uint32_t slots; /* a power of two */
    uint32_t reserved;
    /* The boot the times belong to (the monotonic clock restarts at each):
     * a table of another boot is replaced, never read. */
    char boot[BOOT_LEN];
} rate_header;

typedef unsigned __int128 slot_word; /* low 64 bits: key, high: tat */

_Static_assert(sizeof(rate_header) == 64, "the header is one cache line");

static size_t table_len(uint32_t slots)
{
    return sizeof(rate_header) + (size_t)slots * sizeof(slot_word);
}

HOT_PATH int64_t rate_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the limit, as written ---- */

static const struct {
    const char *unit;
    uint32_t seconds;
} units[] = {{"s", 1}, {"min", 60}, {"h", 3600}};

int rate_parse(const char *text, rate_spec *out, char *err, size_t errlen)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    char *end;
    errno = 0;
    unsigned long n = slash && text[0] >= '0' && text[0] <= '9' ? strtoul(text, &end, 10) : 0;
    if (slash && n >= 1 && n <= RATE_LIMIT_MAX && errno == 0 && end == slash)
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(slash + 1, units[i].unit) == 0) {
                *out = (rate_spec){(uint32_t)n, units[i].seconds, (uint32_t)n};
                return 0;
            }
    snprintf(err, errlen, "bad rate '%s': use N/s, N/min or N/h with N from 1 to %u",
             text ? text : "", RATE_LIMIT_MAX);
    return -1;
}

void rate_format(const rate_spec *r, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; r->limit && i < sizeof units / sizeof units[0]; i++)
        if (r->period == units[i].seconds)
            snprintf(out, len, "%u/%s", r->limit, units[i].unit);
}

/* ---- the file ---- */

static void boot_id(char out[BOOT_LEN])
{
    memset(out, 0, BOOT_LEN);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, out, BOOT_LEN - 1) < 0)
            out[0] = '\0';
        close(fd);
    }
}

static void say(rate_table *t, const char *fmt, const char *what)
{
    snprintf(t->err, sizeof t->err, fmt, t->path, what);
}

/* A new table beside path, complete before anyone can see it: link it
 * into place when there is none (replace: rename it over a stale one). Never
 * a truncation of a file someone may have mapped. Returns an open fd of the
 * table now at path, or -1. */
static int create_table(rate_table *t, int replace)
{
    size_t n = strlen(t->path);
    char *tmp = malloc(n + 8);
    if (!tmp) {
        say(t, "%s: %s", "out of memory");
        return -1;
    }
    memcpy(tmp, t->path, n);
    memcpy(tmp + n, ".XXXXXX", 8);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        say(t, "rate table %s: cannot be created: %s", strerror(errno));
        free(tmp);
        return -1;
    }
    rate_header h = {.slots = t->create_slots};
    memcpy(h.magic, MAGIC, sizeof h.magic);
    boot_id(h.boot);
    int ok = fchmod(fd, 0660) == 0 && ftruncate(fd, (off_t)table_len(h.slots)) == 0 &&
             pwrite(fd, &h, sizeof h, 0) == (ssize_t)sizeof h;
    if (ok)
        ok = replace ? rename(tmp, t->path) == 0 : (link(tmp, t->path) == 0 || errno == EEXIST);
    if (!ok)
        say(t, "rate table %s: cannot be created: %s", strerror(errno));
    if (!ok || !replace)
        unlink(tmp);
    free(tmp);
    close(fd);
    /* Whoever won the race to link, everyone opens what is now there. */
    return ok ? open(t->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) : -1;
}

static void unmap(rate_table *t)
{
    if (t->map)
        munmap(t->map, t->map_len);
    if (t->fd >= 0)
        close(t->fd);
    __atomic_store_n(&t->map, NULL, __ATOMIC_RELAXED); /* rate_prefetch reads it unlocked */
    t->fd = -1;
}

/* Open and map the table, creating it when missing and replacing one of an
 * earlier boot. Its size is checked against its header before the mapping,
 * so no access can fall past its end (SIGBUS) unless someone truncates it
 * in place afterwards. 0, or -1 with t->err. */
static int map_table(rate_table *t)
{
    /* O_NONBLOCK: whatever sits at path (a FIFO planted by someone who may
     * write the folder) never blocks a login; fstat refuses it below. */
    unmap(t);
    int fd = open(t->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        fd = create_table(t, 0);
    else if (fd < 0)
        say(t, "rate table %s: %s", strerror(errno));
    if (fd < 0)
        return -1;
    for (int round = 0;; round++) {
        rate_header h;
        struct stat st;
        char boot[BOOT_LEN];
        boot_id(boot);
        int ours = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && !(st.st_mode & S_IWOTH) &&
                   pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h;
        int format_01 = ours && memcmp(h.magic, MAGIC_01, 8) == 0 && round == 0;
        if (!ours || (!format_01 && (memcmp(h.magic, MAGIC, 8) != 0 || h.slots < RATE_SLOTS_MIN ||
                                     h.slots > RATE_SLOTS_MAX || (h.slots & (h.slots - 1)) ||
                                     (uint64_t)st.st_size != table_len(h.slots)))) {
            say(t, "rate table %s: %s", "not a rate table of this size, or writable by anyone: remove it");
            close(fd);
            return -1;
        }
        if ((format_01 || memcmp(h.boot, boot, BOOT_LEN) != 0) && round == 0) {
            close(fd);
            if ((fd = create_table(t, 1)) < 0)
                return -1;
            continue;
        }
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            say(t, "rate table %s: cannot be mapped: %s", strerror(errno));
            close(fd);
            return -1;
        }
        t->fd = fd;
        t->map_len = (size_t)st.st_size;
        __atomic_store_n(&t->mask, h.slots / BUCKET - 1, __ATOMIC_RELAXED);
        __atomic_store_n(&t->map, m, __ATOMIC_RELAXED);
        t->err[0] = '\0';
        return 0;
    }
}

/* Whether the mapped table is still the file at path, unchanged in size
 * and writable by no one else. */
HOT_PATH static int still_there(const rate_table *t)
{
    struct stat a, b;
    return t->map && stat(t->path, &a) == 0 && fstat(t->fd, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino && (size_t)b.st_size == t->map_len && !(b.st_mode & S_IWOTH);
}

void rate_table_init(rate_table *t, const char *path)
{
    memset(t, 0, sizeof *t);
    pthread_rwlock_init(&t->lock, NULL);
    t->fd = -1;
    t->path = path ? strdup(path) : NULL;
    t->checked_ns = INT64_MIN;
    t->create_slots = RATE_SLOTS_DEFAULT;
}

void rate_table_free(rate_table *t)
{
    unmap(t);
    free(t->path);
    t->path = NULL;
    pthread_rwlock_destroy(&t->lock);
}

/* ---- one cell ---- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

#if defined(__x86_64__)
__attribute__((target("cx16")))
#endif
static int
cas(slot_word *p, slot_word old, slot_word new)
{
    return __sync_bool_compare_and_swap(p, old, new);
}

/* The word a slot holds: key low, time high. */
static slot_word word(uint64_t key, uint64_t tat)
{
    return (slot_word)key | (slot_word)tat << 64;
}

/* Two plain loads may tear; a compare-and-swap with what was read then
 * fails and the caller reads again. */
static void load(slot_word *slot, uint64_t *key, uint64_t *tat)
{
    uint64_t *half = (uint64_t *)slot;
    *key = __atomic_load_n(&half[0], __ATOMIC_SEQ_CST);
    *tat = __atomic_load_n(&half[1], __ATOMIC_SEQ_CST);
}

/* Settle slot i of bucket b, pending for key since claimed: live (and idle
 * from the claim's time) when no other slot of the bucket holds the key,
 * else given back. Whoever settles first wins; the others' swaps fail. */
static void settle(slot_word *b, int i, uint64_t key, uint64_t claimed)
{
    int alone = 1;
    for (int j = 0; j < BUCKET; j++)
        if (j != i && __atomic_load_n((uint64_t *)&b[j], __ATOMIC_SEQ_CST) == key)
            alone = 0;
    slot_word old = word(key, claimed);
    (void)cas(&b[i], old, alone ? word(key, claimed & ~PENDING) : 0);
}

/* Whether a slot holding another key's state may be taken at now: free,
 * idle for GRACE, or a claim left pending that long (its claimer gone). */
static int takeable(uint64_t k, uint64_t tat, int64_t now)
{
    return k == 0 || (int64_t)(tat & ~PENDING) <= now - GRACE;
}

static slot_word *bucket_of(void *map, uint32_t mask, uint64_t key)
{
    return (slot_word *)((char *)map + sizeof(rate_header)) + (size_t)(mix(key) & mask) * BUCKET;
}

HOT_PATH void rate_prefetch(rate_table *t, const char id[8])
{
    /* Read without the lock: a prefetch never faults, so a map being
     * replaced (or a mask of another map) costs at most a useless fetch. */
    void *map = __atomic_load_n(&t->map, __ATOMIC_RELAXED);
    uint32_t mask = __atomic_load_n(&t->mask, __ATOMIC_RELAXED);
    uint64_t key;
    memcpy(&key, id, sizeof key);
    if (map)
        __builtin_prefetch(bucket_of(map, mask, key), 1, 3);
}

HOT_PATH static int take_cell(rate_table *t, uint64_t key, const rate_spec *r, int64_t now,
                     rate_answer *out)
{
    slot_word *b = bucket_of(t->map, t->mask, key);
    int64_t interval = (int64_t)r->period * 1000000000 / r->limit;
    int64_t tau = (int64_t)(r->burst - 1) * interval;
    /* Claims given back because another slot held the key: only racing
     * first checks of one key do that, and one of them wins. */
    for (int claims = 0; claims < 64;) {
        uint64_t k[BUCKET], tat[BUCKET];
        int mine = -1, free_slot = -1;
        for (int i = 0; i < BUCKET; i++) {
            load(&b[i], &k[i], &tat[i]);
            if (k[i] == key && mine < 0)
                mine = i;
            else if (k[i] != key && free_slot < 0 && takeable(k[i], tat[i], now))
                free_slot = i;
        }
        if (mine >= 0 && (tat[mine] & PENDING)) {
            settle(b, mine, key, tat[mine]);
            continue;
        }
        if (mine < 0) {
            if (free_slot < 0)
                return RATE_UNAVAILABLE; /* every slot another busy key's */
            uint64_t claim = PENDING | (uint64_t)now;
            if (cas(&b[free_slot], word(k[free_slot], tat[free_slot]), word(key, claim))) {
                settle(b, free_slot, key, claim);
                claims++;
            }
            continue;
        }
        int64_t from = (int64_t)tat[mine] > now ? (int64_t)tat[mine] : now;
        if (from - now > tau) {
            int64_t wait = from - now - tau;
            out->remaining = 0;
            out->retry_after = (uint32_t)((wait + 999999999) / 1000000000);
            return RATE_LIMITED;
        }
        if (cas(&b[mine], word(key, tat[mine]), word(key, (uint64_t)(from + interval)))) {
            int64_t left = (tau - (from - now)) / interval;
            out->remaining = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
            out->retry_after = 0;
            return RATE_ALLOWED;
        }
    }
    return RATE_UNAVAILABLE;
}

HOT_PATH int rate_take(rate_table *t, const char id[8], const rate_spec *r, int64_t now_ns,
                       rate_answer *out, char *err, size_t errlen)
{
    uint64_t key;
    memcpy(&key, id, sizeof key); /* never 0: ids are base62 characters */
    *out = (rate_answer){0, 0};
    if (!t->path) {
        snprintf(err, errlen, "no rate table configured");
        return RATE_UNAVAILABLE;
    }
    pthread_rwlock_rdlock(&t->lock);
    int64_t checked = __atomic_load_n(&t->checked_ns, __ATOMIC_RELAXED);
    if (!t->map || now_ns - checked >= 1000000000 || now_ns < checked) {
        pthread_rwlock_unlock(&t->lock);
        pthread_rwlock_wrlock(&t->lock);
        checked = t->checked_ns;
        if (!t->map || now_ns - checked >= 1000000000 || now_ns < checked) {
            if (!still_there(t))
                (void)map_table(t);
            __atomic_store_n(&t->checked_ns, now_ns, __ATOMIC_RELAXED);
        }
        pthread_rwlock_unlock(&t->lock);
        pthread_rwlock_rdlock(&t->lock);
    }
    int d;
    if (!t->map) {
        snprintf(err, errlen, "%s", t->err);
        d = RATE_UNAVAILABLE;
    } else if ((d = take_cell(t, key, r, now_ns, out)) == RATE_UNAVAILABLE) {
        snprintf(err, errlen, "rate table %s: every slot of the key's bucket is held by another busy key", t->path);
    }
    pthread_rwlock_unlock(&t->lock);
    return d;
}
