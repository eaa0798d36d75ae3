#!/usr/bin/env bash
# bench/backup.sh: what an online backup, its verification and a restore cost.
#
# Builds release binaries, sets up a vault in a temporary directory (127.0.0.1 only),
# uploads N recordings of SIZE_MIB MiB each (default 200 of 5 MiB: 1000 MiB) with
# vault-cli, then times, with peak RSS (GNU time):
#   - `vault-server backup` (copying blobs) while the server serves,
#   - `vault-server backup --link` (hard links),
#   - `vault-server verify` of the backup (log, and every blob's size and SHA-256),
#   - `vault-server restore` into a new directory,
#   - and a backup while uploads continue (recordings/s of those uploads, and that the
#     backup verifies).
#
#     bench/backup.sh              # 200 x 5 MiB
#     bench/backup.sh 1000 1       # 1000 x 1 MiB
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-200}
size=${2:-5}
TARGET_DIR=${TARGET_DIR:-$repo/target}
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
unset VAULT_SERVER VAULT_USER VAULT_IDENTITY VAULT_CA_CERT VAULT_TRUST_ROOT VAULT_CONFIG_DIR VAULT_SERVER_KEY
(cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
cli=$TARGET_DIR/release/vault-cli
server=$TARGET_DIR/release/vault-server
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-backup.XXXXXX")
pid=""
trap '[[ -z $pid ]] || kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cd "$tmp"

for u in alice root2 pbx; do "$cli" keygen --out "$u.key" >"$u.id" 2>/dev/null; done
export VAULT_TRUST_ROOT=$("$server" init --data-dir data --admin alice --recipient "$(cat alice.id)" \
    --admin root2 --recipient "$(cat root2.id)" 2>/dev/null)
"$server" serve --data-dir data --listen 127.0.0.1:0 --purge-interval-secs 0 2>server.log &
pid=$!
for _ in $(seq 100); do grep -q "listening on" server.log 2>/dev/null && break; sleep 0.05; done
export VAULT_SERVER=$(sed -n 's/^listening on //p' server.log)
as() { local who=$1; shift; VAULT_CONFIG_DIR=$tmp/cfg-$who "$cli" --user "$who" --identity "$who.key" "$@" 2>>setup.err; }
as alice user add pbx --role recorder --recipient "$(cat pbx.id)" >/dev/null
case_id=$(as alice case create --kind customer --title Bench --purpose quality)
head -c $((size * 1024 * 1024)) /dev/urandom >rec.bin
upload() { as pbx upload "$case_id" rec.bin --announced signal-tone >/dev/null; }
export -f as upload; export cli tmp case_id
seq "$n" | xargs -P 4 -I{} bash -c upload
echo "vault: $n recordings of $size MiB, $(du -sh data | cut -f1) in the data dir" >&2

timed() { # LABEL CMD...: wall seconds and peak RSS of CMD
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o time.out "$@" >/dev/null 2>step.err || { cat step.err >&2; exit 1; }
    read -r secs kib <time.out
    printf '| %s | %s s | %.1f MiB |\n' "$label" "$secs" "$(echo "$kib / 1024" | bc -l)"
}
echo "| step | time | peak RSS |"
echo "|---|---|---|"
timed "backup (copy), server serving" "$server" backup --data-dir data --out b1
timed "backup --link" "$server" backup --data-dir data --out b2 --link
timed "verify the backup" "$server" verify --data-dir b1
timed "restore" "$server" restore --from b1 --data-dir r1 --reason bench
# Uploads while a backup runs: how many land, and the backup still verifies.
start=$(date +%s.%N)
( while [[ ! -e stop ]]; do upload || true; done ) &
loader=$!
timed "backup (copy) during uploads" "$server" backup --data-dir data --out b3
touch stop; wait "$loader"
end=$(date +%s.%N)
"$server" verify --data-dir b3 >/dev/null 2>&1 && echo "backup taken during uploads: verifies" >&2
echo "recordings in the live vault: $(sqlite3 data/vault.db 'select count(*) from recordings' 2>/dev/null || echo '?'), in b3: $(sqlite3 b3/vault.db 'select count(*) from recordings' 2>/dev/null || echo '?') ($(echo "$end - $start" | bc) s of uploads)" >&2
