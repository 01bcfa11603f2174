#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# A long-lived host on a SQLite store keeps the answers it read while the
# store is unchanged (doc/STORES.md, "SQLite hosts: answers kept"), for as
# many keys as it checks: the Squid helper, as www-data reading a store of
# 20,000 keys through its group, asks every key twice in turn, and must read
# SQLite (its read transactions' fcntl locks, counted with strace) no more
# than a helper that asks every key once. With room for 16,384 answers, the
# second pass read SQLite again at nearly every check. Every answer is OK.
set -u
cd "$(dirname "$0")/../.." || exit 2
[ "$(id -u)" = 0 ] || { echo "skip: needs root (runs the helper as www-data)"; exit 77; }
getent passwd www-data > /dev/null || { echo "skip: no user www-data"; exit 77; }
command -v strace > /dev/null || { echo "skip: needs strace"; exit 77; }
for f in build/basic_apikey_auth build/apikey build/store/apikey_store_sqlite.so; do
    [ -f "$f" ] || { echo "skip: $f is not built"; exit 77; }
done
export APIKEY_STORE_DIR="$(pwd)/build/store"
N=${SQLITE_KEPT_KEYS:-20000}
T=$(mktemp -d /tmp/apikey-kept.XXXXXX) || exit 2
trap 'rm -rf "$T"' EXIT INT TERM
chmod 755 "$T"
printf 'store = sqlite:%s/keys.db\nlast_used_granularity = 1h\n[services]\nkept = proxies:read\n' "$T" > "$T/conf"
chmod 644 "$T/conf"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "user%d\tk\tproxies:read\tnever\n", i }' > "$T/batch"
build/apikey --config "$T/conf" create --batch "$T/batch" > "$T/keys" || { echo "not ok - the batch failed"; exit 1; }
chgrp www-data "$T"/keys.db* && chmod 640 "$T"/keys.db*
awk '{ printf "user%d %s\n", NR - 1, $0 }' "$T/keys" > "$T/once"
cat "$T/once" "$T/once" > "$T/twice"

# locks PASSES: the helper's fcntl calls over the file; its answers in $T/out.PASSES
locks() {
    strace -f -e trace=fcntl -o "$T/strace.$1" setpriv --reuid=www-data --regid=www-data --init-groups \
        build/basic_apikey_auth --config "$T/conf" --service kept < "$T/$1" > "$T/out.$1" 2> "$T/log.$1"
    grep -c 'fcntl(' "$T/strace.$1"
}
once=$(locks once)
twice=$(locks twice)
fails=0
for p in once twice; do
    okc=$(grep -c '^OK' "$T/out.$p")
    want=$(wc -l < "$T/$p")
    [ "$okc" -eq "$want" ] && echo "ok - $p: $okc answers OK" ||
        { echo "not ok - $p: $okc of $want answers OK"; head -3 "$T/log.$p"; fails=1; }
done
# The second pass may cost a few reads (a set of four ids met by five).
if [ "$twice" -le $((once + once / 10)) ]; then
    echo "ok - every key twice: $twice fcntl calls, every key once: $once (answers kept for $N keys)"
else
    echo "not ok - every key twice: $twice fcntl calls, every key once: $once (the second pass read SQLite again)"
    fails=1
fi
exit $fails
