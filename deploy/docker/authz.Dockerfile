# syntax=docker/dockerfile:1
# mcp-authz, the OAuth 2.1 authorization server.
# Build from the repository root:
#   docker build -f deploy/docker/authz.Dockerfile -t mcp-gateway/authz .
# Its .dockerignore is authz.Dockerfile.dockerignore (BuildKit reads <Dockerfile>.dockerignore;
# podman: --ignorefile deploy/docker/authz.Dockerfile.dockerignore).
# Behind a TLS-inspecting proxy, pass its CA bundle as the optional build secret host_ca
# (--secret id=host_ca,src=/etc/ssl/certs/ca-certificates.crt): cargo uses it during the
# build only; it is never stored in a layer.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds; the binary is
# copied out of the cached target/ because cache mounts are not part of the layer.
# cargo judges freshness by mtimes, so sources older than the cached build (another
# checkout was built last) would give a stale binary: when the sources' hash differs
# from the last build's, they are touched first.
# Symbols stripped: the image carries the binary only.
RUN --mount=type=secret,id=host_ca \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    if [ -f /run/secrets/host_ca ]; then export CARGO_HTTP_CAINFO=/run/secrets/host_ca; fi \
 && stamp=target/.sources-authz \
 && sources=$(find . -path ./target -prune -o -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum) \
 && if [ "$(cat "$stamp" 2>/dev/null)" != "$sources" ]; then find . -path ./target -prune -o -type f -exec touch {} +; fi \
 && CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p mcp-authz --bin mcp-authz \
 && install -D -m 0755 target/release/mcp-authz /out/mcp-authz \
 && echo "$sources" > "$stamp"

# The runtime is FROM scratch: the binary, the libraries it loads, bash for the health
# check and the CA bundle (outbound HTTPS: GitHub sign-in, client ID metadata documents),
# gathered from a Debian stage by slim-rootfs.sh.
FROM ${RUNTIME_IMAGE} AS rootfs
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/mcp-authz /rootfs/usr/local/bin/mcp-authz
COPY deploy/docker/slim-rootfs.sh /usr/local/sbin/slim-rootfs.sh
RUN sh /usr/local/sbin/slim-rootfs.sh /rootfs /usr/local/bin/mcp-authz \
 && install -d -o 10001 -g 10001 -m 0700 /rootfs/data

FROM scratch
COPY --from=rootfs /rootfs /
USER 10001:10001
WORKDIR /data
# The embedded store (used when REDIS_URL is unset) lives in the /data volume.
ENV AUTHZ_LISTEN=0.0.0.0:8000 \
    STORE_PATH=/data/gateway.redb
EXPOSE 8000
VOLUME ["/data"]
# No curl in the image: bash's /dev/tcp asks /health and checks for a 200 status line.
# The port is AUTHZ_LISTEN's default; change both together.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == *' 200 '* ]]"]
ENTRYPOINT ["/usr/local/bin/mcp-authz"]
