# syntax=docker/dockerfile:1
# mcp-verifier, the ForwardAuth endpoint (/verify) the reverse proxy asks on every MCP request.
# Build from the repository root:
#   docker build -f deploy/docker/verifier.Dockerfile -t mcp-gateway/verifier .
# Behind a TLS-inspecting proxy, pass its CA bundle as the optional build secret host_ca
# (see authz.Dockerfile).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# Sources touched when they differ from the cached build's: see authz.Dockerfile.
RUN --mount=type=secret,id=host_ca \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    if [ -f /run/secrets/host_ca ]; then export CARGO_HTTP_CAINFO=/run/secrets/host_ca; fi \
 && stamp=target/.sources-verifier \
 && sources=$(find . -path ./target -prune -o -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum) \
 && if [ "$(cat "$stamp" 2>/dev/null)" != "$sources" ]; then find . -path ./target -prune -o -type f -exec touch {} +; fi \
 && CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p mcp-verifier --bin mcp-verifier \
 && install -D -m 0755 target/release/mcp-verifier /out/mcp-verifier \
 && echo "$sources" > "$stamp"

# FROM scratch at the end, as in authz.Dockerfile. The CA bundle: AUTHZ_URL may be https
# (JWKS and the revocation feed).
FROM ${RUNTIME_IMAGE} AS rootfs
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/mcp-verifier /rootfs/usr/local/bin/mcp-verifier
COPY deploy/docker/slim-rootfs.sh /usr/local/sbin/slim-rootfs.sh
RUN sh /usr/local/sbin/slim-rootfs.sh /rootfs /usr/local/bin/mcp-verifier

FROM scratch
COPY --from=rootfs /rootfs /
USER 10001:10001
ENV VERIFIER_LISTEN=0.0.0.0:8001
EXPOSE 8001
# The verifier keeps everything in memory: the root filesystem can be read-only.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8001 && printf 'GET /health HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == *' 200 '* ]]"]
ENTRYPOINT ["/usr/local/bin/mcp-verifier"]
