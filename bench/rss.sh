#!/usr/bin/env bash
# bench/rss.sh: peak memory and wall time of the vault for large recordings.
#
# What it measures, for each file size given in MiB (default: 256 1024):
#   - `vault-cli upload` (encrypt + stream to the server): wall time and the CLI's peak
#     RSS ("Maximum resident set size" from /usr/bin/time -v);
#   - `vault-cli fetch` (download + decrypt to a file): wall time and the CLI's peak RSS;
#   - plain `age -e` / `age -d` of the same file, writing to a file on the same disk and
#     syncing it as the vault does, as a yardstick, and the ratios upload/age -e and
#     fetch/age -d;
#   - the server's peak RSS so far (VmHWM) after each size, and, once the server has
#     been stopped with SIGTERM, its peak RSS over the whole run (/usr/bin/time -v).
# Streaming code should show peak RSS that stays flat as the file size grows.
#
# Run it from anywhere in the repository:
#     bench/rss.sh 256 1024
#     TARGET_DIR=/tmp/target-bench bench/rss.sh 64     # build into another target dir
#     REPEAT=8 bench/rss.sh 1024                         # rounds per size (default 4)
#
# It builds the release binaries, starts a private server on a free loopback port in a
# temporary directory under ${TMPDIR:-/tmp} and removes everything on exit. It needs
# about 5x the largest size plus the sum of all sizes of free disk space there, and
# /usr/bin/time (GNU time) and age.

set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-$repo/target}
REPEAT=${REPEAT:-4}
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(256 1024)

die() { echo "rss.sh: $*" >&2; exit 1; }

[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "REPEAT is a number of rounds, got '$REPEAT'"
for s in "${sizes[@]}"; do
    [[ $s =~ ^[1-9][0-9]*$ ]] || die "sizes are whole MiB, got '$s'"
done
[[ -x /usr/bin/time ]] || die "needs GNU time at /usr/bin/time (apt-get install time)"
command -v age >/dev/null || die "needs age (apt-get install age)"

# --- build ------------------------------------------------------------------------------
echo "building release binaries into $TARGET_DIR ..." >&2
(cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
CLI=$TARGET_DIR/release/vault-cli
SERVER=$TARGET_DIR/release/vault-server

# --- scratch space and cleanup -----------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-rss.XXXXXX")
srv_pid=""   # the vault-server process
time_pid=""  # the /usr/bin/time wrapping it
cleanup() {
    if [[ -n $srv_pid ]] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null || true
    fi
    [[ -z $time_pid ]] || wait "$time_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
# Setup commands send their messages to $tmp/setup.err; show them if a step fails.
trap 'echo "rss.sh: failed at line $LINENO" >&2; cat "$tmp/setup.err" >&2 2>/dev/null || true' ERR

# Input + age copy + fetched copy of the largest file, plus the server's copy.
need_mib=0 max=0
for s in "${sizes[@]}"; do
    need_mib=$((need_mib + s))
    if ((s > max)); then max=$s; fi
done
need_mib=$((need_mib + 5 * max + 64))
free_mib=$(df -Pm "$tmp" | awk 'NR == 2 { print $4 }')
((free_mib >= need_mib)) || die "needs ~$need_mib MiB free in $tmp, has $free_mib MiB"

export VAULT_CONFIG_DIR=$tmp/config  # token cache of the CLI
data=$tmp/data
mkdir -p "$VAULT_CONFIG_DIR"

# --- helpers -----------------------------------------------------------------------------
# timed NAME CMD...: run CMD under /usr/bin/time -v into $tmp/NAME.time; stdout passes
# through, stderr goes to $tmp/NAME.err and is shown if CMD fails.
# Each timed step starts from the same page-cache state when we may drop caches (root):
# on virtual machines, writing into a full page cache can cost twice as much as writing
# into a clean one, which would otherwise favour whichever step happens to run first.
settle() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then echo 3 > /proc/sys/vm/drop_caches; fi
}

timed() {
    local name=$1; shift
    settle
    if ! /usr/bin/time -v -o "$tmp/$name.time" "$@" 2>"$tmp/$name.err"; then
        echo "rss.sh: failed: $*" >&2
        cat "$tmp/$name.err" "$tmp/$name.time" >&2
        exit 1
    fi
}
# Wall time in seconds from a time -v report ("h:mm:ss" or "m:ss.cc").
wall_s() {
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        printf "%.2f", s
    }' "$1"
}
# Peak RSS in MiB from a time -v report.
rss_mib() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# --- identities, vault, server -----------------------------------------------------------
# recipient: the public id (vault1...) the vault enrols; age_recipient: the same
# identity's age1... recipient, for the age tool.
declare -A recipient age_recipient
for u in alice bob pbx; do
    recipient[$u]=$("$CLI" keygen --out "$tmp/$u.key" 2>>"$tmp/setup.err")
    age_recipient[$u]=$(sed -n 's/^# public key: //p' "$tmp/$u.key")
done
"$SERVER" init --data-dir "$data" --admin alice --recipient "${recipient[alice]}" >/dev/null 2>>"$tmp/setup.err"

/usr/bin/time -v -o "$tmp/server.time" \
    "$SERVER" serve --data-dir "$data" --listen 127.0.0.1:0 2>"$tmp/server.err" &
time_pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$tmp/server.err")
    [[ -z $port ]] || break
    kill -0 "$time_pid" 2>/dev/null || { cat "$tmp/server.err" >&2; die "the server did not start"; }
    sleep 0.1
done
[[ -n $port ]] || { cat "$tmp/server.err" >&2; die "the server did not say where it listens"; }
srv_pid=$(ps -o pid= --ppid "$time_pid" | tr -d ' ')
[[ -n $srv_pid ]] || die "cannot find the server process under /usr/bin/time ($time_pid)"
url=http://127.0.0.1:$port
echo "server $url (pid $srv_pid), scratch $tmp" >&2
# vault-cli as each user against the bench server.
as_alice=("$CLI" --server "$url" --user alice --identity "$tmp/alice.key")
as_bob=("$CLI" --server "$url" --user bob --identity "$tmp/bob.key")
as_pbx=("$CLI" --server "$url" --user pbx --identity "$tmp/pbx.key")

# --- users and case ----------------------------------------------------------------------
"${as_alice[@]}" user add bob --role investigator --recipient "${recipient[bob]}" >/dev/null 2>>"$tmp/setup.err"
"${as_alice[@]}" user add pbx --role recorder --recipient "${recipient[pbx]}" >/dev/null 2>>"$tmp/setup.err"
case_id=$("${as_alice[@]}" case create --kind customer --title Bench --purpose quality 2>>"$tmp/setup.err")
echo "case $case_id" >&2

# --- per size ----------------------------------------------------------------------------
# Each size runs REPEAT rounds of upload, fetch, age -e, age -d, interleaved, and the table
# gives the median wall time of each step (single runs on a virtual disk vary by 20-30%)
# and the largest peak RSS seen in any round.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
rows=()
# The four steps of a round run in a different order each round, rows of a Williams
# square: over every four rounds each step runs once in each position and once right
# after each other step. On this virtual machine the step that came before matters more
# than the code: with a fixed order, whichever vault build ran first in an interleaved
# A/B comparison was 0.7 s slower per GiB, and swapping the builds swapped the result.
# Balancing the order spreads that effect evenly over the vault and age. Use a multiple
# of 4 for REPEAT.
orders=("up fe ad ae" "fe ae up ad" "ae ad fe up" "ad up ae fe")
for mib in "${sizes[@]}"; do
    echo "== $mib MiB, $REPEAT rounds" >&2
    in=$tmp/in-$mib.bin out=$tmp/out-$mib.bin enc=$tmp/in-$mib.age
    dd if=/dev/urandom of="$in" bs=1M count="$mib" iflag=fullblock status=none
    # What the fetch and age -d steps read: one upload and one age file, made untimed.
    rec0=$("${as_pbx[@]}" upload "$case_id" "$in" --announced signal-tone 2>>"$tmp/setup.err")
    "${as_alice[@]}" grant "$case_id" bob --reason bench >/dev/null 2>>"$tmp/setup.err" || true
    enc0=$tmp/in0-$mib.age
    age -e -r "${age_recipient[alice]}" -o "$enc0" "$in"
    up=() fe=() ae=() ad=() up_rss=() fe_rss=()
    for round in $(seq "$REPEAT"); do
        order=${orders[$(((round - 1) % 4))]}
        for step in $order; do
            case $step in
            up)
                rec=$(timed "upload-$mib" "${as_pbx[@]}" upload "$case_id" "$in" --announced signal-tone)
                # Deleted like age's output below, so both write into space just freed:
                # a run that kept every blob slowed down round after round (1 GiB upload
                # 1.8 s -> 2.3 s) while age did not. The server does not read it again.
                rm -f "$data/blobs/$rec.age"
                ;;
            fe)
                timed "fetch-$mib" "${as_bob[@]}" fetch "$rec0" --reason bench --out "$out" >/dev/null
                cmp "$in" "$out" || die "fetched $rec0 differs from $in"
                rm -f "$out"
                ;;
            # The yardstick does what the vault does with its output: write it to a file
            # on the same disk and make it durable (the server fsyncs each upload, the CLI
            # each fetch).
            ae)
                timed "age-e-$mib" sh -c 'age -e -r "$1" -o "$2" "$3" && sync "$2"' _ "${age_recipient[alice]}" "$enc" "$in"
                rm -f "$enc"
                ;;
            ad)
                timed "age-d-$mib" sh -c 'age -d -i "$1" -o "$2" "$3" && sync "$2"' _ "$tmp/alice.key" "$out" "$enc0"
                cmp "$in" "$out" || die "age -d of $enc0 differs from $in"
                rm -f "$out"
                ;;
            esac
        done
        up+=("$(wall_s "$tmp/upload-$mib.time")") fe+=("$(wall_s "$tmp/fetch-$mib.time")")
        ae+=("$(wall_s "$tmp/age-e-$mib.time")") ad+=("$(wall_s "$tmp/age-d-$mib.time")")
        up_rss+=("$(rss_mib "$tmp/upload-$mib.time")") fe_rss+=("$(rss_mib "$tmp/fetch-$mib.time")")
        echo "   round $round ($order): upload ${up[-1]} s, fetch ${fe[-1]} s, age -e ${ae[-1]} s, age -d ${ad[-1]} s" >&2
    done
    rm -f "$in" "$enc0" "$data/blobs/$rec0.age"
    up_s=$(median "${up[@]}") fe_s=$(median "${fe[@]}") ae_s=$(median "${ae[@]}") ad_s=$(median "${ad[@]}")
    srv_hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$srv_pid/status")
    rows+=("| $mib | $up_s | $(maxof "${up_rss[@]}") | $fe_s | $(maxof "${fe_rss[@]}") \
| $ae_s | $ad_s | $(ratio "$up_s" "$ae_s") | $(ratio "$fe_s" "$ad_s") | $srv_hwm |")
done

# --- stop the server; its peak covers the whole run --------------------------------------
kill -TERM "$srv_pid"
wait "$time_pid" || die "the server exited with an error: $(cat "$tmp/server.err")"
srv_pid="" time_pid=""

echo
echo "| size MiB | upload s | upload CLI peak RSS MiB | fetch s | fetch CLI peak RSS MiB | age -e s | age -d s | upload / age -e | fetch / age -d | server peak RSS so far MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "Server peak RSS over the whole run: $(rss_mib "$tmp/server.time") MiB"
