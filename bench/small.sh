#!/usr/bin/env bash
# bench/small.sh: per-command latency of vault-cli upload and fetch on small recordings.
#
# On a large recording the streaming (encryption, network, fsync) hides what a command
# costs around it; on a small one it does not. For a file of SIZE_KIB KiB (default 1),
# this times ROUNDS (default 40) runs each of
#   - `vault-cli upload` as a recorder, and
#   - `vault-cli fetch` as an investigator granted on the case (of one recording
#     uploaded before the rounds),
# each as a whole process, wall clock (bash's $EPOCHREALTIME just before and just after,
# no fork in between), and prints a markdown table row: median and p90 (nearest rank)
# in milliseconds. Upload and fetch alternate which goes first from round to round.
#
# Run it from anywhere in the repository:
#     bench/small.sh
#     ROUNDS=100 bench/small.sh                          # rounds per command (default 40)
#     TARGET_DIR=/tmp/target-bench bench/small.sh        # build into another target dir
#     NO_BUILD=1 TARGET_DIR=/work/target-old bench/small.sh   # binaries built earlier (an A/B)
#     LABEL=old bench/small.sh                           # first column (default: git describe)
#
# It works on the code before signed trust too (keygen printed an age1... recipient,
# init took it and printed nothing, there was no VAULT_TRUST_ROOT), so the same script
# can be copied into a worktree of an older commit for an A/B comparison; the `trust`
# column says which kind of code it measured. With signed trust, every vault-cli run
# gets VAULT_TRUST_ROOT, the fingerprint `vault-server init` printed. Both set up the
# same vault: one admin (alice), an investigator (bob) and a recorder (pbx), each with
# a config dir (token cache) of their own, each logged in once before the rounds.
#
# It builds the release binaries, starts a private server on a free loopback port
# (127.0.0.1 only) in a temporary directory under ${TMPDIR:-/tmp} and removes
# everything on exit.

set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C  # $EPOCHREALTIME with a '.', sort and awk numbers with a '.'

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-$repo/target}
ROUNDS=${ROUNDS:-40}
SIZE_KIB=${SIZE_KIB:-1}
LABEL=${LABEL:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo "?")}

die() { echo "small.sh: $*" >&2; exit 1; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS is a number of rounds, got '$ROUNDS'"
[[ $SIZE_KIB =~ ^[1-9][0-9]*$ ]] || die "SIZE_KIB is a whole number of KiB, got '$SIZE_KIB'"
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 or later (\$EPOCHREALTIME)"
# Nothing from the caller's environment may point the CLI elsewhere.
unset VAULT_SERVER VAULT_USER VAULT_IDENTITY VAULT_CA_CERT VAULT_TRUST_ROOT VAULT_CONFIG_DIR VAULT_SERVER_KEY

# --- build ------------------------------------------------------------------------------
if [[ -n ${NO_BUILD:-} ]]; then
    echo "using the binaries already in $TARGET_DIR/release (NO_BUILD)" >&2
else
    echo "building release binaries of $repo into $TARGET_DIR ..." >&2
    (cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
fi
CLI=$TARGET_DIR/release/vault-cli
SERVER=$TARGET_DIR/release/vault-server

# --- scratch space and cleanup -----------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-small.XXXXXX")
srv_pid=""
cleanup() {
    if [[ -n $srv_pid ]] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# Setup commands send their messages to $tmp/setup.err; show them if a step fails.
trap 'echo "small.sh: failed at line $LINENO" >&2; cat "$tmp/setup.err" >&2 2>/dev/null || true' ERR

data=$tmp/data

# --- identities, vault, server -----------------------------------------------------------
# id: what keygen printed, the public id (vault1...) with signed trust, the age
# recipient (age1...) before it; either is what init and `user add` take.
declare -A id
for u in alice bob pbx; do
    id[$u]=$("$CLI" keygen --out "$tmp/$u.key" 2>>"$tmp/setup.err")
    mkdir -p "$tmp/config/$u"
done
case ${id[alice]} in
vault1*) trust=signed ;;
age1*) trust=none ;;
*) die "keygen printed neither a vault1... public id nor an age1... recipient: '${id[alice]}'" ;;
esac
if [[ $trust == signed ]]; then
    root=$("$SERVER" init --data-dir "$data" --admin alice --recipient "${id[alice]}" 2>>"$tmp/setup.err")
    [[ $root == SHA256:* ]] || die "init printed no trust root fingerprint: '$root'"
    export VAULT_TRUST_ROOT=$root
else
    "$SERVER" init --data-dir "$data" --admin alice --recipient "${id[alice]}" >/dev/null 2>>"$tmp/setup.err"
fi

"$SERVER" serve --data-dir "$data" --listen 127.0.0.1:0 2>"$tmp/server.err" &
srv_pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$tmp/server.err")
    [[ -z $port ]] || break
    kill -0 "$srv_pid" 2>/dev/null || { cat "$tmp/server.err" >&2; die "the server did not start"; }
    sleep 0.1
done
[[ -n $port ]] || { cat "$tmp/server.err" >&2; die "the server did not say where it listens"; }
url=http://127.0.0.1:$port
echo "server $url (pid $srv_pid), trust: $trust${VAULT_TRUST_ROOT:+ ($VAULT_TRUST_ROOT)}, scratch $tmp" >&2

# as USER ARGS...: vault-cli as USER against the bench server, with USER's own config dir.
as() {
    local u=$1; shift
    VAULT_CONFIG_DIR=$tmp/config/$u "$CLI" --server "$url" --user "$u" --identity "$tmp/$u.key" "$@"
}

# --- users, case, grant; everyone logged in once -----------------------------------------
as alice login 2>>"$tmp/setup.err"
as alice user add bob --role investigator --recipient "${id[bob]}" >/dev/null 2>>"$tmp/setup.err"
as alice user add pbx --role recorder --recipient "${id[pbx]}" >/dev/null 2>>"$tmp/setup.err"
as bob login 2>>"$tmp/setup.err"
as pbx login 2>>"$tmp/setup.err"
case_id=$(as alice case create --kind customer --title Bench --purpose quality 2>>"$tmp/setup.err")
as alice grant "$case_id" bob --reason bench >/dev/null 2>>"$tmp/setup.err"

in=$tmp/in.bin out=$tmp/out.bin
head -c $((SIZE_KIB * 1024)) /dev/urandom >"$in"
# What every fetch reads, uploaded untimed; and one untimed fetch of it, which also
# checks the round trip.
rec0=$(as pbx upload "$case_id" "$in" --announced signal-tone 2>>"$tmp/setup.err")
as bob fetch "$rec0" --reason bench --out "$out" >/dev/null 2>>"$tmp/setup.err"
cmp -s "$in" "$out" || die "fetched $rec0 differs from $in"
rm -f "$out"
echo "case $case_id, recording $rec0; $ROUNDS rounds of $SIZE_KIB KiB" >&2

# --- rounds ------------------------------------------------------------------------------
# failed NAME: the timed step NAME failed; show its messages and stop.
failed() { echo "small.sh: $1 failed:" >&2; cat "$tmp/step.err" >&2; exit 1; }
# Microseconds between two $EPOCHREALTIME values (seconds.micros, always 6 digits).
elapsed_us() { echo $((${2/./} - ${1/./})); }

up=() fe=()
time_upload() {
    local t0 t1
    t0=$EPOCHREALTIME
    as pbx upload "$case_id" "$in" --announced signal-tone >"$tmp/rec" 2>"$tmp/step.err" || failed upload
    t1=$EPOCHREALTIME
    [[ -s $tmp/rec ]] || failed upload
    up+=("$(elapsed_us "$t0" "$t1")")
}
time_fetch() {
    local t0 t1
    t0=$EPOCHREALTIME
    as bob fetch "$rec0" --reason bench --out "$out" >/dev/null 2>"$tmp/step.err" || failed fetch
    t1=$EPOCHREALTIME
    cmp -s "$in" "$out" || die "fetched $rec0 differs from $in"
    rm -f "$out"
    fe+=("$(elapsed_us "$t0" "$t1")")
}
for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then time_upload; time_fetch; else time_fetch; time_upload; fi
    awk -v r="$round" -v u="${up[-1]}" -v f="${fe[-1]}" \
        'BEGIN { printf "   round %d: upload %.1f ms, fetch %.1f ms\n", r, u / 1000, f / 1000 }' >&2
done

# --- stop the server ---------------------------------------------------------------------
kill -TERM "$srv_pid"
wait "$srv_pid" || die "the server exited with an error: $(cat "$tmp/server.err")"
srv_pid=""

# Median and p90 (nearest rank: the ceil(0.9 n)-th smallest) in ms, of microseconds.
median_ms() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 1000 }'; }
p90_ms() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { k = int(0.9 * NR); if (k < 0.9 * NR) k++; printf "%.1f", v[k] / 1000 }'; }

echo
echo "| code | trust | size | rounds | upload median ms | upload p90 ms | fetch median ms | fetch p90 ms |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
echo "| $LABEL | $trust | $SIZE_KIB KiB | $ROUNDS | $(median_ms "${up[@]}") | $(p90_ms "${up[@]}") | $(median_ms "${fe[@]}") | $(p90_ms "${fe[@]}") |"
