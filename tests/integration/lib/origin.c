/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A tiny HTTP origin for the server tests (tests/integration/lib/servers.sh):
 * binds 127.0.0.1 on a free port, prints the port, and answers every request
 * with "200 OK" and the body "origin ok", one connection at a time, until
 * killed. The body then lists the request's X-Apikey-* and X-Account
 * headers, one a line, so a test sees what a proxy passed on. Built by the tests into their temporary folder; nothing is
 * guaranteed on a fresh machine beyond a C compiler.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        perror("origin");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {5, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[8192];
        size_t got = 0;
        ssize_t n;
        /* Read the request head, then answer whatever it asked. */
        while (got < sizeof buf - 1 && (n = read(c, buf + got, sizeof buf - 1 - got)) > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "\r\n\r\n"))
                break;
        }
        char body[8192] = "origin ok\n";
        size_t blen = strlen(body);
        for (char *l = strstr(buf, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
            size_t n = strcspn(l + 2, "\r");
            if ((strncasecmp(l + 2, "X-Apikey-", 9) == 0 || strncasecmp(l + 2, "X-Account:", 10) == 0) &&
                blen + n + 2 < sizeof body)
                blen += (size_t)snprintf(body + blen, sizeof body - blen, "%.*s\n", (int)n, l + 2);
        }
        char reply[9000];
        int rlen = snprintf(reply, sizeof reply, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", blen, body);
        if (write(c, reply, (size_t)rlen) < 0)
            perror("origin: write");
        close(c);
    }
}
