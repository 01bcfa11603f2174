/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * apikey - the admin command (apikey(1)). A thin adapter: it parses
 * arguments, calls libapikey's admin operations and prints what they return.
 * Exit codes: 0 success, 1 refused, 2 usage, configuration or store error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
    "usage: apikey [--config FILE] COMMAND ...\n"
    "  create ACCOUNT --name NAME [--scopes S1,S2,...|'*'] [--expires 30d|90d|6m|1y|never|YYYY-MM-DD]\n"
    "         [--allow-from CIDR[,CIDR...]] [--rate N/s|N/min|N/h|none [--burst N]] [--json]\n"
    "  create --batch FILE|-      lines ACCOUNT<TAB>NAME<TAB>SCOPES<TAB>EXPIRES[<TAB>ALLOW_FROM\n"
    "                             [<TAB>RATE[<TAB>BURST]]]\n"
    "  list [ACCOUNT] [--all | --expiring DURATION] [--json]\n"
    "  revoke ID\n"
    "  rotate ID [--grace DURATION] [--json]\n"
    "  verify --service SERVICE [--account ACCOUNT]   (the key on standard input)\n"
    "  scopes [--json]\n"
    "  copy --to STORE\n"
    "  status                     the replica's lag and last change (a fleet)\n"
    "FILE also comes from $APIKEY_CONFIG; the default is " APIKEY_DEFAULT_CONFIG ".\n"
    "Exit status: 0 success, 1 refused, 2 usage, configuration or store error.\n";

int cli_exit_code(apikey_status st)
{
    switch (st) {
    case APIKEY_OK: return CLI_EXIT_OK;
    case APIKEY_E_INVALID:
    case APIKEY_E_NOT_FOUND:
    case APIKEY_E_LIMIT:
    case APIKEY_E_CONFLICT: return CLI_EXIT_REFUSED;
    case APIKEY_E_UNAVAILABLE:
    case APIKEY_E_NOMEM:
    case APIKEY_E_INTERNAL:
    case APIKEY_E_ARGUMENT: break;
    }
    return CLI_EXIT_ERROR;
}

int cli_usage(const char *fmt, const char *arg)
{
    fputs("apikey: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(apikey --help lists the commands)\n", stderr);
    return CLI_EXIT_ERROR;
}

int cli_fail(int rc, const char *msg)
{
    fprintf(stderr, "apikey: %s\n", msg);
    return rc;
}

int cli_parse_burst(const char *text, uint32_t *out)
{
    char *end;
    unsigned long n = text[0] >= '1' && text[0] <= '9' ? strtoul(text, &end, 10) : 0;
    if (n < 1 || n > 1000000 || *end)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

apikey_ctx *cli_open(const char *config, int create)
{
    char err[1024];
    apikey_ctx *ctx = apikey_open_with(config, create ? APIKEY_OPEN_CREATE : APIKEY_OPEN_CONNECT,
                                       err, sizeof err);
    if (!ctx)
        cli_fail(CLI_EXIT_ERROR, err);
    return ctx;
}


/* What a call ends with: err says why it failed, or is a note on success
 * (a key already revoked, a store's warning). */
static int finish(apikey_status st, const char *err)
{
    return err[0] ? cli_fail(cli_exit_code(st), err) : cli_exit_code(st);
}

/* The end of a create or a rotate: the key shown once and wiped. */
static int show_issued(apikey_ctx *ctx, apikey_status st, apikey_issued *k, int json,
                       const char *err)
{
    int shown = st != APIKEY_OK ? CLI_EXIT_OK
                : json          ? cli_print_json_key(&k->info, k->key)
                                : cli_print_secret(k->key, k->info.id);
    apikey_wipe(k, sizeof *k);
    apikey_close(ctx);
    int rc = finish(st, err);
    return st == APIKEY_OK ? shown : rc;
}

static int cmd_create_one(const char *config, int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, 0, 'n'},    {"scopes", required_argument, 0, 's'},
        {"expires", required_argument, 0, 'e'}, {"json", no_argument, 0, 'j'},
        {"batch", required_argument, 0, 'b'},   {"allow-from", required_argument, 0, 'f'},
        {"rate", required_argument, 0, 'r'},    {"burst", required_argument, 0, 'u'},
        {0, 0, 0, 0},
    };
    apikey_create_request req = {.size = sizeof req};
    int json = 0, c;
    const char *batch = NULL;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': req.name = optarg; break;
        case 's': req.scopes = optarg; break;
        case 'e': req.expires = optarg; break;
        case 'j': json = 1; break;
        case 'b': batch = optarg; break;
        case 'f':
            /* A second one would replace the first, or widen it: neither is said. */
            if (req.allow_from)
                return cli_usage("create takes --allow-from once, its entries separated by commas%s", "");
            req.allow_from = optarg;
            break;
        case 'r': req.rate = optarg; break;
        case 'u':
            if (cli_parse_burst(optarg, &req.burst) != 0)
                return cli_usage("--burst '%s' must be a number from 1 to 1000000", optarg);
            break;
        default: return cli_usage("create: bad option%s", "");
        }
    }
    if (batch) {
        if (optind != argc || req.name || req.scopes || req.expires || req.allow_from || req.rate ||
            req.burst)
            return cli_usage("create --batch takes only the file%s", "");
        return cli_create_batch(config, batch);
    }
    if (optind + 1 != argc)
        return cli_usage("create needs one ACCOUNT%s", "");
    if (!req.name)
        return cli_usage("create needs --name NAME%s", "");
    /* "" is "any address" to the library; given here, it is most likely an
     * unset variable ("--allow-from $OFFICE"): refused, not widened. */
    if (req.allow_from && !req.allow_from[strspn(req.allow_from, " ")])
        return cli_fail(CLI_EXIT_REFUSED, "--allow-from holds no address; leave it out to allow any address");
    req.account = argv[optind];
    apikey_ctx *ctx = cli_open(config, 1);
    if (!ctx)
        return CLI_EXIT_ERROR;
    apikey_issued out = {.size = sizeof out};
    char err[1024];
    apikey_status st = apikey_create(ctx, &req, &out, err, sizeof err);
    return show_issued(ctx, st, &out, json, err);
}

static int cmd_revoke(const char *config, int argc, char **argv)
{
    if (argc != 2)
        return cli_usage("revoke needs one key ID such as ak_20fe9a1c%s", "");
    apikey_ctx *ctx = cli_open(config, 0);
    if (!ctx)
        return CLI_EXIT_ERROR;
    char err[1024];
    apikey_status st = apikey_revoke(ctx, argv[1], err, sizeof err);
    apikey_close(ctx);
    return finish(st, err);
}

static int cmd_rotate(const char *config, int argc, char **argv)
{
    static const struct option opts[] = {
        {"grace", required_argument, 0, 'g'}, {"json", no_argument, 0, 'j'}, {0, 0, 0, 0},
    };
    const char *grace = NULL; /* the library reads it: a bad one is refused there */
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'g')
            grace = optarg;
        else
            return cli_usage("rotate: bad option%s", "");
    }
    if (optind + 1 != argc)
        return cli_usage("rotate needs one key ID%s", "");
    apikey_ctx *ctx = cli_open(config, 0);
    if (!ctx)
        return CLI_EXIT_ERROR;
    apikey_issued out = {.size = sizeof out};
    char err[1024];
    apikey_status st = apikey_rotate(ctx, argv[optind], grace, &out, err, sizeof err);
    return show_issued(ctx, st, &out, json, err);
}

static int cmd_copy(const char *config, int argc, char **argv)
{
    static const struct option opts[] = {{"to", required_argument, 0, 't'}, {0, 0, 0, 0}};
    const char *to = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 't')
            return cli_usage("copy: bad option%s", "");
        to = optarg;
    }
    if (!to || optind != argc)
        return cli_usage("copy needs --to STORE (json:PATH, sqlite:PATH or pgsql:CONNINFO)%s", "");
    apikey_ctx *ctx = cli_open(config, 0);
    if (!ctx)
        return CLI_EXIT_ERROR;
    char err[1024];
    size_t copied = 0;
    apikey_status st = apikey_copy(ctx, to, &copied, err, sizeof err);
    apikey_close(ctx);
    if (st == APIKEY_OK)
        fprintf(stderr, "apikey: copied %zu key%s\n", copied, copied == 1 ? "" : "s");
    return finish(st, err);
}

typedef int (*command_fn)(const char *config, int argc, char **argv);

static const struct command {
    const char *name;
    command_fn run;
} commands[] = {
    {"create", cmd_create_one}, {"list", cli_list},     {"revoke", cmd_revoke},
    {"rotate", cmd_rotate},     {"verify", cli_verify}, {"scopes", cli_scopes},
    {"copy", cmd_copy},         {"status", cli_status},
};

int main(int argc, char **argv)
{
    const char *config = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("apikey %s\n", APIKEY_VERSION);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
        else
            return cli_usage("unknown option %s", argv[i]);
    }
    if (i >= argc)
        return cli_usage("no command given%s", "");
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(argv[i], commands[c].name) == 0) {
            for (int a = i + 1; a < argc; a++)
                if (strcmp(argv[a], "--help") == 0) {
                    fputs(usage_text, stdout);
                    return CLI_EXIT_OK;
                }
            optind = 1;
            return commands[c].run(config, argc - i, argv + i);
        }
    }
    return cli_usage("unknown command '%s'", argv[i]);
}
