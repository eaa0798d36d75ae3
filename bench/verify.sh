#!/usr/bin/env bash
# bench/verify.sh: how fast an auditor verifies an access-log export, whole process.
#
# Writes a synthetic export of N entries (default 1,000,000; realistic entries signed
# with a fixed test key), then times `vault-cli audit verify --file` on it with
# /usr/bin/time and prints entries per second and peak memory.
#
#     bench/verify.sh            # 1,000,000 entries
#     bench/verify.sh 5000000
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-1000000}
TARGET_DIR=${TARGET_DIR:-$repo/target}

(cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-cli && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-core --example synthetic_export)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-verify.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

key=$("$TARGET_DIR/release/examples/synthetic_export" "$n" "$tmp/log.export" 2>/dev/null)
bytes=$(stat -c %s "$tmp/log.export")

# Best of three runs; --ignore-pin so each run verifies the whole file afresh.
best=""
for _ in 1 2 3; do
    VAULT_CONFIG_DIR="$tmp/cfg" /usr/bin/time -f "%e %M" -o "$tmp/time" \
        "$TARGET_DIR/release/vault-cli" audit verify --file "$tmp/log.export" --server-key "$key" --ignore-pin >/dev/null 2>"$tmp/err" \
        || { cat "$tmp/err" >&2; exit 1; }
    read -r secs rss_kb < "$tmp/time"
    if [[ -z $best ]] || awk -v a="$secs" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$secs; best_rss=$rss_kb; fi
done

awk -v n="$n" -v s="$best" -v b="$bytes" -v r="$best_rss" 'BEGIN {
    printf "| entries | export MiB | verify s (best of 3) | entries/s | peak RSS MiB |\n|---:|---:|---:|---:|---:|\n"
    printf "| %d | %.1f | %.3f | %.0f | %.1f |\n", n, b/1048576, s, (s > 0 ? n/s : 0), r/1024
}'
