#!/usr/bin/env bash
# Runs critest, the CRI conformance suite of cri-tools, against dockershim.
#
# Usage (as root):
#   integration/critest.sh build
#       Builds crictl, critest and ginkgo (critest's parallel runner) from the
#       Go module sigs.k8s.io/cri-tools v1.37.0 with the machine's Go and
#       module proxy, into $DOCKERSHIM_TEST_CACHE/cri-tools-v1.37.0 (default
#       /var/cache/dockershim-test/...). Does nothing when they are there.
#   integration/critest.sh images <docker-socket> <registry-addr>
#       Builds, with the Docker behind <docker-socket>, every image critest
#       pulls, from local files only (Debian's busybox, the Go stand-ins in
#       integration/critest/), and pushes them to the plain-HTTP registry at
#       <registry-addr> (e.g. 127.0.0.1:5055, the registry test.sh starts).
#   integration/critest.sh run <shim-socket> [spdy|websocket]
#       Runs critest against unix://<shim-socket> with the skips listed in
#       integration/critest-skips.txt, streaming over SPDY (default) or
#       WebSocket. Prints the pass/fail/skip counts and each failure; exits
#       non-zero on any failed spec, and on any spec critest skips itself
#       without an entry in the list. Builds first if needed. Reports (ginkgo
#       JSON and JUnit, critest's log, a one-line-per-spec summary.tsv) go to
#       $DOCKERSHIM_CRITEST_WORK/<transport>.
#
# Images are served under their real names (registry.k8s.io/..., gcr.io/...,
# k8s.gcr.io/...), not through critest's --registry-prefix: critest compares
# the names it pulled with the un-prefixed names in its image specs (repo
# tags, ImageStatus by name, "same image from two registries"), so a prefix
# fails about ten specs and leaves containers referring to images never
# pulled. For the run, the three registry host names resolve to 127.0.0.1
# through /etc/hosts entries, and a second Debian docker-registry on
# 127.0.0.1:443 serves TLS (a CA made here, trusted through
# /etc/docker/certs.d) as a pull-through proxy of <registry-addr>. All of
# that is removed when the run ends. Runs are serialised with a lock: they
# share the host ports critest uses (443, 12000-12003).
#
# Environment:
#   DOCKERSHIM_TEST_CACHE      parent of the tool cache (/var/cache/dockershim-test)
#   DOCKERSHIM_CRITEST_WORK    work directory (/tmp/dockershim-critest)
#   DOCKERSHIM_TEST_REGISTRY   registry the images were pushed to (127.0.0.1:5055)
#   DOCKERSHIM_CRITEST_PARALLEL  ginkgo nodes for the run (2)
#   DOCKERSHIM_CRITEST_FOCUS   optional ginkgo focus regex, to run a subset
#   DOCKERSHIM_CRITEST_ATTEMPTS  runs a failing spec may take (2). A spec
#                              that passes only on a later attempt counts as
#                              passed but is listed as "flaky", with its
#                              attempts, in the output and in summary.tsv.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD

cri_tools_version=v1.37.0
cache_parent="${DOCKERSHIM_TEST_CACHE:-/var/cache/dockershim-test}"
tools="$cache_parent/cri-tools-$cri_tools_version"
work="${DOCKERSHIM_CRITEST_WORK:-/tmp/dockershim-critest}"
skips_file="$repo/integration/critest-skips.txt"
# The registry host names critest pulls from, served locally during a run.
registry_hosts=(registry.k8s.io gcr.io k8s.gcr.io)

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=integration/go-tools.sh
. "$repo/integration/go-tools.sh"
# shellcheck source=integration/test-images.sh
. "$repo/integration/test-images.sh"
# shellcheck source=integration/run-teardown.sh
. "$repo/integration/run-teardown.sh"

# Processes and host changes to undo on exit, whatever the exit path.
started_pids=()
cleanups=()
critest_pid=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [ -n "$critest_pid" ]; then
    # Interrupted during the run.
    stop_ginkgo_group "$critest_pid"
    (remove_leftover_pods "${crictl[@]}") || true
  fi
  run_teardown
}
trap cleanup EXIT
# Exit (and so clean up) on SIGINT and SIGTERM too.
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || die "run as root"

# ---------------------------------------------------------------------------
# build: crictl, critest and ginkgo from sigs.k8s.io/cri-tools.
# ---------------------------------------------------------------------------
# critest is a Go test binary. cri-tools' Makefile builds it with
#   CGO_ENABLED=0 go test -c -trimpath -ldflags '-X .../pkg/version.Version=$(VERSION)' ./cmd/critest
# (from its vendor directory); here the same command runs in a scratch module
# that requires cri-tools, so the dependency versions are cri-tools' own.
# With --parallel > 1 critest runs the `ginkgo` CLI from PATH, built at the
# ginkgo version cri-tools requires.
do_build() {
  if [ -x "$tools/critest" ] && [ -x "$tools/crictl" ] && [ -x "$tools/ginkgo" ]; then
    say "cri-tools $cri_tools_version already built in $tools"
    return
  fi
  require_go_proxy "cri-tools $cri_tools_version (Go >= 1.26.6, cri-tools' go.mod)"
  local start=$SECONDS
  local scratch
  scratch=$(mktemp -d /tmp/dockershim-cri-tools-build.XXXXXX)
  cleanups+=("rm -rf '$scratch'")
  local ldflags="-X sigs.k8s.io/cri-tools/pkg/version.Version=${cri_tools_version#v}"
  (
    cd "$scratch" || exit 1
    export CGO_ENABLED=0 GOBIN="$scratch/bin" GOFLAGS="${GOFLAGS:-} -mod=mod"
    go mod init dockershim-cri-tools-build >/dev/null 2>&1 || exit 1
    # The module and the test dependencies of critest, through the proxy.
    go get -t "sigs.k8s.io/cri-tools/cmd/critest@$cri_tools_version" ||
      die "cannot fetch sigs.k8s.io/cri-tools@$cri_tools_version through $proxy"
    go test -c -trimpath -ldflags "$ldflags" -o "$scratch/bin/critest" sigs.k8s.io/cri-tools/cmd/critest || exit 1
    go install -trimpath -ldflags "$ldflags" "sigs.k8s.io/cri-tools/cmd/crictl@$cri_tools_version" || exit 1
    ginkgo_version=$(go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2) || exit 1
    go install -trimpath "github.com/onsi/ginkgo/v2/ginkgo@$ginkgo_version" || exit 1
  ) || die "building cri-tools failed"
  mkdir -p "$cache_parent"
  rm -rf "$tools.tmp"
  mv "$scratch/bin" "$tools.tmp"
  rm -rf "$tools"
  mv "$tools.tmp" "$tools"
  say "built crictl, critest and ginkgo in $((SECONDS - start))s into $tools"
}

# ---------------------------------------------------------------------------
# images: every image critest v1.37.0 pulls, made locally.
# ---------------------------------------------------------------------------
# The names and what each must do come from cri-tools' pkg/validate and
# pkg/framework, and its images/ directory (how upstream builds its test
# images). Every image is a single layer made with `docker import`:
#
#  registry.k8s.io/e2e-test-images/busybox:1.29-2 (DefaultTestContainerImage)
#     Debian's busybox, every applet a hard link in /bin as in the busybox
#     image. Debian's dynamically linked build (package busybox, with the
#     host's libc), not busybox-static: the static build runs applets inside
#     the shell (FEATURE_SH_STANDALONE), so masking /bin/ls (MaskedPaths spec)
#     would not stop `sh -c ls`; and hard links, not symlinks, or masking
#     /bin/ls would mask /bin/busybox itself. Debian's build lacks pgrep and
#     ipcs, which specs run: small sh stand-ins. /etc/passwd and /etc/group as
#     in the busybox image (root, www-data, nobody, ...).
#  registry.k8s.io/e2e-test-images/nginx:1.14-2
#     busybox + the nginx stand-in (integration/critest/nginx): process
#     "nginx", /var/run/nginx.pid, "master process" in pid 1's cmdline, HTTP
#     200 on port 80.
#  gcr.io/k8s-staging-cri-tools/hostnet-nginx-<arch>:latest
#     The same, on port 12003 (images/hostnet-nginx in cri-tools).
#  registry.k8s.io/e2e-test-images/httpd:2.4.39-4
#     busybox httpd on port 80, printing a line with "httpd" to its log.
#  registry.k8s.io/e2e-test-images/nonewprivs:1.3
#     integration/critest/nnp installed setuid root as ENTRYPOINT: prints
#     "Effective uid: N".
#  registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9 (one image, two names)
#     integration/critest/pause as ENTRYPOINT /pause, USER 65535:65535.
#  gcr.io/k8s-staging-cri-tools/test-image-user-{uid,username,uid-group,username-group}
#     busybox with USER 1002, www-data, 1003:1004, www-data:1004.
#  gcr.io/k8s-staging-cri-tools/test-image-predefined-group
#     busybox + default-user (uid 1000) in group group-defined-in-image (gid
#     50000), USER 1000.
#  gcr.io/k8s-staging-cri-tools/test-image-{1,2,3,latest}:latest,
#  test-image-tags:{1,2,3} (one image), test-image-tag:test and :all (two)
#     busybox + an empty file named after the image or tag, so that each is a
#     different image, as upstream's images/image-test.
#  Not made: gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9...,
#     pinned by the digest of upstream's manifest, which only its bytes have
#     (listed in critest-skips.txt). Windows images are not pulled on Linux.
do_images() {
  local docker_sock=${1:?usage: critest.sh images <docker-socket> <registry-addr>}
  local registry=${2:?usage: critest.sh images <docker-socket> <registry-addr>}
  local -a docker=(docker -H "unix://$docker_sock")
  "${docker[@]}" version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker answers on $docker_sock"
  curl -sf -o /dev/null "http://$registry/v2/" || die "no registry answers on http://$registry/v2/"
  command -v go >/dev/null || die "Go is missing: the images' stand-in programs are built with it"
  local start=$SECONDS
  fetch_busybox

  local dir="$work/images"
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  say "building the images' programs (integration/critest)"
  (cd "$repo/integration/critest" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$dir/bin/" ./nginx ./nnp ./pause) ||
    die "building integration/critest failed"

  local arch
  arch=$(go env GOARCH)
  local pushed=()
  # import <rootfs> <name:tag>... [-- <docker import -c changes>...]
  import() {
    local root=$1 name
    shift
    local names=() changes=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do names+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    local change
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
  local env_path="ENV PATH=$busybox_path"
  say "building and pushing to $registry"

  local base="$dir/busybox"
  make_busybox_rootfs "$base"
  import "$base" e2e-test-images/busybox:1.29-2 -- "$env_path" 'CMD ["sh"]'

  # A variant of the busybox root filesystem in $dir/<name>.
  variant() {
    rm -rf "${dir:?}/$1"
    cp -a "$base" "$dir/$1"
  }

  variant nginx
  cp "$dir/bin/nginx" "$dir/nginx/usr/sbin/nginx"
  import "$dir/nginx" e2e-test-images/nginx:1.14-2 -- "$env_path" 'EXPOSE 80' 'CMD ["nginx", "-g", "daemon off;"]'
  import "$dir/nginx" "k8s-staging-cri-tools/hostnet-nginx-$arch:latest" -- "$env_path" 'EXPOSE 12003' \
    'CMD ["nginx", "-port", "12003", "-g", "daemon off;"]'

  variant httpd
  mkdir -p "$dir/httpd/usr/local/apache2/htdocs"
  echo '<html><body><h1>It works!</h1></body></html>' >"$dir/httpd/usr/local/apache2/htdocs/index.html"
  # sh stays pid 1 to exit on SIGTERM (httpd as pid 1 would ignore it).
  import "$dir/httpd" e2e-test-images/httpd:2.4.39-4 -- "$env_path" 'EXPOSE 80' \
    'CMD ["sh", "-c", "trap \"exit 0\" TERM INT; echo \"httpd: serving /usr/local/apache2/htdocs on port 80\"; httpd -f -p 80 -h /usr/local/apache2/htdocs & wait"]'

  variant nonewprivs
  install -m 4755 -o 0 -g 0 "$dir/bin/nnp" "$dir/nonewprivs/usr/local/bin/nnp"
  import "$dir/nonewprivs" e2e-test-images/nonewprivs:1.3 -- "$env_path" 'ENTRYPOINT ["/usr/local/bin/nnp"]'

  mkdir -p "$dir/pause"
  install -m 755 "$dir/bin/pause" "$dir/pause/pause"
  import "$dir/pause" pause:3.9 -- 'USER 65535:65535' 'ENTRYPOINT ["/pause"]'

  local staging=k8s-staging-cri-tools
  import "$base" "$staging/test-image-user-uid:latest" -- "$env_path" 'USER 1002' 'CMD ["sh"]'
  import "$base" "$staging/test-image-user-username:latest" -- "$env_path" 'USER www-data' 'CMD ["sh"]'
  import "$base" "$staging/test-image-user-uid-group:latest" -- "$env_path" 'USER 1003:1004' 'CMD ["sh"]'
  import "$base" "$staging/test-image-user-username-group:latest" -- "$env_path" 'USER www-data:1004' 'CMD ["sh"]'

  variant predefined-group
  echo 'default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh' >>"$dir/predefined-group/etc/passwd"
  printf '%s\n' 'default-user:x:1000:' 'group-defined-in-image:x:50000:default-user' >>"$dir/predefined-group/etc/group"
  install -d -m 755 -o 1000 -g 1000 "$dir/predefined-group/home/default-user"
  import "$dir/predefined-group" "$staging/test-image-predefined-group:latest" -- "$env_path" 'USER 1000' 'CMD ["sh"]'

  local test_image
  for test_image in test-image-1 test-image-2 test-image-3 test-image-latest; do
    variant "$test_image"
    : >"$dir/$test_image/$test_image"
    import "$dir/$test_image" "$staging/$test_image:latest" -- "$env_path" 'CMD ["sh"]'
  done
  variant same-image
  : >"$dir/same-image/same-image"
  import "$dir/same-image" "$staging/test-image-tags:1" "$staging/test-image-tags:2" "$staging/test-image-tags:3" -- \
    "$env_path" 'CMD ["sh"]'
  local tag
  for tag in test all; do
    variant "tag-$tag"
    : >"$dir/tag-$tag/$tag"
    import "$dir/tag-$tag" "$staging/test-image-tag:$tag" -- "$env_path" 'CMD ["sh"]'
  done

  # The registry holds them now; drop the local tags.
  "${docker[@]}" rmi "${pushed[@]}" >/dev/null 2>&1 || true
  rm -rf "$dir"
  say "pushed ${#pushed[@]} images to $registry in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------
# run: critest against the shim.
# ---------------------------------------------------------------------------

# The skip list (format in its header). Sets skip_regexes (kind "skip") and
# self_skip_regexes (kind "self-skip") to the entries whose conditions hold;
# $1 is the Docker Engine's version, the rest the crictl command line (for
# the no-privileged probe, run only when an entry needs it).
read_skip_list() {
  local docker_version=$1
  shift
  local line head regex reason kind conds cond n=0 applies
  local docker_major=${docker_version%%.*}
  [ -f "$skips_file" ] || die "no skip list at $skips_file"
  [[ "$docker_major" =~ ^[0-9]+$ ]] || die "cannot read the Docker version from '$docker_version'"
  skip_regexes=()
  self_skip_regexes=()
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    case "$line" in '' | '#'*) continue ;; esac
    [[ "$line" == *' :: '*' :: '* ]] || die "$skips_file:$n: expected '<kind>[ if <conditions>] :: <regex> :: <reason>'"
    head=${line%% :: *}
    regex=${line#* :: }
    reason=${regex#* :: }
    regex=${regex%% :: *}
    if [ -z "$regex" ] || [ -z "$reason" ]; then die "$skips_file:$n: empty regex or reason"; fi
    kind=${head%% *}
    conds=
    case "$head" in
      "$kind") ;;
      "$kind if "*) conds=${head#"$kind if "} ;;
      *) die "$skips_file:$n: expected '<kind>' or '<kind> if <conditions>' before ' :: '" ;;
    esac
    applies=1
    local -a cond_list=()
    IFS=, read -ra cond_list <<<"$conds"
    for cond in "${cond_list[@]}"; do
      cond=${cond// /}
      case "$cond" in
        docker\<[0-9]*) [ "$docker_major" -lt "${cond#docker<}" ] || applies=0 ;;
        docker\>=[0-9]*) [ "$docker_major" -ge "${cond#docker>=}" ] || applies=0 ;;
        no-apparmor) ! grep -q '^Y' /sys/module/apparmor/parameters/enabled 2>/dev/null || applies=0 ;;
        no-privileged) privileged_unavailable "$@" || applies=0 ;;
        *) die "$skips_file:$n: unknown condition '$cond'" ;;
      esac
    done
    case "$kind" in
      skip) [ "$applies" = 0 ] || skip_regexes+=("$regex") ;;
      self-skip) [ "$applies" = 0 ] || self_skip_regexes+=("$regex") ;;
      *) die "$skips_file:$n: unknown kind '$kind' (skip or self-skip)" ;;
    esac
  done <"$skips_file"
}

# Whether Docker cannot start a privileged container on this host: asks the
# shim (crictl command line in "$@") for a privileged pod. Only runc's refusal
# to grant capabilities the host withholds counts; any other error stops the
# run. Probed once.
privileged_probe=
privileged_unavailable() {
  if [ -z "$privileged_probe" ]; then
    local config="$work/privileged-probe.json" pod
    printf '%s\n' \
      '{"metadata": {"name": "critest-privileged-probe", "namespace": "dockershim-critest",' \
      "  \"uid\": \"critest-privileged-probe-$$\"}," \
      ' "linux": {"security_context": {"privileged": true}}}' >"$config"
    # crictl warns on stderr (no cgroup_parent); the pod id is stdout's last line.
    if pod=$("$@" runp "$config" 2>"$work/privileged-probe.err"); then
      pod=$(printf '%s\n' "$pod" | tail -n 1)
      privileged_probe=available
      { "$@" stopp "$pod" && "$@" rmp "$pod"; } >/dev/null || die "cannot remove the probe pod $pod"
    elif pod=$(cat "$work/privileged-probe.err") && [[ "$pod" == *"unable to apply caps"* ]]; then
      privileged_probe=unavailable
      pod=${pod##*desc = }
      say "Docker cannot start privileged containers here: ${pod%\"}"
    else
      die "the privileged pod probe failed: $pod"
    fi
  fi
  [ "$privileged_probe" = unavailable ]
}

# One line per spec, tab-separated: its outcome, its full name, and the first
# line of its failure or skip message (with the gRPC error, when there is
# one). Outcomes: passed; skipped-by-list (a "skip" entry; regexes in $2, a
# JSON array); skipped (critest skipped it itself, as a "self-skip" entry,
# regexes in $3, allows); unexpected-skip (critest skipped it and no entry
# allows it: counts as a failure); not-run (left out by
# DOCKERSHIM_CRITEST_FOCUS); or one of ginkgo's failure states (failed,
# panicked, timedout, interrupted, aborted).
summarize() {
  jq -r --argjson skips "$2" --argjson selfskips "$3" --arg focus "${DOCKERSHIM_CRITEST_FOCUS:-}" '
    .[].SpecReports[]
    | select(.LeafNodeType == "It" or .State != "passed")
    | ((.ContainerHierarchyTexts // []) + [.LeafNodeText] | map(select(. != "")) | join(" ")) as $name
    | ((.Failure.Message // "") | split("\n") | map(select(test("\\S")))) as $lines
    # The first lines (gomega puts "Expected <value> to equal <value>" on
    # four), and the gRPC error when there is one.
    | ($lines[0:4] | map(sub("^\\s+"; "")) | join(" ") | .[0:300]) as $head
    | ([$lines[] | select(test("rpc error:")) | sub("^\\s+"; "")][0] // "") as $rpc
    | (if $rpc == "" or ($head | contains($rpc)) then $head else $head + " / " + $rpc end) as $message
    # critest itself skips its benchmarks unless run with -benchmark.
    | select(.State != "skipped" or ($name | test("benchmark") | not))
    | (if .State == "passed" and (.NumAttempts // 1) > 1 then "flaky"
       elif .State != "skipped" then .State
       elif $focus != "" and ($name | test($focus) | not) then "not-run"
       elif any($skips[]; . as $re | $name | test($re)) then "skipped-by-list"
       elif $message == "" then "not-run"
       elif any($selfskips[]; . as $re | $name | test($re)) then "skipped"
       else "unexpected-skip" end) as $outcome
    | (if $outcome == "flaky" then "passed on attempt \(.NumAttempts) of \(.MaxFlakeAttempts)" else $message end) as $message
    | [$outcome, $name, $message] | @tsv' "$1"
}

# Removes the pods critest's specs made (namespace cri-test-namespace*), and
# the privileged probe's (dockershim-critest), that an interrupted run left
# behind: they would hold host ports later specs use. Runs are serialised, so
# every such pod is a leftover. $@: crictl command.
remove_leftover_pods() {
  local pods pod
  pods=$("$@" pods -o json | jq -r '.items[]
    | select(.metadata.namespace | startswith("cri-test-namespace") or . == "dockershim-critest") | .id') ||
    die "cannot list the shim's pods"
  for pod in $pods; do
    "$@" stopp "$pod" >/dev/null 2>&1 || true
    "$@" rmp -f "$pod" >/dev/null || die "cannot remove the pod $pod a critest run left"
  done
  [ -z "$pods" ] || say "removed $(echo "$pods" | wc -w) pods an interrupted critest run left"
}

do_run() {
  local sock=${1:?usage: critest.sh run <shim-socket> [spdy|websocket]}
  local transport=${2:-spdy}
  local parallel=${DOCKERSHIM_CRITEST_PARALLEL:-2}
  local upstream=${DOCKERSHIM_TEST_REGISTRY:-127.0.0.1:5055}
  local -a transport_flags=()
  case "$transport" in
    spdy) ;;
    websocket) transport_flags=(--websocket-exec --websocket-attach --websocket-portforward) ;;
    *) die "transport must be spdy or websocket, not '$transport'" ;;
  esac
  [ -S "$sock" ] || die "no socket at $sock"
  for tool in jq openssl docker-registry ipcmk ss; do
    command -v "$tool" >/dev/null || die "$tool is missing"
  done
  do_build

  mkdir -p "$work"
  # One run at a time: runs share port 443, /etc/hosts and critest's host ports.
  take_registry_hosts_lock

  local out="$work/$transport"
  rm -rf "$out"
  mkdir -p "$out"
  serve_registry_hosts "$upstream" "$work/front" e2e-test-images/busybox 1.29-2 "${registry_hosts[@]}"

  local endpoint="unix://$sock"
  printf 'runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 60\n' "$endpoint" "$endpoint" >"$out/crictl.yaml"
  # Global: cleanup uses it.
  crictl=("$tools/crictl" --config "$out/crictl.yaml")
  local version
  version=$("${crictl[@]}" version 2>&1) || die "the shim does not answer on $endpoint: $version"
  say "$(echo "$version" | tr '\n' ' ')"

  remove_leftover_pods "${crictl[@]}"

  # Images left by an earlier run would be used without a pull (and could be
  # stale builds): remove them so that every run pulls what the registry has.
  local stale
  stale=$("${crictl[@]}" images -o json | jq -r '.images[]
    | select(any(.repoTags[]?, .repoDigests[]?;
        test("^(registry.k8s.io/e2e-test-images/|gcr.io/k8s-staging-cri-tools/|registry.k8s.io/pause:3.9$|k8s.gcr.io/pause:3.9$)")))
    | .id')
  if [ -n "$stale" ]; then
    # shellcheck disable=SC2086
    "${crictl[@]}" rmi $stale >/dev/null || die "cannot remove the critest images left by an earlier run"
  fi

  local docker_version
  docker_version=$(echo "$version" | sed -n 's/^RuntimeVersion:[[:space:]]*//p')
  local -a skip_regexes self_skip_regexes skip_flags=()
  read_skip_list "$docker_version" "${crictl[@]}"
  local regex
  for regex in "${skip_regexes[@]}"; do
    skip_flags+=("--ginkgo.skip=$regex")
  done
  local attempts=${DOCKERSHIM_CRITEST_ATTEMPTS:-2}
  local -a focus_flags=()
  [ -z "${DOCKERSHIM_CRITEST_FOCUS:-}" ] || focus_flags=("--ginkgo.focus=$DOCKERSHIM_CRITEST_FOCUS")

  say "critest $cri_tools_version over $transport, $parallel nodes, ${#skip_regexes[@]} skip entries apply; log: $out/critest.log"
  # critest runs specs in-process unless --parallel > 1, when it runs them on
  # that many ginkgo nodes (the ginkgo CLI from PATH). Ginkgo rejects an
  # explicit "-parallel", even 1, in-process.
  local -a parallel_flags=()
  [ "$parallel" -le 1 ] || parallel_flags=(--parallel "$parallel")
  local start=$SECONDS status=0
  # In its own process group (setsid), so that an interrupted run stops
  # critest, ginkgo and its nodes together (see cleanup).
  (
    cd "$out"
    PATH="$tools:$PATH" exec setsid "$tools/critest" \
      --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" \
      "${parallel_flags[@]}" \
      "${transport_flags[@]}" \
      "${skip_flags[@]}" "${focus_flags[@]}" \
      --ginkgo.flake-attempts="$attempts" \
      --ginkgo.no-color \
      --ginkgo.json-report "$out/report.json" \
      --ginkgo.junit-report "$out/junit.xml"
  ) >"$out/critest.log" 2>&1 &
  critest_pid=$!
  wait "$critest_pid" || status=$?
  critest_pid=
  local elapsed=$((SECONDS - start))

  [ -s "$out/report.json" ] || {
    tail -40 "$out/critest.log"
    die "critest wrote no report (exit $status)"
  }
  json_array() { if [ $# -eq 0 ]; then echo '[]'; else printf '%s\n' "$@" | jq -R . | jq -cs .; fi; }
  summarize "$out/report.json" "$(json_array "${skip_regexes[@]}")" "$(json_array "${self_skip_regexes[@]}")" >"$out/summary.tsv"
  count() { awk -F'\t' -v o="$1" '$1 == o' "$out/summary.tsv" | wc -l; }
  local passed flaky skipped_list skipped_self not_run failed
  flaky=$(count flaky)
  passed=$(($(count passed) + flaky))
  skipped_list=$(count skipped-by-list)
  skipped_self=$(count skipped)
  not_run=$(count not-run)
  local ok='^(passed|flaky|skipped|skipped-by-list|not-run|pending)$'
  failed=$(awk -F'\t' -v ok="$ok" '$1 !~ ok' "$out/summary.tsv" | wc -l)
  if [ "$failed" -gt 0 ]; then
    say "failures:"
    awk -F'\t' -v ok="$ok" '$1 !~ ok { printf "  [%s] %s\n      %s\n", $1, $2, $3 }' "$out/summary.tsv"
  fi
  if [ "$flaky" -gt 0 ]; then
    say "flaky (failed, then passed on a retry; the failures are in $out/critest.log):"
    awk -F'\t' '$1 == "flaky" { printf "  %s (%s)\n", $2, $3 }' "$out/summary.tsv"
  fi
  say "critest over $transport on Docker $docker_version: $passed passed$([ "$flaky" = 0 ] || echo " ($flaky flaky)"), $failed failed," \
    "$((skipped_list + skipped_self)) skipped ($skipped_list by critest-skips.txt, $skipped_self by critest itself," \
    "as listed there)$([ "$not_run" = 0 ] || echo ", $not_run not in focus") in ${elapsed}s"
  say "reports: $out/report.json, $out/junit.xml, $out/summary.tsv"
  if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then
    [ "$failed" -gt 0 ] || { tail -40 "$out/critest.log"; say "critest exited $status"; }
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
