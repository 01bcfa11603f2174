/* SPDX-License-Identifier: BSD-2-Clause */
/* Shared by the apikey command's files. The command is an adapter over
 * include/apikey.h alone: it parses, calls the library and prints. */
#ifndef APIKEY_CLI_H
#define APIKEY_CLI_H

#include "apikey.h"

/* Exit status (apikey(1)). */
enum { CLI_EXIT_OK = 0, CLI_EXIT_REFUSED = 1, CLI_EXIT_ERROR = 2 };
int cli_exit_code(apikey_status st);

/* One line on standard error; they return CLI_EXIT_ERROR and rc. */
int cli_usage(const char *fmt, const char *arg);
int cli_fail(int rc, const char *msg);
/* A burst, 1 to 1000000: 0, or -1 when it is anything else. */
int cli_parse_burst(const char *text, uint32_t *out);
/* The context of a command: the store opened now (created when missing
 * with create), or NULL after saying why. */
apikey_ctx *cli_open(const char *config, int create);

/* A line holding a key, written past stdio, whose buffer nobody wipes. */
int cli_print_secret(const char *text, const char *key_id); /* CLI_EXIT_OK, or _ERROR having said why */
/* One key as a JSON object on its own line; key is NULL except at creation. */
int cli_print_json_key(const apikey_key_info *info, const char *key);

int cli_list(const char *config, int argc, char **argv);
int cli_scopes(const char *config, int argc, char **argv);
int cli_verify(const char *config, int argc, char **argv);
int cli_create_batch(const char *config, const char *file);
int cli_status(const char *config, int argc, char **argv);

#endif
