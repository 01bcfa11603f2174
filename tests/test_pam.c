/* SPDX-License-Identifier: BSD-2-Clause */
/* pam_apikey through the real libpam: pam_start_confdir() with a private
 * service folder, so no root, no preload and no /etc/pam.d. Every return
 * code of pam_apikey(8) is asserted exactly, as Linux-PAM's
 * tst-<module>-retval tests do. */
#include <fcntl.h>
#include <security/pam_appl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "apikey.h"
#include "testutil.h"

#define SET_ITEMS "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so"

static char confdir[300], module[4200];
static char *config, *other_config, *store_path;
static char *good, *geo, *bobs, *expiring;

/* What the client answers at the password prompt. */
enum mode { ANSWER, CONV_FAILS, NO_RESPONSES, NULL_ANSWER };
typedef struct client {
    const char *key;
    enum mode mode;
    int prompts;
} client;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    client *c = data;
    c->prompts += n;
    if (c->mode == CONV_FAILS)
        return PAM_CONV_ERR;
    if (c->mode == NO_RESPONSES) {
        *resp = NULL;
        return PAM_SUCCESS;
    }
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (c->mode == ANSWER && msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
            r[i].resp = strdup(c->key);
    *resp = r;
    return PAM_SUCCESS;
}

/* The service file confdir/name: the lines of before, then pam_apikey for
 * auth and account with config=cfg (none when cfg is NULL) and args. */
static void stack(const char *name, const char *before, const char *cfg, const char *args)
{
    char cfgarg[400] = "", *path, *text;
    if (cfg)
        snprintf(cfgarg, sizeof cfgarg, "config=%s", cfg);
    if (asprintf(&path, "pam.d/%s", name) < 0 ||
        asprintf(&text, "%sauth required %s %s %s\naccount required %s %s %s\n", before ? before : "",
                 module, cfgarg, args, module, cfgarg, args) < 0)
        abort();
    free(tu_write(path, text, 0644));
    free(path);
    free(text);
}

static pam_handle_t *begin(const char *service, const char *user, client *c)
{
    struct pam_conv pc = {conv, c};
    pam_handle_t *pamh = NULL;
    CU_ASSERT_EQUAL_FATAL(pam_start_confdir(service, user, &pc, confdir, &pamh), PAM_SUCCESS);
    return pamh;
}

/* One login as a server runs it: authenticate, then account management
 * only when authentication succeeded (else acct is -1). */
typedef struct outcome {
    int auth, acct, prompts;
} outcome;

/* rhost: PAM_RHOST as the server sets it, or NULL to leave it unset. */
static outcome login_full(const char *service, const char *user, const char *key, enum mode mode,
                          const char *rhost)
{
    client c = {key, mode, 0};
    pam_handle_t *pamh = begin(service, user, &c);
    if (rhost)
        CU_ASSERT_EQUAL(pam_set_item(pamh, PAM_RHOST, rhost), PAM_SUCCESS);
    outcome o = {pam_authenticate(pamh, 0), -1, 0};
    if (o.auth == PAM_SUCCESS)
        o.acct = pam_acct_mgmt(pamh, 0);
    pam_end(pamh, o.acct == -1 ? o.auth : o.acct);
    o.prompts = c.prompts;
    return o;
}

static outcome login_as(const char *service, const char *user, const char *key, enum mode mode)
{
    return login_full(service, user, key, mode, NULL);
}

static outcome login(const char *service, const char *key)
{
    return login_as(service, "alice", key, ANSWER);
}

/* A new key (NULL when apikey failed: setup runs outside any test). */
static char *create(const char *cfg, const char *account, const char *scopes)
{
    char *out = NULL;
    if (tu_apikey(cfg, NULL, &out, NULL, "create", account, "--name", "pam", "--scopes", scopes,
                  NULL) != 0) {
        free(out);
        return NULL;
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static void revoke_key(const char *key)
{
    char id[16];
    snprintf(id, sizeof id, "%.11s", key); /* ak_ and the 8-character id */
    CU_ASSERT_EQUAL(tu_apikey(config, NULL, NULL, NULL, "revoke", id, NULL), 0);
}

static int setup(void)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return 1;
    snprintf(module, sizeof module, "%s/build/pam_apikey.so", cwd);
    snprintf(confdir, sizeof confdir, "%s/pam.d", tu_tmpdir());
    if (mkdir(confdir, 0755) != 0)
        return 1;
    free(tu_write("pam.d/other", "auth required pam_deny.so\naccount required pam_deny.so\n", 0644));
    if (asprintf(&store_path, "%s/pam.json", tu_tmpdir()) < 0)
        abort();
    char uri[400];
    snprintf(uri, sizeof uri, "json:%s", store_path);
    config = tu_config(uri, NULL,
                       "pamtest = proxies:read\nweb = proxies:read\nbilling = balance:read\n"
                       "first = proxies:read\ndebug = proxies:read\n");
    snprintf(uri, sizeof uri, "json:%s/other.json", tu_tmpdir());
    other_config = tu_config(uri, NULL, "pamtest = proxies:read\n");
    good = create(config, "alice", "proxies:read");
    geo = create(config, "alice", "geo:read");
    bobs = create(config, "bob", "proxies:read");
    /* Seeds other.json: a store that exists but does not hold our keys. */
    char *carol = create(other_config, "carol", "proxies:read");
    /* Rotated with a one-second grace: expired by the time it is tried. */
    expiring = create(config, "alice", "proxies:read");
    if (!good || !geo || !bobs || !carol || !expiring)
        return 1;
    char id[16];
    snprintf(id, sizeof id, "%.11s", expiring);
    if (tu_apikey(config, NULL, NULL, NULL, "rotate", id, "--grace", "1s", NULL) != 0)
        return 1;
    free(carol);
    stack("pamtest", NULL, config, "");
    return 0;
}

static void test_good_key(void)
{
    outcome o = login("pamtest", good);
    CU_ASSERT_EQUAL(o.auth, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.prompts, 1);
}

static void test_refused_keys(void)
{
    CU_ASSERT_EQUAL(login("pamtest", "").auth, PAM_AUTH_ERR);
    char *huge = malloc(100 * 1024 + 1);
    memset(huge, 'A', 100 * 1024);
    huge[100 * 1024] = '\0';
    memcpy(huge, good, strlen(good)); /* a real key, then 100 kB more */
    CU_ASSERT_EQUAL(login("pamtest", huge).auth, PAM_AUTH_ERR);
    free(huge);
    CU_ASSERT_EQUAL(login("pamtest", bobs).auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(login_as("pamtest", "bob", good, ANSWER).auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(login("pamtest", geo).auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(login("pamtest", "ak_nonsense").auth, PAM_AUTH_ERR);
    char *typo = strdup(good);
    typo[20] = typo[20] == 'x' ? 'y' : 'x';
    CU_ASSERT_EQUAL(login("pamtest", typo).auth, PAM_AUTH_ERR);
    typo[strlen(typo) - 1] = '\n'; /* a trailing newline is not the key */
    CU_ASSERT_EQUAL(login("pamtest", typo).auth, PAM_AUTH_ERR);
    free(typo);
    sleep(2); /* past the rotated key's grace */
    CU_ASSERT_EQUAL(login("pamtest", expiring).auth, PAM_AUTH_ERR);
    /* Its own key, but no such service in [services]. */
    stack("unmapped", NULL, config, "");
    CU_ASSERT_EQUAL(login("unmapped", good).auth, PAM_AUTH_ERR);
}

static void test_revoked(void)
{
    char *k = create(config, "alice", "proxies:read");
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_EQUAL(login("pamtest", k).acct, PAM_SUCCESS);
    revoke_key(k);
    CU_ASSERT_EQUAL(login("pamtest", k).auth, PAM_AUTH_ERR);
    free(k);
}

/* Between the two phases, as when an operator revokes during a login. */
static void test_revoked_between_phases(void)
{
    char *k = create(config, "alice", "proxies:read");
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    client c = {k, ANSWER, 0};
    pam_handle_t *pamh = begin("pamtest", "alice", &c);
    CU_ASSERT_EQUAL(pam_authenticate(pamh, 0), PAM_SUCCESS);
    revoke_key(k);
    CU_ASSERT_EQUAL(pam_acct_mgmt(pamh, 0), PAM_AUTH_ERR);
    pam_end(pamh, PAM_AUTH_ERR);
    free(k);
}

/* No key authenticated (say, sshd took a public key): the account phase
 * stays out of the decision. libpam turns an all-ignore stack into a
 * failure, so a second stack tells PAM_IGNORE apart from PAM_SUCCESS. */
static void test_account_without_auth(void)
{
    char text[4500];
    snprintf(text, sizeof text, "account required %s config=%s\naccount required pam_permit.so\n",
             module, config);
    free(tu_write("pam.d/acct-permit", text, 0644));
    snprintf(text, sizeof text, "account sufficient %s config=%s\naccount required pam_deny.so\n",
             module, config);
    free(tu_write("pam.d/acct-deny", text, 0644));
    client c = {good, ANSWER, 0};
    pam_handle_t *pamh = begin("acct-permit", "alice", &c);
    CU_ASSERT_EQUAL(pam_acct_mgmt(pamh, 0), PAM_SUCCESS); /* not a failure... */
    pam_end(pamh, PAM_SUCCESS);
    pamh = begin("acct-deny", "alice", &c);
    CU_ASSERT_EQUAL(pam_acct_mgmt(pamh, 0), PAM_AUTH_ERR); /* ...nor a success: pam_deny's */
    pam_end(pamh, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(c.prompts, 0);
}

static void test_option_config(void)
{
    stack("cfg-other", NULL, other_config, "");
    /* pamtest is mapped there too, but the key lives in the first store. */
    outcome o = login("cfg-other", good);
    CU_ASSERT_EQUAL(o.auth, PAM_AUTH_ERR);
    stack("cfg-missing", NULL, "/nonexistent/apikey.conf", "");
    CU_ASSERT_EQUAL(login("cfg-missing", good).auth, PAM_SERVICE_ERR);
}

static void test_option_service(void)
{
    /* "mapped-web" is not in [services]; service=web is. */
    stack("mapped-web", NULL, config, "service=web");
    outcome o = login("mapped-web", good);
    CU_ASSERT_EQUAL(o.auth, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.acct, PAM_SUCCESS);
    /* service=billing needs balance:read, which the key lacks. */
    stack("pamtest", NULL, config, "service=billing");
    CU_ASSERT_EQUAL(login("pamtest", good).auth, PAM_AUTH_ERR);
    stack("pamtest", NULL, config, "");
}

static void test_bad_arguments(void)
{
    const char *bad[] = {"bogus", "config=relative.conf", "config=", "service=", "debug=1",
                         "use_first_pass=yes"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stack("badarg", NULL, config, bad[i]);
        outcome o = login("badarg", good);
        CU_ASSERT_EQUAL(o.auth, PAM_SERVICE_ERR);
        if (o.auth != PAM_SERVICE_ERR)
            fprintf(stderr, "argument '%s': %s\n", bad[i], pam_strerror(NULL, o.auth));
        /* The account phase parses its arguments before anything else. */
        client c = {good, ANSWER, 0};
        pam_handle_t *pamh = begin("badarg", "alice", &c);
        CU_ASSERT_EQUAL(pam_acct_mgmt(pamh, 0), PAM_SERVICE_ERR);
        pam_end(pamh, PAM_SERVICE_ERR);
    }
}

static void test_bad_config_file(void)
{
    char *garbage = tu_write("garbage.conf", "this is not a configuration\n", 0644);
    stack("badconf", NULL, garbage, "");
    CU_ASSERT_EQUAL(login("badconf", good).auth, PAM_SERVICE_ERR);
    /* World-writable: anyone could point it at their own store. */
    char uri[400];
    snprintf(uri, sizeof uri, "json:%s", store_path);
    char *loose = tu_config(uri, NULL, "pamtest = proxies:read\n");
    chmod(loose, 0666);
    stack("badconf", NULL, loose, "");
    CU_ASSERT_EQUAL(login("badconf", good).auth, PAM_SERVICE_ERR);
    char *unknown_scope = tu_config(uri, NULL, "pamtest = no:such:scope\n");
    stack("badconf", NULL, unknown_scope, "");
    CU_ASSERT_NOT_EQUAL(login("badconf", good).auth, PAM_SUCCESS);
    free(garbage);
    free(loose);
    free(unknown_scope);
}

static void unavailable(const char *uri)
{
    char *cfg = tu_config(uri, NULL, "pamtest = proxies:read\n");
    stack("nostore", NULL, cfg, "service=pamtest");
    outcome o = login("nostore", good);
    CU_ASSERT_EQUAL(o.auth, PAM_AUTHINFO_UNAVAIL);
    if (o.auth != PAM_AUTHINFO_UNAVAIL)
        fprintf(stderr, "store %s: %s\n", uri, pam_strerror(NULL, o.auth));
    free(cfg);
}

static void test_store_unavailable(void)
{
    char uri[400];
    unavailable("json:/nonexistent/dir/keys.json");
    snprintf(uri, sizeof uri, "json:%s/missing.json", tu_tmpdir());
    unavailable(uri);
    char *corrupt = tu_write("corrupt.json", "{\"keys\": [ {\"id\": tru", 0644);
    snprintf(uri, sizeof uri, "json:%s", corrupt);
    unavailable(uri);
    /* A folder where the file should be: unreadable even for root. */
    snprintf(uri, sizeof uri, "json:%s", tu_tmpdir());
    unavailable(uri);
    if (geteuid() != 0) {
        char *locked = tu_write("locked.json", "", 0000);
        snprintf(uri, sizeof uri, "json:%s", locked);
        unavailable(uri);
        free(locked);
    }
    free(corrupt);
}

/* The store's own line reaches the log through pam_syslog (read back
 * through syslog's LOG_PERROR copy), once, beside the module's verdict. */
static void test_store_line_logged(void)
{
    char *corrupt = tu_write("corrupt2.json", "{\"keys\": [ {\"id\": tru", 0644), uri[400];
    snprintf(uri, sizeof uri, "json:%s", corrupt);
    char *cfg = tu_config(uri, NULL, "pamtest = proxies:read\n");
    stack("nostore", NULL, cfg, "service=pamtest");
    tu_stderr_begin();
    openlog("test_pam", LOG_PERROR, LOG_AUTHPRIV);
    outcome o = login("nostore", good);
    openlog("test_pam", 0, LOG_AUTHPRIV); /* closelog() alone keeps LOG_PERROR */
    closelog();
    char *log = tu_stderr_end();
    CU_ASSERT_EQUAL(o.auth, PAM_AUTHINFO_UNAVAIL);
    char expect[600];
    snprintf(expect, sizeof expect,
             "auth: unavailable account=alice service=pamtest rhost=- reason=store unavailable: store %s: not valid JSON",
             corrupt);
    CU_ASSERT_EQUAL(tu_count(log, expect), 1);
    CU_ASSERT_EQUAL(tu_count(log, "not valid JSON"), 1);
    if (tu_count(log, "not valid JSON") != 1)
        fprintf(stderr, "log: %s\n", log);
    free(log);
    free(cfg);
    free(corrupt);
}

static void test_conversation_failures(void)
{
    const enum mode modes[] = {CONV_FAILS, NO_RESPONSES, NULL_ANSWER};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        outcome o = login_as("pamtest", "alice", good, modes[i]);
        CU_ASSERT_EQUAL(o.auth, PAM_CONV_ERR);
        if (o.auth != PAM_CONV_ERR)
            fprintf(stderr, "conversation mode %zu: %s\n", i, pam_strerror(NULL, o.auth));
        CU_ASSERT_EQUAL(o.prompts, 1);
    }
}

/* pam_set_items (from pam_wrapper) sets PAM_AUTHTOK from the environment,
 * as an earlier password module would. */
static void test_first_pass(void)
{
    const char *before = "auth required " SET_ITEMS "\n";
    stack("first", before, config, "use_first_pass");
    setenv("PAM_AUTHTOK", good, 1);
    outcome o = login("first", "not the key");
    CU_ASSERT_EQUAL(o.auth, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.prompts, 0);
    setenv("PAM_AUTHTOK", geo, 1);
    o = login("first", good);
    CU_ASSERT_EQUAL(o.auth, PAM_AUTH_ERR); /* the earlier token, never a prompt */
    CU_ASSERT_EQUAL(o.prompts, 0);
    unsetenv("PAM_AUTHTOK");
    o = login("first", good);
    CU_ASSERT_EQUAL(o.auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(o.prompts, 0);

    stack("first", before, config, "try_first_pass");
    setenv("PAM_AUTHTOK", good, 1);
    o = login("first", "not the key");
    CU_ASSERT_EQUAL(o.auth, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.prompts, 0);
    unsetenv("PAM_AUTHTOK");
    o = login("first", good);
    CU_ASSERT_EQUAL(o.auth, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(o.prompts, 1);
}

/* Everything the module logs, read back through syslog's LOG_PERROR copy
 * on standard error: decisions with the key id, never the key. */
static void test_log_never_holds_key(void)
{
    char *logpath;
    if (asprintf(&logpath, "%s/syslog.txt", tu_tmpdir()) < 0)
        abort();
    fflush(stderr);
    int saved = dup(2), fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    openlog("test_pam", LOG_PERROR, LOG_AUTHPRIV);
    stack("debug", NULL, config, "debug");
    outcome ok = login("debug", good), bad = login("debug", geo), wrong = login_as("debug", "bob", good, ANSWER);
    stack("debug", "auth required " SET_ITEMS "\n", config, "debug try_first_pass");
    setenv("PAM_AUTHTOK", bobs, 1);
    outcome first = login("debug", good);
    unsetenv("PAM_AUTHTOK");
    openlog("test_pam", 0, LOG_AUTHPRIV); /* closelog() alone keeps LOG_PERROR */
    closelog();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CU_ASSERT_EQUAL(ok.auth, PAM_SUCCESS);
    CU_ASSERT_EQUAL(ok.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(bad.auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(wrong.auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(first.auth, PAM_AUTH_ERR);
    char *log = tu_read(logpath, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    char expect[200];
    snprintf(expect, sizeof expect, "auth: allowed account=alice key=%.11s service=debug", good);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, expect));
    snprintf(expect, sizeof expect, "account: allowed account=alice key=%.11s", good);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, expect));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "reason=missing scope"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "reason=wrong account"));
    /* The secret part of each key (after "ak_" and the id) must not appear. */
    const char *keys[] = {good, geo, bobs};
    for (int i = 0; i < 3; i++)
        CU_ASSERT_PTR_NULL(strstr(log, keys[i] + 11));
    free(log);
    free(logpath);
    stack("pamtest", NULL, config, "");
}

/* ---- The client address: PAM_RHOST against the key's allowlist ---- */

/* A key of alice for proxies:read usable only from allow_from, made through
 * the library (the store must keep the list). */
static char *create_pinned(const char *allow_from)
{
    char err[APIKEY_ERROR_MAX] = "";
    apikey_ctx *ctx = apikey_open(config, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    apikey_create_request req = {.size = sizeof req, .account = "alice", .name = "pinned",
                                 .scopes = "proxies:read", .allow_from = allow_from};
    apikey_issued out = {.size = sizeof out};
    apikey_status st = apikey_create(ctx, &req, &out, err, sizeof err);
    apikey_close(ctx);
    if (st != APIKEY_OK)
        fprintf(stderr, "create --allow-from %s: %s\n", allow_from, err);
    CU_ASSERT_EQUAL_FATAL(st, APIKEY_OK);
    char *key = strdup(out.key);
    apikey_wipe(out.key, sizeof out.key);
    return key;
}

static outcome login_from(const char *key, const char *rhost)
{
    return login_full("pamtest", "alice", key, ANSWER, rhost);
}

/* Where the check refuses: PAM_AUTH_ERR, the account phase never reached. */
#define REFUSED_FROM(key, rhost)                                                                   \
    do {                                                                                           \
        outcome o_ = login_from(key, rhost);                                                       \
        CU_ASSERT_EQUAL(o_.auth, PAM_AUTH_ERR);                                                    \
        if (o_.auth != PAM_AUTH_ERR)                                                               \
            fprintf(stderr, "from %s: %s\n", (rhost) ? (rhost) : "(unset)", pam_strerror(NULL, o_.auth)); \
    } while (0)
#define ALLOWED_FROM(key, rhost)                                                                   \
    do {                                                                                           \
        outcome o_ = login_from(key, rhost);                                                       \
        CU_ASSERT_EQUAL(o_.auth, PAM_SUCCESS);                                                     \
        CU_ASSERT_EQUAL(o_.acct, PAM_SUCCESS);                                                     \
        if (o_.auth != PAM_SUCCESS || o_.acct != PAM_SUCCESS)                                      \
            fprintf(stderr, "from %s: %s / %d\n", (rhost) ? (rhost) : "(unset)",                 \
                    pam_strerror(NULL, o_.auth), o_.acct);                                         \
    } while (0)

/* Longer than any name (libpam itself fails a 10,000-byte one: its audit
 * record does not take it). */
static char *long_rhost(void)
{
    char *s = malloc(4001);
    memset(s, 'h', 4000);
    s[4000] = '\0';
    return s;
}

static void test_rhost_pinned_ipv4(void)
{
    char *k = create_pinned("127.0.0.1/32"), *lng = long_rhost();
    ALLOWED_FROM(k, "127.0.0.1");
    /* Deliberate: a dual-stack server reports an IPv4 client mapped. */
    ALLOWED_FROM(k, "::ffff:127.0.0.1");
    REFUSED_FROM(k, "127.0.0.2");
    REFUSED_FROM(k, "::1");
    /* sshd with UseDNS yes, or login -h: a name is not an address. */
    REFUSED_FROM(k, "localhost");
    REFUSED_FROM(k, "");
    REFUSED_FROM(k, NULL); /* su, sudo: no PAM_RHOST at all */
    REFUSED_FROM(k, "127.0.0.1 ");
    REFUSED_FROM(k, "127.0.0.1/32");
    REFUSED_FROM(k, lng);
    free(lng);
    free(k);
}

static void test_rhost_pinned_ipv6(void)
{
    char *k = create_pinned("::1/128");
    ALLOWED_FROM(k, "::1");
    ALLOWED_FROM(k, "0:0:0:0:0:0:0:1");
    REFUSED_FROM(k, "::2");
    REFUSED_FROM(k, "127.0.0.1");
    REFUSED_FROM(k, "::1%lo"); /* a zone id is not part of an address */
    REFUSED_FROM(k, NULL);
    free(k);
}

/* A key without a list: exactly as before, whatever PAM_RHOST holds. */
static void test_rhost_ignored_without_list(void)
{
    char *lng = long_rhost();
    const char *from[] = {"127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "localhost", "",
                          NULL, "bad\nhost", lng};
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++)
        ALLOWED_FROM(good, from[i]);
    REFUSED_FROM(geo, "127.0.0.1"); /* and its refusals as before */
    free(lng);
}

/* The account phase checks the address again: a server that changes
 * PAM_RHOST between the phases gets no success from the earlier one. */
static void test_rhost_rechecked_in_account(void)
{
    char *k = create_pinned("127.0.0.1/32");
    client c = {k, ANSWER, 0};
    pam_handle_t *pamh = begin("pamtest", "alice", &c);
    CU_ASSERT_EQUAL(pam_set_item(pamh, PAM_RHOST, "127.0.0.1"), PAM_SUCCESS);
    CU_ASSERT_EQUAL(pam_authenticate(pamh, 0), PAM_SUCCESS);
    CU_ASSERT_EQUAL(pam_set_item(pamh, PAM_RHOST, "127.0.0.2"), PAM_SUCCESS);
    CU_ASSERT_EQUAL(pam_acct_mgmt(pamh, 0), PAM_AUTH_ERR);
    pam_end(pamh, PAM_AUTH_ERR);
    free(k);
}

/* rhost= on every decision line, as one line: control bytes and spaces of
 * a resolved name never start a line or a field of their own. */
static void test_rhost_logged(void)
{
    char *k = create_pinned("127.0.0.1/32");
    tu_stderr_begin();
    openlog("test_pam", LOG_PERROR, LOG_AUTHPRIV);
    outcome in = login_from(k, "127.0.0.1"), out = login_from(k, "127.0.0.2"),
            odd = login_from(good, "evil\nauth: allowed reason=x\r\x7f"), none = login_from(k, NULL);
    openlog("test_pam", 0, LOG_AUTHPRIV);
    closelog();
    char *log = tu_stderr_end();
    CU_ASSERT_EQUAL(in.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(out.auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(odd.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(none.auth, PAM_AUTH_ERR);
    char expect[300];
    snprintf(expect, sizeof expect, "auth: allowed account=alice key=%.11s service=pamtest rhost=127.0.0.1\n", k);
    CU_ASSERT_EQUAL(tu_count(log, expect), 1);
    snprintf(expect, sizeof expect, "account: allowed account=alice key=%.11s service=pamtest rhost=127.0.0.1\n", k);
    CU_ASSERT_EQUAL(tu_count(log, expect), 1);
    snprintf(expect, sizeof expect,
             "auth: refused account=alice key=%.11s service=pamtest rhost=127.0.0.2 reason=address not allowed\n", k);
    CU_ASSERT_EQUAL(tu_count(log, expect), 1);
    snprintf(expect, sizeof expect,
             "auth: refused account=alice key=%.11s service=pamtest rhost=- reason=address not allowed\n", k);
    CU_ASSERT_EQUAL(tu_count(log, expect), 1);
    CU_ASSERT_EQUAL(tu_count(log, "rhost=\"evil\\x0aauth: allowed reason=x\\x0d\\x7f\"\n"), 2);
    /* Six decisions (two phases of two logins, two refusals), six lines. */
    CU_ASSERT_EQUAL(tu_count_lines(log), 6);
    if (tu_count_lines(log) != 6)
        fprintf(stderr, "log: %s\n", log);
    free(log);
    free(k);
}

/* A user name is the client's to choose (sshd passes what came over the
 * network), and so is a host name's resolver: whatever they hold, each is
 * one field of the line, never a verdict or a field of its own. */
static void test_forged_fields_quoted(void)
{
    char forged[160];
    snprintf(forged, sizeof forged, "bob allowed account=alice key=%.11s rhost=192.0.2.7", good);
    tu_stderr_begin();
    openlog("test_pam", LOG_PERROR, LOG_AUTHPRIV);
    outcome o = login_as("pamtest", forged, good, ANSWER);
    outcome q = login_full("pamtest", "alice", good, ANSWER, "h\"ost\\ rhost=10.0.0.1");
    outcome u = login_as("pamtest", "\xe2\x80\xae" "ecila", good, ANSWER); /* U+202E */
    openlog("test_pam", 0, LOG_AUTHPRIV);
    closelog();
    char *log = tu_stderr_end();
    CU_ASSERT_EQUAL(o.auth, PAM_AUTH_ERR);
    CU_ASSERT_EQUAL(q.acct, PAM_SUCCESS);
    CU_ASSERT_EQUAL(u.auth, PAM_AUTH_ERR);
    char expect[400];
    snprintf(expect, sizeof expect,
             "auth: refused account=\"bob allowed account=alice key=%.11s rhost=192.0.2.7\" key=%.11s "
             "service=pamtest rhost=- reason=wrong account\n", good, good);
    CU_ASSERT_EQUAL(tu_count(log, expect), 1);
    snprintf(expect, sizeof expect,
             "auth: allowed account=alice key=%.11s service=pamtest rhost=\"h\\\"ost\\\\ rhost=10.0.0.1\"\n", good);
    CU_ASSERT_EQUAL(tu_count(log, expect), 1);
    CU_ASSERT_EQUAL(tu_count(log, "account=\"\\xe2\\x80\\xaeecila\""), 1);
    CU_ASSERT_EQUAL(tu_count(log, "\xe2\x80\xae"), 0);
    CU_ASSERT_EQUAL(tu_count_lines(log), 4); /* two phases of q, one each of o and u */
    if (tu_count(log, expect) != 1 || tu_count_lines(log) != 4)
        fprintf(stderr, "log: %s\n", log);
    free(log);
}

/* The module is dlopened and dlclosed by every pam_start/pam_end, as Squid's
 * basic_pam_auth and Dante do per login: no crash, no growth. */
static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    if (f)
        fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_many_transactions(void)
{
    /* ASan's quarantine grows by design; LeakSanitizer watches leaks there. */
    int sanitized = getenv("APIKEY_TEST_SANITIZE") != NULL;
    int n = sanitized ? 1000 : 10000, refused = 0;
    for (int i = 0; i < 200; i++)
        refused += login("pamtest", good).acct != PAM_SUCCESS;
    long before = rss_kb();
    for (int i = 0; i < n; i++)
        refused += login("pamtest", good).acct != PAM_SUCCESS;
    long after = rss_kb();
    CU_ASSERT_EQUAL(refused, 0);
    CU_ASSERT(before > 0);
    if (!sanitized)
        CU_ASSERT(after - before < 256); /* a 64-byte leak per login shows */
    printf("\n  %d transactions: RSS %ld kB -> %ld kB ", n, before, after);
}

int main(void)
{
    setenv("APIKEY_BIN", "build/apikey", 0);
    unsetenv("PAM_AUTHTOK");
    CU_TestInfo tests[] = {
        {"a good key: PAM_SUCCESS in both phases", test_good_key},
        {"empty, huge, foreign, under-scoped, malformed, expired keys; unmapped service",
         test_refused_keys},
        {"a revoked key is refused", test_revoked},
        {"revoked between authenticate and acct_mgmt: caught", test_revoked_between_phases},
        {"acct_mgmt without a key authentication: PAM_IGNORE", test_account_without_auth},
        {"config= is the file read", test_option_config},
        {"service= maps to another service", test_option_service},
        {"unknown or malformed arguments: PAM_SERVICE_ERR", test_bad_arguments},
        {"a bad configuration file: PAM_SERVICE_ERR", test_bad_config_file},
        {"a missing, corrupt or unreadable store: PAM_AUTHINFO_UNAVAIL", test_store_unavailable},
        {"a store's line reaches the log once, through pam_syslog", test_store_line_logged},
        {"a failing conversation never succeeds", test_conversation_failures},
        {"use_first_pass and try_first_pass", test_first_pass},
        {"debug logs the key id, never the key", test_log_never_holds_key},
        {"PAM_RHOST against 127.0.0.1/32: mapped, other, name, empty, unset", test_rhost_pinned_ipv4},
        {"PAM_RHOST against ::1/128", test_rhost_pinned_ipv6},
        {"a key without a list: PAM_RHOST changes nothing", test_rhost_ignored_without_list},
        {"the account phase checks PAM_RHOST again", test_rhost_rechecked_in_account},
        {"rhost= on each decision line, one line, neutralised", test_rhost_logged},
        {"a user or host name never forges a field of the line", test_forged_fields_quoted},
        {"10,000 transactions in one process: no growth", test_many_transactions},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"pam_apikey through libpam", setup, NULL, NULL, NULL, tests},
                             CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
