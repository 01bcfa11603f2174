/* SPDX-License-Identifier: BSD-2-Clause */
/* A key's record as `apikey list --json` prints it (apikey(1)), and as
 * apikey-authd's management API answers it, apikey-authd(8): one definition for
 * both. It uses Jansson and include/apikey.h's types only, never a library
 * call, so apikey-authd (which reaches libapikey through its table) links
 * it too. */
#ifndef APIKEY_KEY_JSON_H
#define APIKEY_KEY_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "apikey.h"

/* "2026-11-24T15:09:22Z" ("?" when it cannot be written). */
void key_json_time(int64_t t, char *buf, size_t len);
/* A rate period in the words of the JSON ("1s", "1min", "1h"); NULL for
 * any other. */
const char *key_json_per(uint32_t period);
/* The record; state is apikey_state_string(k->state). NULL when it cannot
 * be encoded: a text that is not UTF-8 (a store written before libapikey
 * refused them), or out of memory. */
json_t *key_json(const apikey_key_info *k, const char *state);

#endif
