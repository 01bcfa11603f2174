/* SPDX-License-Identifier: BSD-2-Clause */
/* apikey-authd: forward authentication over HTTP (apikey-authd(8)).
 * libapikey is reached only through the table of include/apikey.h. */
#ifndef APIKEY_AUTHD_H
#define APIKEY_AUTHD_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <microhttpd.h>

#include "apikey.h"
#include "cidr.h"

#define AUTHD_MAX_PROXIES 64
#define AUTHD_MAX_ADMINS 64
#define AUTHD_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

/* A service of [services] and what it requires, for the 403's scope="..."
 * and for the metrics' bounded set of labels. */
typedef struct authd_service {
    char *name;
    char *scopes; /* space-separated as configured, may be "" */
    struct authd_counters *counters;
} authd_service;

/* What the daemon reads from apikey.conf itself: the [authd] section, and
 * the names and scopes of [services]. */
typedef struct authd_settings {
    /* trusted_proxies, read by the allowlists' rules (common/cidr.h) */
    cidr_range proxies[AUTHD_MAX_PROXIES];
    size_t nproxies;
    int trust_unix; /* "unix" in trusted_proxies: peers on a Unix socket */
    const char *forwarded_header; /* "X-Forwarded-For" or "X-Real-IP" */
    uid_t admin_uids[AUTHD_MAX_ADMINS];
    size_t nadmin_uids;
    gid_t admin_gids[AUTHD_MAX_ADMINS];
    size_t nadmin_gids;
    authd_service *services;
    size_t nservices;
    /* The dashboard (dashboard.c): the header naming the signed-in
     * account ("" when unset: no request is let in), the page's origin
     * when configured, and max_keys_per_account of the library's section. */
    char dashboard_header[64];
    char dashboard_origin[256];
    int max_keys;
} authd_settings;

/* settings.c */
/* The settings of the configuration ctx was opened from: 0, or -1 with err. */
int authd_settings_read(const apikey_api *api, apikey_ctx *ctx, authd_settings *s, char *err,
                        size_t errlen);
/* The pieces of it: defaults, one line of [authd] (refused: -1 with err
 * naming it), one service with its scopes (-1: out of memory). */
void authd_settings_init(authd_settings *s);
int authd_settings_add(authd_settings *s, const char *name, const char *value, char *err, size_t errlen);
int authd_settings_service(authd_settings *s, const char *name, const char *scopes);
void authd_settings_free(authd_settings *s);
const authd_service *authd_find_service(const authd_settings *s, const char *name);

/* client_addr.c: the client's address (family 0 when unknown): the peer's,
 * or when the peer is a trusted proxy, the nearest untrusted hop of the one
 * header forwarded_header names, read through header() only then. A
 * malformed header makes it unknown. */
typedef cidr_addr authd_ip;
/* Every line of the request's header name, joined in order with ", " into
 * out, as one list (RFC 9110, 5.3): 1, or 0 when there is none, or -1 when
 * they do not fit. */
typedef int (*authd_header_fn)(void *arg, const char *name, char *out, size_t outlen);
void authd_client_address(const authd_settings *s, const struct sockaddr *peer, authd_header_fn header,
                          void *arg, authd_ip *out);
/* Numeric text, "" when unknown. */
void authd_ip_text(const authd_ip *a, char *out, size_t outlen);

/* A configuration in use: the library context and the settings, swapped
 * whole on reload and closed once the last request holding it is done. */
typedef struct authd_generation {
    apikey_ctx *ctx;
    authd_settings settings;
    int refs;
} authd_generation;

/* main.c */
extern const apikey_api *authd_api;
extern int authd_verbose;
authd_generation *authd_acquire(void);
void authd_release(authd_generation *g);

/* metrics.c: decisions counted by service and reason, never by anything a
 * client chose freely; a reason newer than this daemon counts as "other". */
struct authd_counters *authd_counters_for(const char *service);
void authd_count(struct authd_counters *c, apikey_reason reason);
struct authd_counters *authd_counters_unmapped(void);
/* The Prometheus text, malloc'd; NULL when out of memory. replica is what
 * apikey_replica answered for the configuration in use: APIKEY_E_INVALID
 * (no replica, or a library older than 1.5) adds nothing, APIKEY_OK adds
 * r's lag, anything else says only that checks do not trust it. */
char *authd_metrics_text(apikey_status replica, const apikey_replica_state *r, size_t *len);
void authd_count_reload(int ok);

/* http.c: the listen address (/verify, /metrics). */
enum MHD_Result authd_serve_public(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls);
/* An answer with optional headers (name, value pairs ending with NULL) and
 * body; /verify answers have none, so nginx keeps its connection. */
enum MHD_Result authd_answer(struct MHD_Connection *c, unsigned status, const char *const *headers,
                             const char *body, size_t len, enum MHD_ResponseMemoryMode mode);
/* The same for a response made by the caller (NULL: out of memory),
 * destroyed here. */
enum MHD_Result authd_queue(struct MHD_Connection *c, unsigned status, const char *const *headers,
                            struct MHD_Response *r);

/* admin.c: the management API on the admin socket, apikey-authd(8). A request's
 * state lives from its first call to MHD_OPTION_NOTIFY_COMPLETED. */
#define AUTHD_ADMIN_BODY_MAX 16384
enum MHD_Result authd_serve_admin(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls);
/* Whether the peer on fd is an admin: 1, 0, or -1 without credentials. */
int authd_admin_peer(int fd, struct ucred *peer);

/* The body of a request, read whole before the answer; beyond
 * AUTHD_ADMIN_BODY_MAX it is dropped and too_big set (answered 413). */
typedef struct authd_body {
    char *body;
    size_t len;
    int too_big;
} authd_body;
enum MHD_Result authd_body_add(authd_body *b, const char *upload, size_t *upload_size);
/* libmicrohttpd's completion callback of the admin socket and the
 * dashboard, whose per-request state (*con_cls) begins with its
 * authd_body: the state and its body freed. */
void authd_body_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
/* Whether s is UTF-8 (RFC 3629), as Jansson takes it. */
int authd_utf8_valid(const char *s);
/* {"error": error} */
enum MHD_Result authd_json_error(struct MHD_Connection *c, unsigned status, const char *error);
enum MHD_Result authd_not_allowed(struct MHD_Connection *c, const char *allow);
/* The operations on keys, for the admin socket and the dashboard. With
 * account not NULL they see and change only that account's keys: another
 * account's key id is 404, and a body naming an account is 400. */
enum MHD_Result authd_keys_scopes(struct MHD_Connection *c, authd_generation *g);
enum MHD_Result authd_keys_list(struct MHD_Connection *c, authd_generation *g, const char *account, int all);
enum MHD_Result authd_keys_create(struct MHD_Connection *c, authd_generation *g, const authd_body *b,
                                  const char *account);
enum MHD_Result authd_keys_revoke(struct MHD_Connection *c, authd_generation *g, const char *id,
                                  const char *account);
enum MHD_Result authd_keys_rotate(struct MHD_Connection *c, authd_generation *g, const authd_body *b,
                                  const char *id, const char *account);

/* dashboard.c: the customers' page and its JSON API (apikey-authd(8),
 * --dashboard), behind the provider's sign-in. */
extern int authd_dashboard_fd; /* its listening socket, set before it starts; -1: none */
enum MHD_Result authd_serve_dashboard(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version, const char *upload,
                                      size_t *upload_size, void **con_cls);
/* [authd] dashboard_* settings; -1 after writing err. */
int authd_dashboard_setting(authd_settings *s, const char *key, const char *value, char *err, size_t errlen);
/* The headers every answer of the dashboard carries, added to r. */
enum MHD_Result authd_dashboard_headers(struct MHD_Connection *c, struct MHD_Response *r);
/* Whether the peer is listed in trusted_proxies (client_addr.c). */
int authd_peer_trusted(const authd_settings *s, const struct sockaddr *peer);

/* library.c */
const apikey_api *authd_load_library(char *err, size_t errlen);

#endif
