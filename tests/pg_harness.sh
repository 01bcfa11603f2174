#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# pg_harness.sh COMMAND [ARG...]: runs COMMAND beside a private PostgreSQL
# (initdb in a temporary folder, Unix socket only) with pgbouncer in front of
# it in transaction pooling mode, and stops both afterwards, on failure too.
#
# COMMAND sees:
#   APIKEY_PG_HOST, APIKEY_PG_PORT    the server's socket folder and port
#   APIKEY_PGB_HOST, APIKEY_PGB_PORT  pgbouncer's
#   APIKEY_PG_USER                    a superuser; trust authentication
#   APIKEY_PG_CTL                     a script: `$APIKEY_PG_CTL stop|start`
#                                     stops or starts the server (not pgbouncer)
#
# Both servers refuse to run as root: as root they run as the postgres
# system user, in a folder it owns. Exit 77 (skipped) only when the binaries
# are missing and we cannot install them (not root).
set -u
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$BIN" ] || BIN=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
PGB=$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)
if [ ! -x "$BIN/initdb" ] || [ ! -x "$BIN/pg_ctl" ] || [ ! -x "$PGB" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "pg_harness: skipped: PostgreSQL server binaries or pgbouncer missing (apt-get install postgresql pgbouncer)" >&2
        exit 77
    fi
    echo "pg_harness: PostgreSQL server binaries or pgbouncer missing; run 'make deps'" >&2
    exit 1
fi

if [ "$(id -u)" = 0 ]; then
    RUNAS=postgres
    id "$RUNAS" >/dev/null 2>&1 || { echo "pg_harness: no 'postgres' system user to run the servers" >&2; exit 1; }
    as_pg() { runuser -u "$RUNAS" -- "$@"; }
else
    RUNAS=$(id -un)
    as_pg() { "$@"; }
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/apikey-pg.XXXXXX") || exit 1
chmod 755 "$T"
mkdir "$T/data" "$T/pgb"
[ "$(id -u)" = 0 ] && chown -R "$RUNAS" "$T"
PORT=5432
PGB_PORT=6432

stop_all() {
    [ -f "$T/pgb/pgbouncer.pid" ] && kill "$(cat "$T/pgb/pgbouncer.pid")" 2>/dev/null
    [ -f "$T/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$T/data" -m immediate -w stop >/dev/null 2>&1
    if [ -n "${APIKEY_TEST_KEEP:-}" ]; then echo "pg_harness: kept $T" >&2; else rm -rf "$T"; fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

if ! as_pg "$BIN/initdb" -D "$T/data" -U "$RUNAS" -A trust -E UTF8 --locale=C >"$T/initdb.log" 2>&1; then
    echo "pg_harness: initdb failed:" >&2; cat "$T/initdb.log" >&2; exit 1
fi
# Private and quick: no TCP, no durability (a test server), room for the
# pools of every test database.
cat >> "$T/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$T'
port = $PORT
max_connections = 300
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

cat > "$T/pgctl.sh" <<EOF
#!/bin/sh
# \$1: stop or start the harness's PostgreSQL.
case "\$1" in
stop) $( [ "$(id -u)" = 0 ] && echo "runuser -u $RUNAS --" ) "$BIN/pg_ctl" -D "$T/data" -m fast -w stop >/dev/null ;;
start) $( [ "$(id -u)" = 0 ] && echo "runuser -u $RUNAS --" ) "$BIN/pg_ctl" -D "$T/data" -l "$T/postgres.log" -w start >/dev/null ;;
*) echo "usage: \$0 stop|start" >&2; exit 2 ;;
esac
EOF
chmod 755 "$T/pgctl.sh"
if ! sh "$T/pgctl.sh" start; then
    echo "pg_harness: PostgreSQL did not start:" >&2; cat "$T/postgres.log" >&2; exit 1
fi

printf '"%s" ""\n' "$RUNAS" > "$T/pgb/userlist.txt"
cat > "$T/pgb/pgbouncer.ini" <<EOF
[databases]
* = host=$T port=$PORT

[pgbouncer]
unix_socket_dir = $T/pgb
listen_port = $PGB_PORT
auth_type = trust
auth_file = $T/pgb/userlist.txt
admin_users = $RUNAS
pool_mode = transaction
max_client_conn = 500
default_pool_size = 10
server_idle_timeout = 5
server_check_delay = 0
# Find the server again soon after it returns (default 15 s). While it is
# away pgbouncer holds queries for query_wait_timeout (default 120 s, kept:
# the store's own wait limit must answer first).
server_login_retry = 1
logfile = $T/pgb/pgbouncer.log
pidfile = $T/pgb/pgbouncer.pid
EOF
[ "$(id -u)" = 0 ] && chown -R "$RUNAS" "$T/pgb"
if ! as_pg "$PGB" -q -d "$T/pgb/pgbouncer.ini"; then
    echo "pg_harness: pgbouncer did not start:" >&2; cat "$T/pgb/pgbouncer.log" >&2; exit 1
fi
i=0
while [ ! -S "$T/pgb/.s.PGSQL.$PGB_PORT" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -S "$T/pgb/.s.PGSQL.$PGB_PORT" ] || { echo "pg_harness: pgbouncer has no socket" >&2; cat "$T/pgb/pgbouncer.log" >&2; exit 1; }

export APIKEY_PG_HOST="$T" APIKEY_PG_PORT=$PORT APIKEY_PG_USER="$RUNAS"
export APIKEY_PGB_HOST="$T/pgb" APIKEY_PGB_PORT=$PGB_PORT APIKEY_PG_CTL="$T/pgctl.sh"
"$@"
rc=$?
exit $rc
