#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# apikey-authd behind real proxies on loopback: nginx auth_request (keep-alive
# upstream) and Caddy forward_auth, each in front of the test origin, which
# must see the account. Then the daemon alone, on its Unix sockets: no body
# on any /verify answer, slowloris, 1,000 concurrent connections, the store
# going down and coming back, reloads by SIGHUP and by a changed file that
# keep connections, the admin socket's peer check and GET /v1/scopes, refusal of an admin path
# that is not a socket, SIGTERM, and logs that hold no key.
NAME=authd
. "$(dirname "$0")/lib/servers.sh"

for f in build/apikey-authd build/libapikey.so; do
    [ -f "$f" ] || { echo "not ok - $f is not built (make all)"; exit 1; }
done
for p in nginx caddy python3; do
    command -v $p > /dev/null || { echo "not ok - $p is missing (make deps)"; exit 1; }
done

# The daemon trusts forwarded addresses from its Unix socket (the proxies);
# admins are root and the group of the second account.
cat >> "$CONF" <<CONF
[authd]
trusted_proxies = unix 127.0.0.1
admin_groups = $U2
CONF
# Another daemon trusts only 127.0.0.1, not its Unix socket.
sed 's/^trusted_proxies = .*/trusted_proxies = 127.0.0.1/' "$CONF" > "$T/strict.conf"
chmod --reference="$CONF" "$T/strict.conf" && chgrp --reference="$CONF" "$T/strict.conf"
# Sockets are 0660 with their folder's group: the verify socket's folder
# is nginx's workers' group (nogroup, as the unit's RuntimeDirectory gives
# the proxy's), the admin socket's the group of admin_groups.
mkdir -m 0750 "$T/run" "$T/adm"
chgrp nogroup "$T/run" && chgrp "$U2" "$T/adm"
SOCK=$T/run/authd.sock
ADMIN=$T/adm/admin.sock
LOG=$T/authd.log
# --timeout as packaged (30 s): the 1,000 connections below are all
# opened before the first sends its request, and on a CI machine busy
# with the other tests that once took over 5 s, the test's old timeout,
# so the first few were closed as idle before they asked.
start_authd() {
    bg build/apikey-authd --config "$CONF" --listen "unix:$SOCK" --admin "unix:$ADMIN" --threads 2 \
        --timeout 30 --verbose 2>> "$LOG"
    AUTHD=$!
    for i in $(seq 100); do [ -S "$ADMIN" ] && return 0; sleep 0.1; done
    not_ok "apikey-authd did not start"; finish
}
start_authd

# direct SERVICE [CURL-CONFIG-LINE]: the daemon's answer as "CODE REASON BYTES"
# (the credentials go through curl's standard input, never argv).
direct() {
    printf '%s\n' "${2:-}" | curl -s -K - --unix-socket "$SOCK" -o /dev/null -D "$T/head" \
        -w '%{http_code} %{size_download}' --max-time 20 "http://authd/verify/$1" > "$T/said"
    read -r code bytes < "$T/said"
    why=$(tr -d '\r' < "$T/head" | sed -n 's/^X-Apikey-Reason: //Ip')
    echo "$code ${why:--} $bytes"
}
want() { # WANT GOT WHAT
    if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3: want '$1', got '$2'"; fi
}
bearer() { echo "header = \"Authorization: Bearer $1\""; }

# --- The answers themselves, no proxy in front -----------------------------
want "200 - 0" "$(direct "$SVC" "$(bearer "$GOOD")")" "Bearer: 200, no body"
grep -qi "^X-Apikey-Account: $U1" "$T/head" && grep -qi "^X-Apikey-Key-Id: $(id_of "$GOOD")" "$T/head" &&
    ok "200 names the account and the key id" || not_ok "200 without X-Apikey-Account/Key-Id"
want "200 - 0" "$(direct "$SVC" "header = \"X-API-Key: $GOOD\"")" "X-API-Key: 200"
want "200 - 0" "$(direct "$SVC" "user = \"$U1:$GOOD\"")" "Basic account:key: 200"
want "401 wrong account 0" "$(direct "$SVC" "user = \"$U2:$GOOD\"")" "Basic with another account: 401"
want "401 missing key 0" "$(direct "$SVC")" "no key: 401"
grep -qi '^WWW-Authenticate: Bearer realm="'"$SVC"'"' "$T/head" && ! grep -qi 'error=' "$T/head" &&
    ok "no key: a challenge without error=" || not_ok "no key: wrong WWW-Authenticate"
want "401 unknown key 0" "$(direct "$SVC" "$(bearer "$WRONG")")" "a wrong key: 401"
grep -qi 'error="invalid_token"' "$T/head" && ok "401 with error=\"invalid_token\"" || not_ok "401 without invalid_token"
want "401 revoked 0" "$(direct "$SVC" "$(bearer "$REVOKED")")" "a revoked key: 401"
want "401 expired 0" "$(direct "$SVC" "$(bearer "$EXPIRED")")" "an expired key: 401"
want "403 missing scope 0" "$(direct "$SVC" "$(bearer "$NARROW")")" "an under-scoped key: 403"
grep -qi 'error="insufficient_scope", scope="proxies:read"' "$T/head" &&
    ok "403 with error=\"insufficient_scope\", scope=\"proxies:read\"" || not_ok "403 without its scope"
want "401 service not configured 0" "$(direct "no-such-service" "$(bearer "$GOOD")")" "an unmapped service: 401 (no key could pass)"

# The credential rules nginx's module follows too (common/credential.h;
# both servers side by side in credentials.sh): what the daemon once took,
# refused as nginx refuses it; a refused key's id is not handed on.
nulbasic=$(printf '%s\0evil:%s' "$U1" "$GOOD" | base64 -w0)
want "401 malformed key 0" "$(direct "$SVC" "header = \"Authorization: Basic $nulbasic\"")" \
    "Basic account<NUL>evil:key: 401, not the account before the NUL"
want "401 malformed key 0" "$(direct "$SVC" "header = \"X-API-Key: $GOOD\"
header = \"X-API-Key: $GOOD\"")" "two X-API-Key lines: 401, neither taken"
want "401 missing key 0" "$(direct "$SVC" "header = \"Authorization: Bearer\\t$GOOD\"")" \
    "Bearer<TAB>key: not a Bearer, so no key"
want "401 malformed key 0" "$(direct "$SVC" "$(bearer "$GOOD")
$(bearer "$GOOD")")" "two Authorization lines: 401, neither taken"
want "401 revoked 0" "$(direct "$SVC" "$(bearer "$REVOKED")")" "a revoked key: 401"
grep -qi "^X-Apikey-Key-Id:\|^X-Apikey-Account:" "$T/head" && not_ok "a refused key's id or account in the answer" ||
    ok "a refused key: no X-Apikey-Key-Id, no X-Apikey-Account"

# Keys pinned to addresses (apikey(1)).
PIN4=$(mk "$U1" --name pin4 --scopes proxies:read --allow-from 127.0.0.1/32) || not_ok "apikey create --allow-from"
PIN6=$(mk "$U1" --name pin6 --scopes proxies:read --allow-from ::1/128)
xff() { printf '%s\nheader = "X-Forwarded-For: %s"' "$(bearer "$1")" "$2"; }
# The Unix socket is trusted: the address is what the proxy forwards, and
# unknown (refused by a list) when it forwards none.
want "200 - 0" "$(direct "$SVC" "$(xff "$PIN4" 127.0.0.1)")" "a trusted Unix peer forwards 127.0.0.1: a key allowed from there"
want "401 address not allowed 0" "$(direct "$SVC" "$(xff "$PIN4" 127.0.0.2)")" \
    "a trusted Unix peer forwards 127.0.0.2: address not allowed"
grep -qi 'error="invalid_token"' "$T/head" && ok "address not allowed: error=\"invalid_token\"" || not_ok "address not allowed without invalid_token"
want "401 address not allowed 0" "$(direct "$SVC" "$(bearer "$PIN4")")" "a trusted Unix peer that forwards nothing: the address is unknown"
want "200 - 0" "$(direct "$SVC" "$(bearer "$GOOD")")" "... while a key without a list passes"
# Every X-Forwarded-For line, in order, is one list (RFC 9110): a proxy
# that appends a line of its own (HAProxy's option forwardfor) puts the
# address it saw last; the client's own line before it proves nothing.
lines() { printf '%s\nheader = "X-Forwarded-For: %s"\nheader = "X-Forwarded-For: %s"' "$(bearer "$1")" "$2" "$3"; }
want "401 address not allowed 0" "$(direct "$SVC" "$(lines "$PIN4" 127.0.0.1 127.0.0.2)")" \
    "two X-Forwarded-For lines, the client's 127.0.0.1 then the proxy's 127.0.0.2: refused"
# One header, never a fallback: X-Real-IP is not read by default.
want "401 address not allowed 0" "$(direct "$SVC" "$(bearer "$PIN4")
header = \"X-Real-IP: 127.0.0.1\"")" "forwarded_header is X-Forwarded-For: X-Real-IP alone is not read"

# --- nginx auth_request, keep-alive upstream --------------------------------
NGX=$T/nginx
NPORT=$(free_port)
RPORT=$(free_port)
# The daemon behind it reads X-Real-IP, and only it.
sed 's/^\[authd\]$/[authd]\nforwarded_header = X-Real-IP/' "$CONF" > "$T/realip.conf"
chmod --reference="$CONF" "$T/realip.conf" && chgrp --reference="$CONF" "$T/realip.conf"
bg build/apikey-authd --config "$T/realip.conf" --listen "unix:$T/run/realip.sock" --threads 1 --verbose 2>> "$T/realip.log"
mkdir -p "$NGX/logs"
cat > "$NGX/nginx.conf" <<NGINX
worker_processes 1;
user nobody nogroup;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log;
events { worker_connections 256; }
http {
    access_log $NGX/logs/access.log;
    client_body_temp_path $NGX/body; proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fcgi; uwsgi_temp_path $NGX/uwsgi; scgi_temp_path $NGX/scgi;
    upstream authd {
        server unix:$SOCK;
        keepalive 8;
    }
    upstream realip {
        server unix:$T/run/realip.sock;
    }
    # An nginx that sets X-Real-IP only, as real_ip_header X-Real-IP.
    server {
        listen 127.0.0.1:$RPORT;
        location / {
            auth_request /_apikey;
            proxy_pass http://127.0.0.1:$ORIGIN_PORT;
        }
        location = /_apikey {
            internal;
            proxy_pass http://realip/verify/$SVC;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Real-IP \$remote_addr;
        }
    }
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            auth_request /_apikey;
            auth_request_set \$apikey_account \$upstream_http_x_apikey_account;
            proxy_set_header X-Account \$apikey_account;
            proxy_pass http://127.0.0.1:$ORIGIN_PORT;
        }
        location = /_apikey {
            internal;
            proxy_pass http://authd/verify/$SVC;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Real-IP \$remote_addr;
        }
    }
}
NGINX
nginx -t -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" > "$T/ngx-t.log" 2>&1 ||
    { cat "$T/ngx-t.log"; not_ok "nginx -t"; finish; }
bg nginx -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" -g "daemon off;"
wait_port "$NPORT" || { tail -5 "$NGX/logs/error.log" | sed 's/^/#   /'; not_ok "nginx did not listen"; finish; }

# login USER KEY through the proxy on $PPORT, Basic account:key: 0 when the
# origin answered and saw the account, 1 on 401 or 403, else 2.
login() {
    code=$(printf 'user = "%s:%s"\n' "$1" "$2" |
        curl -s -K - -o "$T/body" -w '%{http_code}' --max-time 20 "http://127.0.0.1:$PPORT/x")
    LAST=$code
    case $code in
    200) grep -q "origin ok" "$T/body" && grep -qi "^$ACCOUNT_HEADER: $1\$" "$T/body" && return 0
         echo "#   the origin did not see the account:"; sed 's/^/#     /' "$T/body"; return 2 ;;
    401|403) return 1 ;;
    esac
    echo "#   HTTP $code through the proxy"
    return 2
}
PPORT=$NPORT ACCOUNT_HEADER=X-Account
matrix "nginx auth_request"
login "$U1" "$NARROW"; want 403 "$LAST" "nginx auth_request: an under-scoped key gets 403"
# through PORT SOURCE KEY [CURL-CONFIG-LINE]: the status through a proxy, from a loopback address.
through() {
    printf '%s\n%s\n' "$(bearer "$3")" "${4:-}" |
        curl -s -K - -o /dev/null -w '%{http_code}' --max-time 20 --interface "$2" "http://127.0.0.1:$1/x"
}
pinned() { # PROXY PORT
    want 200 "$(through "$2" 127.0.0.1 "$PIN4")" "$1: a key allowed from 127.0.0.1, from 127.0.0.1"
    want 401 "$(through "$2" 127.0.0.2 "$PIN4")" "$1: the same key from 127.0.0.2"
    grep -q "401 service=$SVC reason=\"address not allowed\" key_id=$(id_of "$PIN4") .* client=127.0.0.2\$" "$LOG" &&
        ok "$1: the daemon refused 127.0.0.2 for its address" || not_ok "$1: no refusal of 127.0.0.2 in the daemon's log"
    want 401 "$(through "$2" 127.0.0.2 "$PIN4" 'header = "X-Forwarded-For: 127.0.0.1"')" \
        "$1: from 127.0.0.2, claiming 127.0.0.1 in X-Forwarded-For"
    want 200 "$(through "$2" 127.0.0.1 "$GOOD")" "$1: a key without a list, from 127.0.0.1"
    want 200 "$(through "$2" 127.0.0.2 "$GOOD")" "$1: a key without a list, from 127.0.0.2"
}
pinned "nginx auth_request" "$NPORT"
# The client writes X-Forwarded-For itself; nginx passes it on beside the
# X-Real-IP it sets. The daemon reads X-Real-IP, as configured, and only it.
want 401 "$(through "$RPORT" 127.0.0.2 "$PIN4" 'header = "X-Forwarded-For: 127.0.0.1"')" \
    "forwarded_header = X-Real-IP behind nginx: a client's own X-Forwarded-For is not read"
want 200 "$(through "$RPORT" 127.0.0.1 "$PIN4")" "forwarded_header = X-Real-IP behind nginx: the address nginx saw"

# --- Caddy forward_auth -----------------------------------------------------
CPORT=$(free_port)
cat > "$T/Caddyfile" <<CADDY
{
    admin off
    auto_https off
}
http://127.0.0.1:$CPORT {
    forward_auth unix/$SOCK {
        uri /verify/$SVC
        copy_headers X-Apikey-Account
    }
    reverse_proxy 127.0.0.1:$ORIGIN_PORT
}
CADDY
mkdir -p "$T/caddy-home"
HOME=$T/caddy-home XDG_DATA_HOME=$T/caddy-home XDG_CONFIG_HOME=$T/caddy-home \
    bg caddy run --config "$T/Caddyfile" --adapter caddyfile > "$T/caddy.log" 2>&1
wait_port "$CPORT" || { cat "$T/caddy.log"; not_ok "caddy did not listen"; finish; }
PPORT=$CPORT ACCOUNT_HEADER=X-Apikey-Account
matrix "caddy forward_auth"
login "$U1" "$NARROW"; want 403 "$LAST" "caddy forward_auth: an under-scoped key gets 403"
pinned "caddy forward_auth" "$CPORT"

# --- The daemon on TCP, trusting 127.0.0.1 only -----------------------------
# A dual-stack listener ([::]:PORT, when the host has IPv6; bindv6only is 0
# unless it says otherwise): 127.0.0.1 arrives as ::ffff:127.0.0.1, read as
# the IPv4 address; ::1 as itself. And the same configuration on a Unix socket,
# which it does not trust: forwarded headers there are ignored.
DPORT=$(free_port)
DLISTEN=127.0.0.1:$DPORT
have_ipv6 && DLISTEN=[::]:$DPORT
bg build/apikey-authd --config "$T/strict.conf" --listen "$DLISTEN" --threads 1 --verbose 2>> "$T/tcp.log"
bg build/apikey-authd --config "$T/strict.conf" --listen "unix:$T/strict.sock" --threads 1 2>> "$T/tcp.log"
tcp() { # SOURCE HOST KEY [CURL-CONFIG-LINE]: "CODE REASON"
    printf '%s\n%s\n' "$(bearer "$3")" "${4:-}" | curl -s -K - -o /dev/null -D "$T/head" -w '%{http_code}' \
        --max-time 20 --interface "$1" "http://$2:$DPORT/verify/$SVC" > "$T/said"
    echo "$(cat "$T/said") $(tr -d '\r' < "$T/head" | sed -n 's/^X-Apikey-Reason: //Ip' | grep . || echo -)"
}
if wait_port "$DPORT"; then
    want "200 -" "$(tcp 127.0.0.1 127.0.0.1 "$PIN4")" "TCP ($DLISTEN): from 127.0.0.1, a key allowed from 127.0.0.1/32"
    want "401 address not allowed" "$(tcp 127.0.0.2 127.0.0.1 "$PIN4")" "TCP: from 127.0.0.2, that key"
    want "401 address not allowed" "$(tcp 127.0.0.2 127.0.0.1 "$PIN4" 'header = "X-Forwarded-For: 127.0.0.1"')" \
        "TCP: a forged X-Forwarded-For from an untrusted peer is ignored"
    want "401 address not allowed" "$(tcp 127.0.0.2 127.0.0.1 "$PIN4" 'header = "X-Real-IP: 127.0.0.1"')" \
        "TCP: a forged X-Real-IP from an untrusted peer is ignored"
    want "401 address not allowed" "$(tcp 127.0.0.1 127.0.0.1 "$PIN4" 'header = "X-Forwarded-For: 127.0.0.1, 127.0.0.2"')" \
        "TCP: the trusted 127.0.0.1 forwards 127.0.0.2"
    want "200 -" "$(tcp 127.0.0.2 127.0.0.1 "$GOOD")" "TCP: a key without a list, from 127.0.0.2"
    if have_ipv6; then
        want "200 -" "$(tcp ::1 '[::1]' "$PIN6")" "IPv6: from ::1, a key allowed from ::1/128"
        want "401 address not allowed" "$(tcp ::1 '[::1]' "$PIN4")" "IPv6: from ::1, a key allowed from 127.0.0.1/32"
        want "200 -" "$(tcp ::1 '[::1]' "$GOOD")" "IPv6: from ::1, a key without a list"
    else
        echo "# IPv6: no ::1 here, skipped"
    fi
else
    not_ok "apikey-authd did not listen on [::]:$DPORT: $(tail -n 2 "$T/tcp.log")"
fi
# trusted_proxies follows the allowlists' rules: ::ffff:127.0.0.1 is
# 127.0.0.1, and an entry with host bits set is refused.
MPORT=$(free_port)
sed 's/^trusted_proxies = .*/trusted_proxies = ::ffff:127.0.0.1/' "$CONF" > "$T/mapped.conf"
chmod --reference="$CONF" "$T/mapped.conf" && chgrp --reference="$CONF" "$T/mapped.conf"
bg build/apikey-authd --config "$T/mapped.conf" --listen "127.0.0.1:$MPORT" --threads 1 2>> "$T/tcp.log"
if wait_port "$MPORT"; then
    code=$(printf '%s\nheader = "X-Forwarded-For: 127.0.0.2"\n' "$(bearer "$PIN4")" |
        curl -s -K - -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$MPORT/verify/$SVC")
    want 401 "$code" "trusted_proxies = ::ffff:127.0.0.1 trusts the IPv4 peer 127.0.0.1 (its 127.0.0.2 is read)"
else
    not_ok "apikey-authd did not listen on 127.0.0.1:$MPORT: $(tail -n 2 "$T/tcp.log")"
fi
sed 's#^trusted_proxies = .*#trusted_proxies = 127.0.0.1/8#' "$CONF" > "$T/hostbits.conf"
chmod --reference="$CONF" "$T/hostbits.conf" && chgrp --reference="$CONF" "$T/hostbits.conf"
# (a daemon that accepted it would run on: 10 s are its answer.)
timeout 10 build/apikey-authd --config "$T/hostbits.conf" --listen "unix:$T/hostbits.sock" 2> "$T/hostbits.err"
[ $? -eq 2 ] && grep -q "beyond its prefix" "$T/hostbits.err" &&
    ok "trusted_proxies = 127.0.0.1/8 (host bits set) stops the start, as an allowlist refuses it" ||
    not_ok "trusted_proxies = 127.0.0.1/8 was accepted"
for i in $(seq 100); do [ -S "$T/strict.sock" ] && break; sleep 0.1; done
SOCK=$T/strict.sock
want "401 address not allowed 0" "$(direct "$SVC" "$(xff "$PIN4" 127.0.0.1)")" \
    "an untrusted Unix peer: its X-Forwarded-For is ignored, the address is unknown"
want "200 - 0" "$(direct "$SVC" "$(bearer "$GOOD")")" "an untrusted Unix peer: a key without a list passes"
SOCK=$T/run/authd.sock

# --- Slowloris and 1,000 connections, on the daemon's socket ----------------
# Python's standard library: the key from the environment, never argv.
py() { GOODKEY=$GOOD SOCK=$SOCK SVC=$SVC python3 -c "$1"; }
PYLIB='
import os, socket, resource, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(os.environ["SOCK"]); return s
REQ = ("GET /verify/%s HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n\r\n" % (os.environ["SVC"], os.environ["GOODKEY"])).encode()
def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(4096)
        if not more: return None
        data += more
    return data.split(b" ")[1].decode()
'
# 300 connections each holding half a request head; meanwhile a whole
# request on a new connection and through nginx must be answered.
py "$PYLIB
held = []
for i in range(300):
    s = conn(); s.sendall(b'GET /verify/x HTTP/1.1\r\nHost: a\r\nX-Slow: '); held.append(s)
s = conn(); s.sendall(REQ)
print(answer(s))
open('$T/held', 'w').write('y')
for i in range(600):
    if os.path.exists('$T/slow.done'): break
    time.sleep(0.1)
" > "$T/slow.out" &
SLOW=$!
for i in $(seq 100); do [ -s "$T/held" ] && break; sleep 0.1; done
want 200 "$(head -1 "$T/slow.out")" "slowloris: a whole request is answered beside 300 partial ones"
PPORT=$NPORT ACCOUNT_HEADER=X-Account
login "$U1" "$GOOD"; want 200 "$LAST" "slowloris: nginx's checks go through meanwhile"
touch "$T/slow.done"
wait "$SLOW"

py "$PYLIB
socks = [conn() for i in range(1000)]
for s in socks: s.sendall(REQ)
codes = [answer(s) for s in socks]
print(sum(c == '200' for c in codes))
for s in socks: s.sendall(REQ)
print(sum(answer(s) == '200' for s in socks))
" > "$T/many.out" 2>&1
want "1000 1000" "$(tr '\n' ' ' < "$T/many.out" | sed 's/ $//')" \
    "1,000 concurrent connections: every one answered 200, twice on the same connection"

# --- The store goes down and comes back ------------------------------------
# (json reads its file again at most a second after it last looked.)
until_direct() { # WANT SERVICE CURL-LINE: asks again for up to 10 s
    for i in $(seq 50); do [ "$(direct "$2" "$3")" = "$1" ] && return; sleep 0.2; done
}
mv "$T/keys.json" "$T/keys.json.away"
until_direct "503 store unavailable 0" "$SVC" "$(bearer "$GOOD")"
want "503 store unavailable 0" "$(direct "$SVC" "$(bearer "$GOOD")")" "the store gone: 503"
grep -q "apikey-authd: service $SVC: cannot tell: .*keys.json" "$LOG" &&
    ok "the daemon logs why it could not tell, in the store's words" ||
    not_ok "no line in the daemon's log saying why the store is unavailable"
login "$U1" "$GOOD"; [ "$LAST" -ge 500 ] && ok "nginx: refused with $LAST while the store is down" ||
    not_ok "nginx: $LAST while the store is down"
mv "$T/keys.json.away" "$T/keys.json"
until_direct "200 - 0" "$SVC" "$(bearer "$GOOD")"
want "200 - 0" "$(direct "$SVC" "$(bearer "$GOOD")")" "the store back: 200, without a restart"

# --- Reloads keep connections ------------------------------------------------
NEW=${SVC}-new
reloads() { curl -s --unix-socket "$SOCK" http://authd/metrics | sed -n 's/^apikey_authd_reloads_total{result="done"} //p'; }
want "401 service not configured 0" "$(direct "$NEW" "$(bearer "$GOOD")")" "before the reload: the new service is unmapped"
# One keep-alive connection, asked before both reloads and after them.
py "$PYLIB
new = os.environ['SVC'] + '-new'
s = conn()
s.sendall(REQ); print(answer(s))
open('$T/asked', 'w').write('y')
while not os.path.exists('$T/reloaded'): time.sleep(0.1)
s.sendall(REQ.replace(b'/verify/' + os.environ['SVC'].encode() + b' ', b'/verify/' + new.encode() + b' ')); print(answer(s))
" > "$T/keep.out" 2>&1 &
KEEP_PID=$!
for i in $(seq 100); do [ -s "$T/asked" ] && break; sleep 0.1; done
# SIGHUP with the file unchanged: one more reload, counted in /metrics.
kill -HUP "$AUTHD"
for i in $(seq 100); do [ "$(reloads)" = 1 ] && break; sleep 0.1; done
want 1 "$(reloads)" "SIGHUP reloads the configuration"
# A change of the file alone reloads too.
sed -i "s/^\[services\]\$/[services]\n$NEW = proxies:read/" "$CONF"
until_direct "200 - 0" "$NEW" "$(bearer "$GOOD")"
want "200 - 0" "$(direct "$NEW" "$(bearer "$GOOD")")" "a changed file reloads without a signal: the new service answers"
touch "$T/reloaded"
wait "$KEEP_PID"
want "200 200" "$(tr '\n' ' ' < "$T/keep.out" | sed 's/ $//')" \
    "the connection opened before both reloads is still served"
# A broken file keeps the configuration in use.
cp "$CONF" "$T/conf.good"
echo "frobnicate = 1" >> "$CONF"
for i in $(seq 100); do grep -q "reload failed" "$LOG" && break; sleep 0.1; done
grep -q "reload failed" "$LOG" && ok "a broken file: the reload is refused" || not_ok "a broken file was not noticed"
want "200 - 0" "$(direct "$NEW" "$(bearer "$GOOD")")" "a broken file: the previous configuration still answers"
cat "$T/conf.good" > "$CONF"

# --- /metrics ------------------------------------------------------------------
curl -s --unix-socket "$SOCK" http://authd/metrics > "$T/metrics"
grep -q "apikey_authd_decisions_total{service=\"$SVC\",reason=\"allowed\"}" "$T/metrics" &&
    grep -q 'service="(unmapped)"' "$T/metrics" && ok "/metrics counts decisions by service and reason" ||
    not_ok "/metrics lacks the counters"
grep -q "no-such-service" "$T/metrics" && not_ok "/metrics grew a label for an unmapped name" ||
    ok "/metrics: an unmapped name from the URL gets no label of its own"
grep -q "$U1" "$T/metrics" && not_ok "/metrics names an account" || ok "/metrics names no account"
grep -q "apikey_authd_decisions_total{service=\"$SVC\",reason=\"address\"}" "$T/metrics" &&
    ok "/metrics counts refusals for the address" || not_ok "/metrics: no reason=\"address\""

# --- The admin socket ------------------------------------------------------------
admin_as() { # USER PATH: the HTTP status of GET PATH on the admin socket as USER (body in $T/admin.out)
    setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups \
        curl -s -w '\n%{http_code}' --max-time 10 --unix-socket "$ADMIN" "http://authd$2" > "$T/admin.said"
    sed '$d' "$T/admin.said" > "$T/admin.out"
    tail -n 1 "$T/admin.said"
}
# The sockets are 0660 with their folder's group, not 0777.
want "660 nogroup 660 $U2" "$(stat -c '%a %G' "$SOCK" "$ADMIN" | tr '\n' ' ' | sed 's/ $//')" \
    "the sockets are 0660, of their folder's group (--socket-mode's default)"
want 000 "$(admin_as "$U1" /v1/scopes)" "admin socket: a user outside its group cannot connect"
grep -q "proxies:read" "$T/admin.out" && not_ok "admin socket: the refused user saw the catalogue" ||
    ok "admin socket: the refused user sees nothing"
# admin_groups is decided by the peer's groups (SO_PEERGROUPS), not its
# effective gid: a setgid program of the admin group run by a user outside
# it is no admin (it may connect: the socket is of that group).
cp "$(command -v curl)" "$T/sgid-curl" && chgrp "$U2" "$T/sgid-curl" && chmod 2755 "$T/sgid-curl"
cp "$(command -v id)" "$T/sgid-id" && chgrp "$U2" "$T/sgid-id" && chmod 2755 "$T/sgid-id"
if [ "$(setpriv --reuid="$U1" --regid="$(id -g "$U1")" --init-groups "$T/sgid-id" -gn)" = "$U2" ]; then
    code=$(setpriv --reuid="$U1" --regid="$(id -g "$U1")" --init-groups "$T/sgid-curl" -s -o /dev/null \
        -w '%{http_code}' --max-time 10 --unix-socket "$ADMIN" http://authd/v1/scopes)
    want 000 "$code" "admin socket: a setgid program of the admin group, run by a user outside it, is dropped"
else
    echo "# setgid programs do not run setgid here ($T is nosuid?): skipped"
fi
code=$(setpriv --reuid="$U1" --regid="$(id -g "$U1")" --groups="$(id -g "$U2")" \
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$ADMIN" http://authd/v1/scopes)
want 200 "$code" "admin socket: a user whose supplementary groups hold the admin group is an admin"
want 200 "$(admin_as "$U2" /v1/scopes)" "admin socket: a member of admin_groups gets GET /v1/scopes"
python3 -c 'import json, sys
cat = json.load(open(sys.argv[1]))
assert {"scope": "proxies:read", "description": "List and retrieve proxy details and configuration"} in cat
assert len(cat) == 5' "$T/admin.out" && ok "GET /v1/scopes: the catalogue as apikey scopes --json" ||
    not_ok "GET /v1/scopes: not the catalogue"
want 200 "$(admin_as root /v1/scopes)" "admin socket: root gets GET /v1/scopes"
want 404 "$(admin_as root /v1/nothing)" "admin socket: an unknown path is 404"
: > "$T/plain"
build/apikey-authd --config "$CONF" --listen "unix:$T/other.sock" --admin "unix:$T/plain" 2> "$T/plain.err"
rc=$?
[ $rc -eq 2 ] && grep -q "not a socket" "$T/plain.err" && [ -f "$T/plain" ] && [ ! -S "$T/plain" ] &&
    ok "an admin path that is not a socket is refused at start" || not_ok "an admin path that is a file: rc $rc"
build/apikey-authd --config "$CONF" --listen "unix:$T/o.sock" --admin "127.0.0.1:$(free_port)" 2> "$T/tcp.err"
[ $? -eq 2 ] && [ ! -e "$T/o.sock" ] && ok "an admin address on the network is refused" || not_ok "the admin API went on the network"
build/apikey-authd --config "$T/no-such.conf" --listen "unix:$T/o.sock" 2> "$T/noconf.err"
[ $? -eq 2 ] && grep -q "no-such.conf" "$T/noconf.err" && ok "a configuration that does not load stops the start" ||
    not_ok "started without a configuration"
build/apikey-authd --config "$CONF" --listen "unix:$SOCK" 2> "$T/twice.err"
[ $? -eq 2 ] && grep -q "another process" "$T/twice.err" && ok "a socket in use by a running daemon is refused" ||
    not_ok "a second daemon took over a live socket"

# --- One client cannot hold the daemon ------------------------------------------
# A daemon on TCP with at most 16 connections per address and a 3 s deadline
# for a whole request; its admin socket open to every local user, as
# --socket-mode 0666 asks.
HPORT=$(free_port)
mkdir "$T/open"
bg build/apikey-authd --config "$CONF" --listen "127.0.0.1:$HPORT" --admin "unix:$T/open/admin.sock" \
    --threads 2 --per-address 16 --deadline 3 --timeout 30 --socket-mode 0666 2>> "$T/hold.log"
wait_port "$HPORT" || not_ok "apikey-authd did not listen on 127.0.0.1:$HPORT: $(tail -n 2 "$T/hold.log")"
want 666 "$(stat -c %a "$T/open/admin.sock" 2>&1)" "--socket-mode 0666: the operator opens the socket"
# hold FAMILY ADDRESS N: N connections, each sending a byte of a request head
# every half second; prints how many the daemon accepted and kept, then,
# once $T/held.go exists, how many are still open after 40 s at most.
HOLD='
import os, socket, sys, time
fam, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX if fam == "unix" else socket.AF_INET)
    s.connect(addr if fam == "unix" else (addr, int(os.environ["HPORT"])))
    try: s.sendall(b"GET /v1/scopes HTTP/1.1\r\nHost: a\r\nX-Slow: ")
    except OSError: pass # dropped already
    socks.append(s)
def still_open():
    out = []
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(1) == b"": continue
        except BlockingIOError:
            out.append(s); continue
        except OSError:
            continue
    return out
time.sleep(1.5)
print(len(still_open()), flush=True)
while not os.path.exists(sys.argv[4]): time.sleep(0.1)
end = time.time() + 40
while time.time() < end:
    socks = still_open()
    if not socks: break
    for s in socks:
        try: s.sendall(b"x")
        except OSError: pass
    time.sleep(0.5)
print(len(still_open()), flush=True)
'
HPORT=$HPORT python3 -c "$HOLD" inet 127.0.0.1 100 "$T/held.go" > "$T/hold.out" 2>&1 &
HOLDER=$!
for i in $(seq 100); do [ -s "$T/hold.out" ] && break; sleep 0.1; done
kept=$(head -n 1 "$T/hold.out")
[ -n "$kept" ] && [ "$kept" -le 16 ] && ok "100 connections from one address: the daemon keeps at most 16 ($kept)" ||
    not_ok "100 connections from one address: $kept kept (want at most 16)"
DPORT=$HPORT
want "200 -" "$(tcp 127.0.0.2 127.0.0.1 "$GOOD")" "meanwhile /verify from another address is answered"
want 200 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --interface 127.0.0.2 "http://127.0.0.1:$HPORT/metrics")" \
    "meanwhile /metrics is answered"
touch "$T/held.go"
wait "$HOLDER"
want 0 "$(sed -n 2p "$T/hold.out")" "connections that send a byte every half second are cut at the deadline, not kept"

# 64 slow connections of a user who is not an admin, the admin socket's
# limit, are dropped as they connect; root's call is answered meanwhile.
rm -f "$T/held.go"
setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c "$HOLD" unix "$T/open/admin.sock" 64 "$T/held.go" \
    > "$T/nobody.out" 2>&1 &
HOLDER=$!
for i in $(seq 100); do [ -s "$T/nobody.out" ] && break; sleep 0.1; done
want 0 "$(head -n 1 "$T/nobody.out")" "admin socket: 64 connections of a user who is not an admin are dropped as they connect"
want 200 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$T/open/admin.sock" http://authd/v1/scopes)" \
    "admin socket: root's call is answered beside them"
touch "$T/held.go"
wait "$HOLDER"

# --- Stop, and what the logs hold ------------------------------------------------
kill -TERM "$AUTHD"
wait "$AUTHD"
rc=$?
[ $rc -eq 0 ] && [ ! -e "$SOCK" ] && [ ! -e "$ADMIN" ] && ok "SIGTERM: a clean stop, sockets removed" ||
    not_ok "SIGTERM: exit $rc"
leaks=0
for k in "$GOOD" "$FOREIGN" "$NARROW" "$EXPIRED" "$REVOKED" "$WRONG" "$LIVE" "$PIN4" "$PIN6"; do
    for f in "$LOG" "$NGX/logs/error.log" "$NGX/logs/access.log" "$T/caddy.log" "$T/tcp.log"; do
        grep -qF "$k" "$f" && { leaks=1; echo "#   a key in $(basename "$f")"; }
    done
done
[ $leaks -eq 0 ] && ok "no key in the daemon's, nginx's or Caddy's logs" || not_ok "a key was logged"
grep -q "200 service=$SVC .* client=127.0.0.1\$" "$LOG" && ok "the daemon logged its decisions with the forwarded client address" ||
    not_ok "no decision logged with the client's address"
finish
