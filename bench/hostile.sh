#!/usr/bin/env bash
# Hostile-load benchmark: each flood for --secs seconds (default 30) against
# `mcp-gateway up` (its own process) beside a legitimate MCP TypeScript SDK
# client walking the whole path again and again. Prints, per flood, the
# legitimate client's success rate and p99, and the gateway's peak RSS and
# open file descriptors. All traffic stays on 127.0.0.0/8.
#
#   bash bench/hostile.sh [--secs 30]
set -euo pipefail
cd "$(dirname "$0")/.."
# The pinned SDK and friends (the same step as the test command's).
if [ ! -d tests/js/node_modules ]; then (cd tests/js && npm ci --no-audit --no-fund); fi
cargo build --quiet --release -p mcp-gateway --bin mcp-gateway
cargo build --quiet --release -p gateway-tests --example hostile
MCP_GATEWAY_BIN="$PWD/target/release/mcp-gateway" exec target/release/examples/hostile "$@"
