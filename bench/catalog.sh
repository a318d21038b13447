#!/usr/bin/env bash
# Footprint of `mcp-gateway up` with every installed catalog service enabled
# (tests/examples/catalog_footprint.rs): time to ready, idle RSS of the process
# tree, RSS with one session open on each service, RSS once they ended.
# The pinned servers come from tests/js/node_modules and .test-venv
# (bash scripts/test.sh installs both); services whose server is missing are
# named and skipped.
#
#   bash bench/catalog.sh            # release build
#   PROFILE=debug bash bench/catalog.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
flag=(--release)
[ "$profile" = debug ] && flag=()
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --quiet "${flag[@]}" -p mcp-gateway --bin mcp-gateway -p gateway-tests --example catalog_footprint
MCP_GATEWAY_BIN="$PWD/target/$profile/mcp-gateway" "target/$profile/examples/catalog_footprint"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
