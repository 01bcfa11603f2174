#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# A long-lived host (the Squid helper, build/basic_apikey_auth) answering
# while its store files are truncated in place, copied over in place (what
# cp and rsync --inplace do), swapped by rename and deleted: the .json file
# and its .idx, and the SQLite database with its -wal and -shm. Every answer
# must be the right one or BH (unavailable), never a wrong OK, and the
# helper must never die (a shared mapping of a truncated file raised SIGBUS:
# exit status 135). Twice: the helper as root, and (when the user exists) as
# www-data reading the store through its group, which keeps what it read
# differently (a SQLite host that may not write the -shm file reads its WAL
# index header from the file: doc/STORES.md, "Hosts").
set -u
cd "$(dirname "$0")/../.." || exit 2
for f in build/basic_apikey_auth build/apikey build/store/apikey_store_json.so; do
    [ -f "$f" ] || { echo "not ok - $f is not built (make all)"; exit 1; }
done
export APIKEY_STORE_DIR="$(pwd)/build/store"
T=$(mktemp -d /tmp/apikey-churn.XXXXXX) || exit 2
HPID="" CPID=""
trap 'kill $HPID $CPID 2>/dev/null; rm -rf "$T"' EXIT INT TERM
fails=0
trap '' PIPE # a helper that died is reported, not the shell killed writing to it
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
ok() { echo "ok - $*"; }

start_helper() { # CONF
    rm -f "$T/in" "$T/out"
    mkfifo "$T/in" "$T/out"
    $RUNAS build/basic_apikey_auth --config "$1" --service churn < "$T/in" > "$T/out" 2>> "$T/helper.log" &
    HPID=$!
    exec 3> "$T/in" 4< "$T/out"
}

# ask KEY EXPECTED [strict]: EXPECTED (OK or ERR) or, unless strict, BH.
ask() {
    printf 'u1 %s\n' "$1" >&3 2>/dev/null
    if ! read -r answer <&4; then
        wait "$HPID"
        not_ok "$STEP: the helper died (status $?; 135 is SIGBUS)"
        exit 1
    fi
    case ${answer%% *} in
    "$2") return 0 ;;
    BH) [ -z "${3:-}" ] && return 0 ;;
    esac
    not_ok "$STEP: answered '$answer', expected $2${3:+ (and no BH)}"
    return 1
}

stop_helper() { # checks how it ended
    exec 3>&- 4<&-
    wait "$HPID"
    rc=$?
    HPID=""
    [ $rc -eq 0 ] && ok "$KIND, as $AS: the helper lived through it all" ||
        not_ok "$KIND, as $AS: the helper exited with status $rc (135 is SIGBUS)"
}

both() { ask "$GOOD" OK ${1:-} && ask "$REVOKED" ERR ${1:-}; }

AS_LIST=root
[ "$(id -u)" = 0 ] && getent passwd www-data > /dev/null && AS_LIST="root www-data"
chmod 755 "$T"
for AS in $AS_LIST; do
RUNAS="" GROUP=""
[ "$AS" = www-data ] && RUNAS="setpriv --reuid=www-data --regid=www-data --init-groups" GROUP=www-data
for KIND in ${CHURN_STORES:-json sqlite}; do
    [ -f "build/store/apikey_store_$KIND.so" ] || { echo "ok - $KIND # skip: not built"; continue; }
    D=$T/$AS-$KIND
    mkdir "$D" && chmod 755 "$D"
    case $KIND in
    json) STORE=$D/keys.json FILES="$D/keys.json $D/keys.json.idx" ;;
    sqlite) STORE=$D/keys.db FILES="$D/keys.db $D/keys.db-wal" ;;
    esac
    printf 'store = %s:%s\n[services]\nchurn = proxies:read\n' "$KIND" "$STORE" > "$D/conf"
    chmod 644 "$D/conf"
    A="build/apikey --config $D/conf"
    GOOD=$($A create u1 --name good --scopes proxies:read)
    REVOKED=$($A create u1 --name revoked --scopes proxies:read)
    mkdir "$D/before" && cp $FILES "$D/before/" 2>/dev/null # REVOKED not yet revoked
    $A revoke "$(echo "$REVOKED" | cut -c1-11)" 2>/dev/null
    $A create u2 --name other --scopes geo:read > /dev/null
    mkdir "$D/now" && cp $FILES "$D/now/" 2>/dev/null
    # Back to the state "now", through a write for json, so that the helper
    # reads a fresh index again (one copied back names another JSON file).
    # Through the group, as the store's own writes keep it.
    shared() { [ -z "$GROUP" ] || { chgrp "$GROUP" "$D"/keys.*; chmod 640 "$D"/keys.*; }; }
    restore() {
        for g in $FILES; do cp "$D/now/${g##*/}" "$g" 2>/dev/null; done
        shared
        [ $KIND = json ] && $A create u3 --name filler --scopes geo:read > /dev/null
    }
    shared

    start_helper "$D/conf"
    STEP="$KIND: at rest"; both strict
    for f in $FILES; do
        n=${f##*/}
        STEP="$KIND: $n truncated to nothing in place"
        both; : > "$f"; both; both; restore; both
        STEP="$KIND: $n cut in half in place"
        both; truncate -s $(($(stat -c %s "$D/now/$n") / 2)) "$f"; both; both; restore; both
        STEP="$KIND: $n copied over in place from a backup before the revocation"
        both; cp "$D/before/$n" "$f" 2>/dev/null; ask "$REVOKED" ERR; ask "$REVOKED" ERR; restore
        STEP="$KIND: $n replaced by rename"
        both; cp "$D/now/$n" "$f.new" && mv "$f.new" "$f"; both
        STEP="$KIND: $n deleted"
        both; rm -f "$f"; both; both; restore; both
    done
    STEP="$KIND: restored, after it all"; both strict

    # Then at once, from another process: every change, over and over.
    ( while :; do
        for f in $FILES; do
            n=${f##*/}
            : > "$f"; restore
            truncate -s 4096 "$f"; restore
            cp "$D/before/$n" "$f" 2>/dev/null; restore
            cp "$D/now/$n" "$f.new" && mv "$f.new" "$f"
            rm -f "$f"; restore
        done
    done ) 2>/dev/null &
    CPID=$!
    STEP="$KIND: while another process changes the files"
    i=0
    while [ $i -lt 300 ] && both; do i=$((i + 1)); done
    kill $CPID; wait $CPID 2>/dev/null; CPID=""
    restore
    [ $i -eq 300 ] && ok "$STEP, as $AS: 600 answers, each right or BH"
    STEP="$KIND: restored, after the storm"; both strict
    stop_helper
done
done
[ $fails -eq 0 ] || { echo "# helper log:"; tail -5 "$T/helper.log"; exit 1; }
exit 0
