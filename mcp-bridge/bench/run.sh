#!/usr/bin/env bash
# Benchmark of the bridge (see examples/bench_bridge.rs). Builds in release mode first.
# Extra proxies to compare, installed outside the repo, e.g.:
#   BENCH_EXTRA='supergateway=/tmp/sg/node_modules/.bin/supergateway --stdio "node <everything>/dist/index.js stdio" --outputTransport streamableHttp --stateful --port {port}'
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p mcp-bridge --bins --examples
exec target/release/examples/bench_bridge "$@"
