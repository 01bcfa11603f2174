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
        /* A loaded store survives a dump and a reload unchanged in size. */
        char *text;
        size_t len;
        if (json_db_dump(&db, &text, &len) != 0)
            abort();
        size_t n = db.n;
        json_db_clear(&db);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, text, len, 0) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
            abort();
        if (json_db_load(&db, fd, why, sizeof why) != APIKEY_ST_OK || db.n != n)
            abort();
        free(text);
    } else if (!why[0]) {
        abort();
    }
    json_db_free(&db);
    return 0;
}
