# Image for k8s/: builds with the same setup script as a laptop, ships the binary alone.
FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/setup.sh --no-npm && \
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSYNAPSE_WERROR=ON && \
    cmake --build build --target synapse-tracker -j "$(nproc)"

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libuv1 libnng1 libprotobuf-c1 libsqlite3-0 libfaiss1 libopenblas0 libyaml-0-2 \
      libjansson4 libsodium23 libxxhash0 libgomp1 ca-certificates && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/app/synapse-tracker /usr/local/bin/synapse-tracker
USER nobody
EXPOSE 6881/tcp 6969/udp 7000/tcp 7001/tcp
ENTRYPOINT ["/usr/local/bin/synapse-tracker"]
