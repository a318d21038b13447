# Thin wrappers; the commands themselves are documented in README.md.

# Run the whole gateway on this machine.
up:
    cargo run --release -p mcp-gateway -- up

# The whole test suite (what CI runs).
test:
    bash scripts/test.sh
