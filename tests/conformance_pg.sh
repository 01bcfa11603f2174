#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Inside tests/pg_harness.sh: a store suite (test_conformance, test_store_abi,
# test_store_upgrade,
# test_soak) against PostgreSQL
# directly, then through pgbouncer in transaction pooling mode.
t=$1
admin="createdb -h $APIKEY_PG_HOST -p $APIKEY_PG_PORT -U $APIKEY_PG_USER"
rc=0
APIKEY_TEST_STORE=pgsql APIKEY_TEST_PG_ADMIN="$admin" \
    APIKEY_TEST_PG="host=$APIKEY_PG_HOST port=$APIKEY_PG_PORT user=$APIKEY_PG_USER" "$t" || rc=1
APIKEY_TEST_STORE=pgsql APIKEY_TEST_PG_ADMIN="$admin" \
    APIKEY_TEST_PG="host=$APIKEY_PGB_HOST port=$APIKEY_PGB_PORT user=$APIKEY_PG_USER" "$t" || rc=1
exit $rc
