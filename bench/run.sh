#!/usr/bin/env bash
# Socket benchmark: our services measured the way an operator would, through
# the socket with an external load generator, side by side with anchors in the
# same run, and the table of issue 17 printed with ratios.
#
#   bench/run.sh [all|verify|authz|micro]     (default: all)
#
# * Load generator: wrk (Debian package), one thread, CONNECTIONS keep-alive
#   connections, pinned to CPU LOAD_CPU. Lua scripts in bench/wrk/.
# * Servers, one worker each, pinned with their Redis to CPU SERVER_CPU: our
#   mcp-verifier and mcp-authz (release binaries; authz once on Redis, once on
#   the embedded store), and the anchors: a no-op actix-web endpoint
#   (verifier/examples/bench_noop.rs), nginx `return 200`, and the Python
#   gateway's auth service (PyPI mcp-oauth-dynamicclient==0.2.0, one uvicorn
#   process, as its Dockerfile runs it, logging at its default INFO), all
#   against one private redis-server (Python db 0, ours db 1).
# * ROUNDS rounds; in each, a row's sides run back to back (their order
#   rotates by round) and its ratio is taken within the round; the table
#   shows the median of those ratios beside the median rate of each side.
# * `micro`: the in-process microbenchmarks and the older in-process report
#   (verifier/examples/bench_verify.rs, authz-server/examples/bench_tokens.rs).
#
# Knobs (environment): ROUNDS (5), SECONDS_PER_RUN (5), CONNECTIONS (32),
# LOAD_CPU (0), SERVER_CPU (1), PROFILE (1: perf profile of the verifier
# during one cached-token run, if perf is installed), PY_LOG_LEVEL (INFO),
# FRESH (1: every server but Redis restarted before each round after the first),
# BIN_DIR (binaries built elsewhere, laid out as target/release: no build).
# All traffic goes to 127.0.0.1; every load run is bounded in time.
set -euo pipefail

what="${1:-all}"
case "$what" in all|verify|authz|micro) ;; *) echo "usage: bench/run.sh [all|verify|authz|micro]" >&2; exit 2 ;; esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
rounds="${ROUNDS:-5}"
seconds="${SECONDS_PER_RUN:-5}"
connections="${CONNECTIONS:-32}"
load_cpu="${LOAD_CPU:-0}"
server_cpu="${SERVER_CPU:-1}"
profile="${PROFILE:-1}"
fresh="${FRESH:-1}"
families=$((connections * 2))
rel="${BIN_DIR:-$root/target/release}"

if [[ "$what" == micro ]]; then
  echo "== in-process microbenchmarks (release build)"
  (cd "$root" && cargo build --quiet --release -p mcp-authz --example bench_tokens \
    && cargo build --quiet --release -p mcp-verifier --example bench_verify)
  timeout 900 "$rel/examples/bench_verify"
  timeout 900 "$rel/examples/bench_tokens"
  exit 0
fi

for tool in wrk nginx redis-server taskset; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool (apt-get install -y wrk nginx redis-server util-linux)" >&2; exit 2; }
done

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

if [[ -z "${BIN_DIR:-}" ]]; then
  echo "== building (--release): mcp-authz, mcp-verifier, bench_noop, bench_tokens, bench_verify"
  (cd "$root" && cargo build --quiet --release -p mcp-authz --bin mcp-authz --example bench_tokens \
    && cargo build --quiet --release -p mcp-verifier --bin mcp-verifier --example bench_noop --example bench_verify)
fi

work="$(mktemp -d)"
chmod 700 "$work"
results="$work/results"
mkdir "$results"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

py="$venv/bin/python"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url, seconds
  local deadline=$((SECONDS + $2))
  until "$py" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; do
    if ((SECONDS >= deadline)); then echo "timed out waiting for $1" >&2; return 1; fi
    sleep 0.2
  done
}
# wait_until SECONDS COMMAND...: polls COMMAND until it succeeds; fails the
# run (and so runs the cleanup) if it has not within SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "timed out waiting for: $*" >&2; return 1; fi
    sleep 0.1
  done
}
on_server() { taskset -c "$server_cpu" "$@"; }
# serve_on_server COMMAND...: COMMAND in the background on the servers' CPU,
# its own pid kept for the cleanup. (`on_server … &` would keep the pid of
# the subshell running the function, and killing that left the server itself
# running after the benchmark.)
serve_on_server() {
  taskset -c "$server_cpu" "$@" &
  pids+=($!)
}
# The same token with one signature character changed (a middle one: the last
# may carry only padding bits).
broken() { "$py" -c 'import sys; t=sys.argv[1]; i=len(t)-10; print(t[:i]+("A" if t[i]!="A" else "B")+t[i+1:])' "$1"; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# --- one private redis-server (no persistence), on the servers' CPU ---
redis_port="$(free_port)"
serve_on_server redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  --dir "$work" --logfile "$work/redis.log"
wait_until 30 redis-cli -p "$redis_port" ping
redis_py="redis://127.0.0.1:$redis_port/0"
redis_ours="redis://127.0.0.1:$redis_port/1"

# stop_server PID: stops one of the servers started here and forgets its pid
# (so the cleanup never signals a pid the system has given to another process).
stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# --- anchors: no-op actix (one worker) and nginx return 200 (one worker) ---
start_noop() { # name (noop, es256), extra arguments
  local name=$1
  shift
  serve_on_server "$rel/examples/bench_noop" 127.0.0.1:0 "$@" >"$work/$name.out" 2>&1
  printf -v "${name}_pid" '%s' "${pids[-1]}"
  wait_until 30 grep -q '^LISTEN ' "$work/$name.out"
  printf -v "${name}_url" 'http://%s' "$(sed -n 's/^LISTEN //p' "$work/$name.out" | head -1)"
}
start_noop noop
# The forged-token row's anchor on the same HTTP stack: the no-op that checks
# each request's token signature with ES256 and nothing else.
start_noop es256 --es256
nginx_port="$(free_port)"
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 200; }
  }
}
EOF
nginx_url="http://127.0.0.1:$nginx_port"
start_nginx() {
  serve_on_server nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/stderr"
  nginx_pid=${pids[-1]}
  wait_http "$nginx_url/" 20
}
start_nginx

# --- the Python gateway's auth service, as its Dockerfile starts it ---
py_port="$(free_port)"
py_url="http://127.0.0.1:$py_port"
jwt_key_b64="$("$py" - <<'EOF'
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
  LOG_LEVEL="${PY_LOG_LEVEL:-INFO}"
)
# cwd = $work: pydantic-settings would also read a ./.env file.
start_python() {
  (cd "$work" && exec "${py_env[@]}" taskset -c "$server_cpu" "$venv/bin/mcp-oauth-server" \
    --host 127.0.0.1 --port "$py_port" >>"$work/python.log" 2>&1) &
  py_pid=$!
  pids+=("$py_pid")
  if ! wait_http "$py_url/.well-known/oauth-authorization-server" 60; then
    tail -20 "$work/python.log" >&2
    exit 1
  fi
}
start_python
if ! (cd "$work" && "${py_env[@]}" "$py" "$here/python_seed.py" "$py_url" \
  "$work/python-creds.json" "$families" 2>"$work/seed.log"); then
  cat "$work/seed.log" >&2
  exit 1
fi
"$py" - "$work/python-creds.json" "$work/python-families.txt" <<'EOF'
import json, os, sys
c = json.load(open(sys.argv[1]))
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(f"{c['client_id']} {c['client_secret']}\n" + "\n".join(c["refresh_tokens"]) + "\n")
EOF
py_token="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$work/python-creds.json")"

# --- ours: mcp-authz on Redis and on the embedded store, one worker each ---
secret="bench-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
authz_env() { # port, store variable
  echo AUTH_ISSUER="http://127.0.0.1:$1" AUTHZ_LISTEN="127.0.0.1:$1" AUTHZ_WORKERS=1 \
    GATEWAY_JWT_SECRET="$secret" MCP_ECHO_ENABLED=true MCP_ECHO_URL=https://echo.example.com/mcp \
    RATE_LIMIT_ENABLED=false RUST_LOG=info "$2"
}
start_authz() { # name, port, store variable
  local fx="$work/fx-$1"
  # Credentials first, once (the embedded store is one process's at a time).
  if [[ ! -d "$fx" ]]; then
    mkdir -m 700 "$fx"
    # shellcheck disable=SC2046
    env $(authz_env "$2" "$3") "$rel/examples/bench_tokens" --fixture "$fx" \
      --families "$families" --files "$((rounds + 1))" >"$work/fixture-$1.log" 2>&1 \
      || { cat "$work/fixture-$1.log" >&2; exit 1; }
  fi
  # shellcheck disable=SC2046
  env $(authz_env "$2" "$3") taskset -c "$server_cpu" "$rel/mcp-authz" >>"$work/authz-$1.log" 2>&1 &
  pids+=($!)
  printf -v "authz_pid_$1" '%s' "$!"
  wait_http "http://127.0.0.1:$2/health" 60
}
authz_redis_port="$(free_port)"
authz_embedded_port="$(free_port)"
start_authz_both() {
  start_authz redis "$authz_redis_port" REDIS_URL="$redis_ours"
  start_authz embedded "$authz_embedded_port" STORE_PATH="$work/embedded/gateway.redb"
}
start_authz_both
authz_redis="http://127.0.0.1:$authz_redis_port"
authz_embedded="http://127.0.0.1:$authz_embedded_port"

# --- ours: mcp-verifier, one worker, keys from the Redis authz-server,
#     revocations by pub/sub from the same Redis ---
verifier_port="$(free_port)"
verifier_url="http://127.0.0.1:$verifier_port"
start_verifier() {
  env AUTH_ISSUER="$authz_redis" AUTHZ_URL="$authz_redis" REDIS_URL="$redis_ours" \
    MCP_ECHO_ENABLED=true MCP_ECHO_URL=https://echo.example.com/mcp \
    VERIFIER_LISTEN="127.0.0.1:$verifier_port" VERIFIER_WORKERS=1 RUST_LOG=info \
    taskset -c "$server_cpu" "$rel/mcp-verifier" >>"$work/verifier.log" 2>&1 &
  verifier_pid=$!
  pids+=("$verifier_pid")
  wait_http "$verifier_url/ready" 60
}
start_verifier
token="$(head -1 "$work/fx-redis/access.txt")"
bad_token="$(broken "$token")"
py_bad_token="$(broken "$py_token")"
verifier_rss_idle="$(rss_mib "$verifier_pid")"

echo
echo "== $(date -u +%FT%TZ)  $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
echo "   wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t1 -c$connections on CPU $load_cpu; servers (1 worker each) and redis-server on CPU $server_cpu"
echo "   $rounds interleaved round(s) of ${seconds}s per run; redis-server $(redis-server --version | grep -o 'v=[0-9.]*')"
echo "   anchors: no-op actix $noop_url, ES256-only actix $es256_url, nginx $(nginx -v 2>&1 | cut -d/ -f2) $nginx_url, python gateway (mcp-oauth-dynamicclient 0.2.0) $py_url"

# run ROW TARGET URL SCRIPT [VAR=value...]: one wrk run, its output kept for table.py.
run() {
  local row=$1 target=$2 url=$3 script=$4
  shift 4
  local out="$results/$row.$target.r$round.txt"
  if ! env "$@" taskset -c "$load_cpu" wrk -t1 -c"$connections" -d"${seconds}s" --timeout 10s --latency \
    -s "$here/wrk/$script" "$url" >"$out" 2>&1; then
    cat "$out" >&2
    exit 1
  fi
  printf '   %-18s %-9s %12s req/s\n' "$row" "$target" "$(awk '/^Requests\/sec:/ {print $2}' "$out")"
}
# Rotates the sides' order by round, so drift on a shared machine hits all.
order() { local a=("$@") n=$#; for ((i = 0; i < n; i++)); do echo "${a[(i + round) % n]}"; done; }

# Each row's sides run back to back, in an order that rotates by round, and
# the ratios are taken within a round (table.py): the machine's speed drifts
# by tens of percent over minutes when it is shared, and a ratio of two runs
# seconds apart sees far less of that than a ratio of medians taken minutes apart.
#
# With FRESH=1 (the default) every server but Redis starts anew before each
# round after the first: two processes of one binary can differ by several
# percent for the life of the process (a difference that went away with
# address-space randomisation off; bench/README.md, Caveats), so each round
# draws anew and the median of the rounds is not one draw's. Stores and keys
# carry over (Redis, the embedded file, the same signing secret), so every
# token stays valid.
restart_servers() {
  local t0=$SECONDS
  stop_server "$verifier_pid"
  stop_server "$authz_pid_redis"
  stop_server "$authz_pid_embedded"
  start_authz_both
  start_verifier
  stop_server "$noop_pid"
  start_noop noop
  stop_server "$es256_pid"
  start_noop es256 --es256
  stop_server "$nginx_pid"
  start_nginx
  stop_server "$py_pid"
  start_python
  echo "   every server but Redis restarted ($((SECONDS - t0)) s)"
}
for ((round = 0; round < rounds; round++)); do
  echo
  echo "-- round $((round + 1)) of $rounds"
  if ((round > 0)) && [[ "$fresh" == 1 ]]; then restart_servers; fi
  if [[ "$what" == all || "$what" == verify ]]; then
    # The same token, then with a broken signature (each side its own token).
    for row in verify_cached verify_badsig; do
      if [[ $row == verify_cached ]]; then ours_t=$token py_t=$py_token; else ours_t=$bad_token py_t=$py_bad_token; fi
      for t in $(order noop nginx python ours); do
        case $t in
          noop) run $row noop "$noop_url" verify.lua TOKEN="$ours_t" ;;
          nginx) run $row nginx "$nginx_url" verify.lua TOKEN="$ours_t" ;;
          python) run $row python "$py_url" verify.lua TOKEN="$py_t" ;;
          ours) run $row ours "$verifier_url" verify.lua TOKEN="$ours_t" ;;
        esac
      done
    done
    for t in $(order es256 ours inprocess); do
      case $t in
        es256) run verify_forged es256 "$es256_url" forged.lua TOKEN="$token" ;;
        ours) run verify_forged ours "$verifier_url" forged.lua TOKEN="$token" ;;
        # The raw ES256 rate on the servers' CPU, in process: one thread
        # verifying one valid signature in a loop (no socket, caches warm).
        inprocess)
          on_server "$rel/examples/bench_verify" --raw-es256 "$seconds" >"$results/inprocess.r$round.txt"
          printf '   %-18s %-9s %12s verifications/s\n' verify_forged in-process "$(cut -d' ' -f1 "$results/inprocess.r$round.txt")" ;;
      esac
    done
  fi
  if [[ "$what" == all || "$what" == authz ]]; then
    # The embedded rows' anchor is the Python service on Redis, so they run
    # in the same group as the Redis rows.
    for t in $(order noop nginx python ours embedded); do
      case $t in
        noop) run register_redis noop "$noop_url" register.lua ;;
        nginx) run register_redis nginx "$nginx_url" register.lua ;;
        python) run register_redis python "$py_url" register.lua ;;
        ours) run register_redis ours "$authz_redis" register.lua ;;
        embedded) run register_embedded ours "$authz_embedded" register.lua ;;
      esac
    done
    for t in $(order noop nginx python ours embedded); do
      case $t in
        noop) run refresh_redis noop "$noop_url" refresh.lua FAMILIES="$work/fx-redis/refresh-$round.txt" ROTATE=0 ;;
        nginx) run refresh_redis nginx "$nginx_url" refresh.lua FAMILIES="$work/fx-redis/refresh-$round.txt" ROTATE=0 ;;
        python) run refresh_redis python "$py_url" refresh.lua FAMILIES="$work/python-families.txt" ROTATE=0 ;;
        ours) run refresh_redis ours "$authz_redis" refresh.lua FAMILIES="$work/fx-redis/refresh-$round.txt" ROTATE=1 ;;
        embedded) run refresh_embedded ours "$authz_embedded" refresh.lua \
                    FAMILIES="$work/fx-embedded/refresh-$round.txt" ROTATE=1 ;;
      esac
    done
  fi
done

echo
echo "== results ($(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
status=0
"$py" "$here/table.py" "$results" || status=$?
echo
echo "verifier VmRSS: idle $verifier_rss_idle MiB (goal ≤ 20), after the load $(rss_mib "$verifier_pid") MiB"

# profile WHO PID URL ROW SCRIPT TITLE [VAR=value...]: one run of ROW against
# URL under perf attached to PID; self time by binary and by symbol.
profile() {
  local who=$1 pid=$2 url=$3 row=$4 script=$5 title=$6
  shift 6
  echo
  echo "== where the $who's time goes: perf, one $title run (${seconds}s), self time by symbol"
  perf record -q -F 4999 -g -p "$pid" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1 &
  perf_pid=$!
  round=profile
  run "$row" ours "$url" "$script" "$@" >/dev/null || true
  wait "$perf_pid" || true
  report() { perf report -i "$work/perf.data" --stdio --no-children -g none "$@" 2>/dev/null | grep '%' | sed 's/ *$//'; }
  echo "   by binary (the kernel is the socket: TCP, epoll, scheduling):"
  report --sort dso | head -6 | sed 's/^/   /' || true
  echo "   by symbol (self time ≥ ${PERF_PERCENT:-0.8}%):"
  report --sort dso,symbol --percent-limit "${PERF_PERCENT:-0.8}" | cut -c1-130 | head -"${PERF_LINES:-40}" | sed 's/^/   /' || true
  rm -f "$results/$row".*
}
if [[ "$profile" == 1 ]] && command -v perf >/dev/null; then
  if [[ "$what" == all || "$what" == verify ]]; then
    profile verifier "$verifier_pid" "$verifier_url" verify_profile verify.lua cached-token TOKEN="$token"
    profile verifier "$verifier_pid" "$verifier_url" forged_profile forged.lua forged-token TOKEN="$token"
  fi
  if [[ "$what" == all || "$what" == authz ]]; then
    # The authorization server on Redis: /register, and the rotating refresh
    # grant on the fixture's spare family file.
    profile "Redis authz-server" "$authz_pid_redis" "$authz_redis" register_profile register.lua /register
    profile "Redis authz-server" "$authz_pid_redis" "$authz_redis" refresh_profile refresh.lua "refresh grant" \
      FAMILIES="$work/fx-redis/refresh-$rounds.txt" ROTATE=1
  fi
fi
exit "$status"
