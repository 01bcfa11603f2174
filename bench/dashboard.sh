#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make bench, the dashboard's part: how long apikey-authd --dashboard takes
# to answer GET /api/keys (an account's list of 10 keys, as the page asks
# for it) with $MID keys of other accounts in the store, per store. One
# keep-alive connection under wrk, so a request's latency is the server's
# time plus loopback. Target: under 5 ms. Replaces its own section of
# bench/RESULTS.md.
#
# BENCH_MID=100000 BENCH_SECONDS=5 can be lowered for a look.
set -u
cd "$(dirname "$0")/.." || exit 2
MID=${BENCH_MID:-100000}
SECS=${BENCH_SECONDS:-5}
command -v wrk > /dev/null || { echo "bench/dashboard.sh: wrk is missing (make deps)" >&2; exit 1; }
T=$(mktemp -d /var/tmp/apikey-dashboard-bench.XXXXXX)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
ROWS=$T/rows
: > "$ROWS"
. bench/lib.sh
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

awk -v n="$MID" 'BEGIN { for (i = 0; i < n; i++) printf "user%d\tk\tproxies:read\tnever\n", i;
                         for (i = 0; i < 10; i++) printf "customer\tkey %d\tproxies:read geo:read\t90d\n", i }' > "$T/batch"
cat > "$T/list.lua" <<'LUA'
wrk.headers["X-Forwarded-User"] = "customer"
wrk.headers["X-Apikey-Dashboard"] = "1"
LUA
for store in json sqlite; do
    echo "== the dashboard's list of 10 keys, $store store of $MID more"
    C=$T/$store.conf
    printf 'store = %s:%s/keys.%s\nmax_keys_per_account = 10\n[authd]\ntrusted_proxies = 127.0.0.1\ndashboard_account_header = X-Forwarded-User\n' \
        "$store" "$T" "$store" > "$C"
    build/apikey --config "$C" create --batch "$T/batch" > /dev/null || { echo "bench: batch failed" >&2; exit 1; }
    P=$(port)
    build/apikey-authd --config "$C" --listen "unix:$T/$store.sock" --dashboard "127.0.0.1:$P" --threads 2 \
        2> "$T/$store.log" &
    D=$!; PIDS="$PIDS $D"
    for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$P/" && break; sleep 0.1; done
    n=$(curl -s -H 'X-Forwarded-User: customer' -H 'X-Apikey-Dashboard: 1' "http://127.0.0.1:$P/api/keys" | grep -c '"id"')
    [ "$n" = 10 ] || { echo "bench: the list has $n keys, not 10" >&2; exit 1; }
    wrk -t1 -c1 -d1s -s "$T/list.lua" "http://127.0.0.1:$P/api/keys" > /dev/null
    wrk -t1 -c1 -d"${SECS}s" --latency -s "$T/list.lua" "http://127.0.0.1:$P/api/keys" > "$T/wrk.out"
    grep -q "Non-2xx" "$T/wrk.out" && { echo "bench: non-2xx answers" >&2; cat "$T/wrk.out" >&2; exit 1; }
    # wrk prints 50% and 99% as "1.23ms" or "456.00us".
    ms() { awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
                                   else if (v ~ /ms$/) sub(/ms$/, "", v); else { sub(/s$/, "", v); v *= 1000 }
                                   printf "%.3f", v }' "$T/wrk.out"; }
    M=$(ms 50%) H=$(ms 99%)
    row "GET /api/keys (10 keys), $store, $MID other keys: median" "$M" "ms" "< 5 ms" "$(verdict "$M" 5 le)"
    row "  the same: 99th percentile (other work on the machine shows here)" "$H" "ms" "-" "-"
    kill $D; wait $D 2>/dev/null
done

{
    awk '/^## apikey-authd dashboard/ { skip = 1; next } skip && /^## / { skip = 0 } !skip' bench/RESULTS.md 2>/dev/null
    echo
    echo "## apikey-authd dashboard"
    echo
    echo "Measured by \`make bench\` (bench/dashboard.sh) on $(date -u +%Y-%m-%d): latency of"
    echo "GET /api/keys on apikey-authd --dashboard, one account's 10 keys among $MID others, over a"
    echo "${SECS} s wrk run on one keep-alive connection (the server's time plus loopback)."
    echo
    rows_table
} > "$T/RESULTS.md"
cp "$T/RESULTS.md" bench/RESULTS.md
