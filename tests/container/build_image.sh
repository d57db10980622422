#!/usr/bin/env bash
# Builds the tracker's image with podman: tests/container/build_image.sh [TAG]
# (default synapse-tracker:test). With no image registry reachable, the Debian base is
# made here from the Debian mirror in this machine's apt configuration (mmdebstrap) and
# imported as localhost/debian:bookworm; set SYNAPSE_IMAGE_BASE to use another base.
# podman runs with runc and host networking (the build's apt steps reach the mirror
# that way; no bridge is created).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tag=${1:-synapse-tracker:test}
base=${SYNAPSE_IMAGE_BASE:-localhost/debian:bookworm}
podman=(podman --runtime runc)
# podman's default limits are refused here: the descriptor limit is the process's own
# hard limit; nproc above a few thousand is refused too, and 4096 is plenty.
ulimits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)

# shellcheck source=scripts/debian_mirror.sh
. "$here/scripts/debian_mirror.sh"

if ! "${podman[@]}" image exists "$base"; then
  [ "$base" = localhost/debian:bookworm ] || { echo "build_image: base $base not found" >&2; exit 1; }
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || { echo "build_image: no Debian mirror in the apt configuration" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "build_image: making the bookworm base with mmdebstrap"
  mmdebstrap --quiet --variant=minbase bookworm "$work/base.tar" "deb $mirror bookworm main"
  "${podman[@]}" import "$work/base.tar" "$base" >/dev/null
fi

# The faiss sources the build compiles come with the context (scripts/setup.sh fetched
# them); the build stage fetches them itself when they are absent.
"${podman[@]}" build --network host --format docker "${ulimits[@]}" \
  --build-arg "BASE=$base" --build-arg "RUNTIME_BASE=$base" -t "$tag" "$here"
"${podman[@]}" image inspect "$tag" --format 'build_image: {{.Id}} {{.Size}} bytes'
# the build stage's image and those of earlier builds are not kept (over 1 GB each)
"${podman[@]}" image prune -f >/dev/null
