#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: the same count on
# a quiet machine and on a busy one (it counts, it does not time), so a change
# can be judged where wall-clock benchmarks (bench/run.sh) are noise.
#
#   bench/instructions.sh [N]        (N requests, default 2000; BIN_DIR as in run.sh)
#
# Each server runs under callgrind twice, answering N and then 2N requests of
# one kind over one keep-alive connection (bench/instructions/send.py); the
# difference divided by N is the cost of one request, start-up and shutdown
# cancelled out. User space only: the kernel's share (about the same for
# every server here) is not counted. Rows: /verify with a cached token (ours)
# beside the no-op actix endpoint, /register and a rotating refresh grant
# (mcp-authz on a private Redis, RUST_LOG=info as in production).
#
# Caveat: valgrind's virtual CPU has no SHA extensions, so SHA-256 runs in
# software here (about 30,000 instructions for a 700-byte token) where the
# real CPU takes a few hundred cycles; the table shows the count with and
# without it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
n="${1:-2000}"
rel="${BIN_DIR:-$root/target/release}"
for tool in valgrind redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/instructions.sh needs $tool" >&2; exit 2; }
done
if [[ -z "${BIN_DIR:-}" ]]; then
  (cd "$root" && cargo build --quiet --release -p mcp-authz --bin mcp-authz --example bench_tokens \
    && cargo build --quiet --release -p mcp-verifier --bin mcp-verifier --example bench_noop --example bench_verify)
fi
send="$here/instructions/send.py"
w="$(mktemp -d)"
chmod 700 "$w"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$w"
}
trap cleanup EXIT INT TERM
# Servers bind port 0 and say where (mcp-authz and mcp-verifier log their
# address; bench_noop prints LISTEN).
addr_of() { # log file, pattern
  local deadline=$((SECONDS + 120))
  until grep -qE "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "no address in $1" >&2; cat "$1" >&2; exit 1; }
    sleep 0.2
  done
  grep -E "$2" "$1" | grep -oE '127\.0\.0\.1:[0-9]+' | head -1
}

# A benchmark, not a test: a port picked here and bound by redis-server just
# after is fine (run.sh does the same).
redis_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$w" >"$w/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
redis_url="redis://127.0.0.1:$redis_port/1"

authz_env=(AUTHZ_LISTEN=127.0.0.1:0 AUTHZ_WORKERS=1 GATEWAY_JWT_SECRET=bench-instructions-0123456789abcdef
  MCP_ECHO_ENABLED=true MCP_ECHO_URL=https://echo.example.com/mcp RATE_LIMIT_ENABLED=false
  REDIS_URL="$redis_url" RUST_LOG=info LOG_FORMAT=json)

# count LABEL KIND ARGS-FOR-SEND -- SERVER COMMAND...: instructions per request.
count() {
  local label=$1 kind=$2 extra=$3
  shift 4
  local totals=()
  for k in "$n" $((2 * n)); do
    local file="${label//[^a-z0-9]/_}"
    local log="$w/$file-$k.log" out="$w/$file-$k.callgrind"
    # `env VAR=… program`: valgrind goes in front of the program itself
    # (it does not follow an exec).
    local cmd=() args=("$@")
    if [[ ${args[0]} == env ]]; then
      cmd=(env)
      args=("${args[@]:1}")
      while [[ ${args[0]} == *=* ]]; do cmd+=("${args[0]}"); args=("${args[@]:1}"); done
    fi
    "${cmd[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "${args[@]}" >"$log" 2>&1 &
    local pid=$!
    local addr
    addr="$(addr_of "$log" 'listening|LISTEN')"
    local host=${addr%:*} port=${addr##*:}
    # Ready (the verifier answers 503 until its keys and revocation feed are in).
    local deadline=$((SECONDS + 120))
    until curl -sf -o /dev/null "http://$addr/ready" || curl -sf -o /dev/null "http://$addr/health"; do
      ((SECONDS < deadline)) || { echo "$label never became ready" >&2; cat "$log" >&2; exit 1; }
      sleep 0.2
    done
    # Warm, then the counted requests (the warm-up is in both runs and cancels).
    # shellcheck disable=SC2086
    python3 "$send" "$kind" "$host" "$port" 10 $extra
    # shellcheck disable=SC2086
    python3 "$send" "$kind" "$host" "$port" "$k" $extra
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    totals+=("$(awk '/^(summary|totals):/ && !n {print $2; n=1}' "$out")")
    sha+=("$(callgrind_annotate "$out" 2>/dev/null | awk '/sha2::sha256::soft::compress/ && !n {gsub(",","",$1); print $1; n=1}')")
  done
  local per=$(((totals[1] - totals[0]) / n))
  local sha_per=$(((${sha[1]:-0} - ${sha[0]:-0}) / n))
  printf '  %-28s %9d instructions per request  (%d without software SHA-256)\n' "$label" "$per" $((per - sha_per))
  last_per=$per
  sha=()
}
sha=()
declare -A per_metrics=()

echo "== instructions per request, callgrind, N=$n ($(date -u +%FT%TZ))"
# Credentials for the verifier row and the refresh row (the authz-server's own store and key).
mkdir -m 700 "$w/fx"
env AUTH_ISSUER=http://127.0.0.1:1 "${authz_env[@]}" "$rel/examples/bench_tokens" --fixture "$w/fx" \
  --families 8 --files 1 >"$w/fixture.log" 2>&1 || { cat "$w/fixture.log" >&2; exit 1; }
env AUTH_ISSUER=http://127.0.0.1:1 "${authz_env[@]}" "$rel/mcp-authz" >"$w/authz.log" 2>&1 &
pids+=($!)
authz="$(addr_of "$w/authz.log" 'listening')"
token="$(head -1 "$w/fx/access.txt")"

count "verify, cached token (ours)" verify "$token" -- \
  env AUTH_ISSUER=http://127.0.0.1:1 AUTHZ_URL="http://$authz" REDIS_URL="$redis_url" \
  MCP_ECHO_ENABLED=true MCP_ECHO_URL=https://echo.example.com/mcp VERIFIER_LISTEN=127.0.0.1:0 \
  VERIFIER_WORKERS=1 RUST_LOG=info "$rel/mcp-verifier"
# The same verifier (bench_verify's child mode) with and without recording
# its metrics: what they cost a cached /verify (issue 19: <= 3%).
# (METRICS_ROWS=0 leaves them out: bench/compare.sh, for builds older than
# bench_verify's SIGINT handling.)
for metrics in $([[ ${METRICS_ROWS:-1} == 0 ]] || echo on off); do
  flag=(); [[ $metrics == off ]] && flag=(--no-metrics)
  count "verify, cached, metrics $metrics" verify "$token" -- \
    env AUTH_ISSUER=http://127.0.0.1:1 AUTHZ_URL="http://$authz" REDIS_URL="$redis_url" \
    MCP_ECHO_ENABLED=true MCP_ECHO_URL=https://echo.example.com/mcp VERIFIER_LISTEN=127.0.0.1:0 \
    RUST_LOG=info "$rel/examples/bench_verify" --serve "${flag[@]}"
  per_metrics[$metrics]=$last_per
done
if [[ ${METRICS_ROWS:-1} != 0 ]]; then
  python3 -c 'import sys; on, off = map(int, sys.argv[1:]); print(f"  metrics cost on a cached /verify: {on - off} instructions per request, {100 * (on - off) / off:+.2f}% (issue 19: <= 3%)")' \
    "${per_metrics[on]}" "${per_metrics[off]}"
fi
count "verify, no-op actix" verify "$token" -- "$rel/examples/bench_noop" 127.0.0.1:0
# A distinct forged token each time: ours beside the endpoint that does the
# ES256 check alone (bench_noop --es256); the difference is our own checks.
count "verify, forged token (ours)" forged "$token" -- \
  env AUTH_ISSUER=http://127.0.0.1:1 AUTHZ_URL="http://$authz" REDIS_URL="$redis_url" \
  MCP_ECHO_ENABLED=true MCP_ECHO_URL=https://echo.example.com/mcp VERIFIER_LISTEN=127.0.0.1:0 \
  VERIFIER_WORKERS=1 RUST_LOG=info "$rel/mcp-verifier"
forged_ours=$last_per
count "forged token, ES256 check only" forged "$token" -- "$rel/examples/bench_noop" 127.0.0.1:0 --es256
echo "  a forged token: ours costs $((forged_ours - last_per)) instructions more than the ES256 check alone"
count "register (Redis)" register "" -- env AUTH_ISSUER=http://127.0.0.1:1 "${authz_env[@]}" "$rel/mcp-authz"
count "refresh, rotating (Redis)" refresh "$w/fx/refresh-0.txt" -- env AUTH_ISSUER=http://127.0.0.1:1 "${authz_env[@]}" "$rel/mcp-authz"
