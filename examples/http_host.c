/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * apikey_http_host - an example host: a tiny HTTP server on loopback that
 * answers "may this key use service S?" the way an API gateway would.
 *
 *   GET /<service> HTTP/1.0
 *   Authorization: Bearer <key>
 *   X-Account: <account>            (optional)
 *
 * 200 allowed, 401 unknown/malformed/expired/revoked/wrong account, 403 a
 * genuine key without the scope, 503 store or configuration unavailable.
 *
 * It knows only include/apikey.h: libapikey is loaded at run time with
 * dlopen, so it links neither libapikey nor OpenSSL.
 *
 * usage: apikey_http_host LIBAPIKEY.so CONFIG PORT [REQUESTS]
 * One request at a time; stops after REQUESTS requests when given.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apikey.h"

static const apikey_api *load(const char *path)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "apikey_http_host: %s\n", dlerror());
        return NULL;
    }
    apikey_entry_fn entry = (apikey_entry_fn)dlsym(lib, APIKEY_ENTRY_SYMBOL);
    const apikey_api *api = entry ? entry() : NULL;
    /* A newer library has a longer table; an older one may lack our slots. */
    if (!api || !APIKEY_API_HAS(api, http_status)) {
        fprintf(stderr, "apikey_http_host: %s is too old\n", path);
        return NULL;
    }
    return api;
}

/* The value of header name in req, copied into out; "" when absent. */
static void header(const char *req, const char *name, char *out, size_t len)
{
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *l = strstr(req, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, name, n) == 0 && l[2 + n] == ':') {
            const char *v = l + 3 + n;
            while (*v == ' ')
                v++;
            size_t m = strcspn(v, "\r\n");
            snprintf(out, len, "%.*s", (int)m, v);
            return;
        }
    }
}

static void serve(const apikey_api *api, apikey_ctx *ctx, int fd)
{
    char req[8192] = "";
    size_t have = 0;
    while (have < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t n = read(fd, req + have, sizeof req - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        req[have] = '\0';
    }
    req[have] = '\0';
    char service[128] = "", auth[1024], account[256];
    sscanf(req, "GET /%127[^ ?]", service);
    header(req, "Authorization", auth, sizeof auth);
    header(req, "X-Account", account, sizeof account);
    const char *key = strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : "";
    apikey_verdict v = {.size = sizeof v};
    if (APIKEY_API_HAS(api, verify_with)) {
        apikey_verify_request q = {.size = sizeof q, .service = service,
                                   .account = account[0] ? account : NULL, .key = key,
                                   .keylen = strlen(key)};
        api->verify_with(ctx, &q, &v);
    } else { /* a library before 1.2 */
        api->verify(ctx, service, account[0] ? account : NULL, key, strlen(key), &v.result);
    }
    const apikey_result res = v.result;
    if (v.error[0]) /* the library says nothing itself: the host logs why */
        fprintf(stderr, "apikey_http_host: %s\n", v.error);
    int status = api->http_status(&res);
    const char *text = status == 200 ? "OK" : status == 401 ? "Unauthorized" : status == 403 ? "Forbidden" : "Service Unavailable";
    char body[256];
    int blen = snprintf(body, sizeof body, "%s%s%s\n", api->reason_string(res.reason),
                        res.key_id[0] ? " " : "", res.key_id);
    dprintf(fd, "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", status,
            text, blen, body);
    memset(req, 0, sizeof req);
    memset(auth, 0, sizeof auth);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: apikey_http_host LIBAPIKEY.so CONFIG PORT [REQUESTS]\n");
        return 2;
    }
    const apikey_api *api = load(argv[1]);
    if (!api)
        return 2;
    char err[512];
    apikey_ctx *ctx = api->open(argv[2], err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "apikey_http_host: %s\n", err);
        return 2;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("apikey_http_host: bind");
        return 2;
    }
    long left = argc > 4 ? atol(argv[4]) : -1;
    while (left != 0) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        serve(api, ctx, c);
        close(c);
        if (left > 0)
            left--;
    }
    close(s);
    api->close(ctx);
    return 0;
}
