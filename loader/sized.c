/* SPDX-License-Identifier: BSD-2-Clause */
/* The rules of include/apikey.h's growing structs, in one place: a request
 * from a newer host may set fields this library does not know (an address
 * allowlist), and a struct the library fills may be older or newer than
 * the library's. */
#include <string.h>

#include "core.h"
#include "hot_path.h"

HOT_PATH int core_tail_zero(const void *theirs, size_t known, size_t their_size)
{
    for (size_t i = known; i < their_size; i++)
        if (((const unsigned char *)theirs)[i])
            return 0;
    return 1;
}

size_t core_sized_out(const void *mine, size_t my_size, void *theirs, size_t their_size)
{
    size_t n = their_size < my_size ? their_size : my_size;
    memcpy(theirs, mine, n);
    memset((char *)theirs + n, 0, their_size - n);
    return n;
}
