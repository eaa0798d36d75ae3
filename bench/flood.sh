#!/usr/bin/env bash
# bench/flood.sh: what unauthenticated floods and slow connections do to the server and to
# the people who use it meanwhile (issue 13).
#
# It sets up a private vault (two admins, alice and carol, as quickstart.sh does), starts
# a release vault-server on a free loopback port, logs alice in, and runs two phases of
# DURATION seconds each (default 30):
#   - baseline: alice works alone;
#   - flood: the same, while bench/flood.py, from this machine, floods the server without
#     credentials from CONC keep-alive connections (default 256), shared out over these
#     kinds of request:
#       challenge_known    POST /v1/login/challenge for alice (an enrolled name)
#       challenge_unknown  POST /v1/login/challenge for a new unknown name each time
#       login_garbage      POST /v1/login with a made-up challenge id and answer
#       cases_no_token     GET /v1/cases without a token
#       cases_bogus_token  GET /v1/cases with a token whose JWT header `alg` is ALG_BYTES
#                          long (default 300000; the whole header is then ~400 KB)
#       malformed_json     POST /v1/login/challenge with a body that is not JSON
#       unknown_route      GET /v1/no-such-route/...
#       wrong_method       DELETE /v1/cases
#     and opens up to SLOW connections (default 5000) that send a partial request head
#     and then one byte every TRICKLE seconds (default 5). The flood starts RAMP seconds
#     (default 3) before alice's measurements and stops a second after them; at its end,
#     before letting go, it looks at every slow connection: still held, closed by the
#     server, or answered by it.
# In each phase alice measures, concurrently:
#   - a direct authenticated request: GET /v1/cases with her session token (read from
#     vault-cli's token cache), a fresh connection each time, one every LEGIT_GAP seconds
#     (default 0.1): latency p50/p99 and failures;
#   - a full `vault-cli login` (process included, challenge and answer), one every
#     LOGIN_GAP seconds (default 3; the server allows one address 10 challenges for a
#     name, then one every 3 s): latency p50/p99 and failures.
# The attack comes from FLOOD_ADDRS loopback addresses (default 1: 127.0.1.1; up to
# 250 per 127.0.N.x block), never from alice's 127.0.0.1. (An attacker behind the same
# address as the user, a shared NAT, shares the user's per-address limits.)
# It also reports the access log's growth in each phase (rows, bytes of the rows, growth
# of the database files, per minute; and the server's stderr), the flood requests sent
# and answered by status per kind, the server's open file descriptors and peak RSS
# (VmHWM), and whether the server still answers after the flood.
#
# Run it from anywhere in the repository (about 80 s with the defaults):
#     bench/flood.sh
#     DURATION=60 CONC=512 SLOW=10000 bench/flood.sh
#     FLOOD_ADDRS=200 bench/flood.sh         # the attack from 200 addresses
#     KINDS=cases_bogus_token,challenge_known SLOW=0 bench/flood.sh   # some kinds only
#     TARGET_DIR=/tmp/target-bench bench/flood.sh                     # build into another target dir
#     NO_BUILD=1 TARGET_DIR=/tmp/flood-base-target bench/flood.sh     # binaries built earlier (an A/B)
#     SERVER_NOFILE=1024 bench/flood.sh      # the server's fd limit (default: the script's, raised)
#     LABEL=before bench/flood.sh            # names the run (default: git describe)
#     KEEP=1 bench/flood.sh                  # keep the scratch dir (server.err, results/); it can be GBs
# The last line of output is `FLOOD_JSON {...}`: everything the summary says, as JSON.
#
# Everything runs on 127.0.0.1 only, in a temporary directory under ${TMPDIR:-/tmp} that
# is removed on exit, with the server. Needs python3 (3.11, standard library only). The
# load generator shares the machine with the server: on a small machine it takes CPU
# the server would otherwise have, which is part of what the legitimate figures show.

set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C  # $EPOCHREALTIME with a '.'

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-$repo/target}
DURATION=${DURATION:-30}
RAMP=${RAMP:-3}
CONC=${CONC:-256}
SLOW=${SLOW:-5000}
TRICKLE=${TRICKLE:-5}
ALG_BYTES=${ALG_BYTES:-300000}
KINDS=${KINDS:-challenge_known,challenge_unknown,login_garbage,cases_no_token,cases_bogus_token,malformed_json,unknown_route,wrong_method}
LEGIT_GAP=${LEGIT_GAP:-0.1}
LOGIN_GAP=${LOGIN_GAP:-3}
export FLOOD_ADDRS=${FLOOD_ADDRS:-1}
SERVER_NOFILE=${SERVER_NOFILE:-}
LABEL=${LABEL:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo "?")}
FLOOD_PY=$repo/bench/flood.py

die() { echo "flood.sh: $*" >&2; exit 1; }

for v in DURATION RAMP CONC SLOW ALG_BYTES; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v is a whole number, got '${!v}'"
done
((DURATION > 0)) || die "DURATION must be at least 1 second"
for v in TRICKLE LEGIT_GAP LOGIN_GAP; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v is a number of seconds, got '${!v}'"
done
[[ -z $SERVER_NOFILE || $SERVER_NOFILE =~ ^[1-9][0-9]*$ ]] || die "SERVER_NOFILE is a number, got '$SERVER_NOFILE'"
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 or later (\$EPOCHREALTIME)"
command -v python3 >/dev/null || die "needs python3"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "needs python 3.11 or later"
# Nothing from the caller's environment may point the CLI elsewhere.
unset VAULT_SERVER VAULT_USER VAULT_IDENTITY VAULT_CA_CERT VAULT_TRUST_ROOT VAULT_CONFIG_DIR VAULT_SERVER_KEY

# As many file descriptors as we may have: the slow connections are ours too. The server
# inherits this unless SERVER_NOFILE says otherwise.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 1048576 2>/dev/null || true
client_nofile=$(ulimit -n)

# --- build ------------------------------------------------------------------------------
if [[ -n ${NO_BUILD:-} ]]; then
    echo "using the binaries already in $TARGET_DIR/release (NO_BUILD)" >&2
else
    echo "building release binaries of $repo into $TARGET_DIR ..." >&2
    (cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
fi
CLI=$TARGET_DIR/release/vault-cli
SERVER=$TARGET_DIR/release/vault-server
[[ -x $CLI && -x $SERVER ]] || die "no vault-cli and vault-server in $TARGET_DIR/release"

# --- scratch space and cleanup -----------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-flood.XXXXXX")
res=$tmp/results
mkdir -p "$res"
srv_pid=""
http_pid="" flood_pid=""  # the legitimate user's meter and the flood, while they run
cleanup() {
    local p
    for p in $http_pid $flood_pid; do
        kill -TERM "$p" 2>/dev/null || true
    done
    if [[ -n $srv_pid ]] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    if [[ -n ${KEEP:-} ]]; then
        echo "flood.sh: kept $tmp (KEEP): server.err, results/" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
# Setup commands send their messages to $tmp/setup.err; show them if a step fails.
trap 'echo "flood.sh: failed at line $LINENO" >&2; cat "$tmp/setup.err" >&2 2>/dev/null || true' ERR

data=$tmp/data
db=$data/vault.db

# The bogus-token flood writes each ~400 KB token's header into the access log and the
# server's stderr (on the code before issue 13): about 3 GB a minute on 2 CPUs.
flood_s=$((RAMP + DURATION + 1))
need_mib=$((flood_s * 60 + 256))
free_mib=$(df -Pm "$tmp" | awk 'NR == 2 { print $4 }')
((free_mib >= need_mib)) || die "needs ~$need_mib MiB free in $tmp for a $flood_s s flood, has $free_mib MiB"

# --- identities, vault, server -----------------------------------------------------------
declare -A id
for u in alice carol; do
    id[$u]=$("$CLI" keygen --out "$tmp/$u.key" 2>>"$tmp/setup.err")
    mkdir -p "$tmp/config/$u"
done
case ${id[alice]} in
vault1*) trust=signed ;;
age1*) trust=none ;;
*) die "keygen printed neither a vault1... public id nor an age1... recipient: '${id[alice]}'" ;;
esac
init_out=$("$SERVER" init --data-dir "$data" --admin alice --recipient "${id[alice]}" \
    --admin carol --recipient "${id[carol]}" 2>>"$tmp/setup.err")
if [[ $trust == signed ]]; then
    [[ $init_out == SHA256:* ]] || die "init printed no trust root fingerprint: '$init_out'"
    export VAULT_TRUST_ROOT=$init_out
fi

if [[ -n $SERVER_NOFILE ]]; then
    (ulimit -n "$SERVER_NOFILE" && exec "$SERVER" serve --data-dir "$data" --listen 127.0.0.1:0) 2>"$tmp/server.err" &
else
    "$SERVER" serve --data-dir "$data" --listen 127.0.0.1:0 2>"$tmp/server.err" &
fi
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
server_nofile=$(awk '/^Max open files/ { print $4 }' "/proc/$srv_pid/limits")
echo "server $url (pid $srv_pid, $server_nofile fds), trust: $trust, scratch $tmp" >&2

# as USER ARGS...: vault-cli as USER against the bench server, with USER's own config dir.
as() {
    local u=$1; shift
    VAULT_CONFIG_DIR=$tmp/config/$u "$CLI" --server "$url" --user "$u" --identity "$tmp/$u.key" "$@"
}

as alice login 2>>"$tmp/setup.err"
token_file=$(ls "$tmp"/config/alice/tokens/*.json)
[[ -f $token_file ]] || die "vault-cli login left no token in $tmp/config/alice/tokens"
# One authorised request first, so a setup mistake is not measured.
python3 "$FLOOD_PY" legit "$url" "$token_file" 0.001 0 "$tmp/check.json"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(d["ok"] != 1)' "$tmp/check.json" \
    || die "alice's GET /v1/cases failed: $(cat "$tmp/check.json")"

# --- phases ------------------------------------------------------------------------------
# Microseconds between two $EPOCHREALTIME values (seconds.micros, always 6 digits).
elapsed_us() { echo $((${2/./} - ${1/./})); }

# logins SECONDS FILE: `vault-cli login` as alice in a loop for SECONDS; appends
# "START_US MICROSECONDS EXIT_STATUS" per login to FILE (START_US: when it started,
# from the start of the loop).
logins() {
    local start end t0 t1 rc
    start=${EPOCHREALTIME/./}
    end=$((start + $1 * 1000000))
    while ((${EPOCHREALTIME/./} < end)); do
        rc=0
        t0=$EPOCHREALTIME
        timeout 30 env VAULT_CONFIG_DIR="$tmp/config/alice" "$CLI" --server "$url" --user alice \
            --identity "$tmp/alice.key" login >/dev/null 2>>"$2.err" || rc=$?
        t1=$EPOCHREALTIME
        echo "$((${t0/./} - start)) $(elapsed_us "$t0" "$t1") $rc" >>"$2"
        sleep "$LOGIN_GAP"
    done
}

# logsize [SINCE_SEQ]: the access log's size now, as JSON.
logsize() { python3 "$FLOOD_PY" logsize "$db" ${1:+--since-seq "$1"}; }
seq_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["max_seq"])' "$1"; }
srv_err_bytes() { stat -c %s "$tmp/server.err"; }

# legit PHASE: alice's two measurements for DURATION seconds, concurrently.
legit() {
    python3 "$FLOOD_PY" legit "$url" "$token_file" "$DURATION" "$LEGIT_GAP" "$res/$1-http.json" &
    http_pid=$!
    : >"$res/$1-login.txt"
    logins "$DURATION" "$res/$1-login.txt"
    wait "$http_pid"
    http_pid=""
}

echo "== baseline: ${DURATION} s of alice alone" >&2
logsize >"$res/baseline-log0.json"
e0=$(srv_err_bytes)
legit baseline
logsize "$(seq_of "$res/baseline-log0.json")" >"$res/baseline-log1.json"
baseline_srv_log=$(($(srv_err_bytes) - e0))

echo "== flood: $CONC connections ($KINDS), $SLOW slow connections; alice measures for ${DURATION} s after ${RAMP} s" >&2
logsize >"$res/flood-log0.json"
e0=$(srv_err_bytes)
python3 "$FLOOD_PY" flood "$res/flood-flood.json" --url "$url" --seconds "$flood_s" \
    --conc "$CONC" --kinds "$KINDS" --known alice --alg-bytes "$ALG_BYTES" --slow "$SLOW" \
    --trickle "$TRICKLE" --server-pid "$srv_pid" 2>"$tmp/flood.err" &
flood_pid=$!
sleep "$RAMP"
legit flood
wait "$flood_pid" || { cat "$tmp/flood.err" >&2; die "the flood generator failed"; }
flood_pid=""
logsize "$(seq_of "$res/flood-log0.json")" >"$res/flood-log1.json"
flood_srv_log=$(($(srv_err_bytes) - e0))

# --- after the flood ---------------------------------------------------------------------
alive=no answers=no
if kill -0 "$srv_pid" 2>/dev/null; then
    alive=yes
    sleep 1
    python3 "$FLOOD_PY" legit "$url" "$token_file" 0.001 0 "$tmp/after.json"
    answers=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print("yes" if d["ok"] else json.dumps(d["failures"]))' "$tmp/after.json")
fi
vmhwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$srv_pid/status" 2>/dev/null || true)
vmrss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$srv_pid/status" 2>/dev/null || true)
fds_after=$( (ls "/proc/$srv_pid/fd" 2>/dev/null || true) | wc -l)

python3 - "$res/meta.json" <<PY
import json, sys
json.dump({
    "label": "$LABEL", "trust": "$trust", "server_pid": $srv_pid, "url": "$url",
    "duration_s": $DURATION, "ramp_s": $RAMP, "conc": $CONC, "slow": $SLOW, "trickle_s": $TRICKLE,
    "alg_bytes": $ALG_BYTES, "kinds": "$KINDS", "legit_gap_s": $LEGIT_GAP, "login_gap_s": $LOGIN_GAP,
    "server_nofile": "$server_nofile", "client_nofile": "$client_nofile", "cpus": $(nproc),
    "baseline_server_log_bytes": $baseline_srv_log, "flood_server_log_bytes": $flood_srv_log,
    "alive_after_flood": "$alive", "answers_after_flood": "$answers",
    "vmhwm_kib": ${vmhwm:-None}, "vmrss_kib": ${vmrss:-None}, "fds_after": ${fds_after:-None},
}, open(sys.argv[1], "w"))
PY

echo >&2
if [[ -s $tmp/server.err ]] && (($(wc -l <"$tmp/server.err") > 1)); then
    echo "server stderr (last 5 of $(wc -l <"$tmp/server.err") lines):" >&2
    tail -n 5 "$tmp/server.err" | cut -c1-300 >&2
fi
for f in "$res"/*-login.txt.err; do
    grep -v '^logged in as ' "$f" >"$f.failed" || continue
    echo "vault-cli login errors in $(basename "$f" .txt.err) (distinct, first 5):" >&2
    sort "$f.failed" | uniq -c | sort -rn | head -5 | cut -c1-300 >&2
done
python3 "$FLOOD_PY" summary "$res"

# --- stop the server ---------------------------------------------------------------------
if [[ $alive == yes ]]; then
    kill -TERM "$srv_pid"
    wait "$srv_pid" || echo "flood.sh: the server exited with status $? on SIGTERM" >&2
fi
srv_pid=""
