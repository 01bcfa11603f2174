/* SPDX-License-Identifier: BSD-2-Clause */
/* The JSON store's file format: parse a whole file into the table, and write
 * the table out again, one key per line. */
#include "json_format.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>

/* n decimal digits, nothing else (sscanf would take a sign or a space). */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DDTHH:MM:SSZ", a real date and time (no February 31, no leap
 * second: timegm would roll them over), from 1970-01-01T00:00:01Z on. The
 * epoch itself would read as 0, which means "never" or "not revoked". */
static int parse_time(json_t *v, int null_ok, int64_t *out)
{
    if (json_is_null(v) && null_ok) {
        *out = 0;
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != 'Z')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 59)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = se};
    int64_t t = (int64_t)timegm(&tm);
    if (tm.tm_mday != d || tm.tm_mon != mo - 1 || t <= 0)
        return -1;
    *out = t;
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int copy_string(json_t *v, char *out, size_t max)
{
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) >= max || json_string_length(v) != strlen(s))
        return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

/* An array of at most max_entries strings, none empty or holding a space
 * or a control character, into out joined by single spaces; -1 when it is
 * anything else or the joined text does not fit in max bytes. */
static int join_words(json_t *arr, size_t max_entries, char *out, size_t max)
{
    if (!json_is_array(arr) || json_array_size(arr) > max_entries)
        return -1;
    size_t i, used = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        size_t n = s ? strlen(s) : 0;
        if (!n || json_string_length(v) != n || used + n + (used > 0) >= max)
            return -1;
        for (size_t c = 0; c < n; c++)
            if ((unsigned char)s[c] <= ' ' || s[c] == 0x7f)
                return -1;
        if (used)
            out[used++] = ' ';
        memcpy(out + used, s, n + 1);
        used += n;
    }
    return 0;
}

static const struct {
    const char *per;
    uint32_t seconds;
} periods[] = {{"1s", 1}, {"1min", 60}, {"1h", 3600}};

/* null, or an object of exactly limit, per and burst. */
static int parse_rate(json_t *v, apikey_record *rec)
{
    if (json_is_null(v))
        return 0;
    json_t *limit = json_object_get(v, "limit"), *burst = json_object_get(v, "burst");
    const char *per = json_string_value(json_object_get(v, "per"));
    if (!json_is_object(v) || json_object_size(v) != 3 || !json_is_integer(limit) ||
        !json_is_integer(burst) || !per || json_integer_value(limit) < 1 ||
        json_integer_value(limit) > APIKEY_RATE_MAX || json_integer_value(burst) < 1 ||
        json_integer_value(burst) > APIKEY_RATE_MAX)
        return -1;
    for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++)
        if (strcmp(per, periods[i].per) == 0) {
            rec->rate_limit = (uint32_t)json_integer_value(limit);
            rec->rate_burst = (uint32_t)json_integer_value(burst);
            rec->rate_period = periods[i].seconds;
            return 0;
        }
    return -1;
}

static int parse_key(json_t *k, int version, apikey_record *rec, const char **bad)
{
    memset(rec, 0, sizeof *rec);
    *bad = "is not an object";
    if (!json_is_object(k))
        return -1;
    const char *id = json_string_value(json_object_get(k, "id"));
    *bad = "has no valid \"id\" (8 of [0-9A-Za-z])";
    if (!id || strlen(id) != APIKEY_ID_LEN ||
        strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != APIKEY_ID_LEN)
        return -1;
    memcpy(rec->id, id, APIKEY_ID_LEN + 1);
    *bad = "has no valid \"account\"";
    if (copy_string(json_object_get(k, "account"), rec->account, sizeof rec->account))
        return -1;
    *bad = "has no valid \"name\"";
    if (copy_string(json_object_get(k, "name"), rec->name, sizeof rec->name))
        return -1;
    *bad = "has no valid \"scopes\" array";
    if (join_words(json_object_get(k, "scopes"), SIZE_MAX, rec->scopes, sizeof rec->scopes))
        return -1;
    /* Required from version 2 on, and unknown before: a list the reader
     * cannot read must never pass for "any address". */
    json_t *allow = json_object_get(k, "allow_from");
    *bad = version < 2 ? "has \"allow_from\", which a version 1 store does not have"
                       : "has no valid \"allow_from\" (an array of at most 16 addresses, "
                         "each without spaces or control characters)";
    if (version < 2 ? allow != NULL
                    : join_words(allow, APIKEY_ALLOW_ENTRIES, rec->allow_from, sizeof rec->allow_from))
        return -1;
    /* Required from version 3 on (null: no limit), unknown before: a limit
     * the reader cannot read must never pass for "no limit". */
    json_t *rate = json_object_get(k, "rate");
    *bad = version < 3 ? "has \"rate\", which a store before version 3 does not have"
                       : "has no valid \"rate\" (null, or {\"limit\": N, \"per\": \"1s\", "
                         "\"1min\" or \"1h\", \"burst\": N})";
    if (version < 3 ? rate != NULL : parse_rate(rate, rec) != 0)
        return -1;
    const char *hash = json_string_value(json_object_get(k, "hash"));
    *bad = "has no valid \"hash\" (64 hex digits)";
    if (!hash || strlen(hash) != 2 * APIKEY_HASH_LEN)
        return -1;
    for (int b = 0; b < APIKEY_HASH_LEN; b++) {
        int hi = hexval(hash[2 * b]), lo = hexval(hash[2 * b + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        rec->hash[b] = (unsigned char)(hi << 4 | lo);
    }
    *bad = "has a bad time: \"created\" is required, \"expires\", \"last_used\" and "
           "\"revoked\" are ISO 8601 UTC or null";
    if (parse_time(json_object_get(k, "created"), 0, &rec->created) ||
        parse_time(json_object_get(k, "expires"), 1, &rec->expires) ||
        parse_time(json_object_get(k, "last_used"), 1, &rec->last_used) ||
        parse_time(json_object_get(k, "revoked"), 1, &rec->revoked))
        return -1;
    *bad = "is malformed (a control character in a text)";
    return apikey_record_ok(rec) ? 0 : -1;
}

int json_db_load(json_db *db, int fd, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *root = NULL;
    int rc = APIKEY_ST_UNAVAILABLE;
    /* jansson reads a descriptor a byte per read(2): a store of a million
     * keys took minutes of system time. Parse it from memory instead, read
     * whole: not a mapping, which raises SIGBUS in the host if the file is
     * cut short (truncated, copied over in place) while it is parsed. */
    struct stat fst;
    if (fstat(fd, &fst) != 0) {
        snprintf(why, whylen, "cannot stat it: %s", strerror(errno));
        return rc;
    }
    size_t len = (size_t)fst.st_size, have = 0;
    char *text = malloc(len ? len : 1);
    if (!text) {
        snprintf(why, whylen, "out of memory");
        return APIKEY_ST_NOMEM;
    }
    while (have < len) {
        ssize_t n = pread(fd, text + have, len - have, (off_t)have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, whylen, "cannot read it: %s", n < 0 ? strerror(errno) : "cut short while read");
            free(text);
            return rc;
        }
        have += (size_t)n;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) {
        snprintf(why, whylen, "not valid JSON (line %d: %s)", jerr.line, jerr.text);
        return rc;
    }
    json_t *format = json_object_get(root, "format"), *version = json_object_get(root, "version");
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_string(format) ||
        strcmp(json_string_value(format), JSON_STORE_FORMAT) != 0) {
        snprintf(why, whylen, "not an apikey store (no \"format\": \"%s\")", JSON_STORE_FORMAT);
        goto done;
    }
    json_int_t v = json_is_integer(version) ? json_integer_value(version) : 0;
    if (v < JSON_STORE_OLDEST || v > JSON_STORE_VERSION) {
        snprintf(why, whylen, "store version %s is not supported (this program reads versions %d to %d)",
                 json_is_integer(version) ? "newer or unknown" : "missing", JSON_STORE_OLDEST,
                 JSON_STORE_VERSION);
        goto done;
    }
    if (!json_is_array(keys)) {
        snprintf(why, whylen, "\"keys\" is not an array");
        goto done;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        apikey_record rec;
        const char *bad;
        if (parse_key(k, (int)v, &rec, &bad) != 0) {
            snprintf(why, whylen, "key #%zu %s", i + 1, bad);
            goto done;
        }
        int st = json_db_insert(db, &rec);
        if (st != APIKEY_ST_OK) {
            snprintf(why, whylen, st == APIKEY_ST_CONFLICT ? "key #%zu repeats an id" : "key #%zu: out of memory", i + 1);
            rc = st == APIKEY_ST_NOMEM ? APIKEY_ST_NOMEM : APIKEY_ST_UNAVAILABLE;
            goto done;
        }
    }
    rc = APIKEY_ST_OK;
done:
    json_decref(root);
    return rc;
}

/* The file is written by hand rather than through a jansson tree: a store
 * of 100,000 keys is rewritten at every change, and the tree costs ten
 * times the writing. */
typedef struct emitter {
    int fd;
    char buf[1 << 20]; /* fewer, larger writes: a store is tens of megabytes */
    size_t used;
    int failed;
    int bad_text; /* failed on a text that is not UTF-8 */
    int64_t day; /* of date, "YYYY-MM-DD" of the last time written */
    char date[10];
} emitter;

static void flush(emitter *e)
{
    const char *p = e->buf;
    while (!e->failed && e->used > 0) {
        ssize_t n = write(e->fd, p, e->used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e->failed = 1;
            break;
        }
        p += n;
        e->used -= (size_t)n;
    }
    e->used = 0;
}

static void put(emitter *e, const char *s, size_t n)
{
    if (e->used + n > sizeof e->buf)
        flush(e);
    if (n > sizeof e->buf) {
        for (size_t i = 0; i < n; i += sizeof e->buf)
            put(e, s + i, n - i < sizeof e->buf ? n - i : sizeof e->buf);
        return;
    }
    memcpy(e->buf + e->used, s, n);
    e->used += n;
}

static void puts_raw(emitter *e, const char *s)
{
    put(e, s, strlen(s));
}

static void put_string(emitter *e, const char *s, size_t n)
{
    put(e, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t len;
        /* JSON is UTF-8 only: a text of other bytes would leave a file no
         * reader accepts. libapikey refuses such texts; this is the last
         * guard (a record copied from another store), and fails the write. */
        if (c >= 0x80 && (len = apikey_utf8_char(s + i, n - i, &cp)) > 0) {
            i += len - 1;
            continue;
        }
        if (c >= 0x80) {
            e->failed = 1;
            e->bad_text = 1;
            return;
        }
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(e, s + run, i - run);
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else
            snprintf(esc, sizeof esc, "\\u%04x", c);
        puts_raw(e, esc);
        run = i + 1;
    }
    put(e, s + run, n - run);
    put(e, "\"", 1);
}

/* "YYYY-MM-DDTHH:MM:SSZ" by hand: gmtime_r and strftime were a quarter of
 * rewriting a store. Days to civil date after Howard Hinnant's algorithm. */
static void put_time(emitter *e, int64_t t)
{
    if (!t) {
        puts_raw(e, "null");
        return;
    }
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    /* Most times of a store fall on a few days: the date is reused. */
    if (days != e->day) {
        int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
        int64_t y = yoe + era * 400 + (m <= 2);
        if (y < 0 || y > 9999) {
            puts_raw(e, "null"); /* cannot happen: parsed times are from 1970 on */
            return;
        }
        e->day = days;
        e->date[0] = (char)('0' + y / 1000);
        e->date[1] = (char)('0' + y / 100 % 10);
        e->date[2] = (char)('0' + y / 10 % 10);
        e->date[3] = (char)('0' + y % 10);
        e->date[4] = '-';
        e->date[5] = (char)('0' + m / 10);
        e->date[6] = (char)('0' + m % 10);
        e->date[7] = '-';
        e->date[8] = (char)('0' + d / 10);
        e->date[9] = (char)('0' + d % 10);
    }
    char b[22];
    int64_t hh = secs / 3600, mm = secs / 60 % 60, ss = secs % 60;
    b[0] = '"';
    memcpy(b + 1, e->date, sizeof e->date);
    b[11] = 'T';
    b[12] = (char)('0' + hh / 10);
    b[13] = (char)('0' + hh % 10);
    b[14] = ':';
    b[15] = (char)('0' + mm / 10);
    b[16] = (char)('0' + mm % 10);
    b[17] = ':';
    b[18] = (char)('0' + ss / 10);
    b[19] = (char)('0' + ss % 10);
    b[20] = 'Z';
    b[21] = '"';
    put(e, b, sizeof b);
}

/* A space-separated text as a JSON array of its words ("" is []). */
static void put_words(emitter *e, const char *s)
{
    puts_raw(e, "[");
    s += strspn(s, " ");
    for (int first = 1; *s; first = 0) {
        size_t n = strcspn(s, " ");
        if (!first)
            puts_raw(e, ", ");
        put_string(e, s, n);
        s += n;
        while (*s == ' ')
            s++;
    }
    puts_raw(e, "]");
}

static void put_key(emitter *e, const json_rec *j)
{
    static const char hexd[] = "0123456789abcdef";
    char hex[2 * APIKEY_HASH_LEN];
    for (int b = 0; b < APIKEY_HASH_LEN; b++) {
        hex[2 * b] = hexd[j->hash[b] >> 4];
        hex[2 * b + 1] = hexd[j->hash[b] & 15];
    }
    puts_raw(e, "  {\"id\": ");
    put_string(e, j->id, strlen(j->id));
    puts_raw(e, ", \"account\": ");
    put_string(e, j->account, strlen(j->account));
    puts_raw(e, ", \"name\": ");
    put_string(e, j->name, strlen(j->name));
    puts_raw(e, ",\n   \"scopes\": ");
    put_words(e, j->scopes);
    puts_raw(e, ", \"hash\": \"");
    put(e, hex, sizeof hex);
    puts_raw(e, "\",\n   \"created\": ");
    put_time(e, j->created);
    puts_raw(e, ", \"expires\": ");
    put_time(e, j->expires);
    puts_raw(e, ", \"last_used\": ");
    put_time(e, j->last_used);
    puts_raw(e, ", \"revoked\": ");
    put_time(e, j->revoked);
    puts_raw(e, ",\n   \"allow_from\": ");
    put_words(e, j->allow_from);
    puts_raw(e, ", \"rate\": ");
    const char *per = NULL;
    for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++)
        if (j->rate_limit && j->rate_period == periods[i].seconds)
            per = periods[i].per;
    char rate[96];
    if (per)
        snprintf(rate, sizeof rate, "{\"limit\": %u, \"per\": \"%s\", \"burst\": %u}",
                 j->rate_limit, per, j->rate_burst);
    puts_raw(e, per ? rate : "null");
    puts_raw(e, "}");
}

int json_db_write(const json_db *db, int fd)
{
    emitter *e = malloc(sizeof *e);
    if (!e)
        return -1;
    e->fd = fd;
    e->used = 0;
    e->failed = 0;
    e->bad_text = 0;
    e->day = INT64_MIN;
    char head[128];
    snprintf(head, sizeof head, "{\"format\": \"%s\", \"version\": %d, \"keys\": [\n",
             JSON_STORE_FORMAT, JSON_STORE_VERSION);
    puts_raw(e, head);
    for (size_t i = 0; i < db->n; i++) {
        put_key(e, &db->recs[i]);
        puts_raw(e, i + 1 < db->n ? ",\n" : "\n");
    }
    puts_raw(e, "]}\n");
    flush(e);
    int rc = e->bad_text ? -2 : e->failed ? -1 : 0;
    free(e);
    return rc;
}
