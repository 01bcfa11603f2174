#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# Privileged hosts (pam_apikey(8)): an unprivileged user who controls the
# environment must not become root through pam_apikey.
#
# The attacker is a throwaway system user running the real setuid /usr/bin/su
# against a private PAM service: a private mount namespace (unshare -m) where
# a file of ours is bind-mounted over /etc/pam.d/su. The same logins then go
# through a root process that is not setuid and inherits the caller's
# environment, as `login -p` or a getty chain does (build/pam_try as root).
#
# The store of record is a private PostgreSQL (tests/pg_harness.sh) holding a
# key for root. The attacker runs a second PostgreSQL of their own on
# loopback TCP, holding a key they minted for root, and plants a store
# backend and an OpenSSL provider whose constructors leave a marker file.
# Every hostile environment must get the answer it gets without it: the
# genuine key lets in, the attacker's key is refused, nothing planted loads,
# and the attacker's server never hears from root.
NAME=su
SVC=su
if [ -z "${APIKEY_PG_HOST:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "skip: su.sh needs root (users, mount namespaces)"; exit 77; }
    exec sh "$(dirname "$0")/../pg_harness.sh" sh "$0" "$@"
fi
. "$(dirname "$0")/lib/servers.sh"
for v in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
unset APIKEY_CONFIG APIKEY_STORE_DIR OPENSSL_CONF OPENSSL_MODULES
[ -f build/tests/libplanted.so ] || { echo "not ok - build/tests/libplanted.so is not built (make run-tests)"; exit 1; }
command -v unshare >/dev/null && command -v setpriv >/dev/null && [ -u /usr/bin/su ] ||
    { echo "not ok - needs unshare, setpriv and a setuid /usr/bin/su"; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
cp build/apikey "$T/build/" && chmod 755 "$T/build/apikey"
ATT=$U1 # the attacker
A=$T/attacker
mkdir -m 700 "$A" && chown "$ATT:" "$A"
as_att() { setpriv --reuid="$ATT" --regid="$(id -g "$ATT")" --clear-groups env -i PATH=/usr/bin:/bin HOME="$A" "$@"; }
MARKER=$A/marker

# --- The store of record: pgsql through the default port (the issue's
# conninfo names no port), json and sqlite beside it.
createdb -h "$APIKEY_PG_HOST" -p "$APIKEY_PG_PORT" -U "$APIKEY_PG_USER" apikey_su || { echo "not ok - createdb"; exit 1; }
conf() { # FILE STORE
    printf 'store = %s\n[services]\nsu = proxies:read\n' "$2" > "$1"
    chmod 644 "$1"
}
conf "$T/pg.conf" "pgsql:host=$APIKEY_PG_HOST dbname=apikey_su user=$APIKEY_PG_USER"
conf "$T/sqlite.conf" "sqlite:$T/keys.db"
GENUINE_pgsql=$("$ROOT/build/apikey" --config "$T/pg.conf" create root --name genuine --scopes proxies:read) ||
    { echo "not ok - apikey create on pgsql"; exit 1; }
GENUINE_sqlite=$("$ROOT/build/apikey" --config "$T/sqlite.conf" create root --name genuine --scopes proxies:read)
GENUINE_json=$(mk root --name genuine --scopes proxies:read)
CONF_pgsql=$T/pg.conf CONF_sqlite=$T/sqlite.conf CONF_json=$CONF

# --- The attacker's own PostgreSQL, on loopback only, with the database and
# superuser names the store's conninfo uses, and a key they minted for root.
APORT=$(free_port)
as_att "$PGBIN/initdb" -D "$A/data" -U "$APIKEY_PG_USER" -A trust -E UTF8 --locale=C > "$A/initdb.log" 2>&1 ||
    { echo "not ok - the attacker's initdb"; cat "$A/initdb.log"; exit 1; }
cat >> "$A/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$A'
port = $APORT
fsync = off
log_connections = on
EOF
as_att "$PGBIN/pg_ctl" -D "$A/data" -l "$A/postgres.log" -w start > /dev/null ||
    { echo "not ok - the attacker's PostgreSQL"; cat "$A/postgres.log"; exit 1; }
stop_attacker() { as_att "$PGBIN/pg_ctl" -D "$A/data" -m immediate -w stop > /dev/null 2>&1; }
trap 'stop_attacker; cleanup' EXIT
as_att createdb -h 127.0.0.1 -p "$APORT" -U "$APIKEY_PG_USER" apikey_su || { echo "not ok - attacker's createdb"; exit 1; }
printf 'store = pgsql:host=127.0.0.1 port=%s dbname=apikey_su user=%s\n[services]\nsu = proxies:read\n' \
    "$APORT" "$APIKEY_PG_USER" > "$A/evil.conf"
chown "$ATT:" "$A/evil.conf"
EVIL=$(as_att "$T/build/apikey" --config "$A/evil.conf" create root --name minted --scopes proxies:read) ||
    { echo "not ok - the attacker cannot mint a key in their own server"; exit 1; }
ATT_CONNECTIONS=$(grep -c "connection authorized" "$A/postgres.log")

# What the attacker plants: a service file, a pgpass file, a store backend
# and an OpenSSL provider of their own, all leaving $MARKER when loaded.
printf '[evil]\nhostaddr=127.0.0.1\nport=%s\n' "$APORT" > "$A/pg_service.conf"
cp "$A/pg_service.conf" "$A/.pg_service.conf" # $HOME is the attacker's
printf '*:*:*:*:stolen\n' > "$A/pgpass"
chmod 600 "$A/pgpass"
mkdir "$A/store" "$A/ossl"
for s in json sqlite pgsql; do cp build/tests/libplanted.so "$A/store/apikey_store_$s.so"; done
cp build/tests/libplanted.so "$A/ossl/planted.so"
printf 'openssl_conf = init\n[init]\nproviders = prov\n[prov]\ndefault = dflt\nplanted = planted\n[dflt]\nactivate = 1\n[planted]\nmodule = planted.so\nactivate = 1\n' > "$A/openssl.cnf"
chown -R "$ATT:" "$A"
chmod -R go-w "$A"

# The private PAM services: su's, bind-mounted in a private namespace, and
# pam_try's folder (a root process that is not setuid).
for s in json sqlite pgsql; do
    eval c=\$CONF_$s
    mkdir -p "$T/pam-$s"
    printf 'auth required %s config=%s\naccount required %s config=%s\nsession required pam_permit.so\n' \
        "$MODULE" "$c" "$MODULE" "$c" > "$T/pam-$s/su"
done
# And one that names no config=: the compiled default, which APIKEY_CONFIG
# must not replace.
mkdir -p "$T/pam-default"
printf 'auth required %s\naccount required %s\nsession required pam_permit.so\n' "$MODULE" "$MODULE" > "$T/pam-default/su"

# login HOST STORE KEY [VAR=VALUE...]: 0 let in as root, 1 refused, 2 broken.
# The key goes on standard input, which su's conversation reads.
login() {
    host=$1 store=$2 key=$3
    shift 3
    printf '%s\n' "$key" > "$T/key.in"
    chmod 644 "$T/key.in"
    case $host in
    su)
        unshare -m sh -c 'mount --bind "$1" /etc/pam.d/su && shift && exec "$@"' sh "$T/pam-$store/su" \
            setpriv --reuid="$ATT" --regid="$(id -g "$ATT")" --clear-groups \
            env -i PATH=/usr/bin:/bin HOME="$A" APIKEY_TEST_MARKER="$MARKER" "$@" \
            su -c 'id -u' root < "$T/key.in" > "$T/out" 2> "$T/err"
        rc=$?
        [ $rc -eq 0 ] && [ "$(cat "$T/out")" = 0 ] && return 0
        grep -q "Authentication failure" "$T/err" && return 1 ;;
    login-p)
        env -i PATH=/usr/bin:/bin HOME="$A" APIKEY_TEST_MARKER="$MARKER" "$@" \
            "$ROOT/build/pam_try" "$T/pam-$store" su root < "$T/key.in" > "$T/out" 2> "$T/err"
        rc=$?
        [ $rc -eq 0 ] && return 0
        grep -q "^refused" "$T/out" && return 1 ;;
    esac
    [ -n "${QUIET:-}" ] || sed 's/^/#   /' "$T/out" "$T/err"
    return 2
}

# The hostile environments, one per line, as VAR=VALUE words.
HOSTILE="PGHOSTADDR=127.0.0.1 PGPORT=$APORT
PGHOST=127.0.0.1 PGPORT=$APORT
PGPORT=$APORT
PGSERVICE=evil PGSERVICEFILE=$A/pg_service.conf
PGSERVICE=evil PGSYSCONFDIR=$A
PGSERVICE=evil
PGPASSFILE=$A/pgpass
PGOPTIONS=-csearch_path=nowhere
APIKEY_STORE_DIR=$A/store
OPENSSL_CONF=$A/openssl.cnf OPENSSL_MODULES=$A/ossl
TMPDIR=$A SQLITE_TMPDIR=$A"

# case HOST STORE [VAR=VALUE...]: the genuine key in, the attacker's out.
check() {
    host=$1 store=$2
    shift 2
    what="$host, $store${*:+, $*}"
    eval key=\$GENUINE_$store
    rm -f "$MARKER"
    login "$host" "$store" "$key" "$@"; rc=$?
    if [ $rc -eq 0 ]; then ok "$what: the genuine key lets in"; else not_ok "$what: the genuine key: want let in, got $(said $rc)"; fi
    login "$host" "$store" "$EVIL" "$@"; rc=$?
    if [ $rc -eq 1 ]; then ok "$what: the attacker's key is refused"
    elif [ $rc -eq 0 ]; then not_ok "$what: THE ATTACKER'S KEY GOT ROOT"
    else not_ok "$what: the attacker's key: want refused, got $(said $rc)"; fi
    if [ -e "$MARKER" ]; then not_ok "$what: a planted object was loaded: $(cat "$MARKER")"; fi
}

for host in su login-p; do
    for s in json sqlite pgsql; do check "$host" "$s"; done
    echo "$HOSTILE" | while IFS= read -r vars; do
        # shellcheck disable=SC2086 # one VAR=VALUE per word
        check "$host" pgsql $vars
    done > "$T/hostile.out"
    cat "$T/hostile.out"
    fails=$((fails + $(grep -c '^not ok' "$T/hostile.out")))
    check "$host" sqlite TMPDIR="$A" SQLITE_TMPDIR="$A" APIKEY_STORE_DIR="$A/store"
    check "$host" json APIKEY_STORE_DIR="$A/store" OPENSSL_CONF="$A/openssl.cnf" OPENSSL_MODULES="$A/ossl"
    # A service with no config=: the attacker's configuration must not replace
    # the compiled default (absent here, so nothing at all lets in).
    rm -f "$MARKER"
    QUIET=1; login "$host" default "$EVIL" APIKEY_CONFIG="$A/evil.conf"; rc=$?; QUIET=
    if [ $rc -ne 0 ]; then ok "$host, no config=, APIKEY_CONFIG: the attacker's key is not let in"
    else not_ok "$host, no config=, APIKEY_CONFIG: THE ATTACKER'S KEY GOT ROOT"; fi
done
# su sets no PAM_RHOST: a key with an address list is refused there, even a
# list of every address (pam_apikey(8), ADDRESSES).
ANYWHERE=$(mk root --name anywhere --scopes proxies:read --allow-from 0.0.0.0/0,::/0) ||
    not_ok "apikey create --allow-from"
login su json "$ANYWHERE"; rc=$?
if [ $rc -eq 1 ]; then ok "su, json: a key with a list is refused (no PAM_RHOST)"
else not_ok "su, json: a key with a list: want refused, got $(said $rc)"; fi
n=$(grep -c "connection authorized" "$A/postgres.log")
if [ "$n" -eq "$ATT_CONNECTIONS" ]; then ok "root never connected to the attacker's server"
else not_ok "root connected to the attacker's server $((n - ATT_CONNECTIONS)) times"; fi
finish
