/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey verify: a key on standard input, checked as a host would. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "secret_io.h"

#define KEY_READ_MAX 4096

int cli_verify(const char *config, int argc, char **argv)
{
    static const struct option opts[] = {
        {"service", required_argument, 0, 's'}, {"account", required_argument, 0, 'a'}, {0, 0, 0, 0},
    };
    const char *service = NULL, *account = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            service = optarg;
        else if (c == 'a')
            account = optarg;
        else
            return cli_usage("verify: bad option%s", "");
    }
    if (!service || optind != argc)
        return cli_usage("verify needs --service SERVICE, and reads the key on standard input%s", "");
    apikey_ctx *ctx = cli_open(config, 0);
    if (!ctx)
        return CLI_EXIT_ERROR;
    /* read(2), not stdio: stdin's buffer would keep a copy of the key. */
    char key[KEY_READ_MAX + 2];
    ssize_t got = secret_read_all(0, key, sizeof key);
    if (got < 0) {
        apikey_close(ctx);
        return cli_fail(CLI_EXIT_ERROR, "cannot read the key from standard input");
    }
    size_t len = (size_t)got;
    if (len > KEY_READ_MAX)
        len = KEY_READ_MAX + 1; /* longer than any key: refused as malformed */
    else if (len > 0 && key[len - 1] == '\n')
        len -= 1 + (len > 1 && key[len - 2] == '\r');
    apikey_verify_request q = {.size = sizeof q, .service = service, .account = account, .key = key,
                               .keylen = len};
    apikey_verdict v = {.size = sizeof v};
    apikey_decision d = apikey_verify_with(ctx, &q, &v);
    apikey_wipe(key, sizeof key);
    const apikey_result res = v.result;
    int rc = d == APIKEY_ALLOWED ? CLI_EXIT_OK : d == APIKEY_REFUSED ? CLI_EXIT_REFUSED : CLI_EXIT_ERROR;
    /* One line; the store's own words, when it gave any, end it. */
    const char *sep = v.error[0] ? ": " : "";
    if (d == APIKEY_ALLOWED)
        fprintf(stderr, "apikey: key %s of account %s may use %s%s%s\n", res.key_id, res.account,
                service, sep, v.error);
    else
        fprintf(stderr, "apikey: %s: %s%s%s%s%s\n", d == APIKEY_REFUSED ? "refused" : "cannot tell",
                apikey_reason_string(res.reason), res.key_id[0] ? " " : "", res.key_id, sep, v.error);
    apikey_close(ctx);
    return rc;
}
