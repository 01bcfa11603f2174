/* SPDX-License-Identifier: BSD-2-Clause */
/* A host's replica (loader/replica.c): the contact line read strictly, the
 * settings, and which store answers a check: the replica while its contact
 * is younger than replica_max_lag, else the store of record. No
 * PostgreSQL here (tests/integration/fleet.sh has it): the store of record
 * is a json store, the replica an SQLite copy of it made by apikey copy. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "replica.h"
#include "testutil.h"

static char *folder(const char *name)
{
    char *p = tu_path(name);
    mkdir(p, 0750);
    return p;
}

static void put_contact(const char *dir, const char *text, int mode)
{
    char name[512];
    snprintf(name, sizeof name, "%s/contact", strrchr(dir, '/') + 1);
    free(tu_write(name, text, mode));
}

static int reads(const char *dir, const char *text, int mode)
{
    replica_contact c;
    char why[512];
    put_contact(dir, text, mode);
    return replica_contact_read(dir, &c, why, sizeof why);
}

static void test_contact_line(void)
{
    char *d = folder("r1");
    replica_contact c;
    char why[512], line[REPLICA_CONTACT_MAX + 1];
    replica_contact w = {.at_ms = 1764990000123, .seq = 42};
    CU_ASSERT_TRUE(replica_contact_format(&w, line, sizeof line) > 0);
    put_contact(d, line, 0640);
    CU_ASSERT_EQUAL(replica_contact_read(d, &c, why, sizeof why), 0);
    CU_ASSERT_EQUAL(c.at_ms, 1764990000123);
    CU_ASSERT_EQUAL(c.seq, 42);
    static const char *const bad[] = {
        "apikey-replica 2 1764990000123 42\n", "apikey-replica 1 1764990000123 42",
        "apikey-replica 1 01764990000123 42\n", "apikey-replica 1 -1 42\n",
        "apikey-replica 1 1764990000123 42 \n", "apikey-replica 1 1764990000123\n",
        "apikey-replica 1 99999999999999999999 42\n", "apikey-replica 1  1 42\n", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(reads(d, bad[i], 0640), -1);
    /* Written by anyone but its owner: refused as a store file is. */
    CU_ASSERT_EQUAL(reads(d, line, 0660), -1);
    CU_ASSERT_EQUAL(reads(d, line, 0640), 0);
    free(d);
}

static void test_settings(void)
{
    config_file cfg;
    char err[512];
    const char *ok = "store = json:/x\nreplica = /var/lib/apikey/replica\nreplica_max_lag = 2s\n";
    CU_ASSERT_EQUAL_FATAL(config_parse(ok, strlen(ok), "t", &cfg, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.replica, "/var/lib/apikey/replica");
    CU_ASSERT_EQUAL(cfg.replica_max_lag, 2);
    config_free(&cfg);
    const char *dflt = "store = json:/x\n";
    CU_ASSERT_EQUAL_FATAL(config_parse(dflt, strlen(dflt), "t", &cfg, err, sizeof err), 0);
    CU_ASSERT_PTR_NULL(cfg.replica);
    CU_ASSERT_EQUAL(cfg.replica_max_lag, 10);
    config_free(&cfg);
    static const char *const bad[] = {
        "store = json:/x\nreplica = relative/path\n", "store = json:/x\nreplica_max_lag = 0s\n",
        "store = json:/x\nreplica_max_lag = 2d\n", "store = json:/x\nreplica_max_lag = soon\n",
        "store = json:/x\nreplica = /a\nreplica = /b\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(config_parse(bad[i], strlen(bad[i]), "t", &cfg, err, sizeof err), -1);
}

static apikey_decision check(const char *config, const char *key)
{
    char err[512];
    apikey_ctx *ctx = apikey_open(config, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    apikey_decision d = tu_verify_key(ctx, key, &res);
    apikey_close(ctx);
    return d;
}

static void contact_at(const char *dir, int64_t ms)
{
    char line[REPLICA_CONTACT_MAX + 1];
    replica_contact c = {.at_ms = ms, .seq = 1};
    CU_ASSERT_FATAL(replica_contact_format(&c, line, sizeof line) > 0);
    put_contact(dir, line, 0640);
}

/* A json store of record holding one key of alice's, copied into the
 * replica folder's keys.db: what the tests of which copy answers share. */
typedef struct fleet_of_one {
    char *d, *record, *rec_conf, *key, *copy_conf; /* copy_conf: the replica's own store */
    char id[12], uri[600];
} fleet_of_one;

static void fleet_of_one_make(fleet_of_one *f, const char *name)
{
    f->d = folder(name);
    f->record = tu_new_store_uri_of("json");
    f->rec_conf = tu_config(f->record, "max_keys_per_account = 100", NULL);
    f->key = tu_create_key(f->rec_conf, "alice");
    snprintf(f->uri, sizeof f->uri, "sqlite:%s/keys.db", f->d);
    CU_ASSERT_EQUAL_FATAL(tu_apikey(f->rec_conf, NULL, NULL, NULL, "copy", "--to", f->uri, NULL), 0);
    f->copy_conf = tu_config(f->uri, NULL, NULL);
    snprintf(f->id, sizeof f->id, "%.11s", f->key);
}

static void fleet_of_one_free(fleet_of_one *f)
{
    free(f->d);
    free(f->record);
    free(f->rec_conf);
    free(f->key);
    free(f->copy_conf);
}

/* A host on f's replica (its config in *host, these settings besides),
 * opened once syncd's contact is fresh. */
static apikey_ctx *fleet_of_one_host(fleet_of_one *f, const char *settings, char **host)
{
    char top[600], err[512];
    snprintf(top, sizeof top, "replica = %s\n%s", f->d, settings);
    *host = tu_config(f->record, top, NULL);
    contact_at(f->d, replica_now_ms());
    apikey_ctx *ctx = apikey_open(*host, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    return ctx;
}

/* The store of record holds the key valid; the replica holds it revoked:
 * a refusal says the replica answered, a grant that the store of record
 * did. */
static void test_which_store_answers(void)
{
    fleet_of_one one;
    fleet_of_one_make(&one, "r2");
    char *d = one.d, *key = one.key, *uri = one.uri, *rec_conf = one.rec_conf, top[600];
    CU_ASSERT_EQUAL_FATAL(tu_apikey(one.copy_conf, NULL, NULL, NULL, "revoke", one.id, NULL), 0);
    snprintf(top, sizeof top, "replica = %s\nreplica_max_lag = 5s", d);
    char *host = tu_config(one.record, top, NULL);

    contact_at(d, replica_now_ms());
    CU_ASSERT_EQUAL(check(host, key), APIKEY_REFUSED);
    contact_at(d, replica_now_ms() - 6000); /* older than the lag */
    CU_ASSERT_EQUAL(check(host, key), APIKEY_ALLOWED);
    contact_at(d, replica_now_ms() + 60000); /* from the future: no contact */
    CU_ASSERT_EQUAL(check(host, key), APIKEY_ALLOWED);
    put_contact(d, "garbage\n", 0640);
    CU_ASSERT_EQUAL(check(host, key), APIKEY_ALLOWED);
    /* A replica file that cannot be read: the store of record answers. */
    contact_at(d, replica_now_ms());
    char db[600];
    snprintf(db, sizeof db, "%s/keys.db", d);
    chmod(db, 0666);
    CU_ASSERT_EQUAL(check(host, key), APIKEY_ALLOWED);
    chmod(db, 0640);
    CU_ASSERT_EQUAL(check(host, key), APIKEY_REFUSED);

    /* keys.db deleted and made anew under a running host: it reads the new
     * file once its contact is read again, not the old inode for ever. */
    char err[512];
    apikey_ctx *ctx = apikey_open(host, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    /* Checks that find the replica stale give up its shared lock, taken
     * before the key is hashed: the file's replacement below takes the
     * exclusive one in this same host (left held, it would never return). */
    contact_at(d, replica_now_ms() - 6000);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tu_verify_key(ctx, key, &res), APIKEY_ALLOWED);
    contact_at(d, replica_now_ms() - 4500); /* trusted for half a second */
    CU_ASSERT_EQUAL(tu_verify_key(ctx, key, &res), APIKEY_REFUSED);
    static const char *const side[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char f[700];
        snprintf(f, sizeof f, "%s%s", db, side[i]);
        unlink(f);
    }
    CU_ASSERT_EQUAL_FATAL(tu_apikey(rec_conf, NULL, NULL, NULL, "copy", "--to", uri, NULL), 0);
    sleep(1);
    contact_at(d, replica_now_ms());
    CU_ASSERT_EQUAL(tu_verify_key(ctx, key, &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    fleet_of_one_free(&one);
    free(host);
}

/* Uses told to syncd (REPLICA/uses.sock): once per key per
 * last_used_granularity, and 2,000 keys checked in turn, twice, are told
 * once each, not at every check (a table that evicts them would). */
static int datagrams(int fd)
{
    char m[64];
    int n = 0;
    while (recv(fd, m, sizeof m, MSG_DONTWAIT) > 0)
        n++;
    return n;
}

static void test_uses_told_once(void)
{
    char *d = folder("r3"), *record = tu_new_store_uri_of("json"), top[600], err[512];
    snprintf(top, sizeof top, "replica = %s\nlast_used_granularity = 1h", d);
    char *host = tu_config(record, top, NULL);
    apikey_ctx *ctx = apikey_open(host, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/" REPLICA_USES, d);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    int64_t now = replica_now_ms() / 1000;
    replica_touch(ctx, "AAAAAAAA", now);
    replica_touch(ctx, "AAAAAAAA", now + 1);
    CU_ASSERT_EQUAL(datagrams(fd), 1);
    /* Told again once the granularity has passed (read without the lock,
     * a way's time still counts), and only once then. */
    replica_touch(ctx, "AAAAAAAA", now + 3600);
    replica_touch(ctx, "AAAAAAAA", now + 3601);
    CU_ASSERT_EQUAL(datagrams(fd), 1);
    int told = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < 2000; i++) {
            char id[9];
            snprintf(id, sizeof id, "K%07u", i % 10000000u);
            replica_touch(ctx, id, now);
            told += datagrams(fd); /* the socket's queue is short */
        }
        if (pass == 0) {
            CU_ASSERT_EQUAL(told, 2000);
            told = 0;
        }
    }
    CU_ASSERT_EQUAL(told, 0);
    close(fd);
    apikey_close(ctx);
    free(host);
    free(record);
    free(d);
}

/* A key checked again and again on a replica (its answer kept by the
 * sqlite store, its use remembered in the table of uses) is refused at the
 * first check after a revocation is committed to the replica. */
static void test_revoked_at_next_check(void)
{
    fleet_of_one f;
    fleet_of_one_make(&f, "r5");
    char *host;
    apikey_ctx *ctx = fleet_of_one_host(&f, "replica_max_lag = 60s\nlast_used_granularity = 1h", &host);
    apikey_result res;
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(tu_verify_key(ctx, f.key, &res), APIKEY_ALLOWED);
    CU_ASSERT_EQUAL_FATAL(tu_apikey(f.copy_conf, NULL, NULL, NULL, "revoke", f.id, NULL), 0);
    CU_ASSERT_EQUAL(tu_verify_key(ctx, f.key, &res), APIKEY_REFUSED);
    CU_ASSERT_EQUAL(res.reason, APIKEY_REASON_REVOKED);
    apikey_close(ctx);
    fleet_of_one_free(&f);
    free(host);
}

/* A database store of record with a replica: a check runs inline (0)
 * while the replica is trusted, and may block (1) once it is stale, so an
 * event-loop host (nginx) sends only those checks to its thread pool. */
static void test_check_may_block(void)
{
    char *d = folder("r4"), top[600], err[512];
    snprintf(top, sizeof top, "replica = %s\nreplica_max_lag = 5s", d);
    char *host = tu_config("pgsql:host=/nonexistent dbname=apikey", top, NULL);
    apikey_ctx *ctx = apikey_open(host, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_EQUAL(apikey_store_may_block(ctx), 1);
    CU_ASSERT_EQUAL(apikey_check_may_block(ctx), 1); /* no contact line yet */
    contact_at(d, replica_now_ms());
    CU_ASSERT_EQUAL(apikey_check_may_block(ctx), 0);
    CU_ASSERT_EQUAL(apikey_store_may_block(ctx), 1); /* a host still needs its pool */
    apikey_close(ctx);
    ctx = apikey_open(host, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    contact_at(d, replica_now_ms() - 6000); /* older than the lag */
    CU_ASSERT_EQUAL(apikey_check_may_block(ctx), 1);
    apikey_close(ctx);
    /* Without a replica, as the store says; no context may block. */
    char *plain = tu_config("pgsql:host=/nonexistent dbname=apikey", NULL, NULL);
    ctx = apikey_open(plain, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_EQUAL(apikey_check_may_block(ctx), 1);
    apikey_close(ctx);
    CU_ASSERT_EQUAL(apikey_check_may_block(NULL), 1);
    free(plain);
    free(host);
    free(d);
}

/* The wall clock set back (an NTP step, a date set by hand): the library
 * is linked into this program, so its calls come here, and CLOCK_REALTIME
 * and its coarse twin read clock_back_ms behind while it is set. */
static int64_t clock_back_ms;

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (syscall(SYS_clock_gettime, id, ts) != 0)
        return -1;
    if (clock_back_ms && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec - clock_back_ms * 1000000;
        ts->tv_sec = ns / 1000000000;
        ts->tv_nsec = ns % 1000000000;
    }
    return 0;
}

/* A replica trusted at a contact, then the clock set back an hour: the
 * contact is then an hour ahead, no contact, and the store of record
 * answers until syncd's next one; trusting it until contact +
 * replica_max_lag would be an hour more of trust with no word from syncd.
 * The replica holds the key revoked, the store of record valid. */
static void test_clock_set_back(void)
{
    fleet_of_one f;
    fleet_of_one_make(&f, "r6");
    CU_ASSERT_EQUAL_FATAL(tu_apikey(f.copy_conf, NULL, NULL, NULL, "revoke", f.id, NULL), 0);
    char *host;
    apikey_ctx *ctx = fleet_of_one_host(&f, "replica_max_lag = 5s", &host);
    apikey_result res;
    CU_ASSERT_EQUAL(tu_verify_key(ctx, f.key, &res), APIKEY_REFUSED);
    clock_back_ms = 3600 * 1000;
    CU_ASSERT_EQUAL(tu_verify_key(ctx, f.key, &res), APIKEY_ALLOWED);
    contact_at(f.d, replica_now_ms()); /* syncd's next contact, on the clock as it is now */
    CU_ASSERT_EQUAL(tu_verify_key(ctx, f.key, &res), APIKEY_REFUSED);
    /* Set forward again: that contact is an hour old. */
    clock_back_ms = 0;
    CU_ASSERT_EQUAL(tu_verify_key(ctx, f.key, &res), APIKEY_ALLOWED);
    apikey_close(ctx);
    fleet_of_one_free(&f);
    free(host);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"the contact line is read strictly, and as a store file", test_contact_line},
        {"replica and replica_max_lag: absolute, 1s to 1d, default 10s", test_settings},
        {"the replica answers while trusted, the store of record after", test_which_store_answers},
        {"a use is told to syncd once per key and granularity", test_uses_told_once},
        {"a revocation on the replica is refused at the next check", test_revoked_at_next_check},
        {"a check may block only while the replica is not trusted", test_check_may_block},
        {"a contact the clock has been set back past is no contact", test_clock_set_back},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"replica", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
