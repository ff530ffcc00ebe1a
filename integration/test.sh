#!/usr/bin/env bash
# The whole test suite, against real Docker Engines and the field's own CRI
# clients. CI (.ci/run) runs it with no arguments.
#
# On a fresh Debian 12 machine (as root) it installs and starts what the
# tests need: Debian's packages (busybox for the test image, two Docker
# registries on 127.0.0.1, the reference CNI plugins, ip, iptables, runc,
# systemd-socket-activate, openssl, g++ for libFuzzer, netcat-openbsd for
# the node e2e suite's agnhost image), Python's grpcio (from PyPI), and
# private Docker Engines in turn (integration/dockerd.sh: Debian 12's 20.10,
# Debian 13's 26.1, Debian unstable's 28.5, that 28.5 with the containerd
# image store (28c, on request), and the Docker 29 line built from
# github.com/moby/moby/v2 with the containerd image store). It builds crictl
# and critest from cri-tools (integration/critest.sh, with the machine's
# Go). Then:
#
#   1. cargo fmt --check, clippy with warnings denied, cargo doc;
#   2. the unit tests, once, then each fuzz target for 10 s (fuzz/run.sh);
#   3. the integration tests (integration/*.rs) on each engine of
#      --integration (default: 20.10 and 29, the oldest and the newest; 28
#      runs critest and the node e2e suite);
#   4. critest over SPDY and over WebSocket on each engine of --critest
#      (default: 20.10, 26, 28 and 29), with the skips listed in
#      integration/critest-skips.txt;
#   5. with critest on 26: a pod made by dockershim, taken over and torn
#      down by cri-dockerd (integration/rollback.sh, cri-dockerd built from
#      its Go module), leaving no rule, address or file behind;
#   6. a real kubelet (k8s.io/kubernetes v1.36.3, integration/kubelet.sh)
#      running static pods on each engine of --kubelet (default: 26 and 29,
#      the classic and the containerd image store), with its EventedPLEG
#      and PodAndContainerStatsFromCRI gates on and off, and its image
#      garbage collection;
#   7. Kubernetes' node e2e suite (k8s.io/kubernetes v1.36.3 test/e2e_node,
#      integration/node-e2e.sh): its own API server and a kubelet driving
#      dockershim on the engine of --node-e2e (default: 28), its
#      [NodeConformance] [Conformance] specs (node-e2e.sh run full runs
#      containerd's whole focus).
#
# Anything missing is installed or fails the run; nothing is skipped. Every
# engine is run to the end and the failures are summed up at the end.
#
# Usage: integration/test.sh [--integration V[,V...]|none]
#                            [--critest V[,V...]|none] [--kubelet V[,V...]|none]
#                            [--node-e2e V|none] [cargo test filter...]
#   V is 20.10, 26, 28, 28c or 29. A cargo test filter runs only the
#   matching integration tests, and no critest, kubelet or node e2e unless
#   asked for, e.g.
#   integration/test.sh --integration 26 lifecycle
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
work="${DOCKERSHIM_TEST_WORK:-/tmp/dockershim-test}"
registry="${DOCKERSHIM_TEST_REGISTRY:-127.0.0.1:5055}"
auth_registry="${DOCKERSHIM_TEST_AUTH_REGISTRY:-127.0.0.1:5056}"
integration_versions="20.10,29"
critest_versions="20.10,26,28,29"
kubelet_versions="26,29"
node_e2e_versions="28"
critest_given=
kubelet_given=
node_e2e_given=
filter=()
while [ $# -gt 0 ]; do
  case "$1" in
    --integration) integration_versions=${2:?--integration needs versions}; shift 2 ;;
    --critest) critest_versions=${2:?--critest needs versions}; critest_given=1; shift 2 ;;
    --kubelet) kubelet_versions=${2:?--kubelet needs versions}; kubelet_given=1; shift 2 ;;
    --node-e2e) node_e2e_versions=${2:?--node-e2e needs a version}; node_e2e_given=1; shift 2 ;;
    *) filter+=("$1"); shift ;;
  esac
done
if [ ${#filter[@]} -gt 0 ]; then
  [ -n "$critest_given" ] || critest_versions=none
  [ -n "$kubelet_given" ] || kubelet_versions=none
  [ -n "$node_e2e_given" ] || node_e2e_versions=none
fi
mkdir -p "$work"
started_pids=()
docker_states=()
failures=()
flaky=()

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
wants() { # list version
  [[ ",$1," == *",$2,"* ]]
}

cleanup() {
  local pid state
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for state in "${docker_states[@]}"; do
    integration/dockerd.sh stop --purge "$state" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "run as root: the tests start dockerd and inspect containers' namespaces"
for v in ${integration_versions//,/ } ${critest_versions//,/ } ${kubelet_versions//,/ } ${node_e2e_versions//,/ }; do
  case "$v" in 20.10 | 26 | 28 | 28c | 29 | none) ;; *) die "unknown Docker version $v (use 20.10, 26, 28, 28c or 29)" ;; esac
done

# 1. Packages and tools.
missing=()
command -v systemd-socket-activate >/dev/null || missing+=(systemd)
for pkg in busybox-static docker-registry apache2-utils curl containernetworking-plugins \
  iproute2 iptables runc openssl ca-certificates jq util-linux g++ netcat-openbsd; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; die "apt-get update failed"; }
  apt-get install -y -q "${missing[@]}" >>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; die "apt-get install failed"; }
fi
# The gRPC client test speaks to the shim with gRPC C-core, as Python's grpcio.
if ! python3 -c 'import grpc' 2>/dev/null; then
  say "installing grpcio from PyPI"
  python3 -m pip install -q grpcio >"$work/pip.log" 2>&1 || { tail -20 "$work/pip.log"; die "pip install grpcio failed"; }
fi
command -v go >/dev/null || die "Go is needed to build crictl and critest (cri-tools); this machine has none"

# 2. Code hygiene, then the unit tests (no Docker needed).
say "cargo fmt --check, clippy, doc"
cargo fmt --all -- --check || die "cargo fmt --check: run cargo fmt"
cargo clippy --locked --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps --quiet
say "unit tests"
cargo test --locked --lib --bins
cargo test --locked --test config_file
cargo build --locked --tests --quiet
# Every decoder of outside bytes under libFuzzer for a few seconds each,
# from the seed corpus (fuzz/run.sh; the long campaign is in
# docs/testing.md). The build is cached across runs on this machine.
say "fuzzing, 10 s per target"
DOCKERSHIM_FUZZ_TARGET_DIR=/var/cache/dockershim-test/fuzz-target fuzz/run.sh --seconds 10
say "Debian package"
deploy/deb/test.sh target/debug/dockershim || failures+=("Debian package (deploy/deb/test.sh)")
# The release tarball: its checksums hold, and what it holds runs and
# installs from where it was unpacked (install.sh's paths).
check_release() {
  local out="$work/release" top
  rm -rf "$out" && mkdir -p "$out"
  deploy/release.sh target/debug/dockershim "$out" >/dev/null || return 1
  (cd "$out" && sha256sum -c --quiet SHA256SUMS) || return 1
  tar -xzf "$out"/dockershim-*-linux-*.tar.gz -C "$out" || return 1
  top=$(echo "$out"/dockershim-*-linux-*/)
  "$top/dockershim" --version | grep -q '^dockershim .*(commit ' || return 1
  for f in deploy/install.sh deploy/config.toml deploy/systemd/dockershim.service \
    deploy/systemd/dockershim.socket man/dockershim.8 completions/dockershim.bash \
    completions/_dockershim completions/dockershim.fish README.md LICENSE docs/logs.md; do
    [ -s "$top/$f" ] || { echo "release tarball: $f missing" >&2; return 1; }
  done
  grep -q '^\.SH FILES' "$top/man/dockershim.8"
}
say "release artefacts"
check_release || failures+=("release artefacts (deploy/release.sh)")

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
export DOCKERSHIM_TEST_REGISTRY="$registry" DOCKERSHIM_TEST_AUTH_REGISTRY="$auth_registry"

if [ "$critest_versions" != none ]; then
  say "crictl and critest (cri-tools)"
  integration/critest.sh build
fi
if [ "$kubelet_versions" != none ]; then
  say "the kubelet (k8s.io/kubernetes)"
  integration/kubelet.sh build
fi
if [ "$node_e2e_versions" != none ]; then
  say "the node e2e suite (k8s.io/kubernetes)"
  integration/node-e2e.sh build
fi
# The rollback to cri-dockerd runs where critest runs on Docker 26
# (cri-dockerd needs API 1.42).
rollback_version=
if wants "$critest_versions" 26; then
  rollback_version=26
  say "cri-dockerd, for the rollback test"
  integration/rollback.sh build
fi

# The test image, made from the host's static busybox (no registry), in the
# engine DOCKER_HOST points at.
import_test_image() {
  docker image inspect dockershim-test/busybox:latest >/dev/null 2>&1 && return
  local rootfs="$work/busybox-rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - dockershim-test/busybox:latest >/dev/null
}

# The specs of a critest or node e2e run that failed (failed) or passed
# only on a retry (flaky), one per line with its message, indented for the
# lists at the end (where CI's excerpt of the output shows them).
suite_specs() { # failed|flaky summary.tsv
  [ -s "$2" ] || return 0
  awk -F'\t' -v which="$1" '
    (which == "flaky" && $1 == "flaky") ||
    (which == "failed" && $1 !~ /^(passed|flaky|skipped|skipped-by-list|not-run|pending)$/) {
      printf "\n    [%s] %s\n      %s", $1, $2, substr($3, 1, 400) }' "$2"
}

# The tests a `cargo test` run failed (the names in its last "failures:"
# list), indented for the FAILED list.
test_failures() { # cargo-test-log
  awk '/^failures:$/ { names = ""; listing = 1; next }
    listing && /^    [^ ]/ { names = names "\n    " substr($0, 5); next }
    listing && /^test result:/ { listing = 0 }
    END { printf "%s", names }' "$1"
}

# critest against a shim of its own on the engine DOCKER_HOST points at.
run_critest() { # version state-dir
  local version=$1 state=$2 sock pid transport
  integration/critest.sh images "$DOCKERSHIM_TEST_DOCKER" "$registry" || return 1
  sock="$state/shim.sock"
  target/debug/dockershim \
    --container-runtime-endpoint "unix://$sock" \
    --docker-endpoint "unix://$DOCKERSHIM_TEST_DOCKER" \
    --cri-dockerd-root-directory "$state/shim" \
    --network-plugin docker \
    >"$work/critest-shim-$version.log" 2>&1 &
  pid=$!
  started_pids+=("$pid")
  for _ in $(seq 1 60); do
    [ -S "$sock" ] && break
    sleep 0.5
  done
  local status=0
  for transport in spdy websocket; do
    say "critest over $transport on Docker $version"
    local summary="$work/critest-$version-$transport/$transport/summary.tsv"
    DOCKERSHIM_CRITEST_WORK="$work/critest-$version-$transport" \
      integration/critest.sh run "$sock" "$transport" || {
      status=1
      failures+=("critest $transport on Docker $version$(suite_specs failed "$summary")")
    }
    local flaky_specs
    flaky_specs=$(suite_specs flaky "$summary")
    [ -z "$flaky_specs" ] || flaky+=("critest $transport on Docker $version$flaky_specs")
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return $status
}

# 4. Each engine in turn.
base_path=$PATH
for version in 20.10 26 28 28c 29; do
  wants "$integration_versions" "$version" || wants "$critest_versions" "$version" ||
    wants "$kubelet_versions" "$version" || wants "$node_e2e_versions" "$version" || continue
  state="$work/docker-$version"
  say "Docker $version"
  docker_states+=("$state")
  # The node e2e suite's RuntimeClass specs run pods with the runtime
  # handler "test-handler", which its CI's nodes configure (as runc).
  extra_dockerd_args=
  ! wants "$node_e2e_versions" "$version" || extra_dockerd_args="--add-runtime test-handler=/usr/sbin/runc"
  DOCKERSHIM_TEST_DOCKERD_ARGS="${DOCKERSHIM_TEST_DOCKERD_ARGS:-} $extra_dockerd_args" \
    integration/dockerd.sh start "$version" "$state"
  PATH=$base_path
  eval "$(integration/dockerd.sh env "$version" "$state")"
  export DOCKER_HOST DOCKERSHIM_TEST_DOCKER DOCKERSHIM_TEST_DOCKERD_CONFIG PATH
  import_test_image
  # First, while the engine holds no pods: the kubelets kill every CRI pod
  # they did not create.
  if wants "$node_e2e_versions" "$version"; then
    say "node e2e suite on Docker $version"
    export DOCKERSHIM_NODE_E2E_WORK="$work/node-e2e-$version"
    { integration/node-e2e.sh images "$DOCKERSHIM_TEST_DOCKER" "$registry" &&
      integration/node-e2e.sh run "$DOCKERSHIM_TEST_DOCKER" conformance; } ||
      failures+=("node e2e on Docker $version$(suite_specs failed "$DOCKERSHIM_NODE_E2E_WORK/run/summary.tsv")")
    node_e2e_flaky=$(suite_specs flaky "$DOCKERSHIM_NODE_E2E_WORK/run/summary.tsv")
    [ -z "$node_e2e_flaky" ] || flaky+=("node e2e on Docker $version$node_e2e_flaky")
  fi
  if wants "$kubelet_versions" "$version"; then
    say "the kubelet on Docker $version (EventedPLEG and PodAndContainerStatsFromCRI on, then off)"
    integration/kubelet.sh run "$DOCKERSHIM_TEST_DOCKER" both || failures+=("kubelet on Docker $version")
  fi
  if wants "$integration_versions" "$version"; then
    say "integration tests on Docker $version"
    cargo test --locked --test integration -- "${filter[@]}" 2>&1 | tee "$work/integration-$version.log" ||
      failures+=("integration tests on Docker $version$(test_failures "$work/integration-$version.log")")
  fi
  if wants "$critest_versions" "$version"; then
    run_critest "$version" "$state" || true
  fi
  if [ "$version" = "$rollback_version" ]; then
    say "rollback to cri-dockerd on Docker $version"
    integration/rollback.sh run "$DOCKERSHIM_TEST_DOCKER" || failures+=("rollback to cri-dockerd on Docker $version")
  fi
  integration/dockerd.sh stop --purge "$state"
  docker_states=() # one engine runs at a time
done

if [ ${#flaky[@]} -gt 0 ]; then
  printf '\nFLAKY (failed, then passed on a retry):\n' >&2
  printf '  %s\n' "${flaky[@]}" >&2
fi
if [ ${#failures[@]} -gt 0 ]; then
  printf '\nFAILED:\n' >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
say "all passed"
