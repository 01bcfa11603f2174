# SPDX-License-Identifier: BSD-2-Clause
# Shared setup for the real-server tests (sshd.sh, squid.sh, dante.sh),
# sourced by them; it sits in lib/ so that tests/run.sh does not run it.
#
# Sourcing it, as root: a temporary folder $T (0755, so Squid's proxy user
# can traverse it) holding a copy of the built module, helper and stores
# ($T/build, traversable wherever the checkout lives); a private config
# $T/apikey.conf whose [services] section names $SVC; a JSON store
# root:proxy 0640; two system users $U1 and $U2 (the accounts); a tiny HTTP
# origin on $ORIGIN_PORT; and keys (never printed):
#   GOOD     $U1, proxies:read                 FOREIGN  $U2, proxies:read
#   NARROW   $U1, geo:read only (under-scoped) WRONG    well formed, not in the store
#   EXPIRED  $U1, rotated with a 1 s grace     REVOKED  $U1, revoked
# A trap removes the users, their processes, every process started through
# bg(), and every file named in $CLEANUP_FILES, even on failure ($T too,
# unless KEEP=1 is set, for debugging).
#
# The test then defines login USER KEY (0 let in, 1 refused, else broken)
# and calls matrix once per way of logging in; a host that takes the client
# address from the connection also calls address_matrix, its login
# connecting from $FROM to $(server_addr).

[ -n "${NAME:-}" ] || { echo "servers_lib.sh is sourced by the server tests" >&2; exit 77; }
if [ "$(id -u)" != 0 ]; then
    echo "skip: $NAME needs root (it adds system users, writes /etc/pam.d and runs $NAME)"
    exit 77
fi
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
for f in build/pam_apikey.so build/basic_apikey_auth build/apikey build/store/apikey_store_json.so; do
    [ -f "$f" ] || { echo "not ok - $f is not built (make all)"; exit 1; }
done

T=$(mktemp -d /tmp/apikey-$NAME.XXXXXX) || exit 2
chmod 755 "$T"
PIDS=""
USERS=""
CLEANUP_FILES=""
LOG=""       # the server's log, its tail printed on failure
fails=0
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do
        for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$p" 2>/dev/null
    done
    for u in $USERS; do
        pkill -KILL -u "$u" 2>/dev/null
        userdel "$u" 2>/dev/null || userdel -f "$u" 2>/dev/null
    done
    for f in $CLEANUP_FILES; do rm -f "$f"; done
    if [ "$fails" -ne 0 ] && [ -n "$LOG" ] && [ -f "$LOG" ]; then
        echo "# --- last lines of $(basename "$LOG"):"
        tail -n 30 "$LOG" | sed 's/^/#   /'
    fi
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Runs a command in the background and remembers it for the trap.
bg() { "$@" & PIDS="$PIDS $!"; }

ok() { echo "ok - $NAME: $1"; }
not_ok() { echo "not ok - $NAME: $1"; fails=$((fails + 1)); }
# want_in WHAT USER KEY / want_out WHAT USER KEY, with the test's login
# USER KEY: 0 let in, 1 refused by authentication, anything else broken.
want_in() {
    login "$2" "$3"; rc=$?
    if [ $rc -eq 0 ]; then ok "$1: let in"; else not_ok "$1: want let in, got $(said $rc)"; fi
}
want_out() {
    login "$2" "$3"; rc=$?
    if [ $rc -eq 1 ]; then ok "$1: refused"; else not_ok "$1: want refused, got $(said $rc)"; fi
}
said() { case $1 in 0) echo "let in" ;; 1) echo refused ;; *) echo "a failure other than a refusal ($1)" ;; esac; }
finish() { [ "$fails" -eq 0 ]; exit $?; }

. tests/integration/lib/port.sh
# Whether this host has IPv6 on loopback (::1): containers may have none.
have_ipv6() { grep -q '^0\{31\}1 .* lo$' /proc/net/if_inet6 2>/dev/null; }
# wait_port PORT: until something listens there (10 s at most).
wait_port() {
    for i in $(seq 100); do
        ss -Htln "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

# Copies of what the servers load, where their unprivileged users can reach.
mkdir -p "$T/build/store"
cp build/pam_apikey.so build/basic_apikey_auth "$T/build/"
cp build/store/*.so "$T/build/store/"
chmod -R a+rX "$T/build"
MODULE=$T/build/pam_apikey.so
HELPER=$T/build/basic_apikey_auth
CONF=$T/apikey.conf
APIKEY="$ROOT/build/apikey --config $CONF"

# Test accounts as system users (sshd wants real ones), unique to this run.
U1=akt$$a
U2=akt$$b
for u in $U1 $U2; do
    useradd -M -d "$T" -s /bin/sh "$u" || { echo "not ok - useradd $u"; exit 1; }
    USERS="$USERS $u"
done

# The service name the module is asked about (PAM service or --service).
SVC=${SVC:-apikeytest-$NAME-$$}
cat > "$CONF" <<CONF
store = json:$T/keys.json
[services]
$SVC = proxies:read
CONF
chgrp proxy "$CONF"
chmod 640 "$CONF"

mk() { $APIKEY create "$@"; } # prints the key, captured by the caller
GOOD=$(mk "$U1" --name good --scopes proxies:read) || { echo "not ok - apikey create"; exit 1; }
# Hosts running as proxy read the store through its group; rewrites keep it.
chgrp proxy "$T/keys.json" && chmod 640 "$T/keys.json"
FOREIGN=$(mk "$U2" --name foreign --scopes proxies:read)
NARROW=$(mk "$U1" --name narrow --scopes geo:read)
EXPIRED=$(mk "$U1" --name expiring --scopes proxies:read)
REVOKED=$(mk "$U1" --name revoked --scopes proxies:read)
id_of() { echo "$1" | cut -c1-11; }
$APIKEY revoke "$(id_of "$REVOKED")" 2>/dev/null
# apikey refuses a past expiry; a rotation with a grace makes the old key
# expire at the end of the grace, through the product's own path.
$APIKEY rotate "$(id_of "$EXPIRED")" --grace 1s > /dev/null 2>&1
printf 'store = json:%s/other.json\n' "$T" > "$T/other.conf"
WRONG=$("$ROOT/build/apikey" --config "$T/other.conf" create "$U1" --name wrong --scopes proxies:read)
sleep 1.1
# The refusals hold for the reason meant, not by accident.
reason() { printf '%s\n' "$3" | $APIKEY verify --service "$SVC" --account "$2" 2>&1 | grep -q "$1"; }
reason "expired" "$U1" "$EXPIRED" || { echo "not ok - setup: the rotated key is not expired"; exit 1; }
reason "revoked" "$U1" "$REVOKED" || { echo "not ok - setup: the revoked key is not revoked"; exit 1; }
reason "missing scope" "$U1" "$NARROW" || { echo "not ok - setup: the narrow key has the scope"; exit 1; }
[ "$(stat -c %G:%a "$T/keys.json")" = proxy:640 ] || { echo "not ok - setup: a rewrite lost the store's group or mode"; exit 1; }

# The origin behind the proxies.
${CC:-cc} -O -o "$T/origin" tests/integration/lib/origin.c || { echo "not ok - cannot build the origin"; exit 1; }
bg "$T/origin" > "$T/origin.port"
for i in $(seq 50); do [ -s "$T/origin.port" ] && break; sleep 0.1; done
ORIGIN_PORT=$(cat "$T/origin.port")
ORIGIN=http://127.0.0.1:$ORIGIN_PORT/

# A PAM service file /etc/pam.d/NAME from one of etc/pam.d, with the module's
# and the test configuration's absolute paths; removed by the trap.
install_pam_service() { # ETC_FILE NAME
    [ -e "/etc/pam.d/$2" ] && { echo "not ok - /etc/pam.d/$2 exists already"; exit 1; }
    CLEANUP_FILES="$CLEANUP_FILES /etc/pam.d/$2"
    sed -e "s#pam_apikey.so#$MODULE#" -e "s#config=/etc/apikey/apikey.conf#config=$CONF#" "$1" > "/etc/pam.d/$2"
    grep -q "$MODULE config=$CONF" "/etc/pam.d/$2" || { echo "not ok - $1 did not template"; exit 1; }
}

# The cases every way of logging in must get right. A fresh key is revoked
# while the server runs, and must fail at the very next login.
matrix() { # HOW
    want_in "$1: a good key" "$U1" "$GOOD"
    want_in "$1: the other account's own key" "$U2" "$FOREIGN"
    want_out "$1: a wrong key (well formed, not in the store)" "$U1" "$WRONG"
    case $GOOD in *x) typo=${GOOD%?}y ;; *) typo=${GOOD%?}x ;; esac
    want_out "$1: a mistyped key" "$U1" "$typo"
    want_out "$1: another account's key" "$U1" "$FOREIGN"
    want_out "$1: a key without the service's scope" "$U1" "$NARROW"
    want_out "$1: an expired key" "$U1" "$EXPIRED"
    want_out "$1: a revoked key" "$U1" "$REVOKED"
    LIVE=$(mk "$U1" --name live --scopes proxies:read)
    want_in "$1: a fresh key" "$U1" "$LIVE"
    $APIKEY revoke "$(id_of "$LIVE")" 2>/dev/null
    [ -n "${REVOKE_SETTLE:-}" ] && sleep "$REVOKE_SETTLE"
    want_out "$1: that key, revoked while the server runs" "$U1" "$LIVE"
}

# Allowlists (apikey(1)): the address the server sees reaches the
# check. 127.0.0.2 is loopback too: the same server, another client. With
# v6, the server listens on ::1 as well where have_ipv6.
FROM=""
server_addr() { case $FROM in *:*) echo "::1" ;; *) echo 127.0.0.1 ;; esac; }
url_host() { case $FROM in *:*) echo "[::1]" ;; *) echo 127.0.0.1 ;; esac; }
pinned_keys() { # PINNED, of $U1, from 127.0.0.1/32; PINNED6 from ::1/128
    [ -n "${PINNED:-}" ] && return
    PINNED=$(mk "$U1" --name pinned --scopes proxies:read --allow-from 127.0.0.1/32) &&
        PINNED6=$(mk "$U1" --name pinned6 --scopes proxies:read --allow-from ::1/128) ||
        { not_ok "apikey create --allow-from"; finish; }
}
address_matrix() { # HOW [v6]
    pinned_keys
    FROM=127.0.0.1; want_in "$1: a key pinned to 127.0.0.1/32, from 127.0.0.1" "$U1" "$PINNED"
    FROM=127.0.0.2; want_out "$1: the same key, from 127.0.0.2" "$U1" "$PINNED"
    want_in "$1: a key without a list, from 127.0.0.2" "$U1" "$GOOD"
    FROM=127.0.0.1; want_in "$1: a key without a list, from 127.0.0.1" "$U1" "$GOOD"
    if [ "${2:-}" = v6 ] && ! have_ipv6; then
        echo "# $1: IPv6: no ::1 on loopback, skipped"
    elif [ "${2:-}" = v6 ]; then
        FROM=::1; want_in "$1: a key pinned to ::1/128, from ::1" "$U1" "$PINNED6"
        want_out "$1: a key pinned to 127.0.0.1/32, from ::1" "$U1" "$PINNED"
        want_in "$1: a key without a list, from ::1" "$U1" "$GOOD"
    fi
    FROM=""
}
