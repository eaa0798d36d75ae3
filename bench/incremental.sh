#!/usr/bin/env bash
# bench/incremental.sh: what an auditor's `audit verify` costs on a big log.
#
# Builds release binaries, makes a vault in a temporary directory and fills its access
# log with N entries (default 10,000,000) through the server's own log writer (the
# example `synthetic_data`, which also writes the Merkle tree). Then, on a real server
# over loopback:
#   1. the server's start-up (it verifies every entry and tree node before serving);
#   2. the auditor's first `vault-cli audit verify`: every entry, streamed;
#   3. M more entries (default 100,000) are added, and the auditor's next
#      `audit verify`: a consistency proof from the pinned checkpoint.
# For 3 it reports wall time, peak RSS and the bytes the server answered (the checkpoint
# and the proof, fetched again with curl at the same sizes).
#
#     bench/incremental.sh                 # N = 10,000,000, M = 100,000
#     bench/incremental.sh 1000000 10000
# Needs ~4 GB of disk per 10 M entries in $TMPDIR, and curl and python3.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-10000000}
m=${2:-100000}
TARGET_DIR=${TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli \
    && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server --example synthetic_data)
bin=$TARGET_DIR/release
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-incremental.XXXXXX")
pid=""
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$tmp"' EXIT
cd "$tmp"

start_server() {
    : >server.log
    "$bin/vault-server" serve --data-dir data --listen 127.0.0.1:0 --purge-interval-secs 0 2>server.log &
    pid=$!
    for _ in $(seq 6000); do grep -q "listening on" server.log 2>/dev/null && break; sleep 0.1; done
    export VAULT_SERVER; VAULT_SERVER=$(sed -n 's/^listening on //p' server.log)
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
as() { local who=$1; shift; VAULT_CONFIG_DIR=$tmp/cfg-$who "$bin/vault-cli" --user "$who" --identity "$who.key" "$@"; }
key() { VAULT_CONFIG_DIR=$tmp/cfg "$bin/vault-cli" keygen --out "$1" 2>/dev/null; }
token() { sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$(ls -t "$tmp/cfg-$1"/tokens/*.json | head -1)"; }

"$bin/vault-server" init --data-dir data --admin alice --recipient "$(key alice.key)" >/dev/null 2>&1
start_server
as alice user add audrey --role auditor --recipient "$(key audrey.key)" >/dev/null 2>&1
as alice user add pbx --role recorder --recipient "$(key pbx.key)" >/dev/null 2>&1
case_id=$(as alice case create --kind customer --title Incremental --purpose quality 2>/dev/null)
stop_server

echo "writing $n log entries ..." >&2
/usr/bin/time -f "%e" -o gen.time "$bin/examples/synthetic_data" data "$case_id" 0 "$n" 2>/dev/null
t0=$(date +%s.%N)
start_server
awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >start.time
export VAULT_SERVER_KEY; VAULT_SERVER_KEY=$("$bin/vault-server" log-key --data-dir data)
as audrey login 2>/dev/null
echo "first audit verify (every entry) ..." >&2
VAULT_CONFIG_DIR=$tmp/cfg-audrey /usr/bin/time -f "%e %M" -o full.time \
    "$bin/vault-cli" --user audrey --identity audrey.key --json audit verify >full.json 2>verify.err || { cat verify.err >&2; exit 1; }
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
pinned=$(field full.json size)
stop_server

echo "adding $m entries ..." >&2
"$bin/examples/synthetic_data" data "$case_id" 0 "$m" 2>/dev/null
start_server
as audrey login 2>/dev/null
t0=$(date +%s.%N)
VAULT_CONFIG_DIR=$tmp/cfg-audrey /usr/bin/time -f "%e %M" -o incr.time \
    "$bin/vault-cli" --user audrey --identity audrey.key --json audit verify >incr.json 2>verify.err || { cat verify.err >&2; exit 1; }
incr_ms=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
size=$(field incr.json size)
checked=$(field incr.json checked)
# The bytes of the two answers the CLI read, fetched again at the same sizes.
t=$(token audrey)
get() { curl -fsS -o /dev/null -w '%{size_header} %{size_download}\n' -H "Authorization: Bearer $t" "$VAULT_SERVER$1"; }
read -r h1 b1 < <(get /v1/audit/checkpoint)
read -r h2 b2 < <(get "/v1/audit/consistency?from=$pinned&to=$size")
hashes=$(curl -fsS -H "Authorization: Bearer $t" "$VAULT_SERVER/v1/audit/consistency?from=$pinned&to=$size" | tr -cd ',' | wc -c)
stop_server

read -r fs fk <full.time
read -r _ ik <incr.time
echo "| step ($n entries, then $m more) | seconds | peak RSS MiB | read from the server |"
echo "|---|---:|---:|---:|"
echo "| writing $n entries (synthetic_data, 100,000 per transaction) | $(cat gen.time) | | |"
echo "| server start-up (verifies every entry and tree node) | $(cat start.time) | | |"
awk -v s="$fs" -v k="$fk" -v n="$pinned" 'BEGIN { printf "| first audit verify: every entry (%d) | %.2f | %.1f | the whole log |\n", n, s, k / 1024 }'
awk -v ms="$incr_ms" -v k="$ik" -v c="$checked" -v b=$((h1 + b1 + h2 + b2)) -v p="$pinned" -v z="$size" -v h=$((hashes + 1)) \
    'BEGIN { printf "| next audit verify: %d to %d (%d entries read, a proof of %d hashes) | %.3f | %.1f | %d bytes |\n", p, z, c, h, ms / 1000, k / 1024, b }'
echo
echo "database: $(du -h data/vault.db | cut -f1)"
