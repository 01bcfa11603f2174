/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey create --batch: a file of tab-separated lines, all created or none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define COLUMNS "ACCOUNT<TAB>NAME<TAB>SCOPES<TAB>EXPIRES[<TAB>ALLOW_FROM[<TAB>RATE[<TAB>BURST]]]"
#define NFIELDS 7

/* Split a line into four to seven tab-separated fields, in place; those
 * absent are NULL: any address (ALLOW_FROM), default_rate (RATE), as many
 * as the rate (BURST). */
static int split(char *line, char *f[NFIELDS])
{
    for (int i = 4; i < NFIELDS; i++)
        f[i] = NULL;
    for (int i = 0; i < NFIELDS; i++) {
        f[i] = line;
        char *tab = strchr(line, '\t');
        if (!tab)
            return i >= 3 ? 0 : -1;
        if (i == NFIELDS - 1)
            return -1;
        *tab = '\0';
        line = tab + 1;
    }
    return 0;
}

/* The library names a request "line K" counting requests only: say the
 * file's line instead, which comments and blank lines move. */
static void say_file_line(int rc, const char *err, const size_t *lineno, size_t n)
{
    size_t k = 0;
    int used = 0;
    if (sscanf(err, "line %zu: %n", &k, &used) == 1 && used > 0 && k >= 1 && k <= n)
        fprintf(stderr, "apikey: line %zu: %s\n", lineno[k - 1], err + used);
    else if (n == 1 && rc == CLI_EXIT_REFUSED) /* the library names no line for one request */
        fprintf(stderr, "apikey: line %zu: %s; nothing was created\n", lineno[0], err);
    else
        cli_fail(rc, err);
}

/* The requests read so far; each keeps its line, which its fields point
 * into, and the file's line number. */
typedef struct batch {
    apikey_create_request *reqs;
    char **keep;
    size_t *lineno;
    size_t n, cap;
} batch;

static int grow(batch *b)
{
    b->cap = b->cap ? b->cap * 2 : 64;
    apikey_create_request *r2 = realloc(b->reqs, b->cap * sizeof *r2);
    char **k2 = realloc(b->keep, b->cap * sizeof *k2);
    size_t *l2 = realloc(b->lineno, b->cap * sizeof *l2);
    if (r2)
        b->reqs = r2;
    if (k2)
        b->keep = k2;
    if (l2)
        b->lineno = l2;
    return r2 && k2 && l2 ? 0 : -1;
}

/* Line number at into the batch; the batch takes *line once there is
 * room for it. 0, or the exit code. */
static int add_line(batch *b, char **line, size_t at)
{
    if (b->n == b->cap && grow(b) != 0)
        return cli_fail(CLI_EXIT_ERROR, "out of memory");
    size_t n = b->n;
    b->keep[n] = *line;
    *line = NULL;
    b->lineno[n] = at;
    b->n++;
    char *f[NFIELDS];
    uint32_t burst = 0;
    if (split(b->keep[n], f) != 0 || (f[6] && *f[6] && cli_parse_burst(f[6], &burst) != 0)) {
        fprintf(stderr, "apikey: line %zu: expected " COLUMNS "; nothing was created\n", at);
        return CLI_EXIT_REFUSED;
    }
    b->reqs[n] = (apikey_create_request){.size = sizeof *b->reqs, .account = f[0], .name = f[1],
                                         .scopes = f[2], .expires = f[3], .allow_from = f[4],
                                         .rate = f[5] && *f[5] ? f[5] : NULL, .burst = burst};
    return 0;
}

/* Every line but blank ones and comments. 0, or the exit code. */
static int read_batch(FILE *in, batch *b)
{
    size_t cap = 0, at = 0;
    ssize_t got;
    char *line = NULL;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, in)) >= 0) {
        at++;
        if (got > 0 && line[got - 1] == '\n')
            line[--got] = '\0';
        if (got > 0 && line[got - 1] == '\r')
            line[--got] = '\0';
        if (got == 0 || line[0] == '#')
            continue;
        rc = add_line(b, &line, at);
        cap = line ? cap : 0;
    }
    free(line);
    if (rc == 0 && b->n == 0)
        rc = cli_fail(CLI_EXIT_REFUSED, "the batch holds no lines; nothing was created");
    return rc;
}

/* All of the batch in one call, each key printed once. */
static int create_all(const char *config, const batch *b)
{
    size_t n = b->n;
    apikey_ctx *ctx = cli_open(config, 1);
    if (!ctx)
        return CLI_EXIT_ERROR;
    apikey_issued *out = calloc(n, sizeof *out);
    char err[1024];
    apikey_status st = APIKEY_E_NOMEM;
    if (out) {
        for (size_t i = 0; i < n; i++)
            out[i].size = sizeof *out;
        st = apikey_create_batch(ctx, b->reqs, n, out, err, sizeof err);
    }
    int rc = cli_exit_code(st);
    if (!out)
        cli_fail(rc, "out of memory");
    else if (err[0] && st != APIKEY_OK)
        say_file_line(rc, err, b->lineno, n);
    else if (err[0]) /* a note */
        cli_fail(rc, err);
    for (size_t i = 0; st == APIKEY_OK && i < n && rc == CLI_EXIT_OK; i++)
        rc = cli_print_secret(out[i].key, out[i].info.id);
    if (out)
        apikey_wipe(out, n * sizeof *out);
    apikey_close(ctx);
    free(out);
    return rc;
}

int cli_create_batch(const char *config, const char *file)
{
    FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!in) {
        perror(file);
        return CLI_EXIT_ERROR;
    }
    batch b = {0};
    int rc = read_batch(in, &b);
    if (rc == 0)
        rc = create_all(config, &b);
    for (size_t i = 0; i < b.n; i++)
        free(b.keep[i]);
    free(b.keep);
    free(b.lineno);
    free(b.reqs);
    if (in != stdin)
        fclose(in);
    return rc;
}
