/* SPDX-License-Identifier: BSD-2-Clause */
/* libFuzzer: the JSON store loader on arbitrary files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "json_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0)
        fd = memfd_create("store", 0);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    json_db db;
    if (json_db_init(&db) != 0)
        abort();
    char why[512] = "";
    if (json_db_load(&db, fd, why, sizeof why) == APIKEY_ST_OK) {
        /* A loaded store survives being written and read back. */
        size_t n = db.n;
        if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 || json_db_write(&db, fd) != 0 ||
            lseek(fd, 0, SEEK_SET) != 0)
            abort();
        json_db_clear(&db);
        if (json_db_load(&db, fd, why, sizeof why) != APIKEY_ST_OK || db.n != n)
            abort();
    } else if (!why[0]) {
        abort();
    }
    json_db_free(&db);
    return 0;
}
