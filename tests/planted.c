/* SPDX-License-Identifier: BSD-2-Clause */
/* A shared object an attacker plants: a store backend in an APIKEY_STORE_DIR
 * of their own, or an OpenSSL provider named by their OPENSSL_CONF and
 * OPENSSL_MODULES. Its constructor leaves a file behind when anything loads
 * it, whatever then happens: the privileged-host tests look for that file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void planted(void)
{
    const char *marker = getenv("APIKEY_TEST_MARKER");
    if (!marker)
        return;
    int fd = open(marker, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[64];
    int n = snprintf(line, sizeof line, "loaded by uid %u euid %u\n", (unsigned)getuid(),
                     (unsigned)geteuid());
    if (n > 0 && write(fd, line, (size_t)n) < 0)
        n = 0;
    close(fd);
}
