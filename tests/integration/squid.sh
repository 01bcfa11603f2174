#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# A real Squid on loopback, with the auth snippets of etc/squid/: through
# Squid's basic_pam_auth and pam_apikey (etc/pam.d/squid), and through
# basic_apikey_auth, one request at a time and with concurrency=8. curl
# fetches a local origin through it: 200 let in, 407 refused.
NAME=squid
SVC=squid-apikeytest$$
. "$(dirname "$0")/lib/servers.sh"

install_pam_service etc/pam.d/squid "$SVC"
PORT=$(free_port)
mkdir -p "$T/squid" && chown proxy:proxy "$T/squid"
REVOKE_SETTLE=1.5  # Squid keeps checked credentials for credentialsttl (1 s here)

start_squid() { # SNIPPET [SED-SCRIPT]: the snippet made private to this run
    LOG=$T/squid/cache-$(basename "$1" .conf)${2:+-edited}.log
    cat > "$T/squid.conf" <<CONF
http_port 127.0.0.1:$PORT
pid_filename $T/squid/squid.pid
cache_log $LOG
access_log stdio:$T/squid/access.log
cache_store_log none
cache deny all
cache_effective_user proxy
coredump_dir $T/squid
netdb_filename none
visible_hostname apikey-test
shutdown_lifetime 0 seconds
pinger_enable off
CONF
    sed -e "s#/usr/local/bin/basic_apikey_auth#$HELPER#" -e "s#/etc/apikey/apikey.conf#$CONF#" \
        -e "s#-n squid#-n $SVC#" -e "s#--service squid#--service $SVC#" \
        -e "s#credentialsttl .*#credentialsttl 1 second#" ${2:+-e "$2"} "$1" >> "$T/squid.conf"
    ! have_ipv6 || echo "http_port [::1]:$PORT" >> "$T/squid.conf"
    squid -k parse -f "$T/squid.conf" > "$T/parse.log" 2>&1 || { cat "$T/parse.log"; not_ok "squid -k parse"; finish; }
    bg squid -N -f "$T/squid.conf"
    SQUID=$!
    wait_port "$PORT" || { not_ok "squid did not listen"; finish; }
}
stop_squid() {
    kill "$SQUID"; wait "$SQUID" 2>/dev/null
    # Refusals came from the key, never from a helper that could not tell.
    if grep -q "result=BH" "$LOG"; then not_ok "$HOW: a helper answered BH (unavailable)"
    else ok "$HOW: no helper answered BH"; fi
}

login() { # USER KEY, the credentials through curl's stdin, not argv
    code=$(printf 'proxy = "http://%s:%s"\nproxy-user = "%s:%s"\n' "$(url_host)" "$PORT" "$1" "$2" |
        curl -s -K - ${FROM:+--interface "$FROM"} -o "$T/body" -w '%{http_code}' --max-time 10 "$ORIGIN")
    case $code in
    200) grep -q "origin ok" "$T/body" && return 0 ;;
    407) return 1 ;;
    esac
    echo "#   curl through squid: HTTP $code"
    return 2
}

HOW="basic_pam_auth"
start_squid etc/squid/apikey-pam.conf
matrix "$HOW"
# It sets no PAM_RHOST: a key with a list is refused, whatever the client.
pinned_keys
FROM=127.0.0.1; want_out "$HOW: a key pinned to 127.0.0.1/32, from 127.0.0.1 (no PAM_RHOST)" "$U1" "$PINNED"
want_in "$HOW: a key without a list, from 127.0.0.1" "$U1" "$GOOD"; FROM=""
stop_squid
HOW="basic_apikey_auth"
start_squid etc/squid/apikey-helper.conf "s# --concurrency##; s# concurrency=8##"
matrix "$HOW"
address_matrix "$HOW" v6
stop_squid
HOW="basic_apikey_auth, concurrency=8"
start_squid etc/squid/apikey-helper.conf
matrix "$HOW"
address_matrix "$HOW" v6
stop_squid
finish
