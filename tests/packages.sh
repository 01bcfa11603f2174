#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# The Debian packages as an operator gets them. Run by .ci/run after make
# check, as root, and never by make check: it installs packages system-wide.
#
# make deb in a clean copy of the checkout (then that copy is deleted), lintian
# (no error), apt-get install of the .deb files, hardening-check on every
# installed binary, /etc/pam.d untouched; then, against the installed
# files only (from an empty folder, a bare environment, no build tree left
# anywhere): the demo's lifecycle with /usr/bin/apikey on a private
# configuration and store, logins through a PAM service that names the
# installed module, the Squid helper, nginx loading the module through its
# modules-enabled snippet, apikey-authd (through its unit where systemd runs,
# else started directly); the installed configuration grants nothing; hosts
# that run unprivileged (PAM as www-data, the Squid helper as proxy) answer
# once README's `adduser` lines are followed, and not before. Then
# remove and purge: the key store is still there, and nothing else is.
# Exit 0 pass, 1 fail, 77 skipped (not root).
set -u
cd "$(dirname "$0")/.." || exit 2
SRC=$(pwd)
[ "$(id -u)" = 0 ] || { echo "packages: skipped: installs packages, needs root"; exit 77; }
STORE_DIR=/var/lib/apikey
for p in /etc/apikey $STORE_DIR; do
    [ ! -e $p ] || { echo "packages: $p exists: this test installs and purges pam_apikey; run it where none is installed" >&2; exit 1; }
done

T=$(mktemp -d /tmp/apikey-packages.XXXXXX) || exit 2
chmod 755 "$T"
PKGS=""
PIDS=""
# The packages' system group outlives a purge (as ssl-cert's does); the
# machine gets back the groups it had.
GROUP_BEFORE=$(getent group apikey)
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    [ -z "$PKGS" ] || dpkg --purge $PKGS >/dev/null 2>&1
    rm -rf $STORE_DIR "$T"
    if [ -z "$GROUP_BEFORE" ]; then
        ! getent group apikey >/dev/null || groupdel apikey
    else
        for u in www-data proxy; do
            echo ",${GROUP_BEFORE##*:}," | grep -q ",$u," || gpasswd -d $u apikey >/dev/null 2>&1
        done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fails=0
fail() { echo "not ok - $*"; fails=$((fails + 1)); }
ok() { echo "ok - $*"; }
check() { # WANT GOT WHAT
    if [ "$1" = "$2" ]; then ok "$3"; else fail "$3: want $1, got $2"; fi
}
die() { echo "packages: $*" >&2; exit 1; }

# ---- build, from a copy holding only what the checkout holds ---------------
mkdir "$T/src" "$T/debs"
tar --exclude=./build --exclude=./build-san --exclude=./.git -cf - . | tar -xf - -C "$T/src"
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=$(nproc)}"
echo "packages: make deb (log: build/packages-deb.log)"
mkdir -p build
if ! make -C "$T/src" deb > build/packages-deb.log 2>&1; then
    tail -n 30 build/packages-deb.log
    die "make deb failed"
fi
mv "$T/src/build/deb/"* "$T/debs/"
rm -rf "$T/src"
rm -rf build/deb && mkdir -p build/deb && cp "$T/debs/"* build/deb/
for d in "$T"/debs/*.deb; do echo "  $(basename "$d") $(stat -c %s "$d") bytes"; done

if lintian --fail-on error "$T"/debs/*.changes > "$T/lintian" 2>&1; then
    ok "lintian: no error ($(grep -c '^W:' "$T/lintian") warnings)"
else
    fail "lintian reports errors"
fi
grep -v 'root privileges' "$T/lintian"

DEBS=$(ls "$T"/debs/*.deb)
NAMES=$(for d in $DEBS; do dpkg-deb -f "$d" Package; done)
# The core and the store backends only of one release (debian/control): a
# partial upgrade once ran the previous core on today's backends.
V=$(dpkg-deb -f "$T"/debs/libapikey1_*.deb Version)
for pair in "libapikey1 apikey-tools" "apikey-tools libapikey1"; do
    a=${pair% *} b=${pair#* }
    # dpkg writes the two relations in its own order.
    breaks=$(dpkg-deb -f "$T"/debs/"$a"_*.deb Breaks)
    case "$breaks" in
    *"$b (<< $V)"*) case "$breaks" in
        *"$b (>> $V)"*) ok "$a breaks every $b but $V" ;;
        *) fail "$a does not break a $b of another release" ;;
        esac ;;
    *) fail "$a does not break a $b of another release" ;;
    esac
done
for p in $NAMES; do
    ! dpkg -s "$p" >/dev/null 2>&1 || die "$p is installed already"
done

# What the packages ship that exists before they are installed (shared folders).
for d in $DEBS; do dpkg-deb -c "$d"; done | awk '{print substr($6, 2)}' | sed 's|/$||' | sort -u > "$T/shipped"
while read -r f; do [ -z "$f" ] || [ ! -e "$f" ] || echo "$f"; done < "$T/shipped" > "$T/before"
# (/etc/pam.d is compared on its own, below.)
apikey_paths() { find /etc /usr /var/lib -xdev -path /etc/pam.d -prune -o -path '*apikey*' -print 2>/dev/null | sort; }
apikey_paths > "$T/apikey-paths-before"
# (Leaving out the services that tests of other checkouts add and remove
# while they run: tests/integration/*.sh name them *apikeytest*.)
pam_sums() { find /etc/pam.d /usr/share/pam-configs -type f ! -name '*apikeytest*' -exec md5sum {} + 2>/dev/null | sort; }
pam_sums > "$T/pam-before"

# ---- install -----------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
PKGS=$NAMES
apt-get -o DPkg::Lock::Timeout=600 install -y -q $DEBS > "$T/apt.log" 2>&1 || { cat "$T/apt.log"; die "apt-get install failed"; }
ok "apt-get install ./build/deb/*.deb"

pam_sums | cmp -s - "$T/pam-before" && ok "no PAM stack changed on install" || fail "/etc/pam.d or pam-configs changed on install"
dpkg-query -W -f='${Conffiles}\n' apikey-tools | grep -qE '^ /etc/apikey/apikey.conf [0-9a-f]{32}$' &&
    ok "/etc/apikey/apikey.conf is a conffile" || fail "/etc/apikey/apikey.conf is not a conffile"
gid=$(getent group apikey | cut -d: -f3)
[ -n "$gid" ] && [ "$gid" -lt 1000 ] && ok "the system group apikey ($gid)" || fail "no system group apikey: '$gid'"
check "root:apikey 2750" "$(stat -c '%U:%G %a' $STORE_DIR 2>&1)" "$STORE_DIR: root:apikey, setgid"
check "root:apikey 750" "$(stat -c '%U:%G %a' /etc/apikey 2>&1)" "/etc/apikey: root:apikey"
check "root:apikey 640" "$(stat -c '%U:%G %a' /etc/apikey/apikey.conf 2>&1)" "/etc/apikey/apikey.conf: root:apikey"

# The installed ELF files resolve every library, carry no run path, and name
# no build folder.
ELF=""
for p in $PKGS; do
    case $p in *-dbgsym) continue ;; esac
    for f in $(dpkg -L "$p"); do
        [ -f "$f" ] && [ ! -L "$f" ] && head -c 4 "$f" | grep -q ELF && ELF="$ELF $f"
    done
done
for f in $ELF; do
    if ldd "$f" 2>&1 | grep -q 'not found'; then fail "$f: a library not found"
    elif readelf -d "$f" | grep -qE 'RPATH|RUNPATH'; then fail "$f: carries a run path"
    elif strings "$f" | grep -q "$T"; then fail "$f: names the build folder"
    else ok "$f: libraries found, no run path, no build folder"; fi
done

# The distribution's hardening on every installed binary, as hardening-check
# (devscripts) reads it. Its control-flow check is left out: on Debian 12 it
# fails Debian's own sshd and pam_unix.so too, as it looks for a property
# note that the C runtime's start files lack; the endbr64 instructions that
# -fcf-protection emits are there.
if hardening-check --quiet --nocfprotection $ELF; then
    ok "hardening-check: PIE, stack protector, _FORTIFY_SOURCE, RELRO, BIND_NOW on every binary"
else
    fail "hardening-check"
fi

# ---- the installed files at work, from an empty folder ----------------------
mkdir "$T/run" "$T/bin" "$T/conf" "$T/store" "$T/pam.d" "$T/www" "$T/www/v1"
cd "$T/run" || exit 2
# pam_try is not installed: build it from its source, linked with libpam only.
cc -o "$T/bin/pam_try" "$SRC/tools/pam_try.c" -lpam || die "cannot build tools/pam_try.c"
run() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$T/run" "$@"; }

# The configuration the package installed: a key can be made in its store,
# and no service accepts it.
DKEY=$(run apikey create alice --name packaged --scopes proxies:read) && ok "apikey create in the default store" ||
    fail "apikey create with /etc/apikey/apikey.conf"
[ -f $STORE_DIR/keys.json ] && ok "the default store is $STORE_DIR/keys.json" || fail "no store in $STORE_DIR"
check "root:apikey 640" "$(stat -c '%U:%G %a' $STORE_DIR/keys.json 2>&1)" "the new store takes the folder's group"
for svc in sshd squid sockd login su; do
    echo "$DKEY" | run apikey verify --service $svc --account alice 2>/dev/null
    check 1 $? "the installed configuration refuses service $svc (none mapped)"
done

# Hosts that run unprivileged, on the installed configuration and store:
# Apache's mod_authnz_pam (PAM as www-data), the Squid helper (as proxy),
# and `apikey verify` as www-data. Outside the group the configuration
# cannot be read (PAM_SERVICE_ERR); then the operator maps the services and
# follows README's two lines, and nothing is "cannot retrieve authentication
# info" (PAM_AUTHINFO_UNAVAIL, the store's folder out of reach).
printf 'auth required pam_apikey.so\naccount required pam_apikey.so\n' > "$T/pam.d/apache"
as_www() { echo "$DKEY" | run runuser -u www-data -- "$T/bin/pam_try" "$T/pam.d" apache alice 2>&1; }
as_proxy() { printf 'alice %s\n' "$DKEY" | run runuser -u proxy -- /usr/lib/squid/basic_apikey_auth --service squid 2>/dev/null | cut -c1-3; }
out=$(as_www)
echo "$out" | grep -q '^pam_authenticate: Error in service module$' &&
    ok "PAM as www-data outside the group: refused, the configuration out of reach" ||
    fail "PAM as www-data outside the group: $(echo "$out" | tr '\n' ' ')"
printf 'squid = proxies:read\napache = proxies:read\n' >> /etc/apikey/apikey.conf
adduser www-data apikey >/dev/null
adduser proxy apikey >/dev/null
out=$(as_www)
echo "$out" | grep -q '^let in$' && ok "PAM as www-data in the group (mod_authnz_pam): let in" ||
    fail "PAM as www-data in the group: $(echo "$out" | tr '\n' ' ')"
check OK "$(as_proxy)" "Squid helper as proxy in the group: OK"
echo "$DKEY" | run runuser -u www-data -- apikey verify --service apache --account alice
check 0 $? "apikey verify as www-data in the group"
echo "$DKEY" | run runuser -u nobody -- apikey verify --service apache --account alice 2>/dev/null
check 2 $? "apikey verify as nobody (not in the group): unavailable"

cat > "$T/conf/apikey.conf" <<CONF
store = json:$T/store/keys.json

[services]
apikey-demo = proxies:read
billing = balance:read stats:read
CONF
chmod 644 "$T/conf/apikey.conf"
A="apikey --config $T/conf/apikey.conf"
KEY=$(run $A create alice --name "CI deploy" --scopes proxies:read,geo:read --expires 30d) || fail "apikey create"
ID=$(echo "$KEY" | cut -c1-11)
run $A list | grep -q "$ID" && ok "apikey list shows $ID" || fail "apikey list"
echo "$KEY" | run $A verify --service apikey-demo --account alice; check 0 $? "apikey verify: a good key"
echo "$KEY" | run $A verify --service billing --account alice 2>/dev/null; check 1 $? "apikey verify: missing scope"

# PAM: the service names the module by name alone, so libpam finds the
# installed one in its own module folder.
printf 'auth required pam_apikey.so config=%s\naccount required pam_apikey.so config=%s\n' \
    "$T/conf/apikey.conf" "$T/conf/apikey.conf" > "$T/pam.d/apikey-demo"
echo "auth required pam_deny.so" > "$T/pam.d/other"
pam() { echo "$1" | run "$T/bin/pam_try" "$T/pam.d" apikey-demo "$2" >/dev/null 2>&1; echo $?; }
check 0 "$(pam "$KEY" alice)" "PAM: the installed module lets the good key in"
check 1 "$(pam "$KEY" bob)" "PAM: another account is refused"

squid() { printf 'alice %s\n' "$1" | run /usr/lib/squid/basic_apikey_auth --config "$T/conf/apikey.conf" --service apikey-demo | cut -c1-3; }
check OK "$(squid "$KEY")" "Squid helper /usr/lib/squid/basic_apikey_auth: OK"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for i in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; return 1; }
http() { # URL [KEY]: the status code
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 ${2:+-H "Authorization: Bearer $2"} "$1"
}

NGX_PORT=""
if dpkg -s libnginx-mod-http-apikey >/dev/null 2>&1; then
    SNIPPET=/etc/nginx/modules-enabled/50-mod-http-apikey.conf
    check /usr/share/nginx/modules-available/mod-http-apikey.conf "$(readlink $SNIPPET)" "nginx: $SNIPPET enabled"
    NGX_PORT=$(port)
    mkdir "$T/nginx"
    echo hello > "$T/www/v1/data"
    cat > "$T/nginx/nginx.conf" <<CONF
user root;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
include $SNIPPET;
events {}
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    apikey_config $T/conf/apikey.conf;
    server {
        listen 127.0.0.1:$NGX_PORT;
        root $T/www;
        location /v1/ { apikey_service apikey-demo; }
    }
}
CONF
    if run nginx -t -c "$T/nginx/nginx.conf" >"$T/nginx/t.log" 2>&1; then ok "nginx -t loads the module"
    else cat "$T/nginx/t.log"; fail "nginx -t with the module"; fi
    run nginx -c "$T/nginx/nginx.conf" 2>>"$T/nginx/t.log"
    wait_port "$NGX_PORT" || { cat "$T/nginx/t.log" "$T/nginx/error.log"; fail "nginx did not start"; }
    PIDS="$PIDS $(cat "$T/nginx/nginx.pid" 2>/dev/null)"
    check 200 "$(http "http://127.0.0.1:$NGX_PORT/v1/data" "$KEY")" "nginx module: a good key"
    check 401 "$(http "http://127.0.0.1:$NGX_PORT/v1/data")" "nginx module: no key"
else
    echo "skip - libnginx-mod-http-apikey not built"
fi

AUTHD_PORT=""
if dpkg -s apikey-authd >/dev/null 2>&1; then
    [ -z "$(find /etc/systemd/system -name apikey-authd.service 2>/dev/null)" ] &&
        ok "apikey-authd: its unit is not enabled on install" || fail "apikey-authd: its unit was enabled on install"
    state=$(systemctl is-system-running 2>/dev/null)
    case $state in
    running|degraded)
        if systemctl start apikey-authd && systemctl is-active -q apikey-authd; then
            ok "apikey-authd: started through its unit"
            SOCK=/run/apikey-verify/authd.sock
            check 401 "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket $SOCK -H "Authorization: Bearer $DKEY" http://authd/verify/sshd)" \
                "apikey-authd (unit, installed configuration): sshd is not mapped"
            check 200 "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket $SOCK http://authd/metrics)" "apikey-authd (unit): /metrics"
            systemctl stop apikey-authd
        else
            fail "apikey-authd: systemctl start"; journalctl -u apikey-authd --no-pager | tail -n 20
        fi ;;
    *) echo "skip - apikey-authd through its unit: systemd is not running here ($state)" ;;
    esac
    AUTHD_PORT=$(port)
    run apikey-authd --config "$T/conf/apikey.conf" --listen "127.0.0.1:$AUTHD_PORT" >"$T/authd.log" 2>&1 &
    PIDS="$PIDS $!"
    wait_port "$AUTHD_PORT" || { cat "$T/authd.log"; fail "apikey-authd did not start"; }
    check 200 "$(http "http://127.0.0.1:$AUTHD_PORT/verify/apikey-demo" "$KEY")" "apikey-authd /verify: a good key"
    check 401 "$(http "http://127.0.0.1:$AUTHD_PORT/verify/apikey-demo")" "apikey-authd /verify: no key"
else
    echo "skip - apikey-authd not built"
fi

run $A revoke "$ID" >/dev/null; check 0 $? "apikey revoke $ID"
echo "$KEY" | run $A verify --service apikey-demo --account alice 2>/dev/null; check 1 $? "apikey verify: revoked"
check 1 "$(pam "$KEY" alice)" "PAM: the revoked key is refused"
check ERR "$(squid "$KEY")" "Squid helper: the revoked key is refused"
[ -z "$NGX_PORT" ] || check 401 "$(http "http://127.0.0.1:$NGX_PORT/v1/data" "$KEY")" "nginx module: the revoked key"
[ -z "$AUTHD_PORT" ] || check 401 "$(http "http://127.0.0.1:$AUTHD_PORT/verify/apikey-demo" "$KEY")" "apikey-authd: the revoked key"
run $A list --all | grep "$ID" | grep -q revoked && ok "apikey list --all: $ID revoked" || fail "apikey list --all"
for p in $PIDS; do kill "$p" 2>/dev/null; done
PIDS=""
sleep 1

# ---- remove, then purge: the store stays, nothing else does ------------------
cd / || exit 2
STORE_SUM=$(md5sum $STORE_DIR/keys.json)
apt-get -o DPkg::Lock::Timeout=600 remove -y -q $PKGS > "$T/apt.log" 2>&1 || { cat "$T/apt.log"; fail "apt-get remove"; }
[ -f /etc/apikey/apikey.conf ] && ok "remove keeps the configuration" || fail "remove deleted /etc/apikey/apikey.conf"
check "$STORE_SUM" "$(md5sum $STORE_DIR/keys.json 2>&1)" "remove keeps the key store"
# (apt-get cannot purge what no repository knows once it is removed.)
dpkg --purge $PKGS > "$T/apt.log" 2>&1 || { cat "$T/apt.log"; fail "dpkg --purge"; }
PKGS=""
check "$STORE_SUM" "$(md5sum $STORE_DIR/keys.json 2>&1)" "purge keeps the key store"
[ ! -e /etc/apikey ] && ok "purge removes /etc/apikey" || fail "purge left /etc/apikey: $(ls -A /etc/apikey)"
while read -r f; do [ -z "$f" ] || [ ! -e "$f" ] || echo "$f"; done < "$T/shipped" | sort > "$T/after"
left=$(comm -13 "$T/before" "$T/after")
[ -z "$left" ] && ok "purge removes every file the packages shipped" || fail "purge left: $left"
left=$(apikey_paths | comm -13 "$T/apikey-paths-before" - |
    grep -v "^$STORE_DIR")
[ -z "$left" ] && ok "purge leaves nothing else named apikey in /etc, /usr, /var/lib" || fail "purge left: $left"
pam_sums | cmp -s - "$T/pam-before" && ok "no PAM stack changed by remove and purge" || fail "PAM configuration changed"

if [ $fails -eq 0 ]; then echo "packages: all passed"; exit 0; fi
echo "packages: $fails failed"
exit 1
