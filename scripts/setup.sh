#!/usr/bin/env bash
# Installs every Debian package the build, tests and benchmarks need, and fetches
# faiss's C API sources (Debian ships the headers but not the implementation).
# Idempotent: packages already present and sources already fetched are skipped.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
third_party="$here/third_party"

# What building the binary needs (the image's build stage installs only these).
build_packages=(
  build-essential cmake pkg-config git ca-certificates
  libuv1-dev libnng-dev libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev
  libfaiss-dev libopenblas-dev node-llhttp libyaml-dev libjansson-dev
  libsodium-dev libxxhash-dev libcmocka-dev
  libwslay-dev libssl-dev # WebSocket framing and TLS for ws:// and wss:// (router/ws_*.c, router/tls.c)
)
packages=(
  "${build_packages[@]}"
  python3 python3-libtorrent python3-requests wrk opentracker
  iproute2 procps curl iptables libnetfilter-queue-dev gcovr
  gdb # thread dumps of a member that stops answering (tests/lib/synapse_proc.py)
  clang-14 libclang-rt-14-dev # libFuzzer and the sanitizer runtimes (tests/fuzz)
  chromium # the status page's browser test (tests/integration/test_status_page.py)
  python3-websocket openssl # WebSocket protocol tests and their test certificates
  podman runc mmdebstrap python3-yaml # the image and the Kubernetes rehearsal (tests/container)
)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
  local p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_packages)
  # Node.js may come from elsewhere with npm bundled; Debian's packages only when absent.
  if [ "$mode" != "--build-only" ]; then
    command -v node >/dev/null || missing="$missing nodejs"
    command -v npm >/dev/null || missing="$missing npm"
  fi
  missing=$(echo $missing)
  [ -z "$missing" ] && return 0
  echo "setup: installing:" $missing
  as_root apt-get update -q
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
}

# shellcheck source=scripts/debian_mirror.sh
. "$here/scripts/debian_mirror.sh"

fetch_faiss_sources() {
  [ -f "$third_party/faiss/c_api/CMakeLists.txt" ] && return 0
  local work mirror suite
  work=$(mktemp -d)
  mirror=$(debian_mirror)
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  [ -n "$mirror" ] || { echo "setup: cannot find this machine's Debian mirror in its apt configuration" >&2; exit 1; }
  mkdir -p "$work/lists/partial" "$third_party"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$work/src.list"
  local o=(-o "Dir::Etc::SourceList=$work/src.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists")
  as_root apt-get "${o[@]}" update -q
  (cd "$work" && as_root apt-get "${o[@]}" source --download-only faiss)
  local tarball
  tarball=$(ls "$work"/faiss_*.orig.tar.gz | head -n 1)
  rm -rf "$third_party/faiss.tmp" && mkdir -p "$third_party/faiss.tmp"
  tar xzf "$tarball" -C "$third_party/faiss.tmp" --strip-components=1
  rm -rf "$third_party/faiss" && mv "$third_party/faiss.tmp" "$third_party/faiss"
  as_root rm -rf "$work"
}

# WebTorrent's tracker client, for interoperability tests. WebRTC is only needed for
# ws:// trackers, so webrtc-polyfill is pointed at a local stub (see tests/interop/npm).
# puppeteer-core drives Debian's chromium for the status page test; it downloads no
# browser of its own.
install_npm_clients() {
  local dir="$here/tests/interop/npm"
  local pkg missing=0 # every dependency package.json names, so a new one gets installed
  for pkg in $(node -e 'const p = require(process.argv[1]); console.log(Object.keys(p.dependencies || {}).join(" "))' "$dir/package.json"); do
    [ -d "$dir/node_modules/$pkg" ] || missing=1
  done
  [ "$missing" = 0 ] && return 0
  (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error)
}

# --build-only: what building the binary needs, nothing for the tests (the image's
# build stage); --no-npm: everything but the npm clients.
mode=${1:-}
if [ "$mode" = "--build-only" ]; then packages=("${build_packages[@]}"); fi
install_packages
fetch_faiss_sources
case "$mode" in --no-npm | --build-only) ;; *) install_npm_clients ;; esac
