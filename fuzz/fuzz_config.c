/* SPDX-License-Identifier: BSD-2-Clause */
/* libFuzzer: the configuration parser on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    config_file cfg;
    char err[512];
    if (config_parse(text, size, "fuzz.conf", &cfg, err, sizeof err) == 0) {
        /* An accepted configuration is complete and consistent. */
        if (!cfg.store || !cfg.default_expiry || cfg.nscopes == 0 || !keycodec_prefix_valid(cfg.key_prefix))
            abort();
        for (size_t i = 0; i < cfg.nservices; i++) {
            char norm[APIKEY_SCOPES_MAX], why[256];
            if (config_normalise_scopes(&cfg, cfg.services[i].scopes, norm, sizeof norm, why, sizeof why))
                abort();
        }
        config_free(&cfg);
    } else if (!err[0]) {
        abort(); /* every refusal says why */
    }
    free(text);
    return 0;
}
