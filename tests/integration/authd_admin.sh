#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# apikey-authd's management API (apikey-authd(8)) driven as a provider's web
# backend drives it: a python3 standard-library client over the admin Unix
# socket (tests/integration/lib/admin_client.py). The dashboard flow (create
# and see the key once, list every column as `apikey list --json`, verify
# through /verify, the 11th key refused, rotate, revoke), a key with an
# address allowlist (apikey(1)), bad requests, a
# user who is not an admin, SIGKILL in the middle of a create loop, and the
# store going down and coming back.
NAME=authd_admin
. "$(dirname "$0")/lib/servers.sh"

for f in build/apikey-authd build/libapikey.so; do
    [ -f "$f" ] || { echo "not ok - $f is not built (make all)"; exit 1; }
done
[ -x /usr/bin/python3 ] || { echo "not ok - /usr/bin/python3 is missing (make deps)"; exit 1; }

sed -i "1i rate_table = $T/rate" "$CONF" # the shared table, private to this run
SOCK=$T/authd.sock
ADMIN=$T/admin.sock
LOG=$T/authd.log
# Where the unprivileged user can read it.
cp tests/integration/lib/admin_client.py "$T/admin_client.py"
chmod 644 "$T/admin_client.py"
export NAME SOCK ADMIN SVC APIKEY SEEN="$T/seen"
start_authd() {
    rm -f "$T/up"
    # Every local user may connect (the refused one below is dropped then).
    bg build/apikey-authd --config "$CONF" --listen "unix:$SOCK" --admin "unix:$ADMIN" --threads 2 \
        --timeout 5 --socket-mode 0666 --verbose 2>> "$LOG"
    AUTHD=$!
    for i in $(seq 100); do
        curl -s -o /dev/null --max-time 2 --unix-socket "$ADMIN" http://authd/v1/scopes && return 0
        sleep 0.1
    done
    not_ok "apikey-authd did not start"; finish
}
client() { python3 "$T/admin_client.py" "$@" || fails=$((fails + 1)); }
# expect STATUS METHOD PATH [BODY], asked again for up to 10 s (json looks
# at its file again at most a second after it last did).
expect() {
    for i in $(seq 50); do python3 "$T/admin_client.py" expect "$@" > "$T/expect.out" && return 0; sleep 0.2; done
    cat "$T/expect.out"
    return 1
}
start_authd

# --- The dashboard flow, and bad requests ------------------------------------
client flow "acme$$"
client bad
client allowlist "listed$$"
client scoped "own$$" "other$$"
client utf8
client ratelimit "limited$$"

# --- A user who is not an admin -------------------------------------------------
before=$($APIKEY list --json --all | grep -c '"id"')
# (the system's python3: a root-only pyenv shim is no use to that user)
SEEN= setpriv --reuid="$U1" --regid="$(id -g "$U1")" --init-groups /usr/bin/python3 "$T/admin_client.py" forbidden ||
    fails=$((fails + 1))
after=$($APIKEY list --json --all | grep -c '"id"')
want_same() { if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3: $1 then $2"; fi; }
want_same "$before" "$after" "the refused user created nothing"

# --- SIGKILL in the middle of a create loop loses no acknowledged key -----------
python3 "$T/admin_client.py" createloop "$T/acked" > "$T/loop.out" 2>&1 &
LOOP=$!
for i in $(seq 300); do [ "$(cat "$T/acked" 2>/dev/null | wc -l)" -ge 25 ] && break; sleep 0.1; done
kill -KILL "$AUTHD"
wait "$AUTHD" 2>/dev/null
wait "$LOOP"
sed -n 's/^# /#   /p' "$T/loop.out"
start_authd
client verifyall "$T/acked" "SIGKILL in a create loop, then a restart: every acknowledged key is kept"

# --- The store goes down and comes back ------------------------------------------
mv "$T/keys.json" "$T/keys.json.away"
for req in "GET /v1/keys" "GET /v1/keys?account=$U1" "GET /v1/keys/$(id_of "$GOOD")" "DELETE /v1/keys/$(id_of "$GOOD")"; do
    set -- $req
    expect 503 "$1" "$2" && ok "the store gone: $req is 503" || not_ok "the store gone: $req is not 503"
done
expect 503 POST "/v1/keys/$(id_of "$GOOD")/rotate" && ok "the store gone: rotate is 503" ||
    not_ok "the store gone: rotate is not 503"
[ ! -e "$T/keys.json" ] && ok "the store gone: no request made a new, empty store in its place" ||
    not_ok "a request wrote a new store while the old one was away"
# A create makes a missing store, as `apikey create` does: on a fresh
# install the API's first key needs no command first.
expect 201 POST /v1/keys '{"account":"down","name":"n","scopes":["geo:read"]}' &&
    ok "the store gone: POST /v1/keys makes a store, as apikey create does" ||
    not_ok "the store gone: POST /v1/keys did not make a store"
mv "$T/keys.json.away" "$T/keys.json"
expect 200 GET "/v1/keys/$(id_of "$GOOD")" && ok "the store back: GET /v1/keys/ID is 200, without a restart" ||
    not_ok "the store back: no recovery"
expect 201 POST /v1/keys '{"account":"back","name":"n","scopes":["geo:read"]}' &&
    ok "the store back: POST /v1/keys is 201" || not_ok "the store back: create fails"
printf '%s\n' "$GOOD" > "$T/good"
client verifyall "$T/good" "the store back: /verify"

# --- A library older than the one reader of apikey.conf (1.4): the daemon
# reads its settings only through the library, so it does not start, and
# says why, rather than run on settings it could not read. -----------------
mkdir "$T/old"
cp build/apikey-authd "$T/old/"
if ${CC:-cc} -shared -fPIC -Iinclude -DREAL="\"$ROOT/build/libapikey.so.1\"" -o "$T/old/libapikey.so.1" \
    tests/integration/lib/old_library.c -ldl; then
    if "$T/old/apikey-authd" --config "$CONF" --listen "unix:$T/old.sock" --admin "unix:$T/old-admin.sock" \
        2> "$T/old.err"; then
        not_ok "an older libapikey: the daemon started"
    elif grep -q "older than this daemon (it needs 1.4)" "$T/old.err"; then
        ok "an older libapikey: the daemon does not start, and says it needs 1.4"
    else
        not_ok "an older libapikey: no clear refusal: $(cat "$T/old.err")"
    fi
else
    not_ok "cannot build the older library"
fi

# --- Stop; no key in the log ------------------------------------------------------
kill -TERM "$AUTHD"
wait "$AUTHD"
leaks=0
for k in $(cat "$T/seen" "$T/acked" 2>/dev/null) "$GOOD"; do
    grep -qF "$k" "$LOG" && leaks=$((leaks + 1))
done
[ -s "$T/seen" ] && [ $leaks -eq 0 ] && ok "no key shown by the API is in the daemon's log ($(wc -l < "$T/seen") looked for)" ||
    not_ok "$leaks keys in the daemon's log"
finish
