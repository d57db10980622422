#!/usr/bin/env bash
# The per-client limiter's cost: announce throughput with limits.rate_limit on (every
# request takes a token from its client's bucket; rates set high enough that nothing is
# refused, since the load comes from one address) against off, in one run, alternating
# on/off, off/on, ... so that drift of the machine and the order fall on both sides.
#
#   bench/limiter_bench.sh [--rounds N] [run_announce_bench.sh options]
#
# Prints each run's UDP and HTTP announces/s and the ratio of the medians on / off.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=2
if [[ ${1:-} == --rounds ]]; then ROUNDS=$2; shift 2; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
common='  max_connections_per_ip: 100000\n'
printf "limits:\n  rate_limit: true\n$common  announce_rate: 1000000\n  announce_burst: 1000000\n" >"$TMP/on.yaml"
printf "limits:\n  rate_limit: false\n$common" >"$TMP/off.yaml"
declare -A UDP HTTP
for ((i = 1; i <= ROUNDS; i++)); do
    order="on off"
    ((i % 2 == 0)) && order="off on" # ABBA: whichever runs first in a round is not always the same
    for mode in $order; do
        out=$(SYNAPSE_CONFIG="$TMP/$mode.yaml" "$ROOT/bench/run_announce_bench.sh" --only synapse "$@" 2>&1 | grep '^RESULT announce_bench tracker=synapse')
        udp=$(sed -n 's/.* udp_rps=\([0-9.]*\).*/\1/p' <<<"$out")
        http=$(sed -n 's/.* http_rps=\([0-9.]*\).*/\1/p' <<<"$out")
        echo "round $i limiter $mode: udp ${udp:--}/s http ${http:--}/s"
        UDP[$mode]+="${udp:-0} "
        HTTP[$mode]+="${http:-0} "
    done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for kind in UDP HTTP; do
    declare -n m=$kind
    on=$(median "${m[on]}"); off=$(median "${m[off]}")
    awk -v k="$kind" -v a="$on" -v b="$off" 'BEGIN { printf "RESULT limiter_bench %s on=%.0f off=%.0f ratio=%.3f\n", k, a, b, (b > 0) ? a / b : 0 }'
done
