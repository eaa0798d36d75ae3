#!/usr/bin/env bash
# bench/ingest.sh: throughput and latency of `vault-cli ingest` on many small recordings.
#
#     bench/ingest.sh                      # 10,000 files of 100 KiB, 8 jobs
#     N=2000 SIZE_KIB=100 JOBS=8 bench/ingest.sh
#     RATE=600 bench/ingest.sh             # files per second fed in the latency run
#     PERF=/tmp/p.data TARGET_DIR=target bench/ingest.sh   # profile the throughput run
#                                          # (perf; cargo build --profile release-debug first)
#
# Two runs against one release server on a free loopback port, in a temporary directory:
#
# 1. Throughput. N files of SIZE_KIB KiB (random bytes: a worst case, nothing
#    compresses) are renamed into the spool, then `vault-cli ingest --once --settle-secs 0`
#    starts and runs until the spool is empty. Recordings/s is N over its wall time
#    (process start to exit, logging in included). Every file is removed only after the
#    server confirmed a checked, durable (fsynced blob, committed row and log entry),
#    signed upload; the script then checks the spool is empty, the database holds N
#    signed recordings and no unsigned one, and `vault-server verify` passes (log chain,
#    every blob's size and SHA-256).
# 2. Latency. A running `vault-cli ingest` (watching) is fed N more files by renaming
#    them into the spool at RATE per second; for each, the time from its rename to the
#    ingester's line saying it was uploaded and removed (read from its stderr as it
#    comes). Prints p50, p99 and max.
#
# Needs python3 and sqlite3. Removes everything on exit.

set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-$repo/target}
N=${N:-10000}
SIZE_KIB=${SIZE_KIB:-100}
JOBS=${JOBS:-8}
RATE=${RATE:-500}

die() { echo "ingest.sh: $*" >&2; exit 1; }
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N is a number of files, got '$N'"
[[ $SIZE_KIB =~ ^[1-9][0-9]*$ ]] || die "SIZE_KIB is a whole number of KiB, got '$SIZE_KIB'"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "JOBS is a number, got '$JOBS'"
[[ $RATE =~ ^[1-9][0-9]*$ ]] || die "RATE is files per second, got '$RATE'"
command -v python3 >/dev/null || die "needs python3"
command -v sqlite3 >/dev/null || die "needs sqlite3 (apt-get install sqlite3)"
unset VAULT_SERVER VAULT_USER VAULT_IDENTITY VAULT_CA_CERT VAULT_TRUST_ROOT VAULT_CONFIG_DIR VAULT_SERVER_KEY

if [[ -z ${NO_BUILD:-} ]]; then
    echo "building release binaries into $TARGET_DIR ..." >&2
    (cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
fi
CLI=$TARGET_DIR/release/vault-cli
SERVER=$TARGET_DIR/release/vault-server

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-ingest.XXXXXX")
srv_pid=""
cleanup() {
    if [[ -n $srv_pid ]] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "ingest.sh: failed at line $LINENO" >&2; cat "$tmp/setup.err" >&2 2>/dev/null || true' ERR

data=$tmp/data
declare -A id
for u in alice pbx; do
    id[$u]=$("$CLI" keygen --out "$tmp/$u.key" 2>>"$tmp/setup.err")
    mkdir -p "$tmp/config/$u"
done
root=$("$SERVER" init --data-dir "$data" --admin alice --recipient "${id[alice]}" 2>>"$tmp/setup.err")
export VAULT_TRUST_ROOT=$root
"$SERVER" serve --data-dir "$data" --listen 127.0.0.1:0 2>"$tmp/server.err" &
srv_pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$tmp/server.err")
    [[ -z $port ]] || break
    kill -0 "$srv_pid" 2>/dev/null || { cat "$tmp/server.err" >&2; die "the server did not start"; }
    sleep 0.1
done
[[ -n $port ]] || die "the server did not say where it listens"
url=http://127.0.0.1:$port
as() {
    local u=$1; shift
    VAULT_CONFIG_DIR=$tmp/config/$u "$CLI" --server "$url" --user "$u" --identity "$tmp/$u.key" "$@"
}
as alice login 2>>"$tmp/setup.err"
as alice user add pbx --role recorder --recipient "${id[pbx]}" >/dev/null 2>>"$tmp/setup.err"
case_id=$(as alice case create --kind customer --title Bench --purpose quality 2>>"$tmp/setup.err")
as pbx login 2>>"$tmp/setup.err"
spool=$tmp/spool stage=$tmp/stage
mkdir -p "$spool" "$stage"
echo "server $url, case $case_id, $N files of $SIZE_KIB KiB, $JOBS jobs, scratch $tmp" >&2

# make PREFIX: N files of SIZE_KIB random KiB in the staging directory (same file system
# as the spool, so that moving them in is a rename).
make() {
    python3 - "$stage" "$1" "$N" "$SIZE_KIB" <<'EOF'
import os, sys
stage, prefix, n, kib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    with open(os.path.join(stage, f"{prefix}{i:06d}.wav"), "wb") as f:
        f.write(os.urandom(kib * 1024))
EOF
}

# --- 1. throughput -----------------------------------------------------------------------
make t
find "$stage" -name 't*.wav' -exec mv -t "$spool" {} +
# cpu PID: CPU seconds (user + system) the process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
perf_pid=""
if [[ -n ${PERF:-} ]]; then
    # A system-wide profile of the throughput run (build with --profile release-debug).
    perf record -a -g -e cpu-clock -F 999 -o "$PERF" 2>/dev/null &
    perf_pid=$!
    sleep 1
fi
srv_cpu0=$(cpu "$srv_pid")
t0=$EPOCHREALTIME
TIMEFORMAT='%U %S'
{ time as pbx ingest --watch "$spool" --case "$case_id" --announced signal-tone --jobs "$JOBS" \
    --settle-secs 0 --once 2>"$tmp/ingest1.err" || { tail "$tmp/ingest1.err" >&2; die "ingest failed"; }; } 2>"$tmp/ingest1.time"
t1=$EPOCHREALTIME
srv_cpu=$(awk -v a="$srv_cpu0" -v b="$(cpu "$srv_pid")" 'BEGIN { printf "%.2f", b - a }')
ing_cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$tmp/ingest1.time")
if [[ -n $perf_pid ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
left=$(find "$spool" -maxdepth 1 -type f | wc -l)
((left == 0)) || die "$left files left in the spool"
signed=$(sqlite3 "file:$data/vault.db?mode=ro" "SELECT count(*) FROM recordings WHERE statement IS NOT NULL")
unsigned=$(sqlite3 "file:$data/vault.db?mode=ro" "SELECT count(*) FROM recordings WHERE statement IS NULL")
((signed == N && unsigned == 0)) || die "the vault holds $signed signed and $unsigned unsigned recordings, not $N"
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
rate=$(awk -v n="$N" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
echo "throughput: $N recordings in $secs s = $rate recordings/s (CPU s: ingest $ing_cpu, server $srv_cpu)" >&2

# --- 2. latency --------------------------------------------------------------------------
make l
python3 - "$stage" "$spool" "$RATE" "$tmp/latency" <<EOF
import os, subprocess, sys, threading, time
stage, spool, rate, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
env = dict(os.environ, VAULT_CONFIG_DIR="$tmp/config/pbx")
cmd = ["$CLI", "--server", "$url", "--user", "pbx", "--identity", "$tmp/pbx.key", "ingest",
       "--watch", spool, "--case", "$case_id", "--announced", "signal-tone", "--jobs", "$JOBS"]
p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
done = {}
started = threading.Event()
def read():
    for line in p.stderr:
        t = time.monotonic()
        if line.startswith("vault-cli: ingesting"):
            started.set()
        if line.startswith("vault-cli: uploaded "):
            done[os.path.basename(line.split()[2])] = t
        elif "failed" in line and "moved to" in line:
            print(line, end="", file=sys.stderr)
threading.Thread(target=read, daemon=True).start()
if not started.wait(60):
    sys.exit("the ingester did not start")
names = sorted(n for n in os.listdir(stage) if n.startswith("l"))
appeared = {}
t0 = time.monotonic()
for i, n in enumerate(names):
    due = t0 + i / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    os.rename(os.path.join(stage, n), os.path.join(spool, n))
    appeared[n] = time.monotonic()
fed = time.monotonic() - t0
deadline = time.monotonic() + 600
while len(done) < len(names) and time.monotonic() < deadline:
    time.sleep(0.1)
p.terminate()
p.wait()
if len(done) < len(names):
    sys.exit(f"only {len(done)} of {len(names)} files were uploaded")
lat = sorted((done[n] - appeared[n]) * 1000 for n in names)
q = lambda f: lat[min(len(lat) - 1, max(0, int(f * len(lat) + 0.999999) - 1))]
with open(out, "w") as f:
    f.write(f"{len(names)} {len(names) / fed:.0f} {q(0.5):.1f} {q(0.99):.1f} {lat[-1]:.1f}\n")
EOF
read -r n fed_rate p50 p99 max <"$tmp/latency"
echo "latency: $n files fed at $fed_rate/s: p50 $p50 ms, p99 $p99 ms, max $max ms" >&2

# --- the log and every blob ---------------------------------------------------------------
kill -TERM "$srv_pid"
wait "$srv_pid" || die "the server exited with an error"
srv_pid=""
"$SERVER" verify --data-dir "$data" >"$tmp/verify.out" 2>&1 || { cat "$tmp/verify.out" >&2; die "vault-server verify failed"; }
total=$(sqlite3 "file:$data/vault.db?mode=ro" "SELECT count(*) FROM recordings WHERE statement IS NOT NULL")
echo "verify: ok, $total signed recordings, log intact" >&2

echo
echo "| files | size | jobs | throughput rec/s | CPU s ingest | CPU s server | latency run: fed rec/s | p50 ms | p99 ms | max ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "| $N | $SIZE_KIB KiB | $JOBS | $rate | $ing_cpu | $srv_cpu | $fed_rate | $p50 | $p99 | $max |"
