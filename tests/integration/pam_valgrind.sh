#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# pam_apikey under valgrind: hundreds of logins in one process, each one
# loading and unloading the module as libpam does at pam_start/pam_end.
# Any invalid read or write, or any definite leak, fails. Good, refused and
# unavailable paths each run. Skipped (77) under sanitizers, which cannot
# share a process with valgrind, and where valgrind is missing.
cd "$(dirname "$0")/../.." || exit 2
[ -z "${APIKEY_TEST_SANITIZE:-}" ] || { echo "skip: built with sanitizers"; exit 77; }
command -v valgrind >/dev/null || { echo "skip: no valgrind"; exit 77; }
[ -x build/pam_try ] && [ -f build/pam_apikey.so ] || { echo "build/pam_try or pam_apikey.so missing"; exit 2; }
ROOT=$(pwd)
T=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
chmod 755 "$T"
export APIKEY_STORE_DIR="$ROOT/build/store"
fails=0
printf 'store = json:%s/keys.json\n[services]\nvg = proxies:read\n' "$T" > "$T/c.conf"
printf 'store = json:%s/none/keys.json\n[services]\nvg = proxies:read\n' "$T" > "$T/down.conf"
A="build/apikey --config $T/c.conf"
GOOD=$($A create alice --name vg --scopes proxies:read) || exit 2
mkdir "$T/pam.d"
echo "auth required pam_deny.so" > "$T/pam.d/other"
for c in c down; do
    printf 'auth required %s/build/pam_apikey.so config=%s/%s.conf service=vg\naccount required %s/build/pam_apikey.so config=%s/%s.conf service=vg\n' \
        "$ROOT" "$T" $c "$ROOT" "$T" $c > "$T/pam.d/vg-$c"
done

# run WANT_EXIT COUNT SERVICE USER WHAT: the key on stdin; valgrind's own
# failure is 99, apart from pam_try's 0 (let in) and 1 (refused).
run() {
    want=$1; shift
    what=$4
    echo "$GOOD" | valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
        --log-file="$T/vg.log" build/pam_try -n "$1" "$T/pam.d" "$2" "$3" > "$T/out"
    rc=$?
    if [ $rc -eq "$want" ] && [ ! -s "$T/vg.log" ]; then
        echo "ok - $what: $(cat "$T/out")"
    else
        echo "not ok - $what: exit $rc (want $want)"
        cat "$T/out" "$T/vg.log"
        fails=$((fails + 1))
    fi
}
run 0 300 vg-c alice "300 logins with a good key"
run 1 100 vg-c bob "100 logins with another account's key"
run 1 50 vg-down alice "50 logins with the store down"
[ $fails -eq 0 ]
