#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Every source file carries the licence line (LICENSE, debian/copyright):
# first line of C sources and headers, first line after any #! of scripts,
# makefiles and nginx's build description. Walks the tree, not git, so it
# also runs in an unpacked source package.
set -u
cd "$(dirname "$0")/../.." || exit 2
C='/* SPDX-License-Identifier: BSD-2-Clause */'
SH='# SPDX-License-Identifier: BSD-2-Clause'
bad=0
n=0
for f in $(find . -path ./build -prune -o -path ./.git -prune -o -path ./.pc -prune \
               -o -path './debian/*' -type d -prune -o -type f \( \
               -name '*.c' -o -name '*.h' -o -name '*.sh' -o -name '*.py' -o -name '*.mk' \
               -o -name Makefile -o -name '*.postinst' -o -name '*.postrm' \
               -o -path ./.ci/run -o -path ./nginx/config -o -path ./debian/rules \
               -o -path './tools/*' \) -print | sort); do
    n=$((n + 1))
    case "$f" in
    *.c|*.h) want=$C; got=$(head -n 1 "$f") ;;
    *) want=$SH
       if head -n 1 "$f" | grep -q '^#!'; then got=$(sed -n 2p "$f"); else got=$(head -n 1 "$f"); fi ;;
    esac
    [ "$got" = "$want" ] || { echo "licence: $f: the first line is not '$want'" >&2; bad=1; }
done
[ "$n" -ge 100 ] || { echo "licence: only $n source files found" >&2; exit 1; }
[ $bad -eq 0 ] && echo "licence: $n source files carry the SPDX line"
exit $bad
