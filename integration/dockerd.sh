#!/usr/bin/env bash
# Fetches, starts and stops private Docker Engines, so the tests can run
# against each of them in turn:
#
#   20.10  Debian 12 (bookworm) docker.io 20.10.x, containerd 1.6.x  (API 1.41)
#   26     Debian 13 (trixie)   docker.io 26.1.x,  containerd 1.7.x  (API 1.45)
#   28     Debian sid           docker.io 28.5.x,  containerd 2.1.x  (API 1.51)
#   28c    the 28 engine with the containerd image store turned on
#          ("features": {"containerd-snapshotter": true} in daemon.json)
#   29     dockerd and docker-proxy of the Docker 29 line, built from the Go
#          module github.com/moby/moby/v2 (no Debian suite has 29 yet), with
#          sid's containerd 2.1.x, docker CLI and tini (API 1.56). Its data
#          root starts empty, so it uses the containerd image store, its
#          default on a fresh install.
#
# Usage (as root):
#   integration/dockerd.sh fetch <20.10|26|28|28c|29>
#   integration/dockerd.sh start <20.10|26|28|28c|29> <state-dir>
#   integration/dockerd.sh env   <20.10|26|28|28c|29> <state-dir>
#   integration/dockerd.sh stop  [--purge] <state-dir>
#
# fetch  downloads the engine's Debian packages and unpacks them (dpkg -x, no
#        installation) into $DOCKERSHIM_TEST_CACHE/docker-<ver>
#        (default /var/cache/dockershim-test/docker-<ver>; 28c shares 28's).
#        For 29 it then builds dockerd and docker-proxy with the machine's
#        Go and module proxy. Nothing is done when that directory is
#        complete already. Every version is fetched
#        the same way, 20.10 too, so the system's own docker.io (which
#        integration/test.sh may install and run) is never used or changed.
# start  starts that engine as a private daemon: its own containerd, its own
#        socket <state-dir>/docker.sock, data root, exec root, bridge and
#        logs, all under <state-dir>. It fetches first when needed, waits
#        until the daemon answers and prints its versions. The PIDs it
#        started are written to <state-dir>/pids.
# env    prints shell exports for a started daemon: DOCKER_HOST, the tests'
#        DOCKERSHIM_TEST_DOCKER (the socket path), DOCKERSHIM_TEST_DOCKERD_CONFIG
#        (its daemon.json), DOCKERSHIM_TEST_CDI_DIR (the CDI spec directory
#        the engine reads, <state-dir>/cdi) and a PATH whose `docker`,
#        `dockerd` and `containerd` are that engine's. Use with eval.
# stop   stops exactly the processes start started (and, should the daemon
#        have died, the container shims and port proxies it left), unmounts
#        what is left under <state-dir>, deletes the daemon's iptables rules
#        and its bridge. --purge then deletes <state-dir> too, containers and
#        images included.
#
# What every daemon gets, whatever the version:
#   - the cgroupfs cgroup driver (no systemd is PID 1 here; cgroupfs works
#     with it too) and the overlay2 storage driver (asked for explicitly, so
#     a machine where it does not work fails loudly instead of falling back
#     to the slow vfs); 28c and 29 instead use the containerd image store
#     with its default overlayfs snapshotter, which start checks `docker
#     info` reports;
#   - Debian 12's runc (/usr/sbin/runc, package runc): sid's runc needs a
#     newer glibc than Debian 12 has. containerd, its runc shim, dockerd,
#     docker-proxy, docker-init (tini) and the docker CLI come from the
#     engine's own release;
#   - its own containerd, started by this script with its own root, state
#     and socket under <state-dir>/containerd and handed to dockerd with
#     --containerd. (dockerd would start one itself, but only when
#     /run/containerd/containerd.sock does not exist: should a system
#     containerd ever run, it would silently use that one instead.);
#   - its own bridge instead of docker0 (which belongs to the system's
#     daemon, if any): dsd2010 10.235.20.1/24, dsd26 10.235.26.1/24,
#     dsd28 10.235.28.1/24, dsd28c 10.235.27.1/24 or dsd29 10.235.29.1/24,
#     and networks made with `docker network create` from 10.236.16.0/20,
#     10.236.32.0/20, 10.236.48.0/20, 10.236.80.0/20 or 10.236.64.0/20.
#     iptables stays
#     on (Docker's default), so published ports and traffic between
#     containers work;
#   - its own daemon.json, so /etc/docker/daemon.json does not apply; from
#     26 on it names the CDI spec directory <state-dir>/cdi (turning CDI on
#     with the "cdi" feature on 26; 28 has it on by default);
#
# One daemon of a version at a time (the bridge is per version; set
# DOCKERSHIM_TEST_DOCKER_SLOT=1..9 for a second one with a bridge and
# subnets of its own: dsd<version>s<slot>, 10.235.(150 + 10 * slot + 0 for
# 20.10, 1 for 26, 2 for 28, 3 for 28c, 4 for 29).1/24); daemons of
# different versions, and the system's daemon on /var/run/docker.sock, may
# run beside it. Note that every dockerd that starts with iptables on first
# flushes the shared DOCKER, DOCKER-ISOLATION-STAGE-* (and, from 28 on,
# DOCKER-FORWARD, DOCKER-BRIDGE, DOCKER-CT) chains and then recreates only
# its own rules: another daemon already running loses its published-port
# DNAT rules (ports bound to 127.0.0.1 keep working through docker-proxy).
#
# Extra dockerd flags can be given in DOCKERSHIM_TEST_DOCKERD_ARGS
# (whitespace-separated), e.g. "--iptables=false --debug".
set -euo pipefail

cache_root="${DOCKERSHIM_TEST_CACHE:-/var/cache/dockershim-test}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
usage() {
  sed -n '/^# Usage/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- Versions -------------------------------------------------------------

# The Docker 29 line as the Go module proxy serves it. v2.0.0-beta.25 (the
# newest) needs buildkit v0.34.0-rc1, which the proxy does not serve.
moby_module=github.com/moby/moby/v2
moby_version=v2.0.0-beta.24

# Sets, for engine version $1: the Debian suites to download from, the
# packages, the package whose version must have the Docker major version
# expected, whether dockerd is built from $moby_module, the image store,
# and the daemon's bridge and address ranges.
select_version() {
  ver=$1
  version_package=docker.io build_moby=false store=classic
  cache_ver=$ver
  case "$ver" in
    20.10)
      suites="bookworm bookworm-updates"
      security_suite="bookworm-security"
      # docker.io holds dockerd, docker-proxy and the CLI; tini holds
      # tini-static, which docker.io's docker-init links to.
      packages="docker.io containerd tini"
      expect_major="20.10"
      bridge="dsd2010" net="10.235.20" pool="10.236.16.0/20"
      ;;
    26)
      suites="trixie trixie-updates"
      security_suite="trixie-security"
      packages="docker.io docker-cli containerd tini"
      expect_major="26"
      bridge="dsd26" net="10.235.26" pool="10.236.32.0/20"
      ;;
    28)
      # sid has no -updates or -security suites.
      suites="sid"
      security_suite=""
      packages="docker.io docker-cli containerd tini-static"
      expect_major="28"
      bridge="dsd28" net="10.235.28" pool="10.236.48.0/20"
      ;;
    28c)
      suites="sid"
      security_suite=""
      packages="docker.io docker-cli containerd tini-static"
      expect_major="28"
      cache_ver=28 store=containerd
      bridge="dsd28c" net="10.235.27" pool="10.236.80.0/20"
      ;;
    29)
      # sid's CLI is 28's: it speaks API 1.51, which 29 (1.44 to 1.56) serves.
      suites="sid"
      security_suite=""
      packages="docker-cli containerd tini-static"
      version_package=docker-cli expect_major="28"
      build_moby=true store=containerd
      bridge="dsd29" net="10.235.29" pool="10.236.64.0/20"
      ;;
    *) die "unknown Docker version '$ver': use 20.10, 26, 28, 28c or 29" ;;
  esac
  # A second daemon of the same version beside the first (a developer's
  # run while another is up): its own bridge and subnets.
  if [ -n "${DOCKERSHIM_TEST_DOCKER_SLOT:-}" ]; then
    local slot=$DOCKERSHIM_TEST_DOCKER_SLOT
    [[ "$slot" =~ ^[1-9]$ ]] || die "DOCKERSHIM_TEST_DOCKER_SLOT must be a digit 1-9"
    # 10.235.(150 + 10 * slot + the version's index): unique across
    # versions and slots (adding the slot to the version's own octet was
    # not: 29 in slot 3 and 28 in slot 4 got the same subnet).
    local index
    case "$ver" in 20.10) index=0 ;; 26) index=1 ;; 28) index=2 ;; 28c) index=3 ;; *) index=4 ;; esac
    bridge="${bridge}s$slot" net="10.235.$((150 + 10 * slot + index))"
    pool="10.$((236 + slot)).${pool#10.236.}"
  fi
  engine_dir="$cache_root/docker-$cache_ver"
  bin="$engine_dir/bin"
}

# --- fetch ----------------------------------------------------------------

# Debian 12 packages the daemons need from the host itself.
ensure_host_packages() {
  local missing=() pkg
  for pkg in runc iptables iproute2 util-linux; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} (Debian 12)"
  export DEBIAN_FRONTEND=noninteractive
  local log
  log=$(mktemp)
  # Waits for the dpkg lock, should integration/test.sh be installing too.
  if ! { apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -f "$log"
    die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$log"
}

# Builds dockerd and docker-proxy of $moby_module@$moby_version into $1 (a
# directory), statically and without cgo, with the build tags of the
# module's hack/make.sh. The version they report is the release the module
# says comes next (releases/versions.yaml), marked as built from the module,
# so its major version is 29 wherever the shim or critest-skips.txt read it.
build_moby_binaries() {
  local dest=$1 scratch log
  # shellcheck source=integration/go-tools.sh
  . "$(dirname "$0")/go-tools.sh"
  require_go_proxy "dockerd and docker-proxy $moby_version ($moby_module)"
  scratch=$(mktemp -d "$dest/.build.XXXXXX")
  log="$scratch/build.log"
  if ! (
    set -e
    cd "$scratch"
    export CGO_ENABLED=0 GOFLAGS="-mod=mod" GOTOOLCHAIN=local
    go mod init dockershim-test-moby
    go get "$moby_module/cmd/dockerd@$moby_version" "$moby_module/cmd/docker-proxy@$moby_version"
    local dir next tags ldflags p
    dir=$(go list -m -f '{{.Dir}}' "$moby_module")
    next=$(sed -n 's/^ *next: *"\{0,1\}\([0-9][^"]*\)"\{0,1\}$/\1/p' "$dir/releases/versions.yaml")
    case "$next" in 29.*) ;; *) echo "$moby_module@$moby_version is not of the 29 line (next: '$next')"; exit 1 ;; esac
    tags="netgo osusergo static_build nri_no_wasm exclude_graphdriver_btrfs"
    p="$moby_module/dockerversion"
    ldflags="-s -w -X $p.Version=$next-dev.moby-$moby_version -X $p.GitCommit=$moby_version"
    go build -tags "$tags" -ldflags "$ldflags" -o "$scratch/dockerd" "$moby_module/cmd/dockerd"
    go build -tags "$tags" -ldflags "$ldflags" -o "$scratch/docker-proxy" "$moby_module/cmd/docker-proxy"
  ) >"$log" 2>&1; then
    grep -v '^go: downloading' "$log" | tail -30 >&2
    die "building dockerd $moby_version from $moby_module failed"
  fi
  mv "$scratch/dockerd" "$scratch/docker-proxy" "$dest/"
  rm -rf "$scratch"
}

fetch() {
  select_version "$1"
  ensure_host_packages
  [ -x /usr/sbin/runc ] || die "/usr/sbin/runc is missing (Debian 12's runc package)"
  if [ -f "$engine_dir/.complete" ]; then
    return 0
  fi
  mkdir -p "$cache_root"
  # Two fetches of one version at once: the second waits, then finds the
  # first one's result.
  exec 8>"$cache_root/.lock-docker-$cache_ver"
  flock -w 900 8 || die "timed out waiting for another fetch of docker $ver"
  if [ -f "$engine_dir/.complete" ]; then
    exec 8>&-
    return 0
  fi

  local started=$SECONDS
  say "fetching docker $ver from Debian $suites${security_suite:+ $security_suite}"
  # Everything is built in a temporary directory next to the cache and
  # renamed into place at the end, so an interrupted fetch leaves no
  # half-filled cache behind.
  local tmp
  tmp=$(mktemp -d "$cache_root/.docker-$cache_ver.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT

  # A private apt configuration: its own sources, package lists, cache and
  # an empty dpkg status. The system's apt never sees these suites, so
  # nothing on the machine can be installed or upgraded from them (which a
  # sources file in /etc/apt would risk, even with a low pin priority), and
  # its lists lock does not collide with a concurrent system apt-get.
  local apt="$tmp/apt"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" \
    "$apt/preferences.d" "$tmp/debs" "$tmp/root" "$tmp/bin"
  : >"$apt/status"
  {
    echo "Types: deb"
    echo "URIs: http://deb.debian.org/debian"
    echo "Suites: $suites"
    echo "Components: main"
    echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    if [ -n "$security_suite" ]; then
      echo
      echo "Types: deb"
      echo "URIs: http://deb.debian.org/debian-security"
      echo "Suites: $security_suite"
      echo "Components: main"
      echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    fi
  } >"$apt/sources.list.d/dockershim-test.sources"
  local apt_opts=(
    -q
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$apt/sources.list.d"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
    -o "Dir::State::Lists=$apt/lists"
    -o "Dir::State::status=$apt/status"
    -o "Dir::Cache=$apt/cache"
    -o "Dir::Cache::archives=$apt/cache/archives"
    -o "APT::Architectures::=amd64"
    -o "Acquire::Languages=none"
    # Only the Packages indexes: no AppStream, Contents or translations.
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false"
    # Downloads go to directories only root can write to.
    -o "APT::Sandbox::User=root"
  )
  if ! timeout 600 apt-get "${apt_opts[@]}" update >"$tmp/apt.log" 2>&1 ||
    grep -qE '^(W|E): (Failed|GPG|The repository|Some index)' "$tmp/apt.log"; then
    tail -30 "$tmp/apt.log" >&2
    die "apt-get update for Debian $suites failed: cannot fetch docker $ver"
  fi
  # shellcheck disable=SC2086 # $packages is a list
  if ! (cd "$tmp/debs" && timeout 600 apt-get "${apt_opts[@]}" download $packages) >>"$tmp/apt.log" 2>&1; then
    tail -30 "$tmp/apt.log" >&2
    die "apt-get download $packages from Debian $suites failed: cannot fetch docker $ver"
  fi

  local deb docker_version
  docker_version=$(dpkg-deb -f "$tmp/debs/$version_package"_*.deb Version)
  case "$docker_version" in
    "$expect_major".*) ;;
    *) die "Debian $suites now has $version_package $docker_version, not $expect_major.x: update integration/dockerd.sh" ;;
  esac
  for deb in "$tmp"/debs/*.deb; do
    echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >>"$tmp/packages"
    dpkg -x "$deb" "$tmp/root"
  done
  if $build_moby; then
    mkdir -p "$tmp/root/usr/sbin"
    build_moby_binaries "$tmp/root/usr/sbin"
    echo "$moby_module $moby_version (dockerd, docker-proxy)" >>"$tmp/packages"
  fi

  # bin/ holds exactly the programs the daemons run, as relative links, so
  # PATH=<bin>:... finds this engine's programs before any of the host's.
  local name target
  for name in dockerd docker-proxy docker containerd containerd-shim-runc-v2 ctr; do
    for target in usr/sbin/$name usr/bin/$name; do
      if [ -e "$tmp/root/$target" ]; then
        ln -s "../root/$target" "$tmp/bin/$name"
        break
      fi
    done
    [ -e "$tmp/bin/$name" ] || die "$name is not in the docker $ver packages ($packages)"
  done
  [ -e "$tmp/root/usr/bin/tini-static" ] || die "tini-static is not in the docker $ver packages"
  ln -s ../root/usr/bin/tini-static "$tmp/bin/docker-init"
  ln -s /usr/sbin/runc "$tmp/bin/runc"

  # The binaries must run on this machine (glibc, architecture).
  for name in dockerd docker containerd docker-init; do
    "$tmp/bin/$name" --version >>"$tmp/versions" 2>&1 ||
      die "$tmp/bin/$name does not run here: $(tail -1 "$tmp/versions")"
  done

  rm -rf "$apt" "$tmp/debs"
  touch "$tmp/.complete"
  rm -rf "$engine_dir"
  mv "$tmp" "$engine_dir"
  trap - EXIT
  exec 8>&-
  say "docker $ver in $engine_dir ($((SECONDS - started)) s):"
  sed 's/^/    /' "$engine_dir/packages" >&2
}

# --- helpers for start and stop -------------------------------------------

# The command line of process $1, spaces between arguments ("" if gone).
cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# True when process $1 is alive and its command line mentions $2.
alive_with() {
  local line
  kill -0 "$1" 2>/dev/null || return 1
  line=$(cmdline "$1")
  [[ "$line" == *"$2"* ]]
}

# Sends SIGTERM to $1, waits up to $2 seconds, then SIGKILLs it.
terminate() {
  local pid=$1 grace=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    # A zombie (our own child, not reaped) counts as gone.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
    sleep 0.1
  done
  say "pid $pid did not stop within ${grace}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# Deletes every iptables and ip6tables rule that names bridge $1 or an
# address in $2.0/24: what that daemon added. Docker 28 also adds, for a port
# published on 127.0.0.1, a raw-table rule naming only the port; those of
# the ports that this daemon forwards (a DNAT to $2.*) go too. Other rules
# are left alone. dockerd deletes all these itself when it stops cleanly.
delete_firewall_rules() {
  local br=$1 prefix=$2 cmd rules table rule ports port
  local re_net="(^|[ /:])${prefix//./\\.}\\."
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    rules=$("$cmd-save" 2>/dev/null | awk '/^\*/ { t = substr($0, 2) } /^-A / { print t " " $0 }')
    ports=$(grep -E -- "-j DNAT --to-destination ${prefix//./\\.}\\." <<<"$rules" |
      grep -oE -- "--dport [0-9]+" | awk '{print $2}' | sort -u || true)
    {
      grep -E -- "(-i|-o) $br( |\$)|$re_net" <<<"$rules" || true
      for port in $ports; do
        grep -E -- "^raw -A PREROUTING -d 127\.0\.0\.1/32 ! -i lo -p (tcp|udp|sctp) -m (tcp|udp|sctp) --dport $port -j DROP\$" <<<"$rules" || true
      done
    } | while read -r table rule; do
      # iptables-save quotes arguments like the shell does.
      eval "set -- ${rule/#-A /-D }"
      "$cmd" -w 10 -t "$table" "$@" 2>/dev/null || true
    done
  done
}

# --- start ----------------------------------------------------------------

# The EXIT trap while start runs: undoes a start that failed half-way.
start_failed() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    say "start failed: stopping what it started"
    stop_dir "$1" || true
  fi
  exit "$status"
}

start() {
  select_version "$1"
  local state
  state=$(realpath -m "$2")
  fetch "$ver"
  mkdir -p "$state"

  if [ -f "$state/pids" ]; then
    local pid
    while read -r pid; do
      if alive_with "$pid" "$state"; then
        die "a daemon already runs from $state (pid $pid): integration/dockerd.sh stop $state"
      fi
    done <"$state/pids"
  fi
  # A daemon started from here that was never stopped (killed, machine
  # reset) may have left shims, containers, mounts and its bridge.
  if [ -f "$state/pids" ] || [ -f "$state/bridge" ]; then
    say "cleaning up after the daemon last started from $state"
    stop_dir "$state"
  fi
  # Unix socket paths are limited to 107 bytes; containerd's is the longest.
  [ ${#state} -le 70 ] || die "state dir path too long for unix sockets (max 70 chars): $state"

  # From here on, a failure stops whatever was started already.
  # shellcheck disable=SC2064 # expand $state now
  trap "start_failed $(printf %q "$state")" EXIT

  # The bridge. A bridge of this name left by an earlier run that was never
  # stopped is deleted, unless a running dockerd still uses it.
  if ip link show "$bridge" >/dev/null 2>&1; then
    local p
    for p in /proc/[0-9]*; do
      if [[ "$(cmdline "${p#/proc/}")" == *"--bridge $bridge "* ]]; then
        die "bridge $bridge is in use by pid ${p#/proc/} ($(cmdline "${p#/proc/}" | cut -c1-200)): stop that daemon first"
      fi
    done
    say "deleting stale bridge $bridge and its firewall rules"
    delete_firewall_rules "$bridge" "$net"
    ip link del "$bridge"
  fi
  if ip -4 route show | grep -q "^$net\\."; then
    die "$net.0/24 is already routed here: $(ip -4 route show | grep "^$net\\.")"
  fi
  ip link add "$bridge" type bridge
  ip addr add "$net.1/24" dev "$bridge"
  ip link set "$bridge" up
  printf '%s %s\n' "$bridge" "$net" >"$state/bridge"

  # The daemons' environment: only this engine's programs, then the host's.
  local run_env=(env -i "PATH=$bin:/usr/sbin:/usr/bin:/sbin:/bin" "HOME=${HOME:-/root}" "LANG=C.UTF-8")
  local var
  for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -n "${!var:-}" ] && run_env+=("$var=${!var}")
  done

  # containerd: the same settings as dockerd's own managed containerd, in
  # config format version 2 for containerd 1.x and 3 for 2.x (which would
  # migrate version 2, with a warning). The keys used are the same in both.
  local cd_dir="$state/containerd" cd_format=2
  mkdir -p "$cd_dir"
  case "$("$bin/containerd" --version | awk '{print $3}')" in
    2.*) cd_format=3 ;;
  esac
  cat >"$cd_dir/containerd.toml" <<EOF
version = $cd_format
root = "$cd_dir/root"
state = "$cd_dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$cd_dir/containerd.sock"

[ttrpc]
  address = "$cd_dir/containerd.sock.ttrpc"

[debug]
  address = "$cd_dir/debug.sock"

[metrics]
  address = ""
EOF
  # setsid: its own session, so signals sent to the caller's process group
  # (Ctrl-C) do not reach it; stop ends it. stdin/stdout/stderr are not the
  # caller's, so `$(dockerd.sh start ...)` returns.
  setsid "${run_env[@]}" "$bin/containerd" --config "$cd_dir/containerd.toml" \
    </dev/null >>"$cd_dir/containerd.log" 2>&1 &
  local containerd_pid=$!
  echo "$containerd_pid" >>"$state/pids"
  local i
  for ((i = 0; i < 300; i++)); do
    "$bin/ctr" --address "$cd_dir/containerd.sock" version >/dev/null 2>&1 && break
    kill -0 "$containerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! "$bin/ctr" --address "$cd_dir/containerd.sock" version >/dev/null 2>&1; then
    tail -30 "$cd_dir/containerd.log" >&2
    die "containerd did not answer within 30 s (log: $cd_dir/containerd.log)"
  fi

  # dockerd. 29 needs nothing to pick the containerd image store: its data
  # root is empty, as on a fresh install.
  local storage=(--storage-driver overlay2)
  if [ "$store" = containerd ]; then
    storage=()
  fi
  # CDI: every engine that has it reads the spec directory <state>/cdi
  # (the tests write their specs there) instead of /etc/cdi and
  # /var/run/cdi. 20.10 has no CDI and refuses a daemon.json key it does
  # not know; 26 keeps CDI behind the "cdi" feature; 28 on have it on.
  mkdir -p "$state/cdi"
  local cdi_dirs
  cdi_dirs=", \"cdi-spec-dirs\": [\"$state/cdi\"]"
  if [ "$ver" = 28c ]; then
    echo "{\"features\": {\"containerd-snapshotter\": true}$cdi_dirs}" >"$state/daemon.json"
  elif [ "$ver" = 29 ]; then
    # 29 gives every container a time namespace, which Debian 12's runc
    # (1.1.5) does not know ("namespace time does not exist"; runc 1.2 has
    # it): Docker's own switch back to the host's time namespace.
    echo "{\"features\": {\"time-namespaces\": false}$cdi_dirs}" >"$state/daemon.json"
  elif [ "$ver" = 26 ]; then
    echo "{\"features\": {\"cdi\": true}$cdi_dirs}" >"$state/daemon.json"
  elif [ "$ver" = 28 ]; then
    echo "{${cdi_dirs#, }}" >"$state/daemon.json"
  else
    echo '{}' >"$state/daemon.json"
  fi
  # A pid file left by a killed daemon makes dockerd refuse to start.
  rm -f "$state/docker.pid"
  local extra=()
  # shellcheck disable=SC2206 # word splitting intended
  [ -n "${DOCKERSHIM_TEST_DOCKERD_ARGS:-}" ] && extra=(${DOCKERSHIM_TEST_DOCKERD_ARGS})
  setsid "${run_env[@]}" "$bin/dockerd" \
    --config-file "$state/daemon.json" \
    --host "unix://$state/docker.sock" \
    --containerd "$cd_dir/containerd.sock" \
    --data-root "$state/data" \
    --exec-root "$state/exec" \
    --pidfile "$state/docker.pid" \
    --bridge "$bridge" \
    --default-address-pool "base=$pool,size=24" \
    --exec-opt native.cgroupdriver=cgroupfs \
    "${storage[@]}" \
    --userland-proxy-path "$bin/docker-proxy" \
    --init-path "$bin/docker-init" \
    "${extra[@]}" \
    </dev/null >>"$state/dockerd.log" 2>&1 &
  local dockerd_pid=$!
  echo "$dockerd_pid" >>"$state/pids"
  local docker=("$bin/docker" --host "unix://$state/docker.sock")
  for ((i = 0; i < 600; i++)); do
    "${docker[@]}" version >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! "${docker[@]}" version >/dev/null 2>&1; then
    tail -30 "$state/dockerd.log" >&2
    kill -0 "$dockerd_pid" 2>/dev/null || die "dockerd $ver exited (log: $state/dockerd.log)"
    die "dockerd $ver did not answer within 60 s (log: $state/dockerd.log)"
  fi
  # The image store must be the one this version stands for, with a
  # snapshotter that is not the slow native one.
  local driver
  driver=$("${docker[@]}" info --format '{{.Driver}} {{range .DriverStatus}}{{index . 0}}={{index . 1}} {{end}}')
  case "$store $driver" in
    "classic overlay2 "*) ;;
    "containerd overlayfs "*"driver-type=io.containerd.snapshotter.v1"*) ;;
    *) die "dockerd $ver runs with storage '$driver', not the $store image store on overlay" ;;
  esac
  trap - EXIT

  echo "docker $("${docker[@]}" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})') on unix://$state/docker.sock"
  echo "  dockerd pid $dockerd_pid, containerd pid $containerd_pid, bridge $bridge $net.1/24"
  echo "  $("$bin/containerd" --version), runc $("$bin/runc" --version | head -1 | awk '{print $3}')"
  "${docker[@]}" info --format \
    "  $store image store, storage driver {{.Driver}}, cgroup driver {{.CgroupDriver}}, cgroup v{{.CgroupVersion}}, kernel {{.KernelVersion}}" || true
}

# --- env ------------------------------------------------------------------

print_env() {
  select_version "$1"
  local state
  state=$(realpath -m "$2")
  printf 'export DOCKER_HOST=%q\n' "unix://$state/docker.sock"
  printf 'export DOCKERSHIM_TEST_DOCKER=%q\n' "$state/docker.sock"
  # For a test that starts a daemon of its own, of the same kind.
  printf 'export DOCKERSHIM_TEST_DOCKERD_CONFIG=%q\n' "$state/daemon.json"
  # The CDI spec directory the engine reads (20.10 has none and reads
  # nothing from it).
  printf 'export DOCKERSHIM_TEST_CDI_DIR=%q\n' "$state/cdi"
  printf 'export PATH=%q\n' "$bin:$PATH"
}

# --- stop -----------------------------------------------------------------

# Stops what start started from state dir $1; see the header.
stop_dir() {
  local state=$1 pid p line i mnt sock
  local cd_sock="$state/containerd/containerd.sock"
  local br="" net=""
  [ -f "$state/bridge" ] && read -r br net <"$state/bridge"

  # pids lists containerd first, then dockerd: stop them in reverse order.
  # dockerd stops its containers on SIGTERM (10 s grace each, in parallel)
  # before it exits. Only a process whose command line still names this
  # state dir is signalled, so a PID reused since is left alone.
  if [ -f "$state/pids" ]; then
    local pids=()
    mapfile -t pids <"$state/pids"
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      pid=${pids[i]}
      alive_with "$pid" "$state" && terminate "$pid" 60
    done
  fi

  # Left only when dockerd or containerd died without stopping its
  # containers: the runc shims of this containerd (their command line names
  # its socket) with their containers, and docker-proxy processes of this
  # engine forwarding to this daemon's bridge.
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    line=$(cmdline "$pid")
    if [[ "$line" == *"containerd-shim"*"-address $cd_sock "* ]]; then
      say "killing leftover shim $pid and its containers"
      # A killed shim leaves its socket file (/run/containerd/s/<hash>):
      # find it among the unix sockets the shim has open.
      local child inodes sockets
      inodes=$(find "/proc/$pid/fd" -lname 'socket:*' -printf '%l ' 2>/dev/null | tr -dc '0-9 ' || true)
      sockets=$(awk -v inodes="$inodes" 'BEGIN { n = split(inodes, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
        NR > 1 && ($7 in want) && $8 ~ "^/run/containerd/s/" { print $8 }' /proc/net/unix | sort -u)
      for child in $(ps -o pid= --ppid "$pid"); do
        kill -KILL "$child" 2>/dev/null || true
      done
      terminate "$pid" 5
      for sock in $sockets; do
        rm -f "$sock"
      done
    elif [ -n "$net" ] && [[ "$line" == *docker-proxy*"-container-ip $net."* ]] &&
      [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$cache_root"/docker-* ]]; then
      say "killing leftover docker-proxy $pid"
      terminate "$pid" 5
    fi
  done

  # Mounts left under the state dir (container root filesystems, network
  # namespaces, shm), deepest first.
  # shellcheck disable=SC2013 # mountinfo escapes blanks, so words are lines
  for mnt in $(awk -v s="$state/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || say "cannot unmount $mnt"
  done

  if [ -n "$br" ]; then
    delete_firewall_rules "$br" "$net"
    ip link del "$br" 2>/dev/null || true
  fi
  rm -f "$state/pids" "$state/bridge"

  # Check: no program of this engine that names this state dir (dockerd,
  # containerd, shims) may be left.
  local left=()
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ "$(readlink "$p/exe" 2>/dev/null)" == "$cache_root"/docker-* ]] || continue
    line=$(cmdline "$pid")
    [[ "$line" == *"$state/"* ]] && left+=("$pid: ${line:0:150}")
  done
  [ ${#left[@]} -eq 0 ] || die "still running after stop: ${left[*]}"
  if grep -qF " $state/" /proc/self/mountinfo; then
    die "still mounted under $state: $(awk -v s="$state/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | head -5)"
  fi
}

stop() {
  local purge=false
  if [ "${1:-}" = --purge ]; then
    purge=true
    shift
  fi
  [ $# -eq 1 ] || usage
  local state
  state=$(realpath -m "$1")
  [ -d "$state" ] || die "no state dir $state"
  stop_dir "$state"
  if $purge; then
    # Only a directory that start has filled is deleted.
    if [ "$state" = / ] || [ ! -f "$state/daemon.json" ]; then
      die "not deleting $state: it is not a state dir of integration/dockerd.sh"
    fi
    # --one-file-system: never delete into a mount that is still there.
    rm -rf --one-file-system "$state"
  fi
}

# --- main -----------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root: dockerd needs it"
case "${1:-}" in
  fetch) [ $# -eq 2 ] || usage; fetch "$2" ;;
  start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
  env) [ $# -eq 3 ] || usage; print_env "$2" "$3" ;;
  stop) shift; stop "$@" ;;
  *) usage ;;
esac
