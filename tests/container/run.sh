#!/usr/bin/env bash
# The image and the Kubernetes rehearsal with podman: builds the image
# (build_image.sh), then runs the image's tests (test_image.py) and the rehearsal of
# k8s/overlays/prod with it (rehearsal.py).
# Where podman is not installed it says so and exits 77 (ctest's "skipped").
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v podman >/dev/null; then
  echo "container tests SKIPPED: podman is not installed (scripts/setup.sh installs it)"
  exit 77
fi
export SYNAPSE_IMAGE=${SYNAPSE_IMAGE:-localhost/synapse-tracker:test}
t0=$(date +%s)
"$here/build_image.sh" "$SYNAPSE_IMAGE" >"${TMPDIR:-/tmp}/synapse-image-build.log" 2>&1 || {
  tail -n 60 "${TMPDIR:-/tmp}/synapse-image-build.log"
  echo "container tests: the image did not build (whole log: ${TMPDIR:-/tmp}/synapse-image-build.log)"
  exit 1
}
tail -n 1 "${TMPDIR:-/tmp}/synapse-image-build.log"
echo "container tests: image built in $(( $(date +%s) - t0 )) s"
status=0
python3 "$here/test_image.py" || status=1
python3 "$here/rehearsal.py" || status=1
exit $status
