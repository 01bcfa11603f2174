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
