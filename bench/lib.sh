# SPDX-License-Identifier: BSD-2-Clause
# Sourced by the make bench scripts (run from the project root, with $ROWS
# set): how a measure is recorded and how the rows become a table of
# bench/RESULTS.md, said once.

# row MEASURE VALUE UNIT TARGET-TEXT VERDICT
row() { printf '%s|%s|%s|%s|%s\n' "$1" "$2" "$3" "$4" "$5" >> "$ROWS"; echo "  $1: $2 $3 ($5)"; }
# verdict VALUE TARGET le|ge: "met" or "short"
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = dir == "le" ? v <= t : v >= t; print ok ? "met" : "short" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# The rows recorded so far as a Markdown table.
rows_table() {
    echo "| measure | result | unit | target | verdict |"
    echo "|---|---|---|---|---|"
    sed 's/^/| /; s/$/ |/; s/|/ | /g; s/  */ /g' "$ROWS" | sed 's/^ | /| /'
}
