#!/usr/bin/env bash
# bench/logged.sh: logged requests per second, and what the access log costs on disk.
#
# Starts a release vault-server in a temporary directory, sets up a case with one
# recording and an investigator with a grant, then drives two logged requests in turn
# with wrk, C concurrent connections (default 32) for D seconds each (default 10),
# loopback only:
#   - `GET /v1/cases/{id}/recordings`: list recordings;
#   - `GET /v1/cases/{id}/envelopes`: fetch the caller's key envelope.
# Each authenticates, checks the grant, appends an access-log entry and commits it
# durably before answering.
# Afterwards it checks the chain with `vault-server verify` and measures the log table.
#
#     bench/logged.sh            # 32 connections, 10 s
#     bench/logged.sh 64 20
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
conns=${1:-32}
secs=${2:-10}
TARGET_DIR=${TARGET_DIR:-$repo/target}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 1; }

(cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
cli=$TARGET_DIR/release/vault-cli
server=$TARGET_DIR/release/vault-server
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-logged.XXXXXX")
pid=""
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cd "$tmp"

recipient() { VAULT_CONFIG_DIR=$tmp/cfg "$cli" keygen --out "$1" 2>/dev/null; }
"$server" init --data-dir data --admin alice --recipient "$(recipient alice.key)" >/dev/null 2>&1
"$server" serve --data-dir data --listen 127.0.0.1:0 2>server.log &
pid=$!
for _ in $(seq 100); do grep -q "listening on" server.log 2>/dev/null && break; sleep 0.05; done
url=$(sed -n 's/^listening on //p' server.log)
export VAULT_SERVER=$url

as() { local who=$1; shift; VAULT_CONFIG_DIR=$tmp/cfg-$who "$cli" --user "$who" --identity "$who.key" "$@" 2>/dev/null; }
as alice user add bob --role investigator --recipient "$(recipient bob.key)" >/dev/null
as alice user add pbx --role recorder --recipient "$(recipient pbx.key)" >/dev/null
case_id=$(as alice case create --kind customer --title Bench --purpose quality)
head -c 100000 /dev/urandom > call.wav
as pbx upload "$case_id" call.wav --announced signal-tone >/dev/null
as alice grant "$case_id" bob --reason bench
as bob recordings "$case_id" >/dev/null
token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$tmp"/cfg-bob/tokens/*.json)
count() { sqlite3 data/vault.db "SELECT count(*) FROM access_log"; }

rows=()
# load NAME PATH: wrk against PATH; appends a table row.
load() {
    local name=$1 path=$2 before after
    # The load must succeed: one authorised request first, so a setup mistake is not measured.
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$url$path"
    before=$(count)
    wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$url$path" > "wrk-$name.txt"
    after=$(count)
    local rps p50 p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' "wrk-$name.txt")
    p50=$(awk '$1=="50%" {print $2}' "wrk-$name.txt")
    p99=$(awk '$1=="99%" {print $2}' "wrk-$name.txt")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "wrk-$name.txt")
    rows+=("$(awk -v n="$name" -v c="$conns" -v r="$rps" -v a="$p50" -v b="$p99" -v e="${non2xx:-0}" -v w="$((after - before))" \
        'BEGIN { printf "| %s | %d | %s | %s | %s | %s | %d |", n, c, r, a, b, e, w }')")
}
load "list recordings" "/v1/cases/$case_id/recordings"
load "fetch envelope" "/v1/cases/$case_id/envelopes"

kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
verify=$("$server" verify --data-dir data 2>&1)
bytes=$(sqlite3 data/vault.db "SELECT sum(pgsize) FROM dbstat WHERE name IN ('access_log', 'access_log_by_case')" 2>/dev/null || echo 0)
entries=$(count)

echo "| request | connections | requests/s | p50 | p99 | non-2xx | log entries written |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
awk -v by="$bytes" -v t="$entries" 'BEGIN { printf "log: %d entries, %.0f bytes per entry on disk with its index\n", t, (t > 0 ? by / t : 0) }'
echo "chain after the run: $verify"
