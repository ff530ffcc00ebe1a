#!/usr/bin/env bash
# Tests the Debian package end to end on this machine, as root:
#
#   deploy/deb/test.sh <path/to/dockershim>
#
# builds it (deploy/deb/build.sh) into a temporary directory, installs it with
# `apt-get install ./dockershim_<version>_<arch>.deb`, checks what is installed
# (`/usr/bin/dockershim --version` is Cargo.toml's version, the units, the
# conffiles, the docs, the units' enablement, no other package pulled in),
# that the shipped configuration file and a drop-in are read (`dockershim
# config dump`) and a bad drop-in refused, checks that edited conffiles
# survive a reinstallation, then removes and
# purges the package and checks that the machine is as it was: the same
# packages, the same files under /etc/systemd/system and deb-systemd-helper's
# state, and the docker group only if it was there before. With systemd as
# PID 1 it also checks that the socket and the service run, and stops Docker
# again if starting the service started it.
#
# It refuses to run where dockershim is installed already (as a package or by
# deploy/install.sh), since it would change that installation. Exits non-zero
# on the first failure, after removing what it installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

say() { printf 'deb test: %s\n' "$*"; }
fail() { printf 'deb test: FAIL: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || fail "usage: deploy/deb/test.sh <path/to/dockershim>"
binary=$1
[ "$(id -u)" = 0 ] || fail "run as root: it installs and removes a package"
for tool in apt-get dpkg dpkg-deb dpkg-query; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
version=$(sed -n '/^\[package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' "$src/Cargo.toml" | head -n 1)
[ -n "$version" ] || fail "no [package] version in Cargo.toml"

status_of() { dpkg-query -W -f='${db:Status-Abbrev}' dockershim 2>/dev/null || true; }
systemd=
[ -d /run/systemd/system ] && systemd=1

# --- The machine must not have dockershim already ---------------------------
case "$(status_of)" in
  "" | "un "*) ;;
  *) fail "the dockershim package is installed here ($(status_of)); the test would remove it" ;;
esac
for path in /usr/bin/dockershim /etc/default/dockershim /etc/dockershim /lib/systemd/system/dockershim.service \
  /lib/systemd/system/dockershim.socket /etc/systemd/system/dockershim.service \
  /etc/systemd/system/dockershim.socket /usr/share/doc/dockershim; do
  if [ -e "$path" ] || [ -L "$path" ]; then
    fail "$path exists; the test would change that installation"
  fi
done

# --- What must be the same afterwards ---------------------------------------
snapshot() {
  dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Abbrev}\n' | LC_ALL=C sort
  local dir
  for dir in /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked; do
    [ ! -d "$dir" ] || find "$dir" -printf '%p -> %l\n'
  done | LC_ALL=C sort
}
had_group=
getent group docker >/dev/null && had_group=1
docker_was_active=
[ -z "$systemd" ] || ! systemctl --quiet is-active docker.service || docker_was_active=1

apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600 "$@" >>"$work/apt.log" 2>&1 ||
    { tail -n 30 "$work/apt.log" >&2; fail "apt-get $*"; }
}

cleanup() {
  local rc=$?
  set +e
  case "$(status_of)" in
    "" | "un "*) ;;
    *) DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600 purge dockershim >>"$work/apt.log" 2>&1 ;;
  esac
  if [ -z "$had_group" ] && getent group docker >/dev/null; then
    groupdel docker
  fi
  if [ -n "$systemd" ] && [ -z "$docker_was_active" ] && systemctl --quiet is-active docker.service; then
    systemctl stop docker.service docker.socket
  fi
  rm -rf "$work"
  exit $rc
}
work=$(mktemp -d)
trap cleanup EXIT
chmod 0755 "$work" # apt's _apt user reads the .deb from here
snapshot >"$work/before"

# --- Build --------------------------------------------------------------------
say "building the package"
# gzip instead of dpkg-deb's default xz saves most of the build's CPU time;
# what is tested is the contents and the maintainer scripts.
deb=$(DPKG_DEB_COMPRESSOR_TYPE=${DPKG_DEB_COMPRESSOR_TYPE:-gzip} "$here/build.sh" "$binary" "$work") || fail "deploy/deb/build.sh failed"
case "$deb" in
  "$work/dockershim_${version}_"*.deb) ;;
  *) fail "build.sh wrote '$deb', not dockershim_${version}_<arch>.deb" ;;
esac
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "control Version is not $version"

# --- Install ------------------------------------------------------------------
say "apt-get install $(basename "$deb")"
# --no-install-recommends: the Recommends are Docker's packages, which this
# machine need not have (the tests run private engines).
(cd "$work" && apt_get install --no-install-recommends "./$(basename "$deb")")
[ "$(status_of)" = "ii " ] || fail "dpkg status after install is '$(status_of)'"

out=$(/usr/bin/dockershim --version) || fail "/usr/bin/dockershim --version failed"
# The version, then the commit and build date: "dockershim 0.1.0 (commit ...)".
case "$out" in
  "dockershim $version (commit "*) ;;
  *) fail "/usr/bin/dockershim --version printed '$out', not 'dockershim $version (commit ...)'" ;;
esac

for path in /lib/systemd/system/dockershim.service /lib/systemd/system/dockershim.socket \
  /etc/default/dockershim /etc/dockershim/config.toml /usr/share/doc/dockershim/copyright /usr/share/doc/dockershim/changelog.gz \
  /usr/share/doc/dockershim/README.md /usr/share/doc/dockershim/docs/operations.md \
  /usr/share/man/man8/dockershim.8.gz /usr/share/bash-completion/completions/dockershim \
  /usr/share/zsh/vendor-completions/_dockershim /usr/share/fish/vendor_completions.d/dockershim.fish; do
  [ -f "$path" ] || fail "$path is missing"
done
# The page and the completions know the flags of the binary installed.
zcat /usr/share/man/man8/dockershim.8.gz | grep -q '^\\fB\\-\\-docker\\-log\\-opt\\fR' ||
  fail "the manual page does not list --docker-log-opt"
zcat /usr/share/man/man8/dockershim.8.gz | grep -q '^\.SH FILES' || fail "the manual page has no FILES section"
completed=$(bash -c 'source /usr/share/bash-completion/completions/dockershim
  COMP_WORDS=(dockershim --docker-log-o); COMP_CWORD=1; COMP_LINE="dockershim --docker-log-o"; COMP_POINT=${#COMP_LINE}
  _dockershim dockershim --docker-log-o dockershim; printf "%s\n" "${COMPREPLY[@]}"')
[ "$completed" = "--docker-log-opt" ] || fail "bash completes '--docker-log-o' to '$completed', not --docker-log-opt"
say "the manual page and the bash completion know the flags"
unit=/lib/systemd/system/dockershim.service
# shellcheck disable=SC2016 # $DOCKERSHIM_OPTS is literal in the unit
grep -q '^ExecStart=/usr/bin/dockershim --container-runtime-endpoint fd:// \$DOCKERSHIM_OPTS$' "$unit" ||
  fail "$unit: unexpected ExecStart: $(grep '^ExecStart' "$unit")"
grep -q '^EnvironmentFile=-/etc/default/dockershim$' "$unit" || fail "$unit does not read /etc/default/dockershim"
grep -q '^ListenStream=/run/dockershim.sock$' /lib/systemd/system/dockershim.socket ||
  fail "dockershim.socket does not listen on /run/dockershim.sock"
! grep -rq /usr/local /lib/systemd/system/dockershim.service /lib/systemd/system/dockershim.socket ||
  fail "the installed units name /usr/local"
for conffile in /etc/default/dockershim /etc/dockershim/config.toml; do
  dpkg-query -W -f='${Conffiles}\n' dockershim | grep -q "^ $conffile " ||
    fail "$conffile is not a conffile"
done
[ -d /etc/dockershim/config.d ] || fail "/etc/dockershim/config.d is missing"
cmp -s "$src/deploy/config.toml" /etc/dockershim/config.toml ||
  fail "/etc/dockershim/config.toml is not deploy/config.toml"
# The command line the unit runs, with the shipped defaults, parses.
(
  # shellcheck disable=SC1091
  . /etc/default/dockershim
  # shellcheck disable=SC2086
  /usr/bin/dockershim --container-runtime-endpoint fd:// $DOCKERSHIM_OPTS --buildinfo >/dev/null
) || fail "the unit's command line with /etc/default/dockershim is refused"
# The same command line reads the shipped configuration file (every key
# commented out: the defaults), and the flag wins over the file.
dump=$(
  # shellcheck disable=SC1091
  . /etc/default/dockershim
  # shellcheck disable=SC2086
  /usr/bin/dockershim --container-runtime-endpoint fd:// $DOCKERSHIM_OPTS config dump
) || fail "dockershim config dump with the shipped /etc/dockershim/config.toml failed"
printf '%s\n' "$dump" | grep -qx 'container-runtime-endpoint = "fd://"' ||
  fail "config dump does not show the unit's --container-runtime-endpoint: $dump"
printf '%s\n' "$dump" | grep -qx '# read: /etc/dockershim/config.toml' ||
  fail "config dump did not read /etc/dockershim/config.toml: $dump"
# A drop-in is read, and a bad one is refused naming its file and line.
drop_in=/etc/dockershim/config.d/50-deb-test.toml
printf 'streaming-max-sessions = 7\n' >"$drop_in"
/usr/bin/dockershim config dump | grep -qx 'streaming-max-sessions = 7' ||
  { rm -f "$drop_in"; fail "the drop-in $drop_in was not read"; }
printf '\nnetwrk-plugin = "cni"\n' >"$drop_in"
err=$(/usr/bin/dockershim config dump 2>&1 >/dev/null) && { rm -f "$drop_in"; fail "a drop-in with an unknown key was accepted"; }
rm -f "$drop_in"
case "$err" in
  *"$drop_in:2: unknown key \"netwrk-plugin\""*) ;;
  *) fail "a bad drop-in's error does not name file, line and key: $err" ;;
esac
for link in sockets.target.wants/dockershim.socket multi-user.target.wants/dockershim.service; do
  [ -L "/etc/systemd/system/$link" ] || fail "/etc/systemd/system/$link missing: the unit was not enabled"
done
getent group docker >/dev/null || fail "no docker group after install (dockershim.socket needs it)"

# Nothing but dockershim was added or changed.
dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Abbrev}\n' | LC_ALL=C sort >"$work/installed"
added=$(LC_ALL=C comm -13 <(sed -n '/^[^/]/p' "$work/before") "$work/installed" | grep -v '^dockershim:' || true)
[ -z "$added" ] || fail "installing dockershim also changed: $added"

if [ -n "$systemd" ]; then
  systemctl --quiet is-active dockershim.socket || fail "dockershim.socket is not active after install"
  for _ in $(seq 50); do
    systemctl --quiet is-active dockershim.service && break
    sleep 0.2
  done
  systemctl --quiet is-active dockershim.service || fail "dockershim.service is not active after install"
fi
say "installed: $out, units, conffiles, configuration file and drop-ins, docs, enablement"

# --- Edited conffiles survive a reinstallation ------------------------------
echo '# kept by deb test' >>/etc/default/dockershim
echo '# kept by deb test' >>/etc/dockershim/config.toml
(cd "$work" && apt_get install --reinstall --no-install-recommends "./$(basename "$deb")")
for conffile in /etc/default/dockershim /etc/dockershim/config.toml; do
  grep -q '^# kept by deb test$' "$conffile" || fail "reinstalling overwrote the edited $conffile"
done
say "edited /etc/default/dockershim and /etc/dockershim/config.toml survive a reinstallation"

# --- Remove, then purge -------------------------------------------------------
apt_get remove dockershim
[ "$(status_of)" = "rc " ] || fail "dpkg status after remove is '$(status_of)', not 'rc'"
for path in /usr/bin/dockershim /lib/systemd/system/dockershim.service /lib/systemd/system/dockershim.socket \
  /usr/share/doc/dockershim /usr/share/man/man8/dockershim.8.gz /usr/share/bash-completion/completions/dockershim; do
  [ ! -e "$path" ] || fail "$path is still there after remove"
done
for conffile in /etc/default/dockershim /etc/dockershim/config.toml; do
  [ -f "$conffile" ] || fail "remove deleted the conffile $conffile (only purge may)"
done
if [ -n "$systemd" ]; then
  ! systemctl --quiet is-active dockershim.service || fail "dockershim.service still runs after remove"
  ! systemctl --quiet is-active dockershim.socket || fail "dockershim.socket still listens after remove"
fi
say "removed: binary, units and docs gone, conffiles kept"

apt_get purge dockershim
case "$(status_of)" in
  "" | "un "*) ;;
  *) fail "dpkg status after purge is '$(status_of)'" ;;
esac
for path in /etc/default/dockershim /etc/dockershim; do
  [ ! -e "$path" ] || fail "$path is still there after purge"
done
if [ -z "$had_group" ]; then
  groupdel docker || fail "cannot delete the docker group the package created"
fi
if [ -n "$systemd" ] && [ -z "$docker_was_active" ] && systemctl --quiet is-active docker.service; then
  systemctl stop docker.service docker.socket
fi
snapshot >"$work/after"
if ! diff -u "$work/before" "$work/after" >"$work/diff"; then
  cat "$work/diff" >&2
  fail "the machine differs after purge (above: - before, + after)"
fi
say "purged: the machine is as it was"
say "ok"
