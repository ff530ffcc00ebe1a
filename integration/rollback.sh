#!/usr/bin/env bash
# Rolls a pod dockershim created back to cri-dockerd and checks that
# cri-dockerd tears it down completely (issue 14, item 6).
#
# Usage (as root):
#   integration/rollback.sh build
#       Builds cri-dockerd from the Go module github.com/Mirantis/cri-dockerd
#       with the machine's Go and module proxy, into
#       $DOCKERSHIM_TEST_CACHE/cri-dockerd-<version>/cri-dockerd (default
#       /var/cache/dockershim-test/...). Does nothing when it is there. The
#       version is $CRI_DOCKERD_VERSION if set, else the latest v0.3.x the
#       proxy lists, else (the proxy answers no version list)
#       $fallback_version below, the one version the proxy was seen to serve.
#   integration/rollback.sh run <docker-socket>
#       Runs the rollback over the Docker Engine at <docker-socket> (a private
#       engine of integration/dockerd.sh; /var/run/docker.sock is refused).
#       Builds cri-dockerd first if needed. Exits non-zero when a check fails.
#
# What `run` does, twice:
#   1. sets up CNI in directories of its own: a conflist with bridge (its own
#      bridge dsrollback0, ipMasq, host-local on 10.233.251.0/24 with its own
#      dataDir), firewall and portmap (portMappings capability);
#   2. starts target/debug/dockershim (it is not built here) with that CNI
#      configuration and a --cri-dockerd-root-directory shared with
#      cri-dockerd, on a private socket, and with crictl runs a pod with a
#      hostPort (127.0.0.1:$host_port -> 80) and a busybox httpd container in
#      it; checks the pod's checkpoint file, its DNAT rule and that the port
#      answers;
#   3. stops dockershim (SIGTERM) and starts cri-dockerd on the same Docker,
#      CNI configuration, cache and root directory, with dockershim's pause
#      image as --pod-infra-container-image; checks with crictl that the pod
#      is listed READY with the same IP; `crictl stopp` and `crictl rmp`;
#   4. checks that nothing is left: no iptables rule naming the sandbox id or
#      the pod IP, no veth on the bridge, no host-local allocation, no CNI
#      cache entry, no container of the pod in Docker, no checkpoint file.
# The first pass keeps dockershim's checkpoint: every check must pass. The
# second pass deletes the checkpoint before cri-dockerd starts, to show what
# the checkpoint prevents: what is left is reported (it is expected), not
# failed on, and then cleaned up.
#
# The Docker must hold dockershim-test/busybox:latest; it is imported from the
# host's /bin/busybox when missing (as integration/test.sh does). Everything
# made (processes, bridge, iptables rules, containers of the test's pods,
# directories) is removed at exit, whatever the exit path; only the PIDs this
# script started are ever signalled. When a check fails, the logs of
# dockershim and cri-dockerd are kept in /tmp/dockershim-rollback-logs.*.
#
# Environment:
#   DOCKERSHIM_TEST_CACHE     parent of the tool cache (/var/cache/dockershim-test)
#   CRI_DOCKERD_VERSION       cri-dockerd version to build and run (see build)
#   DOCKERSHIM_ROLLBACK_WORK  parent of the work directory (/tmp)
#   DOCKERSHIM_ROLLBACK_PORT  the hostPort (18251)
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD

cache_parent="${DOCKERSHIM_TEST_CACHE:-/var/cache/dockershim-test}"
cri_tools="$cache_parent/cri-tools-v1.37.0"
module=github.com/Mirantis/cri-dockerd
# proxy.golang.org, as this machine reaches it, answers 403 for the module's
# version list and for every version but this one.
fallback_version=v0.3.17
shim_bin="$repo/target/debug/dockershim"
cni_bin_dir=/usr/lib/cni
bridge=dsrollback0
subnet=10.233.251.0/24
network=dockershim-rollback
host_port="${DOCKERSHIM_ROLLBACK_PORT:-18251}"
test_image=dockershim-test/busybox:latest

# (Under pipefail, `producer | grep -q` fails when grep exits first and the
# producer gets SIGPIPE: the pipes below read all input, `grep >/dev/null`.)
say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=integration/go-tools.sh
. "$repo/integration/go-tools.sh"
usage() {
  sed -n '/^# Usage/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- build ----------------------------------------------------------------

# The cri-dockerd version to use: $CRI_DOCKERD_VERSION, or the latest v0.3.x
# the module proxy lists, or $fallback_version. Sets $version.
pick_version() {
  local listed
  if [ -n "${CRI_DOCKERD_VERSION:-}" ]; then
    version=$CRI_DOCKERD_VERSION
    return
  fi
  if listed=$(cd /tmp && GOFLAGS=-mod=mod timeout 120 go list -m -versions "$module" 2>/dev/null); then
    version=$(tr ' ' '\n' <<<"$listed" | grep -E '^v0\.3\.[0-9]+$' | sort -V | tail -n1)
    [ -n "$version" ] || die "the module proxy lists no v0.3.x of $module: $listed"
  else
    version=$fallback_version
    say "the module proxy ($(go env GOPROXY)) gives no version list of $module; using $version"
  fi
}

binary_of() { printf '%s/cri-dockerd-%s/cri-dockerd' "$cache_parent" "$1"; }

do_build() {
  local out dir scratch start json
  command -v go >/dev/null || die "Go is missing: building cri-dockerd needs Go"
  pick_version
  out=$(binary_of "$version")
  if [ -x "$out" ]; then
    say "cri-dockerd $version is built already: $out"
    return
  fi
  start=$SECONDS
  require_go_proxy "cri-dockerd $version"
  scratch=$(mktemp -d /tmp/dockershim-cri-dockerd-build.XXXXXX)
  # shellcheck disable=SC2064 # expand now: the trap must remove this scratch
  trap "rm -rf '$scratch'" EXIT
  json=$(cd /tmp && GOFLAGS=-mod=mod timeout 600 go mod download -json "$module@$version") ||
    die "the module proxy does not serve $module@$version: $(sed -n 's/.*"Error": "\(.*\)".*/\1/p' <<<"$json")"
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
  if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
    die "go mod download gave no module directory: $json"
  fi
  # `go install module@version` refuses a module with replace directives
  # (cri-dockerd pins k8s.io/* that way), and the module zip holds no vendor
  # tree: build it as the main module, in a writable copy, resolving the
  # dependencies through the proxy (-mod=mod). A private build cache makes
  # the time measured a cold build.
  cp -r "$dir" "$scratch/src"
  chmod -R u+w "$scratch/src"
  rm -rf "$scratch/src/vendor"
  (
    cd "$scratch/src"
    export CGO_ENABLED=0 GOCACHE="$scratch/gocache" GOFLAGS=-mod=mod
    timeout 1800 go build -trimpath -ldflags "-s -w \
      -X $module/cmd/version.Version=${version#v} \
      -X $module/cmd/version.GitCommit=module-proxy" \
      -o "$scratch/cri-dockerd" .
  ) || die "building cri-dockerd $version failed"
  "$scratch/cri-dockerd" --version >/dev/null 2>&1 || die "the cri-dockerd built does not run"
  mkdir -p "${out%/*}"
  mv "$scratch/cri-dockerd" "$out"
  say "built cri-dockerd $version in $((SECONDS - start))s: $out"
}

case "${1:-}" in
  build)
    [ $# -eq 1 ] || usage
    do_build
    exit 0
    ;;
  run)
    [ $# -eq 2 ] || usage
    ;;
  *) usage ;;
esac

# --- run ------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run needs root (CNI, iptables, Docker)"
docker_sock=$(realpath -m "$2")
case "$docker_sock" in
  /var/run/docker.sock | /run/docker.sock)
    die "refusing the system's Docker ($docker_sock): give the socket of a private engine (integration/dockerd.sh)" ;;
esac
[ -S "$docker_sock" ] || die "no Docker socket at $docker_sock"
export DOCKER_HOST="unix://$docker_sock"
type -P docker >/dev/null || die "no docker CLI on PATH (eval \"\$(integration/dockerd.sh env ...)\" gives one)"
# Every Docker call is bounded.
docker() { timeout 120 docker "$@"; }
for tool in iptables iptables-save ip ss curl jq nsenter; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
for plugin in bridge host-local firewall portmap loopback; do
  [ -x "$cni_bin_dir/$plugin" ] || die "CNI plugin $cni_bin_dir/$plugin is missing (Debian: containernetworking-plugins)"
done
[ -x "$shim_bin" ] || die "$shim_bin is missing: build dockershim first (cargo build)"
crictl_bin="$cri_tools/crictl"
[ -x "$crictl_bin" ] || die "$crictl_bin is missing: integration/critest.sh build makes it"
docker version --format '{{.Server.Version}}' >/dev/null ||
  die "Docker at $docker_sock does not answer"
pick_version
cri_dockerd=$(binary_of "$version")
[ -x "$cri_dockerd" ] || do_build
if ip link show "$bridge" >/dev/null 2>&1; then
  die "bridge $bridge exists already (another run of this script, or a leftover: ip link del $bridge)"
fi
if ip -4 route show | grep -F "${subnet%.0/24}." >/dev/null; then
  die "$subnet is routed already: $(ip -4 route show | grep -F "${subnet%.0/24}.")"
fi
if ss -Hltn "sport = :$host_port" | grep . >/dev/null; then
  die "port $host_port is in use on this host (DOCKERSHIM_ROLLBACK_PORT picks another)"
fi

run_start=$SECONDS
work=$(mktemp -d "${DOCKERSHIM_ROLLBACK_WORK:-/tmp}/dockershim-rollback.XXXXXX")
conf_dir="$work/cni/net.d"
cache_dir="$work/cni/cache"
ipam_dir="$work/cni/networks"
root_dir="$work/cri-dockerd-root"
mkdir -p "$conf_dir" "$cache_dir" "$ipam_dir" "$root_dir" "$work/pods" "$work/run"
crictl_config="$work/crictl.yaml"
printf 'timeout: 60\npull-image-on-create: false\n' >"$crictl_config"

# Shared CNI chains the plugins create on first use; those that did not exist
# before the run are removed at the end, when nothing else uses them.
shared_chains_before=$(iptables-save 2>/dev/null | grep -oE '^:CNI-(HOSTPORT-[A-Z]+|FORWARD|ADMIN) ' | sort -u || true)

started_pids=()
pod_uids=()
failures=0

# --- cleanup --------------------------------------------------------------

# Stops process $1 ($2 names it) with SIGTERM, SIGKILL after $3 seconds.
# Returns 1 when SIGKILL was needed.
stop_pid() {
  local pid=$1 name=$2 grace=${3:-30} i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    printf 'error: %s (pid %s) did not exit %ss after SIGTERM; killing it\n' "$name" "$pid" "$grace" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
  fi
  wait "$pid" 2>/dev/null || true
}

# Deletes every iptables rule (all tables) whose line matches the extended
# regex $1, then flushes and deletes the per-pod chains those rules jumped to
# (portmap's CNI-DN-*, bridge's CNI-<hash>). Prints what it deleted.
delete_rules_matching() {
  local pattern=$1 table line chains chain
  for table in nat filter mangle; do
    chains=()
    while IFS= read -r line; do
      [ -n "$line" ] || continue
      printf '    deleting (%s) %s\n' "$table" "$line"
      eval "iptables -w 10 -t $table -D ${line#-A }" || true
      if [[ "$line" =~ -j\ (CNI-DN-[0-9a-f]+|CNI-[0-9a-f]{24}) ]]; then
        chains+=("${BASH_REMATCH[1]}")
      fi
    done < <(iptables-save -t "$table" 2>/dev/null | grep -E -- '^-A ' | grep -E -- "$pattern" || true)
    for chain in "${chains[@]}"; do
      printf '    deleting (%s) chain %s\n' "$table" "$chain"
      iptables -w 10 -t "$table" -F "$chain" 2>/dev/null || true
      iptables -w 10 -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

# A regex matching pod IP $1 as a whole address in iptables-save output.
ip_pattern() { printf '(^|[ =])%s([/:]|$| )' "${1//./\\.}"; }
# A regex matching any address of the test's subnet.
subnet_pattern="$(ip_pattern "${subnet%.0/24}.X")"
subnet_pattern=${subnet_pattern/X/[0-9]+}
# A regex matching the comments CNI plugins put on the test network's rules.
network_pattern='name: \\"'"$network"'\\" id: '

# Removes the shared CNI chains this run created, when empty of pod rules.
remove_shared_chains() {
  local chain
  has_chain() { grep -qx ":$1 " <<<"$shared_chains_before"; }
  chain_rules() { iptables-save -t "$1" 2>/dev/null | grep -cE -- "^-A $2 " || true; }
  if ! has_chain CNI-HOSTPORT-DNAT && iptables -w 10 -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1 &&
    [ "$(chain_rules nat CNI-HOSTPORT-DNAT)" -eq 0 ]; then
    delete_rules_matching '-j CNI-HOSTPORT-(DNAT|MASQ|SETMARK)$'
    for chain in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
      has_chain "$chain" && continue
      iptables -w 10 -t nat -F "$chain" 2>/dev/null || true
      iptables -w 10 -t nat -X "$chain" 2>/dev/null || true
    done
  fi
  if ! has_chain CNI-FORWARD && iptables -w 10 -t filter -S CNI-FORWARD >/dev/null 2>&1 &&
    ! iptables-save -t filter | grep -E -- '^-A CNI-FORWARD ' | grep -v -- '-j CNI-ADMIN$' >/dev/null &&
    [ "$(chain_rules filter CNI-ADMIN)" -eq 0 ]; then
    delete_rules_matching '-j CNI-FORWARD$'
    for chain in CNI-FORWARD CNI-ADMIN; do
      has_chain "$chain" && continue
      iptables -w 10 -t filter -F "$chain" 2>/dev/null || true
      iptables -w 10 -t filter -X "$chain" 2>/dev/null || true
    done
  fi
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  local status=$? pid uid ids logs
  trap - EXIT INT TERM
  set +e
  for pid in "${started_pids[@]}"; do
    stop_pid "$pid" "pid $pid" 15 >/dev/null 2>&1
  done
  # Containers of the test's pods that are still there (a failed run): the
  # kubelet's pod labels are on all of them.
  for uid in "${pod_uids[@]}"; do
    ids=$(docker ps -aq --filter "label=io.kubernetes.pod.uid=$uid" 2>/dev/null)
    [ -n "$ids" ] || continue
    say "cleanup: removing the containers of pod $uid"
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null 2>&1
  done
  # The rules CNI made for the test's pods: they name the test's network
  # (bridge ipMasq, portmap) or an address of its subnet (firewall, DNAT).
  if iptables-save 2>/dev/null | grep -E -- "$network_pattern|$subnet_pattern" >/dev/null; then
    say "cleanup: iptables rules of the test's pods"
    delete_rules_matching "$network_pattern"
    delete_rules_matching "$subnet_pattern"
  fi
  remove_shared_chains >/dev/null
  ip link del "$bridge" 2>/dev/null
  if [ "$status" -ne 0 ] || [ "$failures" -gt 0 ]; then
    logs=$(mktemp -d /tmp/dockershim-rollback-logs.XXXXXX)
    cp "$work"/*.log "$work"/*.json "$logs"/ 2>/dev/null
    printf 'the logs of dockershim and cri-dockerd are in %s\n' "$logs" >&2
  fi
  # dockershim pins each CNI pod's network namespace under its root
  # (<root>/netns/<sandbox id>, a bind mount) until its own teardown; a pod
  # cri-dockerd tore down keeps its pin (docs/operations.md, "Back to
  # cri-dockerd").
  local pin
  for pin in "$work"/*/netns/*; do
    [ -e "$pin" ] || continue
    umount "$pin" 2>/dev/null || umount -l "$pin"
  done
  rm -rf "$work"
  if [ "$status" -eq 0 ]; then
    say "done in $((SECONDS - run_start))s"
  else
    printf 'error: rollback test failed (exit %s) after %ss\n' "$status" "$((SECONDS - run_start))" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers --------------------------------------------------------------

crictl_at() { # socket args...
  local sock=$1
  shift
  timeout 120 "$crictl_bin" --config "$crictl_config" \
    -r "unix://$sock" -i "unix://$sock" "$@"
}

# Waits (at most 30 s) until the CRI server on socket $1, started as pid $2
# ($3 names it, its log $4), answers.
wait_cri() {
  local sock=$1 pid=$2 name=$3 log=$4 i
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$log" >&2
      die "$name exited at start (log above: $log)"
    fi
    if [ -S "$sock" ] && crictl_at "$sock" version >/dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  tail -n 30 "$log" >&2
  die "$name did not answer on $sock within 30s"
}

indent() { sed 's/^/          /'; }
ok() { printf '  ok    %s\n' "$*"; }
fail() {
  printf '  FAIL  %s\n' "$*" >&2
  failures=$((failures + 1))
}
# What is left after cri-dockerd's teardown: in the checkpoint pass a leftover
# fails the run; without the checkpoint it is reported.
leftover() {
  if [ "$mode" = checkpoint ]; then
    fail "$@"
  else
    printf '  LEFT  %s\n' "$*"
  fi
}

# The test image, from the host's static busybox (as integration/test.sh).
import_test_image() {
  docker image inspect "$test_image" >/dev/null 2>&1 && return
  say "importing $test_image from /bin/busybox"
  local rootfs="$work/busybox-rootfs" applet
  [ -x /bin/busybox ] || die "/bin/busybox is missing (Debian: busybox-static)"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$test_image" >/dev/null
  rm -rf "$rootfs"
}

# --- setup ----------------------------------------------------------------

import_test_image
cat >"$conf_dir/10-$network.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$subnet"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$ipam_dir"
      }
    },
    {"type": "firewall"},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

say "Docker $(docker version --format '{{.Server.Version}}') at $docker_sock; cri-dockerd $version ($cri_dockerd); work dir $work"

# --- one pass -------------------------------------------------------------

# Runs the rollback once. $1: checkpoint (keep dockershim's checkpoint file)
# or deleted (delete it before cri-dockerd starts).
rollback_pass() {
  local mode=$1 uid name pod_json ctr_json shim_sock shim_log shim_pid
  local cd_sock cd_log cd_pid id ctr ip pause ckpt code i state ip2 left before
  say "pass '$mode': dockershim runs the pod"
  uid="rollback-$mode-$$"
  name="rollback-$mode"
  pod_uids+=("$uid")
  pod_json="$work/pod-$mode.json"
  ctr_json="$work/ctr-$mode.json"
  mkdir -p "$work/pods/$uid"
  cat >"$pod_json" <<JSON
{
  "metadata": {"name": "$name", "namespace": "rollback", "uid": "$uid", "attempt": 0},
  "hostname": "$name",
  "labels": {"io.kubernetes.pod.name": "$name", "io.kubernetes.pod.namespace": "rollback", "io.kubernetes.pod.uid": "$uid"},
  "log_directory": "$work/pods/$uid",
  "port_mappings": [{"protocol": 0, "container_port": 80, "host_port": $host_port, "host_ip": "127.0.0.1"}],
  "linux": {}
}
JSON
  cat >"$ctr_json" <<JSON
{
  "metadata": {"name": "web"},
  "labels": {"io.kubernetes.container.name": "web", "io.kubernetes.pod.name": "$name", "io.kubernetes.pod.namespace": "rollback", "io.kubernetes.pod.uid": "$uid"},
  "image": {"image": "$test_image"},
  "command": ["httpd", "-f", "-p", "80", "-h", "/tmp"],
  "log_path": "web/0.log",
  "linux": {}
}
JSON

  shim_sock="$work/run/dockershim-$mode.sock"
  shim_log="$work/dockershim-$mode.log"
  "$shim_bin" \
    --container-runtime-endpoint "unix://$shim_sock" \
    --docker-endpoint "unix://$docker_sock" \
    --network-plugin cni \
    --cni-conf-dir "$conf_dir" \
    --cni-bin-dir "$cni_bin_dir" \
    --cni-cache-dir "$cache_dir" \
    --cri-dockerd-root-directory "$root_dir" \
    --pod-infra-container-image 127.0.0.1:9/none:0 \
    --pod-infra-pull-timeout 5 \
    --streaming-bind-addr 127.0.0.1 \
    >"$shim_log" 2>&1 &
  shim_pid=$!
  started_pids+=("$shim_pid")
  wait_cri "$shim_sock" "$shim_pid" dockershim "$shim_log"

  id=$(crictl_at "$shim_sock" runp "$pod_json") || die "dockershim: runp failed (log: $shim_log)"
  ctr=$(crictl_at "$shim_sock" create --no-pull "$id" "$ctr_json" "$pod_json") ||
    die "dockershim: create failed"
  crictl_at "$shim_sock" start "$ctr" >/dev/null || die "dockershim: start failed"
  ip=$(crictl_at "$shim_sock" inspectp "$id" | jq -r '.status.network.ip // empty')
  [ -n "$ip" ] || die "dockershim: pod ${id:0:12} has no IP"
  echo "  pod ${id:0:12} ip $ip, container ${ctr:0:12}"

  ckpt="$root_dir/sandbox/$id"
  if [ -f "$ckpt" ]; then
    ok "dockershim wrote the checkpoint $ckpt (mode $(stat -c %a "$ckpt")): $(cat "$ckpt")"
    # The fields cri-dockerd reads (core/checkpoint.go, config/types.go).
    if jq -e --arg name "$name" --argjson port "$host_port" '
        .version == "v1" and .name == $name and .namespace == "rollback"
        and (.checksum | type) == "number"
        and .data.port_mappings == [{"protocol": "tcp", "container_port": 80,
                                     "host_port": $port, "host_ip": "127.0.0.1"}]
        and (.data | has("host_network") | not)' "$ckpt" >/dev/null; then
      ok "checkpoint fields are those cri-dockerd reads (version, name, namespace, port_mappings, checksum)"
    else
      fail "checkpoint content differs from cri-dockerd's format"
    fi
  else
    fail "dockershim wrote no checkpoint at $ckpt (found: $(find "$root_dir" -printf '%P ' 2>&1))"
  fi
  if iptables-save -t nat | grep -F -- "$id" | grep 'dnat name' >/dev/null; then
    ok "DNAT rule of the hostPort: $(iptables-save -t nat | grep -F -- "$id" | grep 'dnat name')"
  else
    fail "no DNAT rule names sandbox $id"
  fi
  code=000
  for ((i = 0; i < 20; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$host_port/" || true)
    [ "$code" != 000 ] && break
    sleep 0.5
  done
  if [ "$code" != 000 ]; then
    ok "127.0.0.1:$host_port reaches the pod's httpd (HTTP $code)"
  else
    fail "127.0.0.1:$host_port does not answer through the hostPort"
  fi

  say "pass '$mode': stopping dockershim (pid $shim_pid)"
  stop_pid "$shim_pid" dockershim 30 || fail "dockershim needed SIGKILL to stop"
  state=$(docker inspect -f '{{.State.Running}}' "$id" "$ctr" 2>&1 | tr '\n' ' ')
  if [ "$state" = "true true " ]; then
    ok "the pause and app containers keep running without dockershim"
  else
    fail "after dockershim stopped, pause and app container running: $state"
  fi
  if [ "$mode" = deleted ]; then
    rm -f "$ckpt"
    echo "  deleted the checkpoint $ckpt"
  fi

  pause=$(docker inspect -f '{{.Config.Image}}' "$id")
  say "pass '$mode': cri-dockerd takes over (pod infra image $pause)"
  cd_sock="$work/run/cri-dockerd-$mode.sock"
  cd_log="$work/cri-dockerd-$mode.log"
  "$cri_dockerd" \
    --container-runtime-endpoint "unix://$cd_sock" \
    --docker-endpoint "unix://$docker_sock" \
    --network-plugin cni \
    --cni-conf-dir "$conf_dir" \
    --cni-bin-dir "$cni_bin_dir" \
    --cni-cache-dir "$cache_dir" \
    --cri-dockerd-root-directory "$root_dir" \
    --pod-infra-container-image "$pause" \
    --streaming-bind-addr 127.0.0.1 \
    --log-level debug \
    >"$cd_log" 2>&1 &
  cd_pid=$!
  started_pids+=("$cd_pid")
  wait_cri "$cd_sock" "$cd_pid" cri-dockerd "$cd_log"

  state=$(crictl_at "$cd_sock" pods --id "$id" -o json | jq -r '[.items[].state] | join(",")')
  if [ "$state" = SANDBOX_READY ]; then
    ok "cri-dockerd lists the pod, SANDBOX_READY"
  else
    fail "cri-dockerd lists the pod as '$state' (want SANDBOX_READY)"
  fi
  ip2=$(crictl_at "$cd_sock" inspectp "$id" | jq -r '.status.network.ip // empty')
  if [ "$ip2" = "$ip" ]; then
    ok "cri-dockerd reports the pod's IP $ip2"
  else
    fail "cri-dockerd reports IP '$ip2' (dockershim: $ip)"
  fi
  state=$(crictl_at "$cd_sock" ps -a --pod "$id" -o json | jq -r '[.containers[] | .metadata.name + "=" + .state] | join(",")')
  if [ "$state" = web=CONTAINER_RUNNING ]; then
    ok "cri-dockerd lists the pod's container: $state"
  else
    fail "cri-dockerd lists the pod's containers as '$state' (want web=CONTAINER_RUNNING)"
  fi

  say "pass '$mode': cri-dockerd stops and removes the pod"
  crictl_at "$cd_sock" stopp "$id" >/dev/null || fail "cri-dockerd: stopp failed (log: $cd_log)"
  crictl_at "$cd_sock" rmp "$id" >/dev/null || fail "cri-dockerd: rmp failed (log: $cd_log)"
  if grep -iE 'checksum|corrupt' "$cd_log" >/dev/null; then
    if [ "$mode" = checkpoint ]; then
      fail "cri-dockerd complained about the checkpoint: $(grep -iE 'checksum|corrupt' "$cd_log" | head -3)"
    fi
  fi

  left=$(iptables-save | grep -F -- "$id" || true)
  if [ -z "$left" ]; then
    ok "no iptables rule names the sandbox id"
  else
    leftover "iptables rules name the sandbox id:"$'\n'"$(indent <<<"$left")"
  fi
  left=$(iptables-save | grep -E -- "$(ip_pattern "$ip")" || true)
  if [ -z "$left" ]; then
    ok "no iptables rule names the pod IP $ip"
  else
    leftover "iptables rules name the pod IP $ip:"$'\n'"$(indent <<<"$left")"
  fi
  left=$(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{print $2}' | tr '\n' ' ')
  if [ -z "$left" ]; then
    ok "no veth on $bridge"
  else
    leftover "interfaces left on $bridge: $left"
  fi
  left=$(find "$ipam_dir" -type f ! -name 'last_reserved_ip.*' ! -name lock -printf '%f ' 2>/dev/null)
  if [ -z "$left" ]; then
    ok "host-local holds no allocation"
  else
    leftover "host-local allocations left: $left"
  fi
  # libcni's cache key is <network>-<sandbox id>-<ifname>; cri-dockerd uses
  # the ifname eth0 for its loopback network too (network/cni/cni.go,
  # buildCNIRuntimeConf), so it deletes cni-loopback-<id>-eth0.
  if [ ! -e "$cache_dir/results/$network-$id-eth0" ]; then
    ok "the pod network's CNI cache entry ($network-<id>-eth0) is gone"
  else
    leftover "the pod network's CNI cache entry is left: results/$network-$id-eth0"
  fi
  left=$(find "$cache_dir" -type f -name "*$id*" -printf '%P ' 2>/dev/null)
  if [ -z "$left" ]; then
    ok "no other CNI cache entry of the pod"
  else
    leftover "CNI cache entries left (cri-dockerd deletes cni-loopback-<id>-eth0 and $network-<id>-eth0): $left"
  fi
  left=$(docker ps -aq --filter "label=io.kubernetes.pod.uid=$uid" | tr '\n' ' ')
  if [ -z "$left" ] && ! docker inspect "$id" >/dev/null 2>&1; then
    ok "no container of the pod in Docker"
  else
    leftover "containers of the pod left in Docker: $left"
  fi
  if [ ! -e "$ckpt" ]; then
    ok "no checkpoint file"
  else
    leftover "checkpoint file left: $ckpt"
  fi

  say "pass '$mode': stopping cri-dockerd (pid $cd_pid)"
  stop_pid "$cd_pid" cri-dockerd 30 || fail "cri-dockerd needed SIGKILL to stop"
  if [ "$mode" = deleted ]; then
    before=$(iptables-save | grep -cE -- "$id|$(ip_pattern "$ip")" || true)
    if [ "$before" -gt 0 ]; then
      echo "  cleaning up the $before rules left:"
      delete_rules_matching "$id"
      delete_rules_matching "$(ip_pattern "$ip")"
    fi
    left=$(iptables-save | grep -E -- "$id|$(ip_pattern "$ip")" || true)
    [ -z "$left" ] || fail "rules left after the cleanup: $left"
    rm -f "$ipam_dir/$network/$ip"
  fi
}

rollback_pass checkpoint
rollback_pass deleted

if [ "$failures" -gt 0 ]; then
  die "$failures check(s) failed"
fi
say "all checks passed: cri-dockerd $version tore down the pod dockershim made"
