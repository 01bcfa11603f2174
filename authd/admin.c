/* SPDX-License-Identifier: BSD-2-Clause */
/* The management API on the admin socket (apikey-authd(8)): peer credentials
 * first, then JSON in and out over the admin slots of the host API. Every
 * rule (scopes, expiry, the per-account limit) is the library's; this file
 * only translates HTTP and JSON to those calls and their statuses back.
 *
 *   GET    /v1/scopes
 *   POST   /v1/keys                  {"account","name","scopes":[...],"expires","allow_from":[...],
 *                                     "rate":{"limit":N,"per":"1s"|"1min"|"1h","burst":N}}
 *   GET    /v1/keys[?account=A][&all=1]
 *   GET    /v1/keys/ID[?account=A]
 *   DELETE /v1/keys/ID[?account=A]
 *   POST   /v1/keys/ID/rotate[?account=A]  {"grace"} (the body is optional)
 *
 * With account=, a key of another account is 404 and nothing changes.
 *
 * The operations on keys are shared with the dashboard (dashboard.c), which
 * confines them to the signed-in account.
 *
 * A new key leaves the daemon once, in the 201's body, whose buffer is
 * wiped when libmicrohttpd has sent it. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "authd.h"
#include "logvalue.h"
#include "key_json.h"

/* One request: who asks, and the body read so far. */
typedef struct admin_request {
    authd_body in; /* first: authd_body_completed frees it */
    int admin;
    struct ucred peer;
} admin_request;

/* Root, a user of admin_users, or a member of a group of admin_groups.
 * Membership is the peer's supplementary groups as the kernel holds them
 * (SO_PEERGROUPS, Linux 4.13), not its effective gid: a setgid program of
 * an admin group does not make whoever runs it an admin. Without
 * SO_PEERGROUPS no group admits anyone. */
static int is_admin(const authd_settings *s, int fd, const struct ucred *cr)
{
    if (cr->uid == 0)
        return 1;
    for (size_t i = 0; i < s->nadmin_uids; i++)
        if (s->admin_uids[i] == cr->uid)
            return 1;
    if (!s->nadmin_gids)
        return 0;
    gid_t groups[1024]; /* NGROUPS_MAX is 65536: more is refused */
    socklen_t len = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
        return 0;
    for (size_t i = 0; i < len / sizeof groups[0]; i++)
        for (size_t j = 0; j < s->nadmin_gids; j++)
            if (groups[i] == s->admin_gids[j])
                return 1;
    return 0;
}

int authd_admin_peer(int fd, struct ucred *peer)
{
    socklen_t len = sizeof *peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, peer, &len) != 0)
        return -1;
    authd_generation *g = authd_acquire();
    int admin = is_admin(&g->settings, fd, peer);
    authd_release(g);
    return admin;
}

static const char *const json_headers[] = {MHD_HTTP_HEADER_CONTENT_TYPE, "application/json", NULL};

/* ---- UTF-8: Jansson refuses anything else, and a client's mistake must
 * be its 400, never a failure of ours ---- */

/* The length of the valid UTF-8 sequence at s (of at most n bytes), 0 when
 * it is not one (RFC 3629: no overlong form, no surrogate, nothing above
 * U+10FFFF). */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                                 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) || (s[0] == 0xf0 && s[1] < 0x90) ||
        (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

int authd_utf8_valid(const char *s)
{
    for (size_t n = strlen(s), k; n; s += k, n -= k)
        if (!(k = utf8_char((const unsigned char *)s, n)))
            return 0;
    return 1;
}

/* At most max bytes of s, never ending inside a character. */
static int utf8_prefix(const char *s, int max)
{
    size_t n = 0, left = strlen(s), k;
    while (left && (k = utf8_char((const unsigned char *)s + n, left)) && n + k <= (size_t)max)
        n += k, left -= k;
    return (int)n;
}

static enum MHD_Result json_error(struct MHD_Connection *c, unsigned status, const char *error)
{
    /* A line that quotes a client's bytes, from here or the library: what
     * is not UTF-8 becomes '?' rather than a 503. */
    char clean[1024];
    snprintf(clean, sizeof clean, "%s", error);
    for (size_t i = 0, n = strlen(clean), k; i < n; i += k)
        if (!(k = utf8_char((unsigned char *)clean + i, n - i)))
            clean[i] = '?', k = 1;
    json_t *o = json_pack("{s:s}", "error", clean);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return authd_answer(c, 503, json_headers, "{\"error\":\"out of memory\"}", 25, MHD_RESPMEM_PERSISTENT);
    /* json_dumps allocates with malloc: MUST_FREE hands it to free(). */
    return authd_answer(c, status, json_headers, text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

/* A library status, with the library's line when it wrote one. */
static enum MHD_Result status_error(struct MHD_Connection *c, apikey_status st, const char *err)
{
    return json_error(c, (unsigned)authd_api->status_http(st), err[0] ? err : authd_api->status_string(st));
}

/* what, then a client's name for something, shown back within bounds,
 * then more. */
static enum MHD_Result named_error(struct MHD_Connection *c, unsigned status, const char *what, const char *name,
                                   const char *more)
{
    char line[256];
    int shown = utf8_prefix(name, 64);
    snprintf(line, sizeof line, "%s\"%.*s%s\"%s", what, shown, name, name[shown] ? "..." : "", more);
    return json_error(c, status, line);
}

static enum MHD_Result json_answer(struct MHD_Connection *c, unsigned status, json_t *value, size_t flags)
{
    char *text = value ? json_dumps(value, flags | JSON_PRESERVE_ORDER) : NULL;
    json_decref(value);
    if (!text)
        return json_error(c, 503, "out of memory");
    return authd_answer(c, status, json_headers, text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

/* ---- Records, as `apikey list --json` prints them (cli/key_json.c) ---- */

static json_t *record_json(const apikey_key_info *k)
{
    return key_json(k, authd_api->state_string(k->state));
}

static void wipe_and_free(void *text)
{
    authd_api->wipe(text, strlen(text));
    free(text);
}

/* 201 with the record and "key". The key is spliced into the text rather
 * than put in a json_t, whose copy jansson would free unwiped; the text is
 * wiped once sent. The issued key is wiped here in every case. */
static enum MHD_Result issued_answer(struct MHD_Connection *c, apikey_issued *out)
{
    json_t *o = record_json(&out->info);
    char *record = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    size_t keylen = strlen(out->key), rlen = record ? strlen(record) : 0;
    int plain = keylen > 0 && strspn(out->key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == keylen;
    char *text = record && plain && rlen > 1 ? malloc(rlen + keylen + 16) : NULL;
    if (text) /* {...} -> {...,"key":"KEY"} */
        snprintf(text, rlen + keylen + 16, "%.*s,\"key\":\"%s\"}", (int)(rlen - 1), record, out->key);
    authd_api->wipe(out->key, sizeof out->key);
    free(record);
    if (!text) {
        /* Made but not shown: named, so that the operator can revoke it. */
        fprintf(stderr, "apikey-authd: key %s was created but cannot be shown; revoke it\n", out->info.id);
        return json_error(c, plain ? 503 : 500, "the key was created but cannot be shown; revoke it");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(strlen(text), text, wipe_and_free);
    if (!r)
        wipe_and_free(text);
    return authd_queue(c, 201, json_headers, r);
}

/* ---- Request bodies ---- */

/* The body as a JSON object whose fields are all among allowed (NULL
 * ended); NULL after answering 400. */
static json_t *body_object(struct MHD_Connection *c, const authd_body *rq, const char *const *allowed,
                           enum MHD_Result *rc)
{
    json_error_t je;
    /* jansson's message quotes the text near the error: not echoed. */
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, JSON_REJECT_DUPLICATES, &je);
    if (!in || !json_is_object(in)) {
        char line[96];
        if (in)
            snprintf(line, sizeof line, "the body must be a JSON object");
        else if (strncmp(je.text, "duplicate object key", 20) == 0)
            snprintf(line, sizeof line, "a field appears twice in the body");
        else
            snprintf(line, sizeof line, "the body is not JSON (line %d, column %d)", je.line, je.column);
        json_decref(in);
        *rc = json_error(c, 400, line);
        return NULL;
    }
    const char *field;
    json_t *v;
    json_object_foreach(in, field, v) {
        const char *const *a = allowed;
        while (*a && strcmp(*a, field) != 0)
            a++;
        if (!*a) {
            *rc = strcmp(field, "account") == 0
                      ? json_error(c, 400, "a request cannot name an account: it is the signed-in one")
                      : named_error(c, 400, "unknown field ", field, "");
            json_decref(in);
            return NULL;
        }
    }
    return in;
}

/* A string field: its value, NULL when absent or null (when optional), or
 * *bad set after answering 400. */
static const char *string_field(struct MHD_Connection *c, json_t *in, const char *field, int required,
                                int *bad, enum MHD_Result *rc)
{
    json_t *v = json_object_get(in, field);
    if (json_is_string(v))
        return json_string_value(v);
    if (!required && (!v || json_is_null(v)))
        return NULL;
    *bad = 1;
    *rc = v ? named_error(c, 400, "", field, " must be a string") : named_error(c, 400, "missing field ", field, "");
    return NULL;
}

/* A field holding an array of words: scope names, or allowlist entries. */
typedef struct words_spec {
    const char *field;
    int required; /* else absent or null is "" */
    size_t max;   /* elements */
    const char *what;
} words_spec;

static const words_spec scopes_spec = {"scopes", 1, SIZE_MAX, "scope names"};
static const words_spec allow_spec = {"allow_from", 0, APIKEY_ALLOW_ENTRIES,
                                      "addresses (\"192.0.2.0/24\", \"2001:db8::1\")"};

/* The words joined with spaces for the library, which reads either list
 * that way; -1 after answering 400. */
static int words_field(struct MHD_Connection *c, json_t *in, const words_spec *w, char *out, size_t outlen,
                       enum MHD_Result *rc)
{
    json_t *arr = json_object_get(in, w->field), *v;
    size_t i, used = 0;
    char line[160];
    out[0] = '\0';
    if (!w->required && (!arr || json_is_null(arr)))
        return 0;
    if (!json_is_array(arr)) {
        snprintf(line, sizeof line, arr ? "%s must be an array of %s" : "missing field \"%s\"", w->field, w->what);
        *rc = json_error(c, 400, line);
        return -1;
    }
    if (json_array_size(arr) > w->max) {
        snprintf(line, sizeof line, "%s holds %zu entries, more than %zu", w->field, json_array_size(arr), w->max);
        *rc = json_error(c, 400, line);
        return -1;
    }
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        size_t n = s ? strlen(s) : 0;
        /* One element, one entry: a separator inside would make it several. */
        if (!n || strpbrk(s, " \t\r\n,")) {
            snprintf(line, sizeof line, "%s must be an array of %s: element %zu is not one", w->field, w->what, i + 1);
            *rc = json_error(c, 400, line);
            return -1;
        }
        if (used + n + 2 > outlen) {
            snprintf(line, sizeof line, "%s is too long", w->field);
            *rc = json_error(c, 400, line);
            return -1;
        }
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? " " : "", s);
    }
    return 0;
}

/* "rate": absent, the configuration's default_rate (*text NULL); null, no
 * limit ("none"); else {"limit": N, "per": "1s"|"1min"|"1h", "burst": N},
 * burst optional, into "N/s" for the library, which checks the ranges.
 * -1 after answering 400. */
static int rate_field(struct MHD_Connection *c, json_t *in, char *text, size_t len,
                      const char **out, uint32_t *burst, enum MHD_Result *rc)
{
    json_t *v = json_object_get(in, "rate");
    json_t *limit = json_object_get(v, "limit"), *b = json_object_get(v, "burst");
    const char *per = json_string_value(json_object_get(v, "per"));
    const char *unit = !per                       ? NULL
                       : strcmp(per, "1s") == 0   ? "s"
                       : strcmp(per, "1min") == 0 ? "min"
                       : strcmp(per, "1h") == 0   ? "h"
                                                  : NULL;
    *out = !v ? NULL : json_is_null(v) ? "none" : text;
    *burst = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) != 2u + (b != NULL) || !json_is_integer(limit) ||
        !unit || (b && (!json_is_integer(b) || json_integer_value(b) < 1 ||
                        json_integer_value(b) > 1000000)) ||
        json_integer_value(limit) < 1 || json_integer_value(limit) > 1000000) {
        *rc = json_error(c, 400, "rate must be null or {\"limit\": 1 to 1000000, \"per\": \"1s\", "
                                 "\"1min\" or \"1h\", \"burst\": 1 to 1000000 (optional)}");
        return -1;
    }
    snprintf(text, len, "%lld/%s", (long long)json_integer_value(limit), unit);
    *burst = b ? (uint32_t)json_integer_value(b) : 0;
    return 0;
}

/* ---- The endpoints ---- */

static int add_scope(const char *scope, const char *description, void *arr)
{
    return json_array_append_new(arr, json_pack("{s:s, s:s}", "scope", scope, "description", description));
}

/* GET /v1/scopes: the catalogue, as `apikey scopes --json` prints it. */
enum MHD_Result authd_keys_scopes(struct MHD_Connection *c, authd_generation *g)
{
    char err[1024] = "";
    json_t *arr = json_array();
    apikey_status st = arr ? authd_api->scopes(g->ctx, add_scope, arr, err, sizeof err) : APIKEY_E_NOMEM;
    if (st != APIKEY_OK) {
        json_decref(arr);
        return status_error(c, st, err);
    }
    return json_answer(c, 200, arr, JSON_INDENT(2));
}

/* With account, a key of another account is answered as a key that does
 * not exist, in the same words, and nothing is done to it. A key's account
 * never changes, so the look-up before the change holds for the change. */
static int owned(struct MHD_Connection *c, authd_generation *g, const char *id, const char *account,
                 enum MHD_Result *rc)
{
    if (!account)
        return 1;
    char err[1024] = "";
    apikey_key_info info = {.size = sizeof info};
    apikey_status st = authd_api->get(g->ctx, id, &info, err, sizeof err);
    if (st == APIKEY_OK && strcmp(info.account, account) == 0)
        return 1;
    if (st == APIKEY_OK) {
        snprintf(err, sizeof err, "no key %s in the store", info.id);
        st = APIKEY_E_NOT_FOUND;
    }
    *rc = status_error(c, st, err);
    return 0;
}

/* POST /v1/keys */
enum MHD_Result authd_keys_create(struct MHD_Connection *c, authd_generation *g, const authd_body *rq,
                                  const char *account)
{
    static const char *const fields[] = {"account", "name", "scopes", "expires", "allow_from", "rate", NULL};
    enum MHD_Result rc = MHD_NO;
    int bad = 0;
    /* Room for 16 entries written long (leading zeros): the library says
     * which is malformed. */
    char scopes[APIKEY_SCOPES_MAX], allow[APIKEY_ALLOW_ENTRIES * 64], err[1024] = "", rate[32];
    /* A confined request names no account: "account" is then unknown. */
    json_t *in = body_object(c, rq, account ? fields + 1 : fields, &rc);
    if (!in)
        return rc;
    apikey_create_request req = {.size = sizeof req, .account = account};
    if (!account)
        req.account = string_field(c, in, "account", 1, &bad, &rc);
    if (!bad)
        req.name = string_field(c, in, "name", 1, &bad, &rc);
    if (!bad && words_field(c, in, &scopes_spec, scopes, sizeof scopes, &rc) != 0)
        bad = 1;
    if (!bad)
        req.expires = string_field(c, in, "expires", 0, &bad, &rc);
    if (!bad && words_field(c, in, &allow_spec, allow, sizeof allow, &rc) != 0)
        bad = 1;
    if (!bad && rate_field(c, in, rate, sizeof rate, &req.rate, &req.burst, &rc) != 0)
        bad = 1;
    if (bad) {
        json_decref(in);
        return rc;
    }
    req.scopes = scopes;
    req.allow_from = allow[0] ? allow : NULL; /* NULL: a library before 1.4 takes the request */
    apikey_issued out = {.size = sizeof out};
    apikey_status st = authd_api->create(g->ctx, &req, &out, err, sizeof err);
    json_decref(in);
    return st == APIKEY_OK ? issued_answer(c, &out) : status_error(c, st, err);
}

/* POST /v1/keys/ID/rotate */
enum MHD_Result authd_keys_rotate(struct MHD_Connection *c, authd_generation *g, const authd_body *rq,
                                  const char *id, const char *account)
{
    static const char *const fields[] = {"grace", NULL};
    enum MHD_Result rc = MHD_NO;
    int bad = 0;
    char err[1024] = "";
    json_t *in = NULL;
    const char *grace = NULL;
    if (!owned(c, g, id, account, &rc))
        return rc;
    if (rq->len) {
        if (!(in = body_object(c, rq, fields, &rc)))
            return rc;
        grace = string_field(c, in, "grace", 0, &bad, &rc);
        if (bad) {
            json_decref(in);
            return rc;
        }
    }
    apikey_issued out = {.size = sizeof out};
    apikey_status st = authd_api->rotate(g->ctx, id, grace, &out, err, sizeof err);
    json_decref(in);
    return st == APIKEY_OK ? issued_answer(c, &out) : status_error(c, st, err);
}

/* GET /v1/keys/ID */
static enum MHD_Result get_key(struct MHD_Connection *c, authd_generation *g, const char *id, const char *account)
{
    enum MHD_Result rc;
    if (!owned(c, g, id, account, &rc))
        return rc;
    char err[1024] = "";
    apikey_key_info info = {.size = sizeof info};
    apikey_status st = authd_api->get(g->ctx, id, &info, err, sizeof err);
    return st == APIKEY_OK ? json_answer(c, 200, record_json(&info), JSON_COMPACT) : status_error(c, st, err);
}

/* DELETE /v1/keys/ID: 204 also for a key revoked before (the library's
 * note says so; the key is revoked either way). */
enum MHD_Result authd_keys_revoke(struct MHD_Connection *c, authd_generation *g, const char *id,
                                  const char *account)
{
    enum MHD_Result rc;
    if (!owned(c, g, id, account, &rc))
        return rc;
    char err[1024] = "";
    apikey_status st = authd_api->revoke(g->ctx, id, err, sizeof err);
    return st == APIKEY_OK ? authd_answer(c, 204, NULL, NULL, 0, MHD_RESPMEM_PERSISTENT) : status_error(c, st, err);
}

typedef struct list_args {
    const char *account;
    int takes_all, all;
    const char *bad; /* the first parameter that is not one of these */
} list_args;

static enum MHD_Result list_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    list_args *a = cls;
    (void)kind;
    if (strcmp(key, "account") == 0 && value && *value && !a->account)
        a->account = value;
    else if (a->takes_all && strcmp(key, "all") == 0 && value && (strcmp(value, "1") == 0 || strcmp(value, "0") == 0))
        a->all = value[0] == '1';
    else if (!a->bad)
        a->bad = key;
    return MHD_YES;
}

static enum MHD_Result utf8_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    if (!authd_utf8_valid(key) || (value && !authd_utf8_valid(value)))
        *(int *)cls = 1;
    return MHD_YES;
}

/* account= (and all= when takes_all) and nothing else; 0, or -1 after
 * answering 400. */
static int read_args(struct MHD_Connection *c, list_args *a, enum MHD_Result *rc)
{
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, list_arg, a);
    if (!a->bad)
        return 0;
    *rc = named_error(c, 400, "bad or repeated parameter ", a->bad,
                      a->takes_all ? " (want account=A, all=0 or all=1)" : " (want account=A)");
    return -1;
}

typedef struct key_rows {
    json_t *arr;
    int nomem; /* a list cut short is not an answer */
} key_rows;

static int add_key(const apikey_key_info *info, void *arg)
{
    key_rows *rows = arg;
    return rows->nomem = json_array_append_new(rows->arr, record_json(info)) != 0;
}

enum MHD_Result authd_keys_list(struct MHD_Connection *c, authd_generation *g, const char *account, int all)
{
    char err[1024] = "";
    key_rows rows = {.arr = json_array()};
    apikey_status st = rows.arr ? authd_api->list(g->ctx, account, all ? APIKEY_LIST_ALL : 0, add_key,
                                                  &rows, err, sizeof err)
                                : APIKEY_E_NOMEM;
    if (st == APIKEY_OK && rows.nomem)
        st = APIKEY_E_NOMEM;
    if (st != APIKEY_OK) {
        json_decref(rows.arr);
        return status_error(c, st, err);
    }
    return json_answer(c, 200, rows.arr, JSON_INDENT(2));
}

/* GET /v1/keys[?account=A][&all=1]: every account's keys without account=,
 * as `apikey list --json` without ACCOUNT. */
static enum MHD_Result list_keys(struct MHD_Connection *c, authd_generation *g)
{
    list_args a = {.takes_all = 1};
    enum MHD_Result rc;
    if (read_args(c, &a, &rc) != 0)
        return rc;
    return authd_keys_list(c, g, a.account, a.all);
}

static int has_arguments(struct MHD_Connection *c)
{
    return MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0;
}

static enum MHD_Result not_allowed(struct MHD_Connection *c, const char *allow)
{
    json_t *o = json_pack("{s:s}", "error", "method not allowed");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    const char *headers[] = {MHD_HTTP_HEADER_CONTENT_TYPE, "application/json", MHD_HTTP_HEADER_ALLOW, allow, NULL};
    if (!text)
        return json_error(c, 503, "out of memory");
    return authd_answer(c, 405, headers, text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

/* For the dashboard, which answers as this API does. */
enum MHD_Result authd_json_error(struct MHD_Connection *c, unsigned status, const char *error)
{
    return json_error(c, status, error);
}

enum MHD_Result authd_not_allowed(struct MHD_Connection *c, const char *allow)
{
    return not_allowed(c, allow);
}

/* The route: /v1/scopes, /v1/keys, /v1/keys/ID, /v1/keys/ID/rotate. */
static enum MHD_Result route(struct MHD_Connection *c, authd_generation *g, const admin_request *rq,
                             const char *url, const char *method)
{
    int is_get = strcmp(method, "GET") == 0, is_post = strcmp(method, "POST") == 0, bad = !authd_utf8_valid(url);
    enum MHD_Result rc;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, utf8_arg, &bad);
    if (bad)
        return json_error(c, 400, "the path and its parameters must be UTF-8");
    if (strcmp(url, "/v1/scopes") == 0 || strcmp(url, "/v1/keys") == 0) {
        int keys = url[4] == 'k';
        if (!is_get && !(keys && is_post))
            return not_allowed(c, keys ? "GET, POST" : "GET");
        if (is_get && rq->in.len)
            return json_error(c, 400, "a GET takes no body");
        if (!keys)
            return has_arguments(c) ? json_error(c, 400, "/v1/scopes takes no parameter")
                                    : authd_keys_scopes(c, g);
        if (is_get)
            return list_keys(c, g);
        return has_arguments(c) ? json_error(c, 400, "POST /v1/keys takes no parameter")
                                : authd_keys_create(c, g, &rq->in, NULL);
    }
    if (strncmp(url, "/v1/keys/", 9) != 0)
        return json_error(c, 404, "not found");
    char id[APIKEY_KEY_ID_MAX + 8];
    const char *rest = url + 9;
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof id)
        return json_error(c, 404, "not found");
    memcpy(id, rest, n);
    id[n] = '\0';
    rest += n;
    int rotate = strcmp(rest, "/rotate") == 0, is_delete = strcmp(method, "DELETE") == 0;
    if (*rest && !rotate)
        return json_error(c, 404, "not found");
    if (rotate ? !is_post : !is_get && !is_delete)
        return not_allowed(c, rotate ? "POST" : "GET, DELETE");
    list_args a = {0};
    if (read_args(c, &a, &rc) != 0)
        return rc;
    if (!rotate && rq->in.len)
        return json_error(c, 400, "this request takes no body");
    return rotate ? authd_keys_rotate(c, g, &rq->in, id, a.account)
           : is_get ? get_key(c, g, id, a.account)
                    : authd_keys_revoke(c, g, id, a.account);
}

enum MHD_Result authd_body_add(authd_body *b, const char *upload, size_t *upload_size)
{
    size_t n = *upload_size;
    *upload_size = 0;
    if (b->too_big || b->len + n > AUTHD_ADMIN_BODY_MAX) {
        b->too_big = 1;
        return MHD_YES;
    }
    char *grown = realloc(b->body, b->len + n + 1);
    if (!grown)
        return MHD_NO;
    memcpy(grown + b->len, upload, n);
    b->body = grown;
    b->len += n;
    b->body[b->len] = '\0';
    return MHD_YES;
}

/* The first call sees the head only: the peer is checked then, and a
 * refusal is answered without reading the body. An admin's body is read to
 * its end, kept up to AUTHD_ADMIN_BODY_MAX and beyond that dropped and
 * answered 413, so that the client reads the answer rather than a reset.
 * A library without the admin slots serves none. */
enum MHD_Result authd_serve_admin(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version;
    admin_request *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        *con_cls = rq;
        /* Checked at accept too (main.c); again here, for a reload. */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        int admin = ci ? authd_admin_peer(ci->connect_fd, &rq->peer) : -1;
        if (admin < 0)
            return json_error(c, 403, "forbidden: no peer credentials");
        rq->admin = admin;
        if (!rq->admin) {
            fprintf(stderr, "apikey-authd: admin socket: uid %u gid %u is not an admin; refused\n",
                    (unsigned)rq->peer.uid, (unsigned)rq->peer.gid);
            return json_error(c, 403, "forbidden");
        }
        return MHD_YES;
    }
    if (!rq->admin) {
        /* Answered 403 already; nothing more is read or done for it. */
        *upload_size = 0;
        return MHD_NO;
    }
    if (*upload_size)
        return authd_body_add(&rq->in, upload, upload_size);
    if (rq->in.too_big)
        return json_error(c, 413, "the body is larger than 16384 bytes");
    authd_generation *g = authd_acquire();
    enum MHD_Result rc = route(c, g, rq, url, method);
    authd_release(g);
    if (authd_verbose) {
        char m[LOG_VALUE_LEN], u[LOG_VALUE_LEN]; /* the client's: one field each */
        fprintf(stderr, "apikey-authd: admin: uid %u %s %s\n", (unsigned)rq->peer.uid,
                log_value(method, m, sizeof m), log_value(url, u, sizeof u));
    }
    return rc;
}

void authd_body_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    authd_body *in = *con_cls;
    if (in) {
        free(in->body);
        free(in);
        *con_cls = NULL;
    }
}
