/* libFuzzer: what apikey-authd reads from outside itself: apikey.conf (its
 * [authd] and [services] parts) and the forwarded-address headers of a
 * request from a trusted proxy, as X-Forwarded-For and as X-Real-IP. The
 * client address is either unknown or a
 * numeric address that parses back. */
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
    if (authd_settings_parse((const char *)data, size, &s, err, sizeof err) == 0) {
        for (size_t i = 0; i < s.nservices; i++)
            if (!authd_find_service(&s, s.services[i].name) || strchr(s.services[i].scopes, ','))
                abort();
        authd_settings_free(&s);
    }
    /* The input as X-Forwarded-For, then X-Real-IP, from a trusted peer. */
    static const char trust[] = "[authd]\ntrusted_proxies = 127.0.0.0/8 ::1 10.0.0.0/8\n";
    static const char trust_real[] = "[authd]\ntrusted_proxies = 127.0.0.0/8\nforwarded_header = X-Real-IP\n";
    static authd_settings trusting[2];
    if (!trusting[0].nproxies && (authd_settings_parse(trust, strlen(trust), &trusting[0], err, sizeof err) != 0 ||
                                  authd_settings_parse(trust_real, strlen(trust_real), &trusting[1], err, sizeof err) != 0))
        abort();
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
