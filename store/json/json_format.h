/* SPDX-License-Identifier: BSD-2-Clause */
/* The JSON store's file format (doc/STORES.md): a whole file parsed into,
 * or written from, the in-memory table. */
#ifndef APIKEY_JSON_FORMAT_H
#define APIKEY_JSON_FORMAT_H

#include "json_table.h"

#define JSON_STORE_FORMAT "apikey-store"
/* Written in version 3 (each key has "allow_from" and "rate"); versions 1
 * and 2, of previous releases, are read too, and upgraded by the next
 * write. */
#define JSON_STORE_VERSION 3
#define JSON_STORE_OLDEST 1

/* Parse a whole store file. Returns OK, or UNAVAILABLE/NOMEM with why. */
int json_db_load(json_db *db, int fd, char *why, size_t whylen);
/* Write the whole file to fd. Returns 0, -1 with errno, or -2 when a text
 * is not UTF-8 (JSON cannot hold it; what was written is not a store). */
int json_db_write(const json_db *db, int fd);

#endif
