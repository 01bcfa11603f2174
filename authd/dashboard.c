/* SPDX-License-Identifier: BSD-2-Clause */
/* The customers' dashboard (apikey-authd --dashboard ADDR): a page of plain
 * HTML, CSS and JavaScript compiled into the daemon (authd/www/), and the
 * JSON API it calls, behind the provider's sign-in:
 *
 *   GET    /, /app.js, /app.css         the page
 *   GET    /api/session                 {"account","max_keys"}
 *   GET    /api/scopes                  the catalogue, as /v1/scopes
 *   GET    /api/keys                    the account's keys, revoked and expired too
 *   POST   /api/change/keys             {"name","scopes","expires","allow_from"}
 *   DELETE /api/change/keys/ID
 *   POST   /api/change/keys/ID/rotate   {"grace"}
 *
 * Who asks: the account in the header dashboard_account_header names, from a
 * peer of trusted_proxies only; anything else is 401, before any route. The
 * operations are admin.c's, confined to that account. The state-changing
 * ones sit under /api/change/ so that the proxy in front can ask for a
 * second factor there, and need X-Apikey-Dashboard: 1 and an Origin equal
 * to the page's own (CSRF), else 403. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authd.h"

int authd_dashboard_fd = -1;

/* The page's files, in the binary: nothing to install or find at run time,
 * and no path from a request ever reaches the file system. */
#define WWW_FILE(sym, file)                                                                              \
    __asm__(".section .rodata\n.balign 16\n.globl " #sym "\n.hidden " #sym "\n" #sym ":\n.incbin \"" \
            AUTHD_WWW "/" file "\"\n.globl " #sym "_end\n.hidden " #sym "_end\n" #sym "_end:\n.previous\n"); \
    extern const char sym[], sym##_end[]
WWW_FILE(www_index, "index.html");
WWW_FILE(www_js, "app.js");
WWW_FILE(www_css, "app.css");

static const struct www {
    const char *path, *type, *start, *end;
} files[] = {
    {"/", "text/html; charset=utf-8", www_index, www_index_end},
    {"/index.html", "text/html; charset=utf-8", www_index, www_index_end},
    {"/app.js", "text/javascript; charset=utf-8", www_js, www_js_end},
    {"/app.css", "text/css; charset=utf-8", www_css, www_css_end},
};

#define CUSTOM_HEADER "X-Apikey-Dashboard"

enum MHD_Result authd_dashboard_headers(struct MHD_Connection *c, struct MHD_Response *r)
{
    if (authd_dashboard_fd < 0)
        return MHD_YES;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
    const union MHD_DaemonInfo *di = ci ? MHD_get_daemon_info(ci->daemon, MHD_DAEMON_INFO_LISTEN_FD) : NULL;
    if (di && di->listen_fd != authd_dashboard_fd)
        return MHD_YES;
    /* No inline script or style anywhere in the page: 'self' is all. */
    static const char *const h[] = {
        "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        "X-Content-Type-Options", "nosniff",
        "Referrer-Policy", "no-referrer",
        "Cache-Control", "no-store",
        "X-Frame-Options", "DENY",
        "Cross-Origin-Resource-Policy", "same-origin",
    };
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i += 2)
        if (MHD_add_response_header(r, h[i], h[i + 1]) != MHD_YES)
            return MHD_NO;
    return MHD_YES;
}

typedef struct dash_request {
    authd_body in; /* first: authd_body_completed frees it */
} dash_request;

typedef struct header_count {
    const char *name;
    int n;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    header_count *h = cls;
    (void)kind, (void)value;
    if (strcasecmp(key, h->name) == 0)
        h->n++;
    return MHD_YES;
}

/* The signed-in account: the one value of the configured header, sent by a
 * trusted proxy; NULL otherwise. Two values are refused, not chosen from. */
static const char *signed_in(struct MHD_Connection *c, const authd_settings *s)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!s->dashboard_header[0] || !ci || !authd_peer_trusted(s, ci->client_addr))
        return NULL;
    header_count h = {s->dashboard_header, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &h);
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, s->dashboard_header);
    if (h.n != 1 || !a || !*a || strlen(a) >= APIKEY_ACCOUNT_MAX || !authd_utf8_valid(a))
        return NULL;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return NULL;
    return a;
}

/* The request comes from the page itself: the page's custom header (which
 * a cross-origin page cannot send without a preflight this server never
 * allows), and for a change an Origin equal to dashboard_origin, else to
 * the Host the proxy forwarded, with either scheme (TLS ends at the proxy). */
static int from_page(struct MHD_Connection *c, const authd_settings *s, int change)
{
    const char *mark = MHD_lookup_connection_value(c, MHD_HEADER_KIND, CUSTOM_HEADER);
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (!mark || strcmp(mark, "1") != 0 || (site && strcmp(site, "same-origin") != 0))
        return 0;
    if (!change)
        return 1;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!origin)
        return 0;
    if (s->dashboard_origin[0])
        return strcmp(origin, s->dashboard_origin) == 0;
    const char *o = strncmp(origin, "https://", 8) == 0 ? origin + 8
                    : strncmp(origin, "http://", 7) == 0 ? origin + 7
                                                         : NULL;
    return o && host && *host && strcasecmp(o, host) == 0;
}

static enum MHD_Result page_file(struct MHD_Connection *c, const char *url, const char *method)
{
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (strcmp(url, files[i].path) != 0)
            continue;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return authd_not_allowed(c, "GET, HEAD");
        const char *headers[] = {MHD_HTTP_HEADER_CONTENT_TYPE, files[i].type, NULL};
        return authd_answer(c, 200, headers, files[i].start, (size_t)(files[i].end - files[i].start),
                            MHD_RESPMEM_PERSISTENT);
    }
    return authd_json_error(c, 404, "not found");
}

/* /api/change/keys[/ID[/rotate]] */
static enum MHD_Result change(struct MHD_Connection *c, authd_generation *g, const dash_request *rq,
                              const char *rest, const char *method, const char *account)
{
    int is_post = strcmp(method, "POST") == 0;
    if (strcmp(rest, "keys") == 0)
        return is_post ? authd_keys_create(c, g, &rq->in, account) : authd_not_allowed(c, "POST");
    if (strncmp(rest, "keys/", 5) != 0)
        return authd_json_error(c, 404, "not found");
    char id[APIKEY_KEY_ID_MAX + 8];
    rest += 5;
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof id)
        return authd_json_error(c, 404, "not found");
    memcpy(id, rest, n);
    id[n] = '\0';
    rest += n;
    if (strcmp(rest, "/rotate") == 0)
        return is_post ? authd_keys_rotate(c, g, &rq->in, id, account) : authd_not_allowed(c, "POST");
    if (*rest)
        return authd_json_error(c, 404, "not found");
    if (strcmp(method, "DELETE") != 0)
        return authd_not_allowed(c, "DELETE");
    return rq->in.len ? authd_json_error(c, 400, "this request takes no body") : authd_keys_revoke(c, g, id, account);
}

static enum MHD_Result api(struct MHD_Connection *c, authd_generation *g, const dash_request *rq,
                           const char *url, const char *method, const char *account)
{
    int is_change = strncmp(url, "/api/change/", 12) == 0;
    if (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "account"))
        return authd_json_error(c, 400, "a request cannot name an account: it is the signed-in one");
    if (MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0)
        return authd_json_error(c, 400, "this request takes no parameter");
    if (!from_page(c, &g->settings, is_change || strcmp(method, "GET") != 0))
        return authd_json_error(c, 403, "refused: not sent by the dashboard's own page");
    if (is_change)
        return change(c, g, rq, url + 12, method, account);
    if (strcmp(method, "GET") != 0)
        return authd_not_allowed(c, "GET");
    if (rq->in.len)
        return authd_json_error(c, 400, "a GET takes no body");
    if (strcmp(url, "/api/keys") == 0)
        return authd_keys_list(c, g, account, 1);
    if (strcmp(url, "/api/scopes") == 0)
        return authd_keys_scopes(c, g);
    if (strcmp(url, "/api/session") == 0) {
        json_t *o = json_pack("{s:s, s:i}", "account", account, "max_keys", g->settings.max_keys);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!text)
            return authd_json_error(c, 503, "out of memory");
        const char *headers[] = {MHD_HTTP_HEADER_CONTENT_TYPE, "application/json", NULL};
        return authd_answer(c, 200, headers, text, strlen(text), MHD_RESPMEM_MUST_FREE);
    }
    return authd_json_error(c, 404, "not found");
}

enum MHD_Result authd_serve_dashboard(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version, const char *upload,
                                      size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version;
    dash_request *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size)
        return authd_body_add(&rq->in, upload, upload_size);
    authd_generation *g = authd_acquire();
    const char *account = signed_in(c, &g->settings);
    enum MHD_Result rc;
    if (!account)
        rc = authd_json_error(c, 401, "not signed in");
    else if (rq->in.too_big)
        rc = authd_json_error(c, 413, "the body is larger than 16384 bytes");
    else if (strncmp(url, "/api/", 5) == 0)
        rc = api(c, g, rq, url, method, account);
    else
        rc = page_file(c, url, method);
    if (authd_verbose)
        fprintf(stderr, "apikey-authd: dashboard: account=%s %s %s\n", account ? account : "-", method, url);
    authd_release(g);
    return rc;
}
