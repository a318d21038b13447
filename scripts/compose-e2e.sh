#!/usr/bin/env bash
# The compose stack of deploy/compose, run for real with podman-compose and checked end to
# end with the MCP TypeScript SDK client:
#   - the images of scripts/images.sh (built first if missing);
#   - deploy/compose/up.sh starts Traefik, the authz-server, two verifiers, Redis and the
#     MCP services enabled by MCP_<NAME>_ENABLED=true in .env (echo, echo-stateless,
#     fetchs, time, everything; E2E_SERVICES: another list), with a local user
#     (mcp-gateway add-user) and secrets from mcp-gateway generate-secrets; Traefik's
#     certificate comes from a throwaway local CA instead of Let's Encrypt, and the fetch
#     services may fetch private addresses (see scripts/podman/e2e-compose.py);
#   - exactly the enabled services run; every container's health check runs until all are
#     healthy (podman has no timer for them without systemd, so this script runs them:
#     `podman healthcheck run`);
#   - from the host, through the published port: discovery answers, /metrics does not,
#     an MCP request without a token gets 401; the services not enabled answer 404;
#   - on the compose network (one client container): tests/js/e2e_client.mjs walks echo
#     and everything: 401, discovery, registration, sign-in, tool call, refresh (rotation,
#     reuse refused), revocation; tests/js/catalog_client.mjs signs in once and calls a
#     tool on every enabled service (one token for all, then one each);
#   - tests/js/restart_client.mjs: with the authz-server container stopped, a kept access
#     token still calls a tool through Traefik; started again, the client, the consent and
#     the refresh token are still there;
#   - each container is stopped (SIGTERM) and its exit time printed; `down` then leaves
#     no container, pod, network or volume of the project.
# Exits non-zero on any failure, after printing every container's last log lines and
# removing everything it started.
# Prints the time to healthy and the shutdown times. Run as root.
# E2E_KEEP=1: on failure, leave the stack (and podman's API service) running to look at.
# E2E_TRAEFIK_DEBUG=1: Traefik logs at DEBUG and serves its API on :8080 inside the network.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/podman/common.sh

require_root
ensure_packages
ensure_compose
# podman without systemd says, on every container start and stop, that it cannot set a
# timer for the health check; this script runs the checks itself. Keep the rest.
exec 2> >(grep --line-buffered -v 'unable to get systemd connection' >&2)

project=mcp-gateway
network=mcp-gateway
client_name=$project-e2e-client
traefik_ip=172.30.53.2
domain=gateway.test
# The MCP services this run enables, each by MCP_<NAME>_ENABLED=true in .env (up.sh turns
# them into compose profiles). E2E_SERVICES: another list (echo is always needed).
read -r -a services <<< "${E2E_SERVICES:-echo echo-stateless fetchs time everything}"
# The whole catalog, as up.sh knows it ('_' written '-', as in profiles and hosts).
read -r -a catalog <<< "$(sed -n -E 's/^services=\((.*)\)$/\1/p' deploy/compose/up.sh | tr _ -)"
disabled=()
for svc in "${catalog[@]}"; do
  [[ " ${services[*]} " == *" $svc "* ]] || disabled+=("$svc")
done
for svc in "${services[@]}"; do
  [[ " ${catalog[*]} " == *" $svc "* ]] || { echo "compose-e2e: $svc is not in the catalog (${catalog[*]})" >&2; exit 2; }
done
[[ " ${services[*]} " == *" echo "* ]] || { echo "compose-e2e: E2E_SERVICES must include echo" >&2; exit 2; }
node_image=localhost/mcp-gateway-base/node:20.20.2-bookworm-slim
e2e="$work/e2e"
compose_file="$e2e/compose.yml"

for img in mcp-gateway/authz:local mcp-gateway/verifier:local mcp-gateway/bridge:local \
  localhost/mcp-gateway-base/traefik:v3.7.15 localhost/mcp-gateway-base/redis:7.0-bookworm "$node_image"; do
  if ! podman image exists "$img"; then
    step "$img missing: bash scripts/images.sh"
    bash scripts/images.sh
    break
  fi
done

# The SDK client (tests/js, pinned by its package-lock.json), as scripts/test.sh installs it.
if [ ! -d tests/js/node_modules/@modelcontextprotocol/sdk ]; then
  step "npm ci (tests/js)"
  (cd tests/js && npm ci --no-audit --no-fund)
fi
# MCP_GATEWAY_CLI: an mcp-gateway binary built already (from this commit), instead of a
# debug build into target/.
if [ -n "${MCP_GATEWAY_CLI:-}" ]; then
  gateway_cli=$MCP_GATEWAY_CLI
else
  step "mcp-gateway (the operator CLI: generate-secrets, add-user)"
  nice -n 15 cargo build -q --locked -p mcp-gateway --bin mcp-gateway
  gateway_cli="$root/target/debug/mcp-gateway"
fi

# podman-compose acts on the services of the active profiles only: the enabled ones, as
# up.sh selects them.
compose() {
  COMPOSE_PROFILES=$(IFS=,; echo "${services[*]}") "$podman_compose" -f "$compose_file" --env-file "$e2e/.env" "$@"
}
svc_pid=
cleanup() {
  local rc=$?
  if ((rc != 0)) && [ -n "${E2E_KEEP:-}" ]; then
    echo "compose-e2e: E2E_KEEP set: the stack is left running (compose file $compose_file)" >&2
  else
    # The client container first: the network cannot go while it is attached.
    podman rm -f -t 0 "$client_name" >/dev/null 2>&1 || true
  fi
  if [ -z "${E2E_KEEP:-}" ] || ((rc == 0)) && [ -f "$compose_file" ]; then
    if ((rc != 0)); then
      step "failed: logs of every container"
      for c in $(podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}'); do
        echo "---- $c ($(podman inspect --format '{{.State.Status}} exit={{.State.ExitCode}}' "$c"))"
        podman logs --tail 40 "$c" 2>&1 || true
      done
    fi
    local vols
    vols=$(anonymous_volumes)
    compose down -v -t 30 --remove-orphans >/dev/null 2>&1 || true
    for v in $vols; do podman volume rm "$v" >/dev/null 2>&1 || true; done
  fi
  if [ -n "$svc_pid" ] && [ -z "${E2E_KEEP:-}" ]; then kill "$svc_pid" 2>/dev/null || true; fi
  exit "$rc"
}
trap cleanup EXIT

# A previous run interrupted before its `down`.
podman rm -f -t 0 "$client_name" >/dev/null 2>&1 || true
if podman network exists "$network" || [ -n "$(podman ps -aq --filter "label=io.podman.compose.project=$project")" ]; then
  step "removing the leftovers of an earlier run"
  # Their anonymous volumes too (down removes named volumes only).
  leftover_volumes=$(podman ps -aq --filter "label=io.podman.compose.project=$project" |
    xargs -r podman inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' |
    tr ' ' '\n' | grep -E '^[0-9a-f]{64}$' || true)
  [ -f "$compose_file" ] && compose down -v -t 5 >/dev/null 2>&1 || true
  podman ps -aq --filter "label=io.podman.compose.project=$project" | xargs -r podman rm -f -t 5 >/dev/null
  for v in $leftover_volumes; do podman volume rm "$v" >/dev/null 2>&1 || true; done
  podman pod ps -q --filter "name=pod_$project" | xargs -r podman pod rm -f >/dev/null
  podman network exists "$network" && podman network rm -f "$network" >/dev/null
fi

step "configuration in $e2e"
rm -rf "$e2e"
mkdir -p "$e2e/certs" "$e2e/users" "$e2e/state"
# A throwaway CA and a certificate for *.gateway.test that Traefik serves.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=mcp-gateway e2e CA' \
  -keyout "$e2e/ca-key.pem" -out "$e2e/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=*.$domain" \
  -keyout "$e2e/certs/key.pem" -out "$e2e/server.csr" 2>/dev/null
openssl x509 -req -in "$e2e/server.csr" -CA "$e2e/ca.pem" -CAkey "$e2e/ca-key.pem" -CAcreateserial -days 2 \
  -extfile <(printf 'subjectAltName=DNS:*.%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$domain" "$domain") \
  -out "$e2e/certs/cert.pem" 2>/dev/null
cat > "$e2e/certs/tls.yml" <<YAML
tls:
  stores:
    default:
      defaultCertificate:
        certFile: /etc/traefik/e2e/cert.pem
        keyFile: /etc/traefik/e2e/key.pem
YAML
# .env as docs/src/deployment/compose.md has it filled in: the example, the domain, the
# enabled services, then generated secrets.
sed -e "s/^BASE_DOMAIN=.*/BASE_DOMAIN=$domain/" -e "s/^ACME_EMAIL=.*/ACME_EMAIL=e2e@$domain/" \
  -e 's/^\(MCP_[A-Z0-9_]*_ENABLED\)=.*/\1=false/' deploy/compose/.env.example > "$e2e/.env"
for svc in "${services[@]}"; do
  var=${svc^^}
  var=MCP_${var//-/_}_ENABLED
  grep -q "^$var=" "$e2e/.env" || { echo "compose-e2e: .env.example has no $var" >&2; exit 1; }
  sed -i "s/^$var=.*/$var=true/" "$e2e/.env"
done
"$gateway_cli" generate-secrets --env-file "$e2e/.env" >/dev/null
{
  echo "TRAEFIK_IMAGE=localhost/mcp-gateway-base/traefik:v3.7.15"
  echo "REDIS_IMAGE=localhost/mcp-gateway-base/redis:7.0-bookworm"
  echo "DOCKER_SOCKET=$e2e/podman.sock"
  echo "HTTP_PUBLISH=127.0.0.1:"
  echo "HTTPS_PUBLISH=127.0.0.1:"
  echo "LOCAL_USERS_DIR=$e2e/users"
} >> "$e2e/.env"
user=e2e-user
password=$(openssl rand -hex 12)
"$gateway_cli" add-user "$user" --file "$e2e/users/users" <<< "$password" 2>/dev/null
chown -R 10001:10001 "$e2e/users"
"$work/venv/bin/python" scripts/podman/e2e-compose.py deploy/compose/compose.yml "$compose_file" "$e2e/certs"

# Traefik's Docker provider talks to podman's Docker-compatible API.
step "podman system service (Docker API for Traefik's provider)"
podman system service --time=0 "unix://$e2e/podman.sock" &
svc_pid=$!
until curl -sf --unix-socket "$e2e/podman.sock" http://podman/_ping >/dev/null; do
  kill -0 "$svc_pid" || { echo "podman system service exited" >&2; exit 1; }
  sleep 0.1
done

# The anonymous volumes (64 hex digits) the project's containers mount.
anonymous_volumes() {
  local c
  for c in $(containers); do
    podman inspect --format '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' "$c"
  done | tr ' ' '\n' | grep -E '^[0-9a-f]{64}$' || true
}

# Every container of the project, by name.
containers() { podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}' | sort; }

# Polls until every container of the project runs and its health check passes (each
# container must have one). $1: what to wait for (all, or a name), $2: limit in seconds.
wait_healthy() {
  local which=$1 limit=$2 t0 pending c reported=0
  local -A passed=()
  t0=$(now)
  while :; do
    pending=()
    for c in $(containers); do
      [ "$which" = all ] || [ "$c" = "$which" ] || continue
      [ -z "${passed[$c]:-}" ] || continue
      if [ -z "$(podman inspect --format '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Test}}{{end}}' "$c")" ]; then
        echo "compose-e2e: $c has no health check" >&2
        return 1
      fi
      if [ "$(podman inspect --format '{{.State.Status}}' "$c")" = running ] &&
        podman healthcheck run "$c" >/dev/null 2>&1; then
        passed[$c]=$(since "$t0")
      else
        pending+=("$c")
      fi
    done
    if ((${#pending[@]} == 0)); then
      # The last three to pass, slowest first (what the time to healthy waited for).
      echo "compose-e2e: health checks passed after: $(for c in "${!passed[@]}"; do echo "${passed[$c]} ${c#"${project}_"}"; done |
        sort -rn | head -n 3 | awk '{ printf "%s%s %ss", (NR > 1 ? ", " : ""), $2, $1 }')"
      return 0
    fi
    if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      echo "compose-e2e: not healthy after ${limit}s: ${pending[*]}" >&2
      for c in "${pending[@]}"; do
        echo "---- $c: $(podman healthcheck run "$c" 2>&1 | tail -n 3)" >&2
      done
      return 1
    fi
    # Every 10 s, what is still pending.
    if awk -v a="$t0" -v b="$(now)" -v r="$reported" 'BEGIN { exit !(b - a > 10 * (r + 1)) }'; then
      reported=$((reported + 1))
      echo "compose-e2e: after ${reported}0 s still waiting for the health checks of: ${pending[*]}"
      for c in "${pending[@]}"; do podman logs --tail 2 "$c" 2>&1 | sed "s/^/  $c: /" | cut -c1-400; done
    fi
    sleep 0.5
  done
}

# Node on the compose network, where auth.<domain> and the service hosts are Traefik: one
# container for every client script, started before the stack is used (see
# start_client), each script run in it with `podman exec`.
client() { # SCRIPT [podman exec args...]
  local script=$1
  shift
  podman exec -e NODE_EXTRA_CA_CERTS=/e2e/ca.pem -e "SIGNIN_USER=$user" -e "SIGNIN_PASSWORD=$password" \
    "$@" "$client_name" node "/js/$script"
}
# aardvark-dns 1.4 (podman's DNS for the network) drops its sockets and binds them again on
# every container start or stop on the network, and while it does, a lookup goes
# unanswered (the resolver waits out its 5 s timeout) or is answered by the host's
# resolver, the second nameserver podman writes into each container's resolv.conf, which
# knows no container and says NXDOMAIN. A container started per client run made that
# happen just as the client's first request made the authz-server look up `redis`: the
# first registration got 503 "connecting to Redis at redis://redis:6379/0: timed out".
# Hence one client container, started while the stack comes up.
start_client() {
  local hosts=(--add-host "auth.$domain:$traefik_ip") svc
  for svc in "${services[@]}"; do hosts+=(--add-host "$svc.$domain:$traefik_ip"); done
  # tests/js at /js; its node_modules (possibly a symlink) at /node_modules, where Node
  # looks after /js/node_modules.
  podman run -d --name "$client_name" --network "$network" "${hosts[@]}" \
    -v "$root/tests/js:/js:ro" -v "$(realpath tests/js/node_modules):/node_modules:ro" \
    -v "$e2e/ca.pem:/e2e/ca.pem:ro" -v "$e2e/state:/state" \
    "$node_image" sleep infinity >/dev/null
}

step "up: deploy/compose/up.sh with podman-compose"
t_up=$(now)
(cd deploy/compose && COMPOSE="$podman_compose -f $compose_file" ENV_FILE="$e2e/.env" ./up.sh)
expected=$(for c in authz-server_1 redis_1 traefik_1 verifier_1 verifier_2 "${services[@]/%/_1}"; do
  echo "${project}_$c"
done | sort)
if [ "$(containers)" != "$expected" ]; then
  printf 'compose-e2e: expected containers:\n%s\ngot:\n%s\n' "$expected" "$(containers)" >&2
  exit 1
fi
start_client
wait_healthy all 300
healthy_after=$(since "$t_up")
echo "compose-e2e: all $(containers | wc -l) containers healthy ${healthy_after}s after up"

step "from the host, through Traefik's published port"
https_port=$(podman port "${project}_traefik_1" 443/tcp | head -n1 | sed 's/.*://')
# Host names the host without the published port, as a client of port 443 sends it: the
# authz-server picks a service's metadata by host and path, and "echo.<domain>:<port>"
# is no service (its metadata answered 404 through a working route).
outside() { # URL path on HOST -> status code
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$e2e/ca.pem" -H "Host: $1.$domain" \
    --resolve "$1.$domain:$https_port:127.0.0.1" "https://$1.$domain:$https_port$2" "${@:3}"
}
# Polls until Traefik routes to the authz-server (discovery on auth.<domain>) and every
# service's metadata router (on its own host, served by the authz-server) answers.
# $1: limit in seconds, $2: start time.
# Meanwhile every container's health check runs every 2 s, as an engine's timer would
# (podman has none without systemd): Traefik relists the containers only on an event, and
# twice in five runs the one event after the restarted authz-server's check passed left it
# filtered as starting (Traefik's log: its routers, and every MCP router using its
# middlewares, missing for the 90 s of this wait).
wait_routed() {
  local limit=$1 t0=$2 svc ok n=0 c
  while :; do
    if ((n++ % 4 == 0)); then
      for c in $(containers); do podman healthcheck run "$c" >/dev/null 2>&1 || true; done
    fi
    ok=1
    [ "$(outside auth /.well-known/oauth-authorization-server)" = 200 ] || ok=
    for svc in "${services[@]}"; do
      [ -z "$ok" ] || [ "$(outside "$svc" /.well-known/oauth-protected-resource/mcp)" = 200 ] || ok=
    done
    [ -n "$ok" ] && return 0
    if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      echo "compose-e2e: Traefik did not route to the authz-server and every service within ${limit}s" >&2
      return 1
    fi
    sleep 0.5
  done
}
# Polls until HOST's PATH answers STATUS. $1: limit in seconds.
wait_status() {
  local limit=$1 host=$2 path=$3 want=$4 t0 got
  t0=$(now)
  while :; do
    got=$(outside "$host" "$path") || true
    [ "$got" != "$want" ] || return 0
    if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      echo "compose-e2e: https://$host.$domain$path still answers $got after ${limit}s, want $want" >&2
      return 1
    fi
    sleep 0.2
  done
}
check() { # WHAT GOT WANT
  if [ "$2" != "$3" ]; then echo "compose-e2e: $1: got $2, want $3" >&2; exit 1; fi
  echo "ok: $1 ($2)"
}
# Healthy is not yet routed: Traefik relists the containers on each health_status event
# and applies a new configuration at most every 2 s (providersThrottleDuration), so the
# first requests right after the last check passes got 404. Wait for the routes.
wait_routed 60 "$t_up"
echo "compose-e2e: routed through Traefik $(since "$t_up")s after up"
check "discovery on auth.$domain" "$(outside auth /.well-known/oauth-authorization-server)" 200
check "/metrics on auth.$domain not routed" "$(outside auth /metrics)" 404
check "/metrics on echo.$domain not routed" "$(outside echo /metrics)" 404
check "MCP without a token" "$(outside echo /mcp -X POST -H 'content-type: application/json' -d '{}')" 401

for svc in echo everything; do
  [[ " ${services[*]} " == *" $svc "* ]] || continue
  step "SDK client through Traefik: $svc.$domain (sign-in, tools, refresh, revocation)"
  # Two verifiers: every one of them must refuse the revoked token.
  client e2e_client.mjs -e "MCP_URL=https://$svc.$domain/mcp" -e REVOKED_CHECKS=4 -e TOOL=echo
done

# A tool call each service of the catalog answers here: NAME -> JSON for catalog_client.mjs.
tool_call() {
  local url="https://$1.$domain/mcp"
  case $1 in
    echo | echo-stateless | everything)
      printf '{"name":"%s","url":"%s","tool":"echo","args":{"message":"hello %s"},"expect":"hello %s"}' "$1" "$url" "$1" "$1" ;;
    time)
      printf '{"name":"%s","url":"%s","tool":"get_current_time","args":{"timezone":"UTC"},"expect":"UTC"}' "$1" "$url" ;;
    # No public page is reachable from here: the fetch services read the authz-server's
    # metadata on the compose network (fetchs: private addresses allowed for this run
    # only, see e2e-compose.py).
    fetch | fetchs)
      printf '{"name":"%s","url":"%s","tool":"fetch","args":{"url":"http://authz-server:8000/.well-known/oauth-authorization-server"},"expect":"auth.%s"}' "$1" "$url" "$domain" ;;
    *)
      echo "compose-e2e: no tool call known for $1 (add one to tool_call)" >&2
      return 1 ;;
  esac
}
step "every enabled service, one sign-in: ${services[*]} (a token for all, then one each)"
calls=()
for svc in "${services[@]}"; do calls+=("$(tool_call "$svc")"); done
client catalog_client.mjs -e "SERVICES=[$(IFS=,; echo "${calls[*]}")]"

step "the services not enabled have no container and no route: ${disabled[*]:-none}"
for svc in "${disabled[@]}"; do
  var=${svc^^}
  check "$svc.$domain/mcp (MCP_${var//-/_}_ENABLED=false)" \
    "$(outside "$svc" /mcp -X POST -H 'content-type: application/json' -d '{}')" 404
  check "$svc.$domain metadata" "$(outside "$svc" /.well-known/oauth-protected-resource/mcp)" 404
done

step "authz-server stopped: MCP still served; then started again: client, consent and refresh token kept"
client restart_client.mjs -e PHASE=before -e "MCP_URL=https://echo.$domain/mcp" -e STATE_FILE=/state/restart.json
t_restart=$(now)
compose stop -t 30 authz-server >/dev/null
[ "$(podman inspect --format '{{.State.Status}}' "${project}_authz-server_1")" != running ] ||
  { echo "compose-e2e: the authz-server still runs after stop" >&2; exit 1; }
# Traefik has applied the configuration without the authz container once auth.<domain>
# has no router (404); only then does a request prove that the MCP routers do not
# depend on that container (their middlewares are in Traefik's file provider).
wait_status 30 auth /.well-known/oauth-authorization-server 404
echo "compose-e2e: Traefik dropped the authz-server's routes $(since "$t_restart")s after stop"
check "MCP without a token while the authz-server is stopped" \
  "$(outside echo /mcp -X POST -H 'content-type: application/json' -d '{}')" 401
client restart_client.mjs -e PHASE=authz-down -e "MCP_URL=https://echo.$domain/mcp" -e STATE_FILE=/state/restart.json
t_restart=$(now)
compose start authz-server >/dev/null
wait_healthy "${project}_authz-server_1" 120
echo "compose-e2e: authz-server healthy again $(since "$t_restart")s after start"
# Traefik takes the routes of a container back once it sees it healthy.
wait_routed 90 "$t_restart"
echo "compose-e2e: routed through Traefik again $(since "$t_restart")s after start"
client restart_client.mjs -e PHASE=after -e "MCP_URL=https://echo.$domain/mcp" -e STATE_FILE=/state/restart.json

mkdir -p "$e2e/logs"

podman rm -f -t 0 "$client_name" >/dev/null

step "shutdown: SIGTERM to every container at once, time until each exits"
printf '%-34s %8s %8s %6s\n' container "exit (s)" "stop (s)" code
stops=()
for c in $(containers); do
  (
    t0=$(now)
    podman stop -t 60 "$c" >/dev/null
    # exit: SIGTERM to the process's end as podman recorded it; stop: until `podman stop`
    # returned (its own cleanup included: network, mounts, locks shared by the stops).
    printf '%-34s %8s %8s %6s\n' "$c" \
      "$(podman inspect --format '{{.State.FinishedAt.UnixNano}}' "$c" | awk -v a="$t0" '{ printf "%.1f", $1 / 1e9 - a }')" \
      "$(since "$t0")" "$(podman inspect --format '{{.State.ExitCode}}' "$c")"
    # Its whole log, the stop included, kept after down (target/containers/e2e/logs).
    podman logs -t "$c" > "$e2e/logs/$c.log" 2>&1 || true
  ) &
  stops+=($!)
done
# Exit code 137: still running after 60 s, killed.
wait "${stops[@]}"

step "down"
# Anonymous volumes (the authz image's VOLUME /data, unused with Redis): podman-compose's
# down removes the project's named volumes only, so these are removed by name afterwards.
anonymous=$(anonymous_volumes)
compose down -v -t 30 >/dev/null
for v in $anonymous; do podman volume rm "$v" >/dev/null; done
left=$(containers)
pods=$(podman pod ps -q --filter "name=$project")
volumes=$(podman volume ls -q --filter "label=io.podman.compose.project=$project")
if [ -n "$left$pods$volumes" ] || podman network exists "$network"; then
  echo "compose-e2e: left after down: containers [$left] pods [$pods] volumes [$volumes] network: $(podman network exists "$network" && echo "$network")" >&2
  exit 1
fi
echo "ok: no container, pod, network or volume of $project left"
rm -f "$compose_file"
echo
echo "compose-e2e: passed (healthy ${healthy_after}s after up)"
