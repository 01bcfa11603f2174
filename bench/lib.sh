# SPDX-License-Identifier: BSD-2-Clause
# Sourced by the make bench scripts (run from the project root, with $ROWS
# set): how a measure is recorded and how the rows become a table of
# bench/RESULTS.md, said once.

# row MEASURE VALUE UNIT TARGET-TEXT VERDICT
row() { printf '%s|%s|%s|%s|%s\n' "$1" "$2" "$3" "$4" "$5" >> "$ROWS"; echo "  $1: $2 $3 ($5)"; }
# verdict VALUE TARGET le|ge: "met" or "short"
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = dir == "le" ? v <= t : v >= t; print ok ? "met" : "short" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# The rows recorded so far as a Markdown table.
rows_table() {
    echo "| measure | result | unit | target | verdict |"
    echo "|---|---|---|---|---|"
    sed 's/^/| /; s/$/ |/; s/|/ | /g; s/  */ /g' "$ROWS" | sed 's/^ | /| /'
}
# calls: system calls per request, the kernel's tracepoints counted by perf stat
# over a 2 s wrk run of its own (perf counts without stopping the process, as
# strace would, which made every check outlast the hosts' recheck interval).
EVENTS="raw_syscalls:sys_enter syscalls:sys_enter_pread64 syscalls:sys_enter_newfstatat syscalls:sys_enter_openat syscalls:sys_enter_fcntl"
calls() { # PIDS URL [WRK ARGS...]: "total; pread64 n, newfstatat n, openat n, fcntl n" per request
    pids=$(echo $1 | tr ' ' ',') url=$2
    shift 2
    perf stat -x, $(for e in $EVENTS; do printf -- '-e %s ' "$e"; done) -p "$pids" -o "$T/perf.out" -- sleep 2.5 &
    pp=$!
    wrk -t1 -c16 -d2s "$url" "$@" > "$T/wrk.calls" 2>&1
    wait "$pp"
    n=$(awk '/requests in/ { print $1 } /^RESULT/ { print $2 }' "$T/wrk.calls" | tail -n 1)
    awk -F, -v n="$n" '$3 ~ /sys_enter/ { v = $1; e = $3; sub(/.*sys_enter_?/, "", e)
            if (e == "") total = v; else part = part sprintf("%s%s %.2f", part == "" ? "; " : ", ", e, v / n) }
        END { printf "%.2f%s", total / n, part }' "$T/perf.out"
}

# wrk's script for the nginx rows, into FILE: each request sends the next
# key of the file given as wrk's argument in Authorization; the summary line
# is "RESULT requests errors p99-µs".
wrk_keys_script() {
    cat > "$1" <<'LUA'
local keys, n = {}, 0
function init(args)
    for k in io.lines(args[1]) do table.insert(keys, k) end
    n = #keys > 1 and math.random(#keys) or 0
end
function request()
    n = n + 1
    return wrk.format("GET", wrk.path, {["Authorization"] = "Bearer " .. keys[n % #keys + 1]})
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %d %.0f\n", summary.requests,
        e.connect + e.read + e.write + e.timeout + e.status, latency:percentile(99)))
end
LUA
}

# nginx's worker CPU time per request, in pairs (bench/nginx.sh, and
# bench/fleet.sh's replica row, so the two ratios are taken alike). They
# need $T, $PORT, $WORKER (the one worker's pid), $SECS and wrk_keys_script's
# script in $T/wrk.lua.
# By default the worker runs on CPU 0 and wrk on CPU 1 (nginx_pin, after
# $WORKER is known), as a server does not share its core with its clients;
# BENCH_NGINX_PIN=0 leaves both to the scheduler. Unpinned, wrk's wake-ups preempt the worker on its own
# core: 0.2-0.35 involuntary context switches a request plain, 0.44-0.49
# behind the module (every pair of 2026-12-06), each several µs of system
# time on this PVM guest, so the module's user time came back amplified as
# system time; pinned, 0.01 for both (bench/RESULTS.md, "Figures measured
# outside make bench").
nginx_pin() {
    WRK_PIN=""
    [ "${BENCH_NGINX_PIN:-1}" = 1 ] || return 0
    taskset -pc 0 "$WORKER" > /dev/null && WRK_PIN="taskset -c 1"
}
# nginx_measure PATH KEYS KIND: one wrk run of $SECS s; prints "µs-per-request
# p99-µs requests switches-per-request user-µs system-µs": utime+stime from
# /proc/PID/stat over the run, divided by the requests wrk counted.
nginx_measure() {
    # Warm, before the first run of each kind: every key's first last-used
    # write (once an hour) happens there.
    if [ ! -f "$T/warm.$3" ]; then
        ${WRK_PIN:-} wrk -t 1 -c 16 -d 3s -s "$T/wrk.lua" "http://127.0.0.1:$PORT$1" -- "$2" > /dev/null 2>&1
        : > "$T/warm.$3"
    fi
    # Context switches, voluntary and not.
    sa=$(awk '/ctxt_switches/ { n += $2 } END { print n }' "/proc/$WORKER/status")
    set -- "$@" $(awk '{ print $14, $15 }' "/proc/$WORKER/stat")
    ${WRK_PIN:-} wrk -t 1 -c 16 -d "${SECS}s" -s "$T/wrk.lua" "http://127.0.0.1:$PORT$1" -- "$2" > "$T/wrk.out" 2>&1
    set -- "$@" $(awk '{ print $14, $15 }' "/proc/$WORKER/stat")
    ut=$(($6 - $4)) st=$(($7 - $5))
    sb=$(awk '/ctxt_switches/ { n += $2 } END { print n }' "/proc/$WORKER/status")
    set -- $(awk '/^RESULT/ { print $2, $3, $4 }' "$T/wrk.out")
    [ "$2" -eq 0 ] || echo "bench: nginx: $1: $2 answers were not 200" >&2
    awk -v u="$ut" -v k="$st" -v hz="$(getconf CLK_TCK)" -v n="$1" -v p="$3" -v s=$((sb - sa)) \
        'BEGIN { printf "%.2f %d %d %.2f %.2f %.2f\n", (u + k) / hz * 1e6 / n, p, n, s / n, u / hz * 1e6 / n, k / hz * 1e6 / n }'
}
# nginx_pair ROUND KIND PATH KEYS PLAIN-PATH PLAIN-KEYS: KIND's run beside a
# plain run of its own, in turn first and second (ABBA), so that load which
# comes and goes on the shared machine falls on both sides of a pair.
# Appends to $T/runs.plain, $T/runs.KIND (nginx_measure's lines) and
# $T/ratios.KIND (plain µs / KIND µs), and shows the pair. Many short pairs
# rather than a few long runs: a burst of other work spoils one pair (on
# this machine some pairs read 0.6x or 1.25x), and the median sets it aside.
nginx_pair() {
    if [ $(($1 % 2)) -eq 1 ]; then
        nginx_measure "$5" "$6" plain > "$T/pair.plain"
        nginx_measure "$3" "$4" "$2" > "$T/pair.kind"
    else
        nginx_measure "$3" "$4" "$2" > "$T/pair.kind"
        nginx_measure "$5" "$6" plain > "$T/pair.plain"
    fi
    cat "$T/pair.plain" >> "$T/runs.plain"
    cat "$T/pair.kind" >> "$T/runs.$2"
    paste -d' ' "$T/pair.plain" "$T/pair.kind" | awk '{ printf "%.2f\n", $1 / $7 }' >> "$T/ratios.$2"
    echo "  round $1, $2: plain $(cut -d' ' -f1 "$T/pair.plain") µs, $2 $(cut -d' ' -f1 "$T/pair.kind") µs: $(tail -n 1 "$T/ratios.$2")x"
}
# The median of a file of numbers, one a line.
median() { sort -n "$1" | awk '{ v[NR] = $0 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# nginx_col KIND FIELD: the median of one field of KIND's runs.
nginx_col() { cut -d' ' -f"$2" "$T/runs.$1" > "$T/col"; median "$T/col"; }
# nginx_spread KIND: "runs LOW-HIGH µs"; nginx_each KIND: every pair's ratio.
nginx_spread() { sort -n "$T/runs.$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "runs %s-%s µs", lo, hi }'; }
nginx_each() { tr '\n' ' ' < "$T/ratios.$1" | sed 's/ $//; s/ /, /g'; }
