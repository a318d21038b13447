#!/usr/bin/env bash
# Starts the gateway with docker compose. Each MCP service is a compose profile named
# after it; a service runs when .env says MCP_<SERVICE>_ENABLED=true (the Python
# gateway's convention, read by the authz-server and the verifier from the same file).
# The process environment wins over .env, as in the services themselves.
# Extra arguments go to `docker compose up -d` (e.g. --build).
# COMPOSE=podman-compose runs it with podman instead.
set -euo pipefail
cd "$(dirname "$0")"

env_file=${ENV_FILE:-.env}
if [ ! -f "$env_file" ]; then
  echo "up.sh: $env_file not found: cp .env.example .env and fill it in" >&2
  exit 1
fi

# The catalog's services (cli/src/catalog.rs), in compose.yml's order. The variable is
# MCP_<NAME>_ENABLED; the profile (and compose service, and host) writes '_' as '-'.
services=(echo echo_stateless fetch fetchs filesystem memory sequentialthinking time tmux playwright everything)

# The last assignment of NAME in the env file, unquoted; .env is parsed, never sourced.
value_in_file() {
  sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=[[:space:]]*//p" "$env_file" |
    tail -n 1 | sed -E "s/[[:space:]]+$//; s/^\"(.*)\"$/\1/; s/^'(.*)'$/\1/"
}

profiles=()
for svc in "${services[@]}"; do
  var="MCP_${svc^^}_ENABLED"
  if [ -n "${!var-}" ]; then value=${!var}; else value=$(value_in_file "$var"); fi
  # The same words gateway_common::config::parse_bool accepts.
  case "${value,,}" in
    1 | true | yes | on) profiles+=("${svc//_/-}") ;;
    "" | 0 | false | no | off) ;;
    *)
      echo "up.sh: $var must be true or false, got \"$value\" (example: $var=true)" >&2
      exit 2
      ;;
  esac
done

# An enabled service compose.yml does not know would get tokens but no container.
while IFS= read -r var; do
  svc=${var#MCP_}
  svc=${svc%_ENABLED}
  svc=${svc,,}
  if [[ " ${services[*]} " != *" $svc "* ]]; then
    value=$(value_in_file "$var")
    case "${value,,}" in
      1 | true | yes | on) echo "up.sh: warning: $var is set but compose.yml has no service \"$svc\"" >&2 ;;
    esac
  fi
done < <(sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?(MCP_[A-Z0-9_]+_ENABLED)[[:space:]]*=.*/\2/p' "$env_file" | sort -u)

if [ ${#profiles[@]} -eq 0 ]; then
  echo "up.sh: no MCP service enabled; set e.g. MCP_ECHO_ENABLED=true in $env_file" >&2
fi

COMPOSE_PROFILES=$(IFS=,; echo "${profiles[*]}")
export COMPOSE_PROFILES
echo "up.sh: COMPOSE_PROFILES=$COMPOSE_PROFILES"
# COMPOSE: the compose command, split on spaces (default "docker compose"; podman:
# COMPOSE=podman-compose).
read -r -a compose <<< "${COMPOSE:-docker compose}"
exec "${compose[@]}" --env-file "$env_file" up -d "$@"
