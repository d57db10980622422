# Synapse Tracker's image (k8s/ runs it as nodes and routers; with no arguments it is a
# standalone tracker). Two stages: the build stage installs what building needs through
# the same script a laptop uses, the runtime stage holds the binary and the shared
# libraries it links, nothing else. The build is the one the tests run (RelWithDebInfo),
# stripped. BASE and RUNTIME_BASE default to Debian's images; a machine without a
# registry imports its own bookworm (tests/container/build_image.sh).
ARG BASE=debian:bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${BASE} AS build
WORKDIR /src
COPY . .
RUN scripts/setup.sh --build-only && \
    cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYNAPSE_WERROR=ON && \
    cmake --build /build --target synapse-tracker -j "$(nproc)" && \
    strip /build/app/synapse-tracker

FROM ${RUNTIME_BASE}
# Exactly the packages that own the libraries `ldd synapse-tracker` lists, past those
# every Debian system has (tests/container/test_image.py holds this list against ldd and
# dpkg -S in the built image).
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgfortran5 libgomp1 libjansson4 libmbedcrypto7 libmbedtls14 libmbedx509-1 \
      libnng1 libopenblas0-pthread libprotobuf-c1 libquadmath0 libsodium23 \
      libsqlite3-0 libssl3 libstdc++6 libuv1 libwslay1 libxxhash0 libyaml-0-2 && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* && \
    mkdir -p /var/lib/synapse && chown 65534:65534 /var/lib/synapse
COPY --from=build /build/app/synapse-tracker /usr/local/bin/synapse-tracker
COPY config.yaml /etc/synapse/config.yaml
# nobody: the process needs no privilege and writes only its data directory, so the root
# file system can be mounted read-only.
USER 65534:65534
VOLUME /var/lib/synapse
WORKDIR /var/lib/synapse
EXPOSE 6881/tcp 6882/tcp 6969/udp 7000/tcp 7001/tcp 7080/tcp
# The binary is PID 1: it handles SIGTERM itself (a graceful leave on a node) and starts
# no children, so no init is needed. The health check asks /healthz where the container
# serves HTTP (6881 by default; a node's admin port in k8s/; a test's own address).
ENV SYNAPSE_HEALTH_HOST=127.0.0.1 SYNAPSE_HEALTH_PORT=6881
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/$SYNAPSE_HEALTH_HOST/$SYNAPSE_HEALTH_PORT && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/synapse-tracker"]
CMD ["--config=/etc/synapse/config.yaml", "--data-dir=/var/lib/synapse"]
