# Thin wrappers over `mcp-gateway` (same names as its subcommands); the
# commands themselves are documented in README.md and docs/.

gw := "cargo run --quiet -p mcp-gateway --"

# Run the whole gateway on this machine.
up:
    cargo run --release -p mcp-gateway -- up

# The whole test suite (what CI runs).
test:
    bash scripts/test.sh

# GATEWAY_JWT_SECRET and REDIS_PASSWORD into .env (existing values kept unless --force).
generate-secrets *args:
    {{gw}} generate-secrets {{args}}

# Make a fresh signing key current (the previous one stays published).
rotate-keys:
    {{gw}} rotate-keys

# clients list | show ID | delete ID | delete-test --name-pattern GLOB [--dry-run]
clients *args:
    {{gw}} clients {{args}}

# tokens list [--user U] [--client C] | revoke X | revoke-user U | purge-expired
tokens *args:
    {{gw}} tokens {{args}}

# All state to a JSON file.
backup file:
    {{gw}} backup --out {{file}}

# Load a backup (add --force to replace existing records).
restore file *args:
    {{gw}} restore --in {{file}} {{args}}

# Configuration, store, keys, every /ready, TLS certificate expiry.
check-health *args:
    {{gw}} check-health {{args}}

# OAuth flow diagnostics per client.
flows *args:
    {{gw}} flows {{args}}

# Registrations and refresh tokens from the Python gateway's Redis (--from-redis URL [--dry-run]).
import-python *args:
    {{gw}} import-python {{args}}

# Add a local user (password from stdin).
add-user name:
    {{gw}} add-user {{name}}

# The operator's book (needs mdbook: cargo install mdbook --locked).
docs:
    mdbook build docs
