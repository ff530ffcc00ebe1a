#!/usr/bin/env bash
# Kubernetes' node end-to-end suite (test/e2e_node) against dockershim: the
# way the Kubernetes project qualifies a node and its runtime. The suite
# starts its own etcd and API server and a kubelet pointed at dockershim, then
# drives that node through the API server: pods, probes, hooks, volumes,
# exec, logs and the rest.
#
# Usage (as root):
#   integration/node-e2e.sh build
#       Builds, from the Go module k8s.io/kubernetes v1.36.3 with the
#       machine's Go and module proxy: the suite's test binary
#       (e2e_node.test), ginkgo at kubernetes' version, agnhost (the
#       suite's test server) and nonewprivs' program, and (through
#       kubelet.sh build) the kubelet, into
#       $DOCKERSHIM_TEST_CACHE/node-e2e-v1.36.3. Does nothing when they are
#       there.
#   integration/node-e2e.sh images <docker-socket> <registry-addr>
#       Builds every image the suite's specs run, from local files only
#       (Debian's busybox, the programs built above), with the Docker behind
#       <docker-socket>, and pushes them to the plain-HTTP registry at
#       <registry-addr> (e.g. 127.0.0.1:5055).
#   integration/node-e2e.sh run <docker-socket> [conformance|node-conformance|full]
#       Runs the suite against a dockershim it starts (CNI: Debian's bridge,
#       host-local, loopback, portmap and firewall plugins) over the Docker
#       at <docker-socket>. `full` runs containerd's focus,
#       [NodeConformance] and every [Feature:...] spec, skipping [Flaky],
#       [Slow], [Serial] and [Alpha]; `node-conformance` its
#       [NodeConformance] specs (427); `conformance` (the default, what the
#       test command runs, 141 specs) those that are also [Conformance],
#       Kubernetes' conformance profile of a node.
#       integration/node-e2e-skips.txt lists what else is skipped, each with
#       its reason. Exits non-zero on any failed spec. Reports go to
#       $DOCKERSHIM_NODE_E2E_WORK/run/report.
#
# The images are served under their real names (registry.k8s.io, ...) by
# the loopback registry critest.sh uses (integration/test-images.sh): the
# suite does not know it is offline. A spec whose image is missing fails.
#
# The suite's kubelet uses the fixed root /var/lib/kubelet and the pod log
# directory /var/log/pods, runs its pods in the /kubepods cgroups and sets
# sysctls: the run puts all of that back when it ends (integration/
# node-host.sh), and removes every CRI container left in that Docker. The
# Docker must be one where nothing else runs CRI pods (a private engine of
# integration/dockerd.sh), with a runtime named test-handler (runc, as
# the suite's CI configures its nodes: dockerd --add-runtime
# test-handler=/usr/sbin/runc). The suite starts the kubelet with systemd-run
# when it finds it, which needs systemd as PID 1: on a host without it, the
# run diverts /usr/bin/systemd-run (dpkg-divert) for its duration.
#
# Environment:
#   DOCKERSHIM_TEST_CACHE        parent of the tool cache (/var/cache/dockershim-test)
#   DOCKERSHIM_NODE_E2E_WORK     work directory (/tmp/dockershim-node-e2e), emptied per run
#   DOCKERSHIM_TEST_REGISTRY     registry the images were pushed to (127.0.0.1:5055)
#   DOCKERSHIM_BIN               the shim binary (target/debug/dockershim)
#   DOCKERSHIM_NODE_E2E_NODES    ginkgo's parallel processes (8: the specs
#                                mostly wait on pods, as containerd's CI runs)
#   DOCKERSHIM_NODE_E2E_FOCUS    a ginkgo focus regex replacing the run's own
#   DOCKERSHIM_NODE_E2E_ATTEMPTS runs a failing spec may take (2); one that
#                                passes only on a retry is listed as flaky
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD

k8s_version=v1.36.3
cache_parent="${DOCKERSHIM_TEST_CACHE:-/var/cache/dockershim-test}"
tools="$cache_parent/node-e2e-$k8s_version"
kubelet_bin="$cache_parent/kubelet-$k8s_version/kubelet"
# critest.sh's build; when present, the teardown removes the pods through
# the shim, so their networks are torn down as a kubelet would.
crictl_bin="$cache_parent/cri-tools-v1.37.0/crictl"
work="${DOCKERSHIM_NODE_E2E_WORK:-/tmp/dockershim-node-e2e}"
shim_bin="${DOCKERSHIM_BIN:-$repo/target/debug/dockershim}"
skips_file="$repo/integration/node-e2e-skips.txt"
# The registry host names the suite's images come from.
registry_hosts=(registry.k8s.io gcr.io k8s.gcr.io)
# The pod network: a bridge and a /24 of the run's own.
pod_bridge=dsne2e0
pod_subnet=10.238.0.0/24

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=integration/go-tools.sh
. "$repo/integration/go-tools.sh"
# shellcheck source=integration/test-images.sh
. "$repo/integration/test-images.sh"
# shellcheck source=integration/node-host.sh
. "$repo/integration/node-host.sh"
# shellcheck source=integration/run-teardown.sh
. "$repo/integration/run-teardown.sh"

started_pids=()
cleanups=()
suite_pid=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [ -n "$suite_pid" ]; then
    # Interrupted during the run.
    stop_ginkgo_group "$suite_pid"
  fi
  run_teardown
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || die "run as root"

# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------
# The suite is a Go test binary; kubernetes' own build makes it with
# `go test -c` (hack/make-rules/test-e2e-node.sh through build/). It finds
# the kubelet beside itself (--k8s-bin-dir). ginkgo runs it on several
# processes and must be the version the binary links.
do_build() {
  "$repo/integration/kubelet.sh" build
  if [ -x "$tools/e2e_node.test" ] && [ -x "$tools/ginkgo" ] && [ -x "$tools/agnhost" ] &&
    [ -x "$tools/nnp" ]; then
    ln -sf "$kubelet_bin" "$tools/kubelet"
    say "node e2e suite $k8s_version already built in $tools"
    return
  fi
  require_go_proxy "the node e2e suite $k8s_version"
  local start=$SECONDS scratch
  scratch=$(mktemp -d /tmp/dockershim-node-e2e-build.XXXXXX)
  cleanups+=("rm -rf '$scratch'")
  mkdir -p "$scratch/bin"
  (
    set -e
    k8s_scratch_module "$scratch" "$k8s_version"
    go get "k8s.io/kubernetes/test/e2e_node@$k8s_version" "k8s.io/kubernetes/test/images/agnhost@$k8s_version"
    ginkgo_version=$(go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
    go get "github.com/onsi/ginkgo/v2/ginkgo@$ginkgo_version"
    go test -c -trimpath -ldflags "$(k8s_version_ldflags "$k8s_version")" \
      -o "$scratch/bin/e2e_node.test" k8s.io/kubernetes/test/e2e_node
    go build -trimpath -o "$scratch/bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
    go build -trimpath -ldflags "-s -w" -o "$scratch/bin/agnhost" k8s.io/kubernetes/test/images/agnhost
    # nonewprivs' program is one file outside any package kubernetes builds.
    mkdir -p "$scratch/nnp"
    cp "$(go env GOMODCACHE)/k8s.io/kubernetes@$k8s_version/test/images/nonewprivs/nnp.go" "$scratch/nnp/"
    go build -trimpath -ldflags "-s -w" -o "$scratch/bin/nnp" "$scratch/nnp/nnp.go"
  ) || die "building the node e2e suite $k8s_version failed"
  mkdir -p "$cache_parent"
  rm -rf "$tools.tmp"
  mv "$scratch/bin" "$tools.tmp"
  rm -rf "$tools"
  mv "$tools.tmp" "$tools"
  ln -sf "$kubelet_bin" "$tools/kubelet"
  say "built the node e2e suite in $((SECONDS - start))s into $tools"
}

# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
# What each image must do comes from kubernetes' test/images (their
# Dockerfiles) and the specs that run them. Each is one layer made with
# `docker import` on the busybox root filesystem critest's images use
# (test-images.sh), pushed as registry.k8s.io/e2e-test-images/<name>:
#   agnhost:2.63.0 (and 2.55, the previous version the suite names)
#     /agnhost, ENTRYPOINT ["/agnhost"], CMD ["pause"]; the user
#     user-defined-in-image (1000) in group group-defined-in-image (50000);
#     porter's localhost certificate and key; /uploads; the host's curl,
#     bash and OpenBSD nc (hooks run `curl`, the networking specs `nc -u`;
#     upstream's image has all three).
#   busybox:1.37.0-1 and busybox:1.36.1-1 (which specs name directly),
#     with nmeter (integration/critest/nmeter), which Debian's busybox
#     lacks and the lifecycle specs read milliseconds from. So do the
#     images below, all made on this one.
#   nginx:1.15-4: critest's nginx stand-in (integration/critest/nginx).
#   nonewprivs:1.4: nnp, setuid root, CMD ["nnp"].
#   nonroot:1.5: busybox with USER 1234.
#   kitten:1.8: agnhost + kitten.jpg and data.json from test/images/kitten,
#     and the os-release of upstream's Alpine base, CMD ["test-webserver"]
#     (an image volume's content).
#   ipc-utils:1.4: busybox + the host's util-linux ipcmk and ipcs.
#   glibc-dns-testing:2.0.0: busybox + the host's glibc hostname and getent
#     (the FQDN specs read `hostname -f` as glibc resolves it).
#   pause:3.10.2 (registry.k8s.io/pause): critest's pause program.
do_images() {
  local docker_sock=${1:?usage: node-e2e.sh images <docker-socket> <registry-addr>}
  local registry=${2:?usage: node-e2e.sh images <docker-socket> <registry-addr>}
  local -a docker=(docker -H "unix://$docker_sock")
  "${docker[@]}" version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker answers on $docker_sock"
  curl -sf -o /dev/null "http://$registry/v2/" || die "no registry answers on http://$registry/v2/"
  local program
  for program in /usr/bin/curl /usr/bin/bash /usr/bin/nc.openbsd /usr/bin/ipcmk /usr/bin/ipcs \
    /usr/bin/hostname /usr/bin/getent; do
    [ -x "$program" ] || die "$program is missing: the images copy it from the host" \
      "(Debian's curl, bash, netcat-openbsd, util-linux, hostname, libc-bin)"
  done
  do_build
  local start=$SECONDS
  fetch_busybox
  local dir="$work/images"
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  (cd "$repo/integration/critest" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$dir/bin/" ./nginx ./nmeter ./pause) ||
    die "building integration/critest failed"
  local pushed=() lib
  # import <rootfs> <name:tag>... [-- <docker import -c changes>...]
  import() {
    local root=$1 name
    shift
    local names=() changes=() change
    while [ $# -gt 0 ] && [ "$1" != -- ]; do names+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    for change in "$@"; do changes+=(-c "$change"); done
    tar --numeric-owner -C "$root" -c . |
      "${docker[@]}" import "${changes[@]}" - "$registry/${names[0]}" >/dev/null
    for name in "${names[@]:1}"; do
      "${docker[@]}" tag "$registry/${names[0]}" "$registry/$name"
    done
    for name in "${names[@]}"; do
      "${docker[@]}" push -q "$registry/$name" >/dev/null || die "pushing $registry/$name failed"
      pushed+=("$registry/$name")
      printf '    %s\n' "$name"
    done
  }
  variant() { # name: a copy of the busybox root filesystem in $dir/<name>
    rm -rf "${dir:?}/$1"
    cp -a "$dir/busybox" "$dir/$1"
  }
  host_program() { # root path: the host's program at path and its libraries
    local root=$1 program=$2 lib
    mkdir -p "$root$(dirname "$program")"
    cp -L "$program" "$root$program"
    for lib in $(ldd "$program" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  }
  local env_path="ENV PATH=$busybox_path" e2e=e2e-test-images
  say "building and pushing the node e2e images to $registry"
  make_busybox_rootfs "$dir/busybox"
  install -m 755 "$dir/bin/nmeter" "$dir/busybox/bin/nmeter"
  import "$dir/busybox" "$e2e/busybox:1.37.0-1" -- "$env_path" 'CMD ["sh"]'
  # Upstream's tags are different images (a status shows an image's first
  # tag), so every tag here is one too: an empty file names it.
  variant busybox-prev
  : >"$dir/busybox-prev/.busybox-1.36.1-1"
  import "$dir/busybox-prev" "$e2e/busybox:1.36.1-1" -- "$env_path" 'CMD ["sh"]'

  variant agnhost
  install -m 755 "$tools/agnhost" "$dir/agnhost/agnhost"
  ln -s agnhost "$dir/agnhost/agnhost-2"
  host_program "$dir/agnhost" /usr/bin/curl
  host_program "$dir/agnhost" /usr/bin/bash
  host_program "$dir/agnhost" /usr/bin/nc.openbsd
  ln -s nc.openbsd "$dir/agnhost/usr/bin/nc"
  ln -s /usr/bin/bash "$dir/agnhost/bin/bash"
  mkdir -p "$dir/agnhost/uploads"
  cp "$(go env GOMODCACHE)/k8s.io/kubernetes@$k8s_version/test/images/agnhost/porter/localhost."{crt,key} "$dir/agnhost/"
  echo 'user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh' >>"$dir/agnhost/etc/passwd"
  printf '%s\n' 'user-defined-in-image:x:1000:' 'group-defined-in-image:x:50000:user-defined-in-image' >>"$dir/agnhost/etc/group"
  install -d -m 755 -o 1000 -g 1000 "$dir/agnhost/home/user-defined-in-image"
  import "$dir/agnhost" "$e2e/agnhost:2.63.0" -- "$env_path" \
    'EXPOSE 80 8080 8081 9376 5000' 'ENTRYPOINT ["/agnhost"]' 'CMD ["pause"]'
  rm -rf "$dir/agnhost-prev"
  cp -a "$dir/agnhost" "$dir/agnhost-prev"
  : >"$dir/agnhost-prev/.agnhost-2.55"
  import "$dir/agnhost-prev" "$e2e/agnhost:2.55" -- "$env_path" \
    'EXPOSE 80 8080 8081 9376 5000' 'ENTRYPOINT ["/agnhost"]' 'CMD ["pause"]'

  local images_src
  images_src="$(go env GOMODCACHE)/k8s.io/kubernetes@$k8s_version/test/images"
  rm -rf "$dir/kitten"
  cp -a "$dir/agnhost" "$dir/kitten"
  cp "$images_src/kitten/html/kitten.jpg" "$images_src/kitten/html/data.json" "$dir/kitten/"
  # Upstream's kitten is built on agnhost, whose base is Alpine Linux; the
  # ImageVolume specs read its /etc/os-release through the volume.
  mkdir -p "$dir/kitten/etc"
  cat >"$dir/kitten/etc/os-release" <<'EOF_OS'
# dockershim's offline stand-in for registry.k8s.io/e2e-test-images/kitten,
# with the os-release of upstream's base image (Alpine Linux).
NAME="Alpine Linux"
ID=alpine
PRETTY_NAME="Alpine Linux (dockershim test stand-in)"
EOF_OS
  import "$dir/kitten" "$e2e/kitten:1.8" -- "$env_path" 'ENTRYPOINT ["/agnhost"]' 'CMD ["test-webserver"]'

  variant ipc-utils
  host_program "$dir/ipc-utils" /usr/bin/ipcmk
  host_program "$dir/ipc-utils" /usr/bin/ipcs
  import "$dir/ipc-utils" "$e2e/ipc-utils:1.4" -- "$env_path" 'CMD ["sh"]'

  variant glibc-dns-testing
  rm -f "$dir/glibc-dns-testing/bin/hostname"
  host_program "$dir/glibc-dns-testing" /usr/bin/hostname
  host_program "$dir/glibc-dns-testing" /usr/bin/getent
  for lib in /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2; do
    [ -e "$lib" ] && cp -L "$lib" "$dir/glibc-dns-testing$lib"
  done
  printf 'hosts: files dns\n' >"$dir/glibc-dns-testing/etc/nsswitch.conf"
  import "$dir/glibc-dns-testing" "$e2e/glibc-dns-testing:2.0.0" -- "$env_path" 'CMD ["sh"]'

  variant nginx
  cp "$dir/bin/nginx" "$dir/nginx/usr/sbin/nginx"
  import "$dir/nginx" "$e2e/nginx:1.15-4" -- "$env_path" 'EXPOSE 80' 'CMD ["nginx", "-g", "daemon off;"]'

  variant nonewprivs
  install -m 4755 -o 0 -g 0 "$tools/nnp" "$dir/nonewprivs/usr/local/bin/nnp"
  import "$dir/nonewprivs" "$e2e/nonewprivs:1.4" -- "$env_path" 'CMD ["nnp"]'

  import "$dir/busybox" "$e2e/nonroot:1.5" -- "$env_path" 'USER 1234' 'CMD ["sh"]'

  mkdir -p "$dir/pause"
  install -m 755 "$dir/bin/pause" "$dir/pause/pause"
  import "$dir/pause" pause:3.10.2 -- 'USER 65535:65535' 'ENTRYPOINT ["/pause"]'

  "${docker[@]}" rmi "${pushed[@]}" >/dev/null 2>&1 || true
  rm -rf "$dir"
  say "pushed ${#pushed[@]} images to $registry in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------
# The skip list: lines '<regex> :: <reason>'; # starts a comment.
read_skip_list() {
  local line n=0 regex reason
  skip_regexes=()
  [ -f "$skips_file" ] || die "no skip list at $skips_file"
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    case "$line" in '' | '#'*) continue ;; esac
    [[ "$line" == *' :: '* ]] || die "$skips_file:$n: expected '<regex> :: <reason>'"
    regex=${line%% :: *}
    reason=${line#* :: }
    if [ -z "$regex" ] || [ -z "$reason" ]; then die "$skips_file:$n: empty regex or reason"; fi
    skip_regexes+=("$regex")
  done <"$skips_file"
}

# One line per spec that was in the focus, tab-separated: its outcome, its
# full name, and the first lines of its failure or skip message. Outcomes:
# passed; flaky (passed on a retry); skipped-by-list (a regex in $2, a JSON
# array); skipped (the suite skipped it: a feature or kernel it needs is
# not there); or one of ginkgo's failure states (failed, panicked,
# timedout, interrupted, aborted).
summarize() { # report.json skips-json focus-regex
  jq -r --argjson skips "$2" --arg focus "$3" '
    .[].SpecReports[]
    | select(.LeafNodeType == "It")
    | ((.ContainerHierarchyTexts // []) + [.LeafNodeText] | map(select(. != "")) | join(" ")) as $text
    | ([.ContainerHierarchyLabels[]?[]?, .LeafNodeLabels[]?] | map("[" + . + "]") | join(" ")) as $labels
    | ($text + (if $labels == "" then "" else " " + $labels end)) as $name
    | ((.Failure.Message // "") | split("\n") | map(select(test("\\S"))) | .[0:4]
        | map(sub("^\\s+"; "")) | join(" ") | .[0:400]) as $message
    | (if .State == "passed" and (.NumAttempts // 1) > 1 then "flaky"
       elif .State != "skipped" then .State
       elif ($name | test($focus)) and any($skips[]; . as $re | $name | test($re)) then "skipped-by-list"
       elif $message == "" then "not-run"
       else "skipped" end) as $outcome
    | select($outcome != "not-run")
    | [$outcome, $name, $message] | @tsv' "$1"
}

shim_pid=
made_dirs=()
teardown() {
  if [ -n "$shim_pid" ] && kill -0 "$shim_pid" 2>/dev/null && [ -x "$crictl_bin" ]; then
    timeout 120 "$crictl_bin" --runtime-endpoint "unix://$work/run/shim.sock" \
      --image-endpoint "unix://$work/run/shim.sock" rmp -af >/dev/null 2>&1 ||
      printf 'warning: crictl rmp -af failed\n' >&2
  fi
  stop_pid "$shim_pid" dockershim
  shim_pid=
  local id
  for id in $(curl -sS --max-time 60 --unix-socket "$docker_sock" \
    'http://docker/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.kubernetes.docker.type%22%5D%7D' |
    jq -r '.[].Id'); do
    curl -sS --max-time 60 --unix-socket "$docker_sock" -X DELETE "http://docker/containers/$id?force=1&v=1" >/dev/null ||
      printf 'warning: cannot remove container %s\n' "$id" >&2
  done
  unmount_under /var/lib/kubelet
  # The shim pins each pod's network namespace until the pod's teardown,
  # which the removals above bypassed.
  unmount_under "$work/run/shim"
  remove_kubepods_cgroups || true
  ip link del "$pod_bridge" 2>/dev/null || true
  # The kubelet's directories, when the run made them: its state files
  # (CPU and memory manager checkpoints, ...) would be read by the next
  # kubelet started here.
  local d
  for d in "${made_dirs[@]}"; do
    rm -rf "$d"
  done
}

do_run() {
  docker_sock=${1:?usage: node-e2e.sh run <docker-socket> [conformance|node-conformance|full]}
  local which=${2:-conformance}
  local upstream=${DOCKERSHIM_TEST_REGISTRY:-127.0.0.1:5055}
  local nodes=${DOCKERSHIM_NODE_E2E_NODES:-8}
  local attempts=${DOCKERSHIM_NODE_E2E_ATTEMPTS:-2}
  [ -S "$docker_sock" ] || die "no Docker socket at $docker_sock"
  [ "$docker_sock" != /var/run/docker.sock ] && [ "$docker_sock" != /run/docker.sock ] ||
    die "refusing the system's Docker: the suite's kubelet removes every pod it did not make"
  [ -x "$shim_bin" ] || die "no shim binary at $shim_bin (cargo build)"
  for tool in jq openssl docker-registry ss ip iptables; do
    command -v "$tool" >/dev/null || die "$tool is missing"
  done
  local cni
  for cni in bridge host-local loopback portmap firewall; do
    [ -x "/usr/lib/cni/$cni" ] || die "the CNI plugin $cni is missing (Debian's containernetworking-plugins)"
  done
  do_build
  local focus skip='\[Flaky\]|\[Slow\]|\[Serial\]|\[Alpha\]'
  case "$which" in
    full) focus='\[NodeConformance\]|\[Feature:.+\]|\[Feature\]' ;;
    node-conformance) focus='\[NodeConformance\]' ;;
    conformance) focus='\[NodeConformance\].*\[Conformance\]|\[Conformance\].*\[NodeConformance\]' ;;
    *) die "run: conformance, node-conformance or full, not '$which'" ;;
  esac
  [ -z "${DOCKERSHIM_NODE_E2E_FOCUS:-}" ] || focus=$DOCKERSHIM_NODE_E2E_FOCUS
  local -a skip_regexes
  read_skip_list
  local regex
  for regex in "${skip_regexes[@]}"; do
    skip+="|$regex"
  done
  if [ -d /var/lib/kubelet/pods ] && [ -n "$(ls -A /var/lib/kubelet/pods)" ]; then
    die "/var/lib/kubelet/pods holds pods: another kubelet runs here, or a killed run left them"
  fi

  take_registry_hosts_lock
  # A killed run can leave the shim's namespace pins mounted.
  unmount_under "$work/run"
  rm -rf "$work/run"
  local w="$work/run"
  mkdir -p "$w/report" "$w/net.d" "$w/shim" "$w/cni-cache" "$w/ipam"
  serve_registry_hosts "$upstream" "$work/front" e2e-test-images/agnhost 2.63.0 "${registry_hosts[@]}"

  # Images an earlier run left would be used without a pull (and could be
  # stale builds): remove them, so that the run pulls what the registry has.
  local image
  for image in $(jq -r '.[] | select(any(.RepoTags[]?; test("^(registry.k8s.io|gcr.io|k8s.gcr.io)/"))) | .Id' \
    <<<"$(curl -sS --unix-socket "$docker_sock" http://docker/images/json)"); do
    curl -sS --fail --unix-socket "$docker_sock" -X DELETE "http://docker/images/$image?force=1" >/dev/null ||
      die "cannot remove the image $image an earlier run left"
  done

  # The kubelet is started through systemd-run when the suite finds one,
  # and that needs systemd as PID 1.
  if [ -x /usr/bin/systemd-run ] && [ "$(cat /proc/1/comm)" != systemd ]; then
    dpkg-divert --quiet --local --rename --divert /usr/bin/systemd-run.dockershim-node-e2e \
      --add /usr/bin/systemd-run || die "cannot divert /usr/bin/systemd-run"
    cleanups+=("dpkg-divert --quiet --local --rename --divert /usr/bin/systemd-run.dockershim-node-e2e --remove /usr/bin/systemd-run")
  fi
  record_sysctls
  local d
  for d in /var/lib/kubelet /var/log/pods /var/log/containers; do
    [ -e "$d" ] || made_dirs+=("$d")
  done
  cleanups+=("teardown")

  cat >"$w/net.d/10-node-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "node-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$pod_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_subnet"}]], "dataDir": "$w/ipam"}},
    {"type": "firewall"},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  "$shim_bin" \
    --container-runtime-endpoint "unix://$w/shim.sock" \
    --docker-endpoint "unix://$docker_sock" \
    --cri-dockerd-root-directory "$w/shim" \
    --network-plugin cni --cni-conf-dir "$w/net.d" --cni-cache-dir "$w/cni-cache" \
    --pod-infra-container-image registry.k8s.io/pause:3.10.2 \
    >"$w/shim.log" 2>&1 &
  shim_pid=$!
  echo "$shim_pid" >"$w/shim.pid"
  for _ in $(seq 1 60); do
    [ -S "$w/shim.sock" ] && break
    kill -0 "$shim_pid" 2>/dev/null || { tail -20 "$w/shim.log"; die "the shim exited"; }
    sleep 0.5
  done
  [ -S "$w/shim.sock" ] || die "the shim did not start"

  local driver info
  info=$(curl -sS --unix-socket "$docker_sock" http://docker/info)
  driver=$(jq -r .CgroupDriver <<<"$info")
  jq -e '.Runtimes["test-handler"]' <<<"$info" >/dev/null ||
    die "the Docker has no runtime 'test-handler', which the suite's RuntimeClass specs use" \
      "(its CI's nodes configure one as runc): start dockerd with --add-runtime test-handler=/usr/sbin/runc"
  # The suite's kubelet configuration starts from this file: what this host
  # needs (cgroup v1, the engine's cgroup driver) and the suite's own
  # defaults (test/e2e_node/jenkins/default-kubelet-config.yaml).
  cat >"$w/kubelet-base.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: $driver
cgroupRoot: /
failCgroupV1: false
failSwapOn: false
volumeStatsAggPeriod: 10s
serializeImagePulls: false
fileCheckFrequency: 10s
evictionPressureTransitionPeriod: 30s
evictionHard:
  memory.available: 250Mi
  nodefs.available: 10%
  nodefs.inodesFree: 5%
evictionMinimumReclaim:
  nodefs.available: 5%
  nodefs.inodesFree: 5%
makeIPTablesUtilChains: false
EOF

  say "node e2e $k8s_version ($which): focus '$focus', $nodes processes, ${#skip_regexes[@]} skip entries; log: $w/suite.log"
  local start=$SECONDS status=0
  (
    cd "$w"
    exec setsid "$tools/ginkgo" \
      --nodes="$nodes" \
      --focus="$focus" --skip="$skip" \
      --flake-attempts="$attempts" \
      --timeout=90m \
      --no-color \
      --json-report=report.json --junit-report=junit.xml --output-dir="$w/report" \
      "$tools/e2e_node.test" -- \
      --container-runtime-endpoint="unix://$w/shim.sock" \
      --container-runtime-process-name=dockershim \
      --container-runtime-pid-file="$w/shim.pid" \
      --k8s-bin-dir="$tools" \
      --kubelet-config-file="$w/kubelet-base.yaml" \
      --report-dir="$w/report" \
      --prepull-images=false
  ) >"$w/suite.log" 2>&1 &
  suite_pid=$!
  wait "$suite_pid" || status=$?
  suite_pid=
  local elapsed=$((SECONDS - start))

  local report="$w/report/report.json"
  [ -s "$report" ] || { tail -60 "$w/suite.log"; die "the suite wrote no report (exit $status)"; }
  local skips_json='[]'
  [ ${#skip_regexes[@]} -eq 0 ] || skips_json=$(printf '%s\n' "${skip_regexes[@]}" | jq -R . | jq -cs .)
  summarize "$report" "$skips_json" "$focus" >"$w/summary.tsv"
  count() { awk -F'\t' -v o="$1" '$1 == o' "$w/summary.tsv" | wc -l; }
  local passed flaky by_list by_suite failed ok='^(passed|flaky|skipped|skipped-by-list)$'
  flaky=$(count flaky)
  passed=$(($(count passed) + flaky))
  by_list=$(count skipped-by-list)
  by_suite=$(count skipped)
  failed=$(awk -F'\t' -v ok="$ok" '$1 !~ ok' "$w/summary.tsv" | wc -l)
  if [ "$failed" -gt 0 ]; then
    say "failures:"
    awk -F'\t' -v ok="$ok" '$1 !~ ok { printf "  [%s] %s\n      %s\n", $1, $2, $3 }' "$w/summary.tsv"
  fi
  if [ "$flaky" -gt 0 ]; then
    say "flaky (failed, then passed on a retry; the failures are in $w/suite.log):"
    awk -F'\t' '$1 == "flaky" { printf "  %s\n", $2 }' "$w/summary.tsv"
  fi
  say "node e2e ($which) on Docker $(curl -sS --unix-socket "$docker_sock" http://docker/version | jq -r .Version):" \
    "$passed passed$([ "$flaky" = 0 ] || echo " ($flaky flaky)"), $failed failed," \
    "$by_list skipped by node-e2e-skips.txt, $by_suite skipped by the suite, in ${elapsed}s"
  say "reports: $report, $w/report/junit.xml, $w/summary.tsv"
  if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then
    [ "$failed" -gt 0 ] || { tail -60 "$w/suite.log"; say "the suite exited $status"; }
    exit 1
  fi
}

main() {
  case "${1:-}" in
    build) do_build ;;
    images) shift; do_images "$@" ;;
    run) shift; do_run "$@" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

# On one line, so that bash has read all of it before running: editing this
# file during a run then cannot change what the run executes.
main "$@"; exit
