#!/usr/bin/env bash
# Side-by-side benchmark: our services vs. the Python MCP OAuth gateway's auth
# service (PyPI mcp-oauth-dynamicclient==0.2.0), in one run, against one
# private redis-server, with one load generator (ours, built --release).
#
#   bench/run.sh [authz|verify|all]      (default: all)
#
# Knobs (environment): CONCURRENCY (authz, default 16), REQUESTS (authz, per
# scenario and round, default 2000), ROUNDS (default 3), CONNECTIONS (verify,
# default 32), SECONDS_PER_RUN (verify, default 3), MAX_SECONDS (authz cap per
# scenario, default 20).
# All traffic goes to 127.0.0.1; every load loop is bounded in count and time,
# and each load generator is killed if it runs past 15 minutes.
# See bench/README.md for what is measured and how the Python side gets tokens.
set -euo pipefail

what="${1:-all}"
case "$what" in authz|verify|all) ;; *) echo "usage: bench/run.sh [authz|verify|all]" >&2; exit 2 ;; esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
concurrency="${CONCURRENCY:-16}"
requests="${REQUESTS:-2000}"
rounds="${ROUNDS:-3}"
connections="${CONNECTIONS:-32}"
seconds="${SECONDS_PER_RUN:-3}"
max_seconds="${MAX_SECONDS:-20}"

# --- Python venv with the pinned closure (re-made when requirements change) ---
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "== creating $venv from bench/requirements.txt"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.txt"
  "$venv/bin/pip" check >/dev/null
  echo "$want" >"$stamp"
fi

# --- our load generators, release build ---
echo "== building the benchmark examples (--release)"
(cd "$root" && cargo build --quiet --release -p mcp-authz --example bench_tokens \
  && cargo build --quiet --release -p mcp-verifier --example bench_verify)

work="$(mktemp -d)"
chmod 700 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url, seconds
  local deadline=$((SECONDS + $2))
  until "$venv/bin/python" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; do
    if ((SECONDS >= deadline)); then echo "timed out waiting for $1" >&2; return 1; fi
    sleep 0.2
  done
}

# --- one private redis-server (no persistence), shared by both sides ---
redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
# Python gateway on db 0, ours on db 1: same server process, no key collisions.
redis_py="redis://127.0.0.1:$redis_port/0"
redis_ours="redis://127.0.0.1:$redis_port/1"

# --- the Python gateway's auth service, started the way its Dockerfile does
#     (`mcp-oauth-server --host H --port P`: one uvicorn process) ---
py_port="$(free_port)"
py_url="http://127.0.0.1:$py_port"
jwt_key_b64="$("$venv/bin/python" - <<'EOF'
import base64
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
print(base64.b64encode(pem).decode())
EOF
)"
py_env=(
  env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$work"
  GITHUB_CLIENT_ID=bench-not-used GITHUB_CLIENT_SECRET=bench-not-used
  JWT_SECRET="$(head -c 32 /dev/urandom | base64)"
  JWT_ALGORITHM=RS256 JWT_PRIVATE_KEY_B64="$jwt_key_b64"
  BASE_DOMAIN=bench.example.test
  REDIS_URL="$redis_py" REDIS_PASSWORD=
  ACCESS_TOKEN_LIFETIME=86400 REFRESH_TOKEN_LIFETIME=2592000 SESSION_TIMEOUT=3600 CLIENT_LIFETIME=7776000
  ALLOWED_GITHUB_USERS='*' MCP_PROTOCOL_VERSION=2025-06-18
  # Its default is INFO: two log lines per request. WARNING spares it that cost.
  LOG_LEVEL=WARNING
)
# cwd = $work: pydantic-settings would also read a ./.env file.
(cd "$work" && exec "${py_env[@]}" "$venv/bin/mcp-oauth-server" --host 127.0.0.1 --port "$py_port" \
  >"$work/python.log" 2>&1) &
py_pid=$!
pids+=("$py_pid")
if ! wait_http "$py_url/.well-known/oauth-authorization-server" 60; then
  tail -20 "$work/python.log" >&2
  exit 1
fi
if ! (cd "$work" && "${py_env[@]}" "$venv/bin/python" "$here/python_seed.py" "$py_url" \
  "$work/python-creds.json" "$concurrency" 2>"$work/seed.log"); then
  cat "$work/seed.log" >&2
  exit 1
fi

echo
echo "== $(date -u +%FT%TZ)  $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
echo "   redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on 127.0.0.1:$redis_port (python: db 0, ours: db 1)"
echo "   python gateway: mcp-oauth-server (mcp-oauth-dynamicclient 0.2.0, RS256), pid $py_pid, $py_url"
if [[ "$what" == authz || "$what" == all ]]; then
  echo
  timeout 900 "$root/target/release/examples/bench_tokens" \
    --requests "$requests" --concurrency "$concurrency" --rounds "$rounds" --max-seconds "$max_seconds" \
    --redis-url "$redis_ours" --python-url "$py_url" --python-creds "$work/python-creds.json"
fi
if [[ "$what" == verify || "$what" == all ]]; then
  echo
  timeout 900 "$root/target/release/examples/bench_verify" \
    --seconds "$seconds" --connections "$connections" --rounds "$rounds" \
    --redis-url "$redis_ours" --python-url "$py_url" --python-creds "$work/python-creds.json" \
    --python-pid "$py_pid"
fi
