/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey status: where checks are answered from. With a replica (a fleet),
 * its lag and the last change applied; exit 1 when the replica is not
 * trusted (checks then ask the store of record directly). */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

int cli_status(const char *config, int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage("status takes no argument%s", "");
    char err[512];
    /* A host's open: nothing is connected, so a store of record that is
     * down does not hide the replica's state. */
    apikey_ctx *ctx = apikey_open(config, err, sizeof err);
    if (!ctx)
        return cli_fail(CLI_EXIT_ERROR, err);
    apikey_replica_state r = {.size = sizeof r};
    apikey_status st = apikey_replica(ctx, &r, err, sizeof err);
    apikey_close(ctx);
    if (st == APIKEY_E_INVALID) {
        printf("source: the store of record (no replica configured)\n");
        return CLI_EXIT_OK;
    }
    if (st != APIKEY_OK)
        return cli_fail(CLI_EXIT_ERROR, err);
    printf("source: %s\n", r.trusted ? "the replica" : "the store of record (the replica is not trusted)");
    printf("lag: %" PRId64 ".%03" PRId64 " s (replica_max_lag %" PRId64 " s)\n", r.lag_ms / 1000,
           (r.lag_ms < 0 ? -r.lag_ms : r.lag_ms) % 1000, r.max_lag_ms / 1000);
    printf("last change applied: %" PRId64 "\n", r.last_change);
    return r.trusted ? CLI_EXIT_OK : CLI_EXIT_REFUSED;
}
