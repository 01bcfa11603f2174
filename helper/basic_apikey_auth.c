/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * basic_apikey_auth - Squid basic authentication helper (basic_apikey_auth(8)).
 *
 * Reads "[channel ]user password[ address]" lines, URL-escaped as Squid
 * sends them (the address is the first of key_extras, "%>a": a key with an
 * allowlist needs it), and answers OK, ERR or BH (store or configuration
 * unavailable: Squid must not take that for a wrong password). A long-lived
 * host of libapikey: each answer consults the store of record, so a
 * revocation reaches the next one.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "apikey.h"
#include "helper_line.h"
#include "secret_io.h"

static const char usage[] =
    "usage: basic_apikey_auth [--config FILE] --service NAME [--concurrency]\n"
    "Squid basic authentication helper: the user name is the account, the password the key.\n";

static void answer(const char *channel, const char *word, const char *message)
{
    if (channel)
        printf("%s ", channel);
    if (message)
        printf("%s message=\"%s\"\n", word, message);
    else
        printf("%s\n", word);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"service", required_argument, 0, 's'},
        {"concurrency", no_argument, 0, 'C'},  {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},      {0, 0, 0, 0},
    };
    const char *config = NULL, *service = NULL;
    int concurrency = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': service = optarg; break;
        case 'C': concurrency = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("basic_apikey_auth %s\n", APIKEY_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!service || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    char err[1024];
    /* A context that cannot open answers BH to every line rather than dying:
     * Squid restarts dead helpers in a loop. */
    apikey_ctx *ctx = apikey_open(config, err, sizeof err);
    if (!ctx)
        fprintf(stderr, "basic_apikey_auth: %s\n", err);
    /* Lines hold keys: read with read(2) into buffers wiped after each
     * answer, never through stdin's stdio buffer. */
    static secret_reader in;
    static char line[8192];
    secret_reader_init(&in, 0);
    ssize_t got;
    while ((got = secret_read_line(&in, line, sizeof line)) != SECRET_LINE_EOF &&
           got != SECRET_LINE_ERROR) {
        helper_request req;
        int parsed = helper_parse_line(line, got < 0 ? strlen(line) : (size_t)got, concurrency, &req);
        if (got < 0) /* too long for any request: refused on its channel */
            parsed = -1;
        const char *word = "BH", *message;
        if (parsed != 0) {
            message = "malformed request";
        } else if (!ctx) {
            message = "apikey configuration unusable";
        } else {
            apikey_verify_request q = {.size = sizeof q, .service = service, .account = req.user,
                                       .key = req.password, .keylen = req.password_len,
                                       .client_addr = req.client_addr};
            apikey_verdict v = {.size = sizeof v};
            apikey_decision d = apikey_verify_with(ctx, &q, &v);
            /* Why it could not tell goes to Squid's cache.log, never to the
             * client; the library itself says nothing. */
            if (v.error[0])
                fprintf(stderr, "basic_apikey_auth: %s\n", v.error);
            word = d == APIKEY_ALLOWED ? "OK" : d == APIKEY_REFUSED ? "ERR" : "BH";
            message = d == APIKEY_ALLOWED ? NULL : apikey_reason_string(v.result.reason);
        }
        /* Wiped before the answer, not after: once Squid (or anyone
         * watching for it) has the answer, no copy of the line is left. */
        char channel[sizeof req.channel];
        memcpy(channel, req.channel, sizeof channel);
        OPENSSL_cleanse(&req, sizeof req);
        OPENSSL_cleanse(line, sizeof line);
        answer(channel[0] ? channel : NULL, word, message);
    }
    secret_reader_wipe(&in);
    apikey_close(ctx);
    return 0;
}
