#!/usr/bin/env bash
# The nemesis test for thirty minutes (or the seconds given): kill -9, SIGSTOP, partitions
# of one node and two against two, joins and graceful leaves, from a seeded schedule,
# with the checker over the whole history. Needs root. Prints the summary line.
#   bench/nemesis.sh [seconds] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
export SYNAPSE_BIN=${SYNAPSE_BIN:-build/app/synapse-tracker}
export SYNAPSE_NEMESIS_S=${1:-1800}
[ -n "${2:-}" ] && export SYNAPSE_NEMESIS_SEED=$2
exec /usr/bin/python3 tests/nemesis/test_nemesis.py
