#!/usr/bin/env bash
# bench/scale.sh: a vault with a million recordings and a million log entries.
#
# Builds release binaries, sets up a vault in a temporary directory, adds N recordings'
# metadata to one case and N access-log entries directly (vault-server's example
# `synthetic_data`), then measures on a real server over loopback:
#   - a page (100) of the case's recordings, first and deep (after the 90% mark),
#   - `case show` and the compliance report,
#   - `vault-cli audit verify` online over the whole log, then incrementally after
#     10,000 more entries,
# and prints the query plans of the queries that must use indexes.
#
#     bench/scale.sh            # N = 1,000,000
#     bench/scale.sh 100000
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-1000000}
TARGET_DIR=${TARGET_DIR:-$repo/target}
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 1; }
(cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli \
    && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server --example synthetic_data)
bin=$TARGET_DIR/release
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-scale.XXXXXX")
pid=""
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$tmp"' EXIT
cd "$tmp"

start_server() {
    "$bin/vault-server" serve --data-dir data --listen 127.0.0.1:0 --purge-interval-secs 0 2>server.log &
    pid=$!
    for _ in $(seq 600); do grep -q "listening on" server.log 2>/dev/null && break; sleep 0.1; done
    export VAULT_SERVER; VAULT_SERVER=$(sed -n 's/^listening on //p' server.log)
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
as() { local who=$1; shift; VAULT_CONFIG_DIR=$tmp/cfg-$who "$bin/vault-cli" --user "$who" --identity "$who.key" "$@" 2>/dev/null; }
key() { VAULT_CONFIG_DIR=$tmp/cfg "$bin/vault-cli" keygen --out "$1" 2>/dev/null; }
# The newest cached token (each server start is a new port, so a new cache entry).
token() { sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$(ls -t "$tmp/cfg-$1"/tokens/*.json | head -1)"; }
# Median seconds of 21 GETs of $2 as user $1.
median() {
    local t; t=$(token "$1")
    for _ in $(seq 21); do
        curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $t" "$VAULT_SERVER$2"
    done | sort -n | sed -n 11p | awk '{ printf "%.1f ms", $1 * 1000 }'
}

"$bin/vault-server" init --data-dir data --admin alice --recipient "$(key alice.key)" >/dev/null 2>&1
start_server
as alice user add bob --role investigator --recipient "$(key bob.key)" >/dev/null
as alice user add audrey --role auditor --recipient "$(key audrey.key)" >/dev/null
as alice user add pbx --role recorder --recipient "$(key pbx.key)" >/dev/null
case_id=$(as alice case create --kind customer --title Scale --purpose quality)
as alice grant "$case_id" bob --reason bench
stop_server

echo "generating $n recordings and $n log entries ..." >&2
/usr/bin/time -f "%e s" -o gen.time "$bin/examples/synthetic_data" data "$case_id" "$n" "$n"
start_server
as bob login; as alice login; as audrey login
# The id of the recording at the 90% mark, built the way the generator builds ids.
deep=$(python3 -c "print('rec_%032x' % ((1 << 100) + $n * 9 // 10))")

echo "| request ($n recordings in the case, $n log entries) | median of 21 |"
echo "|---|---:|"
echo "| first page of 100 recordings | $(median bob "/v1/cases/$case_id/recordings?limit=100") |"
echo "| page of 100 after the 90% mark | $(median bob "/v1/cases/$case_id/recordings?limit=100&after=$deep") |"
echo "| case show | $(median alice "/v1/cases/$case_id") |"
echo "| compliance report | $(median alice "/v1/report") |"

export VAULT_SERVER_KEY; VAULT_SERVER_KEY=$("$bin/vault-server" log-key --data-dir data)
/usr/bin/time -f "%e %M" -o full.time "$bin/vault-cli" --user audrey --identity audrey.key audit verify >/dev/null 2>verify.err \
    || { cat verify.err >&2; exit 1; }
stop_server
"$bin/examples/synthetic_data" data "$case_id" 0 10000
start_server
/usr/bin/time -f "%e %M" -o incr.time "$bin/vault-cli" --user audrey --identity audrey.key audit verify >/dev/null 2>verify.err \
    || { cat verify.err >&2; exit 1; }
read -r fs fk < full.time
read -r is ik < incr.time
echo
echo "| audit verify (online, whole process) | entries checked | seconds | entries/s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
size=$(sqlite3 data/vault.db "SELECT count(*) FROM access_log")
awk -v s="$fs" -v k="$fk" -v n="$((size - 10000 - 2))" 'BEGIN { printf "| first run: the whole log | ~%d | %.2f | %.0f | %.1f |\n", n, s, n / s, k / 1024 }'
awk -v s="$is" -v k="$ik" 'BEGIN { printf "| incremental: 10,000 new entries | ~10,002 | %.2f | %.0f | %.1f |\n", s, 10002 / s, k / 1024 }'
echo
echo "generation took $(cat gen.time)"
echo
echo "Query plans:"
plan() { echo "- $1:"; sqlite3 data/vault.db "EXPLAIN QUERY PLAN $2" | sed 's/^/    /'; }
plan "recording page" "SELECT * FROM recordings WHERE case_id = 'x' AND rowid > 5 ORDER BY rowid LIMIT 101"
plan "purge candidates" "SELECT r.rowid FROM cases c CROSS JOIN recordings r ON r.case_id = c.id WHERE c.legal_hold = 0 AND r.recorded_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || c.retention_days || ' days') LIMIT 500"
plan "report totals per kind" "SELECT count(*), sum(recording_count) FROM cases WHERE kind = 'customer'"
plan "log entries of a case" "SELECT * FROM access_log WHERE seq >= 0 AND (NULL IS NULL OR case_id = 'x') ORDER BY seq LIMIT 1000"
