# syntax=docker/dockerfile:1
# mcp-authz, the OAuth 2.1 authorization server.
# Build from the repository root:
#   docker build -f deploy/docker/authz.Dockerfile -t mcp-gateway/authz .
# Its .dockerignore is authz.Dockerfile.dockerignore (BuildKit reads <Dockerfile>.dockerignore).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds; the binary is
# copied out of the cached target/ because cache mounts are not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mcp-authz --bin mcp-authz \
 && install -D -m 0755 target/release/mcp-authz /out/mcp-authz

FROM ${RUNTIME_IMAGE}
# ca-certificates: outbound HTTPS (GitHub sign-in, client ID metadata documents).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
 && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=builder /out/mcp-authz /usr/local/bin/mcp-authz
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
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/mcp-authz"]
