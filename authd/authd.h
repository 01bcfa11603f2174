/* apikey-authd: forward authentication over HTTP (SPEC section 10.2).
 * libapikey is reached only through the table of include/apikey.h. */
#ifndef APIKEY_AUTHD_H
#define APIKEY_AUTHD_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <microhttpd.h>

#include "apikey.h"

#define AUTHD_MAX_PROXIES 64
#define AUTHD_MAX_ADMINS 64
#define AUTHD_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

/* One entry of trusted_proxies: an address with its prefix length. */
typedef struct authd_net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
} authd_net;

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
    authd_net proxies[AUTHD_MAX_PROXIES];
    size_t nproxies;
    int trust_unix; /* "unix" in trusted_proxies: peers on a Unix socket */
    uid_t admin_uids[AUTHD_MAX_ADMINS];
    size_t nadmin_uids;
    gid_t admin_gids[AUTHD_MAX_ADMINS];
    size_t nadmin_gids;
    authd_service *services;
    size_t nservices;
} authd_settings;

/* settings.c */
int authd_settings_load(const char *path, authd_settings *s, char *err, size_t errlen);
int authd_settings_parse(const char *text, size_t len, authd_settings *s, char *err, size_t errlen);
void authd_settings_free(authd_settings *s);
const authd_service *authd_find_service(const authd_settings *s, const char *name);

/* client_addr.c: the client's address (family 0 when unknown): the peer's,
 * or when the peer is a trusted proxy, the nearest untrusted hop of
 * X-Forwarded-For (else X-Real-IP), read through header(arg, name) only
 * then. A malformed header makes it unknown. */
typedef struct authd_ip {
    int family; /* AF_INET, AF_INET6, or 0: unknown */
    unsigned char addr[16];
} authd_ip;
typedef const char *(*authd_header_fn)(void *arg, const char *name);
void authd_client_address(const authd_settings *s, const struct sockaddr *peer, authd_header_fn header,
                          void *arg, authd_ip *out);
/* Numeric text, "" when unknown. */
void authd_ip_text(const authd_ip *a, char *out, size_t outlen);
int authd_parse_net(const char *text, authd_net *out);

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
 * client chose freely. */
enum { AUTHD_REASON_MISSING_KEY = APIKEY_REASON_RATE + 1, AUTHD_NREASONS };
struct authd_counters *authd_counters_for(const char *service);
void authd_count(struct authd_counters *c, int reason);
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

/* admin.c: the management API on the admin socket (SPEC 10.2). A request's
 * state lives from its first call to MHD_OPTION_NOTIFY_COMPLETED. */
#define AUTHD_ADMIN_BODY_MAX 16384
enum MHD_Result authd_serve_admin(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls);
void authd_admin_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe);

/* library.c */
const apikey_api *authd_load_library(char *err, size_t errlen);

#endif
