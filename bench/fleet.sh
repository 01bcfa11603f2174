#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make bench, a fleet (inside tests/pg_harness.sh): a PostgreSQL store of
# record, apikey-syncd keeping a replica, and
#   - revocation propagation: from COMMIT (apikey_revoke returned) to the
#     first refusal on a host reading the replica, p50/p99/max over N keys;
#   - a check on the replica against a check on a json store, same size;
#   - the full copy of BIG keys (rows inserted by SQL: only the copy is timed).
# Appends (or replaces) its section of bench/RESULTS.md.
# Smaller for a quick look: FLEET_MID=10000 FLEET_BIG=100000 FLEET_N=200 BENCH_SECONDS=3.
set -u
cd "$(dirname "$0")/.." || exit 2
[ -n "${APIKEY_PG_HOST:-}" ] || exec sh tests/pg_harness.sh sh "$0" "$@"
MID=${FLEET_MID:-100000}
BIG=${FLEET_BIG:-1000000}
N=${FLEET_N:-200}
SECS=${BENCH_SECONDS:-3}
T=$(mktemp -d /var/tmp/apikey-fleet-bench.XXXXXX)
SPIDS=""
trap 'kill $SPIDS 2>/dev/null; rm -rf "$T"' EXIT INT TERM
chmod 755 "$T"
export APIKEY_STORE_DIR="$(pwd)/build/store"
ROWS="$T/rows"
: > "$ROWS"
. bench/lib.sh
for v in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
PGC="host=$APIKEY_PG_HOST port=$APIKEY_PG_PORT user=$APIKEY_PG_USER"
LOAD=$(cut -d' ' -f1 /proc/loadavg)

conf() { # FILE STORE [REPLICA]
    printf 'store = %s\n%slast_used_granularity = 1h\nmax_keys_per_account = 1000000\n[services]\nbench = proxies:read\n' \
        "$2" "${3:+replica = $3
}" > "$1"
}
copy_seconds() { # LOG: the time of the last full copy
    sed -n 's/.*full copy: [0-9]* keys at change [0-9]* in \([0-9.]*\) s/\1/p' "$1" | tail -n 1
}
start_syncd() { # CONF LOG: until the first full copy is done
    build/apikey-syncd --config "$1" 2>> "$2" &
    SPIDS="$SPIDS $!"
    i=0
    until grep -q 'full copy' "$2" && [ -s "$(dirname "$1")/replica/contact" ]; do
        i=$((i + 1)); [ $i -lt 6000 ] || { echo "bench: syncd never copied" >&2; exit 1; }
        sleep 0.1
    done
}

echo "== a fleet: $MID keys, $N revocations"
createdb -h "$APIKEY_PG_HOST" -p "$APIKEY_PG_PORT" -U "$APIKEY_PG_USER" fleetmid || exit 1
mkdir -m 750 "$T/mid" "$T/mid/replica"
conf "$T/mid/record.conf" "pgsql:$PGC dbname=fleetmid"
conf "$T/mid/host.conf" "pgsql:$PGC dbname=fleetmid" "$T/mid/replica"
conf "$T/json.conf" "json:$T/keys.json"
awk -v n="$MID" 'BEGIN { for (i = 0; i < n; i++) printf "user%d\tk\tproxies:read\tnever\n", i }' > "$T/batch"
build/apikey --config "$T/mid/record.conf" create --batch "$T/batch" > "$T/mid.keys" || exit 1
build/apikey --config "$T/json.conf" create --batch "$T/batch" > "$T/json.keys" || exit 1
start_syncd "$T/mid/host.conf" "$T/mid/syncd.log"
row "full copy, $MID keys" "$(copy_seconds "$T/mid/syncd.log")" "s" "-" "-"

# Every key checked once first: its last-used write (a json rewrite) is
# then behind it, as in bench/run.sh.
build/bench/verify_loop "$T/json.conf" bench "$T/json.keys" 1 0 rss > /dev/null
build/bench/verify_loop "$T/mid/host.conf" bench "$T/mid.keys" 1 0 rss > /dev/null
JSON=$(build/bench/verify_loop "$T/json.conf" bench "$T/json.keys" 1 "$SECS")
REPLICA=$(build/bench/verify_loop "$T/mid/host.conf" bench "$T/mid.keys" 1 "$SECS")
row "warm verify json, $MID keys, 1 thread" "$JSON" "/s" "-" "1.00x"
row "warm verify on the replica (sqlite), $MID keys, 1 thread" "$REPLICA" "/s" "-" "$(ratio "$REPLICA" "$JSON")x of json"
SIZE=$(cat "$T/mid/replica/keys.db" "$T/mid/replica/keys.db-wal" | wc -c)
row "replica size per key, $MID keys" "$((SIZE / MID))" "bytes" "-" "-"

set -- $(build/bench/propagation "$T/mid/record.conf" "$T/mid/host.conf" bench "$T/mid.keys" "$N")
row "revocation COMMIT to first refusal on a host, p50 ($N keys)" "$1" "ms" "-" "-"
row "revocation COMMIT to first refusal on a host, p99" "$2" "ms" "<= 50 ms" "$(verdict "$2" 50 le)"
row "revocation COMMIT to first refusal on a host, max" "$3" "ms" "-" "-"

echo "== a fleet: full copy of $BIG keys"
createdb -h "$APIKEY_PG_HOST" -p "$APIKEY_PG_PORT" -U "$APIKEY_PG_USER" fleetbig || exit 1
mkdir -m 750 "$T/big" "$T/big/replica"
conf "$T/big/record.conf" "pgsql:$PGC dbname=fleetbig"
conf "$T/big/host.conf" "pgsql:$PGC dbname=fleetbig" "$T/big/replica"
build/apikey --config "$T/big/record.conf" create user0 --name k --scopes proxies:read > /dev/null || exit 1
psql -X -q -v ON_ERROR_STOP=1 "$PGC dbname=fleetbig" -c "INSERT INTO apikey_keys_v3 (id, account, name, scopes, hash, created)
    SELECT lpad(to_hex(i), 8, '0'), 'user' || i, 'k', 'proxies:read', sha256(i::text::bytea), 1700000000
    FROM generate_series(1, $BIG) i" || exit 1
start_syncd "$T/big/host.conf" "$T/big/syncd.log"
C=$(copy_seconds "$T/big/syncd.log")
row "full copy, $BIG keys" "$C" "s" "<= 30 s" "$(verdict "$C" 30 le)"
SIZE=$(cat "$T/big/replica/keys.db" "$T/big/replica/keys.db-wal" | wc -c)
row "replica size per key, $BIG keys" "$((SIZE / (BIG + 1)))" "bytes" "-" "-"

{
    [ -f bench/RESULTS.md ] && awk '/^## A fleet/ { skip = 1; next } /^## / { skip = 0 } !skip' bench/RESULTS.md
    echo
    echo "## A fleet: replica and propagation"
    echo
    echo "Measured by \`make bench\` (bench/fleet.sh) on $(date -u +%Y-%m-%d), load average $LOAD at the start"
    echo "(2 cores shared with other work): PostgreSQL $(psql -X -t -A "$PGC dbname=fleetmid" -c 'SHOW server_version'),"
    echo "on a Unix socket, fsync off (the test server). Propagation: apikey_revoke on the store of"
    echo "record returned (COMMIT acknowledged), then the same process checks the key on a context"
    echo "reading the replica in a loop until it is refused; one key at a time."
    echo
    rows_table
} > "$T/RESULTS.md"
cp "$T/RESULTS.md" bench/RESULTS.md
