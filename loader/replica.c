/* SPDX-License-Identifier: BSD-2-Clause */
/* A host's replica (replica.h): its contact line, and checks against it
 * while it is trusted. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "id_hash.h"
#include "replica.h"
#include "secfile.h"

/* 262,144 uses (4 MiB, zero pages until a key lands in one): a host that
 * checks 100,000 keys in turn tells each once per last_used_granularity;
 * with 16,384 every check beyond them was a datagram and a wake-up of
 * syncd, twice the cost of the check (bench/RESULTS.md, "A fleet"). A set
 * of USE_WAYS is one cache line, read at every allowed check: the table is
 * its own mapping, so that its sets are aligned, and the set is prefetched
 * while the key is hashed (replica_prefetch), since at 100,000 keys that
 * read was a miss of a third of a microsecond in an nginx worker. */
enum { USE_SLOTS = 262144, USE_WAYS = 4, USE_SETS = USE_SLOTS / USE_WAYS, USE_SET_BITS = 16 };
_Static_assert(USE_SETS == 1 << USE_SET_BITS, "a set is the hash's top bits");

/* A way's id is its 8 characters as one word, so that a check reads a way
 * with two plain loads and no lock (replica_touch); written under use_lock,
 * told before id. */
typedef struct use_set {
    struct {
        uint64_t id; /* the id's APIKEY_ID_LEN characters; 0: empty */
        int64_t told;
    } way[USE_WAYS];
} use_set;
_Static_assert(APIKEY_ID_LEN == sizeof(uint64_t), "a way's id is one word");

struct replica {
    pthread_rwlock_t lock; /* lookups shared; opening and closing the store exclusive */
    /* Uses told to syncd: the last per key (sets of USE_WAYS, the oldest
     * given up), so a key checked a thousand times a second is told once
     * per last_used_granularity, and many keys in turn do not evict each
     * other at every check. The replica's own last_used never moves (a use is not a
     * change), so it cannot be the throttle. Zero pages until used. */
    pthread_mutex_t use_lock;
    int use_fd;
    struct sockaddr_un use_addr;
    use_set *uses; /* USE_SETS sets, mmap()ed */
    store_binding store;
    store_lookup_fn lookup; /* store_check_lookup */
    int concurrent;
    int64_t trusted_until_ms; /* read and written atomically */
    /* keys.db as the open handle found it: a file deleted and made anew
     * (by hand) would otherwise be read through the old inode for ever.
     * Looked at whenever the contact line is read again. */
    dev_t dev;
    ino_t ino;
    int replaced; /* atomically: keys.db is another file than the handle's */
    char uri[4200];
};

static int64_t ms_of(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t replica_now_ms(void)
{
    return ms_of(CLOCK_REALTIME);
}

/* The clock a check reads its trust by: CLOCK_REALTIME_COARSE, the time as
 * of the kernel's last tick, 3.5 ns a read against 28 for CLOCK_REALTIME
 * under this project's hypervisors. A replica is then trusted up to a
 * tick (4 ms at 250 Hz) past replica_max_lag, a bound of seconds. */
static int64_t check_now_ms(void)
{
    return ms_of(CLOCK_REALTIME_COARSE);
}

int replica_contact_format(const replica_contact *c, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "apikey-replica 1 %" PRId64 " %" PRId64 "\n", c->at_ms, c->seq);
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* Digits only, no sign, no leading zero but "0", and no overflow. */
static const char *number(const char *p, int64_t *out)
{
    int64_t v = 0;
    const char *start = p;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return NULL;
        v = v * 10 + (*p - '0');
    }
    if (p == start || (*start == '0' && p - start > 1))
        return NULL;
    *out = v;
    return p;
}

int replica_contact_read(const char *folder, replica_contact *c, char *why, size_t whylen)
{
    char path[4200], buf[REPLICA_CONTACT_MAX + 1];
    if (snprintf(path, sizeof path, "%s/" REPLICA_CONTACT, folder) >= (int)sizeof path) {
        snprintf(why, whylen, "replica %s: the folder's name is too long", folder);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "replica %s: %s (is apikey-syncd running?)", path, strerror(errno));
        return -1;
    }
    ssize_t n = -1;
    if (secfile_check(fd, path, why, whylen) == 0 && (n = read(fd, buf, sizeof buf)) < 0)
        snprintf(why, whylen, "replica %s: %s", path, strerror(errno));
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    const char *p = buf;
    if ((size_t)n > REPLICA_CONTACT_MAX || strncmp(p, "apikey-replica 1 ", 17) != 0 ||
        !(p = number(p + 17, &c->at_ms)) || *p++ != ' ' || !(p = number(p, &c->seq)) ||
        strcmp(p, "\n") != 0) {
        snprintf(why, whylen, "replica %s: malformed (not the line apikey-syncd writes)", path);
        return -1;
    }
    return 0;
}

int replica_attach(apikey_ctx *ctx, char *err, size_t errlen)
{
    struct replica *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->use_fd = -1;
    r->use_addr.sun_family = AF_UNIX;
    if (snprintf(r->uri, sizeof r->uri, "sqlite:%s/" REPLICA_DB, ctx->cfg.replica) >= (int)sizeof r->uri ||
        snprintf(r->use_addr.sun_path, sizeof r->use_addr.sun_path, "%s/" REPLICA_USES, ctx->cfg.replica) >=
            (int)sizeof r->use_addr.sun_path ||
        pthread_rwlock_init(&r->lock, NULL) != 0) {
        snprintf(err, errlen, "replica %s: the folder's name is too long", ctx->cfg.replica);
        free(r);
        return -1;
    }
    pthread_mutex_init(&r->use_lock, NULL);
    r->uses = mmap(NULL, USE_SETS * sizeof(use_set), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->uses == MAP_FAILED) {
        r->uses = NULL;
        snprintf(err, errlen, "out of memory");
    }
    if (!r->uses || store_load(r->uri, ctx->privileged, &r->store, err, errlen) != 0) {
        if (r->uses)
            munmap(r->uses, USE_SETS * sizeof(use_set));
        pthread_mutex_destroy(&r->use_lock);
        pthread_rwlock_destroy(&r->lock);
        free(r);
        return -1;
    }
    r->lookup = store_check_lookup(r->store.ops);
    r->concurrent = APIKEY_STORE_HAS(r->store.ops, flags) &&
                    (r->store.ops->flags & APIKEY_STORE_CONCURRENT_LOOKUP);
    ctx->replica = r;
    return 0;
}

void replica_detach(apikey_ctx *ctx)
{
    struct replica *r = ctx->replica;
    if (!r)
        return;
    store_unbind(&r->store);
    if (r->use_fd >= 0)
        close(r->use_fd);
    munmap(r->uses, USE_SETS * sizeof(use_set));
    pthread_mutex_destroy(&r->use_lock);
    pthread_rwlock_destroy(&r->lock);
    free(r);
    ctx->replica = NULL;
}

/* How far ahead of this host's clock a contact may be and still count:
 * the coarse clock a check reads lags the one syncd writes by up to a
 * tick; a second is far more than that and small against a bound of
 * seconds. */
enum { CONTACT_AHEAD_MS = 1000 };

/* Whether the replica is trusted at now: the contact line is read again
 * only once the time it gave has run out, so a check on a fresh replica
 * costs one clock read. A contact from the future (a clock set back, a
 * forged line) is no contact. So is one the clock has since gone back
 * past: trusted until contact + replica_max_lag alone, a clock set back an
 * hour would trust the replica an hour more with no word from syncd. */
static int trusted(apikey_ctx *ctx, struct replica *r, int64_t now)
{
    int64_t lag_ms = ctx->cfg.replica_max_lag * 1000;
    int64_t until = __atomic_load_n(&r->trusted_until_ms, __ATOMIC_ACQUIRE);
    if (now < until && now + lag_ms + CONTACT_AHEAD_MS >= until)
        return 1;
    replica_contact c;
    char why[512];
    struct stat st;
    if (stat(r->uri + strlen("sqlite:"), &st) == 0 && (st.st_dev != r->dev || st.st_ino != r->ino))
        __atomic_store_n(&r->replaced, 1, __ATOMIC_RELEASE);
    if (replica_contact_read(ctx->cfg.replica, &c, why, sizeof why) != 0 || c.at_ms > now + CONTACT_AHEAD_MS)
        return 0;
    __atomic_store_n(&r->trusted_until_ms, c.at_ms + lag_ms, __ATOMIC_RELEASE);
    return now < c.at_ms + lag_ms;
}

int replica_trusted_now(apikey_ctx *ctx)
{
    return trusted(ctx, ctx->replica, check_now_ms());
}

int replica_lookup(apikey_ctx *ctx, const char *id, apikey_record *out, int held)
{
    struct replica *r = ctx->replica;
    if (!trusted(ctx, r, check_now_ms())) {
        if (held)
            pthread_rwlock_unlock(&r->lock);
        return REPLICA_STALE;
    }
    int st = APIKEY_ST_UNAVAILABLE;
    void *used = NULL;
    /* Read before it is exchanged: a locked write at every check, for a
     * flag set once in a blue moon, cost more than the load. */
    if (__atomic_load_n(&r->replaced, __ATOMIC_ACQUIRE) &&
        __atomic_exchange_n(&r->replaced, 0, __ATOMIC_ACQ_REL)) {
        if (held)
            pthread_rwlock_unlock(&r->lock);
        held = 0;
        pthread_rwlock_wrlock(&r->lock);
        store_disconnect(&r->store);
        pthread_rwlock_unlock(&r->lock);
    }
    if (held) {
        if ((used = r->store.handle))
            st = r->lookup(used, id, out);
        pthread_rwlock_unlock(&r->lock);
    }
    if (!used || st == APIKEY_ST_UNAVAILABLE) {
        pthread_rwlock_wrlock(&r->lock);
        if (!used || used != r->store.handle) {
            struct stat file;
            st = store_connect(&r->store, 0);
            if (st == APIKEY_ST_OK && stat(r->uri + strlen("sqlite:"), &file) == 0) {
                r->dev = file.st_dev;
                r->ino = file.st_ino;
            }
            if (st == APIKEY_ST_OK)
                st = r->lookup(r->store.handle, id, out);
        }
        if (st == APIKEY_ST_UNAVAILABLE)
            store_disconnect(&r->store);
        pthread_rwlock_unlock(&r->lock);
    }
    /* A replica that cannot be read (a corrupt file, a malformed record)
     * is no answer: the store of record gives it. */
    return st == APIKEY_ST_UNAVAILABLE ? REPLICA_STALE : st;
}

void replica_release(apikey_ctx *ctx)
{
    pthread_rwlock_unlock(&ctx->replica->lock);
}

static use_set *uses_of(struct replica *r, const char *id)
{
    return &r->uses[id_hash_top(id, USE_SET_BITS)];
}

int replica_prefetch(apikey_ctx *ctx, const char *id)
{
    struct replica *r = ctx->replica;
    __builtin_prefetch(uses_of(r, id), 1);
    /* One hold of the shared lock covers the store's prefetch, the hash
     * and the lookup, as for a store read in place (verify.c): a hold for
     * each was two locked instructions more a check. */
    if (!r->concurrent)
        return 0;
    pthread_rwlock_rdlock(&r->lock);
    if (r->store.handle && APIKEY_STORE_HAS(r->store.ops, prefetch) && r->store.ops->prefetch)
        r->store.ops->prefetch(r->store.handle, id);
    return 1;
}

/* A way told within the granularity, read without the lock: told is
 * stored before id (release), so an id seen (acquire) comes with its own
 * time or a later one. A check whose key was told lately (nearly every
 * check: the replica's last_used never moves) takes no lock at all. */
static int told_lately(const use_set *set, uint64_t key, int64_t when, int64_t granularity)
{
    for (int w = 0; w < USE_WAYS; w++)
        if (__atomic_load_n(&set->way[w].id, __ATOMIC_ACQUIRE) == key)
            return when - __atomic_load_n(&set->way[w].told, __ATOMIC_RELAXED) < granularity;
    return 0;
}

void replica_touch(apikey_ctx *ctx, const char *id, int64_t when)
{
    struct replica *r = ctx->replica;
    use_set *set = uses_of(r, id);
    uint64_t key;
    memcpy(&key, id, sizeof key);
    if (told_lately(set, key, when, ctx->cfg.last_used_granularity))
        return;
    int slot = 0;
    pthread_mutex_lock(&r->use_lock);
    if (told_lately(set, key, when, ctx->cfg.last_used_granularity)) {
        pthread_mutex_unlock(&r->use_lock);
        return;
    }
    for (int w = 0; w < USE_WAYS; w++) {
        if (set->way[w].id == key) {
            slot = w;
            break;
        }
        if (set->way[w].told < set->way[slot].told)
            slot = w;
    }
    __atomic_store_n(&set->way[slot].told, when, __ATOMIC_RELAXED);
    __atomic_store_n(&set->way[slot].id, key, __ATOMIC_RELEASE);
    /* Connected once: a send then looks up no path. A syncd restarted
     * binds a new socket; the old one's refusal makes the next use
     * connect again. */
    if (r->use_fd < 0 && (r->use_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) >= 0 &&
        connect(r->use_fd, (const struct sockaddr *)&r->use_addr, sizeof r->use_addr) != 0) {
        close(r->use_fd);
        r->use_fd = -1;
    }
    char msg[48];
    int n = snprintf(msg, sizeof msg, "%.8s %" PRId64 "\n", id, when);
    /* No syncd, a full queue: the use is not recorded, and the check it
     * follows has been answered already. */
    if (r->use_fd >= 0 && send(r->use_fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
        close(r->use_fd);
        r->use_fd = -1;
    }
    pthread_mutex_unlock(&r->use_lock);
}

APIKEY_EXPORT apikey_status apikey_replica(apikey_ctx *ctx, apikey_replica_state *out, char *err,
                                           size_t errlen)
{
    char scratch[16];
    if (!err) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (!ctx || !out || out->size < sizeof out->size)
        return APIKEY_E_ARGUMENT;
    if (!ctx->cfg.replica) {
        snprintf(err, errlen, "%s has no 'replica =' setting", ctx->config_path);
        return APIKEY_E_INVALID;
    }
    apikey_replica_state mine = {.size = sizeof mine, .max_lag_ms = ctx->cfg.replica_max_lag * 1000};
    replica_contact c;
    if (replica_contact_read(ctx->cfg.replica, &c, err, errlen) != 0)
        return APIKEY_E_UNAVAILABLE;
    mine.contact_ms = c.at_ms;
    mine.last_change = c.seq;
    mine.lag_ms = replica_now_ms() - c.at_ms;
    mine.trusted = mine.lag_ms < mine.max_lag_ms && mine.lag_ms > -1000;
    out->size = core_sized_out(&mine, sizeof mine, out, out->size);
    return APIKEY_OK;
}
