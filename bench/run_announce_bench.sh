#!/usr/bin/env bash
# Announce benchmark: Synapse Tracker against Debian's opentracker and the floor, same run,
# loopback only.
#
# For each tracker in turn: start it on 127.0.0.1 (free ports), warm it up, run the
# UDP load (bench/udp_load.c, BEP 15) and the HTTP load (wrk + bench/http_announce.lua),
# stop it. Then print a table and the ratios ours / opentracker.
# The floor (bench/udp_floor.c: a stateless responder with fixed replies through
# recvmmsg/sendmmsg) takes the UDP load too: each tracker's CPU per UDP request is
# stated as a multiple of the floor's, the cost of this machine's kernel path.
#
#   bench/run_announce_bench.sh [--duration S] [options]     (--help for all)
#
# Synapse: $SYNAPSE_BIN or build/app/synapse-tracker, run as
#   --role standalone --host 127.0.0.1 --port P --udp-port U --data-dir DIR
#   and ready when it prints a line starting "ready " on stdout. Missing binary: skipped.
# opentracker: $OPENTRACKER_BIN or /usr/bin/opentracker, in whitelist mode: the bench's
#   info_hashes (udp_load --dump-hashes, deterministic from --seed) form its whitelist.
#   Its systemd service is never touched.
# Everything started here is stopped on exit; every step has a timeout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DURATION=10
UDP_DURATION=
HTTP_DURATION=
WARMUP=2
HASHES=100000
HTTP_POOL=10000
SEED=1
SOCKETS=4
WINDOW=16
UDP_THREADS=1
WRK_THREADS=1
WRK_CONNS=64
ONLY=
DO_UDP=1
DO_HTTP=1
KEEP=0
READY_TIMEOUT=30

usage() {
    cat <<EOF
usage: $0 [options]
  --duration S        seconds per load run, UDP and HTTP (default $DURATION)
  --udp-duration S    UDP run length (default: --duration)
  --http-duration S   HTTP run length (default: --duration)
  --warmup S          UDP warm-up before measuring, not reported (default $WARMUP; 0 = none)
  --only NAME         synapse | opentracker | floor
  --no-udp, --no-http skip one kind of load
  --hashes N          info_hashes in the UDP pool and the whitelist (default $HASHES)
  --http-pool N       first N of them used for HTTP (default $HTTP_POOL)
  --seed S            seed for hashes and requests (default $SEED)
  --sockets N         udp_load sockets (default $SOCKETS)
  --window N          udp_load requests in flight per socket (default $WINDOW)
  --udp-threads N     udp_load threads (default $UDP_THREADS)
  --wrk-threads N     wrk -t (default $WRK_THREADS)
  --wrk-conns N       wrk -c (default $WRK_CONNS)
  --ready-timeout S   wait this long for a tracker to serve (default $READY_TIMEOUT)
  --keep              keep the temporary directory (logs, whitelist)
env: SYNAPSE_BIN, SYNAPSE_CONFIG (a config file for synapse), OPENTRACKER_BIN, UDP_LOAD_BIN (else bench/udp_load.c is compiled with gcc),
     WRK_BIN, HTTP_ANNOUNCE_CHECK=0 (skip reply checks in the wrk script)
EOF
}

die() { echo "run_announce_bench: $*" >&2; exit 2; }
num() { [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$1 needs a number, got '$2'"; }

while (($#)); do
    case "$1" in
    --duration) num "$1" "${2-}"; DURATION=$2; shift 2 ;;
    --udp-duration) num "$1" "${2-}"; UDP_DURATION=$2; shift 2 ;;
    --http-duration) num "$1" "${2-}"; HTTP_DURATION=$2; shift 2 ;;
    --warmup) num "$1" "${2-}"; WARMUP=$2; shift 2 ;;
    --only) ONLY=${2-}; [[ $ONLY == synapse || $ONLY == opentracker || $ONLY == floor ]] || die "--only synapse|opentracker|floor"; shift 2 ;;
    --no-udp) DO_UDP=0; shift ;;
    --no-http) DO_HTTP=0; shift ;;
    --hashes) num "$1" "${2-}"; HASHES=$2; shift 2 ;;
    --http-pool) num "$1" "${2-}"; HTTP_POOL=$2; shift 2 ;;
    --seed) num "$1" "${2-}"; SEED=$2; shift 2 ;;
    --sockets) num "$1" "${2-}"; SOCKETS=$2; shift 2 ;;
    --window) num "$1" "${2-}"; WINDOW=$2; shift 2 ;;
    --udp-threads) num "$1" "${2-}"; UDP_THREADS=$2; shift 2 ;;
    --wrk-threads) num "$1" "${2-}"; WRK_THREADS=$2; shift 2 ;;
    --wrk-conns) num "$1" "${2-}"; WRK_CONNS=$2; shift 2 ;;
    --ready-timeout) num "$1" "${2-}"; READY_TIMEOUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
UDP_DURATION=${UDP_DURATION:-$DURATION}
HTTP_DURATION=${HTTP_DURATION:-$DURATION}
((HTTP_POOL <= HASHES)) || HTTP_POOL=$HASHES
# whole seconds for timeouts and wrk (-d takes an integer with a unit)
ceil() { awk -v x="$1" 'BEGIN { y = int(x); if (y < x) y++; if (y < 1) y = 1; print y }'; }
HTTP_SECS=$(ceil "$HTTP_DURATION")

SYNAPSE_BIN=${SYNAPSE_BIN:-$ROOT/build/app/synapse-tracker}
OPENTRACKER_BIN=${OPENTRACKER_BIN:-/usr/bin/opentracker}
WRK_BIN=${WRK_BIN:-$(command -v wrk || true)}
LUA_SCRIPT=$ROOT/bench/http_announce.lua
command -v ss >/dev/null || die "ss (iproute2) is needed to find free ports"

TMP=$(mktemp -d /tmp/announce-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()

stop_pid() { # pid: TERM, then KILL after 3 s
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if ((KEEP)); then echo "run_announce_bench: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools

if [[ -n ${UDP_LOAD_BIN:-} ]]; then
    UDP_LOAD=$UDP_LOAD_BIN
else
    UDP_LOAD=$TMP/udp_load
    gcc -std=gnu11 -O2 -Wall -Wextra -Werror "$ROOT/bench/udp_load.c" -o "$UDP_LOAD" -lm ||
        die "cannot compile bench/udp_load.c"
fi
[[ -x $UDP_LOAD ]] || die "udp_load not executable: $UDP_LOAD"
HASH_FILE=$TMP/hashes.txt
"$UDP_LOAD" --dump-hashes "$HASH_FILE" --hashes "$HASHES" --seed "$SEED"

if ((DO_HTTP)) && [[ -z $WRK_BIN ]]; then
    echo "note: wrk not found (apt-get install wrk): HTTP runs skipped"
    DO_HTTP=0
fi

port_in_use() { [[ -n $(ss -Hlntu "sport = :$1" 2>/dev/null) ]]; }
USED_PORTS=" "
free_port() {
    local p i
    for i in $(seq 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        [[ $USED_PORTS == *" $p "* ]] && continue
        port_in_use "$p" && continue
        USED_PORTS+="$p "
        echo "$p"
        return 0
    done
    die "no free port found"
}

# value of key=... in a RESULT line
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1" | head -n1; }

# ---------------------------------------------------------------- trackers

PID=
HTTP_PORT=
UDP_PORT=

start_synapse() {
    HTTP_PORT=$(free_port)
    UDP_PORT=$(free_port)
    mkdir -p "$TMP/synapse-data"
    # The load comes from one address: per-client limits raised out of its way (still
    # consulted on every request, so their cost is in the figures); SYNAPSE_CONFIG
    # replaces this file (bench/limiter_bench.sh compares limiter on and off).
    local config=${SYNAPSE_CONFIG:-$TMP/synapse-config.yaml}
    if [[ -z ${SYNAPSE_CONFIG:-} ]]; then
        printf 'limits:\n  max_connections_per_ip: 100000\n  announce_rate: 1000000\n  announce_burst: 1000000\n  scrape_rate: 1000000\n  scrape_burst: 1000000\n' >"$config"
    fi
    "$SYNAPSE_BIN" --role standalone --host 127.0.0.1 --port "$HTTP_PORT" --udp-port "$UDP_PORT" \
        --data-dir "$TMP/synapse-data" --config "$config" >"$TMP/synapse.out" 2>"$TMP/synapse.err" &
    PID=$!
    PIDS+=("$PID")
    local deadline=$((SECONDS + $(ceil "$READY_TIMEOUT")))
    while ((SECONDS < deadline)); do
        if grep -q '^ready ' "$TMP/synapse.out" 2>/dev/null; then
            echo "synapse: $(grep -m1 '^ready ' "$TMP/synapse.out") (pid $PID)"
            return 0
        fi
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "synapse: exited before ready; stderr tail:" >&2
            tail -n 20 "$TMP/synapse.err" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "synapse: no 'ready' line within ${READY_TIMEOUT}s; stderr tail:" >&2
    tail -n 20 "$TMP/synapse.err" >&2 || true
    return 1
}

start_opentracker() {
    HTTP_PORT=$(free_port)
    UDP_PORT=$(free_port)
    # opentracker chroots into -d and drops to user nobody: the whitelist lives in there
    local dir=$TMP/opentracker
    mkdir -p "$dir"
    chmod 755 "$dir"
    cp "$HASH_FILE" "$dir/whitelist.txt"
    chmod 644 "$dir/whitelist.txt"
    "$OPENTRACKER_BIN" -i 127.0.0.1 -p "$HTTP_PORT" -P "$UDP_PORT" -d "$dir" -w /whitelist.txt \
        >"$TMP/opentracker.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    # ready once a short UDP probe gets proper announce replies: that also proves the
    # whitelist (loaded by a background thread) is in place
    local deadline=$((SECONDS + $(ceil "$READY_TIMEOUT"))) out
    while ((SECONDS < deadline)); do
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "opentracker: exited at start; log:" >&2
            tail -n 20 "$TMP/opentracker.log" >&2 || true
            return 1
        fi
        out=$(timeout 5 "$UDP_LOAD" --target "127.0.0.1:$UDP_PORT" --duration 0.2 --hashes "$HASHES" \
            --seed "$SEED" --sockets 1 --window 4 | grep '^RESULT' || true)
        if [[ -n $out && $(field "$out" announces) -gt 0 && $(field "$out" malformed) -eq 0 ]]; then
            echo "opentracker: serving on http=$HTTP_PORT udp=$UDP_PORT with a $HASHES-hash whitelist (pid $PID)"
            return 0
        fi
        sleep 0.2
    done
    echo "opentracker: not serving whitelisted announces within ${READY_TIMEOUT}s; log:" >&2
    tail -n 20 "$TMP/opentracker.log" >&2 || true
    return 1
}

start_floor() {
    HTTP_PORT=
    UDP_PORT=$(free_port)
    gcc -std=gnu11 -O2 -Wall -Wextra -Werror "$ROOT/bench/udp_floor.c" -o "$TMP/udp_floor" ||
        { echo "floor: cannot compile bench/udp_floor.c" >&2; return 1; }
    "$TMP/udp_floor" --host 127.0.0.1 --port "$UDP_PORT" --seconds 900 >"$TMP/floor.out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    local deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        grep -q '^ready ' "$TMP/floor.out" 2>/dev/null && { echo "floor: serving udp=$UDP_PORT (pid $PID)"; return 0; }
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "floor: not ready" >&2
    return 1
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

declare -A R # R[name.key] = value

bench_one() { # name
    local name=$1 out line t0 t1 secs
    R[$name.status]=measured
    if ((DO_UDP)) && [[ $WARMUP != 0 && $WARMUP != 0.0 ]]; then
        timeout --kill-after=5 "$(($(ceil "$WARMUP") + 10))" "$UDP_LOAD" --target "127.0.0.1:$UDP_PORT" \
            --duration "$WARMUP" --hashes "$HASHES" --seed "$((SEED + 1000))" --sockets "$SOCKETS" \
            --window "$WINDOW" --threads "$UDP_THREADS" >/dev/null || true
    fi
    if ((DO_UDP)); then
        echo "== $name: UDP, ${UDP_DURATION}s"
        t0=$(cpu_ticks "$PID")
        out=$(timeout --kill-after=5 "$(($(ceil "$UDP_DURATION") + 15))" "$UDP_LOAD" \
            --target "127.0.0.1:$UDP_PORT" --duration "$UDP_DURATION" --hashes "$HASHES" --seed "$SEED" \
            --sockets "$SOCKETS" --window "$WINDOW" --threads "$UDP_THREADS" || true)
        t1=$(cpu_ticks "$PID")
        echo "$out" | sed 's/^/   /'
        line=$(grep '^RESULT udp_announce' <<<"$out" || true)
        if [[ -n $line ]]; then
            for k in rps p50_us p99_us errors lost malformed scrape_rps seconds; do
                R[$name.udp_$k]=$(field "$line" "$k")
            done
            secs=${R[$name.udp_seconds]}
            R[$name.udp_cpu]=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0) ? 100 * t / hz / s : 0 }')
            # CPU time per UDP request answered (announces and scrapes), in microseconds
            R[$name.udp_us]=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$secs" -v a="${R[$name.udp_rps]}" \
                -v b="${R[$name.udp_scrape_rps]:-0}" 'BEGIN { n = (a + b) * s; printf "%.2f", (n > 0) ? 1e6 * t / hz / n : 0 }')
        fi
    fi
    if ((DO_HTTP)) && [[ $name != floor ]]; then
        echo "== $name: HTTP, wrk -t$WRK_THREADS -c$WRK_CONNS -d${HTTP_SECS}s"
        t0=$(cpu_ticks "$PID")
        out=$(timeout --kill-after=5 "$((HTTP_SECS + 20))" "$WRK_BIN" -t"$WRK_THREADS" -c"$WRK_CONNS" \
            -d"${HTTP_SECS}s" --timeout 2s -s "$LUA_SCRIPT" "http://127.0.0.1:$HTTP_PORT/announce" \
            -- "$HASH_FILE" "$HTTP_POOL" "$SEED" 2>&1 || true)
        t1=$(cpu_ticks "$PID")
        echo "$out" | sed 's/^/   /'
        line=$(grep '^RESULT http_announce' <<<"$out" || true)
        if [[ -n $line ]]; then
            for k in rps p50_us p99_us errors read_closed non200 failures malformed seconds; do
                R[$name.http_$k]=$(field "$line" "$k")
            done
            secs=${R[$name.http_seconds]}
            R[$name.http_cpu]=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0) ? 100 * t / hz / s : 0 }')
        fi
    fi
    R[$name.rss_kb]=$(peak_rss_kb "$PID")
}

FAILED=0
run_tracker() { # name
    local name=$1
    echo "== $name: starting"
    if "start_$name"; then
        bench_one "$name"
    else
        R[$name.status]=failed
        FAILED=1
    fi
    stop_pid "$PID"
    PID=
}

echo "announce bench: udp ${UDP_DURATION}s, http ${HTTP_DURATION}s, $HASHES hashes (http pool $HTTP_POOL), seed $SEED, $(nproc) cores"
# other work on the machine skews everything: measure how busy the CPUs are for 0.5 s
cpu_busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 0.5
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); bz = y[1] - x[1]; id = y[2] - x[2];
        printf "%.0f", (bz + id > 0) ? 100 * bz / (bz + id) : 0 }'
}
BUSY=$(cpu_busy)
if ((BUSY > 15)); then
    echo "warning: the CPUs were ${BUSY}% busy before the bench started (other processes): numbers will be low and noisy"
fi

NAMES=()
if [[ -z $ONLY || $ONLY == synapse ]]; then
    NAMES+=(synapse)
    if [[ ! -x $SYNAPSE_BIN ]]; then
        echo "note: $SYNAPSE_BIN not found or not executable (set SYNAPSE_BIN or build it): synapse skipped"
        R[synapse.status]=skipped
    else
        run_tracker synapse
    fi
fi
if [[ -z $ONLY || $ONLY == opentracker ]]; then
    NAMES+=(opentracker)
    if [[ ! -x $OPENTRACKER_BIN ]]; then
        echo "note: $OPENTRACKER_BIN not found (apt-get install opentracker): opentracker skipped"
        R[opentracker.status]=skipped
    else
        run_tracker opentracker
    fi
fi

if ((DO_UDP)) && [[ -z $ONLY || $ONLY == floor ]]; then
    NAMES+=(floor)
    run_tracker floor
fi

# ---------------------------------------------------------------- report

get() { echo "${R[$1]:--}"; }
ratio() { # a b -> a/b
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

echo
echo "== results (loopback, load generator and tracker share $(nproc) cores)"
printf '%-28s %16s %16s %10s\n' "" synapse opentracker "ours/ot"
row() { # label key [noratio]
    local a b r
    a=$(get "synapse.$2")
    b=$(get "opentracker.$2")
    r=$(ratio "$a" "$b")
    [[ ${3-} == noratio ]] && r=
    printf '%-28s %16s %16s %10s\n' "$1" "$a" "$b" "$r"
}
printf '%-28s %16s %16s\n' "status" "$(get synapse.status)" "$(get opentracker.status)"
if ((DO_UDP)); then
    row "UDP announces/s" udp_rps
    row "UDP scrapes/s" udp_scrape_rps
    row "UDP p50 latency (us)" udp_p50_us
    row "UDP p99 latency (us)" udp_p99_us
    row "UDP errors" udp_errors noratio
    row "UDP lost (no reply in 1 s)" udp_lost noratio
    row "UDP malformed" udp_malformed noratio
    row "tracker CPU % (UDP)" udp_cpu
    row "CPU us per UDP request" udp_us
    if [[ ${R[floor.status]:-} == measured ]]; then
        printf '%-28s %16s %16s\n' "  as a multiple of the floor" "$(ratio "$(get synapse.udp_us)" "$(get floor.udp_us)")" \
            "$(ratio "$(get opentracker.udp_us)" "$(get floor.udp_us)")"
        printf '%-28s %16s\n' "floor: announces/s, CPU us" "$(get floor.udp_rps), $(get floor.udp_us)"
    fi
fi
if ((DO_HTTP)); then
    row "HTTP announces/s" http_rps
    row "HTTP p50 latency (us)" http_p50_us
    row "HTTP p99 latency (us)" http_p99_us
    row "HTTP socket errors" http_errors noratio
    row "HTTP closed by server" http_read_closed noratio
    row "HTTP non-200" http_non200 noratio
    row "HTTP failure replies" http_failures noratio
    row "HTTP malformed" http_malformed noratio
    row "tracker CPU % (HTTP)" http_cpu
fi
row "tracker peak RSS (KiB)" rss_kb
echo "(ratios: above 1 is better for throughput, below 1 is better for latency; opentracker"
echo " closes every HTTP connection after its reply, so its HTTP runs reconnect each time)"

for n in "${NAMES[@]}"; do
    echo "RESULT announce_bench tracker=$n status=$(get "$n.status") cpu_busy_before=$BUSY udp_rps=$(get "$n.udp_rps")" \
        "udp_p50_us=$(get "$n.udp_p50_us") udp_p99_us=$(get "$n.udp_p99_us") udp_lost=$(get "$n.udp_lost")" \
        "udp_errors=$(get "$n.udp_errors") udp_cpu_us=$(get "$n.udp_us") http_rps=$(get "$n.http_rps") http_p50_us=$(get "$n.http_p50_us")" \
        "http_p99_us=$(get "$n.http_p99_us") rss_kb=$(get "$n.rss_kb")"
done
if [[ ${R[synapse.status]:-} == measured && ${R[opentracker.status]:-} == measured ]]; then
    echo "RESULT announce_bench_ratio udp_rps=$(ratio "$(get synapse.udp_rps)" "$(get opentracker.udp_rps)")" \
        "http_rps=$(ratio "$(get synapse.http_rps)" "$(get opentracker.http_rps)")" \
        "udp_p99=$(ratio "$(get synapse.udp_p99_us)" "$(get opentracker.udp_p99_us)")" \
        "http_p99=$(ratio "$(get synapse.http_p99_us)" "$(get opentracker.http_p99_us)")"
fi
if [[ ${R[floor.status]:-} == measured ]]; then
    echo "RESULT announce_bench_floor floor_us=$(get floor.udp_us) synapse_x=$(ratio "$(get synapse.udp_us)" "$(get floor.udp_us)")" \
        "opentracker_x=$(ratio "$(get opentracker.udp_us)" "$(get floor.udp_us)")"
fi
exit "$FAILED"
