/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A table of hostile inputs, each refused with a clear message and never
 * granted, never a crash, never a hang (every command runs under an alarm):
 * keys, account and key names, configurations, JSON stores and Squid helper
 * lines. PAM conversations that fail are in test_pam.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keycodec.h"
#include "testutil.h"

static char *cfg, *good, *revoked, *store_path;

/* ---- keys, through apikey verify ---- */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

typedef struct key_case {
    const char *what;
    char *input; /* what arrives on standard input */
    size_t len;
} key_case;

static void verify_refused(const key_case *k, int *bad)
{
    /* Write the exact bytes (NULs included) to a file for stdin. */
    char path[600];
    snprintf(path, sizeof path, "%s/key-input", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    fwrite(k->input, 1, k->len, f);
    fclose(f);
    pid_t pid;
    int err[2];
    if (pipe(err))
        abort();
    if ((pid = fork()) == 0) {
        alarm(20);
        int in = open(path, O_RDONLY);
        dup2(in, 0);
        dup2(err[1], 2);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execl("build/apikey", "apikey", "--config", cfg, "verify", "--service", "sshd", (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    char msg[4096] = "";
    ssize_t n = read(err[0], msg, sizeof msg - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(err[0]);
    int status;
    waitpid(pid, &status, 0);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc != 1 || tu_count_lines(msg) != 1 || !strstr(msg, "refused")) {
        fprintf(stderr, "key case '%s': exit %d, said: %s\n", k->what, rc, msg);
        (*bad)++;
    }
}

static void test_keys(void)
{
    char valid_unknown[APIKEY_KEY_MAX];
    keycodec_make("ak", "zzzzzzzz", valid_unknown);
    char wrong_secret[APIKEY_KEY_MAX];
    /* The right id, another secret, a correct check. */
    char id[APIKEY_ID_LEN + 1];
    memcpy(id, good + 3, APIKEY_ID_LEN);
    id[APIKEY_ID_LEN] = '\0';
    keycodec_make("ak", id, wrong_secret);
    char other_prefix[APIKEY_KEY_MAX];
    keycodec_make("px", id, other_prefix);
    char *mb = repeat('A', 1 << 20);
    char *long_valid = repeat('a', 4096 + 10);
    char nul_inside[128], trailing[128], leading[128], non_ascii[128], crlf2[128], upper[128],
        tab[128], twolines[256];
    size_t gl = strlen(good);
    memcpy(nul_inside, good, gl);
    nul_inside[20] = '\0';
    snprintf(trailing, sizeof trailing, "%sX\n", good);
    snprintf(leading, sizeof leading, " %s\n", good);
    snprintf(non_ascii, sizeof non_ascii, "%.*s\xc3\xa9%s\n", 20, good, good + 22);
    snprintf(crlf2, sizeof crlf2, "%s\r\n\r\n", good);
    snprintf(upper, sizeof upper, "AK%s\n", good + 2);
    snprintf(tab, sizeof tab, "%s\t\n", good);
    snprintf(twolines, sizeof twolines, "%s\n%s\n", good, good);
    char revoked_line[128];
    snprintf(revoked_line, sizeof revoked_line, "%s\n", revoked);
    key_case cases[] = {
        {"empty", "", 0},
        {"a newline only", "\n", 1},
        {"1 MB", mb, 1 << 20},
        {"4 kB of key characters", long_valid, strlen(long_valid)},
        {"NUL inside", nul_inside, gl},
        {"non-ASCII inside", non_ascii, strlen(non_ascii)},
        {"another deployment's prefix", other_prefix, strlen(other_prefix)},
        {"a valid check with an unknown id", valid_unknown, strlen(valid_unknown)},
        {"the right id with a wrong secret", wrong_secret, strlen(wrong_secret)},
        {"trailing bytes", trailing, strlen(trailing)},
        {"leading blank", leading, strlen(leading)},
        {"CRLF twice", crlf2, strlen(crlf2)},
        {"upper-case prefix", upper, strlen(upper)},
        {"a trailing tab", tab, strlen(tab)},
        {"two keys on two lines", twolines, strlen(twolines)},
        {"the prefix alone", "ak_", 3},
        {"a revoked key", revoked_line, strlen(revoked_line)},
        {"SQL in the key", "ak_' OR '1'='1' --xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 49},
        {"a format string", "ak_%s%s%s%n%n%n%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s", 49},
        {"binary", "\xff\xfe\x00\x01\x02", 5},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        verify_refused(&cases[i], &bad);
    printf("(%zu key cases) ", sizeof cases / sizeof cases[0]);
    CU_ASSERT_EQUAL(bad, 0);
    free(mb);
    free(long_valid);
}

/* ---- account and key names, through apikey create ---- */

static void test_names(void)
{
    char *big = repeat('n', 10 * 1024);
    struct { const char *what, *account, *name; int refused; } cases[] = {
        {"newline in the account", "ali\nce", "n", 1},
        {"tab in the account", "ali\tce", "n", 1},
        {"10 kB account", big, "n", 1},
        {"newline in the name", "alice", "a\nb", 1},
        {"tab in the name", "alice", "a\tb", 1},
        {"10 kB name", "alice", big, 1},
        {"escape sequence in the name", "alice", "\x1b[31mred", 1},
        {"empty account", "", "n", 1},
        {"empty name", "alice", "", 1},
        /* Accepted, and kept literally: they are only data. */
        {"SQL in the account", "x'; DROP TABLE keys;--", "n", 0},
        {"shell in the name", "alice", "$(reboot); `id` | rm -rf /", 0},
        {"quotes and backslashes", "a\"b\\c", "\"'\\", 0},
        {"percent and underscore", "%_%", "100%", 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = tu_apikey(cfg, NULL, &out, &err, "create", cases[i].account, "--name", cases[i].name,
                           "--scopes", "proxies:read", NULL);
        if (cases[i].refused && (rc != 1 || tu_count_lines(err) != 1 || out[0])) {
            fprintf(stderr, "name case '%s': exit %d, said %s\n", cases[i].what, rc, err);
            bad++;
        }
        if (!cases[i].refused) {
            /* Stored literally: the key works for that account, no other. */
            char line[128];
            snprintf(line, sizeof line, "%.*s\n", (int)strcspn(out, "\n"), out);
            if (rc != 0 ||
                tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", "--account", cases[i].account, NULL) != 0 ||
                tu_apikey(cfg, line, NULL, NULL, "verify", "--service", "sshd", "--account", "somebody-else", NULL) != 1) {
                fprintf(stderr, "name case '%s' was not kept literally (exit %d)\n", cases[i].what, rc);
                bad++;
            }
        }
        free(out);
        free(err);
    }
    printf("(%zu name cases) ", sizeof cases / sizeof cases[0]);
    CU_ASSERT_EQUAL(bad, 0);
    free(big);
}

/* ---- configurations ---- */

static void expect_config_refused(const char *what, const char *path, int *bad)
{
    char *err = NULL;
    int rc = tu_apikey(path, NULL, NULL, &err, "list", NULL);
    char line[256];
    snprintf(line, sizeof line, "%s\n", good);
    int vrc = tu_apikey(path, line, NULL, NULL, "verify", "--service", "sshd", NULL);
    if (rc != 2 || tu_count_lines(err) != 1 || vrc != 2) {
        fprintf(stderr, "config case '%s': list exit %d, verify exit %d, said %s\n", what, rc, vrc, err);
        (*bad)++;
    }
    free(err);
}

static void test_configs(void)
{
    char base[1024];
    snprintf(base, sizeof base, "store = json:%s\n", store_path);
    struct { const char *what, *text; } texts[] = {
        {"unknown key", "frobnicate = yes\n"},
        {"duplicate store", "store = json:/tmp/x.json\n"},
        {"duplicate service", "[services]\nsshd = proxies:read\nsshd = geo:read\n"},
        {"unknown scope in a service", "[services]\nsshd = root:all\n"},
        {"unknown section", "[admin]\nx = y\n"},
        {"garbage line", "this is not ini\n"},
        {"bad prefix", "key_prefix = ../../etc\n"},
        {"zero limit", "max_keys_per_account = 0\n"},
        {"negative limit", "max_keys_per_account = -5\n"},
        {"binary", "\x01\x02\x03\xff\n"},
        {"relative pepper", "pepper_file = pepper\n"},
        {"missing pepper", "pepper_file = /nonexistent/pepper\n"},
        {"unknown store scheme", "X"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char text[4096], name[64];
        if (strcmp(texts[i].text, "X") == 0)
            snprintf(text, sizeof text, "store = ldap://evil\n[services]\nsshd = proxies:read\n");
        else if (strncmp(texts[i].text, "[", 1) == 0)
            snprintf(text, sizeof text, "%s%s", base, texts[i].text);
        else
            snprintf(text, sizeof text, "%s%s[services]\nsshd = proxies:read\n", base, texts[i].text);
        snprintf(name, sizeof name, "hostile%zu.conf", i);
        char *p = tu_write(name, text, 0600);
        expect_config_refused(texts[i].what, p, &bad);
        free(p);
    }
    char nostore[] = "[services]\nsshd = proxies:read\n";
    char *p = tu_write("nostore.conf", nostore, 0600);
    expect_config_refused("missing store", p, &bad);
    free(p);
    char text[2048];
    snprintf(text, sizeof text, "%s[services]\nsshd = proxies:read\n", base);
    p = tu_write("ww.conf", text, 0666);
    expect_config_refused("world-writable", p, &bad);
    free(p);
    char link[600];
    snprintf(link, sizeof link, "%s/link.conf", tu_tmpdir());
    if (symlink(cfg, link) != 0)
        abort();
    expect_config_refused("a symlink", link, &bad);
    expect_config_refused("a directory", tu_tmpdir(), &bad);
    expect_config_refused("missing", "/nonexistent/apikey.conf", &bad);
    printf("(18 configuration cases) ");
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- JSON stores ---- */

static void test_stores(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hostile.json", tu_tmpdir());
    char uri[700];
    snprintf(uri, sizeof uri, "json:%s", path);
    char *c = tu_config(uri, NULL, "sshd = proxies:read\n");
    char *nested = malloc(200001);
    memset(nested, '[', 100000);
    memset(nested + 100000, ']', 100000);
    nested[200000] = '\0';
    const char *head = "{\"format\":\"apikey-store\",\"version\":1,\"keys\":[";
    struct { const char *what; const char *text; } cases[] = {
        {"truncated", "{\"format\":\"apikey-store\",\"version\":1,\"keys\":[{\"id\""},
        {"wrong types", "{\"format\":\"apikey-store\",\"version\":1,\"keys\":[{\"id\":1,\"account\":[]}]}"},
        {"deeply nested", nested},
        {"duplicate keys in an object", "{\"format\":\"apikey-store\",\"format\":\"x\",\"version\":1,\"keys\":[]}"},
        {"not JSON", "hello"},
        {"a NUL byte", "{\"format\":\"apikey-\\u0000store\",\"version\":1,\"keys\":[]}"},
        {"negative version", "{\"format\":\"apikey-store\",\"version\":-1,\"keys\":[]}"},
    };
    int bad = 0;
    char line[128];
    snprintf(line, sizeof line, "%s\n", good);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(cases[i].text, f);
        fclose(f);
        chmod(path, 0600);
        char *err = NULL;
        int rc = tu_apikey(c, line, NULL, &err, "verify", "--service", "sshd", NULL);
        int lrc = tu_apikey(c, NULL, NULL, NULL, "list", NULL);
        if (rc != 2 || lrc != 2) {
            fprintf(stderr, "store case '%s': verify %d, list %d: %s\n", cases[i].what, rc, lrc, err);
            bad++;
        }
        free(err);
    }
    /* Two records with one id, and 100 MB of records. */
    FILE *f = fopen(path, "w");
    const char *rec = "{\"id\":\"AAAAAAAA\",\"account\":\"a\",\"name\":\"n\",\"scopes\":[],\"hash\":"
                      "\"0000000000000000000000000000000000000000000000000000000000000000\","
                      "\"created\":\"2026-01-01T00:00:00Z\",\"expires\":null,\"last_used\":null,\"revoked\":null}";
    fprintf(f, "%s%s,%s]}", head, rec, rec);
    fclose(f);
    if (tu_apikey(c, NULL, NULL, NULL, "list", NULL) != 2) {
        fprintf(stderr, "store case 'duplicate ids' was accepted\n");
        bad++;
    }
    f = fopen(path, "w");
    fputs(head, f);
    for (long n = 0; n < 100L * 1024 * 1024 / 200; n++)
        fprintf(f, "%s{\"id\":\"%08ld\",\"account\":\"a\",\"name\":\"n\",\"scopes\":[\"x\"],\"hash\":\"zz\"}", n ? "," : "", n);
    fputs("]}", f);
    fclose(f);
    char *err = NULL;
    int rc = tu_apikey(c, line, NULL, &err, "verify", "--service", "sshd", NULL);
    if (rc != 2 || tu_count_lines(err) != 1) {
        fprintf(stderr, "store case '100 MB': exit %d: %s\n", rc, err);
        bad++;
    }
    free(err);
    unlink(path);
    printf("(9 store cases) ");
    CU_ASSERT_EQUAL(bad, 0);
    free(nested);
    free(c);
}

/* ---- Squid helper lines ---- */

static void test_helper_lines(void)
{
    char in[600], out[600];
    snprintf(in, sizeof in, "%s/helper-in", tu_tmpdir());
    snprintf(out, sizeof out, "%s/helper-out", tu_tmpdir());
    FILE *f = fopen(in, "w");
    char *longline = repeat('x', 70000);
    const char *lines[] = {"alice", "alice%", "alice %zz", "al%0ice key", "alice ke%00y",
                           " key", "alice ", "alice a b", longline, "%41%42%4", "\xff\xfe \xff"};
    size_t n = sizeof lines / sizeof lines[0];
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "timeout 20 build/basic_apikey_auth --config %s --service sshd < %s > %s", cfg, in, out);
    CU_ASSERT_EQUAL(system(cmd), 0);
    char *answers = tu_read(out, NULL);
    int bh = 0, ok = 0, total = 0;
    for (char *l = answers; *l; l = strchr(l, '\n') + 1) {
        total++;
        bh += strncmp(l, "BH", 2) == 0 || strncmp(l, "ERR", 3) == 0;
        ok += strncmp(l, "OK", 2) == 0;
        if (!strchr(l, '\n'))
            break;
    }
    printf("(%zu helper lines) ", n);
    CU_ASSERT_EQUAL(total, (int)n);
    CU_ASSERT_EQUAL(bh, (int)n);
    CU_ASSERT_EQUAL(ok, 0);
    free(answers);
    free(longline);
}

static int setup(void)
{
    store_path = malloc(600);
    snprintf(store_path, 600, "%s/keys.json", tu_tmpdir());
    char uri[700];
    snprintf(uri, sizeof uri, "json:%s", store_path);
    cfg = tu_config(uri, NULL, "sshd = proxies:read\n");
    char *out = NULL;
    if (tu_apikey(cfg, NULL, &out, NULL, "create", "alice", "--name", "a", "--scopes", "proxies:read", NULL))
        return 1;
    out[strcspn(out, "\n")] = '\0';
    good = out;
    tu_apikey(cfg, NULL, &out, NULL, "create", "bob", "--name", "b", "--scopes", "proxies:read", NULL);
    out[strcspn(out, "\n")] = '\0';
    revoked = out;
    char id[16];
    snprintf(id, sizeof id, "%.11s", revoked);
    return tu_apikey(cfg, NULL, NULL, NULL, "revoke", id, NULL);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    CU_TestInfo tests[] = {
        {"hostile keys are refused", test_keys},
        {"hostile account and key names", test_names},
        {"hostile configurations", test_configs},
        {"hostile JSON stores", test_stores},
        {"hostile Squid helper lines", test_helper_lines},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"hostile inputs", setup, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
