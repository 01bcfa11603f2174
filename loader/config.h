/* SPDX-License-Identifier: BSD-2-Clause */
/* The configuration file (apikey.conf(5)): an INI file, parsed strictly. */
#ifndef APIKEY_CONFIG_H
#define APIKEY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "keycodec.h"
#include "ratelimit.h"

#define APIKEY_RATE_TABLE "/run/apikey/rate"

typedef struct config_scope {
    char *name;
    char *description;
} config_scope;

typedef struct config_service {
    char *name;
    char *scopes; /* space-separated, each in the catalogue; may be "" */
} config_service;

/* One line of a host's own section ([authd]): the library reads the file,
 * the host judges its names and values. */
typedef struct config_setting {
    const char *section; /* "authd": static, not freed */
    char *name;
    char *value;
} config_setting;

typedef struct config_file {
    char *store;                  /* "json:/path", "sqlite:/path", "pgsql:conninfo" */
    char key_prefix[APIKEY_PREFIX_MAX + 1];
    int max_keys_per_account;
    char *default_expiry;         /* a duration text, as for --expires */
    char *pepper_file;            /* NULL: plain SHA-256 */
    int64_t last_used_granularity; /* seconds between last-used writes per key */
    char *replica;                /* NULL, or the folder apikey-syncd keeps (replica.h) */
    int64_t replica_max_lag;      /* seconds a replica is trusted after its last contact */
    rate_spec default_rate;       /* of keys created without one; limit 0: none */
    char *rate_table;             /* the shared GCRA table (ratelimit.h) */
    uint32_t rate_slots;          /* of a table this process makes; 0: RATE_SLOTS_DEFAULT */
    int rate_unavailable_allow;   /* a table that cannot be used: check without limits */
    config_scope *scopes;
    size_t nscopes;
    config_service *services;
    size_t nservices;
    config_setting *settings; /* the host sections' lines, in file order */
    size_t nsettings;
} config_file;

/* Parse text (the file's contents; name is for messages). Returns 0, or -1
 * with one line in err naming the file and line. */
int config_parse(const char *text, size_t len, const char *name, config_file *cfg, char *err,
                 size_t errlen);
/* Read path safely (owner and mode checked, no symlink) and parse it. */
int config_load(const char *path, config_file *cfg, char *err, size_t errlen);
void config_free(config_file *cfg);

const config_scope *config_find_scope(const config_file *cfg, const char *name);
const config_service *config_find_service(const config_file *cfg, const char *name);

/* Normalise a scope list written "a,b" or "a b" or "*" into "a b" checked
 * against the catalogue. Returns 0, or -1 with err naming the bad scope. */
int config_normalise_scopes(const config_file *cfg, const char *in, char *out, size_t outlen,
                            char *err, size_t errlen);

#endif
