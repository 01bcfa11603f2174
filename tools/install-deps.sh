#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Installs the Debian packages the build, the tests and the demo need, when
# any is missing. Needs root (CI runs as root); prints what it installs.
set -e
PKGS="build-essential pkg-config libpam0g-dev libpam-modules libssl-dev libjansson-dev \
libsqlite3-dev libpq-dev libcunit1-dev libpam-wrapper valgrind clang libclang-rt-14-dev \
dpkg-dev debhelper fakeroot lintian devscripts \
openssh-server openssh-client sshpass squid dante-server curl postgresql pgbouncer db-util \
procps iproute2 nginx nginx-dev wrk \
libmicrohttpd-dev caddy python3 chromium chromium-driver python3-selenium"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages:$missing; run 'make deps' as root" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Servers must not start as system services: the tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
