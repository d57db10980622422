# Sourced by scripts/setup.sh and tests/container/build_image.sh.
# debian_mirror: the Debian mirror this machine already uses, read from its own apt
# configuration (deb822 sources first, then sources.list); empty when there is none.
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^[a-z]+:\/\//){print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "$uri"
}
