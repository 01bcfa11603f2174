/* SPDX-License-Identifier: BSD-2-Clause */
/* The configuration parser: what it accepts, and every way it refuses. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "testutil.h"

static int parse(const char *text, config_file *cfg, char *err, size_t errlen)
{
    return config_parse(text, strlen(text), "test.conf", cfg, err, errlen);
}

static void test_good(void)
{
    config_file cfg;
    char err[512] = "";
    const char *text = "# comment\n; also\nstore = json:/var/lib/apikey/keys.json   # inline\n"
                       "key_prefix = px\nmax_keys_per_account = 1\ndefault_expiry = 1y\n"
                       "last_used_granularity = 5min\n"
                       "default_rate = 100/min\nrate_table = /run/x/rate\nrate_unavailable = allow\n"
                       "rate_slots = 1024\n"
                       "[services]\nsshd = proxies:read\nbilling = balance:read, stats:read\nopen =\n";
    CU_ASSERT_EQUAL_FATAL(parse(text, &cfg, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.store, "json:/var/lib/apikey/keys.json");
    CU_ASSERT_STRING_EQUAL(cfg.key_prefix, "px");
    CU_ASSERT_EQUAL(cfg.max_keys_per_account, 1);
    CU_ASSERT_STRING_EQUAL(cfg.default_expiry, "1y");
    CU_ASSERT_EQUAL(cfg.last_used_granularity, 300);
    CU_ASSERT(cfg.default_rate.limit == 100 && cfg.default_rate.period == 60 &&
              cfg.default_rate.burst == 100);
    CU_ASSERT_STRING_EQUAL(cfg.rate_table, "/run/x/rate");
    CU_ASSERT_EQUAL(cfg.rate_unavailable_allow, 1);
    CU_ASSERT_EQUAL(cfg.rate_slots, 1024);
    CU_ASSERT_EQUAL(cfg.nscopes, 5); /* the default catalogue */
    CU_ASSERT_STRING_EQUAL(config_find_service(&cfg, "billing")->scopes, "balance:read stats:read");
    CU_ASSERT_STRING_EQUAL(config_find_service(&cfg, "open")->scopes, "");
    CU_ASSERT_PTR_NULL(config_find_service(&cfg, "squid"));
    config_free(&cfg);
    /* A custom catalogue replaces the default one. */
    CU_ASSERT_EQUAL_FATAL(parse("store = json:/x\n[scopes]\nvpn:use = Use the VPN\n[services]\nvpn = vpn:use\n",
                                &cfg, err, sizeof err), 0);
    CU_ASSERT_EQUAL(cfg.nscopes, 1);
    CU_ASSERT_PTR_NULL(config_find_scope(&cfg, "proxies:read"));
    config_free(&cfg);
    /* apikey-authd's section: its lines kept as read, in order, for the
     * daemon to judge (apikey_section); a name it does not know is its
     * refusal, not the library's. */
    CU_ASSERT_EQUAL(parse("store = json:/x\n[authd]\ntrusted_proxies = 10.0.0.0/8 unix # c\n"
                          "admin_users = root\nadmin_user = typo\n[services]\nweb = geo:read\n",
                          &cfg, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(config_find_service(&cfg, "web"));
    CU_ASSERT_EQUAL_FATAL(cfg.nsettings, 3);
    CU_ASSERT_STRING_EQUAL(cfg.settings[0].section, "authd");
    CU_ASSERT_STRING_EQUAL(cfg.settings[0].name, "trusted_proxies");
    CU_ASSERT_STRING_EQUAL(cfg.settings[0].value, "10.0.0.0/8 unix");
    CU_ASSERT_STRING_EQUAL(cfg.settings[2].name, "admin_user");
    config_free(&cfg);
}

static void test_refused(void)
{
    struct { const char *text, *why; } cases[] = {
        {"", "no 'store ='"},
        {"key_prefix = ak\n", "no 'store ='"},
        {"store = json:/a\nstore = json:/b\n", "set twice"},
        {"store = json:/a\nfrobnicate = 1\n", "unknown setting 'frobnicate'"},
        {"store = json:/a\nkey_prefix = AK\n", "key_prefix"},
        {"store = json:/a\nkey_prefix = toolongprefix\n", "key_prefix"},
        {"store = json:/a\nmax_keys_per_account = 0\n", "max_keys_per_account"},
        {"store = json:/a\nmax_keys_per_account = ten\n", "max_keys_per_account"},
        {"store = json:/a\nmax_keys_per_account = 5\nmax_keys_per_account = 6\n", "set twice"},
        {"store = json:/a\ndefault_expiry = soon\n", "default_expiry"},
        {"store = json:/a\npepper_file = relative/path\n", "absolute"},
        {"store = json:/a\n[weird]\n", "unknown section [weird]"},
        {"store = json:/a\n[services\n", "must end with ']'"},
        {"store = json:/a\njust words\n", "expected 'name = value'"},
        {"store = json:/a\n[services]\nsshd = nope:read\n", "unknown scope 'nope:read'"},
        {"store = json:/a\n[services]\nsshd = *\n", "not '*'"},
        {"store = json:/a\n[services]\nsshd = proxies:read\nsshd = geo:read\n", "mapped twice"},
        {"store = json:/a\n[scopes]\n[services]\n", "defines no scope"},
        {"store = json:/a\n[scopes]\na:b = x\na:b = y\n", "defined twice"},
        {"store = json:/a\n[scopes]\na b = x\n", "scope name"},
        {"store = json:/a\n[services]\nss hd = proxies:read\n", "service name"},
        {"store = json:/a\n[scopes]\nx:y = 1\n[scopes]\nz:w = 2\n", "appears twice"},
        {"store = json:/a\n[authd ]\nadmin_users = root\n", "unknown section [authd ]"},
        {"store = json:/a\n[authd]\nadmin_users\n", "expected 'name = value'"},
        {"store = json:/a\ndefault_rate = 10/day\n", "default_rate: bad rate '10/day'"},
        {"store = json:/a\ndefault_rate = 1/s\ndefault_rate = 2/s\n", "'default_rate' is set twice"},
        {"store = json:/a\nrate_table = run/rate\n", "rate_table must be an absolute path"},
        {"store = json:/a\nrate_unavailable = maybe\n", "rate_unavailable 'maybe' must be refuse or allow"},
        {"store = json:/a\nrate_slots = 1000\n", "rate_slots '1000' must be a power of two"},
        {"store = json:/a\nrate_slots = 8\n", "rate_slots '8' must be a power of two"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config_file cfg;
        char err[512] = "";
        int rc = parse(cases[i].text, &cfg, err, sizeof err);
        CU_ASSERT_EQUAL(rc, -1);
        if (!strstr(err, cases[i].why))
            fprintf(stderr, "case %zu: expected '%s' in '%s'\n", i, cases[i].why, err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].why));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "test.conf:"));
    }
    /* A NUL byte and an over-long line. */
    config_file cfg;
    char err[512];
    CU_ASSERT_EQUAL(config_parse("store = json:/a\0x", 17, "t", &cfg, err, sizeof err), -1);
    char *longline = malloc(10000);
    memset(longline, 'a', 9999);
    longline[9999] = '\0';
    CU_ASSERT_EQUAL(parse(longline, &cfg, err, sizeof err), -1);
    free(longline);
}

static void test_files(void)
{
    config_file cfg;
    char err[512];
    char *good = tu_write("good.conf", "store = json:/a\n", 0644);
    CU_ASSERT_EQUAL(config_load(good, &cfg, err, sizeof err), 0);
    config_free(&cfg);
    char *ww = tu_write("ww.conf", "store = json:/a\n", 0666);
    CU_ASSERT_EQUAL(config_load(ww, &cfg, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "group- or world-writable"));
    char *gw = tu_write("gw.conf", "store = json:/a\n", 0664);
    CU_ASSERT_EQUAL(config_load(gw, &cfg, err, sizeof err), -1);
    char link[512];
    snprintf(link, sizeof link, "%s/link.conf", tu_tmpdir());
    CU_ASSERT_EQUAL(symlink(good, link), 0);
    CU_ASSERT_EQUAL(config_load(link, &cfg, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "symbolic link"));
    CU_ASSERT_EQUAL(config_load(tu_tmpdir(), &cfg, err, sizeof err), -1);
    CU_ASSERT_EQUAL(config_load("/nonexistent/apikey.conf", &cfg, err, sizeof err), -1);
    CU_ASSERT_EQUAL(config_load("relative.conf", &cfg, err, sizeof err), -1);
    if (geteuid() == 0) {
        char *other = tu_write("other.conf", "store = json:/a\n", 0644);
        CU_ASSERT_EQUAL(chown(other, 65534, 65534), 0);
        CU_ASSERT_EQUAL(config_load(other, &cfg, err, sizeof err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "owned by uid 65534"));
        free(other);
    }
    free(good);
    free(ww);
    free(gw);
}

/* What a service's scopes need of a key's: every word, each whole. */
static void test_scopes(void)
{
    CU_ASSERT(scopes_grant("proxies:read", "proxies:read"));
    CU_ASSERT(scopes_grant("geo:read proxies:read", "proxies:read"));
    CU_ASSERT(scopes_grant("proxies:read  geo:read", "geo:read proxies:read"));
    CU_ASSERT(scopes_grant("*", "proxies:write stats:read"));
    CU_ASSERT(scopes_grant("proxies:read", ""));
    /* write never implies read; a word is never a part of another */
    CU_ASSERT(!scopes_grant("proxies:write", "proxies:read"));
    CU_ASSERT(!scopes_grant("proxies:read", "proxies:rea"));
    CU_ASSERT(!scopes_grant("proxies:rea", "proxies:read"));
    CU_ASSERT(!scopes_grant("proxies:readx", "proxies:read"));
    CU_ASSERT(!scopes_grant("xproxies:read", "proxies:read"));
    CU_ASSERT(!scopes_grant("proxies:readproxies:read", "proxies:read"));
    CU_ASSERT(!scopes_grant("geo:read", "geo:read proxies:read"));
    CU_ASSERT(!scopes_grant("", "proxies:read"));
    CU_ASSERT(!scopes_grant("**", "proxies:read"));
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"a good configuration", test_good},
        {"bad configurations are refused with file and line", test_refused},
        {"insecure, symlinked, missing and directory files are refused", test_files},
        {"scopes: every word needed, each whole", test_scopes},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"config", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
