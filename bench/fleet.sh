#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make bench, a fleet (inside tests/pg_harness.sh): a PostgreSQL store of
# record and
#   - at MID and BIG keys: the full copy by apikey-syncd, a check on the
#     replica against a check on a json store of the same keys, the
#     replica's size per key;
#   - 4 replicas of the MID store, each with its own apikey-syncd, and on
#     each three real hosts checking in a loop every FLEET_INTERVAL_MS: the
#     Squid helper, PAM (build/pam_try -l) and the nginx module
#     (bench/propagation.c drives them): N revocations, COMMIT to the first
#     refusal on each host; new keys, COMMIT to acceptance on every host;
#     the same three hosts on a fifth replica whose syncd's queries reach
#     the server FLEET_DELAY_MS (50) late, through bench/delay_proxy.py:
#     FLEET_FAR_N (100) revocations, COMMIT to the first refusal;
#     1,000 changes a second for FLEET_CHURN_SECONDS while hosts check;
#   - PAM on a replica against pam_permit, nginx on a replica against plain
#     nginx (CPU time of the worker per request), and beside it nginx on a
#     sqlite store of the same keys (the backend the replica is read
#     through: the replica's floor), in the same rounds.
# Replaces its section of bench/RESULTS.md.
# BENCH_CONDITIONS="...": what else ran, said beside the load average.
# Smaller for a quick look: FLEET_MID=10000 FLEET_BIG=100000 FLEET_N=50 BENCH_SECONDS=1
# FLEET_NGINX_ROUNDS=3;
# FLEET_DEBUG=SECONDS keeps the fleet up after the revocations, and
# PROPAGATION_SLOW=MS has bench/propagation name each host slower than that.
# FLEET_BEFORE=DIR: a build folder of an earlier version (its libapikey and
# pgsql store, driven by this build's bench/propagation) whose writers run
# the churn rows too, against the same fleet: before and after side by side;
# the fleet's four apikey-syncd are that build's for its rows;
# FLEET_ROUNDS=R takes R rounds of both, alternated (before, after, after,
# before, ...), each round's rows and then the median and range of each.
# FLEET_CHURN_ONLY=1 stops after the churn rows (no PAM, nginx, BIG rows,
# bench/RESULTS.md left as it is): a quick look at the churn.
set -u
cd "$(dirname "$0")/.." || exit 2
[ -n "${APIKEY_PG_HOST:-}" ] || exec sh tests/pg_harness.sh sh "$0" "$@"
ROOT=$(pwd)
MID=${FLEET_MID:-100000}
BIG=${FLEET_BIG:-1000000}
N=${FLEET_N:-200}
INTERVAL=${FLEET_INTERVAL_MS:-1}
# The churn's goal, and what its writers offer: a tenth more. Writers
# paced at exactly the goal can reach it but never pass it, so a write or
# two still in flight at the schedule's end read 999/s: the row asked for
# more than the goal can show. Offered more, a fleet that keeps up shows
# what it took, and the goal is met by that, not by a rounding.
CHURN_GOAL=${FLEET_CHURN_GOAL:-1000}
CHURN_RATE=${FLEET_CHURN_RATE:-$((CHURN_GOAL * 11 / 10))}
DELAY=${FLEET_DELAY_MS:-50}
NFAR=${FLEET_FAR_N:-100}
CHURN_SECONDS=${FLEET_CHURN_SECONDS:-10}
# A churn's keys: 300 watched, one for each of bench/propagation's 8
# writers to warm its session with, then the schedule's.
CHURN_KEYS=$((300 + 8 + CHURN_RATE * CHURN_SECONDS))
SECS=${BENCH_SECONDS:-3}
ITER=${BENCH_ITER:-2000}
NGINX_ROUNDS=${FLEET_NGINX_ROUNDS:-9}
REPLICAS=4
MODULE=$ROOT/build/nginx/ngx_http_apikey_module.so
WUSER=${BENCH_WORKER_USER:-www-data}
T=$(mktemp -d /var/tmp/apikey-fleet-bench.XXXXXX)
PIDS=""
trap 'kill $PIDS 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT INT TERM
chmod 755 "$T"
export APIKEY_STORE_DIR="$ROOT/build/store"
ROWS="$T/rows"
: > "$ROWS"
. bench/lib.sh
for v in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
PGC="host=$APIKEY_PG_HOST port=$APIKEY_PG_PORT user=$APIKEY_PG_USER"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
for tool in nginx wrk; do command -v $tool > /dev/null || { echo "bench/fleet.sh: needs $tool" >&2; exit 1; }; done
WGROUP=$(id -gn "$WUSER") || exit 1

conf() { # FILE STORE [REPLICA]: readable by the nginx workers' group
    printf 'store = %s\n%slast_used_granularity = 1h\nmax_keys_per_account = 1000000\n[services]\nbench = proxies:read\n' \
        "$2" "${3:+replica = $3
}" > "$1"
    chgrp "$WGROUP" "$1" && chmod 640 "$1"
}
copy_seconds() { # LOG: the time of the last full copy
    sed -n 's/.*full copy: [0-9]* keys at change [0-9]* in \([0-9.]*\) s/\1/p' "$1" | tail -n 1
}
start_syncd() { # FOLDER [BUILD]: its syncd, until the first full copy is done
    "${2:-build}/apikey-syncd" --config "$1/host.conf" 2>> "$1/syncd.log" &
    SYNCD=$!
    PIDS="$PIDS $SYNCD"
    i=0
    until grep -q 'full copy' "$1/syncd.log" && [ -s "$1/replica/contact" ]; do
        i=$((i + 1)); [ $i -lt 6000 ] || { echo "bench: syncd never copied" >&2; exit 1; }
        sleep 0.1
    done
}
replica_folder() { # FOLDER DB: a replica of database DB in FOLDER, hosts' group
    mkdir -m 755 "$1" && mkdir -m 750 "$1/replica"
    chgrp "$WGROUP" "$1/replica"
    conf "$1/record.conf" "pgsql:$PGC dbname=$2"
    conf "$1/host.conf" "pgsql:$PGC dbname=$2" "$1/replica"
}

# One size: the keys made once in a json store (a check's cost does not
# depend on who made them), copied into the store of record, copied by
# syncd into a replica; each checked on both.
size_rows() { # N TARGET-SECONDS
    n=$1
    echo "== a fleet: $n keys"
    createdb -h "$APIKEY_PG_HOST" -p "$APIKEY_PG_PORT" -U "$APIKEY_PG_USER" "fleet$n" || exit 1
    mkdir -m 755 "$T/json$n"
    conf "$T/json$n/json.conf" "json:$T/json$n/keys.json"
    awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "user%d\tk\tproxies:read\tnever\n", i }' > "$T/batch"
    build/apikey --config "$T/json$n/json.conf" create --batch "$T/batch" > "$T/json$n/keys" || exit 1
    replica_folder "$T/s$n" "fleet$n"
    build/apikey --config "$T/json$n/json.conf" copy --to "pgsql:$PGC dbname=fleet$n" > /dev/null || exit 1
    start_syncd "$T/s$n"
    c=$(copy_seconds "$T/s$n/syncd.log")
    if [ "$2" = - ]; then row "full copy, $n keys" "$c" "s" "-" "-"
    else row "full copy, $n keys" "$c" "s" "<= $2 s" "$(verdict "$c" "$2" le)"; fi
    # Every key checked once first: its last-used write (a json rewrite)
    # is then behind it, as in bench/run.sh.
    build/bench/verify_loop "$T/json$n/json.conf" bench "$T/json$n/keys" 1 0 rss > /dev/null
    build/bench/verify_loop "$T/s$n/host.conf" bench "$T/json$n/keys" 1 0 rss > /dev/null
    j=$(VERIFY_LOOP_PER_CPU=1 build/bench/verify_loop "$T/json$n/json.conf" bench "$T/json$n/keys" 1 "$SECS")
    r=$(VERIFY_LOOP_PER_CPU=1 build/bench/verify_loop "$T/s$n/host.conf" bench "$T/json$n/keys" 1 "$SECS")
    row "warm verify json, $n keys, 1 thread (per CPU second)" "$j" "/s" "-" "1.00x"
    row "warm verify on the replica (sqlite), $n keys, 1 thread (per CPU second)" "$r" "/s" "-" "$(ratio "$r" "$j")x of json"
    size=$(cat "$T/s$n/replica/keys.db" "$T/s$n/replica/keys.db-wal" | wc -c)
    row "replica size per key, $n keys" "$((size / n))" "bytes" "-" "-"
}
size_rows "$MID" -
# Its syncd follows the fleet's database too: stopped, or the fleet below
# would have a fifth reader of the log, without hosts, in its figures.
kill "$SYNCD"
# The same keys in a plain sqlite store, for nginx beside the replica: the
# replica is read through the sqlite backend, so this is its floor.
mkdir -m 750 "$T/sq" && chgrp "$WGROUP" "$T/sq"
conf "$T/sq/sqlite.conf" "sqlite:$T/sq/keys.db"
build/apikey --config "$T/json$MID/json.conf" copy --to "sqlite:$T/sq/keys.db" > /dev/null || exit 1
# A read by root makes its -wal and -shm, which the worker may not.
build/apikey --config "$T/sq/sqlite.conf" list nobody > /dev/null
chgrp "$WGROUP" "$T/sq/keys.db"* && chmod 640 "$T/sq/keys.db"*

# The fleet: REPLICAS replicas of the MID store, each its own syncd.
pam_and_nginx() { # FOLDER NAME: a PAM service and an nginx location on that replica
    mkdir "$1/pam.d"
    printf 'auth required %s config=%s service=bench\naccount required %s config=%s service=bench\n' \
        "$ROOT/build/pam_apikey.so" "$1/host.conf" "$ROOT/build/pam_apikey.so" "$1/host.conf" > "$1/pam.d/fleet"
    NGINX_LOCATIONS="$NGINX_LOCATIONS location /$2/ { alias $T/www/; apikey_config $1/host.conf; apikey_service bench; }"
}
HOSTS="" NGINX_LOCATIONS=""
for r in $(seq "$REPLICAS"); do
    replica_folder "$T/r$r" "fleet$MID"
    start_syncd "$T/r$r"
    echo "$SYNCD" > "$T/r$r/syncd.pid"
    pam_and_nginx "$T/r$r" "r$r"
done
# One more replica, far from the store of record: its syncd reaches the
# server through bench/delay_proxy.py, which holds what syncd sends for
# DELAY ms, as `tc netem delay` on that host's interface would (this
# machine's kernel has no netem). Copied now, then stopped until its own
# row, so that it is no fifth reader of the log in the rows before.
mkdir -m 755 "$T/farsock"
python3 bench/delay_proxy.py "$T/farsock/.s.PGSQL.$APIKEY_PG_PORT" "$APIKEY_PG_HOST/.s.PGSQL.$APIKEY_PG_PORT" "$DELAY" 0 \
    > "$T/proxy.out" &
PIDS="$PIDS $!"
for i in $(seq 100); do grep -q ready "$T/proxy.out" && break; sleep 0.1; done
replica_folder "$T/far" "fleet$MID"
conf "$T/far/host.conf" "pgsql:host=$T/farsock port=$APIKEY_PG_PORT user=$APIKEY_PG_USER dbname=fleet$MID" "$T/far/replica"
start_syncd "$T/far"
kill "$SYNCD"
pam_and_nginx "$T/far" far
mkdir -p "$T/www" "$T/tmp"
echo "a small static file" > "$T/www/index.txt"
PORT=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 + 30000 ))
cat > "$T/nginx.conf" <<EOF
load_module $MODULE;
user $WUSER $WGROUP; worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/error.log;
events { worker_connections 1024; }
http {
  access_log off; client_body_temp_path $T/tmp/b; proxy_temp_path $T/tmp/p;
  fastcgi_temp_path $T/tmp/f; uwsgi_temp_path $T/tmp/u; scgi_temp_path $T/tmp/s;
  server { listen 127.0.0.1:$PORT; root $T/www; index index.txt;
    location /plain/ { alias $T/www/; }
    location /sqlite/ { alias $T/www/; apikey_config $T/sq/sqlite.conf; apikey_service bench; }
    $NGINX_LOCATIONS
  }
}
EOF
nginx -p "$T" -c "$T/nginx.conf" &
NGINX=$!
PIDS="$PIDS $NGINX"
for i in $(seq 100); do ss -Htln "sport = :$PORT" | grep -q . && break; sleep 0.1; done
WORKER=$(ps -o pid= --ppid "$NGINX" | tr -d ' ')
[ -n "$WORKER" ] || { echo "bench/fleet.sh: nginx did not start" >&2; cat "$T/error.log" >&2; exit 1; }
for r in $(seq "$REPLICAS"); do
    HOSTS="$HOSTS helper:$T/r$r/host.conf pam:$T/r$r/pam.d nginx:$PORT:/r$r/index.txt"
done

# Keys of one account for the hosts to watch (and, for the churn, to revoke).
ROUNDS=${FLEET_ROUNDS:-1}
CHURNS=$((2 * ROUNDS)) # two churns a round, each its own keys
[ -z "${FLEET_BEFORE:-}" ] || CHURNS=$((4 * ROUNDS))
awk -v n=$((N + 100 + CHURNS * CHURN_KEYS + NFAR)) 'BEGIN { for (i = 0; i < n; i++) printf "fleet\tw%d\tproxies:read\tnever\n", i }' > "$T/batch"
build/apikey --config "$T/r1/record.conf" create --batch "$T/batch" > "$T/fleet.keys" || exit 1
head -n $((N + 100)) "$T/fleet.keys" > "$T/watch.keys"
tail -n "$NFAR" "$T/fleet.keys" > "$T/far.keys"
caught_up() { # every replica at the log's last change
    last=$(psql -X -t -A "$PGC dbname=fleet$MID" -c 'SELECT max(seq) FROM apikey_changes')
    for r in $(seq "$REPLICAS"); do
        until [ "$(cut -d' ' -f4 "$T/r$r/replica/contact")" -ge "$last" ]; do sleep 0.2; done
    done
}
caught_up
NH=$((REPLICAS * 3))
SYNCD_BUILD=build
syncds() { # BUILD: the fleet's syncds of that build (each resumes its replica)
    [ "$1" != "$SYNCD_BUILD" ] || return 0
    touch "$T/started"
    sleep 1.1 # test -nt may compare whole seconds
    for r in $(seq "$REPLICAS"); do
        kill "$(cat "$T/r$r/syncd.pid")"
        while kill -0 "$(cat "$T/r$r/syncd.pid")" 2>/dev/null; do sleep 0.1; done
        start_syncd "$T/r$r" "$1"
        echo "$SYNCD" > "$T/r$r/syncd.pid"
    done
    for r in $(seq "$REPLICAS"); do # each connected and read once: its contact line anew
        until [ "$T/r$r/replica/contact" -nt "$T/started" ]; do sleep 0.1; done
    done
    SYNCD_BUILD=$1
    caught_up
}
drive() { # MODE ARG... KEYFILE: bench/propagation's lines
    mode=$1 arg=$2
    shift 2
    build/bench/propagation "$mode" $arg "$T/r1/record.conf" bench fleet "$1" "$INTERVAL" $HOSTS
}
prop_rows() { # WHAT OUT: rows of propagation's output
    while read -r kind p50 p99 max n; do
        case $kind in
        all)
            row "$1, p50 ($n host-keys, $NH hosts)" "$p50" "ms" "-" "-"
            row "$1, p99" "$p99" "ms" "<= 50 ms" "$(verdict "$p99" 50 le)"
            row "$1, max" "$max" "ms" "-" "-" ;;
        helper | pam | nginx) row "$1, $kind hosts, p50/p99/max" "$p50 / $p99 / $max" "ms" "-" "-" ;;
        esac
    done < "$2"
}

echo "== a fleet: $REPLICAS replicas, $NH hosts checking every $INTERVAL ms, $N revocations"
drive revoke "$N" "$T/watch.keys" > "$T/revoke.out" || echo "bench/fleet.sh: propagation failed" >&2
prop_rows "revocation COMMIT to first refusal" "$T/revoke.out"

if [ -n "${FLEET_DEBUG:-}" ]; then # keep the fleet up a while to look at it
    echo "bench/fleet.sh: $T kept for $FLEET_DEBUG s; PGC=$PGC dbname=fleet$MID"
    sleep "$FLEET_DEBUG"
fi
echo "== a fleet: new keys"
drive create 20 /dev/null > "$T/create.out" || echo "bench/fleet.sh: propagation (create) failed" >&2
set -- $(awk '$1 == "all" { print $4 }' "$T/create.out")
row "new key COMMIT to accepted on every host, max of 20" "${1:-?}" "ms" "<= 1000 ms" "$(verdict "${1:-99999}" 1000 le)"

echo "== a fleet: a replica $DELAY ms from the store of record"
touch "$T/started"
sleep 1.1 # test -nt may compare whole seconds
start_syncd "$T/far" # resumes from the change it applied last
until [ "$T/far/replica/contact" -nt "$T/started" ]; do sleep 0.1; done
build/bench/propagation revoke "$NFAR" "$T/r1/record.conf" bench fleet "$T/far.keys" "$INTERVAL" \
    "helper:$T/far/host.conf" "pam:$T/far/pam.d" "nginx:$PORT:/far/index.txt" > "$T/far.out" ||
    echo "bench/fleet.sh: propagation (far) failed" >&2
kill "$SYNCD"
set -- $(awk '$1 == "all" { print $2, $3, $4, $5 }' "$T/far.out")
row "revocation COMMIT to first refusal, a replica whose syncd's queries take $DELAY ms more to reach the server, p50 / p99 / max (${4:-?} host-keys, 3 hosts)" \
    "${1:-?} / ${2:-?} / ${3:-?}" "ms" "p99 <= $((DELAY + 50)) ms" "$(verdict "${2:-99999}" $((DELAY + 50)) le)"

# Each churn: fresh keys to watch, then fresh keys for it to revoke.
NEXT_KEY=$((N + 101))
churn() { # BATCH LABEL [BUILD]
    echo "== a fleet: $CHURN_RATE changes a second for $CHURN_SECONDS s ($2) while the hosts check"
    tail -n +$NEXT_KEY "$T/fleet.keys" | head -n $CHURN_KEYS > "$T/churnmix.keys"
    NEXT_KEY=$((NEXT_KEY + CHURN_KEYS))
    b=${3:-$ROOT/build}
    syncds "${3:-build}"
    # This build's driver on the given build's library and store (the
    # driver's RUNPATH gives way to LD_LIBRARY_PATH): one measure for both.
    LD_LIBRARY_PATH="$b" APIKEY_STORE_DIR="$b/store" build/bench/propagation churn "$CHURN_RATE" "$CHURN_SECONDS" 300 "$1" \
        "$T/r1/record.conf" bench fleet "$T/churnmix.keys" "$INTERVAL" $HOSTS > "$T/churn.out" ||
        echo "bench/fleet.sh: propagation (churn) failed" >&2
    # Sustained: changes acknowledged from the schedule's second second to
    # its end, a second (bench/propagation.c, report_late). The clock starts
    # once every writer has connected and made one revocation of its own.
    # Beside it, the whole run: changes over the seconds from the clock's
    # start to the last writer's end, its last write's tail included, so
    # writers exactly on a schedule of CHURN_RATE print a little less
    # (10,000 in 10.00x s); what writers behind at the end did not send by
    # CHURN_SECONDS counts as not done.
    rate=$(awk '$1 == "late" && $2 == "steady" { print $3 }' "$T/churn.out")
    whole=$(awk '$1 == "rate" { print $2 }' "$T/churn.out")
    row "changes a second sustained (from 1 s to the schedule's end), $CHURN_RATE/s offered, $2" "${rate:-?}" "/s" ">= $CHURN_GOAL/s" \
        "$(verdict "${rate:-0}" "$CHURN_GOAL" ge); the whole run, to the last writer's end: ${whole:-?}/s"
    # Behind steadily (a backlog that grows over the seconds: the rate is
    # not sustained) or one tail at the end? bench/propagation.c, report_late.
    late() { awk -v k="$1" -v c="$2" '$1 == "late" && $2 == k { print $c }' "$T/churn.out"; }
    row "  behind schedule at 2 s / 5 s / 9 s / the schedule's end: writes due not yet acknowledged (in ms of the schedule)" \
        "$(late 2 3) / $(late 5 3) / $(late 9 3) / $(late end 3) ($(late 2 4) / $(late 5 4) / $(late 9 4) / $(late end 4) ms)" "writes" "-" \
        "last writer done $(late tail 3) ms after the schedule's end; $(late tail 4) due never sent"
    echo "    acknowledged in each 0.5 s: $(awk '$2 == "each-half-second" { $1 = $2 = ""; print }' "$T/churn.out")"
    row "  each write, acknowledged minus due: p50, worst" "$(late p50 3), $(late max 3)" "ms" "-" "worst due at $(late max 4) s"
    echo "$rate $(late 9 4) $(late end 4) $(late tail 3) $whole" >> "$T/rates.$1.${3:+before}"
    grep '^all' "$T/churn.out" > "$T/churn.all"
    prop_rows "meanwhile, revocation COMMIT to first refusal" "$T/churn.all"
    awk '$1 == "all" { print $3 }' "$T/churn.out" >> "$T/p99.$1.${3:+before}"
}
both() { # BATCH LABEL: before (if any) and after, in the round's order
    if [ -n "${FLEET_BEFORE:-}" ] && [ $((round % 2)) -eq 1 ]; then
        churn "$1" "$2, BEFORE$tag" "$FLEET_BEFORE"
    fi
    churn "$1" "$2$tag"
    if [ -n "${FLEET_BEFORE:-}" ] && [ $((round % 2)) -eq 0 ]; then
        churn "$1" "$2, BEFORE$tag" "$FLEET_BEFORE"
    fi
}
spread() { # FILE COLUMN: "median (lo-hi)"
    cut -d' ' -f"$2" "$1" > "$T/col"
    echo "$(median "$T/col") ($(sort -n "$T/col" | sed -n '1p;$p' | tr '\n' '-' | sed 's/-$//'))"
}
tag=""
for round in $(seq "$ROUNDS"); do
    [ "$ROUNDS" -eq 1 ] || tag=", round $round"
    both 1 "revocations, one a transaction, 8 writers"
    both 100 "new keys, 100 a transaction"
done
if [ "$ROUNDS" -gt 1 ]; then
    for b in 1 100; do
        for side in before ""; do
            f="$T/rates.$b.$side"
            [ -s "$f" ] || continue
            row "changes a second sustained, $CHURN_RATE/s offered, ${b} a transaction, ${side:-after}: median (range) of $ROUNDS rounds" \
                "$(spread "$f" 1)" "/s" ">= $CHURN_GOAL/s" \
                "behind at 9 s $(spread "$f" 2) ms, at the schedule's end $(spread "$f" 3) ms, last writer done $(spread "$f" 4) ms after it; meanwhile p99 $(spread "$T/p99.$b.$side" 1) ms"
        done
    done
fi
[ -z "${FLEET_CHURN_ONLY:-}" ] || exit 0

echo "== a fleet: PAM and nginx on a replica"
KEY=$(sed -n 78p "$T/json$MID/keys")
printf 'auth required pam_permit.so\naccount required pam_permit.so\n' > "$T/r1/pam.d/permit"
build/bench/pam_loop "$T/r1/pam.d" permit user77 x "$ITER" > /dev/null # warm
PERMIT=$(build/bench/pam_loop "$T/r1/pam.d" permit user77 x "$ITER")
ON=$(build/bench/pam_loop "$T/r1/pam.d" fleet user77 "$KEY" "$ITER")
row "PAM pam_permit (the floor)" "$PERMIT" "µs" "-" "1.00x"
row "PAM pam_apikey on a replica, $MID keys" "$ON" "µs" "<= 1.1x pam_permit" \
    "$(ratio "$ON" "$PERMIT")x: $(verdict "$(ratio "$ON" "$PERMIT")" 1.1 le)"

awk -v n="$MID" 'NR % int(n / 1000) == 0' "$T/json$MID/keys" > "$T/wrk.keys"
wrk_keys_script "$T/wrk.lua"
nginx_pin
# Rounds of pairs, as bench/nginx.sh takes them (bench/lib.sh, nginx_pair):
# the ratio is the median of the pairs' ratios.
for round in $(seq "$NGINX_ROUNDS"); do
    nginx_pair "$round" replica /r1/index.txt "$T/wrk.keys" /plain/index.txt "$T/wrk.keys"
    nginx_pair "$round" sqlite /sqlite/index.txt "$T/wrk.keys" /plain/index.txt "$T/wrk.keys"
done
CAP=$(median "$T/ratios.replica")
SQCAP=$(median "$T/ratios.sqlite")
row "nginx plain, worker CPU per request (median of its runs)" "$(nginx_col plain 1)" "µs" "-" \
    "1.00x; user $(nginx_col plain 5) µs, system $(nginx_col plain 6) µs"
row "nginx with the module on a replica, $MID keys (median of its runs)" "$(nginx_col replica 1)" "µs" ">= 0.90x plain" \
    "${CAP}x (median of $NGINX_ROUNDS pairs): $(verdict "$CAP" 0.90 ge); each pair: $(nginx_each replica)x; user $(nginx_col replica 5) µs, system $(nginx_col replica 6) µs"
row "nginx with the module on a sqlite store of the same keys, same nginx (the replica's floor)" "$(nginx_col sqlite 1)" "µs" "-" \
    "${SQCAP}x (median of $NGINX_ROUNDS pairs); each pair: $(nginx_each sqlite)x; user $(nginx_col sqlite 5) µs, system $(nginx_col sqlite 6) µs"
kill $PIDS 2>/dev/null
wait 2>/dev/null
PIDS=""

size_rows "$BIG" 30

{
    [ -f bench/RESULTS.md ] && awk '/^## A fleet/ { skip = 1; next } /^## / { skip = 0 } !skip' bench/RESULTS.md
    echo
    echo "## A fleet: replica and propagation"
    echo
    echo "Measured by \`make bench\` (bench/fleet.sh) on $(date -u +%Y-%m-%d), load average $LOAD at the"
    echo "start${BENCH_CONDITIONS:+ ($BENCH_CONDITIONS)}: PostgreSQL"
    echo "$(psql -X -t -A "$PGC dbname=fleet$MID" -c 'SHOW server_version'), on a Unix socket, fsync off (the test server)."
    echo "Propagation: $REPLICAS replicas of the $MID-key store, each with its own apikey-syncd, and on"
    echo "each the Squid helper, PAM (pam_try -l, a login per check) and the nginx module (HTTP/1.1 kept"
    echo "alive), $NH hosts each checking the key under watch every $INTERVAL ms (bench/propagation.c);"
    echo "from apikey_revoke returned (COMMIT acknowledged) to each host's first refusal, one key at a"
    echo "time. Distance: a fifth replica whose syncd reaches the server through bench/delay_proxy.py,"
    echo "which holds what syncd sends for $DELAY ms (tc netem delay on its host's interface, which this"
    echo "kernel lacks), and on it the same three hosts; $NFAR revocations, one at a time, the fleet's"
    echo "four syncds following beside it."
    echo "PAM and nginx ratios as in bench/run.sh and bench/nginx.sh (nginx: the worker's CPU"
    echo "time per request, the median of $NGINX_ROUNDS pairs' ratios, each pair a plain run and a run on"
    echo "the replica of ${SECS} s, workers as $WUSER)."
    echo
    rows_table
    cat <<'NOTES'

Reading the figures. Propagation: the three hosts of one replica are late
together, so the tail is on syncd's side; strace of one syncd shows the
NOTIFY answered and the log read sent within 1 ms and the SQLite commit in
1-3 ms, and PostgreSQL's answer to that read taking 2-7 ms, 38-40 ms in the
slow cases (in the run of doc/STORES.md): four syncds ask at once, on 2 cores that also run the 12 hosts
(about one core at a check a millisecond each, PAM most) and other work
(doc/STORES.md, "Where a revocation's time goes"). The distant replica's
refusals come its delay plus the local figures after the COMMIT: syncd's
read goes out as the notification comes, the hosts' last-used times with
it, not in a round trip of their own (doc/STORES.md, "Distance"). The
churn rows are bounded by the writers, not the replicas. The driver is bench/propagation:
library calls on long-lived connections (8 threads revoking, one a
transaction; or one thread creating 100 keys a transaction), as apikey-authd's
management API writes. The BEFORE rows (FLEET_BEFORE, when given) are the
previous build's writers against the same fleet, just before: its write
held the writers' lock for its whole transaction, 8 round trips for a
revocation and 207 for a batch of 100, so writes were serial. Now a
revocation is 3 round trips and holds the lock for none of them, a batch is
3 (doc/STORES.md, "Writes on the store of record"). What is left is the
round trips themselves on 2 cores that the 12 hosts (one check a
millisecond each), 4 syncds and the server share: each waits for a core.
The batch's count of the account's keys (for the per-account limit) reads
every key of the account, which the bench fills with all its new keys
(thousands by the end). PAM: libpam loads and unloads pam_permit.so at every
transaction, pam_apikey.so stays loaded (-z nodelete), which under this
load outweighed the check. nginx: with `store = pgsql:` the module runs every
check in nginx's thread pool (the store may block), even while the replica
answers: a thread hop per request, except while the replica is trusted
(apikey_check_may_block). Checks on the replica: verify_loop asks every key
in turn; once each was read, SQLite's answers are kept per process and a use
is told once per key (262,144 remembered), so at 1,000,000 keys each check
is still a SQLite read and a datagram to syncd.
NOTES
} > "$T/RESULTS.md"
cp "$T/RESULTS.md" bench/RESULTS.md
