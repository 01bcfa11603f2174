/* SPDX-License-Identifier: BSD-2-Clause */
/* A value from outside (a PAM user name, a client's address, a key's name
 * or account, a URL) as one field of a log line: whatever it holds, it can
 * never read as a field of its own ("bob allowed account=alice") or as a
 * line of its own. A leaf: libapikey (the PAM module, the command, the
 * helper) and apikey-authd compile it alike. */
#ifndef APIKEY_LOGVALUE_H
#define APIKEY_LOGVALUE_H

#include <stddef.h>

/* Room for any value of LOG_VALUE_MAX bytes or fewer, all escaped. */
#define LOG_VALUE_MAX 256
#define LOG_VALUE_LEN (4 * LOG_VALUE_MAX + 6)

/* value as it is when it holds only printable ASCII other than space, '"',
 * '\\' and '='; else in double quotes, '"' and '\\' escaped by a backslash
 * and every byte outside printable ASCII written \xHH (so a terminal or a
 * log viewer shows no control, no bidirectional override). NULL is "-",
 * "" is "". A value longer than out holds is cut, still quoted, ending in
 * ...". len is at least 8. Returns out. */
const char *log_value(const char *value, char *out, size_t len);

#endif
