#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# The example HTTP host (examples/http_host.c), driven by curl on loopback:
# 200, 401, 403 and 503 as a web service answers them.
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
T=$(mktemp -d)
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; rm -rf "$T"' EXIT
fails=0
check() { # WANT GOT WHAT
    if [ "$1" = "$2" ]; then echo "ok - $3"; else echo "not ok - $3: want $1, got $2"; fails=$((fails + 1)); fi
}
. tests/integration/lib/port.sh
start() { # CONFIG PORT
    build/examples/apikey_http_host "$ROOT/build/libapikey.so" "$1" "$2" &
    PIDS="$PIDS $!"
    for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$2/" && return; sleep 0.1; done
}
get() { # PORT SERVICE KEY [ACCOUNT]
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $3" \
        ${4:+-H "X-Account: $4"} "http://127.0.0.1:$1/$2"
}
printf 'store = json:%s/keys.json\n[services]\nproxies = proxies:read\nbilling = balance:read\n' "$T" > "$T/c.conf"
A="build/apikey --config $T/c.conf"
GOOD=$($A create alice --name web --scopes proxies:read)
P=$(free_port)
start "$T/c.conf" "$P"
check 200 "$(get "$P" proxies "$GOOD")" "a good key: 200"
check 200 "$(get "$P" proxies "$GOOD" alice)" "a good key of the named account: 200"
check 401 "$(get "$P" proxies "$GOOD" bob)" "another account's key: 401"
check 403 "$(get "$P" billing "$GOOD")" "a genuine key without the scope: 403"
check 401 "$(get "$P" proxies "ak_nonsense")" "a malformed key: 401"
$A revoke "$(echo "$GOOD" | cut -c1-11)" 2>/dev/null
check 401 "$(get "$P" proxies "$GOOD")" "revoked while the host runs: 401 at the next request"
printf 'store = json:/nonexistent/keys.json\n[services]\nproxies = proxies:read\n' > "$T/bad.conf"
Q=$(free_port)
start "$T/bad.conf" "$Q"
check 503 "$(get "$Q" proxies "$GOOD")" "store unavailable: 503"
[ $fails -eq 0 ]
