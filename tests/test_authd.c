/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey-authd's own logic, called directly: which client address a request
 * comes from (trusted proxies and forwarded headers), what it reads of
 * apikey.conf, and the bound on its metrics' labels. The HTTP side is
 * tested with real proxies in tests/integration/authd.sh. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "authd.h"
#include "testutil.h"

/* The settings of a configuration whose text follows a store line, read as
 * the daemon reads them: through the context the library opened from the
 * file. 0, or -1 with err (the library's refusal or the daemon's). */
static int read_settings(const char *text, authd_settings *s, char *err, size_t errlen)
{
    static int n;
    char name[32], *conf;
    snprintf(name, sizeof name, "authd%d.conf", ++n);
    if (asprintf(&conf, "store = json:%s/authd.json\n%s", tu_tmpdir(), text) < 0)
        abort();
    char *path = tu_write(name, conf, 0600);
    const apikey_api *api = apikey_api_v1();
    apikey_ctx *ctx = api->open(path, err, errlen);
    int rc = ctx ? authd_settings_read(api, ctx, s, err, errlen) : -1;
    if (ctx)
        api->close(ctx);
    free(conf);
    free(path);
    return rc;
}

static authd_settings settings(const char *text)
{
    authd_settings s;
    char err[512] = "";
    if (read_settings(text, &s, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        authd_settings_init(&s);
    }
    return s;
}

static const char *headers[2]; /* X-Forwarded-For, X-Real-IP */
static int asked;
static int header(void *arg, const char *name, char *out, size_t outlen)
{
    (void)arg;
    asked++;
    const char *v = strcmp(name, "X-Forwarded-For") == 0 ? headers[0] : strcmp(name, "X-Real-IP") == 0 ? headers[1] : NULL;
    out[0] = '\0';
    if (v && strlen(v) >= outlen)
        return -1;
    if (v)
        strcpy(out, v);
    return v != NULL;
}

/* The address computed for a peer and the two headers (NULL: absent). */
static const char *addr(const authd_settings *s, const char *peer, const char *xff, const char *xri)
{
    static char out[AUTHD_ADDR_MAX];
    authd_ip ip;
    struct sockaddr_storage ss = {0};
    if (strcmp(peer, "unix") == 0) {
        ss.ss_family = AF_UNIX;
    } else if (strchr(peer, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET6, peer, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET, peer, &a->sin_addr), 1);
    }
    headers[0] = xff, headers[1] = xri;
    authd_client_address(s, (struct sockaddr *)&ss, header, NULL, &ip);
    authd_ip_text(&ip, out, sizeof out);
    return out;
}

static void test_client_address(void)
{
    authd_settings none = settings("");
    /* No trusted proxy: the peer, whatever the headers claim. */
    CU_ASSERT_STRING_EQUAL(addr(&none, "192.0.2.7", "10.9.9.9", "10.8.8.8"), "192.0.2.7");
    CU_ASSERT_STRING_EQUAL(addr(&none, "2001:db8::1", NULL, NULL), "2001:db8::1");
    CU_ASSERT_STRING_EQUAL(addr(&none, "::ffff:192.0.2.7", NULL, NULL), "192.0.2.7");
    /* A Unix peer that is not trusted: unknown, never its headers. */
    CU_ASSERT_STRING_EQUAL(addr(&none, "unix", "192.0.2.9", NULL), "");
    /* An untrusted peer's headers are not even read. */
    asked = 0;
    addr(&none, "192.0.2.7", "10.9.9.9", NULL);
    CU_ASSERT_EQUAL(asked, 0);

    authd_settings s = settings("[authd]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8 2001:db8:1::/48 unix\n");
    CU_ASSERT_EQUAL(s.nproxies, 3);
    CU_ASSERT(s.trust_unix);
    /* From a trusted proxy: the nearest hop that is not a trusted proxy. */
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", "198.51.100.4", NULL), "198.51.100.4");
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", "6.6.6.6, 198.51.100.4, 10.1.2.3", NULL), "198.51.100.4");
    CU_ASSERT_STRING_EQUAL(addr(&s, "10.200.0.1", " 198.51.100.4 ,10.0.0.9", NULL), "198.51.100.4");
    CU_ASSERT_STRING_EQUAL(addr(&s, "2001:db8:1:ff::2", "2001:db8:2::5", NULL), "2001:db8:2::5");
    CU_ASSERT_STRING_EQUAL(addr(&s, "unix", "198.51.100.4", NULL), "198.51.100.4");
    /* Every hop trusted: the first. */
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", "10.0.0.1, 10.0.0.2", NULL), "10.0.0.1");
    /* The one header named, never a fallback to the other: by default
     * X-Forwarded-For, and X-Real-IP is not read even when it is absent. */
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", NULL, "203.0.113.5"), "127.0.0.1");
    CU_ASSERT_STRING_EQUAL(addr(&s, "unix", "", "203.0.113.5"), "");
    authd_settings real = settings("[authd]\ntrusted_proxies = unix 127.0.0.1\nforwarded_header = x-real-ip\n");
    CU_ASSERT_STRING_EQUAL(addr(&real, "127.0.0.1", "198.51.100.4", "203.0.113.5"), "203.0.113.5");
    CU_ASSERT_STRING_EQUAL(addr(&real, "unix", "198.51.100.4", NULL), "");
    /* X-Real-IP holds one address; two lines of it are unknown. */
    CU_ASSERT_STRING_EQUAL(addr(&real, "unix", NULL, "198.51.100.4, 203.0.113.5"), "");
    CU_ASSERT_STRING_EQUAL(addr(&real, "127.0.0.1", NULL, "198.51.100.4 x"), "");
    authd_settings_free(&real);
    /* A chain longer than the daemon reads is unknown, not cut. */
    char *longchain = malloc(8192);
    memset(longchain, ' ', 8191);
    memcpy(longchain + 8180, "192.0.2.1", 10);
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", longchain, NULL), "");
    free(longchain);
    /* Nothing forwarded: the proxy itself; from a Unix socket, unknown. */
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", NULL, NULL), "127.0.0.1");
    CU_ASSERT_STRING_EQUAL(addr(&s, "unix", NULL, NULL), "");
    /* Garbage in the chain (up to the hop looked at) makes it unknown. */
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", "198.51.100.4, evil.example", NULL), "");
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", "198.51.100.4,,10.0.0.1", NULL), "");
    CU_ASSERT_STRING_EQUAL(addr(&s, "127.0.0.1", "1.2.3.4/8", NULL), "");
    /* A prefix is matched bit by bit. */
    authd_settings odd = settings("[authd]\ntrusted_proxies = 192.0.2.128/25 ::ffff:10.1.0.0/112\n");
    CU_ASSERT_STRING_EQUAL(addr(&odd, "192.0.2.200", "198.51.100.1", NULL), "198.51.100.1");
    CU_ASSERT_STRING_EQUAL(addr(&odd, "192.0.2.100", "198.51.100.1", NULL), "192.0.2.100");
    /* The allowlists' rules: a mapped entry is the IPv4 network it
     * carries, and matches an IPv4 peer and a mapped one. */
    CU_ASSERT_STRING_EQUAL(addr(&odd, "10.1.2.3", "198.51.100.1", NULL), "198.51.100.1");
    CU_ASSERT_STRING_EQUAL(addr(&odd, "::ffff:10.1.2.3", "198.51.100.1", NULL), "198.51.100.1");
    authd_settings mapped = settings("[authd]\ntrusted_proxies = ::ffff:127.0.0.1\n");
    CU_ASSERT_STRING_EQUAL(addr(&mapped, "127.0.0.1", "198.51.100.1", NULL), "198.51.100.1");
    authd_settings_free(&mapped);
    authd_settings_free(&none);
    authd_settings_free(&s);
    authd_settings_free(&odd);
}

static void test_settings(void)
{
    authd_settings s;
    char err[512];
    /* The three former readers of apikey.conf (the library's, the daemon's,
     * nginx's) disagreed on the billing line: one reading now. */
    const char *good = "[scopes]\nthing:do = Do things\nbalance:read = b\nstats:read = s\nproxies:read = p\n"
                       "[services]\nweb = proxies:read\nbilling = balance:read, stats:read,stats:read # two\n"
                       "open =\n"
                       "[authd]\nadmin_users = root, 0   ; both\nadmin_groups = root\n";
    CU_ASSERT_EQUAL_FATAL(read_settings(good, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.nservices, 3);
    CU_ASSERT_STRING_EQUAL(authd_find_service(&s, "billing")->scopes, "balance:read stats:read");
    CU_ASSERT_STRING_EQUAL(authd_find_service(&s, "open")->scopes, "");
    CU_ASSERT_PTR_NULL(authd_find_service(&s, "thing:do"));
    CU_ASSERT_EQUAL(s.nadmin_uids, 2);
    CU_ASSERT_EQUAL(s.admin_uids[1], 0);
    CU_ASSERT_EQUAL(s.nadmin_gids, 1);
    authd_settings_free(&s);

    static const struct { const char *text, *why; } bad[] = {
        {"[authd]\ntrusted_proxies = 10.0.0.0/33\n", "trusted_proxies"},
        {"[authd]\ntrusted_proxies = proxy.example\n", "proxy.example"},
        {"[authd]\ntrusted_proxies = 10.0.0.0/\n", "10.0.0.0/"},
        /* Host bits set: refused as an allowlist refuses it, not masked. */
        {"[authd]\ntrusted_proxies = 10.0.0.1/8\n", "beyond its prefix"},
        {"[authd]\ntrusted_proxies = 127.0.0.1/8\n", "beyond its prefix"},
        {"[authd]\nforwarded_header = Forwarded\n", "forwarded_header"},
        {"[authd]\nforwarded_header = X-Forwarded-For, X-Real-IP\n", "forwarded_header"},
        {"[authd]\nadmin_users = no-such-user-apikey\n", "no such user"},
        {"[authd]\nadmin_groups = no-such-group-apikey\n", "no such group"},
        {"[authd]\nadmins = root\n", "unknown setting"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(read_settings(bad[i].text, &s, err, sizeof err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].why));
    }
    /* The file is read once, by the library and its rules: a file others may
     * write gives no settings at all. */
    char *loose = tu_write("loose.conf", "store = json:/x\n[authd]\ntrusted_proxies = ::1\n", 0664);
    CU_ASSERT_PTR_NULL(apikey_api_v1()->open(loose, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "writable"));
    free(loose);
    CU_ASSERT_EQUAL(read_settings("[authd]\ntrusted_proxies = ::1\n", &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.nproxies, 1);
    authd_settings_free(&s);
}

/* The dashboard's settings: its header, its origin, the limit of keys (the
 * library's default when unset); the peer it believes. */
static void test_dashboard_settings(void)
{
    authd_settings s = settings("");
    CU_ASSERT_STRING_EQUAL(s.dashboard_header, "");
    CU_ASSERT_STRING_EQUAL(s.dashboard_origin, "");
    CU_ASSERT_EQUAL(s.max_keys, 10);
    authd_settings_free(&s);
    s = settings("max_keys_per_account = 1\n[authd]\n"
                 "trusted_proxies = 127.0.0.1 unix\ndashboard_account_header = Remote-User\n"
                 "dashboard_origin = https://keys.example.com:8443\n");
    CU_ASSERT_EQUAL(s.max_keys, 1);
    CU_ASSERT_STRING_EQUAL(s.dashboard_header, "Remote-User");
    CU_ASSERT_STRING_EQUAL(s.dashboard_origin, "https://keys.example.com:8443");
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    CU_ASSERT_TRUE(authd_peer_trusted(&s, (struct sockaddr *)&in));
    inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
    CU_ASSERT_FALSE(authd_peer_trusted(&s, (struct sockaddr *)&in));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CU_ASSERT_TRUE(authd_peer_trusted(&s, (struct sockaddr *)&un));
    CU_ASSERT_FALSE(authd_peer_trusted(&s, NULL));
    authd_settings_free(&s);

    static const struct { const char *text, *why; } bad[] = {
        {"[authd]\ndashboard_account_header = X Forwarded User\n", "not a header name"},
        {"[authd]\ndashboard_account_header = \n", "not a header name"},
        {"[authd]\ndashboard_account_header = X-Forwarded-User-With-A-Name-Far-Longer-Than-Any-Header-Is-Written\n",
         "not a header name"},
        {"[authd]\ndashboard_origin = keys.example.com\n", "scheme://host"},
        {"[authd]\ndashboard_origin = https://keys.example.com/\n", "scheme://host"},
        {"[authd]\ndashboard_origin = https://\n", "scheme://host"},
        {"[authd]\ndashboard_origin = https://user@keys.example.com\n", "scheme://host"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(read_settings(bad[i].text, &s, err, sizeof err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].why));
    }
}

/* Only configured services get a label of their own, and their number is
 * bounded whatever happens. */
static void test_metrics_labels(void)
{
    authd_settings s = settings("[services]\nweb = proxies:read\n");
    struct authd_counters *web = authd_find_service(&s, "web")->counters;
    authd_count(web, APIKEY_REASON_NONE);
    authd_count(web, APIKEY_REASON_NONE);
    authd_count(authd_counters_unmapped(), APIKEY_REASON_UNMAPPED);
    authd_count(web, (apikey_reason)999); /* beyond what this daemon knows: "other" */
    /* Each reason has a label of its own: an allowlist's refusal is not
     * a missing key. */
    authd_count(web, APIKEY_REASON_ADDRESS);
    authd_count(web, APIKEY_REASON_MISSING);
    authd_count(web, APIKEY_REASON_MISSING);
    /* A reload that names web again counts into the same row. */
    authd_settings again = settings("[services]\nweb = geo:read\n");
    CU_ASSERT_PTR_EQUAL(authd_find_service(&again, "web")->counters, web);
    for (int i = 0; i < 3000; i++) {
        char name[32];
        snprintf(name, sizeof name, "svc%d", i);
        CU_ASSERT_PTR_NOT_NULL(authd_counters_for(name));
    }
    size_t len;
    char *text = authd_metrics_text(APIKEY_E_INVALID, NULL, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "apikey_authd_decisions_total{service=\"web\",reason=\"allowed\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "{service=\"(unmapped)\",reason=\"unmapped\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "{service=\"web\",reason=\"address\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "{service=\"web\",reason=\"missing_key\"} 2\n"));
    /* A reason appended by a newer library than this daemon knows is not
     * counted as a missing key. */
    authd_count(web, (apikey_reason)(APIKEY_REASON_RATE + 1));
    authd_count(web, (apikey_reason)-1);
    free(text);
    text = authd_metrics_text(APIKEY_E_INVALID, NULL, &len);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "{service=\"web\",reason=\"other\"} 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "{service=\"web\",reason=\"missing_key\"} 2\n"));
    authd_count(authd_counters_for("svc2999"), APIKEY_REASON_REVOKED);
    free(text);
    text = authd_metrics_text(APIKEY_E_INVALID, NULL, &len);
    /* Past the bound, a new name counts under "(other)". */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "{service=\"(other)\",reason=\"revoked\"} 1\n"));
    CU_ASSERT_PTR_NULL(strstr(text, "svc2999"));
    CU_ASSERT(tu_count_lines(text) < 20);
    free(text);
    /* A replica: its lag and trust; one that cannot be read: only "not trusted". */
    apikey_replica_state rs = {.size = sizeof rs, .lag_ms = 1500, .max_lag_ms = 10000,
                               .last_change = 42, .trusted = 1};
    text = authd_metrics_text(APIKEY_OK, &rs, &len);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "apikey_authd_replica_lag_seconds 1.500\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "apikey_authd_replica_last_change 42\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "apikey_authd_replica_trusted 1\n"));
    free(text);
    text = authd_metrics_text(APIKEY_E_UNAVAILABLE, NULL, &len);
    CU_ASSERT_PTR_NULL(strstr(text, "replica_lag"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "apikey_authd_replica_trusted 0\n"));
    free(text);
    authd_settings_free(&s);
    authd_settings_free(&again);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"the client address: peer, trusted proxies, forwarded headers", test_client_address},
        {"what the daemon reads of apikey.conf, and what it refuses", test_settings},
        {"metrics labels: configured services only, bounded", test_metrics_labels},
        {"the dashboard's settings and the peer it believes", test_dashboard_settings},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"authd", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return tu_run(suites);
}
