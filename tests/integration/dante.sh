#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# A real Dante (danted) on loopback with etc/danted.conf and
# etc/pam.d/sockd: curl fetches a local origin through SOCKS5 with the
# account and key as its user name and password.
NAME=dante
SVC=sockd-apikeytest$$
. "$(dirname "$0")/lib/servers.sh"

install_pam_service etc/pam.d/sockd "$SVC"
PORT=$(free_port)
LOG=$T/danted.log
V6=$(have_ipv6 && echo 1)
sed -e "s#^logoutput: .*#logoutput: $LOG#" -e "s#^internal: .*#internal: 127.0.0.1 port = $PORT${V6:+\\ninternal: ::1 port = $PORT}#" \
    -e "s#^external: .*#external: 127.0.0.1#" -e "s#pam.servicename: .*#pam.servicename: $SVC#" \
    -e "s#from: 0.0.0.0/0 to: 0.0.0.0/0#from: 127.0.0.0/8 to: 127.0.0.0/8#" \
    etc/danted.conf > "$T/danted.conf"
# IPv6 clients on ::1 as well, to the same origin.
[ -z "$V6" ] || cat >> "$T/danted.conf" <<CONF
client pass {
    from: ::1/128 to: ::1/128
}
socks pass {
    from: ::1/128 to: 127.0.0.0/8
    command: connect
    socksmethod: pam.username
    pam.servicename: $SVC
}
CONF
DANTED=$(command -v danted || command -v sockd)
"$DANTED" -V -f "$T/danted.conf" > "$T/verify.log" 2>&1 || { cat "$T/verify.log"; not_ok "danted -V refuses the config"; finish; }
bg "$DANTED" -f "$T/danted.conf" -p "$T/danted.pid" -N 1
wait_port "$PORT" || { not_ok "danted did not listen"; finish; }

login() { # USER KEY, the credentials through curl's stdin, not argv
    code=$(printf 'socks5 = "%s:%s"\nproxy-user = "%s:%s"\n' "$(url_host)" "$PORT" "$1" "$2" |
        curl -s -K - ${FROM:+--interface "$FROM"} -o "$T/body" -w '%{http_code}' --max-time 10 "$ORIGIN")
    rc=$?
    [ $rc -eq 0 ] && [ "$code" = 200 ] && grep -q "origin ok" "$T/body" && return 0
    # curl 7.73+: 97 is a refusal by the proxy's authentication (SOCKS5 sub-negotiation).
    [ $rc -eq 97 ] && return 1
    echo "#   curl through danted: exit $rc, HTTP $code"
    return 2
}

matrix "SOCKS5 pam.username"
# Dante's pam.username method sets PAM_RHOST to the client's address.
address_matrix "SOCKS5 pam.username" v6
finish
