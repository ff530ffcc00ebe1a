#!/usr/bin/env bash
# Runs the whole test suite against a real Docker Engine.
#
# On a fresh Debian machine (as root) it first installs and starts what the
# tests need, if missing: Docker (docker.io) and dockerd, busybox-static for
# the test image, and two Docker registries on 127.0.0.1 (one open, one
# requiring basic auth) for the pull tests. It stops only what it started.
#
# Usage: integration/test.sh [extra cargo test arguments]
set -euo pipefail

cd "$(dirname "$0")/.."
work="${DOCKERSHIM_TEST_WORK:-/tmp/dockershim-test}"
registry="${DOCKERSHIM_TEST_REGISTRY:-127.0.0.1:5055}"
auth_registry="${DOCKERSHIM_TEST_AUTH_REGISTRY:-127.0.0.1:5056}"
mkdir -p "$work"
started_pids=()

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

cleanup() {
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run as root: the tests start dockerd and inspect containers' namespaces"

# 1. Packages.
missing=()
# Any Docker Engine will do; Debian's is installed only when there is none.
command -v dockerd >/dev/null || missing+=(docker.io)
command -v systemd-socket-activate >/dev/null || missing+=(systemd)
for pkg in busybox-static docker-registry apache2-utils curl containernetworking-plugins iproute2 iptables; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; die "apt-get update failed"; }
  apt-get install -y -q "${missing[@]}" >>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; die "apt-get install failed"; }
fi

# 2. Docker.
docker_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if ! docker_up; then
  say "starting dockerd"
  # A daemon killed earlier leaves its pid file behind and refuses to start.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  dockerd >"$work/dockerd.log" 2>&1 &
  started_pids+=($!)
  for _ in $(seq 1 60); do
    docker_up && break
    sleep 1
  done
  docker_up || { tail -30 "$work/dockerd.log"; die "dockerd did not start"; }
fi
say "docker $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# 3. Registries on loopback: one open, one with basic auth.
start_registry() { # name addr [htpasswd]
  local name=$1 addr=$2 htpasswd=${3:-}
  if curl -s -o /dev/null "http://$addr/v2/"; then
    say "registry $name already answers on $addr"
    return
  fi
  mkdir -p "$work/registry-$name/data"
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $work/registry-$name/data}"
    echo "  delete: {enabled: true}"
    echo "http: {addr: $addr, secret: dockershim-test}"
    if [ -n "$htpasswd" ]; then
      echo "auth:"
      echo "  htpasswd: {realm: dockershim-test, path: $htpasswd}"
    fi
  } >"$work/registry-$name/config.yml"
  docker-registry serve "$work/registry-$name/config.yml" >"$work/registry-$name/log" 2>&1 &
  started_pids+=($!)
  for _ in $(seq 1 30); do
    curl -s -o /dev/null "http://$addr/v2/" && return
    sleep 0.5
  done
  cat "$work/registry-$name/log"
  die "registry $name did not start on $addr"
}
htpasswd -Bbn dockershim test-s3cret >"$work/htpasswd"
start_registry open "$registry"
start_registry auth "$auth_registry" "$work/htpasswd"

# 4. The test image, made from the host's static busybox (no registry).
if ! docker image inspect dockershim-test/busybox:latest >/dev/null 2>&1; then
  say "building dockershim-test/busybox:latest"
  rootfs="$work/busybox-rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - dockershim-test/busybox:latest >/dev/null
fi

# 5. The tests: unit tests, then the integration tests against Docker.
export DOCKERSHIM_TEST_REGISTRY="$registry" DOCKERSHIM_TEST_AUTH_REGISTRY="$auth_registry"
say "cargo test"
cargo test --locked "$@"
