/* The listen address (ANY /verify/SERVICE, GET /metrics); the admin
 * socket is admin.c. Everything arrives through libmicrohttpd; nothing here
 * parses HTTP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "authd.h"

enum MHD_Result authd_answer(struct MHD_Connection *c, unsigned status, const char *const *headers,
                             const char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    return authd_queue(c, status, headers, MHD_create_response_from_buffer(len, (void *)(body ? body : ""), mode));
}

enum MHD_Result authd_queue(struct MHD_Connection *c, unsigned status, const char *const *headers,
                            struct MHD_Response *r)
{
    if (!r)
        return MHD_NO;
    enum MHD_Result ok = MHD_YES;
    for (; ok == MHD_YES && headers && headers[0]; headers += 2)
        if (headers[1])
            ok = MHD_add_response_header(r, headers[0], headers[1]);
    if (ok == MHD_YES)
        ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* The value after "Scheme " when header starts with that scheme. */
static const char *after_scheme(const char *header, const char *scheme)
{
    size_t n = strlen(scheme);
    if (!header || strncasecmp(header, scheme, n) != 0 || (header[n] != ' ' && header[n] != '\t'))
        return NULL;
    header += n;
    while (*header == ' ' || *header == '\t')
        header++;
    return header;
}

static size_t token_len(const char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Standard base64 (RFC 7617's user-pass) into out; -1 when malformed or
 * too long. */
static int base64_decode(const char *in, size_t len, char *out, size_t outlen, size_t *got)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0, i = 0;
    for (; i < len && in[i] != '='; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    for (; i < len; i++)
        if (in[i] != '=')
            return -1;
    out[o] = '\0';
    *got = o;
    return 0;
}

/* Service names of [services] hold only these; anything else is unmapped
 * and is not echoed into a header. */
static int plain_name(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@+");
    return n > 0 && n <= 128 && s[n] == '\0';
}

static void wipe(void *p, size_t n)
{
    if (p)
        explicit_bzero(p, n);
}

static const char *request_header(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result verify(struct MHD_Connection *c, const char *service)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *xkey = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    const char *key = after_scheme(auth, "Bearer"), *account = NULL;
    char basic[1024];
    size_t keylen = 0;
    if (key)
        keylen = token_len(key);
    else if (xkey)
        key = xkey, keylen = token_len(xkey);
    else if ((key = after_scheme(auth, "Basic"))) {
        size_t got;
        char *colon;
        if (base64_decode(key, token_len(key), basic, sizeof basic, &got) == 0 &&
            (colon = memchr(basic, ':', got))) {
            *colon = '\0';
            account = basic;
            key = colon + 1, keylen = got - (size_t)(colon + 1 - basic);
        } else {
            key = "", keylen = 0; /* given, but not a key: malformed */
        }
    }

    authd_generation *g = authd_acquire();
    /* Where the request comes from, for allowlists (SPEC 11): unknown
     * (NULL) when a Unix-socket peer is not trusted or a trusted one
     * forwarded nothing usable; a key with a list is then refused. */
    authd_ip from;
    char client[AUTHD_ADDR_MAX];
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    authd_client_address(&g->settings, ci ? ci->client_addr : NULL, request_header, c, &from);
    authd_ip_text(&from, client, sizeof client);

    /* The sized call also says why a check could not tell (the store's
     * own words), which only this adapter logs. A library older than 1.4
     * answers a request with an address REASON_ARGUMENT (503), and one
     * older than 1.2 has no call that takes it: the address is never
     * silently dropped, so allowlists never silently stop. */
    apikey_verdict v = {.size = sizeof v};
    int given = key != NULL;
    if (APIKEY_API_HAS(authd_api, verify_with)) {
        apikey_verify_request rq = {.size = sizeof rq, .service = service, .account = account,
                                    .key = key, .keylen = keylen, .client_addr = client[0] ? client : NULL};
        authd_api->verify_with(g->ctx, &rq, &v);
    } else if (!client[0]) {
        authd_api->verify(g->ctx, service, account, key, keylen, &v.result);
    } else {
        v.result.decision = APIKEY_UNAVAILABLE;
        v.result.reason = APIKEY_REASON_ARGUMENT;
        snprintf(v.error, sizeof v.error, "libapikey has no verify_with (older than 1.2)");
    }
    const apikey_result res = v.result;
    /* The key is not needed any more: out of MHD's buffer and ours. */
    wipe((char *)key, keylen);
    if (account)
        wipe(basic, sizeof basic);
    if (auth)
        wipe((char *)auth, strlen(auth));
    if (xkey)
        wipe((char *)xkey, strlen(xkey));

    const authd_service *svc =
        res.reason == APIKEY_REASON_UNMAPPED ? NULL : authd_find_service(&g->settings, service);
    int reason = !given && res.reason == APIKEY_REASON_MALFORMED ? AUTHD_REASON_MISSING_KEY : (int)res.reason;
    authd_count(svc && svc->counters ? svc->counters : authd_counters_unmapped(), reason);
    int status = authd_api->http_status(&res);
    const char *why = reason == AUTHD_REASON_MISSING_KEY ? "missing key" : authd_api->reason_string(res.reason);

    if (status == 503 && v.error[0])
        fprintf(stderr, "apikey-authd: service %s: cannot tell: %s\n",
                plain_name(service) ? service : "(invalid)", v.error);
    if (authd_verbose) {
        fprintf(stderr, "apikey-authd: %d service=%s reason=\"%s\" key_id=%s account=%s client=%s\n",
                status, plain_name(service) ? service : "(invalid)", why, res.key_id[0] ? res.key_id : "-",
                status == 200 ? res.account : "-", client[0] ? client : "-");
    }

    /* A key with a limit: what is left when allowed, when to come back
     * when refused with 429 (RFC 6585). */
    char limit[16], remaining[16], retry[16];
    int limited = APIKEY_HAS_FIELD(apikey_verdict, &v, retry_after) && v.rate_limit &&
                  (status == 200 || status == 429);
    snprintf(limit, sizeof limit, "%u", limited ? v.rate_limit : 0);
    snprintf(remaining, sizeof remaining, "%u", limited ? v.rate_remaining : 0);
    snprintf(retry, sizeof retry, "%u", limited ? v.retry_after : 0);
    char challenge[512];
    const char *realm = status == 401 || status == 403 ? plain_name(service) ? service : "apikey" : "";
    if (status == 401)
        snprintf(challenge, sizeof challenge, "Bearer realm=\"%s\"%s", realm,
                 given ? ", error=\"invalid_token\"" : "");
    else if (status == 403)
        snprintf(challenge, sizeof challenge, "Bearer realm=\"%s\", error=\"insufficient_scope\"%s%s%s",
                 realm, svc ? ", scope=\"" : "", svc ? svc->scopes : "", svc ? "\"" : "");
    const char *headers[] = {
        "X-Apikey-Account", status == 200 ? res.account : NULL,
        "X-Apikey-Key-Id", res.key_id[0] ? res.key_id : NULL,
        "X-Apikey-Reason", status == 200 ? NULL : why,
        MHD_HTTP_HEADER_WWW_AUTHENTICATE, status == 401 || status == 403 ? challenge : NULL,
        "X-RateLimit-Limit", limited ? limit : NULL,
        "X-RateLimit-Remaining", limited ? remaining : NULL,
        MHD_HTTP_HEADER_RETRY_AFTER, limited && status == 429 ? retry : NULL,
        NULL,
    };
    enum MHD_Result rc = authd_answer(c, (unsigned)status, headers, NULL, 0, MHD_RESPMEM_PERSISTENT);
    authd_release(g);
    return rc;
}

static enum MHD_Result metrics(struct MHD_Connection *c)
{
    size_t len;
    char *text = authd_metrics_text(&len);
    if (!text)
        return authd_answer(c, 503, NULL, NULL, 0, MHD_RESPMEM_PERSISTENT);
    const char *headers[] = {MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4", NULL};
    return authd_answer(c, 200, headers, text, len, MHD_RESPMEM_MUST_FREE);
}

/* libmicrohttpd keeps a connection alive only for an answer queued once
 * the request is read whole: the first call only marks the request, and a
 * body (none is used yet) is read and dropped. */
static int request_read(void **con_cls, size_t *upload_size)
{
    static char seen;
    if (!*con_cls) {
        *con_cls = &seen;
        return 0;
    }
    if (*upload_size) {
        *upload_size = 0;
        return 0;
    }
    return 1;
}

enum MHD_Result authd_serve_public(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version, (void)upload;
    if (!request_read(con_cls, upload_size))
        return MHD_YES;
    if (strncmp(url, "/verify/", 8) == 0)
        return verify(c, url + 8);
    if (strcmp(url, "/metrics") == 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return metrics(c);
    return authd_answer(c, 404, NULL, NULL, 0, MHD_RESPMEM_PERSISTENT);
}
