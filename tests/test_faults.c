/*
 * Fault injection on every write path: the real apikey command runs with
 * tests/faultinject.c preloaded, and open, read, write, fsync, rename,
 * mkostemp, flock and the allocators fail at each call in turn. After each
 * failure the store is exactly as it was and the command said so with exit
 * 2 (or, when the fault hit something it can do without, it succeeded and
 * the change is there); a verification that meets a fault never grants a
 * key it must refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static const char *faults[] = {"open", "read", "write", "fsync", "rename", "mkostemp",
                               "fchmod", "flock", "malloc", "calloc", "realloc"};
static char *dir, *cfg, *pristine_json, *pristine_idx, *good, *good_id, *revoked_key;
static size_t pristine_json_len, pristine_idx_len;
static char json_path[512], idx_path[512];

static void restore(void)
{
    FILE *f = fopen(json_path, "wb");
    fwrite(pristine_json, 1, pristine_json_len, f);
    fclose(f);
    f = fopen(idx_path, "wb");
    fwrite(pristine_idx, 1, pristine_idx_len, f);
    fclose(f);
    chmod(json_path, 0600);
    chmod(idx_path, 0600);
}

static int unchanged(void)
{
    size_t len;
    char *now = tu_read(json_path, &len);
    int same = now && len == pristine_json_len && memcmp(now, pristine_json, len) == 0;
    free(now);
    return same;
}

static long calls_of(const char *fault, char *const *args, const char *input)
{
    char count[600];
    snprintf(count, sizeof count, "%s/count", dir);
    setenv("APIKEY_FAULT_COUNT", count, 1);
    char spec[64];
    snprintf(spec, sizeof spec, "%s:0", fault);
    setenv("APIKEY_FAULT", spec, 1);
    restore();
    tu_apikey(cfg, input, NULL, NULL, args[0], args[1], args[2], args[3], args[4], args[5], NULL);
    char *text = tu_read(count, NULL);
    long n = text ? atol(text) : 0;
    free(text);
    return n;
}

static int setup(void)
{
    dir = strdup(tu_tmpdir());
    snprintf(json_path, sizeof json_path, "%s/f.json", dir);
    snprintf(idx_path, sizeof idx_path, "%s/f.json.idx", dir);
    char uri[600];
    snprintf(uri, sizeof uri, "json:%s", json_path);
    cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    char *out = NULL;
    if (tu_apikey(cfg, NULL, &out, NULL, "create", "alice", "--name", "a", "--scopes", "proxies:read", NULL))
        return 1;
    out[strcspn(out, "\n")] = '\0';
    good = out;
    good_id = strndup(good, 11);
    tu_apikey(cfg, NULL, &out, NULL, "create", "bob", "--name", "b", "--scopes", "proxies:read", NULL);
    out[strcspn(out, "\n")] = '\0';
    revoked_key = out;
    char *rid = strndup(revoked_key, 11);
    tu_apikey(cfg, NULL, NULL, NULL, "revoke", rid, NULL);
    free(rid);
    pristine_json = tu_read(json_path, &pristine_json_len);
    pristine_idx = tu_read(idx_path, &pristine_idx_len);
    setenv("APIKEY_PRELOAD", "build/tests/libfault.so", 1);
    setenv("APIKEY_FAULT_AFTER", cfg, 1);
    return 0;
}

/* Try every call of every fault for one command. */
static void each_fault(char *const *args, const char *input, const char *what)
{
    int failures = 0, successes = 0, bad = 0;
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        long n = calls_of(faults[f], args, input);
        /* Allocation: every call up to 200, then a sample of the rest. */
        long step = n > 200 ? n / 100 : 1;
        for (long i = 1; i <= n; i += (i < 200 ? 1 : step)) {
            char spec[64];
            snprintf(spec, sizeof spec, "%s:%ld", faults[f], i);
            setenv("APIKEY_FAULT", spec, 1);
            restore();
            char *err = NULL;
            int rc = tu_apikey(cfg, input, NULL, &err, args[0], args[1], args[2], args[3], args[4], args[5], NULL);
            unsetenv("APIKEY_FAULT");
            int ok;
            if (rc == 0) {
                successes++;
                ok = 1; /* the fault hit something it could do without */
            } else {
                failures++;
                ok = rc == 2 && unchanged() && err[0] != '\0';
            }
            /* Whatever happened, the store loads and the good key works. */
            char line[128];
            snprintf(line, sizeof line, "%s\n", good);
            int still = tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL);
            if (!ok || (still != 0 && strcmp(args[0], "revoke") != 0 && strcmp(args[0], "rotate") != 0)) {
                fprintf(stderr, "%s with %s: exit %d, store %s, verify %d: %s", what, spec, rc,
                        unchanged() ? "unchanged" : "CHANGED", still, err);
                bad++;
            }
            free(err);
        }
    }
    printf("(%s: %d runs failed cleanly, %d succeeded despite the fault) ", what, failures, successes);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(failures > 0);
}

static void test_create(void)
{
    char *args[] = {"create", "carol", "--name", "c", "--scopes", "proxies:read"};
    each_fault(args, NULL, "create");
}

static void test_revoke(void)
{
    char *args[] = {"revoke", good_id, NULL, NULL, NULL, NULL};
    each_fault(args, NULL, "revoke");
}

static void test_rotate(void)
{
    char *args[] = {"rotate", good_id, "--grace", "1h", NULL, NULL};
    each_fault(args, NULL, "rotate");
}

static void test_batch(void)
{
    char *args[] = {"create", "--batch", "-", NULL, NULL, NULL};
    each_fault(args, "dave\td\tproxies:read\t30d\nerin\te\t*\tnever\n", "create --batch");
}

/* A verification that meets a fault answers "cannot tell" or the truth,
 * never a grant it must not give. */
static void test_verify_never_grants(void)
{
    int bad = 0, runs = 0;
    const char *keys[] = {good, revoked_key};
    for (int k = 0; k < 2; k++) {
        char line[128];
        snprintf(line, sizeof line, "%s\n", keys[k]);
        char *args[] = {"verify", "--service", "sshd", NULL, NULL, NULL};
        for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
            long n = calls_of(faults[f], args, line);
            long step = n > 200 ? n / 100 : 1;
            for (long i = 1; i <= n; i += (i < 200 ? 1 : step)) {
                char spec[64];
                snprintf(spec, sizeof spec, "%s:%ld", faults[f], i);
                setenv("APIKEY_FAULT", spec, 1);
                int rc = tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", NULL);
                unsetenv("APIKEY_FAULT");
                runs++;
                int want_refused = k == 1;
                if ((want_refused && rc == 0) || (!want_refused && rc == 1) || rc > 2) {
                    fprintf(stderr, "verify %s with %s: exit %d\n", k ? "revoked" : "good", spec, rc);
                    bad++;
                }
            }
        }
    }
    printf("(%d faulty verifications) ", runs);
    CU_ASSERT_EQUAL(bad, 0);
}

/* A real full disk: a 256 kB tmpfs. Creating keys until it is full fails
 * cleanly, and every key acknowledged before still works. */
static void test_full_disk(void)
{
    if (geteuid() != 0) {
        printf("(skipped: mounting a tmpfs needs root) ");
        return;
    }
    char mnt[600], cmd[700];
    snprintf(mnt, sizeof mnt, "%s/full", dir);
    mkdir(mnt, 0755);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=256k tmpfs '%s'", mnt);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    unsetenv("APIKEY_PRELOAD");
    char uri[700];
    snprintf(uri, sizeof uri, "json:%s/keys.json", mnt);
    char *c = tu_config(uri, "max_keys_per_account = 100000", "sshd = proxies:read\n");
    char **keys = calloc(5000, sizeof *keys);
    int n = 0, rc = 0;
    char *err = NULL;
    size_t before_len = 0;
    char *before = NULL;
    while (n < 5000) {
        char path[800];
        snprintf(path, sizeof path, "%s/keys.json", mnt);
        free(before);
        before = tu_read(path, &before_len);
        char *out = NULL;
        free(err);
        err = NULL;
        rc = tu_apikey(c, NULL, &out, &err, "create", "alice", "--name", "a long name to fill the disk sooner",
                       "--scopes", "proxies:read", NULL);
        if (rc != 0) {
            free(out);
            size_t after_len;
            char *after = tu_read(path, &after_len);
            CU_ASSERT(after_len == before_len && memcmp(after, before, before_len) == 0);
            free(after);
            break;
        }
        out[strcspn(out, "\n")] = '\0';
        keys[n++] = out;
    }
    printf("(disk full after %d keys: %s) ", n, err ? strtok(err, "\n") : "");
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(n > 10);
    for (int i = 0; i < n; i += 50) {
        char line[128];
        snprintf(line, sizeof line, "%s\n", keys[i]);
        CU_ASSERT_EQUAL(tu_apikey(c, line, NULL, NULL, "verify", "--service", "sshd", NULL), 0);
    }
    for (int i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(err);
    free(before);
    free(c);
    snprintf(cmd, sizeof cmd, "umount '%s'", mnt);
    CU_ASSERT_EQUAL(system(cmd), 0);
    setenv("APIKEY_PRELOAD", "build/tests/libfault.so", 1);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"create under every fault", test_create},
        {"revoke under every fault", test_revoke},
        {"rotate under every fault", test_rotate},
        {"create --batch under every fault", test_batch},
        {"verify under every fault never grants", test_verify_never_grants},
        {"a full disk fails cleanly and loses nothing", test_full_disk},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"fault injection", setup, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
