/* Shared by the apikey command's files. */
#ifndef APIKEY_CLI_H
#define APIKEY_CLI_H

#include "core.h"

int cli_usage(const char *fmt, const char *arg);
int cli_fail(int rc, const char *msg);
apikey_ctx *cli_open(const char *config, int create);

/* A line holding a key, written past stdio, whose buffer nobody wipes. */
void cli_print_secret(const char *text);
/* One key as a JSON object on its own line; key is NULL except at creation. */
void cli_print_json_record(const apikey_ctx *ctx, const apikey_record *rec, const char *key);

int cli_list(const char *config, int argc, char **argv);
int cli_scopes(const char *config, int argc, char **argv);
int cli_verify(const char *config, int argc, char **argv);
int cli_create_batch(const char *config, const char *file);

#endif
