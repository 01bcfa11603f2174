/* apikey list and apikey scopes: reading the store and the catalogue. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "cli.h"
#include "secret_io.h"
#include "timeutil.h"

static json_t *json_time(int64_t t)
{
    char buf[32];
    if (!t)
        return json_null();
    timeutil_iso(t, buf, sizeof buf);
    return json_string(buf);
}

static json_t *record_json(const apikey_ctx *ctx, const apikey_record *rec)
{
    char pid[APIKEY_KEY_ID_MAX];
    core_public_id(ctx, rec->id, pid, sizeof pid);
    json_t *scopes = json_array();
    for (const char *s = rec->scopes; scopes && *s;) {
        size_t n = strcspn(s, " ");
        if (n)
            json_array_append_new(scopes, json_stringn(s, n));
        s += n;
        while (*s == ' ')
            s++;
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "id", pid, "account", rec->account,
                     "name", rec->name, "scopes", scopes, "created", json_time(rec->created),
                     "expires", json_time(rec->expires), "last_used", json_time(rec->last_used),
                     "status", core_status_name(core_status(rec, ctx->now())));
}

void cli_print_secret(const char *text)
{
    fflush(stdout); /* what was printed before stays before */
    if (secret_write_line(1, text, strlen(text)) != 0)
        perror("apikey: cannot write the key to standard output");
}

void cli_print_json_record(const apikey_ctx *ctx, const apikey_record *rec, const char *key)
{
    json_t *o = record_json(ctx, rec);
    if (o && key)
        json_object_set_new(o, "key", json_string(key));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text && key)
        cli_print_secret(text);
    else if (text)
        puts(text);
    if (text)
        OPENSSL_cleanse(text, strlen(text));
    free(text);
    json_decref(o);
}

typedef struct rows {
    apikey_record *recs;
    size_t n, cap;
    int all;
    int64_t now;
} rows;

static int collect(const apikey_record *rec, void *arg)
{
    rows *r = arg;
    if (!r->all && core_status(rec, r->now) != KEY_ACTIVE)
        return APIKEY_ST_OK;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        apikey_record *grown = realloc(r->recs, cap * sizeof *grown);
        if (!grown)
            return APIKEY_ST_NOMEM;
        r->recs = grown;
        r->cap = cap;
    }
    r->recs[r->n] = *rec;
    memset(r->recs[r->n].hash, 0, sizeof rec->hash); /* never kept beyond need */
    r->n++;
    return APIKEY_ST_OK;
}

static void table_time(int64_t t, const char *none, char *buf, size_t len)
{
    if (!t) {
        snprintf(buf, len, "%s", none);
        return;
    }
    timeutil_iso(t, buf, len);
    buf[10] = ' '; /* 2026-11-24 15:09 */
    buf[16] = '\0';
}

enum { COL_NAME, COL_KEY, COL_PERMS, COL_USED, COL_EXPIRES, COL_CREATED, COL_ACCOUNT, COL_STATUS, NCOLS };
static const char *const headers[NCOLS] = {"Name", "Key", "Permissions", "Last used",
                                           "Expires", "Created", "Account", "Status"};

static void cells(const apikey_ctx *ctx, const apikey_record *rec, int64_t now, char c[NCOLS][APIKEY_SCOPES_MAX])
{
    snprintf(c[COL_NAME], APIKEY_SCOPES_MAX, "%s", rec->name);
    snprintf(c[COL_KEY], APIKEY_SCOPES_MAX, "%s_%s...", ctx->cfg.key_prefix, rec->id);
    snprintf(c[COL_PERMS], APIKEY_SCOPES_MAX, "%s", strcmp(rec->scopes, "*") == 0 ? "* (all)" : rec->scopes);
    table_time(rec->last_used, "never", c[COL_USED], APIKEY_SCOPES_MAX);
    table_time(rec->expires, "", c[COL_EXPIRES], APIKEY_SCOPES_MAX);
    table_time(rec->created, "", c[COL_CREATED], APIKEY_SCOPES_MAX);
    snprintf(c[COL_ACCOUNT], APIKEY_SCOPES_MAX, "%s", rec->account);
    snprintf(c[COL_STATUS], APIKEY_SCOPES_MAX, "%s", core_status_name(core_status(rec, now)));
}

static void print_table(const apikey_ctx *ctx, const rows *r, int show_account)
{
    int used[NCOLS] = {1, 1, 1, 1, 1, 1, show_account, r->all};
    size_t width[NCOLS];
    static char c[NCOLS][APIKEY_SCOPES_MAX];
    for (int k = 0; k < NCOLS; k++)
        width[k] = strlen(headers[k]);
    for (size_t i = 0; i < r->n; i++) {
        cells(ctx, &r->recs[i], r->now, c);
        for (int k = 0; k < NCOLS; k++)
            if (strlen(c[k]) > width[k])
                width[k] = strlen(c[k]);
    }
    for (size_t i = 0; i <= r->n; i++) {
        if (i > 0)
            cells(ctx, &r->recs[i - 1], r->now, c);
        int last = NCOLS - 1;
        while (!used[last])
            last--;
        const char *sep = "";
        for (int k = 0; k <= last; k++) {
            if (!used[k])
                continue;
            /* No padding after the last column: lines end without blanks. */
            printf("%s%-*s", sep, k == last ? 0 : (int)width[k], i == 0 ? headers[k] : c[k]);
            sep = "  ";
        }
        putchar('\n');
    }
}

int cli_list(const char *config, int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, 0, 'a'}, {"json", no_argument, 0, 'j'}, {0, 0, 0, 0},
    };
    int json = 0, c;
    rows r = {0};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'a')
            r.all = 1;
        else if (c == 'j')
            json = 1;
        else
            return cli_usage("list: bad option%s", "");
    }
    if (argc - optind > 1)
        return cli_usage("list takes at most one ACCOUNT%s", "");
    const char *account = optind < argc ? argv[optind] : NULL;
    apikey_ctx *ctx = cli_open(config, 1);
    if (!ctx)
        return 2;
    r.now = ctx->now();
    char err[1024];
    int rc = admin_each(ctx, account, collect, &r, err, sizeof err);
    if (rc != ADMIN_OK) {
        cli_fail(rc, err);
    } else if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < r.n; i++)
            json_array_append_new(arr, record_json(ctx, &r.recs[i]));
        char *text = arr ? json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (!text)
            rc = cli_fail(ADMIN_ERROR, "out of memory");
        else
            puts(text);
        free(text);
        json_decref(arr);
    } else {
        print_table(ctx, &r, account == NULL);
    }
    free(r.recs);
    apikey_close(ctx);
    return rc;
}

int cli_scopes(const char *config, int argc, char **argv)
{
    int json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 2 || (argc == 2 && !json))
        return cli_usage("scopes takes only --json%s", "");
    apikey_ctx *ctx = cli_open(config, 0);
    if (!ctx)
        return 2;
    json_t *arr = json ? json_array() : NULL;
    for (size_t i = 0; i < ctx->cfg.nscopes; i++) {
        const config_scope *s = &ctx->cfg.scopes[i];
        if (json)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "scope", s->name, "description", s->description));
        else
            printf("%-16s %s\n", s->name, s->description);
    }
    if (json) {
        char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            puts(text);
        free(text);
        json_decref(arr);
    }
    apikey_close(ctx);
    return 0;
}
