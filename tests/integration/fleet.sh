#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# A fleet (doc/STORES.md, "A fleet"): a PostgreSQL store of record
# (tests/pg_harness.sh), apikey-syncd keeping a replica, and a long-lived
# host (the Squid helper) checking against the replica. Every wait is a
# bounded poll, never a duration asserted.
#   propagation  a revocation in the store of record is refused on the host;
#                a new key is accepted
#   cut off      syncd stopped (SIGSTOP): the revoked key is refused once the
#                replica's lag passes (the direct query); PostgreSQL stopped
#                too: unavailable (BH), never OK
#   resume       syncd catches up from the log, no second full copy, and
#                `list --all --json` is the same on both sides
#   kill -9      during a full copy and during a burst of changes
#   trimmed log  past syncd's position: one full copy, said once
#   malformed    a key row made malformed by hand: BH, never OK
#   pgbouncer    in transaction mode: polling, said once; a use carried
#                with a log read
#   uses refused by the server (a trigger): said once, the session and its
#                reads go on; carried once taken again
#   metrics      apikey-authd on the replica exports its lag, last change
#                and whether it is trusted
if [ -z "${APIKEY_PG_HOST:-}" ]; then
    exec sh "$(dirname "$0")/../pg_harness.sh" sh "$0" "$@"
fi
set -u
cd "$(dirname "$0")/../.." || exit 2
for f in build/basic_apikey_auth build/apikey build/apikey-syncd build/apikey-authd build/store/apikey_store_sqlite.so \
    build/store/apikey_store_pgsql.so; do
    [ -f "$f" ] || { echo "not ok - $f is not built (make all)"; exit 1; }
done
for v in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export APIKEY_STORE_DIR="$(pwd)/build/store"
T=$(mktemp -d /tmp/apikey-fleet.XXXXXX) || exit 2
chmod 755 "$T"
HPID="" SPID="" S2PID="" APID=""
fails=0
cleanup() {
    kill -CONT $SPID $S2PID 2>/dev/null
    kill $HPID $SPID $S2PID $APID 2>/dev/null
    wait 2>/dev/null
    if [ "$fails" -ne 0 ]; then
        for f in "$T"/syncd*.log "$T/helper.log" "$T/authd.log"; do
            [ -f "$f" ] && { echo "# --- $(basename "$f"):"; tail -n 20 "$f" | sed 's/^/#   /'; }
        done
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
trap '' PIPE
not_ok() { echo "not ok - fleet: $*"; fails=$((fails + 1)); }
ok() { echo "ok - fleet: $*"; }

DB=fleet_$$
createdb -h "$APIKEY_PG_HOST" -p "$APIKEY_PG_PORT" -U "$APIKEY_PG_USER" "$DB" || exit 1
PGC="host=$APIKEY_PG_HOST port=$APIKEY_PG_PORT user=$APIKEY_PG_USER dbname=$DB"
psql_do() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$PGC" -c "$1"; }
LAG=2
mkdir -m 750 "$T/replica" "$T/replica2"
conf() { # FILE STORE REPLICA
    printf 'store = %s\n%s\nreplica_max_lag = %ss\nmax_keys_per_account = 1000000\n[services]\nfleet = proxies:read\n' \
        "$2" "${3:+replica = $3}" "$LAG" > "$1"
    chmod 600 "$1"
}
conf "$T/host.conf" "pgsql:$PGC" "$T/replica"
conf "$T/record.conf" "pgsql:$PGC" ""
conf "$T/copy.conf" "sqlite:$T/replica/keys.db" ""
conf "$T/pgb.conf" "pgsql:host=$APIKEY_PGB_HOST port=$APIKEY_PGB_PORT user=$APIKEY_PG_USER dbname=$DB" \
    "$T/replica2"
APIKEY="build/apikey --config $T/record.conf"
id_of() { echo "$1" | cut -c1-11; }

K1=$($APIKEY create u1 --name k1 --scopes proxies:read) || { not_ok "apikey create"; exit 1; }
# The log's tables as a new store of record has them, never analyzed, until
# the plan is looked at below (autovacuum could otherwise analyze them first).
LOG_TABLES="apikey_changes apikey_changes_trimmed apikey_keys_v3"
for tb in $LOG_TABLES; do psql_do "ALTER TABLE $tb SET (autovacuum_enabled = off)"; done
K2=$($APIKEY create u1 --name k2 --scopes proxies:read)
K3=$($APIKEY create u1 --name k3 --scopes proxies:read)
K4=$($APIKEY create u1 --name k4 --scopes proxies:read)

start_syncd() { # [CONF LOG]: the host's syncd, or another
    build/apikey-syncd --config "${1:-$T/host.conf}" 2>> "${2:-$T/syncd.log}" &
    if [ -z "${1:-}" ]; then SPID=$!; else S2PID=$!; fi
}
# until COMMAND succeeds, 20 s at most
until_true() {
    i=0
    while ! "$@"; do
        i=$((i + 1)); [ $i -lt 200 ] || return 1
        sleep 0.1
    done
}
contact_seen() { [ -s "$T/replica/contact" ]; }

start_helper() {
    rm -f "$T/in" "$T/out"; mkfifo "$T/in" "$T/out"
    build/basic_apikey_auth --config "$T/host.conf" --service fleet < "$T/in" > "$T/out" 2>> "$T/helper.log" &
    HPID=$!
    exec 3> "$T/in" 4< "$T/out"
}
answer() { # KEY: the helper's first word
    printf 'u1 %s\n' "$1" >&3
    read -r a <&4 || { echo DEAD; return; }
    echo "${a%% *}"
}
answers() { [ "$(answer "$1")" = "$2" ]; }
same_lists() { # the store of record and the replica, last_used aside (not carried yet)
    $APIKEY list --all --json | jq -S 'map(del(.last_used))' > "$T/a.json" &&
        build/apikey --config "$T/copy.conf" list --all --json | jq -S 'map(del(.last_used))' > "$T/b.json" &&
        cmp -s "$T/a.json" "$T/b.json"
}
full_copies() { grep -c 'full copy:' "$T/syncd.log"; }

start_syncd
until_true contact_seen || { not_ok "syncd never wrote its contact line"; exit 1; }
start_helper
if answers "$K1" OK && answers "$K2" OK; then ok "a host on the replica accepts a key"; else not_ok "a key on the replica: not OK"; fi

# Propagation: the replica alone holds the revocation, the direct path is not involved.
$APIKEY revoke "$(id_of "$K1")" >/dev/null
if until_true answers "$K1" ERR; then ok "propagation: a revocation is refused on the host"; else not_ok "propagation: the revoked key was not refused"; fi
K5=$($APIKEY create u1 --name k5 --scopes proxies:read)
if until_true answers "$K5" OK; then ok "propagation: a new key is accepted"; else not_ok "propagation: a new key never accepted"; fi

# syncd's log read, as it sent it (pg_stat_activity), planned on tables
# PostgreSQL has not analyzed: a plan that costs more than jit_above_cost is
# compiled by LLVM at every read (1-9 s a read on a loaded machine, every
# revocation that late until autovacuum analyzed the log).
syncd_read() {
    psql_do "SELECT query FROM pg_stat_activity WHERE datname = current_database()
        AND application_name = 'apikey-syncd' AND query LIKE '%apikey_changes c%'" | grep . > "$T/read.sql"
}
if until_true syncd_read; then
    at=$(cut -d' ' -f4 "$T/replica/contact")
    cost=$(psql_do "EXPLAIN (FORMAT JSON) $(sed "s/[$]1::bigint/$at::bigint/" "$T/read.sql")" | jq '.[0].Plan."Total Cost"')
    jit=$(psql_do "SHOW jit_above_cost")
    if awk -v c="$cost" -v j="$jit" 'BEGIN { exit !(c != "" && c + 0 < j + 0) }'; then
        ok "syncd's log read on unanalyzed tables costs $cost, under jit_above_cost ($jit)"
    else not_ok "syncd's log read on unanalyzed tables costs ${cost:-?}, jit_above_cost $jit: compiled at every read"; fi
    # On a direct connection syncd prepares the read and runs its generic
    # plan (plan_cache_mode = force_generic_plan): that plan too, with $1
    # unknown, stays under jit_above_cost.
    psql -X -q -t -A -v ON_ERROR_STOP=1 "$PGC" > "$T/generic.json" <<EOF
SET plan_cache_mode = force_generic_plan;
PREPARE syncd_read(bigint) AS $(cat "$T/read.sql");
EXPLAIN (FORMAT JSON) EXECUTE syncd_read($at);
EOF
    generic=$(jq '.[0].Plan."Total Cost"' "$T/generic.json")
    if awk -v c="$generic" -v j="$jit" 'BEGIN { exit !(c != "" && c + 0 < j + 0) }'; then
        ok "syncd's prepared log read, its generic plan, costs $generic, under jit_above_cost ($jit)"
    else not_ok "syncd's prepared log read, its generic plan, costs ${generic:-?}, jit_above_cost $jit"; fi
    # The session keeps that plan, made on the store as syncd found it (here
    # a few keys), as the store grows: each change's key must be looked up
    # by its id, never the key table scanned and hashed at every read (5 ms
    # a read at 10,000 keys, 26 ms at 40,000, until autovacuum analyzed).
    shape=$(jq -r '[.. | objects | select(."Relation Name"? == "apikey_keys_v3") | ."Node Type"] | unique | join(",")' \
        "$T/generic.json")
    if [ "$shape" = "Index Scan" ]; then
        ok "syncd's prepared log read looks each change's key up by its index, on a store of a few keys"
    else not_ok "syncd's prepared log read reads the key table by '${shape:-?}' (kept as the store grows)"; fi
else not_ok "syncd's log read not seen in pg_stat_activity"; fi
for tb in $LOG_TABLES; do psql_do "ALTER TABLE $tb RESET (autovacuum_enabled)"; done

# Last use on the host, carried by syncd to the store of record.
used() { # KEY: its last use recorded in the store of record
    $APIKEY list --all --json | jq -e --arg id "$(id_of "$1")" '.[] | select(.id == $id) | .last_used != null' >/dev/null
}
if until_true used "$K5"; then ok "last use on a replica host reaches the store of record"; else not_ok "last use of K5 never carried"; fi

if build/apikey --config "$T/host.conf" status > "$T/status" && grep -q '^source: the replica' "$T/status" &&
    grep -q '^last change applied: [1-9]' "$T/status"; then ok "status: the replica, its lag and last change"
else not_ok "status on a fresh replica: $(tr '\n' ' ' < "$T/status")"; fi

# apikey-authd's /metrics: the replica's lag and last change, as the contact line says.
build/apikey-authd --config "$T/host.conf" --listen "unix:$T/authd.sock" 2>> "$T/authd.log" &
APID=$!
metric() { # NAME: its value in /metrics
    curl -s --unix-socket "$T/authd.sock" http://authd/metrics | sed -n "s/^$1 //p"
}
metrics_seen() { [ -n "$(metric apikey_authd_replica_trusted)" ]; }
until_true metrics_seen
seq_now=$(cut -d' ' -f4 "$T/replica/contact")
if [ "$(metric apikey_authd_replica_trusted)" = 1 ] && [ "$(metric apikey_authd_replica_last_change)" -ge "$seq_now" ] &&
    [ "$(metric apikey_authd_replica_max_lag_seconds)" = "$LAG.000" ] &&
    awk -v l="$(metric apikey_authd_replica_lag_seconds)" 'BEGIN { exit !(l >= 0 && l < 2) }'; then
    ok "authd /metrics: the replica's lag, last change and trust"
else not_ok "authd /metrics on a fresh replica: $(curl -s --unix-socket "$T/authd.sock" http://authd/metrics | grep replica | tr '\n' ' ')"; fi

# Cut off: syncd stopped, K2 revoked in the store of record.
kill -STOP "$SPID"
$APIKEY revoke "$(id_of "$K2")" >/dev/null
if until_true answers "$K2" ERR; then ok "cut off: the revoked key is refused once the lag passes (direct query)"
else not_ok "cut off: the revoked key was not refused"; fi
build/apikey --config "$T/host.conf" status > "$T/status"
[ $? = 1 ] && grep -q 'not trusted' "$T/status" && ok "status: a stale replica said, exit 1" ||
    not_ok "status on a stale replica: $(tr '\n' ' ' < "$T/status")"
untrusted() { [ "$(metric apikey_authd_replica_trusted)" = 0 ]; }
if until_true untrusted && awk -v l="$(metric apikey_authd_replica_lag_seconds)" -v m="$LAG" 'BEGIN { exit !(l >= m) }'; then
    ok "authd /metrics: a stale replica, its lag past replica_max_lag"
else not_ok "authd /metrics on a stale replica: $(curl -s --unix-socket "$T/authd.sock" http://authd/metrics | grep replica | tr '\n' ' ')"; fi
kill "$APID"; wait "$APID" 2>/dev/null; APID=""
# PostgreSQL stopped too: K3 (valid) cannot be confirmed: BH; K2 never OK.
"$APIKEY_PG_CTL" stop
if until_true answers "$K3" BH; then ok "cut off: the store of record down too: unavailable"
else not_ok "cut off: with both down, K3 got $(answer "$K3"), not BH"; fi
a=$(answer "$K2"); [ "$a" != OK ] && ok "cut off: the revoked key never OK ($a)" || not_ok "cut off: the revoked key OK"

# Resume: from the log, no second full copy.
"$APIKEY_PG_CTL" start
$APIKEY revoke "$(id_of "$K4")" >/dev/null
kill -CONT "$SPID"
if until_true answers "$K4" ERR && until_true same_lists && [ "$(full_copies)" = 1 ]; then
    ok "resume: caught up from the log, one full copy in all, lists equal"
else
    not_ok "resume: lists differ or $(full_copies) full copies"
fi

# Malformed: a key row broken by hand; the host answers BH for it, never OK.
psql_do "UPDATE apikey_keys_v3 SET expires = -5 WHERE id = '$(id_of "$K3" | cut -c4-)'"
if until_true answers "$K3" BH; then ok "malformed row: unavailable"; else not_ok "malformed row: got $(answer "$K3")"; fi
grep -q 'is malformed' "$T/syncd.log" && ok "malformed row: said" || not_ok "malformed row: not said"
psql_do "UPDATE apikey_keys_v3 SET expires = 0 WHERE id = '$(id_of "$K3" | cut -c4-)'"
until_true answers "$K3" OK || not_ok "malformed row mended: K3 not OK again"

# Log rows that name no key: said, skipped, and later changes still arrive.
psql_do "INSERT INTO apikey_changes (id) VALUES (NULL), ('not a key')"
$APIKEY revoke "$(id_of "$K3")" >/dev/null
if until_true answers "$K3" ERR && [ "$(grep -c 'malformed (no key id)' "$T/syncd.log")" = 2 ]; then
    ok "log rows naming no key: said, skipped, the next change applied"
else not_ok "log rows naming no key: $(grep -c 'malformed (no key id)' "$T/syncd.log") lines"; fi

# kill -9 during a burst of changes: 2,000 keys in one batch, then 2,000 revocations.
awk 'BEGIN { for (i = 0; i < 2000; i++) printf "u2\tb%d\tproxies:read\tnever\n", i }' > "$T/batch"
$APIKEY create --batch "$T/batch" > "$T/batch.keys" || not_ok "create --batch"
psql_do "UPDATE apikey_keys_v3 SET revoked = extract(epoch from now())::bigint WHERE account = 'u2'" &
PSQL=$!
sleep 0.3
kill -9 "$SPID"
wait "$SPID" "$PSQL" 2>/dev/null
start_syncd
if until_true same_lists && [ "$(full_copies)" = 1 ]; then ok "kill -9 during a burst: resumed from the log, lists equal"
else not_ok "kill -9 during a burst: lists differ or $(full_copies) full copies"; fi

# kill -9 during a full copy (a new replica), then a restart completes it.
kill "$SPID"; wait "$SPID" 2>/dev/null
rm -f "$T"/replica/*
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "u3\tc%d\tproxies:read\tnever\n", i }' > "$T/batch"
$APIKEY create --batch "$T/batch" > "$T/u3.keys" || not_ok "create --batch"
start_syncd
until_true test -s "$T/replica/keys.db" || true
sleep 0.2
kill -9 "$SPID"; wait "$SPID" 2>/dev/null
a=$(answer "$K1"); [ "$a" != OK ] || not_ok "kill -9 during a full copy: a revoked key OK"
start_syncd
if until_true contact_seen && until_true same_lists && until_true answers "$K5" OK; then
    ok "kill -9 during a full copy: the restart completes it"
else not_ok "kill -9 during a full copy: lists differ"; fi

# The log trimmed past syncd's position: one full copy, said once.
kill "$SPID"; wait "$SPID" 2>/dev/null
$APIKEY revoke "$(id_of "$K5")" >/dev/null
psql_do "UPDATE apikey_changes_trimmed SET seq = (SELECT max(seq) FROM apikey_changes); DELETE FROM apikey_changes"
before=$(full_copies)
start_syncd
copied_once_more() { [ "$(full_copies)" = $((before + 1)) ]; }
if until_true answers "$K5" ERR && until_true same_lists && until_true copied_once_more &&
    [ "$(grep -c 'trimmed past' "$T/syncd.log")" = 1 ]; then
    ok "trimmed log: one full copy, said once"
else not_ok "trimmed log: $(grep -c 'trimmed past' "$T/syncd.log") lines, $(($(full_copies) - before)) copies"; fi

# pgbouncer in transaction mode: said once, changes still arrive (polling).
start_syncd "$T/pgb.conf" "$T/syncd2.log"
K6=$($APIKEY create u1 --name k6 --scopes proxies:read)
$APIKEY revoke "$(id_of "$K6")" >/dev/null
until_true grep -q 'full copy' "$T/syncd2.log"
seq6=$(psql_do "SELECT max(seq) FROM apikey_changes")
at_change() { # REPLICA SEQ: the replica has applied change SEQ
    [ "$(cut -d' ' -f4 "$1/contact" 2>/dev/null)" -ge "$2" ] 2>/dev/null
}
if until_true at_change "$T/replica2" "$seq6" && [ "$(grep -c 'connection pooler' "$T/syncd2.log")" = 1 ]; then
    ok "pgbouncer: polling, said once"
else not_ok "pgbouncer: $(grep -c 'connection pooler' "$T/syncd2.log") lines, or not caught up"; fi

# Through pgbouncer too, a use goes ahead of a log read in one pipeline
# (each statement its own transaction): carried, and the reads go on.
tell_use() { # REPLICA KEY: a use of KEY told to that replica's syncd, as a host does
    python3 - "$1/uses.sock" "$(echo "$2" | cut -c4-11)" <<'PY' || not_ok "uses: could not tell syncd"
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(sys.argv[1])
s.send(("%s %d\n" % (sys.argv[2], int(time.time()))).encode())
PY
}
K7=$($APIKEY create u1 --name k7 --scopes proxies:read)
tell_use "$T/replica2" "$K7"
$APIKEY revoke "$(id_of "$K7")" >/dev/null
seq7=$(psql_do "SELECT max(seq) FROM apikey_changes")
if until_true used "$K7" && until_true at_change "$T/replica2" "$seq7" && ! grep -q 'recording last-used' "$T/syncd2.log"; then
    ok "pgbouncer: a use carried with a log read, the reads go on"
else not_ok "pgbouncer: a use of K7 not carried, or the replica behind: $(grep 'recording' "$T/syncd2.log")"; fi

# Last-used times refused by the store of record (here a trigger; a
# permission taken away does the same): said once, kept, and the session
# and its reads go on; carried once the server takes them again.
psql_do "CREATE FUNCTION apikey_test_no_uses() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'no last use here'; END\$\$;
    CREATE TRIGGER apikey_test_no_uses BEFORE UPDATE OF last_used ON apikey_keys_v3 FOR EACH ROW EXECUTE FUNCTION apikey_test_no_uses()"
K8=$($APIKEY create u1 --name k8 --scopes proxies:read)
reconnects=$(grep -c 'connected again' "$T/syncd.log")
tell_use "$T/replica" "$K8"
refused_said() { grep -q 'refused last-used times: .*no last use here' "$T/syncd.log"; }
until_true refused_said
sleep 2.5 # two more carries refused, each with a read
# A new key (an INSERT: the trigger refuses updates of last_used only).
K9=$($APIKEY create u1 --name k9 --scopes proxies:read) || not_ok "uses refused: apikey create failed"
seq9=$(psql_do "SELECT max(seq) FROM apikey_changes")
if refused_said && until_true at_change "$T/replica" "$seq9" && [ "$(grep -c 'refused last-used' "$T/syncd.log")" = 1 ] &&
    [ "$(grep -c 'connected again' "$T/syncd.log")" = "$reconnects" ] && ! used "$K8"; then
    ok "last-used times refused by the server: said once, the session and its reads go on"
else not_ok "uses refused: $(grep -c 'refused last-used' "$T/syncd.log") said, $(($(grep -c 'connected again' "$T/syncd.log") - reconnects)) reconnections, replica at $(cut -d' ' -f4 "$T/replica/contact") of $seq9"; fi
psql_do "DROP TRIGGER apikey_test_no_uses ON apikey_keys_v3; DROP FUNCTION apikey_test_no_uses()"
recorded_said() { grep -q 'last-used times: recorded again' "$T/syncd.log"; }
if until_true used "$K8" && until_true recorded_said; then ok "last-used times taken again: the kept ones carried, said"
else not_ok "uses taken again: K8's last use not carried, or not said"; fi

# Many uses at once: 10,000 keys told within a second (as a host checking
# many keys does), all carried; a table of 8,192 dropped the rest.
head -n 10000 "$T/u3.keys" | cut -c4-11 > "$T/u3.ids"
python3 - "$T/replica/uses.sock" "$T/u3.ids" <<'PY' || not_ok "uses: could not tell syncd"
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(sys.argv[1])
now = int(time.time())
for line in open(sys.argv[2]):
    s.send(("%s %d\n" % (line.strip(), now)).encode())  # blocking: never dropped here
PY
uses_carried() { [ "$(psql_do "SELECT count(*) FROM apikey_keys_v3 WHERE account = 'u3' AND last_used > 0")" = 10000 ]; }
if until_true uses_carried; then ok "10,000 uses told within a second: all carried"
else not_ok "10,000 uses told: $(psql_do "SELECT count(*) FROM apikey_keys_v3 WHERE account = 'u3' AND last_used > 0") carried"; fi

# A stream of changes, one a transaction, from two writers at once (as the
# bench's revoking writers send them): syncd's reads, woken by the
# notifications, take what came in a couple of milliseconds at a time (and
# at most 1,000 a read). Killed (-9) early in the stream, started again
# after it, it resumes from the last change it applied: all 2,500 on the
# replica, no full copy.
before=$(full_copies)
cut -c4-11 "$T/u3.keys" | sed -n '10001,12500p' |
    awk -v q="'" '{ printf "UPDATE apikey_keys_v3 SET revoked = extract(epoch from now())::bigint WHERE id = %s%s%s;\n", q, $1, q }' > "$T/stream.sql"
split -n l/2 "$T/stream.sql" "$T/stream."
psql -X -q -v ON_ERROR_STOP=1 "$PGC" -f "$T/stream.aa" > /dev/null &
W1=$!
psql -X -q -v ON_ERROR_STOP=1 "$PGC" -f "$T/stream.ab" > /dev/null &
W2=$!
sleep 0.3
kill -9 "$SPID"; wait "$SPID" 2>/dev/null
wait "$W1" && wait "$W2" || not_ok "stream: a writer failed"
start_syncd
if until_true same_lists && [ "$(full_copies)" = "$before" ]; then
    ok "a stream of 2,500 changes, syncd killed -9 in it: all applied from the log"
else not_ok "stream: the lists differ, or $(($(full_copies) - before)) full copies"; fi

exec 3>&- 4<&-
[ "$fails" -eq 0 ]
