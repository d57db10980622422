#!/usr/bin/env bash
# Ten minutes of 5% loss and 20 ms delay between four nodes in network namespaces, at the
# default failure-detection settings: counts false deaths (the target is zero), and the
# suspicions and refutations Lifeguard absorbed. Needs root; figures in docs/benchmarks.md.
#   bench/lossy_soak.sh [seconds]      (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-600}
export SYNAPSE_BIN=${SYNAPSE_BIN:-build/app/synapse-tracker}
export SYNAPSE_NETEM=${SYNAPSE_NETEM:-build/tests/netem_nfq}
SYNAPSE_LOSSY_S=$SECONDS_TO_RUN exec /usr/bin/python3 tests/integration/test_cluster_lossy.py
