#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# The real nginx on loopback with build/nginx/ngx_http_apikey_module.so and
# the example etc/nginx/apikey.conf, made private to this run. One worker
# (user proxy, which reads the stores through their group), so "the same
# worker" below is the only one. Its own second server is the upstream and
# echoes what it was told ($apikey_account). Runs itself inside
# tests/pg_harness.sh for the PostgreSQL part (the store reached through
# pgbouncer, which holds a check while the server is stopped).
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$HERE/../../build/nginx/ngx_http_apikey_module.so" ] || ! command -v nginx > /dev/null ||
    ! command -v wrk > /dev/null; then
    echo "skip: nginx.sh needs nginx, wrk and build/nginx/ngx_http_apikey_module.so (nginx-dev)"
    exit 77
fi
if [ -z "${APIKEY_PG_CTL:-}" ] && [ -f "$HERE/../../build/store/apikey_store_pgsql.so" ]; then
    exec sh "$HERE/../pg_harness.sh" sh "$0" "$@"
fi
NAME=nginx
. "$HERE/lib/servers.sh"
. "$HERE/lib/nginx.sh"

N=$T/nginx
nginx_tree "$N"
PORT=$(free_port)
UP=$(free_port)
P6=$(free_port)
PDUAL=$(free_port)
LOG=$N/error.log

# A second configuration whose store the worker cannot read: 503.
mkdir -p "$T/locked"
cp "$T/keys.json" "$T/locked/keys.json" && chmod 600 "$T/locked/keys.json"
sed "s#json:$T/keys.json#json:$T/locked/keys.json#" "$CONF" > "$T/locked.conf"
chgrp proxy "$T/locked.conf" && chmod 640 "$T/locked.conf"

# PostgreSQL through pgbouncer, when inside the harness.
PGCONF=""
if [ -n "${APIKEY_PG_CTL:-}" ]; then
    createdb -h "$APIKEY_PG_HOST" -p "$APIKEY_PG_PORT" -U "$APIKEY_PG_USER" nginxtest
    PGCONF=$T/pg.conf
    printf 'store = pgsql:host=%s port=%s user=%s dbname=nginxtest\n[services]\n%s = proxies:read\n' \
        "$APIKEY_PGB_HOST" "$APIKEY_PGB_PORT" "$APIKEY_PG_USER" "$SVC" > "$PGCONF"
    chgrp proxy "$PGCONF" && chmod 640 "$PGCONF"
    PGKEY=$("$ROOT/build/apikey" --config "$PGCONF" create "$U1" --name pg --scopes proxies:read) ||
        { not_ok "apikey create on pgsql"; finish; }
fi

# The example, made private: our paths, ports and service.
sed -e "s#/etc/apikey/apikey.conf#$CONF#" -e "s#127.0.0.1:8080#127.0.0.1:$PORT#" \
    -e "s#127.0.0.1:8081#127.0.0.1:$UP#" -e "s#proxies-api#$SVC#" etc/nginx/apikey.conf > "$N/example.conf"
grep -q "apikey_service $SVC;" "$N/example.conf" || { not_ok "etc/nginx/apikey.conf did not template"; finish; }
# The test's own locations go into the example's server.
PGLOC=""
[ -n "$PGCONF" ] && PGLOC="location /pg/ { apikey_config $PGCONF; apikey_service $SVC;
    proxy_set_header X-Account \$apikey_account; proxy_pass http://127.0.0.1:$UP; }"
cat > "$N/locations.conf" <<CONF
index index.txt;
location /f/ { apikey_service $SVC; root $N/www; }
location /free/ { apikey_service off; alias $N/www/f/; }
location /unmapped/ { apikey_service unmapped-$$; alias $N/www/f/; }
location /own-header/ { apikey_service $SVC; apikey_header X-Custom-Key; alias $N/www/f/; }
location /any-denied/ { satisfy any; allow 127.0.0.2; deny all; apikey_service $SVC; alias $N/www/f/; }
location /any-allowed/ { satisfy any; allow 127.0.0.1; deny all; apikey_service $SVC; alias $N/www/f/; }
location /any-proxied/ {
    satisfy any; allow 127.0.0.1; deny all; apikey_service $SVC;
    proxy_set_header X-Account \$apikey_account;
    proxy_set_header X-Api-Key-Id \$apikey_key_id;
    proxy_set_header Authorization "";
    proxy_set_header X-API-Key "";
    proxy_pass http://127.0.0.1:$UP;
}
location /locked/ { apikey_config $T/locked.conf; apikey_service $SVC; alias $N/www/f/; }
location /sub-unchecked/ { auth_request /_probe; alias $N/www/f/; }
location = /_probe { internal; apikey_service $SVC; proxy_pass http://127.0.0.1:$UP/; }
location /sub-checked/ { apikey_service $SVC; auth_request /_sso; alias $N/www/f/; }
location = /_sso { internal; proxy_pass http://127.0.0.1:$UP/; }
location /returned/ { apikey_service $SVC; return 200 "no check\n"; }
location /realip/ { set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP; apikey_service $SVC; alias $N/www/f/; }
location /wrk/ {
    apikey_service $SVC;
    proxy_set_header X-Account \$apikey_account;
    proxy_pass http://127.0.0.1:$UP;
}
$PGLOC
CONF
sed -i "s#^    location /v1/ {#    include $N/locations.conf;\n&#" "$N/example.conf"
# IPv6 only, and dual-stack (an IPv4 client is ::ffff:127.0.0.1 there).
: > "$N/ipv6.conf"
have_ipv6 && cat > "$N/ipv6.conf" <<CONF
server { listen [::1]:$P6; location / { apikey_service $SVC; alias $N/www/f/; } }
server { listen [::]:$PDUAL ipv6only=off; location / { apikey_service $SVC; alias $N/www/f/; } }
CONF
cat > "$N/nginx.conf" <<CONF
$(nginx_top "$N" "$NGX_MODULE" 1 1024)
http {
    log_format apikey '\$remote_addr "\$request" \$status \$body_bytes_sent '
                      'account=\$apikey_account key_id=\$apikey_key_id reason="\$apikey_reason"';
    access_log $N/access.log apikey;
$(nginx_temp "$N")
    include $N/example.conf;
    include $N/ipv6.conf;
    server {
        listen 127.0.0.1:$UP;
        access_log $N/upstream.log;
        location / {
            return 200 "account=\$http_x_account key_id=\$http_x_api_key_id auth=[\$http_authorization\$http_x_api_key] expect=\$http_x_expect\n";
        }
    }
}
CONF
nginx -t -p "$N" -c "$N/nginx.conf" > "$N/t.log" 2>&1 || { cat "$N/t.log"; not_ok "nginx -t"; finish; }
ok "nginx -t accepts the module and the example"
if readelf -d build/nginx/ngx_http_apikey_module.so | grep NEEDED | grep -qE "apikey|crypto|sqlite|pq|jansson"; then
    not_ok "the module links libapikey or its dependencies (it must load it at run time)"
else ok "the module links neither libapikey nor OpenSSL, SQLite, libpq, Jansson"; fi
# nginx -t (and so a reload) refuses what libapikey refuses.
conf_test() { # WHAT WANT(0|1) HTTP-BODY
    printf 'load_module %s;\nerror_log %s/t-err.log;\npid %s/t.pid;\nevents { }\nhttp { %s }\n' \
        "$T/build/nginx/ngx_http_apikey_module.so" "$N" "$N" "$3" > "$N/t.conf"
    nginx -t -p "$N" -c "$N/t.conf" > "$N/t.log" 2>&1
    rc=$?
    if [ "$2" = 0 ] && [ $rc -eq 0 ]; then ok "nginx -t: $1"
    elif [ "$2" = 1 ] && [ $rc -ne 0 ] && grep -q "apikey" "$N/t.log"; then ok "nginx -t: $1: refused, saying why"
    else not_ok "nginx -t: $1: exit $rc: $(tail -n 2 "$N/t.log")"; fi
}
conf_test "apikey_config in one location only" 0 \
    "server { listen 127.0.0.1:$UP; location /a/ { apikey_config $CONF; apikey_service $SVC; } location /b/ { } }"
conf_test "a missing apikey.conf" 1 "apikey_config $T/nonexistent.conf;"
printf 'store = json:%s/keys.json\nnonsense\n' "$T" > "$T/bad.conf"
conf_test "a bad apikey.conf" 1 "apikey_config $T/bad.conf;"
conf_test "apikey_service without apikey_config" 1 "server { listen 127.0.0.1:$UP; location / { apikey_service $SVC; } }"
bg nginx -p "$N" -c "$N/nginx.conf"
MASTER=$!
wait_port "$PORT" || { not_ok "nginx did not listen"; finish; }

URL=http://127.0.0.1:$PORT
# get PATH [CURL-ARGS...]: the status; headers in $T/h, body in $T/b. The
# arguments with keys go through curl's config on stdin, not argv.
get() {
    p=$1; shift
    curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' --max-time 30 "$@" "$URL$p"
}
hdr() { printf 'header = "%s"\n' "$1" | get "$2" -K -; }   # HEADER-LINE PATH
# from SOURCE-ADDRESS KEY [URL-PREFIX [PATH]]: the status of a request with the key in
# X-API-Key, sent from that loopback address.
from() {
    printf 'header = "X-API-Key: %s"\n' "$2" | curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' --max-time 30 \
        -K - --interface "$1" "${3:-$URL}${4:-/f/index.txt}"
}
want() { # WHAT EXPECTED-STATUS GOT [FILE PATTERN]
    if [ "$3" = "$2" ]; then ok "$1: $2"; else not_ok "$1: want $2, got $3"; fi
}
has() { # WHAT FILE FIXED-STRING
    if grep -qF -- "$3" "$2"; then ok "$1"; else not_ok "$1: no '$3' in $(basename "$2"): $(head -c 300 "$2")"; fi
}

# A good key: through the example's /v1/, the upstream hears the account
# and never the key.
want "a good key (Bearer) on /v1/" 200 "$(hdr "Authorization: Bearer $GOOD" /v1/x)"
has "the upstream sees \$apikey_account" "$T/b" "account=$U1 key_id=$(id_of "$GOOD") auth=[]"
want "the same key in X-API-Key" 200 "$(hdr "X-API-Key: $GOOD" /v1/x)"
want "the same key as Basic $U1:key" 200 "$(printf 'user = "%s:%s"\n' "$U1" "$GOOD" | get /v1/x -K -)"
has "Basic: the upstream sees the account" "$T/b" "account=$U1 "
want "a good key on a static file" 200 "$(hdr "Authorization: Bearer $GOOD" /f/index.txt)"
has "the file is served" "$T/b" "file ok"
want "the other account's own key" 200 "$(hdr "X-API-Key: $FOREIGN" /f/index.txt)"
want "a key in the header apikey_header names" 200 "$(hdr "X-Custom-Key: $GOOD" /own-header/)"
want "unprotected: apikey_service off" 200 "$(get /healthz)"

# Refused: 401, with RFC 6750's header and the JSON body.
want "no key" 401 "$(get /f/index.txt)"
has "no key: WWW-Authenticate without an error" "$T/h" "WWW-Authenticate: Bearer realm=\"$SVC\""
has "no key: a JSON body" "$T/b" '{"error": "missing key", "key_id": null}'
has "no key: Content-Type application/json" "$T/h" "Content-Type: application/json"
case $GOOD in *x) typo=${GOOD%?}y ;; *) typo=${GOOD%?}x ;; esac
want "a mistyped key" 401 "$(hdr "Authorization: Bearer $typo" /f/index.txt)"
has "a mistyped key: invalid_token" "$T/h" "WWW-Authenticate: Bearer realm=\"$SVC\", error=\"invalid_token\""
want "garbage" 401 "$(hdr "X-API-Key: hello world" /f/index.txt)"
want "an empty Bearer" 401 "$(hdr "Authorization: Bearer " /f/index.txt)"
want "a wrong key (well formed, not in the store)" 401 "$(hdr "Authorization: Bearer $WRONG" /f/index.txt)"
has "a wrong key: the reason in the body" "$T/b" '{"error": "unknown key", "key_id": '
want "another account's key through Basic" 401 "$(printf 'user = "%s:%s"\n' "$U1" "$FOREIGN" | get /f/index.txt -K -)"
has "another account's key: wrong account" "$T/b" "\"error\": \"wrong account\", \"key_id\": \"$(id_of "$FOREIGN")\""
want "Basic with no account" 401 "$(printf 'user = ":%s"\n' "$GOOD" | get /f/index.txt -K -)"
want "an expired key" 401 "$(hdr "X-API-Key: $EXPIRED" /f/index.txt)"
has "an expired key: the reason" "$T/b" "{\"error\": \"expired\", \"key_id\": \"$(id_of "$EXPIRED")\"}"
want "a revoked key" 401 "$(hdr "X-API-Key: $REVOKED" /f/index.txt)"
has "a revoked key: the reason" "$T/b" "{\"error\": \"revoked\", \"key_id\": \"$(id_of "$REVOKED")\"}"
want "a good key on an unmapped service" 401 "$(hdr "X-API-Key: $GOOD" /unmapped/)"
want "a key under-scoped for the service" 403 "$(hdr "X-API-Key: $NARROW" /f/index.txt)"
has "under-scoped: insufficient_scope with the scope" "$T/h" \
    "WWW-Authenticate: Bearer realm=\"$SVC\", error=\"insufficient_scope\", scope=\"proxies:read\""
has "under-scoped: the reason" "$T/b" "{\"error\": \"missing scope\", \"key_id\": \"$(id_of "$NARROW")\"}"
want "two X-API-Key headers, both good" 401 "$(printf 'header = "X-API-Key: %s"\nheader = "X-API-Key: %s"\n' "$GOOD" "$GOOD" | get /f/index.txt -K -)"

# An unreadable store: cannot tell.
want "a store the worker cannot read" 503 "$(hdr "X-API-Key: $GOOD" /locked/)"
has "503: a JSON body" "$T/b" '{"error": "store unavailable"'
# The library logs nothing itself: the module puts the store's own line in
# nginx's error log.
has "503: the store's line in the error log" "$LOG" "apikey: store $T/locked/keys.json: Permission denied"

# satisfy any: allow lets in without a key; otherwise the key decides.
want "satisfy any, allowed address, no key" 200 "$(get /any-allowed/)"
want "satisfy any, other address, no key" 401 "$(get /any-denied/)"
want "satisfy any, other address, good key" 200 "$(hdr "X-API-Key: $GOOD" /any-denied/)"
# A refused key confers no identity: allow lets the request through, and
# the backend hears no account and no key id from it.
FNARROW=$(mk "$U2" --name fnarrow --scopes geo:read)
ELSEWHERE=$(mk "$U1" --name elsewhere --scopes proxies:read --allow-from 192.0.2.7/32)
want "satisfy any, allowed address, good key" 200 "$(hdr "X-API-Key: $GOOD" /any-proxied/x)"
has "satisfy any, good key: the backend hears the account" "$T/b" "account=$U1 key_id=$(id_of "$GOOD") auth=[]"
anon() { # WHAT STATUS: the backend heard no identity
    want "satisfy any, allowed address, $1" 200 "$2"
    has "satisfy any, $1: no account, no key id for the backend" "$T/b" "account= key_id= auth=[]"
}
anon "a revoked key" "$(hdr "X-API-Key: $REVOKED" /any-proxied/x)"
anon "another account's key without the scope" "$(hdr "X-API-Key: $FNARROW" /any-proxied/x)"
anon "a key pinned to another address" "$(hdr "X-API-Key: $ELSEWHERE" /any-proxied/x)"
anon "Basic $U2:<$U1's key>" "$(printf 'user = "%s:%s"\n' "$U2" "$GOOD" | get /any-proxied/x -K -)"
anon "no key" "$(get /any-proxied/x)"

# The credential rules apikey-authd shares (common/credential.h; both
# servers side by side in credentials.sh): a NUL in a Basic account, a
# second key header, Bearer and a tab.
nulbasic=$(printf '%s\0evil:%s' "$U1" "$GOOD" | base64 -w0)
want "Basic account<NUL>evil:key" 401 "$(hdr "Authorization: Basic $nulbasic" /f/index.txt)"
has "Basic with a NUL: malformed, invalid_token" "$T/h" "error=\"invalid_token\""
want "Bearer<TAB>key" 401 "$(printf 'header = "Authorization: Bearer\\t%s"\n' "$GOOD" | get /f/index.txt -K -)"
has "Bearer<TAB>key: not a Bearer, so no key" "$T/b" '{"error": "missing key", "key_id": null}'

# What the access phase does not cover, as ngx_http_apikey_module(8) says:
# a subrequest (the auth_request target) and an answer of the rewrite phase.
want "documented: the auth_request target's own apikey_service is never asked" 200 "$(get /sub-unchecked/index.txt)"
want "documented: return answers before the check" 200 "$(get /returned/)"
want "the man page's layout: no key" 401 "$(get /sub-checked/index.txt)"
want "the man page's layout: a good key, and the auth_request target agrees" 200 \
    "$(hdr "X-API-Key: $GOOD" /sub-checked/index.txt)"
want "the man page's layout: the internal target is not reachable from outside" 404 "$(get /_sso)"

# Allowlists (apikey(1)): the client address is \$remote_addr. 127.0.0.2 is
# on loopback too: the same server, another client.
PIN4=$(mk "$U1" --name pin4 --scopes proxies:read --allow-from 127.0.0.1/32) || not_ok "apikey create --allow-from"
PIN6=$(mk "$U1" --name pin6 --scopes proxies:read --allow-from ::1/128)
want "a key allowed from 127.0.0.1, from 127.0.0.1" 200 "$(from 127.0.0.1 "$PIN4")"
want "the same key from 127.0.0.2" 401 "$(from 127.0.0.2 "$PIN4")"
has "address not allowed: invalid_token" "$T/h" "WWW-Authenticate: Bearer realm=\"$SVC\", error=\"invalid_token\""
has "address not allowed: the JSON body" "$T/b" "{\"error\": \"address not allowed\", \"key_id\": \"$(id_of "$PIN4")\"}"
want "a key without a list, from 127.0.0.1" 200 "$(from 127.0.0.1 "$GOOD")"
want "a key without a list, from 127.0.0.2" 200 "$(from 127.0.0.2 "$GOOD")"
want "a key allowed from ::1, from 127.0.0.1" 401 "$(from 127.0.0.1 "$PIN6")"
# realip: X-Real-IP from the trusted 127.0.0.1 decides; from 127.0.0.2 it is ignored.
realip() { # SOURCE X-REAL-IP KEY
    printf 'header = "X-API-Key: %s"\nheader = "X-Real-IP: %s"\n' "$3" "$2" | get /realip/ -K - --interface "$1"
}
want "realip: 127.0.0.1 says the client is 127.0.0.2" 401 "$(realip 127.0.0.1 127.0.0.2 "$PIN4")"
has "realip: refused for the address" "$T/b" '"error": "address not allowed"'
want "realip: 127.0.0.1 says the client is 127.0.0.1" 200 "$(realip 127.0.0.1 127.0.0.1 "$PIN4")"
want "realip: untrusted 127.0.0.2 claims 127.0.0.1" 401 "$(realip 127.0.0.2 127.0.0.1 "$PIN4")"
# IPv6: ::1, and a dual-stack listener where 127.0.0.1 is ::ffff:127.0.0.1,
# which the library reads as the IPv4 address.
if have_ipv6; then
    want "IPv6: a key allowed from ::1, from ::1" 200 "$(from ::1 "$PIN6" "http://[::1]:$P6" /index.txt)"
    want "IPv6: a key allowed from 127.0.0.1, from ::1" 401 "$(from ::1 "$PIN4" "http://[::1]:$P6" /index.txt)"
    want "IPv6: a key without a list, from ::1" 200 "$(from ::1 "$GOOD" "http://[::1]:$P6" /index.txt)"
    want "dual-stack: from 127.0.0.1 (::ffff:127.0.0.1), a key allowed from 127.0.0.1/32" 200 \
        "$(from 127.0.0.1 "$PIN4" "http://127.0.0.1:$PDUAL" /index.txt)"
    want "dual-stack: from 127.0.0.2, that key" 401 "$(from 127.0.0.2 "$PIN4" "http://127.0.0.1:$PDUAL" /index.txt)"
    want "dual-stack: from ::1, a key allowed from ::1" 200 "$(from ::1 "$PIN6" "http://[::1]:$PDUAL" /index.txt)"
    grep -q '^::ffff:127.0.0.1 "GET /index.txt' "$N/access.log" && ok "dual-stack: nginx saw ::ffff:127.0.0.1" ||
        not_ok "dual-stack: no ::ffff:127.0.0.1 in the access log"
else
    echo "# IPv6: no ::1 here, skipped"
fi

# Revoked while nginx runs: refused at the next request.
LIVE=$(mk "$U1" --name live --scopes proxies:read)
want "a fresh key" 200 "$(hdr "X-API-Key: $LIVE" /f/index.txt)"
$APIKEY revoke "$(id_of "$LIVE")" 2>/dev/null
want "that key, revoked while nginx runs, at the next request" 401 "$(hdr "X-API-Key: $LIVE" /f/index.txt)"

# Hostile requests: refused, and the worker lives on.
raw() { # PERL-STRING-OF-THE-REQUEST: the status code, "" when none
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0], Timeout => 20) or exit 1;
        my $req = eval $ARGV[1]; print $s $req; $s->shutdown(1);
        my $line = <$s>; print $line =~ m{^HTTP/1\.\d (\d+)} ? $1 : "";' "$PORT" "$1"
}
BIG=$(head -c 100000 /dev/zero | tr '\0' a)
want "a 100 kB X-API-Key" 400 "$(hdr "X-API-Key: $BIG" /f/index.txt)"
want "a 100 kB Bearer" 400 "$(hdr "Authorization: Bearer $BIG" /f/index.txt)"
# nginx itself, at error_log level info, quotes a duplicate or invalid
# header line whole (ngx_http_apikey_module(8)): these use a key of their own, which only
# nginx's "client sent ..." lines may hold.
HOSTILE=$(mk "$U1" --name hostile --scopes proxies:read)
export RAWKEY=$HOSTILE
want "a good key with a NUL inside" 400 \
    "$(raw '"GET /f/index.txt HTTP/1.1\r\nHost: x\r\nX-API-Key: " . substr($ENV{RAWKEY}, 0, 20) . "\0" . substr($ENV{RAWKEY}, 20) . "\r\nConnection: close\r\n\r\n"')"
code=$(raw '"GET /f/index.txt HTTP/1.1\r\nHost: x\r\nX-API-Key: $ENV{RAWKEY}\x01\x1b\r\nConnection: close\r\n\r\n"')
case $code in 400|401) ok "a good key with control bytes after it: refused ($code)" ;; *) not_ok "a good key with control bytes: got '$code'" ;; esac
want "two Authorization headers, both good" 400 \
    "$(raw '"GET /f/index.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $ENV{RAWKEY}\r\nAuthorization: Bearer $ENV{RAWKEY}\r\nConnection: close\r\n\r\n"')"
unset RAWKEY
want "after all that, a good key" 200 "$(hdr "X-API-Key: $GOOD" /f/index.txt)"

# Many keys at once under wrk: 150 good keys of 150 accounts, 50 of them
# revoked. Every answer is counted; a 200 must name the account of the key
# sent (the upstream echoes both), a 401 must name a revoked key.
awk 'BEGIN { for (i = 0; i < 150; i++) printf "wrk%d\tk\tproxies:read\tnever\n", i }' > "$T/batch"
$APIKEY create --batch "$T/batch" > "$T/wrk.keys" || not_ok "apikey create --batch"
chgrp proxy "$T/keys.json" && chmod 640 "$T/keys.json"
: > "$T/wrk.revoked"
for i in $(seq 100 149); do
    id=$(sed -n "$((i + 1))p" "$T/wrk.keys" | cut -c1-11)
    $APIKEY revoke "$id" 2>/dev/null && echo "$id" >> "$T/wrk.revoked"
done
cat > "$T/wrk.lua" <<'LUA'
local keys, revoked, threads = {}, {}, {}
function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
end
function init(args)
    for k in io.lines(args[1]) do table.insert(keys, k) end
    for id in io.lines(args[2]) do revoked[id] = true end
    prefix = args[3] or "/wrk/"
    n, good, refused, wrong = 0, 0, 0, 0
end
function request()
    n = n + 1
    local i = (n * 7 + id) % #keys + 1
    return wrk.format("GET", prefix .. i, {["Authorization"] = "Bearer " .. keys[i], ["X-Expect"] = "wrk" .. (i - 1)})
end
function response(status, headers, body)
    if status == 200 then
        local acc, exp = body:match("account=(%S*) .* expect=(%S*)")
        if acc and acc ~= "" and acc == exp then good = good + 1 else wrong = wrong + 1 end
    elseif status == 401 then
        local id = body:match('"key_id": "([^"]+)"')
        if id and revoked[id] then refused = refused + 1 else wrong = wrong + 1 end
    else
        wrong = wrong + 1
    end
end
function done(summary, latency, requests)
    local g, r, w = 0, 0, 0
    for _, t in ipairs(threads) do g = g + t:get("good"); r = r + t:get("refused"); w = w + t:get("wrong") end
    local e = summary.errors
    io.write(string.format("requests=%d good=%d refused=%d wrong=%d errors=%d\n", summary.requests, g, r, w,
        e.connect + e.read + e.write + e.timeout))
end
LUA
wrk_check() { # WHAT KEYS REVOKED-IDS PATH-PREFIX
    wrk -t 2 -c 16 -d 3s -s "$T/wrk.lua" "$URL/" -- "$2" "$3" "$4" > "$T/wrk.out" 2>&1
    set -- "$1" $(sed -n 's/^requests=\([0-9]*\) good=\([0-9]*\) refused=\([0-9]*\) wrong=\([0-9]*\) errors=\([0-9]*\)$/\1 \2 \3 \4 \5/p' "$T/wrk.out")
    if [ $# -eq 6 ] && [ "$2" -gt 100 ] && [ $(($3 + $4)) -eq "$2" ] && [ "$5" -eq 0 ] && [ "$6" -eq 0 ] &&
        [ "$3" -gt 0 ]; then
        ok "$1: $2 answers, $3 let in, $4 refused, none wrong"
    else
        not_ok "$1: $(tail -n 3 "$T/wrk.out")"
    fi
}
wrk_check "wrk, 150 keys at once, 50 revoked" "$T/wrk.keys" "$T/wrk.revoked" /wrk/
grep -q "refused=0 " "$T/wrk.out" && not_ok "wrk: no revoked key was refused"

# nginx -s reload picks up a changed apikey.conf: the service now needs
# geo:read, written as the module's former reader of its own misread it (a
# repeated scope, a comma and a comment): nginx reads the library's reading.
sed -i "s#^$SVC = proxies:read#$SVC = geo:read,geo:read   ; twice#" "$CONF"
want "before the reload, the under-scoped key" 403 "$(hdr "X-API-Key: $NARROW" /f/index.txt)"
reload() { # until every worker of the old configuration is gone
    old=$(ps -o pid= --ppid "$MASTER")
    kill -HUP "$MASTER"
    for i in $(seq 100); do
        still=""
        for p in $old; do kill -0 "$p" 2>/dev/null && still=1; done
        [ -z "$still" ] && return
        sleep 0.2
    done
}
reload
want "after nginx -s reload, the same key (its scope is now the service's)" 200 "$(hdr "X-API-Key: $NARROW" /f/index.txt)"
want "after the reload, the once good key lacks geo:read" 403 "$(hdr "X-API-Key: $GOOD" /f/index.txt)"
has "after the reload, the 403 names the new scope, once" "$T/h" "scope=\"geo:read\""
sed -i "s#^$SVC = geo:read.*#$SVC = proxies:read#" "$CONF"
reload

# PostgreSQL, stopped: the check waits in the thread pool (pgbouncer holds
# it, the store gives up after its own limit), while an unprotected location
# of the same worker answers. Then 503, and the module recovers by itself.
if [ -n "$PGCONF" ]; then
    for i in $(seq 50); do
        [ "$(hdr "X-API-Key: $PGKEY" /pg/)" = 200 ] && break
        sleep 0.2
    done
    want "pgsql: a good key" 200 "$(hdr "X-API-Key: $PGKEY" /pg/)"
    has "pgsql: the upstream sees \$apikey_account" "$T/b" "account=$U1 "
    # In the thread pool, the check has its own copy of the address.
    PGPIN=$("$ROOT/build/apikey" --config "$PGCONF" create "$U1" --name pgpin --scopes proxies:read \
        --allow-from 127.0.0.1/32) || not_ok "apikey create --allow-from on pgsql"
    want "pgsql: a key allowed from 127.0.0.1, from 127.0.0.1" 200 "$(from 127.0.0.1 "$PGPIN" "$URL" /pg/)"
    want "pgsql: the same key from 127.0.0.2" 401 "$(from 127.0.0.2 "$PGPIN" "$URL" /pg/)"
    has "pgsql: refused for the address" "$T/b" '"error": "address not allowed"'
    awk 'BEGIN { for (i = 0; i < 20; i++) printf "wrk%d\tk\tproxies:read\tnever\n", i }' > "$T/pgbatch"
    "$ROOT/build/apikey" --config "$PGCONF" create --batch "$T/pgbatch" > "$T/pg.keys"
    : > "$T/pg.revoked"
    wrk_check "wrk on pgsql, checks in the thread pool, 20 keys at once" "$T/pg.keys" "$T/pg.revoked" /pg/
    "$APIKEY_PG_CTL" stop
    printf 'header = "X-API-Key: %s"\n' "$PGKEY" |
        curl -s -o "$T/pg.body" -w '%{http_code}' --max-time 60 -K - "$URL/pg/" > "$T/pg.code" &
    PGCURL=$!
    sleep 1 # the check is under way
    want "pgsql stopped: an unprotected location of the same worker answers" 200 "$(get /free/)"
    if kill -0 "$PGCURL" 2>/dev/null; then ok "pgsql stopped: ... while the check still waits"
    else not_ok "pgsql stopped: the check did not wait (answered $(cat "$T/pg.code"))"; fi
    wait "$PGCURL"
    want "pgsql stopped: the check" 503 "$(cat "$T/pg.code")"
    "$APIKEY_PG_CTL" start
    for i in $(seq 60); do
        [ "$(hdr "X-API-Key: $PGKEY" /pg/)" = 200 ] && break
        sleep 0.5
    done
    want "pgsql back: the module recovers by itself" 200 "$(hdr "X-API-Key: $PGKEY" /pg/)"
else
    echo "# pgsql: backend not built, skipped"
fi

# Nothing crashed, and no key is in any log of the whole run.
kill "$MASTER"; wait "$MASTER" 2>/dev/null
if grep -q "exited on signal" "$LOG"; then not_ok "a worker died: $(grep -m1 'exited' "$LOG")"
else ok "no worker died"; fi
{
    for k in "$GOOD" "$FOREIGN" "$NARROW" "$EXPIRED" "$REVOKED" "$WRONG" "$LIVE" "$typo" "$PIN4" "$PIN6" "$FNARROW" \
        "$ELSEWHERE" ${PGKEY:-} ${PGPIN:-}; do echo "$k"; done
    cat "$T/wrk.keys" "$T/pg.keys" 2>/dev/null
} | awk 'length($0) > 11 { print; print substr($0, 12) }' > "$T/secrets"
echo "$HOSTILE" | awk '{ print; print substr($0, 12) }' > "$T/hostile"
cat "$N"/*.log | grep -F -f "$T/secrets" > "$T/leaks"
cat "$N"/*.log | grep -F -f "$T/hostile" | grep -v "client sent " >> "$T/leaks"
if [ -s "$T/leaks" ]; then not_ok "a key is in nginx's logs: $(cut -c1-200 "$T/leaks" | head -n 3)"
else ok "no key (nor its secret part) in nginx's access, upstream or error log"; fi
has "the access log names the reason of a refusal, and no account or key id" "$N/access.log" \
    "account=- key_id=- reason=\"revoked\""
has "the error log names the refused key's id" "$LOG" "401 revoked, key $(id_of "$REVOKED")"
has "\$apikey_reason says an address was refused" "$N/access.log" "key_id=- reason=\"address not allowed\""
has "the access log names the account and key id of an allowed key" "$N/access.log" \
    "account=$U1 key_id=$(id_of "$GOOD") reason=\"allowed\""

# A libapikey too old to take the client address (no verify_with: the real
# library's table cut before its admin slots): every check 503, never a
# check without the address, and the error log says why once.
O=$T/old
mkdir -p "$O/nginx"
cp build/nginx/ngx_http_apikey_module.so "$O/nginx/"
OPORT=$(free_port)
if ${CC:-cc} -shared -fPIC -Iinclude -DREAL="\"$T/build/libapikey.so.1\"" -o "$O/libapikey.so.1" \
    tests/integration/lib/old_library.c -ldl; then
    nginx_conf "$O" "$O/nginx/ngx_http_apikey_module.so" "
    apikey_config $CONF;
    server { listen 127.0.0.1:$OPORT; location / { apikey_service $SVC; alias $N/www/f/; } }"
    bg nginx -p "$O" -c "$O/nginx.conf"
    if wait_port "$OPORT"; then
        want "an older libapikey: a key without a list" 503 "$(from 127.0.0.1 "$GOOD" "http://127.0.0.1:$OPORT" /)"
        want "an older libapikey: a key with a list" 503 "$(from 127.0.0.2 "$PIN4" "http://127.0.0.1:$OPORT" /)"
        n=$(grep -c "libapikey cannot take the client address" "$O/error.log")
        want "an older libapikey: said once in the error log" 1 "$n"
    else
        not_ok "the nginx with an older libapikey did not listen: $(tail -n 3 "$O/error.log")"
    fi
else
    not_ok "cannot build the older library"
fi
finish
