/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey list and apikey scopes: reading the store and the catalogue. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "key_json.h"
#include "secret_io.h"

int cli_print_secret(const char *text, const char *key_id)
{
    /* What was printed before stays before. A key that cannot be shown
     * fails the command, though the store holds it: it is named, so the
     * operator can revoke it. */
    if (fflush(stdout) != 0 || secret_write_line(1, text, strlen(text)) != 0) {
        fprintf(stderr, "apikey: cannot write to standard output (%s): key %s was created but not shown; revoke it: apikey revoke %s\n",
                strerror(errno), key_id, key_id);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

int cli_print_json_key(const apikey_key_info *info, const char *key)
{
    int rc = CLI_EXIT_OK;
    json_t *o = key_json(info, apikey_state_string(info->state));
    if (o && key && json_object_set_new(o, "key", json_string(key)) != 0) {
        json_decref(o);
        o = NULL;
    }
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char why[256];
    snprintf(why, sizeof why, "cannot encode key %s as JSON%s%s", info->id,
             key ? ": it was created but not shown; revoke it: apikey revoke " : "", key ? info->id : "");
    if (!text)
        rc = cli_fail(CLI_EXIT_ERROR, why);
    else if (key)
        rc = cli_print_secret(text, info->id);
    else
        puts(text);
    if (text)
        apikey_wipe(text, strlen(text));
    free(text);
    json_decref(o);
    return rc;
}

typedef struct rows {
    apikey_key_info *keys;
    size_t n, cap;
    int nomem;
} rows;

static int collect(const apikey_key_info *info, void *arg)
{
    rows *r = arg;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        apikey_key_info *grown = realloc(r->keys, cap * sizeof *grown);
        if (!grown) {
            r->nomem = 1;
            return 1;
        }
        r->keys = grown;
        r->cap = cap;
    }
    r->keys[r->n++] = *info;
    return 0;
}

static void table_time(int64_t t, const char *none, char *buf, size_t len)
{
    if (!t) {
        snprintf(buf, len, "%s", none);
        return;
    }
    key_json_time(t, buf, len);
    buf[10] = ' '; /* 2026-11-24 15:09 */
    buf[16] = '\0';
}

/* apikey(1)'s first columns in their order, then what came later. */
enum { COL_NAME, COL_KEY, COL_PERMS, COL_USED, COL_EXPIRES, COL_CREATED, COL_ACCOUNT, COL_STATUS,
       COL_ALLOW, COL_RATE, NCOLS };
static const char *const headers[NCOLS] = {"Name", "Key", "Permissions", "Last used", "Expires",
                                           "Created", "Account", "Status", "Allowed from", "Rate"};

/* "10.0.0.0/8 ::1/128" as "10.0.0.0/8, ::1/128". */
_Static_assert(APIKEY_ALLOW_FROM_MAX + APIKEY_ALLOW_ENTRIES <= APIKEY_SCOPES_MAX,
               "a cell holds a list with its separators widened");
static void allow_cell(const char *list, char *cell, size_t len)
{
    size_t used = 0;
    cell[0] = '\0';
    for (const char *s = list; *s && used < len;) {
        size_t n = strcspn(s, " ");
        used += (size_t)snprintf(cell + used, len - used, "%s%.*s", used ? ", " : "", (int)n, s);
        s += n;
        s += strspn(s, " ");
    }
}

static void cells(const apikey_key_info *k, char c[NCOLS][APIKEY_SCOPES_MAX])
{
    snprintf(c[COL_NAME], APIKEY_SCOPES_MAX, "%s", k->name);
    snprintf(c[COL_KEY], APIKEY_SCOPES_MAX, "%s...", k->id);
    snprintf(c[COL_PERMS], APIKEY_SCOPES_MAX, "%s", strcmp(k->scopes, "*") == 0 ? "* (all)" : k->scopes);
    table_time(k->last_used, "never", c[COL_USED], APIKEY_SCOPES_MAX);
    table_time(k->expires, "", c[COL_EXPIRES], APIKEY_SCOPES_MAX);
    table_time(k->created, "", c[COL_CREATED], APIKEY_SCOPES_MAX);
    snprintf(c[COL_ACCOUNT], APIKEY_SCOPES_MAX, "%s", k->account);
    snprintf(c[COL_STATUS], APIKEY_SCOPES_MAX, "%s", apikey_state_string(k->state));
    allow_cell(k->allow_from, c[COL_ALLOW], APIKEY_SCOPES_MAX);
    /* "100/min, burst 20" */
    const char *per = key_json_per(k->rate_period);
    c[COL_RATE][0] = '\0';
    if (k->rate_limit && per)
        snprintf(c[COL_RATE], APIKEY_SCOPES_MAX, "%u/%s, burst %u", k->rate_limit, per + 1,
                 k->rate_burst);
}

/* Allowed from is shown when a key listed has an allowlist, Rate when one
 * has a limit. */
static void print_table(const rows *r, int show_account, int show_status)
{
    int any_list = 0, any_rate = 0;
    for (size_t i = 0; i < r->n; i++) {
        any_list |= r->keys[i].allow_from[0] != '\0';
        any_rate |= r->keys[i].rate_limit != 0;
    }
    int used[NCOLS] = {1, 1, 1, 1, 1, 1, show_account, show_status, any_list, any_rate};
    size_t width[NCOLS];
    static char c[NCOLS][APIKEY_SCOPES_MAX];
    for (int k = 0; k < NCOLS; k++)
        width[k] = strlen(headers[k]);
    for (size_t i = 0; i < r->n; i++) {
        cells(&r->keys[i], c);
        for (int k = 0; k < NCOLS; k++)
            if (strlen(c[k]) > width[k])
                width[k] = strlen(c[k]);
    }
    for (size_t i = 0; i <= r->n; i++) {
        if (i > 0)
            cells(&r->keys[i - 1], c);
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

static int print_json_array(json_t *arr)
{
    char *text = arr ? json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text)
        puts(text);
    free(text);
    json_decref(arr);
    return text ? CLI_EXIT_OK : cli_fail(CLI_EXIT_ERROR, "out of memory");
}

int cli_list(const char *config, int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, 0, 'a'}, {"json", no_argument, 0, 'j'},
        {"expiring", required_argument, 0, 'e'}, {0, 0, 0, 0},
    };
    int json = 0, c;
    unsigned flags = 0;
    const char *expiring = NULL;
    rows r = {0};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'a')
            flags |= APIKEY_LIST_ALL;
        else if (c == 'j')
            json = 1;
        else if (c == 'e')
            expiring = optarg;
        else
            return cli_usage("list: bad option%s", "");
    }
    if (argc - optind > 1)
        return cli_usage("list takes at most one ACCOUNT%s", "");
    if (expiring && (flags & APIKEY_LIST_ALL))
        return cli_usage("list --expiring lists active keys: no --all%s", "");
    const char *account = optind < argc ? argv[optind] : NULL;
    apikey_ctx *ctx = cli_open(config, 1);
    if (!ctx)
        return CLI_EXIT_ERROR;
    char err[1024];
    apikey_status st = expiring ? apikey_list_expiring(ctx, account, expiring, collect, &r, err, sizeof err)
                                : apikey_list(ctx, account, flags, collect, &r, err, sizeof err);
    apikey_close(ctx);
    int rc = CLI_EXIT_OK;
    if (st != APIKEY_OK) {
        rc = cli_fail(cli_exit_code(st), err);
    } else if (r.nomem) {
        rc = cli_fail(CLI_EXIT_ERROR, "out of memory");
    } else if (json) {
        /* A key that cannot be encoded fails the whole list: a cron job
         * reading list --expiring --json must never miss one. */
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < r.n; i++) {
            if (json_array_append_new(arr, key_json(&r.keys[i], apikey_state_string(r.keys[i].state))) == 0)
                continue;
            json_decref(arr);
            arr = NULL;
            char why[256];
            snprintf(why, sizeof why, "cannot encode key %s as JSON (a text that is not UTF-8, or "
                     "out of memory); nothing listed", r.keys[i].id);
            rc = cli_fail(CLI_EXIT_ERROR, why);
        }
        if (arr)
            rc = print_json_array(arr);
    } else {
        /* Expiry warnings go to the keys' owners: their accounts always. */
        print_table(&r, account == NULL || expiring, (flags & APIKEY_LIST_ALL) != 0);
    }
    free(r.keys);
    return rc;
}

typedef struct scope_out {
    json_t *arr; /* NULL: a table */
    char failed[256]; /* why a scope could not be encoded, else "" */
} scope_out;

static int print_scope(const char *scope, const char *description, void *arg)
{
    scope_out *o = arg;
    if (!o->arr) {
        printf("%-16s %s\n", scope, description);
    } else if (json_array_append_new(o->arr, json_pack("{s:s, s:s}", "scope", scope, "description",
                                                       description)) != 0) {
        snprintf(o->failed, sizeof o->failed, "cannot encode scope %s as JSON (a text that is not "
                 "UTF-8, or out of memory)", scope);
        return 1;
    }
    return 0;
}

int cli_scopes(const char *config, int argc, char **argv)
{
    int json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 2 || (argc == 2 && !json))
        return cli_usage("scopes takes only --json%s", "");
    apikey_ctx *ctx = cli_open(config, 0);
    if (!ctx)
        return CLI_EXIT_ERROR;
    scope_out o = {.arr = json ? json_array() : NULL};
    char err[1024];
    apikey_status st = apikey_scopes(ctx, print_scope, &o, err, sizeof err);
    apikey_close(ctx);
    if (st != APIKEY_OK || o.failed[0]) {
        json_decref(o.arr);
        return o.failed[0] ? cli_fail(CLI_EXIT_ERROR, o.failed) : cli_fail(cli_exit_code(st), err);
    }
    return json ? print_json_array(o.arr) : CLI_EXIT_OK;
}
