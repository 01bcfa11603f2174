/* The parts of apikey.conf that the daemon reads itself: [authd], and the
 * service names and scopes of [services]. The library has already parsed and
 * checked the whole file when this runs (apikey_open comes first), so this
 * reads only what it needs, strictly within [authd]. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authd.h"

#define SETTINGS_MAX_BYTES (1024 * 1024)

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

static int authd_entry(authd_settings *s, const char *key, char *value, char *err, size_t errlen)
{
    if (strcmp(key, "dashboard_account_header") == 0 || strcmp(key, "dashboard_origin") == 0)
        return dashboard_entry(s, key, value, err, errlen);
    if (strcmp(key, "forwarded_header") == 0)
        return forwarded(s, value, err, errlen);
    if (strcmp(key, "trusted_proxies") == 0)
        return each_word(s, value, add_proxy, err, errlen);
    if (strcmp(key, "admin_users") == 0)
        return each_word(s, value, add_user, err, errlen);
    if (strcmp(key, "admin_groups") == 0)
        return each_word(s, value, add_group, err, errlen);
    return fail(err, errlen, "unknown setting", key);
}

static int service_entry(authd_settings *s, const char *name, const char *value)
{
    authd_service *grown = realloc(s->services, (s->nservices + 1) * sizeof *grown);
    if (!grown)
        return -1;
    s->services = grown;
    authd_service *svc = &s->services[s->nservices];
    svc->name = strdup(name);
    svc->scopes = malloc(strlen(value) + 1);
    svc->counters = svc->name ? authd_counters_for(svc->name) : NULL;
    if (!svc->name || !svc->scopes) {
        free(svc->name);
        free(svc->scopes);
        return -1;
    }
    /* "a, b" and "a b" alike become "a b", as RFC 6750's scope wants. */
    char *o = svc->scopes;
    for (const char *v = value; *v;) {
        size_t n = strcspn(v, " \t,");
        if (n) {
            if (o != svc->scopes)
                *o++ = ' ';
            memcpy(o, v, n);
            o += n;
            v += n;
        } else {
            v++;
        }
    }
    *o = '\0';
    s->nservices++;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* "# ..." after whitespace is a comment, as the library reads it. */
static void strip_comment(char *s)
{
    for (char *c = s + 1; *c; c++)
        if ((*c == '#' || *c == ';') && (c[-1] == ' ' || c[-1] == '\t')) {
            *c = '\0';
            return;
        }
}

int authd_settings_parse(const char *text, size_t len, authd_settings *s, char *err, size_t errlen)
{
    enum { TOP, OTHER, AUTHD, SERVICES } sec = TOP;
    memset(s, 0, sizeof *s);
    s->max_keys = 10; /* the library's default; it checked the value */
    s->forwarded_header = "X-Forwarded-For";
    const char *cur = text, *end = text + len;
    while (cur < end) {
        const char *nl = memchr(cur, '\n', (size_t)(end - cur));
        size_t n = nl ? (size_t)(nl - cur) : (size_t)(end - cur);
        char buf[4096];
        if (n >= sizeof buf) {
            snprintf(err, errlen, "a line is longer than %zu bytes", sizeof buf - 1);
            goto fail;
        }
        memcpy(buf, cur, n);
        buf[n] = '\0';
        cur += n + (nl ? 1 : 0);
        char *line = trim(buf);
        if (!*line || *line == '#' || *line == ';')
            continue;
        strip_comment(line);
        line = trim(line);
        if (*line == '[') {
            sec = strcmp(line, "[authd]") == 0      ? AUTHD
                  : strcmp(line, "[services]") == 0 ? SERVICES
                                                    : OTHER;
            continue;
        }
        char *eq = strchr(line, '=');
        if (sec == OTHER || !eq)
            continue;
        *eq = '\0';
        char *key = trim(line), *value = trim(eq + 1);
        if (sec == TOP && strcmp(key, "max_keys_per_account") == 0)
            s->max_keys = atoi(value);
        if (sec == AUTHD && authd_entry(s, key, value, err, errlen) != 0)
            goto fail;
        if (sec == SERVICES && service_entry(s, key, value) != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    authd_settings_free(s);
    return -1;
}

int authd_settings_load(const char *path, authd_settings *s, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    char *text = NULL;
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* The checks the library made on open, made again on what is read here. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SETTINGS_MAX_BYTES ||
        (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
        snprintf(err, errlen, "%s: not a regular file of root's, or writable by others", path);
        goto done;
    }
    size_t len = (size_t)st.st_size, got = 0;
    if (!(text = malloc(len + 1))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    while (got < len) {
        ssize_t r = read(fd, text + got, len - got);
        if (r <= 0) {
            snprintf(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "changed while read");
            goto done;
        }
        got += (size_t)r;
    }
    if (authd_settings_parse(text, len, s, err, errlen) == 0)
        rc = 0;
    else {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
    }
done:
    free(text);
    close(fd);
    return rc;
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
