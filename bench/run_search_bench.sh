#!/usr/bin/env bash
# Vector search benchmark: registration throughput, search latency, recall@10 and memory
# per shard of Synapse Tracker's JSON API, end to end on loopback.
#
#   bench/run_search_bench.sh            # full: 10k and 100k with auto, every type at 100k
#   bench/run_search_bench.sh --quick    # smoke run: 2k and 5k, every type at 5k (~3 min)
#   bench/run_search_bench.sh --help     # every option
#
# Each measurement gets a fresh tracker (own data directory, free port, a copy of the
# binary so that a rebuild of build/ during the run cannot change it), started as
#   synapse-tracker --role standalone --host 127.0.0.1 --port P --udp-port 0
#                   --data-dir DIR --config CONF
# where CONF holds `vector_search: index_type: T` (every other key at its default), and
# ready on its `ready ` line. bench/search_bench.c (compiled here) generates the
# deterministic clustered vectors, computes the exact top-10 (cached per size), registers
# the shards over keep-alive connections, waits for the index to settle (tracker CPU idle:
# no HTTP endpoint says whether a rebuild is running), reads VmRSS, and runs the queries
# one at a time. The tracker is then stopped with SIGTERM; it writes its faiss snapshot at
# close, whose size is the index-only figure.
#
# Passes per run:
#   main      fresh tracker: registration rate, settle, RSS, latency, recall
#   restart   (--restart-queries > 0) the same data directory and config, tracker
#             restarted: the index comes back from its snapshot; RSS without the heap
#             history of registration and rebuilds, latency and recall again
#   nprobe    (--nprobes, auto at the largest size only) restarts with ivf_nprobe set to
#             each value: the latency/recall trade-off of the IVF that auto built
# Runs: auto at each of --sizes; then each of --types at --recall-size.
# Everything started here is stopped on exit (trap EXIT); every step has a timeout.
set -euo pipefail

main() {
ORIG_ARGS="$*"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SIZES="10000 100000"
RECALL_SIZE=100000
TYPES="flat flat_sq8 ivf ivf_sq8 hnsw hnsw_sq8"
QUERIES=1000
RESTART_QUERIES=200
NPROBES="8 16 32"
WRITES=0
WRITES_SECS=60
WARMUP=50
CONNS=16
SEED=1
SPREAD=0.03
CLUSTERS=100
DIM=768
SETTLE_TIMEOUT=900
REG_TIMEOUT=3600
READY_TIMEOUT=300
KEEP=0
MD=
DATA_ROOT=

while (($#)); do
    case "$1" in
    --quick) SIZES="2000 5000"; RECALL_SIZE=5000; QUERIES=200; RESTART_QUERIES=100; shift ;;
    --sizes) SIZES=${2-}; shift 2 ;;
    --recall-size) num "$1" "${2-}"; RECALL_SIZE=$2; shift 2 ;;
    --types) TYPES=${2-}; shift 2 ;;
    --queries) num "$1" "${2-}"; QUERIES=$2; shift 2 ;;
    --restart-queries) num "$1" "${2-}"; RESTART_QUERIES=$2; shift 2 ;;
    --nprobes) NPROBES=${2-}; shift 2 ;;
    --writes) num "$1" "${2-}"; WRITES=$2; shift 2 ;;
    --writes-secs) num "$1" "${2-}"; WRITES_SECS=$2; shift 2 ;;
    --warmup) num "$1" "${2-}"; WARMUP=$2; shift 2 ;;
    --conns) num "$1" "${2-}"; CONNS=$2; shift 2 ;;
    --seed) num "$1" "${2-}"; SEED=$2; shift 2 ;;
    --spread) num "$1" "${2-}"; SPREAD=$2; shift 2 ;;
    --clusters) num "$1" "${2-}"; CLUSTERS=$2; shift 2 ;;
    --dim) num "$1" "${2-}"; DIM=$2; shift 2 ;;
    --settle-timeout) num "$1" "${2-}"; SETTLE_TIMEOUT=$2; shift 2 ;;
    --md) MD=${2-}; [[ -n $MD ]] || die "--md needs a file"; shift 2 ;;
    --data-root) DATA_ROOT=${2-}; [[ -d $DATA_ROOT ]] || die "--data-root: no directory '$DATA_ROOT'"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
local s t
for s in $SIZES; do num --sizes "$s"; done
for s in $NPROBES; do num --nprobes "$s"; done
for t in $TYPES; do
    case $t in auto | flat | flat_sq8 | ivf | ivf_sq8 | hnsw | hnsw_sq8) ;; *) die "unknown index type '$t'" ;; esac
done
command -v ss >/dev/null || die "ss (iproute2) is needed to find free ports"

SYNAPSE_SRC=${SYNAPSE_BIN:-$ROOT/build/app/synapse-tracker}
[[ -x $SYNAPSE_SRC ]] || die "no tracker binary at $SYNAPSE_SRC (build it: cmake -S . -B build && make -C build -j2 synapse-tracker)"

TMP=$(mktemp -d /tmp/search-bench.XXXXXX)
DATA=$TMP
[[ -n $DATA_ROOT ]] && DATA=$(mktemp -d "$DATA_ROOT/search-bench-data.XXXXXX")
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

BIN=$TMP/synapse-tracker
cp "$SYNAPSE_SRC" "$BIN"
BENCH=$TMP/search_bench
CC=${CC:-gcc}
"$CC" -std=gnu11 -O3 -march=native -Wall -Wextra "$ROOT/bench/search_bench.c" -o "$BENCH" -lm -lpthread 2>/dev/null ||
    "$CC" -std=gnu11 -O2 -Wall -Wextra "$ROOT/bench/search_bench.c" -o "$BENCH" -lm -lpthread ||
    die "cannot compile bench/search_bench.c"
COMMON=(--seed "$SEED" --spread "$SPREAD" --clusters "$CLUSTERS" --dim "$DIM")

echo "search bench: $DIM-d, $CLUSTERS clusters, spread $SPREAD, seed $SEED, $QUERIES queries (+$WARMUP warm-up), $CONNS registration connections"
echo "machine: $(nproc) cores, load average $(loadavg) at start; data under $DATA"
echo "binary: $SYNAPSE_SRC, built $(date -u -r "$SYNAPSE_SRC" +%Y-%m-%dT%H:%M:%SZ), md5 $(md5sum <"$BIN" | cut -c1-12); source tree at $(git -C "$ROOT" log -1 --format='%h (%cd)' --date=format:%Y-%m-%dT%H:%M 2>/dev/null || echo unknown)"
local n largest=0
for n in $SIZES; do ((n > largest)) && largest=$n; done
for n in $SIZES $( ((RECALL_SIZE > 0)) && echo "$RECALL_SIZE"); do
    [[ -f $TMP/gt-$n.bin ]] && continue
    timeout 1200 "$BENCH" --gt-only --n "$n" --queries "$QUERIES" --gt-cache "$TMP/gt-$n.bin" "${COMMON[@]}" 2>&1 >/dev/null |
        sed 's/^/   /'
done

declare -gA R # R[run.key]
RUNS=()
for n in $SIZES; do
    run_type "auto-$n" auto "$n" "$( ((n == largest)) && echo "$NPROBES")"
done
if ((RECALL_SIZE > 0)); then
    for t in $TYPES; do
        [[ $t == auto && " $SIZES " == *" $RECALL_SIZE "* ]] && continue
        run_type "$t-$RECALL_SIZE" "$t" "$RECALL_SIZE" ""
    done
fi
report
}

usage() {
    cat <<EOF
usage: $0 [options]
  --quick              smoke run: --sizes "2000 5000" --recall-size 5000 --queries 200
  --sizes "A B"        shard counts for the auto runs (default "10000 100000")
  --recall-size N      shard count for the per-type runs (default 100000; 0 = skip them)
  --types "T ..."      index types for the per-type runs (default "flat flat_sq8 ivf ivf_sq8 hnsw hnsw_sq8")
  --queries Q          timed queries per run, also the recall set (default 1000)
  --restart-queries Q  queries of the restart pass (default 200; 0 = no restart pass)
  --writes R           after each main pass, on the same tracker: queries for --writes-secs
                       (default 60) while R shards/s more are registered (search while
                       agents register: growth, retraining and index swaps under queries);
                       run it with --restart-queries 0 --nprobes "" (the later passes
                       would count the extra shards)
  --nprobes "A B"      ivf_nprobe values tried on auto's index at the largest size (default "8 16 32"; "" = none)
  --warmup W           untimed warm-up queries per pass (default 50)
  --conns C            registration connections, one request in flight each (default 16)
  --seed S             data seed (default 1)
  --spread X           per-coordinate noise around the cluster centres (default 0.03)
  --clusters K         Gaussian clusters (default 100)
  --dim D              dimension (default 768)
  --settle-timeout S   longest wait for background index builds (default 900)
  --md FILE            also write the table as markdown to FILE
  --data-root DIR      put the trackers' data directories under DIR (e.g. /dev/shm, where
                       fsync is free: separates I/O from CPU limits); default: the temp dir
  --keep               keep the temporary directory (logs, configs, data)
env: SYNAPSE_BIN (default build/app/synapse-tracker), CC (default gcc)
EOF
}

die() { echo "run_search_bench: $*" >&2; exit 2; }
num() { [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$1 needs a number, got '$2'"; }
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1" | head -n1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

stop_pid() { # pid [seconds]: TERM, wait (the tracker writes its snapshot at close), then KILL
    local pid=$1 wait_s=${2:-120} i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "run_search_bench: pid $pid still running after ${wait_s}s: KILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid" 10; done
    if ((KEEP)); then
        echo "run_search_bench: kept $TMP $DATA" >&2
    else
        rm -rf "$TMP"
        [[ $DATA == "$TMP" ]] || rm -rf "$DATA"
    fi
}

port_in_use() { [[ -n $(ss -Hlnt "sport = :$1" 2>/dev/null) ]]; }
free_port() {
    local p i
    for i in $(seq 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_in_use "$p" && continue
        echo "$p"
        return 0
    done
    die "no free port found"
}

# start_tracker NAME CONF DATADIR LOGDIR: sets TPID and TPORT. A port taken between
# free_port and the tracker's bind (other work on the machine) is retried with another.
start_tracker() {
    local name=$1 conf=$2 ddir=$3 ldir=$4 deadline attempt
    for attempt in 1 2 3 4 5; do
        TPORT=$(free_port)
        "$BIN" --role standalone --host 127.0.0.1 --port "$TPORT" --udp-port 0 --data-dir "$ddir" \
            --config "$conf" >"$ldir/tracker.out" 2>"$ldir/tracker.err" &
        TPID=$!
        PIDS+=("$TPID")
        deadline=$((SECONDS + READY_TIMEOUT))
        until grep -q '^ready ' "$ldir/tracker.out" 2>/dev/null; do
            if ! kill -0 "$TPID" 2>/dev/null; then
                wait "$TPID" 2>/dev/null || true
                if grep -q 'address already in use' "$ldir/tracker.err" && ((attempt < 5)); then
                    echo "   (port $TPORT taken meanwhile: retrying with another)"
                    continue 2
                fi
                tail -n 20 "$ldir/tracker.err" >&2
                die "$name: tracker exited at start"
            fi
            ((SECONDS < deadline)) || die "$name: no ready line within ${READY_TIMEOUT}s"
            sleep 0.1
        done
        return 0
    done
}

# pass NAME TYPE N LOGDIR QUERIES [search_bench args...]: one search_bench run against the
# tracker TPID/TPORT; stores its RESULT line and the load average in R[NAME.*]
pass() {
    local name=$1 type=$2 n=$3 ldir=$4 q=$5 out line la0 la1 t0
    shift 5
    la0=$(loadavg)
    t0=$SECONDS
    echo "== $name: index_type $type, $n shards (tracker pid $TPID, port $TPORT; load average $la0)"
    out=$(timeout --kill-after=10 "$((REG_TIMEOUT + SETTLE_TIMEOUT + 600))" "$BENCH" --port "$TPORT" --pid "$TPID" \
        --n "$n" --conns "$CONNS" --warmup "$WARMUP" --settle-timeout "$SETTLE_TIMEOUT" --queries "$q" \
        --gt-cache "$TMP/gt-$n.bin" --label "$name" "${COMMON[@]}" "$@" 2>"$ldir/bench-$name.err") ||
        R[$name.failed]=1
    sed 's/^/   /' "$ldir/bench-$name.err"
    [[ -z ${R[$name.failed]:-} ]] || echo "   NOTE: $name: search_bench reported HTTP errors or a failed check (see above)"
    line=$(grep '^RESULT search_bench ' <<<"$out" || true)
    [[ -n $line ]] || die "$name: no RESULT line"
    la1=$(loadavg)
    R[$name.line]=$line
    R[$name.type]=$type
    R[$name.n]=$n
    R[$name.load]="$la0 -> $la1"
    R[$name.secs]=$((SECONDS - t0))
    echo "   $line"
    RUNS+=("$name")
}

warnings() { # LOGDIR
    if grep -qE ' (warn|error) ' "$1/tracker.err"; then
        echo "   tracker warnings:"
        grep -E ' (warn|error) ' "$1/tracker.err" | head -n 5 | sed 's/^/     /'
    fi
}

# run_type NAME TYPE N NPROBES
run_type() {
    local name=$1 type=$2 n=$3 nprobes=$4 dir=$TMP/$1 ddir=$DATA/$1.data np
    mkdir -p "$dir" "$ddir"
    printf 'vector_search:\n  index_type: "%s"\n' "$type" >"$dir/config.yaml"

    start_tracker "$name" "$dir/config.yaml" "$ddir" "$dir"
    pass "$name" "$type" "$n" "$dir" "$QUERIES"
    if [[ $WRITES != 0 ]]; then
        pass "$name-writes" "$type, +$WRITES/s" "$n" "$dir" "$QUERIES" --no-register \
            --bg-rate "$WRITES" --search-secs "$WRITES_SECS" --warmup 0
    fi
    stop_pid "$TPID" 300
    R[$name.index_bytes]=$(find "$ddir/vectors" -type f -name '*.faiss' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    R[$name.meta_bytes]=$(find "$ddir/vectors" -type f -name '*.meta' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    R[$name.db_bytes]=$(find "$ddir" -maxdepth 1 -name 'shards.db*' -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    R[$name.builds]=$(grep -o 'rebuilt as [a-z_0-9]*: [0-9]* vectors in [0-9.]* s' "$dir/tracker.err" |
        sed 's/rebuilt as //' | paste -sd';' - || true)
    warnings "$dir"
    echo "   builds: ${R[$name.builds]:-none}; snapshot: $(find "$ddir/vectors" -type f -printf '%f=%s ' 2>/dev/null)"
    cp "$dir/tracker.err" "$dir/tracker-main.err"

    if ((RESTART_QUERIES > 0)); then
        start_tracker "$name-restart" "$dir/config.yaml" "$ddir" "$dir"
        pass "$name-restart" "$type" "$n" "$dir" "$RESTART_QUERIES" --no-register
        stop_pid "$TPID" 300
        warnings "$dir"
        R[$name-restart.empty_kb]=$(field "${R[$name.line]}" rss_empty_kb)
    fi
    for np in $nprobes; do
        printf 'vector_search:\n  index_type: "%s"\n  ivf_nprobe: %s\n' "$type" "$np" >"$dir/config-nprobe$np.yaml"
        start_tracker "$name-nprobe$np" "$dir/config-nprobe$np.yaml" "$ddir" "$dir"
        pass "$name-nprobe$np" "$type nprobe $np" "$n" "$dir" "$QUERIES" --no-register
        stop_pid "$TPID" 300
        warnings "$dir"
        R[$name-nprobe$np.empty_kb]=$(field "${R[$name.line]}" rss_empty_kb)
    done
    ((KEEP)) || rm -rf "$ddir"
}

report() {
    local r l n empty reg table=$TMP/table.md
    {
        echo "| run | index_type | shards | register shards/s | search p50 ms | search p99 ms | recall@10 | recall@10 (ties) | RSS empty MiB | RSS MiB | RSS KiB/shard | faiss snapshot B/shard | SQLite B/shard | HTTP errors | builds (type: vectors in s) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        for r in "${RUNS[@]}"; do
            l=${R[$r.line]}
            n=${R[$r.n]}
            empty=${R[$r.empty_kb]:-$(field "$l" rss_empty_kb)}
            reg=$(field "$l" reg_rate | awk '{ if ($1 > 0) printf "%.0f", $1; else print "-" }')
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                "$r" "${R[$r.type]}" "$n" "$reg" \
                "$(awk -v u="$(field "$l" p50_us)" 'BEGIN { printf "%.2f", u / 1000 }')" \
                "$(awk -v u="$(field "$l" p99_us)" 'BEGIN { printf "%.2f", u / 1000 }')" \
                "$(field "$l" recall10)" "$(field "$l" recall10_ties)" \
                "$(awk -v k="$empty" 'BEGIN { printf "%.1f", k / 1024 }')" \
                "$(awk -v k="$(field "$l" rss_kb)" 'BEGIN { printf "%.1f", k / 1024 }')" \
                "$(awk -v a="$(field "$l" rss_kb)" -v b="$empty" -v n="$n" 'BEGIN { printf "%.2f", (a - b) / n }')" \
                "$(awk -v a="${R[$r.index_bytes]:-0}" -v n="$n" 'BEGIN { if (a > 0) printf "%.0f", a / n; else print "-" }')" \
                "$(awk -v a="${R[$r.db_bytes]:-0}" -v n="$n" 'BEGIN { if (a > 0) printf "%.0f", a / n; else print "-" }')" \
                "$(($(field "$l" reg_errors) + $(field "$l" search_errors)))" "${R[$r.builds]:-}"
        done
    } >"$table"
    echo
    echo "== results (latency: one query in flight, limit 10, HTTP on loopback; RSS = VmRSS of the tracker;"
    echo "   *-restart and *-nprobe rows: same data, tracker restarted from its snapshot, empty RSS taken from the main pass)"
    cat "$table"
    echo
    for r in "${RUNS[@]}"; do echo "load average during $r: ${R[$r.load]} (${R[$r.secs]} s)"; done
    for r in "${RUNS[@]}"; do
        echo "${R[$r.line]} index_bytes=${R[$r.index_bytes]:-} meta_bytes=${R[$r.meta_bytes]:-} db_bytes=${R[$r.db_bytes]:-}"
    done
    if [[ -n $MD ]]; then
        {
            echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) with \`bench/run_search_bench.sh $ORIG_ARGS\` ($DIM-d, $CLUSTERS clusters, spread $SPREAD, seed $SEED, $QUERIES queries)."
            echo
            cat "$table"
            echo
            for r in "${RUNS[@]}"; do echo "- load average during $r: ${R[$r.load]} (${R[$r.secs]} s)"; done
        } >"$MD"
        echo "markdown written to $MD"
    fi
}

main "$@"
exit
