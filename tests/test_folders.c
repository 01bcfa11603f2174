/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The folders above a store, its side files and the configuration, checked
 * as OpenSSH's StrictModes does: a folder that someone else owns, or that
 * group or others may write without the sticky bit, makes the store
 * unavailable (and the configuration unusable) with one line naming it; an
 * SQLite -wal or -journal planted by someone else is refused; a sticky
 * folder owned by root (/tmp) is accepted. Real files, real chown: the
 * ownership cases need root and are skipped without it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apikey.h"
#include "testutil.h"

#define NOBODY 65534

static char *config_in(const char *kind, const char *path)
{
    char *uri;
    if (asprintf(&uri, "%s:%s", kind, path) < 0)
        abort();
    char *cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    free(uri);
    return cfg;
}

static apikey_decision verify(const char *cfg, const char *key)
{
    char err[512];
    apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_result res;
    apikey_decision d = apikey_verify(ctx, "sshd", NULL, key, strlen(key), &res);
    apikey_close(ctx);
    return d;
}

/* The command says why in one line; a host is unavailable. */
static void refused(const char *cfg, const char *key, const char *why)
{
    tu_expect_refusal(cfg, why);
    CU_ASSERT_EQUAL(verify(cfg, key), APIKEY_UNAVAILABLE);
}

static char *expect(const char *fmt, const char *a)
{
    char *s;
    if (asprintf(&s, fmt, a) < 0)
        abort();
    return s;
}

/* A store of kind in TMP/kind-N/inner, with a key; *outer gets TMP/kind-N. */
static char *store_in_two_folders(const char *kind, char **outer, char **key)
{
    static int n;
    char name[64];
    snprintf(name, sizeof name, "%s-%d", kind, n++);
    *outer = tu_path(name);
    CU_ASSERT_EQUAL_FATAL(mkdir(*outer, 0755), 0);
    char *inner = expect("%s/inner", *outer);
    CU_ASSERT_EQUAL_FATAL(mkdir(inner, 0755), 0);
    char *path = expect(strcmp(kind, "json") == 0 ? "%s/keys.json" : "%s/keys.db", inner);
    char *cfg = config_in(kind, path);
    *key = tu_create_key(cfg, "alice");
    CU_ASSERT_EQUAL(verify(cfg, *key), APIKEY_ALLOWED);
    free(inner);
    free(path);
    return cfg;
}

static const char *const kinds[] = {"json", "sqlite"};

static void test_writable_folder_in_the_chain(void)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        if (!tu_store_available(kinds[i]))
            continue;
        char *outer, *key, *cfg = store_in_two_folders(kinds[i], &outer, &key);
        char *why = expect("its folder %s is group- or world-writable (mode 0775)", outer);
        CU_ASSERT_EQUAL(chmod(outer, 0775), 0);
        refused(cfg, key, why);
        free(why);
        why = expect("its folder %s is group- or world-writable (mode 0757)", outer);
        CU_ASSERT_EQUAL(chmod(outer, 0757), 0);
        refused(cfg, key, why);
        /* Back to safe, back in service. */
        CU_ASSERT_EQUAL(chmod(outer, 0755), 0);
        CU_ASSERT_EQUAL(verify(cfg, key), APIKEY_ALLOWED);
        free(why);
        free(key);
        free(cfg);
        free(outer);
    }
}

static void test_folder_of_another_user(void)
{
    if (geteuid() != 0)
        return;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        if (!tu_store_available(kinds[i]))
            continue;
        char *outer, *key, *cfg = store_in_two_folders(kinds[i], &outer, &key);
        CU_ASSERT_EQUAL(chown(outer, NOBODY, NOBODY), 0);
        char *why = expect("its folder %s is owned by uid 65534", outer);
        refused(cfg, key, why);
        free(why);
        /* Sticky does not help when the owner is someone else. */
        CU_ASSERT_EQUAL(chmod(outer, 01777), 0);
        why = expect("its folder %s is owned by uid 65534", outer);
        refused(cfg, key, why);
        free(why);
        free(key);
        free(cfg);
        free(outer);
    }
}

/* Others may add names to a sticky folder owned by root but not replace
 * what is there: the test suite's stores live under /tmp. */
static void test_sticky_root_folder_accepted(void)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        if (!tu_store_available(kinds[i]))
            continue;
        char *outer, *key, *cfg = store_in_two_folders(kinds[i], &outer, &key);
        CU_ASSERT_EQUAL(chmod(outer, 01777), 0);
        CU_ASSERT_EQUAL(verify(cfg, key), APIKEY_ALLOWED);
        free(tu_create_key(cfg, "bob")); /* and writes go on */
        free(key);
        free(cfg);
        free(outer);
    }
}

static void test_planted_sqlite_side_files(void)
{
    if (!tu_store_available("sqlite") || geteuid() != 0)
        return;
    char *outer, *key, *cfg = store_in_two_folders("sqlite", &outer, &key);
    char *db = expect("%s/inner/keys.db", outer);
    char *wal = expect("%s-wal", db), *journal = expect("%s-journal", db);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(wal, &st), 0); /* kept after close (PERSIST_WAL) */
    CU_ASSERT_EQUAL(chown(wal, NOBODY, NOBODY), 0);
    char *why = expect("%s: owned by uid 65534", wal);
    refused(cfg, key, why);
    free(why);
    CU_ASSERT_EQUAL(chown(wal, 0, 0), 0);
    CU_ASSERT_EQUAL(chmod(wal, 0666), 0);
    why = expect("%s: group- or world-writable", wal);
    refused(cfg, key, why);
    free(why);
    CU_ASSERT_EQUAL(chmod(wal, 0640), 0);
    CU_ASSERT_EQUAL(verify(cfg, key), APIKEY_ALLOWED);
    /* A rollback journal SQLite would replay into the database. */
    int fd = open(journal, O_WRONLY | O_CREAT | O_EXCL, 0640);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(fchown(fd, NOBODY, NOBODY), 0);
    close(fd);
    why = expect("%s: owned by uid 65534", journal);
    refused(cfg, key, why);
    free(why);
    CU_ASSERT_EQUAL(unlink(journal), 0);
    CU_ASSERT_EQUAL(verify(cfg, key), APIKEY_ALLOWED);
    free(journal);
    free(wal);
    free(db);
    free(key);
    free(cfg);
    free(outer);
}

/* A lock someone else owns could be held to stall every writer. */
static void test_planted_json_lock(void)
{
    if (geteuid() != 0)
        return;
    char *outer, *key, *cfg = store_in_two_folders("json", &outer, &key);
    char *lock = expect("%s/inner/keys.json.lock", outer);
    CU_ASSERT_EQUAL(chown(lock, NOBODY, NOBODY), 0);
    char *err = NULL, *why = expect("%s: owned by uid 65534", lock);
    CU_ASSERT_EQUAL(tu_apikey(cfg, NULL, NULL, &err, "create", "bob", "--name", "x", "--scopes",
                              "proxies:read", NULL), 2);
    CU_ASSERT_PTR_NOT_NULL(err ? strstr(err, why) : NULL);
    free(err);
    free(why);
    free(lock);
    free(key);
    free(cfg);
    free(outer);
}

/* The configuration (and the pepper, read the same way) in a folder others
 * may write is not used. */
static void test_configuration_folder(void)
{
    char *dir = tu_path("conf-open");
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    char *store = tu_path("conf-store.json");
    char *text = expect("store = json:%s\n[services]\nsshd = proxies:read\n", store);
    char *cfg = expect("%s/apikey.conf", dir);
    FILE *f = fopen(cfg, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    char err[512];
    apikey_ctx *ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(ctx);
    apikey_close(ctx);
    CU_ASSERT_EQUAL(chmod(dir, 0777), 0);
    ctx = apikey_open(cfg, err, sizeof err);
    CU_ASSERT_PTR_NULL(ctx);
    apikey_close(ctx);
    char *why = expect("its folder %s is group- or world-writable (mode 0777)", dir);
    if (!strstr(err, why))
        fprintf(stderr, "expected '%s' in: %s\n", why, err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, why));
    free(why);
    free(cfg);
    free(text);
    free(store);
    free(dir);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"a group- or world-writable folder in the chain is refused", test_writable_folder_in_the_chain},
        {"a folder owned by another user is refused, sticky or not", test_folder_of_another_user},
        {"a sticky folder owned by root is accepted", test_sticky_root_folder_accepted},
        {"a foreign or world-writable -wal, a foreign -journal, are refused", test_planted_sqlite_side_files},
        {"a JSON store's lock owned by another user is refused", test_planted_json_lock},
        {"a configuration in a world-writable folder is refused", test_configuration_folder},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {
        {"folders", NULL, NULL, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    return tu_run(suites);
}
