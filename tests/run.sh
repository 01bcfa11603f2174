#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Runs every test: the CUnit programs (the store conformance suite and the
# store ABI test once per store: json, sqlite, pgsql direct and through
# pgbouncer; the fault injection once per store) and the integration
# scripts. Prints each CUnit run summary, then one total line.
cd "$(dirname "$0")/.." || exit 2
B=build/tests
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
failed_runs=""

# Runs a CUnit program and adds its "tests" summary row to the totals.
run_cunit() {
    label=$1; shift
    echo "=== $label"
    out=$(mktemp)
    "$@" > "$out" 2>&1
    rc=$?
    cat "$out"
    # 77: tests/pg_harness.sh found no PostgreSQL and may not install it.
    if [ $rc -eq 77 ]; then echo "skipped: $label"; rm -f "$out"; return; fi
    rows=$(grep -E '^ +tests +[0-9]' "$out")
    if [ -n "$rows" ]; then
        echo "$rows" | awk '{p += $4; f += $5} END {print p, f}' >> "$RESULTS"
    else
        echo "0 1" >> "$RESULTS"
    fi
    [ $rc -eq 0 ] || failed_runs="$failed_runs $label"
    rm -f "$out"
}

run_script() {
    label=$1; shift
    echo "=== $label"
    "$@"
    rc=$?
    if [ $rc -eq 0 ]; then echo "1 0" >> "$RESULTS"
    elif [ $rc -eq 77 ]; then echo "skipped: $label"
    else echo "0 1" >> "$RESULTS"; failed_runs="$failed_runs $label"; fi
}

# Every store whose backend is built.
STORES=${APIKEY_TEST_STORES:-$(for so in build/store/apikey_store_*.so; do
    n=${so##*apikey_store_}; echo "${n%.so}"; done)}
UNITS_ONLY=${APIKEY_TEST_UNITS_ONLY:-}
[ -z "$UNITS_ONLY" ] || STORES=$(for s in $STORES; do [ "$s" = pgsql ] || echo "$s"; done)

for t in $B/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    case "$name" in
    test_conformance|test_soak|test_store_abi|test_store_upgrade)
        for s in $STORES; do
            case $s in
            pgsql)
                run_cunit "$name on pgsql, direct and through pgbouncer" \
                    sh tests/pg_harness.sh sh tests/conformance_pg.sh "$t" ;;
            *) run_cunit "$name on $s" env APIKEY_TEST_STORE=$s "$t" ;;
            esac
        done ;;
    test_store_pgsql)
        if [ -n "$UNITS_ONLY" ]; then echo "skipped: $name (units only)"
        else run_cunit "$name" sh tests/pg_harness.sh "$t"; fi ;;
    test_faults)
        # Its LD_PRELOAD injector cannot sit beside ASan's own interceptors.
        if [ -n "${APIKEY_TEST_SANITIZE:-}" ]; then echo "skipped under sanitizers: $name"
        else
            for s in $STORES; do
                case $s in
                json|sqlite) run_cunit "$name on $s" env APIKEY_TEST_STORE=$s "$t" ;;
                # Straight to the server: it recreates its database, which
                # pgbouncer's pooled sessions would hold open.
                pgsql) run_cunit "$name on pgsql" \
                    sh tests/pg_harness.sh env APIKEY_TEST_STORE=pgsql "$t" ;;
                *) echo "skipped: $name on $s (no fault injection for it)" ;;
                esac
            done
        fi ;;
    *)
        run_cunit "$name" "$t" ;;
    esac
done

for s in tests/integration/*.sh; do
    [ -f "$s" ] || continue
    [ -z "$UNITS_ONLY" ] || { echo "skipped: $(basename "$s") (units only)"; continue; }
    # Servers such as sshd cannot load a module built with ASan.
    if [ -n "${APIKEY_TEST_SKIP_SERVERS:-}" ] && grep -q '^# needs: servers' "$s"; then
        echo "skipped under sanitizers: $(basename "$s")"; continue
    fi
    run_script "$(basename "$s")" sh "$s"
done

awk '{p += $1; f += $2} END {printf "%d passed, %d failed\n", p, f}' "$RESULTS"
if [ -n "$failed_runs" ]; then
    echo "FAILED:$failed_runs"
    exit 1
fi
