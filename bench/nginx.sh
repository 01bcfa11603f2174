#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make bench, nginx part: the same nginx (one worker) serving one small
# static file, plainly and behind ngx_http_apikey_module on json and sqlite
# stores of $BENCH_MID keys, driven by wrk on loopback with keep-alive.
# As operators run it: the worker as www-data, reading stores that belong to
# root and are readable through their group (it may not record last-used
# times, and must not pay for trying at every request).
# On 2 cores wrk saturates first, so the measure is the CPU time the worker
# spends per request: utime+stime from /proc/PID/stat over the run, divided
# by the requests wrk counted (../shared/STYLE.md, "HTTP hosts"). Capacity
# against plain nginx is the ratio of those times, taken pair by pair
# (each row's run beside a plain run of its own) and the median of the
# pairs kept. p99 from wrk.
# Appends (or replaces) its section of bench/RESULTS.md.
#
# BENCH_NGINX_STORES="json sqlite rate" BENCH_MID=100000 BENCH_NGINX_SECONDS=4 BENCH_NGINX_ROUNDS=9 BENCH_NGINX_KEYS=1000 (keys wrk
# rotates through, spread over the store) BENCH_NGINX_PIN=1 (the worker
# on CPU 0, wrk on CPU 1; 0: unpinned; see nginx_pin in bench/lib.sh).
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
MID=${BENCH_MID:-100000}
SECS=${BENCH_NGINX_SECONDS:-4}
NKEYS=${BENCH_NGINX_KEYS:-1000}
ROUNDS=${BENCH_NGINX_ROUNDS:-9}
MODULE=$ROOT/build/nginx/ngx_http_apikey_module.so
if [ ! -f "$MODULE" ] || ! command -v nginx > /dev/null || ! command -v wrk > /dev/null; then
    echo "bench/nginx.sh: skipped: needs nginx, wrk and $MODULE"
    exit 0
fi
T=$(mktemp -d /var/tmp/apikey-bench-nginx.XXXXXX)
chmod 755 "$T"
WUSER=${BENCH_WORKER_USER:-www-data}
getent passwd "$WUSER" > /dev/null || { echo "bench/nginx.sh: needs the user $WUSER" >&2; exit 1; }
WGROUP=$(id -gn "$WUSER")
MASTER=""
cleanup() { [ -n "$MASTER" ] && kill "$MASTER" 2>/dev/null && wait "$MASTER" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
ROWS=$T/rows
: > "$ROWS"
. bench/lib.sh

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== nginx: CPU time of the worker per request, $MID keys, ${SECS} s per row"
awk -v n="$MID" 'BEGIN { for (i = 0; i < n; i++) printf "user%d\tk\tproxies:read\tnever\n", i }' > "$T/batch"
STORES=${BENCH_NGINX_STORES:-json sqlite rate}
for kind in $STORES; do
    [ "$kind" = rate ] && continue
    [ -f "build/store/apikey_store_$kind.so" ] || continue
    case $kind in json) uri="json:$T/keys.json" ;; sqlite) uri="sqlite:$T/keys.db" ;; esac
    printf 'store = %s\nlast_used_granularity = 1h\n[services]\nbench = proxies:read\n' "$uri" > "$T/$kind.conf"
    # BENCH_NGINX_SQLITE=DB:KEYS: a copy of a store made the same way
    # before (a 1,000,000-key batch takes minutes), and its keys.
    if [ "$kind" = sqlite ] && [ -n "${BENCH_NGINX_SQLITE:-}" ]; then
        # A read by root makes its -wal and -shm, which the worker may not.
        cp "${BENCH_NGINX_SQLITE%%:*}" "$T/keys.db" && cp "${BENCH_NGINX_SQLITE#*:}" "$T/$kind.keys" &&
            build/apikey --config "$T/$kind.conf" list nobody > /dev/null ||
            { echo "bench/nginx.sh: cannot copy $BENCH_NGINX_SQLITE" >&2; exit 1; }
    else
        build/apikey --config "$T/$kind.conf" create --batch "$T/batch" > "$T/$kind.keys" ||
            { echo "bench/nginx.sh: batch failed for $kind" >&2; exit 1; }
    fi
    # Group-readable, as an operator shares a store with a web server.
    chgrp "$WGROUP" "$T/$kind.conf" "$T/keys".* && chmod 640 "$T/keys".* && chmod 644 "$T/$kind.conf"
    # wrk's keys, spread over the whole store.
    awk -v n="$MID" -v k="$NKEYS" 'NR % int(n / k) == 0' "$T/$kind.keys" > "$T/$kind.wrk"
done

# Keys with a rate limit never reached (json): one cell of the shared table
# per request on top of the json row's work.
# The table in a folder the worker may create it in, as an operator sets it up.
case " $STORES " in *" rate "*)
mkdir -p "$T/rt" && chown "$WUSER:$WGROUP" "$T/rt"
printf 'store = json:%s/rate.json\nrate_table = %s/rt/rate.table\nlast_used_granularity = 1h\n[services]\nbench = proxies:read\n' \
    "$T" "$T" > "$T/rate.conf"
awk -v n="$MID" 'BEGIN { for (i = 0; i < n; i++) printf "user%d\tk\tproxies:read\tnever\t\t1000000/s\n", i }' > "$T/rate.batch"
build/apikey --config "$T/rate.conf" create --batch "$T/rate.batch" > "$T/rate.keys" ||
    { echo "bench/nginx.sh: batch failed for rate" >&2; exit 1; }
chgrp "$WGROUP" "$T/rate.conf" "$T/rate".* && chmod 640 "$T/rate".* && chmod 644 "$T/rate.conf"
awk -v n="$MID" -v k="$NKEYS" 'NR % int(n / k) == 0' "$T/rate.keys" > "$T/rate.wrk"
;; esac
# Plain nginx gets the same requests as the first store's row.
for kind in $STORES; do [ -f "$T/$kind.wrk" ] && { PLAIN_KEYS=$T/$kind.wrk; break; }; done

mkdir -p "$T/www/plain" "$T/tmp"
echo "a small static file" > "$T/www/plain/index.txt"
for kind in json sqlite rate; do
    [ -f "$T/$kind.conf" ] && ln -s plain "$T/www/$kind"
done
PORT=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 + 30000 ))
{
    echo "load_module $MODULE;"
    echo "user $WUSER $WGROUP; worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/error.log;"
    echo "events { worker_connections 1024; }"
    echo "http {"
    echo "  access_log off; client_body_temp_path $T/tmp/b; proxy_temp_path $T/tmp/p;"
    echo "  fastcgi_temp_path $T/tmp/f; uwsgi_temp_path $T/tmp/u; scgi_temp_path $T/tmp/s;"
    echo "  server { listen 127.0.0.1:$PORT; root $T/www; index index.txt;"
    echo "    location /plain/ { }"
    for kind in json sqlite rate; do
        [ -f "$T/$kind.conf" ] && echo "    location /$kind/ { apikey_config $T/$kind.conf; apikey_service bench; }"
    done
    echo "  }"
    echo "}"
} > "$T/nginx.conf"
nginx -p "$T" -c "$T/nginx.conf" &
MASTER=$!
for i in $(seq 100); do ss -Htln "sport = :$PORT" | grep -q . && break; sleep 0.1; done
WORKER=$(ps -o pid= --ppid "$MASTER" | tr -d ' ')
[ -n "$WORKER" ] || { echo "bench/nginx.sh: nginx did not start" >&2; cat "$T/error.log" >&2; exit 1; }

# Every row sends the same requests (a key in Authorization); only the path
# decides whether the module looks at it. The file by its name: "/json/"
# would go through index's internal redirect, and the access phase (the
# check) would run twice.
wrk_keys_script "$T/wrk.lua"
nginx_pin

# Rounds of pairs (bench/lib.sh, nginx_pair): the ratio is the median of
# the pairs' ratios, and every pair is shown.
KINDS="plain"
for kind in json sqlite rate; do [ -f "$T/$kind.conf" ] && KINDS="$KINDS $kind"; done
for round in $(seq "$ROUNDS"); do
    for kind in $KINDS; do
        [ "$kind" = plain ] && continue
        nginx_pair "$round" "$kind" "/$kind/index.txt" "$T/$kind.wrk" /plain/index.txt "$PLAIN_KEYS"
    done
done

if command -v perf > /dev/null; then
    for kind in $KINDS; do
        keys=$T/$kind.wrk
        [ "$kind" = plain ] && keys=$PLAIN_KEYS
        c=$(calls "$WORKER" "http://127.0.0.1:$PORT/$kind/index.txt" -s "$T/wrk.lua" -- "$keys")
        echo "  system calls per request, $kind: $c"
        echo "$kind|$c" >> "$T/calls"
    done
fi
calls_of() { awk -F'|' -v k="$1" '$1 == k { print $2 }' "$T/calls" 2> /dev/null; }

PLAIN=$(nginx_col plain 1)
row "nginx, plain static file (the floor; median of its runs)" "$PLAIN" "µs CPU/request" "-" \
    "1.00x; p99 $(nginx_col plain 2) µs; $(nginx_spread plain); user $(nginx_col plain 5) µs, system $(nginx_col plain 6) µs; context switches/request $(nginx_col plain 4); system calls/request $(calls_of plain)"
for kind in $KINDS; do
    [ "$kind" = plain ] && continue
    cap=$(median "$T/ratios.$kind")
    goal=0.90 what="$kind, $MID keys"
    [ "$kind" = sqlite ] && goal=0.80
    [ "$kind" = rate ] && goal=0.88 what="json, $MID keys with a rate limit"
    met=$(verdict "$cap" "$goal" ge)
    row "nginx + ngx_http_apikey_module, $what (median of its runs)" "$(nginx_col "$kind" 1)" "µs CPU/request" \
        ">= ${goal}x plain capacity" "${cap}x (median of $ROUNDS pairs): $met; each pair: $(nginx_each "$kind")x; p99 $(nginx_col "$kind" 2) µs; $(nginx_spread "$kind"); user $(nginx_col "$kind" 5) µs, system $(nginx_col "$kind" 6) µs; context switches/request $(nginx_col "$kind" 4); system calls/request $(calls_of "$kind")"
done

{
    # The section replaces an older one in place, or is appended.
    [ -f bench/RESULTS.md ] && awk '/^## nginx: ngx_http_apikey_module/ { skip = 1; next } /^## / { skip = 0 } !skip' bench/RESULTS.md
    echo
    echo "## nginx: ngx_http_apikey_module"
    echo
    echo "Measured by \`make bench\` (bench/nginx.sh) on $(date -u +%Y-%m-%d), load average $LOAD at the start"
    echo "(2 cores shared with other work: p99 mostly measures waiting for a core): nginx $(nginx -v 2>&1 | sed 's#.*/##'),"
    echo "one worker running as $WUSER (stores owned by root, read through group $WGROUP), wrk -t1 -c16"
    echo "on loopback with keep-alive, ${SECS} s per run, one small static file; behind the module,"
    echo "the keys rotate over $NKEYS keys spread across a store of $MID. $ROUNDS rounds of pairs: each"
    echo "row's run beside a plain run of its own, in turn first and second; the ratio is the median"
    echo "of the pairs' ratios (every pair shown), the µs the median of a row's runs. Context switches"
    echo "per request (/proc status, voluntary and not) show how much a run was woken and preempted:"
    echo "on this virtual machine each costs the worker CPU time, and they vary with the other load."
    echo "System calls per request: perf stat of the kernel's syscall tracepoints on the worker over a"
    echo "2 s run of its own (total, then pread64, newfstatat, openat, fcntl). The measure is the"
    echo "worker's CPU time (utime+stime) per request; capacity is plain"
    echo "nginx's time divided by the module's. For comparison (issue 13): Kong key-auth with"
    echo "rate limiting, 0.76x its plain proxy; nginx auth_request to a bare HTTP responder, 0.21x."
    if [ -n "$WRK_PIN" ]; then echo "Pinned (BENCH_NGINX_PIN=1, the default): the worker on CPU 0, wrk on CPU 1."; else echo "Unpinned (BENCH_NGINX_PIN=0): the worker and wrk share both cores."; fi
    echo
    rows_table
} > "$T/RESULTS.md"
cp "$T/RESULTS.md" bench/RESULTS.md
