# syntax=docker/dockerfile:1
# mcp-verifier, the ForwardAuth endpoint (/verify) the reverse proxy asks on every MCP request.
# Build from the repository root:
#   docker build -f deploy/docker/verifier.Dockerfile -t mcp-gateway/verifier .

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mcp-verifier --bin mcp-verifier \
 && install -D -m 0755 target/release/mcp-verifier /out/mcp-verifier

FROM ${RUNTIME_IMAGE}
# ca-certificates: AUTHZ_URL may be https (JWKS and the revocation feed).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=builder /out/mcp-verifier /usr/local/bin/mcp-verifier
USER 10001:10001
ENV VERIFIER_LISTEN=0.0.0.0:8001
EXPOSE 8001
# The verifier keeps everything in memory: the root filesystem can be read-only.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8001 && printf 'GET /health HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/mcp-verifier"]
