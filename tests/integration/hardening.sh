#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Every object that make builds carries the hardening the Makefile adds:
# full RELRO and BIND_NOW, a stack protector, _FORTIFY_SOURCE's checked
# calls and a non-executable stack. Read off the built files with readelf
# and nm, as hardening-check (devscripts) does.
set -u
cd "$(dirname "$0")/../.." || exit 2
bad=0
n=0
fail() { echo "hardening: $1: $2" >&2; bad=1; }
for f in build/libapikey.so build/pam_apikey.so build/apikey build/basic_apikey_auth \
         build/store/*.so build/nginx/*.so build/apikey-authd build/apikey-syncd; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    dyn=$(readelf -dW "$f")
    echo "$dyn" | grep -Eq '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' || fail "$f" "not linked with -z now"
    prog=$(readelf -lW "$f")
    echo "$prog" | grep -q 'GNU_RELRO' || fail "$f" "no RELRO segment"
    echo "$prog" | grep 'GNU_STACK' | grep -q 'RWE' && fail "$f" "executable stack"
    syms=$(nm -D "$f")
    echo "$syms" | grep -q ' U __stack_chk_fail' || fail "$f" "no stack protector"
    echo "$syms" | grep -Eq ' U __[a-z_]+_chk(@|$)' || fail "$f" "no _FORTIFY_SOURCE checked calls"
done
[ "$n" -ge 6 ] || { echo "hardening: only $n built objects found; run make first" >&2; exit 1; }
[ $bad -eq 0 ] && echo "hardening: $n objects: RELRO, BIND_NOW, stack protector, fortify, no exec stack"
exit $bad
