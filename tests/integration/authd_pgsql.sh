#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# needs: servers
# apikey-authd in front of a PostgreSQL that goes black: a private server
# (tests/pg_harness.sh) reached through a small TCP relay that, on demand,
# accepts connections and never answers, and stops relaying the ones it
# has. Concurrent checks then answer 503 promptly instead of queueing one
# after another behind connects that wait for connect_timeout: the relay
# counts the connects, and only one is attempted at a time (with a pause
# after it), not one per check. When the relay relays again, checks pass.
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${APIKEY_PG_CTL:-}" ]; then
    [ -f "$HERE/../../build/store/apikey_store_pgsql.so" ] || { echo "skip: no pgsql store built"; exit 77; }
    exec sh "$HERE/../pg_harness.sh" sh "$0" "$@"
fi
set -u
cd "$HERE/../.." || exit 2
[ "$(id -u)" = 0 ] || { echo "skip: authd_pgsql needs root (the configuration is root's)"; exit 77; }
for f in build/apikey-authd build/apikey build/libapikey.so; do
    [ -f "$f" ] || { echo "not ok - $f is not built (make all)"; exit 1; }
done
T=$(mktemp -d /tmp/apikey-authd_pgsql.XXXXXX) || exit 2
PIDS=""
fails=0
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "$fails" -ne 0 ] && [ -f "$T/authd.log" ] && tail -n 20 "$T/authd.log" | sed 's/^/#   /'
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
ok() { echo "ok - authd_pgsql: $1"; }
not_ok() { echo "not ok - authd_pgsql: $1"; fails=$((fails + 1)); }
want() { if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3: want '$1', got '$2'"; fi; }

# The relay: 127.0.0.1:PORT to the server's Unix socket; while $T/black
# exists, new connections are accepted and left unanswered and open ones
# carry nothing. Every accepted connection is counted in $T/accepts.
cat > "$T/relay.py" <<'PY'
import os, socket, sys, threading
black, count, target = sys.argv[1], sys.argv[2], sys.argv[3]
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(128)
print(lst.getsockname()[1], flush=True)
n, lock = 0, threading.Lock()
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data: break
            while os.path.exists(black): threading.Event().wait(0.1)
            b.sendall(data)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
while True:
    c, _ = lst.accept()
    with lock:
        n += 1
        open(count, "w").write("%d\n" % n)
    if os.path.exists(black):
        threading.Thread(target=lambda s=c: (s.recv(1 << 20), threading.Event().wait(3600)), daemon=True).start()
        continue
    u = socket.socket(socket.AF_UNIX); u.connect(target)
    for a, b in ((c, u), (u, c)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
PY
python3 "$T/relay.py" "$T/black" "$T/accepts" "$APIKEY_PG_HOST/.s.PGSQL.$APIKEY_PG_PORT" > "$T/relay.port" &
PIDS="$PIDS $!"
for i in $(seq 50); do [ -s "$T/relay.port" ] && break; sleep 0.1; done
RPORT=$(cat "$T/relay.port")

createdb -h "$APIKEY_PG_HOST" -p "$APIKEY_PG_PORT" -U "$APIKEY_PG_USER" authdstall
SVC=svc
# connect_timeout 3 s: each connect to the black relay waits that long.
printf 'store = pgsql:host=127.0.0.1 port=%s user=%s dbname=authdstall connect_timeout=3\n[services]\n%s = proxies:read\n' \
    "$RPORT" "$APIKEY_PG_USER" "$SVC" > "$T/apikey.conf"
chmod 600 "$T/apikey.conf"
KEY=$(build/apikey --config "$T/apikey.conf" create alice --name k --scopes proxies:read) ||
    { not_ok "apikey create on pgsql through the relay"; exit 1; }
build/apikey-authd --config "$T/apikey.conf" --listen "unix:$T/authd.sock" --threads 4 2>> "$T/authd.log" &
PIDS="$PIDS $!"
for i in $(seq 100); do [ -S "$T/authd.sock" ] && break; sleep 0.1; done

# checks N: N concurrent checks of KEY; prints their statuses, sorted and
# counted ("20 503"), each allowed 60 s.
checks() {
    KEY=$KEY SOCK=$T/authd.sock python3 -c '
import os, socket, sys, threading, collections
res = []
def one():
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(os.environ["SOCK"])
        s.sendall(("GET /verify/svc HTTP/1.1\r\nHost: a\r\nX-API-Key: %s\r\n\r\n" % os.environ["KEY"]).encode())
        res.append(s.recv(4096).split(b" ")[1].decode())
    except Exception as e:
        res.append(type(e).__name__)
ts = [threading.Thread(target=one) for i in range(int(sys.argv[1]))]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join("%d %s" % (n, c) for c, n in sorted(collections.Counter(res).items())))
' "$1"
}
want "1 200" "$(checks 1)" "through the relay: the key passes"

# The database goes black: the open connection carries nothing, new ones
# are accepted and never answered.
touch "$T/black"
before=$(cat "$T/accepts")
want "20 503" "$(checks 20)" "a black-holed database: 20 concurrent checks all answer 503"
after=$(cat "$T/accepts")
tried=$((after - before))
# Checks queued one after another would each have tried (20 connects);
# one attempt at a time, then a pause, is a handful.
[ "$tried" -le 3 ] && ok "a black-holed database: $tried connect(s) attempted for 20 checks, one at a time" ||
    not_ok "a black-holed database: $tried connects attempted for 20 checks (one per check: they queued)"
grep -q "cannot tell: .*did not answer the last connect in time" "$T/authd.log" &&
    ok "the daemon says why in one line" || not_ok "no line saying the store did not answer"

# Back: within the pause (8 s at most) and one connect, checks pass again.
rm -f "$T/black"
for i in $(seq 60); do [ "$(checks 1)" = "1 200" ] && break; sleep 0.5; done
want "1 200" "$(checks 1)" "the database back: the key passes again, without a restart"
[ "$fails" -eq 0 ]
