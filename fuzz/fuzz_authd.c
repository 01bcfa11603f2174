/* SPDX-License-Identifier: BSD-2-Clause */
/* libFuzzer: what apikey-authd reads from outside itself: the values of its
 * [authd] lines (the library reads the file; each "name = value" line of the
 * input is handed over as the library hands it) and the forwarded-address
 * headers of a request from a trusted proxy, as X-Forwarded-For and as
 * X-Real-IP. The client address is either unknown or a numeric address that
 * parses back. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../authd/authd.h"

static const char *forwarded;
static int header(void *arg, const char *name, char *out, size_t outlen)
{
    (void)arg, (void)name;
    out[0] = '\0';
    if (!forwarded)
        return 0;
    if (strlen(forwarded) >= outlen)
        return -1;
    strcpy(out, forwarded);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    authd_settings s;
    authd_settings_init(&s);
    char *lines = malloc(size + 1);
    memcpy(lines, data, size);
    lines[size] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(lines, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (authd_settings_add(&s, line, eq + 1, err, sizeof err) != 0 && !err[0])
            abort(); /* a refusal always says why */
    }
    if (s.nproxies > AUTHD_MAX_PROXIES || s.nadmin_uids > AUTHD_MAX_ADMINS)
        abort();
    authd_settings_free(&s);
    free(lines);
    /* The input as X-Forwarded-For, then X-Real-IP, from a trusted peer. */
    static authd_settings trusting[2];
    static int ready;
    if (!ready) {
        authd_settings_init(&trusting[0]);
        authd_settings_init(&trusting[1]);
        if (authd_settings_add(&trusting[0], "trusted_proxies", "127.0.0.0/8 ::1 10.0.0.0/8", err, sizeof err) ||
            authd_settings_add(&trusting[1], "trusted_proxies", "127.0.0.0/8", err, sizeof err) ||
            authd_settings_add(&trusting[1], "forwarded_header", "X-Real-IP", err, sizeof err))
            abort();
        ready = 1;
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int which = 0; which < 2; which++) {
        forwarded = text;
        authd_ip ip;
        char out[AUTHD_ADDR_MAX];
        unsigned char back[16];
        authd_client_address(&trusting[which], (struct sockaddr *)&peer, header, NULL, &ip);
        authd_ip_text(&ip, out, sizeof out);
        if (ip.family && inet_pton(ip.family == 4 ? AF_INET : AF_INET6, out, back) != 1)
            abort();
        if (!ip.family && out[0])
            abort();
    }
    free(text);
    return 0;
}
