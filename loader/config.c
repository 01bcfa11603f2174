/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "hot_path.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secfile.h"
#include "timeutil.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

static const config_scope default_scopes[] = {
    {"proxies:read", "List and retrieve proxy details and configuration"},
    {"proxies:write", "Create, update, and delete proxies; manage limits and whitelists"},
    {"geo:read", "Access geo directory (countries, states, cities, ZIP codes)"},
    {"stats:read", "View traffic statistics and export usage reports"},
    {"balance:read", "View account balance, transaction history, and available plans"},
};

enum section { SEC_TOP, SEC_SCOPES, SEC_SERVICES, SEC_HOST };

/* Sections that belong to a host, which reads them through
 * apikey_section(): the library keeps their lines as written and leaves
 * their names and values to that host. Any other section is a typo. */
static const char *const host_sections[] = {"authd"};

typedef struct parser {
    config_file *cfg;
    const char *name;
    int line;
    char *err;
    size_t errlen;
    int seen_scopes_section;
    const char *host_section; /* the host section being read */
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s:%d: %s", p->name, p->line, msg);
    return -1;
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

/* "# ..." after whitespace is a comment, as in apikey.conf(5)'s example. */
static void strip_inline_comment(char *s)
{
    for (char *c = s; *c; c++)
        if ((*c == '#' || *c == ';') && c > s && (c[-1] == ' ' || c[-1] == '\t')) {
            *c = '\0';
            return;
        }
}

static int set_string(parser *p, char **slot, const char *key, const char *value)
{
    if (*slot)
        return fail(p, "'%s' is set twice", key);
    if (!*value)
        return fail(p, "'%s' is empty", key);
    if (!(*slot = strdup(value)))
        return fail(p, "out of memory");
    return 0;
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

static int top_entry(parser *p, const char *key, const char *value, unsigned *seen)
{
    config_file *c = p->cfg;
    if (strcmp(key, "store") == 0)
        return set_string(p, &c->store, key, value);
    if (strcmp(key, "default_expiry") == 0) {
        int64_t t;
        if (timeutil_expiry(value, 0, &t) != 0)
            return fail(p, "default_expiry '%s' is not 30d, 90d, 6m, 1y, never or a date", value);
        return set_string(p, &c->default_expiry, key, value);
    }
    if (strcmp(key, "replica") == 0) {
        if (value[0] != '/')
            return fail(p, "replica must be an absolute path (a folder kept by apikey-syncd)");
        return set_string(p, &c->replica, key, value);
    }
    if (strcmp(key, "pepper_file") == 0) {
        if (value[0] != '/')
            return fail(p, "pepper_file must be an absolute path");
        return set_string(p, &c->pepper_file, key, value);
    }
    if (strcmp(key, "rate_table") == 0) {
        if (value[0] != '/')
            return fail(p, "rate_table must be an absolute path");
        return set_string(p, &c->rate_table, key, value);
    }
    enum { S_PREFIX = 1, S_MAX = 2, S_GRAN = 4, S_LAG = 8, S_RATE = 16, S_RATE_UNAV = 32, S_SLOTS = 64 };
    unsigned bit = strcmp(key, "key_prefix") == 0             ? S_PREFIX
                   : strcmp(key, "max_keys_per_account") == 0 ? S_MAX
                   : strcmp(key, "last_used_granularity") == 0 ? S_GRAN
                   : strcmp(key, "replica_max_lag") == 0       ? S_LAG
                   : strcmp(key, "default_rate") == 0          ? S_RATE
                   : strcmp(key, "rate_unavailable") == 0      ? S_RATE_UNAV
                   : strcmp(key, "rate_slots") == 0            ? S_SLOTS
                                                               : 0;
    if (!bit)
        return fail(p, "unknown setting '%s'", key);
    if (*seen & bit)
        return fail(p, "'%s' is set twice", key);
    *seen |= bit;
    if (bit == S_PREFIX) {
        if (!keycodec_prefix_valid(value))
            return fail(p, "key_prefix '%s' must be 1 to 8 of [a-z0-9]", value);
        snprintf(c->key_prefix, sizeof c->key_prefix, "%s", value);
    } else if (bit == S_MAX) {
        long n;
        if (parse_int(value, 1, 1000000, &n) != 0)
            return fail(p, "max_keys_per_account '%s' must be a number from 1 to 1000000", value);
        c->max_keys_per_account = (int)n;
    } else if (bit == S_RATE) {
        char why[128];
        if (strcmp(value, "none") != 0 && rate_parse(value, &c->default_rate, why, sizeof why) != 0)
            return fail(p, "default_rate: %s", why);
    } else if (bit == S_SLOTS) {
        long n;
        if (parse_int(value, RATE_SLOTS_MIN, RATE_SLOTS_MAX, &n) != 0 || (n & (n - 1)))
            return fail(p, "rate_slots '%s' must be a power of two from %u to %u", value,
                        RATE_SLOTS_MIN, RATE_SLOTS_MAX);
        c->rate_slots = (uint32_t)n;
    } else if (bit == S_RATE_UNAV) {
        if (strcmp(value, "refuse") != 0 && strcmp(value, "allow") != 0)
            return fail(p, "rate_unavailable '%s' must be refuse or allow", value);
        c->rate_unavailable_allow = strcmp(value, "allow") == 0;
    } else {
        int64_t s;
        if (timeutil_duration(value, &s) != 0 || (bit == S_LAG && (s < 1 || s > 86400)))
            return fail(p, "%s '%s' is not a duration such as 60s or 5min%s", key, value,
                        bit == S_LAG ? " (1s to 1d)" : "");
        *(bit == S_LAG ? &c->replica_max_lag : &c->last_used_granularity) = s;
    }
    return 0;
}

static int valid_name(const char *s, const char *extra)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

/* Copies of key and value into *a and *b, or neither. */
static int dup_both(parser *p, char **a, const char *key, char **b, const char *value)
{
    *a = strdup(key);
    *b = strdup(value);
    if (*a && *b)
        return 0;
    free(*a);
    free(*b);
    *a = *b = NULL;
    return fail(p, "out of memory");
}

static int scope_entry(parser *p, const char *key, const char *value)
{
    config_file *c = p->cfg;
    if (!valid_name(key, ":._-") || strlen(key) > 64)
        return fail(p, "scope name '%s' may only hold letters, digits and : . _ -", key);
    if (config_find_scope(c, key))
        return fail(p, "scope '%s' is defined twice", key);
    config_scope *grown = realloc(c->scopes, (c->nscopes + 1) * sizeof *grown);
    if (!grown)
        return fail(p, "out of memory");
    c->scopes = grown;
    config_scope *s = &c->scopes[c->nscopes];
    if (dup_both(p, &s->name, key, &s->description, value) != 0)
        return -1;
    c->nscopes++;
    return 0;
}

static int service_entry(parser *p, const char *key, const char *value)
{
    config_file *c = p->cfg;
    if (!valid_name(key, "._-@+") || strlen(key) > 128)
        return fail(p, "service name '%s' may only hold letters, digits and . _ - @ +", key);
    if (config_find_service(c, key))
        return fail(p, "service '%s' is mapped twice", key);
    config_service *grown = realloc(c->services, (c->nservices + 1) * sizeof *grown);
    if (!grown)
        return fail(p, "out of memory");
    c->services = grown;
    config_service *s = &c->services[c->nservices];
    /* The scopes are checked against the catalogue once it is complete. */
    if (dup_both(p, &s->name, key, &s->scopes, value) != 0)
        return -1;
    c->nservices++;
    return 0;
}

static int host_entry(parser *p, const char *key, const char *value)
{
    config_file *c = p->cfg;
    config_setting *grown = realloc(c->settings, (c->nsettings + 1) * sizeof *grown);
    if (!grown)
        return fail(p, "out of memory");
    c->settings = grown;
    config_setting *s = &c->settings[c->nsettings];
    s->section = p->host_section;
    if (dup_both(p, &s->name, key, &s->value, value) != 0)
        return -1;
    c->nsettings++;
    return 0;
}

static int add_default_scopes(config_file *c)
{
    size_t n = sizeof default_scopes / sizeof default_scopes[0];
    c->scopes = calloc(n, sizeof *c->scopes);
    if (!c->scopes)
        return -1;
    for (size_t i = 0; i < n; i++) {
        c->scopes[i].name = strdup(default_scopes[i].name);
        c->scopes[i].description = strdup(default_scopes[i].description);
        c->nscopes++;
        if (!c->scopes[i].name || !c->scopes[i].description)
            return -1;
    }
    return 0;
}

/* Services are written "a b" or "a, b"; a service may not ask for "*". */
static int finish_services(parser *p)
{
    config_file *c = p->cfg;
    for (size_t i = 0; i < c->nservices; i++) {
        char norm[APIKEY_SCOPES_MAX], why[256];
        if (strcmp(c->services[i].scopes, "*") == 0)
            return fail(p, "service '%s': list the scopes it needs, not '*'", c->services[i].name);
        if (config_normalise_scopes(c, c->services[i].scopes, norm, sizeof norm, why, sizeof why) != 0)
            return fail(p, "service '%s': %s", c->services[i].name, why);
        char *copy = strdup(norm);
        if (!copy)
            return fail(p, "out of memory");
        free(c->services[i].scopes);
        c->services[i].scopes = copy;
    }
    return 0;
}

static int parse_line(parser *p, char *line, enum section *sec, unsigned *seen)
{
    char *s = trim(line);
    if (!*s || *s == '#' || *s == ';')
        return 0;
    if (*s == '[') {
        strip_inline_comment(s);
        s = trim(s);
        size_t n = strlen(s);
        if (s[n - 1] != ']')
            return fail(p, "a section header must end with ']'");
        if (strcmp(s, "[scopes]") == 0) {
            if (p->seen_scopes_section)
                return fail(p, "section [scopes] appears twice");
            p->seen_scopes_section = 1;
            *sec = SEC_SCOPES;
        } else if (strcmp(s, "[services]") == 0) {
            *sec = SEC_SERVICES;
        } else {
            size_t i, count = sizeof host_sections / sizeof host_sections[0];
            for (i = 0; i < count; i++)
                if (n == strlen(host_sections[i]) + 2 &&
                    strncmp(s + 1, host_sections[i], n - 2) == 0)
                    break;
            if (i == count)
                return fail(p, "unknown section %s", s);
            p->host_section = host_sections[i];
            *sec = SEC_HOST;
        }
        return 0;
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return fail(p, "expected 'name = value'");
    *eq = '\0';
    char *key = trim(s);
    char *value = eq + 1;
    strip_inline_comment(value);
    value = trim(value);
    if (!*key)
        return fail(p, "a setting has no name");
    switch (*sec) {
    case SEC_TOP: return top_entry(p, key, value, seen);
    case SEC_SCOPES: return scope_entry(p, key, value);
    case SEC_SERVICES: return service_entry(p, key, value);
    case SEC_HOST: return host_entry(p, key, value);
    }
    return -1;
}

int config_parse(const char *text, size_t len, const char *name, config_file *cfg, char *err,
                 size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->key_prefix, sizeof cfg->key_prefix, "ak");
    cfg->max_keys_per_account = 10;
    cfg->last_used_granularity = 60;
    parser p = {.cfg = cfg, .name = name, .err = err, .errlen = errlen};
    enum section sec = SEC_TOP;
    unsigned seen = 0;
    int rc = -1;
    if (memchr(text, '\0', len)) {
        p.line = 1;
        fail(&p, "holds a NUL byte; not a configuration file");
        goto done;
    }
    const char *cur = text, *end = text + len;
    while (cur < end) {
        const char *nl = memchr(cur, '\n', (size_t)(end - cur));
        size_t n = nl ? (size_t)(nl - cur) : (size_t)(end - cur);
        p.line++;
        char line[4096];
        if (n >= sizeof line) {
            fail(&p, "line longer than %zu bytes", sizeof line - 1);
            goto done;
        }
        memcpy(line, cur, n);
        line[n] = '\0';
        if (parse_line(&p, line, &sec, &seen) != 0)
            goto done;
        cur += n + (nl ? 1 : 0);
    }
    p.line++;
    if (!cfg->store) {
        fail(&p, "no 'store =' setting (for example store = json:/var/lib/apikey/keys.json)");
        goto done;
    }
    if (!p.seen_scopes_section && add_default_scopes(cfg) != 0) {
        fail(&p, "out of memory");
        goto done;
    }
    if (p.seen_scopes_section && cfg->nscopes == 0) {
        fail(&p, "section [scopes] defines no scope");
        goto done;
    }
    if (!cfg->replica_max_lag)
        cfg->replica_max_lag = 10;
    if ((!cfg->default_expiry && !(cfg->default_expiry = strdup("90d"))) ||
        (!cfg->rate_table && !(cfg->rate_table = strdup(APIKEY_RATE_TABLE)))) {
        fail(&p, "out of memory");
        goto done;
    }
    if (finish_services(&p) != 0)
        goto done;
    rc = 0;
done:
    if (rc != 0)
        config_free(cfg);
    return rc;
}

int config_load(const char *path, config_file *cfg, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    memset(cfg, 0, sizeof *cfg);
    if (path[0] != '/') {
        snprintf(err, errlen, "%s: the configuration path must be absolute", path);
        return -1;
    }
    if (secfile_read(path, CONFIG_MAX_BYTES, &text, &len, err, errlen) != 0)
        return -1;
    int rc = config_parse(text, len, path, cfg, err, errlen);
    free(text);
    return rc;
}

void config_free(config_file *cfg)
{
    free(cfg->store);
    free(cfg->default_expiry);
    free(cfg->pepper_file);
    free(cfg->replica);
    free(cfg->rate_table);
    for (size_t i = 0; i < cfg->nscopes; i++) {
        free(cfg->scopes[i].name);
        free(cfg->scopes[i].description);
    }
    free(cfg->scopes);
    for (size_t i = 0; i < cfg->nservices; i++) {
        free(cfg->services[i].name);
        free(cfg->services[i].scopes);
    }
    free(cfg->services);
    for (size_t i = 0; i < cfg->nsettings; i++) {
        free(cfg->settings[i].name);
        free(cfg->settings[i].value);
    }
    free(cfg->settings);
    memset(cfg, 0, sizeof *cfg);
}

const config_scope *config_find_scope(const config_file *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nscopes; i++)
        if (strcmp(cfg->scopes[i].name, name) == 0)
            return &cfg->scopes[i];
    return NULL;
}

/* On every check: the names compared in line, not through libc's strcmp. */
HOT_PATH const config_service *config_find_service(const config_file *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nservices; i++) {
        const char *a = cfg->services[i].name;
        size_t k = 0;
        while (a[k] && a[k] == name[k])
            k++;
        if (a[k] == name[k])
            return &cfg->services[i];
    }
    return NULL;
}

int config_normalise_scopes(const config_file *cfg, const char *in, char *out, size_t outlen,
                            char *err, size_t errlen)
{
    size_t used = 0;
    out[0] = '\0';
    const char *s = in;
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (!*s)
            break;
        size_t n = strcspn(s, " ,\t");
        char word[128];
        if (n >= sizeof word) {
            snprintf(err, errlen, "scope name too long");
            return -1;
        }
        memcpy(word, s, n);
        word[n] = '\0';
        s += n;
        int star = strcmp(word, "*") == 0;
        if (!star && !config_find_scope(cfg, word)) {
            snprintf(err, errlen, "unknown scope '%s' (see 'apikey scopes')", word);
            return -1;
        }
        if (star && (used > 0 || s[strspn(s, " ,\t")])) {
            /* '*' mixed with names would read as a typo; say so. */
            snprintf(err, errlen, "'*' grants every scope and stands alone");
            return -1;
        }
        /* Skip a scope already listed. */
        int dup = 0;
        for (const char *o = out; *o;) {
            size_t m = strcspn(o, " ");
            if (m == n && memcmp(o, word, n) == 0)
                dup = 1;
            o += m + (o[m] == ' ');
        }
        if (dup)
            continue;
        if (used + n + 2 > outlen) {
            snprintf(err, errlen, "too many scopes");
            return -1;
        }
        if (used)
            out[used++] = ' ';
        memcpy(out + used, word, n + 1);
        used += n;
    }
    return 0;
}
