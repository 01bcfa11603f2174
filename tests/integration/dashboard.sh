#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# apikey-authd's customer dashboard in a real browser. A real nginx plays
# the provider's authenticating proxy: it puts the signed-in account in
# X-Forwarded-User and passes the dashboard through; the same nginx, with
# ngx_http_apikey_module, protects /protected/, where the keys made in the
# page are used. tests/browser/dashboard_test.py drives headless Chromium
# (Selenium) through the page; the attacks that need no browser are made
# here with curl. The screenshots README shows go to doc/images/, or to
# $DASHBOARD_SHOTS when set.
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] ||
    ! /usr/bin/python3 -c 'import selenium' 2> /dev/null; then
    echo "skip: dashboard.sh needs Debian's chromium, chromium-driver and python3-selenium (make deps installs them)"
    exit 77
fi
if [ ! -f "$HERE/../../build/nginx/ngx_http_apikey_module.so" ] || ! command -v nginx > /dev/null; then
    echo "skip: dashboard.sh needs nginx and build/nginx/ngx_http_apikey_module.so (nginx-dev)"
    exit 77
fi
NAME=dashboard
. "$HERE/lib/servers.sh"
. "$HERE/lib/nginx.sh"
[ -f build/apikey-authd ] || { not_ok "build/apikey-authd is not built (make all)"; finish; }

CUST=cust$$     # the account signed in on the dashboard
SOLO=solo$$     # the account of the single-key page
N=$T/nginx
nginx_tree "$N" index.txt "protected ok"
PORT=$(free_port); SPORT=$(free_port); EPORT=$(free_port); DPORT=$(free_port); SDPORT=$(free_port)
LOG=$T/authd.log

# Without dashboard_account_header the daemon does not start a dashboard.
if timeout 10 build/apikey-authd --config "$CONF" --listen "unix:$T/none.sock" --dashboard "127.0.0.1:$DPORT" \
    2> "$T/none.err"; then
    not_ok "--dashboard without dashboard_account_header: started"
elif grep -q "dashboard_account_header" "$T/none.err"; then ok "--dashboard without dashboard_account_header: refused, saying why"
else not_ok "--dashboard without dashboard_account_header: $(cat "$T/none.err")"; fi

# The dashboard's settings; a second configuration, on the same store, for
# single-key mode.
printf '[authd]\ntrusted_proxies = 127.0.0.1\ndashboard_account_header = X-Forwarded-User\n' >> "$CONF"
{ echo "max_keys_per_account = 1"; cat "$CONF"; } > "$T/single.conf"
chgrp proxy "$T/single.conf" && chmod 640 "$T/single.conf"
SOLOKEY=$($APIKEY create "$SOLO" --name "production" --scopes proxies:read) || { not_ok "apikey create"; finish; }

start_authd() { # CONFIG PORT
    bg build/apikey-authd --config "$1" --listen "unix:$T/authd-$2.sock" --dashboard "127.0.0.1:$2" \
        --threads 2 --timeout 5 --verbose 2>> "$LOG"
    wait_port "$2" || { not_ok "apikey-authd --dashboard did not listen"; finish; }
}
start_authd "$CONF" "$DPORT"
start_authd "$T/single.conf" "$SDPORT"

# The authenticating proxy: a fixed account here, where a real one puts
# whoever signed in. Host goes through, as the page's origin is checked
# against it.
dash_proxy() { # PORT DASHBOARD-PORT ACCOUNT
    cat <<CONF
    server {
        listen 127.0.0.1:$1;
        location / {
            proxy_set_header X-Forwarded-User "$3";
            proxy_set_header Host \$http_host;
            proxy_pass http://127.0.0.1:$2;
        }
        location /protected/ { apikey_service $SVC; alias $N/www/; }
    }
CONF
}
cat > "$N/nginx.conf" <<CONF
$(nginx_top "$N" "$NGX_MODULE" 1 256)
http {
    log_format apikey '\$remote_addr "\$request" \$status reason="\$apikey_reason"';
    access_log $N/access.log apikey;
$(nginx_temp "$N")
    apikey_config $CONF;
$(dash_proxy "$PORT" "$DPORT" "$CUST")
$(dash_proxy "$SPORT" "$SDPORT" "$SOLO")
    # Another site, for the cross-origin attack from the browser.
    server { listen 127.0.0.1:$EPORT; location / { default_type text/html; return 200 "<p>elsewhere</p>"; } }
}
CONF
nginx -t -p "$N" -c "$N/nginx.conf" > "$N/t.log" 2>&1 || { cat "$N/t.log"; not_ok "nginx -t"; finish; }
bg nginx -p "$N" -c "$N/nginx.conf"
wait_port "$PORT" && wait_port "$EPORT" || { not_ok "nginx did not listen"; finish; }
URL=http://127.0.0.1:$PORT
DIRECT=http://127.0.0.1:$DPORT

# --- Without a browser: who may ask, and the headers --------------------------
code() { curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' --max-time 10 "$@"; }
want() { if [ "$3" = "$2" ]; then ok "$1: $2"; else not_ok "$1: want $2, got $3 ($(head -c 200 "$T/b"))"; fi; }
has() { if grep -qiF -- "$2" "$T/h"; then ok "$1"; else not_ok "$1: no '$2' in the headers"; fi; }
want "the page through the proxy" 200 "$(code "$URL/")"
for h in "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'" "X-Content-Type-Options: nosniff" \
    "Referrer-Policy: no-referrer" "Cache-Control: no-store"; do
    has "the page carries $h" "$h"
done
want "a direct request without the account header" 401 "$(code "$DIRECT/api/keys" -H 'X-Apikey-Dashboard: 1')"
has "a 401 carries the headers too" "Content-Security-Policy: default-src 'self'"
want "the account header from a peer not in trusted_proxies (127.0.0.2)" 401 \
    "$(code "$DIRECT/api/keys" --interface 127.0.0.2 -H "X-Forwarded-User: $CUST" -H 'X-Apikey-Dashboard: 1')"
want "the page itself from an untrusted peer" 401 "$(code "$DIRECT/" --interface 127.0.0.2 -H "X-Forwarded-User: $CUST")"
want "two account headers" 401 \
    "$(code "$DIRECT/" -H "X-Forwarded-User: $CUST" -H "X-Forwarded-User: $U1")"
want "an account header that is not UTF-8" 401 "$(code "$DIRECT/" -H "$(printf 'X-Forwarded-User: a\377b')")"
want "the client's own X-Forwarded-User is replaced by the proxy's" 200 \
    "$(code "$URL/api/session" -H "X-Forwarded-User: $U1" -H 'X-Apikey-Dashboard: 1')"
grep -q "\"account\":\"$CUST\"" "$T/b" && ok "the session is the proxy's account" || not_ok "the session: $(cat "$T/b")"

MARK='X-Apikey-Dashboard: 1'
ORIG="Origin: $URL"
BODY='{"name":"csrf","scopes":["geo:read"]}'
want "a change with a foreign Origin (CSRF)" 403 "$(code "$URL/api/change/keys" -H "$MARK" -H "Origin: http://evil.example" -d "$BODY")"
want "a change without the page's header (CSRF)" 403 "$(code "$URL/api/change/keys" -H "$ORIG" -d "$BODY")"
want "a change without Origin" 403 "$(code "$URL/api/change/keys" -H "$MARK" -d "$BODY")"
want "a change from another site (Sec-Fetch-Site)" 403 \
    "$(code "$URL/api/change/keys" -H "$MARK" -H "$ORIG" -H 'Sec-Fetch-Site: cross-site' -d "$BODY")"
want "a body naming another account" 400 \
    "$(code "$URL/api/change/keys" -H "$MARK" -H "$ORIG" -d "{\"account\":\"$U1\",\"name\":\"n\",\"scopes\":[\"geo:read\"]}")"
want "a query naming another account" 400 "$(code "$URL/api/keys?account=$U1" -H "$MARK")"
OTHER=$(id_of "$GOOD")
want "revoking another account's key by its id" 404 "$(code -X DELETE "$URL/api/change/keys/$OTHER" -H "$MARK" -H "$ORIG")"
want "rotating another account's key by its id" 404 "$(code -X POST "$URL/api/change/keys/$OTHER/rotate" -H "$MARK" -H "$ORIG")"
want "an unknown key id: the same answer" 404 "$(code -X DELETE "$URL/api/change/keys/ak_00000000" -H "$MARK" -H "$ORIG")"
[ "$($APIKEY list --json "$CUST" | grep -c '"id"')" = 0 ] && ok "none of the refused requests made a key" ||
    not_ok "a refused request made a key"
want "the other account's key still works" 200 \
    "$(printf 'header = "X-API-Key: %s"\n' "$GOOD" | code -K - "$URL/protected/index.txt")"

# --- In the browser --------------------------------------------------------------
SHOTS=${DASHBOARD_SHOTS:-$ROOT/doc/images}
mkdir -p "$SHOTS"
DASH_URL=$URL/ SINGLE_URL=http://127.0.0.1:$SPORT/ EVIL_URL=http://127.0.0.1:$EPORT/ \
    AUTHD_SOCK=$T/authd-$DPORT.sock SVC=$SVC SHOTS=$SHOTS SOLO_ID=$(id_of "$SOLOKEY") ACCOUNT=$CUST \
    timeout 600 /usr/bin/python3 tests/browser/dashboard_test.py > "$T/browser.out" 2> "$T/browser.err"
rc=$?
cat "$T/browser.out"
bad=$(grep -c '^not ok' "$T/browser.out")
if [ $rc -ne 0 ] || [ "$bad" -ne 0 ] || ! grep -q '^ok' "$T/browser.out"; then
    not_ok "the browser test failed (exit $rc)"
    tail -n 20 "$T/browser.err" | sed 's/^/#   /'
fi
fails=$((fails + bad))
want "the single-key account's old key, after Revoke & Regenerate" 401 \
    "$(printf 'header = "X-API-Key: %s"\n' "$SOLOKEY" | code -K - "$URL/protected/index.txt")"
# The keys the page showed never reach a log.
for f in "$LOG" "$N/access.log" "$N/error.log"; do
    if grep -qE "ak_[A-Za-z0-9]{46}" "$f"; then not_ok "a whole key in $(basename "$f")"; else ok "no key in $(basename "$f")"; fi
done
finish
