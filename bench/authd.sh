#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make bench, apikey-authd's part: CPU time the servers spend per request
# under wrk with keep-alive (STYLE.md, "HTTP hosts"), side by side in one run:
#   - /verify on the daemon against bench/mhd_floor.c, a libmicrohttpd server
#     with the same threads that answers 200 and nothing else;
#   - nginx auth_request to the daemon (keep-alive upstream on its Unix
#     socket) against plain nginx serving the same small file.
# A store of $MID keys on json, owned by root and read through its group by
# the daemon running as www-data, as operators run it (it may not record
# last-used times). Replaces its own section of bench/RESULTS.md.
#
# BENCH_MID=100000 BENCH_SECONDS=3 BENCH_THREADS=2 BENCH_ROUNDS=9 can be lowered for a look.
set -u
cd "$(dirname "$0")/.." || exit 2
MID=${BENCH_MID:-100000}
SECS=${BENCH_SECONDS:-3}
THREADS=${BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-9}
for p in wrk nginx; do command -v $p > /dev/null || { echo "bench/authd.sh: $p is missing (make deps)" >&2; exit 1; }; done
T=$(mktemp -d /var/tmp/apikey-authd-bench.XXXXXX)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
chmod 755 "$T"
ROWS=$T/rows
: > "$ROWS"
. bench/lib.sh
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for i in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "bench: $1 did not answer" >&2; exit 1; }

echo "== apikey-authd: a json store of $MID keys"
printf 'store = json:%s/keys.json\nlast_used_granularity = 1h\n[services]\nbench = proxies:read\n' "$T" > "$T/apikey.conf"
awk -v n="$MID" 'BEGIN { for (i = 0; i < n; i++) printf "user%d\tk\tproxies:read\tnever\n", i }' > "$T/batch"
build/apikey --config "$T/apikey.conf" create --batch "$T/batch" > "$T/keys" || { echo "bench: batch failed" >&2; exit 1; }
WUSER=${BENCH_WORKER_USER:-www-data}
WGROUP=$(id -gn "$WUSER") || { echo "bench: needs the user $WUSER" >&2; exit 1; }
chgrp "$WGROUP" "$T"/keys.json* && chmod 640 "$T"/keys.json* && chmod 644 "$T/apikey.conf"
AS="setpriv --reuid=$WUSER --regid=$WGROUP --init-groups"
# The key goes to wrk in a script file, never on a command line.
(umask 077; printf 'wrk.headers["X-API-Key"] = "%s"\n' "$(sed -n 78p "$T/keys")" > "$T/key.lua")
: > "$T/none.lua"

# ticks PID...: utime+stime of the processes, in clock ticks.
ticks() { for p in "$@"; do cut -d' ' -f14,15 "/proc/$p/stat"; done | awk '{ t += $1 + $2 } END { print t + 0 }'; }
HZ=$(getconf CLK_TCK)
# load URL SCRIPT "PIDS" ["PIDS2"]: µs of CPU per request of each group of
# processes over one wrk run (16 keep-alive connections, one wrk thread);
# fails on any non-2xx answer.
load() {
    url=$1 script=$2 g1=$3 g2=${4:-}
    # Warm once per server and script: caches, last-used writes.
    w=$T/warm.$(echo "$url$script" | cksum | cut -d' ' -f1)
    [ -f "$w" ] || { wrk -t1 -c16 -d1s -s "$script" "$url" > /dev/null; : > "$w"; }
    b1=$(ticks $g1) b2=$(ticks $g2)
    wrk -t1 -c16 -d"${SECS}s" -s "$script" "$url" > "$T/wrk.out"
    a1=$(ticks $g1) a2=$(ticks $g2)
    if grep -q "Non-2xx" "$T/wrk.out"; then echo "bench: $url answered non-2xx:" >&2; cat "$T/wrk.out" "$T/nginx/logs/error.log" >&2 2>/dev/null; exit 1; fi
    n=$(awk '/requests in/ { print $1 }' "$T/wrk.out")
    awk -v t1=$((a1 - b1)) -v t2=$((a2 - b2)) -v hz="$HZ" -v n="$n" \
        'BEGIN { printf "%.2f %.2f", t1 / hz / n * 1e6, t2 / hz / n * 1e6 }'
}

echo "== /verify against a bare libmicrohttpd responder, $THREADS threads: $ROUNDS pairs of ${SECS} s runs"
FP=$(port)
build/bench/mhd_floor "$FP" "$THREADS" & FLOOR=$!; PIDS="$PIDS $FLOOR"
DP=$(port)
$AS build/apikey-authd --config "$T/apikey.conf" --listen "127.0.0.1:$DP" --threads "$THREADS" 2> "$T/authd-tcp.log" &
D=$!; PIDS="$PIDS $D"
wait_up "http://127.0.0.1:$FP/"
wait_up "http://127.0.0.1:$DP/metrics"
# Other work on a shared machine comes and goes: many short pairs of runs
# side by side, the floor first in one and second in the next (ABBA), and
# the median of the pairs' ratios (a burst of other work spoils a pair,
# not the figure).
: > "$T/f"; : > "$T/d"; : > "$T/r"
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        f=$(load "http://127.0.0.1:$FP/verify/bench" "$T/key.lua" $FLOOR | cut -d' ' -f1)
        d=$(load "http://127.0.0.1:$DP/verify/bench" "$T/key.lua" $D | cut -d' ' -f1)
    else
        d=$(load "http://127.0.0.1:$DP/verify/bench" "$T/key.lua" $D | cut -d' ' -f1)
        f=$(load "http://127.0.0.1:$FP/verify/bench" "$T/key.lua" $FLOOR | cut -d' ' -f1)
    fi
    echo "$f" >> "$T/f"; echo "$d" >> "$T/d"; echo "$(ratio "$f" "$d")" >> "$T/r"
    echo "  round $round: floor $f µs, daemon $d µs: $(tail -n 1 "$T/r")x"
done
FC="" DC=""
if command -v perf > /dev/null; then
    FC="; system calls/request $(calls "$FLOOR" "http://127.0.0.1:$FP/verify/bench" -s "$T/key.lua")"
    DC="; system calls/request $(calls "$D" "http://127.0.0.1:$DP/verify/bench" -s "$T/key.lua")"
fi
each() { tr '\n' ' ' < "$1" | sed 's/ $//; s/ /, /g'; }
F=$(median "$T/f") V=$(median "$T/d") R=$(median "$T/r")
row "libmicrohttpd answering 200, $THREADS threads (the floor; median of $ROUNDS runs)" "$F" "µs CPU/request" "-" "1.00x; runs $(each "$T/f") µs$FC"
row "apikey-authd /verify, json $MID keys, $THREADS threads (median of $ROUNDS runs)" "$V" "µs CPU/request" ">= 0.80x the floor's efficiency" \
    "${R}x (median of $ROUNDS pairs): $(verdict "$R" 0.80 ge); each pair: $(each "$T/r")x; runs $(each "$T/d") µs$DC"
kill $D $FLOOR; wait $D $FLOOR 2>/dev/null

echo "== nginx auth_request to the daemon against plain nginx"
mkdir "$T/run" && chown "$WUSER:$WGROUP" "$T/run" # the daemon makes its socket there
SOCK=$T/run/authd.sock
$AS build/apikey-authd --config "$T/apikey.conf" --listen "unix:$SOCK" --threads "$THREADS" 2> "$T/authd-unix.log" &
D=$!; PIDS="$PIDS $D"
for i in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
mkdir -p "$T/www/plain" "$T/www/checked" "$T/nginx/logs"
printf 'ok\n' > "$T/www/plain/f"; printf 'ok\n' > "$T/www/checked/f"
NP=$(port)
cat > "$T/nginx/nginx.conf" <<NGINX
user $WUSER $WGROUP;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body; proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fcgi; uwsgi_temp_path $T/nginx/uwsgi; scgi_temp_path $T/nginx/scgi;
    upstream authd {
        server unix:$SOCK;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$NP;
        root $T/www;
        location /plain/ { }
        location /checked/ {
            auth_request /_apikey;
        }
        location = /_apikey {
            internal;
            proxy_pass http://authd/verify/bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
    }
}
NGINX
nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" -g "daemon off;" &
NG=$!; PIDS="$PIDS $NG"
wait_up "http://127.0.0.1:$NP/plain/f"
NGPIDS="$NG $(pgrep -P $NG | tr '\n' ' ')"
P=$(load "http://127.0.0.1:$NP/plain/f" "$T/none.lua" "$NGPIDS" | cut -d' ' -f1)
row "plain nginx, a small file" "$P" "µs CPU/request" "-" "1.00x"
set -- $(load "http://127.0.0.1:$NP/checked/f" "$T/key.lua" "$NGPIDS" "$D")
A=$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }')
row "nginx auth_request to apikey-authd, json $MID keys: nginx and the daemon" "$A" "µs CPU/request" "-" \
    "$(ratio "$A" "$P")x plain nginx"
row "  the same run: nginx alone" "$1" "µs CPU/request" "-" "$(ratio "$1" "$P")x plain nginx"
row "  the same run: the daemon alone" "$2" "µs CPU/request" "-" "-"
grep -q "upstream prematurely closed\|connect() failed" "$T/nginx/logs/error.log" &&
    echo "bench: nginx lost its connections to the daemon; see the log" >&2

# The section in bench/RESULTS.md, replacing an earlier one.
{
    awk '/^## apikey-authd$/ { skip = 1; next } skip && /^## / { skip = 0 } !skip' bench/RESULTS.md 2>/dev/null
    echo
    echo "## apikey-authd"
    echo
    echo "Measured by \`make bench\` (bench/authd.sh) on $(date -u +%Y-%m-%d), the daemon as $WUSER on a store"
    echo "owned by root and read through group $WGROUP: CPU time (utime+stime"
    echo "from /proc) of the servers' processes over a ${SECS} s wrk run (one thread, 16 keep-alive"
    echo "connections) divided by the requests answered. Ratio for /verify: the floor's CPU per"
    echo "request over the daemon's, in $ROUNDS pairs of runs side by side (the floor first in one,"
    echo "second in the next); the median of the pairs' ratios, every pair shown. The nginx module's"
    echo "figure is measured by its own section."
    echo
    rows_table
} > "$T/RESULTS.md"
cp "$T/RESULTS.md" bench/RESULTS.md
