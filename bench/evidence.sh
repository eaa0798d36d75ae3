#!/usr/bin/env bash
# bench/evidence.sh: an evidence bundle of a large recording, exported and verified.
#
# Builds release binaries, starts a private server on a free loopback port in a
# temporary directory, uploads one recording of SIZE MiB (default 100) of random bytes,
# and measures, with /usr/bin/time (wall seconds, peak RSS):
#   - `vault-cli evidence export` with the decrypted recording in the bundle,
#   - `vault-cli evidence export --to RECIPIENT` (the case key wrapped instead),
#   - `vault-cli evidence verify` of each bundle (offline: the server is stopped first),
# next to `vault-cli fetch` of the same recording as the yardstick.
#
#     bench/evidence.sh          # 100 MiB
#     bench/evidence.sh 1024
# Needs about 6x SIZE of free disk in ${TMPDIR:-/tmp}, /usr/bin/time and age-keygen.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size=${1:-100}
TARGET_DIR=${TARGET_DIR:-$repo/target}
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
(cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
bin=$TARGET_DIR/release
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-evidence.XXXXXX")
pid=""
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cd "$tmp"

alice_id=$("$bin/vault-cli" keygen --out alice.key 2>/dev/null | tail -1)
"$bin/vault-server" init --data-dir data --admin alice --recipient "$alice_id" >init.out 2>&1
export VAULT_TRUST_ROOT; VAULT_TRUST_ROOT=$("$bin/vault-server" trust-root --data-dir data 2>/dev/null)
export VAULT_SERVER_KEY; VAULT_SERVER_KEY=$("$bin/vault-server" log-key --data-dir data)
"$bin/vault-server" serve --data-dir data --listen 127.0.0.1:0 --purge-interval-secs 0 2>server.log &
pid=$!
for _ in $(seq 300); do grep -q "listening on" server.log 2>/dev/null && break; sleep 0.1; done
export VAULT_SERVER; VAULT_SERVER=$(sed -n 's/^listening on //p' server.log)
as() { local who=$1; shift; VAULT_CONFIG_DIR=$tmp/cfg-$who "$bin/vault-cli" --user "$who" --identity "$who.key" "$@"; }
timed() { local out=$1 who=$2; shift 2; VAULT_CONFIG_DIR=$tmp/cfg-$who /usr/bin/time -f "%e %M" -o "$out" "$bin/vault-cli" --user "$who" --identity "$who.key" "$@" >/dev/null 2>>cli.err; }
for who in bob pbx; do "$bin/vault-cli" keygen --out $who.key >/dev/null 2>&1; done
as alice user add bob --role investigator --recipient "$("$bin/vault-cli" public-id bob.key 2>/dev/null)" >/dev/null 2>&1
as alice user add pbx --role recorder --recipient "$("$bin/vault-cli" public-id pbx.key 2>/dev/null)" >/dev/null 2>&1
case_id=$(as alice case create --kind customer --title Bench --purpose quality 2>/dev/null)
as alice grant "$case_id" bob --reason bench >/dev/null 2>&1
head -c $((size << 20)) /dev/urandom >call.wav
rec=$(as pbx upload "$case_id" call.wav --announced signal-tone 2>/dev/null)
recipient=$(age-keygen -o prosecutor.key 2>&1 | sed -n 's/^Public key: //p')

timed fetch.time bob fetch "$rec" --reason bench --out fetched.wav
timed plain.time bob evidence export "$rec" --reason bench --out plain.evidence
timed wrapped.time bob evidence export "$rec" --reason bench --to "$recipient" --out wrapped.evidence
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
timed vplain.time bob evidence verify plain.evidence
timed vwrapped.time bob evidence verify wrapped.evidence
cmp -s call.wav fetched.wav || { echo "fetch differs" >&2; exit 1; }

row() { read -r s k <"$2"; awk -v n="$1" -v s="$s" -v k="$k" -v m="$size" 'BEGIN { printf "| %s | %.2f | %.0f | %.1f |\n", n, s, m / s, k / 1024 }'; }
echo "| $size MiB recording | seconds | MiB/s | peak RSS MiB |"
echo "|---|---:|---:|---:|"
row "fetch (yardstick)" fetch.time
row "evidence export, decrypted recording in the bundle" plain.time
row "evidence export --to (case key wrapped)" wrapped.time
row "evidence verify, decrypted recording ($(du -m plain.evidence | cut -f1) MiB bundle)" vplain.time
row "evidence verify, wrapped key ($(du -m wrapped.evidence | cut -f1) MiB bundle)" vwrapped.time
