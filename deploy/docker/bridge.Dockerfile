# syntax=docker/dockerfile:1
# mcp-bridge: serves a stdio MCP server over Streamable HTTP. The runtime has Node.js 20
# and Python 3 with the MCP servers of the Python gateway preinstalled at pinned versions,
# so BRIDGE_COMMAND names a program on PATH and nothing is downloaded at run time.
# mcp-connect (`mcp-bridge connect`) is not shipped: it runs where an MCP client runs, not
# in a server image, and leaving it out keeps the image's build free of OAuth and JWT signing.
# Build from the repository root:
#   docker build -f deploy/docker/bridge.Dockerfile -t mcp-gateway/bridge .
#   docker build -f deploy/docker/bridge.Dockerfile --target bridge-playwright -t mcp-gateway/bridge-playwright .
# Behind a TLS-inspecting proxy, pass its CA bundle as the optional build secret host_ca
# (--secret id=host_ca,src=/etc/ssl/certs/ca-certificates.crt): cargo, npm and pip use it
# during the build only; it is never stored in a layer.

ARG RUST_IMAGE=rust:1-bookworm
# node:<version>-bookworm-slim is debian:bookworm-slim with Node.js installed; Debian
# bookworm's own nodejs is 18, older than the servers need.
ARG NODE_VERSION=20.20.2
ARG NODE_IMAGE=node:${NODE_VERSION}-bookworm-slim
# npm servers (the versions the test suite runs, tests/js/package.json).
ARG SERVER_EVERYTHING_VERSION=2026.8.31
ARG SERVER_FILESYSTEM_VERSION=2026.8.31
ARG SERVER_MEMORY_VERSION=2026.8.31
ARG SERVER_SEQUENTIAL_THINKING_VERSION=2026.8.31
ARG PLAYWRIGHT_MCP_VERSION=0.0.83
# PyPI servers (mcp-server-fetch and mcp-server-time as in tests/requirements.txt).
ARG MCP_SERVER_FETCH_VERSION=2026.10.24
ARG MCP_SERVER_TIME_VERSION=2026.10.19
ARG TMUX_MCP_VERSION=0.3.3

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# Sources touched when they differ from the cached build's: see authz.Dockerfile.
RUN --mount=type=secret,id=host_ca \
    --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    if [ -f /run/secrets/host_ca ]; then export CARGO_HTTP_CAINFO=/run/secrets/host_ca; fi \
 && stamp=target/.sources-bridge \
 && sources=$(find . -path ./target -prune -o -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum) \
 && if [ "$(cat "$stamp" 2>/dev/null)" != "$sources" ]; then find . -path ./target -prune -o -type f -exec touch {} +; fi \
 && CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p mcp-bridge --bin mcp-bridge \
 && install -D -m 0755 target/release/mcp-bridge /out/mcp-bridge \
 && echo "$sources" > "$stamp"

FROM ${NODE_IMAGE} AS npm-servers
ARG SERVER_EVERYTHING_VERSION
ARG SERVER_FILESYSTEM_VERSION
ARG SERVER_MEMORY_VERSION
ARG SERVER_SEQUENTIAL_THINKING_VERSION
ARG PLAYWRIGHT_MCP_VERSION
# The browser comes from Debian (bridge-playwright below), never from a download at install.
ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
RUN --mount=type=secret,id=host_ca \
    if [ -f /run/secrets/host_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/host_ca; fi \
 && npm install --prefix /opt/mcp/npm --omit=dev --no-audit --no-fund \
      "@modelcontextprotocol/server-everything@${SERVER_EVERYTHING_VERSION}" \
      "@modelcontextprotocol/server-filesystem@${SERVER_FILESYSTEM_VERSION}" \
      "@modelcontextprotocol/server-memory@${SERVER_MEMORY_VERSION}" \
      "@modelcontextprotocol/server-sequential-thinking@${SERVER_SEQUENTIAL_THINKING_VERSION}" \
      "@playwright/mcp@${PLAYWRIGHT_MCP_VERSION}" \
 && rm -rf /root/.npm

FROM ${NODE_IMAGE} AS python-servers
ARG MCP_SERVER_FETCH_VERSION
ARG MCP_SERVER_TIME_VERSION
ARG TMUX_MCP_VERSION
RUN --mount=type=secret,id=host_ca \
    if [ -f /run/secrets/host_ca ]; then export PIP_CERT=/run/secrets/host_ca; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/mcp/venv \
 && /opt/mcp/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      "mcp-server-fetch==${MCP_SERVER_FETCH_VERSION}" \
      "mcp-server-time==${MCP_SERVER_TIME_VERSION}" \
      "tmux-mcp==${TMUX_MCP_VERSION}"

FROM ${NODE_IMAGE} AS bridge
# python3: the venv's interpreter (same Debian python3 as in python-servers);
# tmux: for tmux-mcp; ca-certificates: mcp-server-fetch fetches https pages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tmux ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
 && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=npm-servers /opt/mcp/npm /opt/mcp/npm
COPY --from=python-servers /opt/mcp/venv /opt/mcp/venv
COPY --from=builder /out/mcp-bridge /usr/local/bin/mcp-bridge
# The bridge gives its children this PATH (and only BRIDGE_ENV_* besides).
ENV PATH=/opt/mcp/venv/bin:/opt/mcp/npm/node_modules/.bin:/usr/local/bin:/usr/bin:/bin \
    BRIDGE_LISTEN=0.0.0.0:3000
USER 10001:10001
WORKDIR /data
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000 && printf 'GET /health HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == *' 200 '* ]]"]
ENTRYPOINT ["/usr/local/bin/mcp-bridge"]

# The playwright service: the same bridge plus Debian's Chromium (playwright-mcp is told
# --executable-path /usr/bin/chromium, so no browser is downloaded).
FROM bridge AS bridge-playwright
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-liberation \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001

# Default target: the bridge without a browser.
FROM bridge
