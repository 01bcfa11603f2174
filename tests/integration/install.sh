#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# make install honours PREFIX and DESTDIR, puts the PAM module where libpam
# looks, installs apikey.pc with its storedir; make uninstall removes what
# install put there and nothing else (a configuration beside it stays).
# Built in a private build folder: the paths compiled in differ from build/'s.
set -u
cd "$(dirname "$0")/../.." || exit 2
T=$(mktemp -d) || exit 2
trap 'rm -rf "$T"' EXIT
D=$T/root
fail() { echo "install: $*" >&2; exit 1; }
make -s B="$T/b" PREFIX=/usr DESTDIR="$D" install >"$T/log" 2>&1 || { cat "$T/log"; fail "make install failed"; }
PAMDIR=$(pkg-config --variable=libdir pam 2>/dev/null || echo /lib/x86_64-linux-gnu)/security
for f in /usr/bin/apikey /usr/bin/basic_apikey_auth /usr/lib/libapikey.so.1 /usr/include/apikey.h \
         /usr/include/apikey_store.h /usr/include/apikey_key.h \
         /usr/lib/apikey/store/apikey_store_json.so "$PAMDIR/pam_apikey.so" \
         /usr/lib/pkgconfig/apikey.pc /usr/share/man/man1/apikey.1; do
    [ -e "$D$f" ] || fail "$f not installed"
done
# The nginx module, when nginx's development files let make build it.
if [ -f build/nginx/ngx_http_apikey_module.so ]; then
    [ -e "$D/usr/lib/nginx/modules/ngx_http_apikey_module.so" ] || fail "the nginx module not installed"
fi
# A host and a third-party store build from the installed headers alone.
for h in apikey.h apikey_store.h; do
    printf '#include <%s>\n' "$h" | ${CC:-cc} -std=c11 -Wall -Wextra -Werror -fsyntax-only \
        -I"$D/usr/include" -x c - || fail "$h does not compile on its own"
done
[ "$(PKG_CONFIG_PATH=$D/usr/lib/pkgconfig pkg-config --variable=storedir apikey)" = /usr/lib/apikey/store ] ||
    fail "apikey.pc: storedir is not /usr/lib/apikey/store"
# The installed library looks for its stores under PREFIX, not in build/.
strings "$D/usr/lib/libapikey.so.1" | grep -qx /usr/lib/apikey/store || fail "libapikey looks elsewhere for its stores"
mkdir -p "$D/etc/apikey" && echo 'store = json:/x' > "$D/etc/apikey/apikey.conf"
make -s B="$T/b" PREFIX=/usr DESTDIR="$D" uninstall >"$T/log" 2>&1 || { cat "$T/log"; fail "make uninstall failed"; }
left=$(find "$D" -type f -o -type l | sed "s|^$D||")
[ "$left" = /etc/apikey/apikey.conf ] || fail "uninstall left or removed: $left"
echo "install: PREFIX=/usr DESTDIR: every file in place; uninstall removed them all and kept the configuration"
