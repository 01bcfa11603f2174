/* SPDX-License-Identifier: BSD-2-Clause */
/* What the daemon takes from apikey.conf: the lines of [authd], whose names
 * and values are the daemon's to judge, and the services with their scopes.
 * It never reads the file itself: it asks the context the library opened
 * (apikey_section, apikey_services), so both come from one reading, by the
 * library's rules, the same the checks of that context use. */
#include <arpa/inet.h>
#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "authd.h"

static int fail(char *err, size_t errlen, const char *what, const char *value)
{
    snprintf(err, errlen, "[authd] %s '%s'", what, value);
    return -1;
}

static int add_proxy(authd_settings *s, const char *word, char *err, size_t errlen)
{
    if (strcmp(word, "unix") == 0) {
        s->trust_unix = 1;
        return 0;
    }
    if (s->nproxies == AUTHD_MAX_PROXIES)
        return fail(err, errlen, "trusted_proxies: more than 64 entries at", word);
    char why[160];
    /* The allowlists' rules: 10.0.0.1/8 is refused, not widened to 10/8. */
    if (cidr_parse(word, &s->proxies[s->nproxies], why, sizeof why) != 0) {
        snprintf(err, errlen, "[authd] trusted_proxies: %s (an address, ADDRESS/PREFIX or 'unix')", why);
        return -1;
    }
    s->nproxies++;
    return 0;
}

/* A name, or a number, of a user that exists now. */
static int add_user(authd_settings *s, const char *word, char *err, size_t errlen)
{
    if (s->nadmin_uids == AUTHD_MAX_ADMINS)
        return fail(err, errlen, "admin_users: more than 64 entries at", word);
    char buf[4096], *end;
    struct passwd pw, *found = NULL;
    unsigned long n = strtoul(word, &end, 10);
    if (isdigit((unsigned char)word[0]) && !*end)
        getpwuid_r((uid_t)n, &pw, buf, sizeof buf, &found);
    else
        getpwnam_r(word, &pw, buf, sizeof buf, &found);
    if (!found)
        return fail(err, errlen, "admin_users: no such user", word);
    s->admin_uids[s->nadmin_uids++] = found->pw_uid;
    return 0;
}

static int add_group(authd_settings *s, const char *word, char *err, size_t errlen)
{
    if (s->nadmin_gids == AUTHD_MAX_ADMINS)
        return fail(err, errlen, "admin_groups: more than 64 entries at", word);
    char buf[16384], *end;
    struct group gr, *found = NULL;
    unsigned long n = strtoul(word, &end, 10);
    if (isdigit((unsigned char)word[0]) && !*end)
        getgrgid_r((gid_t)n, &gr, buf, sizeof buf, &found);
    else
        getgrnam_r(word, &gr, buf, sizeof buf, &found);
    if (!found)
        return fail(err, errlen, "admin_groups: no such group", word);
    s->admin_gids[s->nadmin_gids++] = found->gr_gid;
    return 0;
}

typedef int (*add_fn)(authd_settings *, const char *, char *, size_t);

/* Values are lists written "a b" or "a, b". */
static int each_word(authd_settings *s, char *value, add_fn add, char *err, size_t errlen)
{
    char *save = NULL;
    for (char *w = strtok_r(value, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save))
        if (add(s, w, err, errlen) != 0)
            return -1;
    return 0;
}

/* dashboard_account_header: an HTTP field name; dashboard_origin: the
 * page's origin as a browser writes it, scheme://host[:port]. */
static int dashboard_entry(authd_settings *s, const char *key, const char *value, char *err, size_t errlen)
{
    static const char token[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~";
    size_t n = strlen(value);
    if (strcmp(key, "dashboard_account_header") == 0) {
        if (n == 0 || n >= sizeof s->dashboard_header || strspn(value, token) != n)
            return fail(err, errlen, "dashboard_account_header: not a header name:", value);
        memcpy(s->dashboard_header, value, n + 1);
        return 0;
    }
    const char *host = strncmp(value, "https://", 8) == 0 ? value + 8 : strncmp(value, "http://", 7) == 0 ? value + 7 : NULL;
    if (!host || !*host || n >= sizeof s->dashboard_origin || strpbrk(host, "/?#@ \t"))
        return fail(err, errlen, "dashboard_origin: want scheme://host[:port], not", value);
    memcpy(s->dashboard_origin, value, n + 1);
    return 0;
}

/* One header, as nginx's real_ip_header: never a fallback to another,
 * which the client could then write itself. */
static int forwarded(authd_settings *s, const char *value, char *err, size_t errlen)
{
    static const char *const names[] = {"X-Forwarded-For", "X-Real-IP"};
    for (size_t i = 0; i < 2; i++)
        if (strcasecmp(value, names[i]) == 0) {
            s->forwarded_header = names[i];
            return 0;
        }
    return fail(err, errlen, "forwarded_header: want X-Forwarded-For or X-Real-IP, not", value);
}

void authd_settings_init(authd_settings *s)
{
    memset(s, 0, sizeof *s);
    s->forwarded_header = "X-Forwarded-For";
    s->max_keys = 10; /* the library's default, until it says otherwise */
}

int authd_settings_add(authd_settings *s, const char *key, const char *value, char *err, size_t errlen)
{
    char copy[4096];
    if (strlen(value) >= sizeof copy)
        return fail(err, errlen, "a value longer than 4095 bytes for", key);
    strcpy(copy, value);
    if (strcmp(key, "dashboard_account_header") == 0 || strcmp(key, "dashboard_origin") == 0)
        return dashboard_entry(s, key, copy, err, errlen);
    if (strcmp(key, "forwarded_header") == 0)
        return forwarded(s, copy, err, errlen);
    if (strcmp(key, "trusted_proxies") == 0)
        return each_word(s, copy, add_proxy, err, errlen);
    if (strcmp(key, "admin_users") == 0)
        return each_word(s, copy, add_user, err, errlen);
    if (strcmp(key, "admin_groups") == 0)
        return each_word(s, copy, add_group, err, errlen);
    return fail(err, errlen, "unknown setting", key);
}

/* The library gives the scopes as it reads them: "a b", each once. */
int authd_settings_service(authd_settings *s, const char *name, const char *scopes)
{
    authd_service *grown = realloc(s->services, (s->nservices + 1) * sizeof *grown);
    if (!grown)
        return -1;
    s->services = grown;
    authd_service *svc = &s->services[s->nservices];
    svc->name = strdup(name);
    svc->scopes = strdup(scopes);
    svc->counters = svc->name ? authd_counters_for(svc->name) : NULL;
    if (!svc->name || !svc->scopes) {
        free(svc->name);
        free(svc->scopes);
        return -1;
    }
    s->nservices++;
    return 0;
}

typedef struct reading {
    authd_settings *s;
    char *err;
    size_t errlen;
    int failed;
} reading;

static int take_setting(const char *name, const char *value, void *arg)
{
    reading *r = arg;
    return r->failed = authd_settings_add(r->s, name, value, r->err, r->errlen) != 0;
}

static int take_library_setting(const char *name, const char *value, void *arg)
{
    reading *r = arg;
    if (strcmp(name, "max_keys_per_account") == 0)
        r->s->max_keys = atoi(value);
    return 0;
}

static int take_service(const char *name, const char *scopes, void *arg)
{
    reading *r = arg;
    if (authd_settings_service(r->s, name, scopes) != 0) {
        snprintf(r->err, r->errlen, "out of memory");
        r->failed = 1;
    }
    return r->failed;
}

int authd_settings_read(const apikey_api *api, apikey_ctx *ctx, authd_settings *s, char *err,
                        size_t errlen)
{
    authd_settings_init(s);
    if (!APIKEY_API_HAS(api, section)) {
        snprintf(err, errlen, "libapikey is older than this daemon (it needs 1.4)");
        return -1;
    }
    reading r = {s, err, errlen, 0};
    if (api->section(ctx, "authd", take_setting, &r, err, errlen) != APIKEY_OK || r.failed ||
        api->section(ctx, "", take_library_setting, &r, err, errlen) != APIKEY_OK ||
        api->services(ctx, take_service, &r, err, errlen) != APIKEY_OK || r.failed) {
        authd_settings_free(s);
        return -1;
    }
    return 0;
}

void authd_settings_free(authd_settings *s)
{
    for (size_t i = 0; i < s->nservices; i++) {
        free(s->services[i].name);
        free(s->services[i].scopes);
    }
    free(s->services);
    memset(s, 0, sizeof *s);
}

const authd_service *authd_find_service(const authd_settings *s, const char *name)
{
    for (size_t i = 0; i < s->nservices; i++)
        if (strcmp(s->services[i].name, name) == 0)
            return &s->services[i];
    return NULL;
}
