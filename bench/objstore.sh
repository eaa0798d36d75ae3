#!/usr/bin/env bash
# bench/objstore.sh: the vault with its ciphertext in an S3-compatible object store
# against the same vault with its ciphertext in the data dir's blobs/ (issue "S3-compatible
# object storage").
#
# Two vaults, each with a vault-server of its own and a data dir of its own: "local"
# (blobs/ in the data dir) and "S3" (`--blob-store s3://vault/bench` against a private
# s3s-fs, a real S3 server keeping objects as files, on a free loopback port).
#
# 1. Large recordings, for each file size given in MiB (default: 256 1024), REPEAT rounds
#    (default 4) of six interleaved steps: `vault-cli upload` and `vault-cli fetch` on
#    each vault, and plain `age -e` / `age -d` of the same file (written to a file on the
#    same disk and synced, as the vault does) as a yardstick. Each step's wall time and
#    peak RSS come from /usr/bin/time -v; the table gives the median wall time of each
#    step, the ratios S3/local, the CLI's largest peak RSS of any round, and each
#    server's and s3s-fs's peak RSS so far (VmHWM) after each size. Every fetched file is
#    compared with the original (cmp).
# 2. Many uploads at once: FILES uploads (default: CONCURRENCY) of CONC_MIB MiB each
#    (default 1; distinct random files), at most CONCURRENCY (default 100) `vault-cli
#    upload` processes at a time (with the defaults: 100 started at once), on each vault,
#    BATCHES batches (default 2, which vault goes first alternates). Each upload is timed
#    as a whole process (bash's $EPOCHREALTIME before and after); the table gives
#    recordings/s (uploads / wall time of the whole batch, median over batches) and the
#    p50 / p99 latency of one upload (nearest rank, over every batch). Every upload must
#    succeed: the script fails otherwise, showing the failed one's messages.
#    On a 2-core machine the CONCURRENCY CLI processes (each encrypting, hashing and
#    signing) compete with the server, and with s3s-fs, for the same two cores: this
#    measures the whole machine under that load more than the server alone.
# At the end each server is stopped with SIGTERM, and its peak RSS over the whole run is
# what /usr/bin/time -v reports.
#
# The servers are started with their connection and rate limits raised (a recorder's
# burst of uploads from one address would otherwise meet --max-connections-per-address,
# 64 by default) so that none of the concurrent uploads is refused.
#
# Between rounds the uploaded blob is deleted so the disk does not fill: DATA/blobs/REC.age
# for the local vault and, behind the S3 server's back, the file s3s-fs keeps object
# bench/blobs/REC.age of bucket vault in (ROOT/vault/bench/blobs/REC.age). The servers
# never read those recordings again.
#
# Run it from anywhere in the repository:
#     bench/objstore.sh 256 1024
#     REPEAT=6 bench/objstore.sh 1024                     # rounds per size (default 4)
#     CONCURRENCY=100 FILES=300 bench/objstore.sh 64      # 300 uploads, 100 at a time
#     TARGET_DIR=/tmp/target-bench bench/objstore.sh 64   # build into another target dir
#     NO_BUILD=1 bench/objstore.sh 64                     # binaries built earlier
#     S3S_FS=/path/to/s3s-fs bench/objstore.sh 64         # else s3s-fs on the PATH, else
#                                                         # /work/tools/s3s/bin/s3s-fs
#     STORE=garage bench/objstore.sh 256 1024             # Garage 2.5 (one node) instead of
#                                                         # s3s-fs: GARAGE=/path/to/garage, else
#                                                         # garage on the PATH (cargo install
#                                                         # garage --version 2.5.0 --locked)
#
# It builds the release binaries, starts both servers and s3s-fs on loopback (127.0.0.1
# only) in a temporary directory under ${TMPDIR:-/tmp} and removes everything on exit. It
# needs about 7x the largest size plus 2 x FILES x CONC_MIB MiB of free disk there, and
# /usr/bin/time (GNU time), age, python3 (to find a free port) and s3s-fs
# (`cargo install s3s-fs --version 0.14.1 --locked --features binary`).

set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C  # $EPOCHREALTIME with a '.', sort and awk numbers with a '.'

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${TARGET_DIR:-$repo/target}
REPEAT=${REPEAT:-4}
CONCURRENCY=${CONCURRENCY:-100}
FILES=${FILES:-$CONCURRENCY}
CONC_MIB=${CONC_MIB:-1}
BATCHES=${BATCHES:-2}
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(256 1024)

die() { echo "objstore.sh: $*" >&2; exit 1; }

for var in REPEAT CONCURRENCY FILES CONC_MIB BATCHES; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var is a whole number (1 or more), got '${!var}'"
done
for s in "${sizes[@]}"; do
    [[ $s =~ ^[1-9][0-9]*$ ]] || die "sizes are whole MiB, got '$s' (usage: bench/objstore.sh [MIB...])"
done
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 or later (\$EPOCHREALTIME)"
[[ -x /usr/bin/time ]] || die "needs GNU time at /usr/bin/time (apt-get install time)"
command -v age >/dev/null || die "needs age (apt-get install age)"
command -v python3 >/dev/null || die "needs python3 (to find a free port)"
STORE=${STORE:-s3s-fs}
case $STORE in
s3s-fs)
    if [[ -n ${S3S_FS:-} ]]; then
        S3S=$S3S_FS
    elif command -v s3s-fs >/dev/null; then
        S3S=$(command -v s3s-fs)
    else
        S3S=/work/tools/s3s/bin/s3s-fs
    fi
    [[ -x $S3S ]] || die "needs s3s-fs (set S3S_FS, put it on the PATH, or cargo install s3s-fs --version 0.14.1 --locked --features binary)"
    ;;
garage)
    if [[ -n ${GARAGE:-} ]]; then
        GARAGE_BIN=$GARAGE
    elif command -v garage >/dev/null; then
        GARAGE_BIN=$(command -v garage)
    else
        GARAGE_BIN=/work/tools/garage/bin/garage
    fi
    [[ -x $GARAGE_BIN ]] || die "needs garage (set GARAGE, put it on the PATH, or cargo install garage --version 2.5.0 --locked)"
    command -v openssl >/dev/null || die "needs openssl (for Garage's RPC secret)"
    ;;
*) die "STORE is s3s-fs or garage, got '$STORE'" ;;
esac

# Nothing from the caller's environment may point the CLI or the servers elsewhere or
# change their settings (VAULT_CONFIG, VAULT_BLOB_STORE, AWS_REGION, ...).
while read -r var; do
    case $var in VAULT_* | AWS_*) unset "$var" ;; esac
done < <(compgen -e)

# --- build ------------------------------------------------------------------------------
if [[ -n ${NO_BUILD:-} ]]; then
    echo "using the binaries already in $TARGET_DIR/release (NO_BUILD)" >&2
else
    echo "building release binaries of $repo into $TARGET_DIR ..." >&2
    (cd "$repo" && cargo build --release --quiet --target-dir "$TARGET_DIR" -p vault-server -p vault-cli)
fi
CLI=$TARGET_DIR/release/vault-cli
SERVER=$TARGET_DIR/release/vault-server
"$SERVER" serve --help | grep -q -- '--blob-store' || die "$SERVER has no --blob-store: build it from code with the object store"

# --- scratch space and cleanup -----------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-objstore.XXXXXX")
vaults=(local s3)
declare -A srv_pid=() time_pid=()  # per vault: vault-server, and the /usr/bin/time around it
s3_pid=""                          # s3s-fs
conc_pids=()                       # the uploads of a concurrent batch
cleanup() {
    local v p
    for v in "${vaults[@]}"; do
        p=${srv_pid[$v]:-}
        if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
    done
    for v in "${vaults[@]}"; do
        p=${time_pid[$v]:-}
        [[ -z $p ]] || wait "$p" 2>/dev/null || true
    done
    # Uploads of a batch cut short end by themselves once the servers are gone.
    for p in "${conc_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -n $s3_pid ]]; then
        kill -TERM "$s3_pid" 2>/dev/null || true
        wait "$s3_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# Setup commands send their messages to $tmp/setup.err; show them if a step fails.
trap 'echo "objstore.sh: failed at line $LINENO" >&2; cat "$tmp/setup.err" >&2 2>/dev/null || true' ERR

# Per size: the input, age's copy of it, the fetched or age's output, a blob of it in each
# vault and the one being uploaded (s3s-fs assembles an object next to its parts); then
# the batch's inputs and blobs.
max=0
for s in "${sizes[@]}"; do if ((s > max)); then max=$s; fi; done
need_mib=$((7 * max + 2 * FILES * CONC_MIB + 64))
free_mib=$(df -Pm "$tmp" | awk 'NR == 2 { print $4 }')
((free_mib >= need_mib)) || die "needs ~$need_mib MiB free in $tmp, has $free_mib MiB"

# --- helpers -----------------------------------------------------------------------------
# Each timed step starts from the same page-cache state when we may drop caches (root),
# as in bench/rss.sh.
settle() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
}
# timed NAME CMD...: run CMD under /usr/bin/time -v into $tmp/NAME.time; stdout passes
# through, stderr goes to $tmp/NAME.err and is shown if CMD fails.
timed() {
    local name=$1; shift
    settle
    if ! /usr/bin/time -v -o "$tmp/$name.time" "$@" 2>"$tmp/$name.err"; then
        echo "objstore.sh: failed: $*" >&2
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
# Peak RSS in MiB from a time -v report; VmHWM in MiB of a running process.
rss_mib() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
# Microseconds between two $EPOCHREALTIME values (seconds.micros, always 6 digits).
elapsed_us() { echo $((${2/./} - ${1/./})); }
# Nearest rank percentile P (the ceil(P/100 n)-th smallest) in ms, of microseconds.
pct_ms() {
    local p=$1; shift
    printf '%s\n' "$@" | sort -n | awk -v p="$p" '{ v[NR] = $1 } END { k = int(p / 100 * NR); if (k < p / 100 * NR) k++; if (k < 1) k = 1; printf "%.1f", v[k] / 1000 }'
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- the object store --------------------------------------------------------------------
bucket=vault prefix=bench
s3_root=$tmp/s3s-root
mkdir -p "$s3_root/$bucket"
s3_key=bench-access-key s3_secret=bench-secret-0123456789 s3_region=""
s3_endpoint=""
if [[ $STORE == s3s-fs ]]; then
    s3_endpoint=""
    # A port free a moment ago may be taken before s3s-fs binds it: try a few.
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        "$S3S" --host 127.0.0.1 --port "$port" --access-key "$s3_key" --secret-key "$s3_secret" "$s3_root" \
            </dev/null >>"$tmp/s3s.log" 2>&1 &
        s3_pid=$!
        for _ in $(seq 200); do
            if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then s3_endpoint=http://127.0.0.1:$port; break; fi
            kill -0 "$s3_pid" 2>/dev/null || break
            sleep 0.05
        done
        [[ -z $s3_endpoint ]] || break
        kill -TERM "$s3_pid" 2>/dev/null || true
        wait "$s3_pid" 2>/dev/null || true
        s3_pid=""
    done
    [[ -n $s3_endpoint ]] || { cat "$tmp/s3s.log" >&2; die "s3s-fs did not start"; }
    echo "s3s-fs $s3_endpoint (pid $s3_pid), bucket $bucket in $s3_root" >&2
else
    # Garage, a distributed object store, as one node: SQLite metadata, one copy of each
    # block, no compression (ciphertext does not compress).
    g=$tmp/garage
    mkdir -p "$g"
    gport=$(free_port) rport=$(free_port)
    cat >"$g/garage.toml" <<TOML
metadata_dir = "$g/meta"
data_dir = "$g/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$rport"
rpc_public_addr = "127.0.0.1:$rport"
rpc_secret = "$(openssl rand -hex 32)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$gport"
root_domain = ".s3.garage.localhost"
TOML
    garage() { "$GARAGE_BIN" -c "$g/garage.toml" "$@"; }
    "$GARAGE_BIN" -c "$g/garage.toml" server </dev/null >>"$tmp/s3s.log" 2>&1 &
    s3_pid=$!
    for _ in $(seq 200); do
        if (: <"/dev/tcp/127.0.0.1/$gport") 2>/dev/null; then s3_endpoint=http://127.0.0.1:$gport; break; fi
        kill -0 "$s3_pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $s3_endpoint ]] || { cat "$tmp/s3s.log" >&2; die "garage did not start"; }
    {
        node=$(garage node id -q | cut -d@ -f1)
        garage layout assign -z dc1 -c 10G "$node"
        garage layout apply --version 1
        garage bucket create "$bucket"
        garage key create bench >"$g/key.txt"
        garage bucket allow --read --write --owner "$bucket" --key bench
    } >>"$tmp/setup.err" 2>&1
    s3_key=$(sed -n 's/^Key ID: *//p' "$g/key.txt") s3_secret=$(sed -n 's/^Secret key: *//p' "$g/key.txt")
    [[ -n $s3_key && -n $s3_secret ]] || { cat "$g/key.txt" >&2; die "garage made no key"; }
    s3_region=garage
    echo "garage $s3_endpoint (pid $s3_pid), bucket $bucket in $g" >&2
fi

# --- identities, vaults, servers ---------------------------------------------------------
declare -A id=()
for u in alice bob pbx; do
    id[$u]=$("$CLI" keygen --out "$tmp/$u.key" 2>>"$tmp/setup.err")
done
age_recipient=$(sed -n 's/^# public key: //p' "$tmp/alice.key")
[[ $age_recipient == age1* ]] || die "no age recipient in $tmp/alice.key"

# Limits raised so that no upload of the concurrent batches is refused: connections from
# one address (64 by default), and, should a CLI log in again, requests without a
# session and login challenges.
lim=$((4 * CONCURRENCY > 1024 ? 4 * CONCURRENCY : 1024))
limits=(--max-connections "$lim" --max-connections-per-address "$lim"
    --unauth-per-sec "$lim" --unauth-burst "$lim" --challenge-burst "$lim")
declare -A store_flags=(
    [local]=""
    [s3]="--blob-store s3://$bucket/$prefix --s3-endpoint $s3_endpoint --s3-allow-http --s3-access-key-id $s3_key --s3-secret-access-key $s3_secret${s3_region:+ --s3-region $s3_region}"
)
declare -A data=() root=() url=() case_id=() rec0=()
for v in "${vaults[@]}"; do
    data[$v]=$tmp/$v/data
    mkdir -p "$tmp/$v"
    root[$v]=$("$SERVER" init --data-dir "${data[$v]}" --admin alice --recipient "${id[alice]}" 2>>"$tmp/setup.err")
    [[ ${root[$v]} == SHA256:* ]] || die "init printed no trust root fingerprint: '${root[$v]}'"
    read -r -a flags <<<"${store_flags[$v]}"
    /usr/bin/time -v -o "$tmp/$v/server.time" \
        "$SERVER" serve --data-dir "${data[$v]}" --listen 127.0.0.1:0 --purge-interval-secs 0 \
        "${limits[@]}" "${flags[@]}" 2>"$tmp/$v/server.err" &
    time_pid[$v]=$!
    port=""
    for _ in $(seq 200); do
        port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$tmp/$v/server.err")
        [[ -z $port ]] || break
        kill -0 "${time_pid[$v]}" 2>/dev/null || { cat "$tmp/$v/server.err" >&2; die "the $v server did not start"; }
        sleep 0.1
    done
    [[ -n $port ]] || { cat "$tmp/$v/server.err" >&2; die "the $v server did not say where it listens"; }
    srv_pid[$v]=$(ps -o pid= --ppid "${time_pid[$v]}" | tr -d ' ')
    [[ -n ${srv_pid[$v]} ]] || die "cannot find the $v server under /usr/bin/time (${time_pid[$v]})"
    url[$v]=http://127.0.0.1:$port
    echo "$v vault: server ${url[$v]} (pid ${srv_pid[$v]}), trust root ${root[$v]}" >&2
done

# cli VAULT USER: sets argv to vault-cli as USER against VAULT's server, with a config dir
# (token cache, pins) of USER's own for that vault and that vault's trust root; through
# env, so that /usr/bin/time measures vault-cli itself.
argv=()
cli() {
    argv=(env "VAULT_TRUST_ROOT=${root[$1]}" "VAULT_CONFIG_DIR=$tmp/$1/config-$2"
        "$CLI" --server "${url[$1]}" --user "$2" --identity "$tmp/$2.key")
}
# as VAULT USER ARGS...: run vault-cli so.
as() {
    local v=$1 u=$2; shift 2
    cli "$v" "$u"
    "${argv[@]}" "$@"
}
# blob VAULT REC: the file holding REC's ciphertext.
blob() {
    case $1 in
    local) echo "${data[local]}/blobs/$2.age" ;;
    s3) echo "$s3_root/$bucket/$prefix/blobs/$2.age" ;;
    esac
}
# drop VAULT REC: delete REC's ciphertext behind the server's back (it never reads it
# again), checking it was where this script expects it.
drop() {
    local f
    # Garage keeps objects as blocks of its own: they stay (the disk must hold them).
    [[ $1 == s3 && $STORE == garage ]] && return 0
    f=$(blob "$1" "$2")
    [[ -f $f ]] || die "the $1 vault's recording $2 is not in $f"
    rm "$f"
}

# --- users, case, grant; everyone logged in once -----------------------------------------
for v in "${vaults[@]}"; do
    {
        as "$v" alice login >/dev/null
        as "$v" alice user add bob --role investigator --recipient "${id[bob]}" >/dev/null
        as "$v" alice user add pbx --role recorder --recipient "${id[pbx]}" >/dev/null
        as "$v" bob login >/dev/null
        as "$v" pbx login >/dev/null
        case_id[$v]=$(as "$v" alice case create --kind customer --title Bench --purpose quality)
        as "$v" alice grant "${case_id[$v]}" bob --reason bench >/dev/null
    } 2>>"$tmp/setup.err"
done

# --- 1. large recordings -----------------------------------------------------------------
# Six steps a round: upload and fetch on each vault, age -e and age -d. They run in a
# different order each round, rows of a Williams square (as in bench/rss.sh): over every
# six rounds each step runs once in each position and once right after each other step,
# which spreads the effect of the step before (large on this VM) evenly. Use a multiple
# of 6 for REPEAT for a fully balanced order.
orders=("lu su ad lf ae sf" "su lf lu sf ad ae" "lf sf su ae lu ad"
    "sf ae lf ad su lu" "ae ad sf lu lf su" "ad lu ae su sf lf")
declare -A backend=([lu]=local [lf]=local [su]=s3 [sf]=s3)
time_rows=() mem_rows=() cpu_rows=()
# cpu_s PID: the CPU seconds (user + system) process PID has used so far.
clk_tck=$(getconf CLK_TCK)
cpu_s() { awk -v hz="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
for mib in "${sizes[@]}"; do
    echo "== $mib MiB, $REPEAT rounds" >&2
    in=$tmp/in-$mib.bin out=$tmp/out-$mib.bin enc=$tmp/in-$mib.age enc0=$tmp/in0-$mib.age
    dd if=/dev/urandom of="$in" bs=1M count="$mib" iflag=fullblock status=none
    # What the fetch and age -d steps read: one upload to each vault and one age file,
    # made untimed.
    for v in "${vaults[@]}"; do
        rec0[$v]=$(as "$v" pbx upload "${case_id[$v]}" "$in" --announced signal-tone 2>>"$tmp/setup.err")
    done
    age -e -r "$age_recipient" -o "$enc0" "$in"
    declare -A t=() r=() cs=() c3=()
    for step in lu su lf sf ae ad; do t[$step]="" r[$step]="" cs[$step]="" c3[$step]=""; done
    for round in $(seq "$REPEAT"); do
        order=${orders[$(((round - 1) % 6))]}
        for step in $order; do
            # The CPU the step's server and s3s-fs use, besides the CLI's wall time.
            v=${backend[$step]:-local}
            srv0=$(cpu_s "${srv_pid[$v]}") s30=$(cpu_s "$s3_pid")
            case $step in
            lu | su)
                v=${backend[$step]}
                cli "$v" pbx
                rec=$(timed "$step-$mib" "${argv[@]}" upload "${case_id[$v]}" "$in" --announced signal-tone)
                # Deleted like age's output below, so every write goes into space just
                # freed (see bench/rss.sh).
                drop "$v" "$rec"
                ;;
            lf | sf)
                v=${backend[$step]}
                cli "$v" bob
                timed "$step-$mib" "${argv[@]}" fetch "${rec0[$v]}" --reason bench --out "$out" >/dev/null
                cmp "$in" "$out" || die "fetched ${rec0[$v]} from the $v vault differs from $in"
                rm -f "$out"
                ;;
            ae)
                # shellcheck disable=SC2016 # sh expands them
                timed "ae-$mib" sh -c 'age -e -r "$1" -o "$2" "$3" && sync "$2"' _ "$age_recipient" "$enc" "$in"
                rm -f "$enc"
                ;;
            ad)
                # shellcheck disable=SC2016 # sh expands them
                timed "ad-$mib" sh -c 'age -d -i "$1" -o "$2" "$3" && sync "$2"' _ "$tmp/alice.key" "$out" "$enc0"
                cmp "$in" "$out" || die "age -d of $enc0 differs from $in"
                rm -f "$out"
                ;;
            esac
            t[$step]+=" $(wall_s "$tmp/$step-$mib.time")"
            r[$step]+=" $(rss_mib "$tmp/$step-$mib.time")"
            cs[$step]+=" $(awk -v a="$srv0" -v b="$(cpu_s "${srv_pid[$v]}")" 'BEGIN { printf "%.2f", b - a }')"
            c3[$step]+=" $(awk -v a="$s30" -v b="$(cpu_s "$s3_pid")" 'BEGIN { printf "%.2f", b - a }')"
        done
        echo "   round $round ($order): upload local ${t[lu]##* } s, S3 ${t[su]##* } s;" \
            "fetch local ${t[lf]##* } s, S3 ${t[sf]##* } s; age -e ${t[ae]##* } s, age -d ${t[ad]##* } s" >&2
    done
    rm -f "$in" "$enc0"
    for v in "${vaults[@]}"; do drop "$v" "${rec0[$v]}"; done
    declare -A med=() peak=()
    for step in lu su lf sf ae ad; do
        # shellcheck disable=SC2086 # the lists are words
        med[$step]=$(median ${t[$step]}) peak[$step]=$(maxof ${r[$step]})
    done
    time_rows+=("| $mib | ${med[lu]} | ${med[su]} | $(ratio "${med[su]}" "${med[lu]}") \
| ${med[lf]} | ${med[sf]} | $(ratio "${med[sf]}" "${med[lf]}") | ${med[ae]} | ${med[ad]} |")
    declare -A cmed=() c3med=()
    for step in lu su lf sf; do
        # shellcheck disable=SC2086 # the lists are words
        cmed[$step]=$(median ${cs[$step]}) c3med[$step]=$(median ${c3[$step]})
    done
    cpu_rows+=("| $mib | ${cmed[lu]} | ${cmed[su]} | ${c3med[su]} | ${cmed[lf]} | ${cmed[sf]} | ${c3med[sf]} |")
    mem_rows+=("| $mib | ${peak[lu]} | ${peak[su]} | ${peak[lf]} | ${peak[sf]} \
| $(hwm_mib "${srv_pid[local]}") | $(hwm_mib "${srv_pid[s3]}") | $(hwm_mib "$s3_pid") |")
done

# --- 2. many uploads at once ------------------------------------------------------------
mkdir -p "$tmp/conc"
for i in $(seq "$FILES"); do
    dd if=/dev/urandom of="$tmp/conc/in-$i.bin" bs=1M count="$CONC_MIB" iflag=fullblock status=none
done
# one_upload VAULT I DIR: upload input I to VAULT as the recorder (run in the background);
# writes "EXIT-STATUS MICROSECONDS" to DIR/I.res, the recording id to DIR/I.out and its
# messages to DIR/I.err. All share the recorder's token cache, logged in above.
one_upload() {
    local v=$1 i=$2 dir=$3 t0 t1 rc=0
    t0=$EPOCHREALTIME
    "${argv[@]}" upload "${case_id[$v]}" "$tmp/conc/in-$i.bin" --announced signal-tone \
        >"$dir/$i.out" 2>"$dir/$i.err" || rc=$?
    t1=$EPOCHREALTIME
    echo "$rc $(elapsed_us "$t0" "$t1")" >"$dir/$i.res"
}
declare -A lat=() rates=() conc_hwm=()
# batch VAULT B: FILES uploads to VAULT, at most CONCURRENCY at a time.
batch() {
    local v=$1 b=$2 dir=$tmp/conc/$1-$2 t0 t1 i rc us rec running=0
    mkdir -p "$dir"
    cli "$v" pbx
    settle
    conc_pids=()
    t0=$EPOCHREALTIME
    for i in $(seq "$FILES"); do
        if ((running >= CONCURRENCY)); then
            wait -n
            running=$((running - 1))
        fi
        one_upload "$v" "$i" "$dir" &
        conc_pids+=($!)
        running=$((running + 1))
    done
    for i in "${conc_pids[@]}"; do wait "$i"; done
    t1=$EPOCHREALTIME
    conc_pids=()
    for i in $(seq "$FILES"); do
        read -r rc us <"$dir/$i.res"
        rec=$(cat "$dir/$i.out")
        if [[ $rc != 0 || -z $rec ]]; then
            echo "objstore.sh: upload $i of $FILES at once to the $v vault failed (exit $rc):" >&2
            cat "$dir/$i.err" >&2
            die "$(grep -lv '^0 ' "$dir"/*.res | wc -l) of $FILES uploads to the $v vault failed"
        fi
        lat[$v]+=" $us"
        drop "$v" "$rec"
    done
    rates[$v]+=" $(awk -v n="$FILES" -v us="$(elapsed_us "$t0" "$t1")" 'BEGIN { printf "%.1f", n / (us / 1e6) }')"
    conc_hwm[$v]=$(hwm_mib "${srv_pid[$v]}")
    echo "   batch $b, $v: ${rates[$v]##* } recordings/s" >&2
}
echo "== $FILES uploads of $CONC_MIB MiB, $CONCURRENCY at a time, $BATCHES batches" >&2
for b in $(seq "$BATCHES"); do
    if ((b % 2)); then batch local "$b"; batch s3 "$b"; else batch s3 "$b"; batch local "$b"; fi
done
conc_rows=()
for v in "${vaults[@]}"; do
    # shellcheck disable=SC2086 # the lists are words
    conc_rows+=("| $v | $FILES x $CONC_MIB MiB | $CONCURRENCY | $BATCHES | $(median ${rates[$v]}) \
| $(pct_ms 50 ${lat[$v]}) | $(pct_ms 99 ${lat[$v]}) | $(pct_ms 100 ${lat[$v]}) | ${conc_hwm[$v]} |")
done

# --- stop the servers; their peaks cover the whole run -----------------------------------
s3_hwm=$(hwm_mib "$s3_pid")
for v in "${vaults[@]}"; do
    kill -TERM "${srv_pid[$v]}"
    wait "${time_pid[$v]}" || die "the $v server exited with an error: $(cat "$tmp/$v/server.err")"
    srv_pid[$v]="" time_pid[$v]=""
done
kill -TERM "$s3_pid"
wait "$s3_pid" 2>/dev/null || true
s3_pid=""

echo
echo "Large recordings: median wall time of $REPEAT rounds"
echo
echo "| size MiB | local upload s | S3 upload s | S3 / local | local fetch s | S3 fetch s | S3 / local | age -e s | age -d s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${time_rows[@]}"
echo
echo "CPU seconds the servers and $STORE spent in each step (median): where the time of the S3 path goes"
echo
echo "| size MiB | upload: local server | upload: S3 server | upload: $STORE | fetch: local server | fetch: S3 server | fetch: $STORE |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${cpu_rows[@]}"
echo
echo "Peak RSS in MiB: the CLI's largest of any round; the servers' and $STORE's so far (VmHWM) after each size"
echo
echo "| size MiB | upload CLI local | upload CLI S3 | fetch CLI local | fetch CLI S3 | local server | S3 server | $STORE |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${mem_rows[@]}"
echo
echo "Uploads at once: recordings/s is the median over batches, latencies of one upload over all of them"
echo
echo "| vault | uploads | at once | batches | recordings/s | p50 ms | p99 ms | max ms | server VmHWM after MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${conc_rows[@]}"
echo
echo "Server peak RSS over the whole run: local $(rss_mib "$tmp/local/server.time") MiB, S3 $(rss_mib "$tmp/s3/server.time") MiB; $STORE (VmHWM) $s3_hwm MiB"
