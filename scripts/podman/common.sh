# Shared by scripts/images.sh and scripts/compose-e2e.sh (sourced, not run).
# Podman with runc from Debian, the project's containers.conf (CONTAINERS_CONF: the
# machine's own configuration is left alone), podman-compose in a pinned venv.

step() { printf '\n==> %s\n' "$*"; }
now() { date +%s.%N; }
# Seconds since $1 (from now), one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

export CONTAINERS_CONF="$root/scripts/podman/containers.conf"
# Where the host's CA bundle is: registries answer over this machine's trust store only,
# so builds get it as the secret host_ca (never stored in an image).
host_ca=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# Everything the scripts make (venv, build contexts, e2e state) stays below target/.
work="$root/target/containers"
mkdir -p "$work"

# Debian packages: podman and runc (crun refuses hybrid cgroup layouts), its networking
# (netavark, aardvark-dns for container names, slirp4netns, iptables), uidmap,
# fuse-overlayfs, mmdebstrap for the base rootfs, openssl for the e2e certificates.
ensure_packages() {
  local want=(podman runc netavark aardvark-dns slirp4netns iptables uidmap fuse-overlayfs mmdebstrap openssl python3-venv unzip curl)
  local need=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
  done
  ((${#need[@]})) || return 0
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
}

# podman-compose, exactly as scripts/podman/requirements.txt pins it.
ensure_compose() {
  local venv="$work/venv" stamp want
  stamp="$venv/.req-sha"
  want=$(sha256sum "$root/scripts/podman/requirements.txt" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    step "python venv with podman-compose ($venv)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/podman/requirements.txt"
    echo "$want" > "$stamp"
  fi
  podman_compose="$venv/bin/podman-compose"
}

# Rootful podman needs root; say so rather than fail halfway.
require_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$0: run as root (rootful podman: published ports, fixed container addresses)" >&2
    exit 1
  fi
}
