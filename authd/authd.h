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
    apikey_cidr proxies[AUTHD_MAX_PROXIES];
    size_t nproxies;
    int trust_unix; /* "unix" in trusted_proxies: peers on a Unix socket */
    const char *forwarded_header; /* "X-Forwarded-For" or "X-Real-IP" */
    uid_t admin_uids[AUTHD_MAX_ADMINS];
    size_t nadmin_uids;
    gid_t admin_gids[AUTHD_MAX_ADMINS];
    size_t nadmin_gids;
    authd_service *services;
    size_t nservices;
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
typedef apikey_addr authd_ip;
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
/* The Prometheus text, malloc'd; NULL when out of memory. */
char *authd_metrics_text(size_t *len);
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
void authd_admin_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe);

/* library.c */
const apikey_api *authd_load_library(char *err, size_t errlen);

#endif
