#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# The nginx module and apikey-authd read a request's credential by one set
# of rules (common/credential.h): the same odd requests, sent to both real
# servers side by side on one configuration and store, get the same status,
# reason, WWW-Authenticate and account from each, and the answer meant.
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$HERE/../../build/nginx/ngx_http_apikey_module.so" ] || ! command -v nginx > /dev/null; then
    echo "skip: credentials.sh needs nginx and build/nginx/ngx_http_apikey_module.so (nginx-dev)"
    exit 77
fi
NAME=credentials
. "$HERE/lib/servers.sh"
. "$HERE/lib/nginx.sh"
[ -f build/apikey-authd ] || { echo "not ok - build/apikey-authd is not built (make all)"; exit 1; }

# apikey-authd on a Unix socket.
SOCK=$T/authd.sock
LOG=$T/authd.log
bg build/apikey-authd --config "$CONF" --listen "unix:$SOCK" --threads 1 --verbose 2>> "$LOG"
for i in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { not_ok "apikey-authd did not start"; finish; }

# nginx with the module; the reason and the account as headers, as the
# daemon sends them. A static file, not `return`: that answers before the
# access phase.
N=$T/nginx
nginx_tree "$N" x ""
PORT=$(free_port)
nginx_conf "$N" "$NGX_MODULE" "
    apikey_config $CONF;
    server {
        listen 127.0.0.1:$PORT;
        location / {
            apikey_service $SVC;
            add_header X-Apikey-Reason \$apikey_reason always;
            add_header X-Apikey-Account \$apikey_account always;
            alias $N/www/;
        }
    }"
bg nginx -p "$N" -c "$N/nginx.conf"
wait_port "$PORT" || { not_ok "nginx did not listen: $(tail -n 3 "$N/error.log")"; finish; }

# ask CURL-CONFIG CURL-ARGS...: "STATUS|REASON|WWW-AUTHENTICATE|ACCOUNT" (the
# reason only for a refusal; "-" for what is absent). Keys go through curl's
# standard input, never argv.
ask() {
    cfg=$1; shift
    printf '%s\n' "$cfg" | curl -s -K - -o /dev/null -D "$T/head" -w '%{http_code}' --max-time 20 "$@" > "$T/code"
    tr -d '\r' < "$T/head" > "$T/h"
    code=$(cat "$T/code")
    reason=$(sed -n 's/^X-Apikey-Reason: //Ip' "$T/h")
    [ "$code" = 200 ] && reason=
    challenge=$(sed -n 's/^WWW-Authenticate: //Ip' "$T/h")
    account=$(sed -n 's/^X-Apikey-Account: //Ip' "$T/h")
    echo "$code|${reason:--}|${challenge:--}|${account:--}"
}
# row WHAT "STATUS REASON" CURL-CONFIG: both servers, the same answer, the one meant.
row() {
    a=$(ask "$3" "http://127.0.0.1:$PORT/x")
    b=$(ask "$3" --unix-socket "$SOCK" "http://authd/verify/$SVC")
    got=$(echo "$a" | cut -d'|' -f1,2 | tr '|' ' ')
    if [ "$a" = "$b" ] && [ "$got" = "$2" ]; then ok "$1: both $a"
    else not_ok "$1: want '$2'; nginx '$a', apikey-authd '$b'"; fi
}
h() { printf 'header = "%s"' "$1"; }
b64() { printf "$1" "$2" "$3" | base64 -w0; } # FORMAT ACCOUNT KEY
basic() { h "Authorization: Basic $(b64 "$@")"; }
case $GOOD in *x) typo=${GOOD%?}y ;; *) typo=${GOOD%?}x ;; esac
LONG=$(head -c 600 /dev/zero | tr '\0' a)
ACCOUNT256=$(head -c 256 /dev/zero | tr '\0' a)

row "no credential" "401 missing key" ""
row "Bearer" "200 -" "$(h "Authorization: Bearer $GOOD")"
row "bearer, in lower case, two spaces" "200 -" "$(h "Authorization: bearer  $GOOD")"
row "Bearer<TAB>key is no Bearer" "401 missing key" "$(h "Authorization: Bearer\\t$GOOD")"
row "Bearer<TAB>key beside a good X-API-Key" "200 -" \
    "$(h "Authorization: Bearer\\t$WRONG")
$(h "X-API-Key: $GOOD")"
row "Bearer and nothing after it" "401 missing key" "$(h "Authorization: Bearer")"
row "Bearer before X-API-Key" "200 -" "$(h "Authorization: Bearer $GOOD")
$(h "X-API-Key: $WRONG")"
row "a mistyped Bearer (its check digits fail)" "401 malformed key" "$(h "Authorization: Bearer $typo")"
row "a well-formed key not in the store" "401 unknown key" "$(h "Authorization: Bearer $WRONG")"
row "a revoked key" "401 revoked" "$(h "Authorization: Bearer $REVOKED")"
row "a key without the scope" "403 missing scope" "$(h "Authorization: Bearer $NARROW")"
row "X-API-Key" "200 -" "$(h "X-API-Key: $GOOD")"
row "X-API-Key with blanks around it" "200 -" "$(h "X-API-Key:   $GOOD  ")"
row "two X-API-Key lines, both good" "401 malformed key" "$(h "X-API-Key: $GOOD")
$(h "X-API-Key: $GOOD")"
row "two X-API-Key lines, the second good" "401 malformed key" "$(h "X-API-Key: $WRONG")
$(h "X-API-Key: $GOOD")"
row "an empty X-API-Key" "401 malformed key" "$(h "X-API-Key;")"
row "X-API-Key with a blank inside" "401 malformed key" "$(h "X-API-Key: hello world")"
row "X-API-Key of 600 bytes" "401 malformed key" "$(h "X-API-Key: $LONG")"
row "another scheme beside X-API-Key" "200 -" "$(h 'Authorization: Digest username=\"a\"')
$(h "X-API-Key: $GOOD")"
row "another scheme alone" "401 missing key" "$(h 'Authorization: Digest username=\"a\"')"
row "Basic account:key" "200 -" "$(basic '%s:%s' "$U1" "$GOOD")"
row "Basic with another account" "401 wrong account" "$(basic '%s:%s' "$U2" "$GOOD")"
row "Basic account<NUL>evil:key" "401 malformed key" "$(basic '%s\0evil:%s' "$U1" "$GOOD")"
row "Basic without a colon" "401 malformed key" "$(basic '%s%s' "" "$GOOD")"
row "Basic without an account" "401 malformed key" "$(basic '%s:%s' "" "$GOOD")"
row "Basic without a key" "401 malformed key" "$(basic '%s:%s' "$U1" "")"
row "Basic with a control character in the key" "401 malformed key" "$(basic '%s:%s\001' "$U1" "$GOOD")"
row "Basic with an account of 256 bytes" "401 malformed key" "$(basic '%s:%s' "$ACCOUNT256" "$GOOD")"
row "Basic that is not base64" "401 malformed key" "$(h "Authorization: Basic !!!!")"
row "Basic with something after the padding" "401 malformed key" \
    "$(h "Authorization: Basic $(b64 '%s:%s' "$U1" "$GOOD" | tr -d =)=x")"
row "Basic and nothing after it" "401 missing key" "$(h "Authorization: Basic")"

# Neither server logged a key.
kill "$(cat "$N/nginx.pid")" 2>/dev/null
leaked=""
for k in "$GOOD" "$WRONG" "$typo" "$REVOKED" "$NARROW"; do
    grep -qF -- "$k" "$LOG" "$N/error.log" && leaked=1
done
if [ -n "$leaked" ]; then not_ok "a key is in a server's log"; else ok "no key in either server's log"; fi
finish
