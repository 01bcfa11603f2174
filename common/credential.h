/* SPDX-License-Identifier: BSD-2-Clause */
/* One set of rules for the HTTP hosts (the nginx module and apikey-authd):
 * where a request's key is read from, the RFC 6750 challenge of a refusal,
 * the text of a reason and which service names may be echoed. Plain C: a
 * host hands over the header values its server parsed and gets back the key
 * and account, or why there is none, so both hosts answer the same request
 * the same way (ngx_http_apikey_module(8), apikey-authd(8)). */
#ifndef APIKEY_CREDENTIAL_H
#define APIKEY_CREDENTIAL_H

#include <stddef.h>

#include "apikey.h"

/* Compiled into each host, exported by none (nginx builds a module with
 * every symbol visible). */
#pragma GCC visibility push(hidden)

#define CREDENTIAL_KEY_MAX 512      /* a key is about 50 bytes; longer is malformed */
#define CREDENTIAL_ACCOUNT_MAX 256  /* as apikey_result's account, with its NUL */
#define CREDENTIAL_SERVICE_MAX 128  /* as [services] names in apikey.conf(5) */

/* What a request carried of one header: the first line's value (need not
 * be NUL-terminated) and how many lines of that header there were. */
typedef struct credential_header {
    const char *value; /* NULL when count is 0 */
    size_t len;
    size_t count;
} credential_header;

typedef struct credential {
    char key[CREDENTIAL_KEY_MAX];         /* keylen bytes, then a NUL */
    size_t keylen;
    char account[CREDENTIAL_ACCOUNT_MAX]; /* from Basic; "" otherwise */
} credential;

/* Reads the credential of a request: Authorization: Bearer KEY, else the
 * key header (X-API-Key or the host's apikey_header), else Authorization:
 * Basic base64(account:key). Returns
 *   APIKEY_REASON_NONE       out holds the key (and the Basic account);
 *   APIKEY_REASON_MISSING    no credential at all (an Authorization of
 *                            another scheme, such as "Bearer<TAB>KEY", is
 *                            not one);
 *   APIKEY_REASON_MALFORMED  one was given but is not usable: two
 *                            Authorization or two key header lines, an empty
 *                            or over-long key, a key with a blank or a
 *                            control character, Basic that is not strict
 *                            base64 of account:key with an account of
 *                            1-255 characters and no control character.
 * out is wiped first and on every refusal; the host wipes it (below) once
 * the check is done. */
apikey_reason credential_read(const credential_header *authorization, const credential_header *key_header,
                              credential *out);

/* explicit_bzero of what the credential holds: its key and account. */
void credential_wipe(credential *c);

/* The WWW-Authenticate value (RFC 6750 section 3) of an answer, written
 * into out with its NUL: for 401, Bearer realm="SERVICE", plus
 * error="invalid_token" when a credential was given; for 403,
 * error="insufficient_scope", scope="SCOPES" (scopes as configured: blanks
 * and commas separate them; NULL leaves scope out). The realm is "apikey"
 * when service is not a name credential_service_ok takes. Returns the
 * length, or 0 for any other status or when out is too small. */
size_t credential_challenge(char *out, size_t outlen, int status, const char *service, int given,
                            const char *scopes);

/* Whether a service name is one apikey.conf(5) can map: 1 to 128 letters,
 * digits and . _ - @ +. Only such a name is echoed in a header or a log. */
int credential_service_ok(const char *name, size_t len);

/* The phrase for a reason: "missing key" for APIKEY_REASON_MISSING, which
 * a libapikey older than that reason does not know, else what
 * reason_string answers. */
const char *credential_reason_string(const apikey_api *api, apikey_reason reason);

#pragma GCC visibility pop

#endif
