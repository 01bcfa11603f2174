/* SPDX-License-Identifier: BSD-2-Clause */
/* A key's row as PostgreSQL sends it (binary format) into a record: shared
 * by the pgsql store and apikey-syncd, which copies rows into a replica. */
#ifndef APIKEY_PGSQL_ROW_H
#define APIKEY_PGSQL_ROW_H

#include <endian.h>
#include <libpq-fe.h>
#include <string.h>

#include "../sql/sql_schema.h"

/* Type oids from catalog/pg_type.h, which is not part of libpq-dev. */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

/* The column types of a row read, and of a record's parameters. */
static const Oid pgsql_record_types[SQL_NCOLS] = {OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_BYTEA,
                                                  OID_INT8, OID_INT8, OID_INT8, OID_INT8, OID_TEXT,
                                                  OID_INT8, OID_INT8, OID_INT8};

/* The SQL_NCOLS columns from col0 of a row into a record: -1 when a value
 * is NULL, of another type (a column altered by hand could hold 8 bytes of
 * text that read as a number), or out of range. */
static inline int pgsql_decode_row(const PGresult *res, int row, int col0, apikey_record *out)
{
    sql_value v[SQL_NCOLS];
    if (PQnfields(res) < col0 + SQL_NCOLS)
        return -1;
    for (int i = 0; i < SQL_NCOLS; i++) {
        int c = col0 + i;
        Oid type = PQftype(res, c);
        v[i] = (sql_value){.kind = SQL_OTHER, .p = PQgetvalue(res, row, c),
                           .len = (size_t)PQgetlength(res, row, c)};
        if (PQgetisnull(res, row, c) || PQfformat(res, c) != 1 || type != pgsql_record_types[i])
            continue;
        if (type == OID_INT8 && v[i].len == sizeof(uint64_t)) {
            uint64_t be;
            memcpy(&be, v[i].p, sizeof be);
            v[i].i = (int64_t)be64toh(be);
            v[i].kind = SQL_INT64;
        } else if (type != OID_INT8) {
            v[i].kind = type == OID_TEXT ? SQL_TEXT : SQL_BYTES;
        }
    }
    return sql_decode_record(v, out);
}

#endif
