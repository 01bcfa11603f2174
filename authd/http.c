/* SPDX-License-Identifier: BSD-2-Clause */
/* The listen address (ANY /verify/SERVICE, GET /metrics); the admin
 * socket is admin.c. Everything arrives through libmicrohttpd; nothing here
 * parses HTTP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "authd.h"
#include "credential.h"
#include "logvalue.h"

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
        ok = authd_dashboard_headers(c, r);
    if (ok == MHD_YES)
        ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* The request's Authorization and X-API-Key lines, for credential_read;
 * with wipe set, libmicrohttpd's copies of them are wiped instead. */
typedef struct credential_lines {
    credential_header auth, key;
    int wipe;
} credential_lines;

static enum MHD_Result credential_line(void *cls, enum MHD_ValueKind kind, const char *name, size_t name_size,
                                       const char *value, size_t value_size)
{
    credential_lines *l = cls;
    credential_header *h = NULL;
    (void)kind;
    if (name_size == strlen(MHD_HTTP_HEADER_AUTHORIZATION) &&
        strncasecmp(name, MHD_HTTP_HEADER_AUTHORIZATION, name_size) == 0)
        h = &l->auth;
    else if (name_size == strlen("X-API-Key") && strncasecmp(name, "X-API-Key", name_size) == 0)
        h = &l->key;
    if (!h || !value)
        return MHD_YES;
    if (l->wipe)
        explicit_bzero((char *)value, value_size);
    else if (h->count++ == 0)
        h->value = value, h->len = value_size;
    return MHD_YES;
}

/* Every line of one header, in order: libmicrohttpd keeps each line
 * apart, and its lookup returns the first only. */
typedef struct header_join {
    const char *name;
    char *out;
    size_t outlen, used;
    int lines, overflow;
} header_join;

static enum MHD_Result join_line(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    header_join *j = cls;
    (void)kind;
    if (!key || strcasecmp(key, j->name) != 0)
        return MHD_YES;
    size_t n = strlen(value ? value : ""), sep = j->lines++ ? 2 : 0;
    if (j->used + sep + n >= j->outlen) {
        j->overflow = 1;
        return MHD_NO;
    }
    memcpy(j->out + j->used, ", ", sep);
    memcpy(j->out + j->used + sep, value ? value : "", n);
    j->used += sep + n;
    j->out[j->used] = '\0';
    return MHD_YES;
}

static int request_header(void *conn, const char *name, char *out, size_t outlen)
{
    header_join j = {.name = name, .out = out, .outlen = outlen};
    out[0] = '\0';
    MHD_get_connection_values(conn, MHD_HEADER_KIND, join_line, &j);
    return j.overflow ? -1 : j.lines > 0;
}

/* The rules nginx's module follows too (common/credential.h). Once
 * copied, the key is not left in libmicrohttpd's buffer. */
static apikey_reason take_credential(struct MHD_Connection *c, credential *cred)
{
    credential_lines lines = {.wipe = 0};
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, credential_line, &lines);
    apikey_reason taken = credential_read(&lines.auth, &lines.key, cred);
    lines.wipe = 1;
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, credential_line, &lines);
    return taken;
}

/* Where the request comes from, for allowlists (apikey(1)): unknown
 * ("") when a Unix-socket peer is not trusted or a trusted one
 * forwarded nothing usable; a key with a list is then refused. */
static void client_address(struct MHD_Connection *c, const authd_generation *g, char client[AUTHD_ADDR_MAX])
{
    authd_ip from;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    authd_client_address(&g->settings, ci ? ci->client_addr : NULL, request_header, c, &from);
    authd_ip_text(&from, client, AUTHD_ADDR_MAX);
}

/* The sized call also says why a check could not tell (the store's
 * own words), which only this adapter logs. The daemon runs only on a
 * library of 1.4 or later (authd_settings_read), which takes the
 * address: allowlists never silently stop. */
static void check(const authd_generation *g, const char *service, apikey_reason taken, const credential *cred,
                  const char *client, apikey_verdict *v)
{
    const char *account = cred->account[0] ? cred->account : NULL;
    if (taken != APIKEY_REASON_NONE) {
        v->result.decision = APIKEY_REFUSED;
        v->result.reason = taken;
    } else {
        apikey_verify_request rq = {.size = sizeof rq, .service = service, .account = account,
                                    .key = cred->key, .keylen = cred->keylen, .client_addr = client[0] ? client : NULL};
        authd_api->verify_with(g->ctx, &rq, v);
    }
}

static void log_verdict(const char *service, int status, const char *why, const apikey_verdict *v,
                        const char *client)
{
    const apikey_result *res = &v->result;
    int named = credential_service_ok(service, strlen(service));
    if (status == 503 && v->error[0])
        fprintf(stderr, "apikey-authd: service %s: cannot tell: %s\n", named ? service : "(invalid)", v->error);
    if (authd_verbose) {
        /* An account is any text its key was made with, the client's
         * address what a header said: each one field (common/logvalue.h). */
        char who[LOG_VALUE_LEN], addr[LOG_VALUE_LEN];
        fprintf(stderr, "apikey-authd: %d service=%s reason=\"%s\" key_id=%s account=%s client=%s\n",
                status, named ? service : "(invalid)", why, res->key_id[0] ? res->key_id : "-",
                log_value(status == 200 ? res->account : NULL, who, sizeof who),
                log_value(client[0] ? client : NULL, addr, sizeof addr));
    }
}

/* The answer's status and headers; a 401 or 403 without its challenge is
 * a 503. */
static enum MHD_Result answer_verdict(struct MHD_Connection *c, int status, const char *service, apikey_reason taken,
                                      const authd_service *svc, const apikey_verdict *v, const char *why)
{
    const apikey_result *res = &v->result;
    /* A key with a limit: what is left when allowed, when to come back
     * when refused with 429 (RFC 6585). */
    char limit[16] = "", remaining[16] = "", retry[16] = "";
    int limited = APIKEY_HAS_FIELD(apikey_verdict, v, retry_after) && v->rate_limit &&
                  (status == 200 || status == 429);
    /* Formatted only then: printf costs a key without a limit a tenth
     * of the check itself (bench/RESULTS.md, apikey-authd). */
    if (limited) {
        snprintf(limit, sizeof limit, "%u", v->rate_limit);
        snprintf(remaining, sizeof remaining, "%u", v->rate_remaining);
        snprintf(retry, sizeof retry, "%u", v->retry_after);
    }
    /* The realm is at most a service name's length, the scopes as long
     * as the configuration made them. */
    size_t clen = 2 * CREDENTIAL_SERVICE_MAX + (svc ? strlen(svc->scopes) : 0);
    char *challenge = status == 401 || status == 403 ? malloc(clen) : NULL;
    if (challenge && !credential_challenge(challenge, clen, status, service, taken != APIKEY_REASON_MISSING,
                                           svc ? svc->scopes : NULL)) {
        free(challenge);
        challenge = NULL;
    }
    /* Who the key names only when it was let in: behind nginx's satisfy
     * any, auth_request_set would otherwise pass a refused key's identity
     * on. The reason says why it was refused. */
    const char *headers[] = {
        "X-Apikey-Account", status == 200 ? res->account : NULL,
        "X-Apikey-Key-Id", status == 200 && res->key_id[0] ? res->key_id : NULL,
        "X-Apikey-Reason", status == 200 ? NULL : why,
        MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge,
        "X-RateLimit-Limit", limited ? limit : NULL,
        "X-RateLimit-Remaining", limited ? remaining : NULL,
        MHD_HTTP_HEADER_RETRY_AFTER, limited && status == 429 ? retry : NULL,
        NULL,
    };
    enum MHD_Result rc = (status == 401 || status == 403) && !challenge
                             ? authd_answer(c, 503, NULL, NULL, 0, MHD_RESPMEM_PERSISTENT)
                             : authd_answer(c, (unsigned)status, headers, NULL, 0, MHD_RESPMEM_PERSISTENT);
    free(challenge);
    return rc;
}

static enum MHD_Result verify(struct MHD_Connection *c, const char *service)
{
    credential cred;
    apikey_reason taken = take_credential(c, &cred);
    authd_generation *g = authd_acquire();
    char client[AUTHD_ADDR_MAX];
    client_address(c, g, client);
    apikey_verdict v = {.size = sizeof v};
    check(g, service, taken, &cred, client, &v);
    credential_wipe(&cred);

    const apikey_result *res = &v.result;
    const authd_service *svc =
        res->reason == APIKEY_REASON_UNMAPPED ? NULL : authd_find_service(&g->settings, service);
    authd_count(svc && svc->counters ? svc->counters : authd_counters_unmapped(), res->reason);
    int status = authd_api->http_status(res);
    const char *why = credential_reason_string(authd_api, res->reason);
    log_verdict(service, status, why, &v, client);
    enum MHD_Result rc = answer_verdict(c, status, service, taken, svc, &v, why);
    authd_release(g);
    return rc;
}

/* The replica as the configuration in use reads it (apikey_replica);
 * APIKEY_E_INVALID without one, or with a library older than 1.5. */
static apikey_status replica_state(apikey_replica_state *r)
{
    if (!APIKEY_API_HAS(authd_api, replica))
        return APIKEY_E_INVALID;
    authd_generation *g = authd_acquire();
    apikey_status st = authd_api->replica(g->ctx, r, NULL, 0);
    authd_release(g);
    return st;
}

static enum MHD_Result metrics(struct MHD_Connection *c)
{
    size_t len;
    apikey_replica_state r = {.size = sizeof r};
    apikey_status st = replica_state(&r);
    char *text = authd_metrics_text(st, &r, &len);
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
