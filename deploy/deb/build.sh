#!/usr/bin/env bash
# Builds the Debian package of dockershim from a built binary, with dpkg-deb
# alone (no cargo-deb, no debhelper):
#
#   deploy/deb/build.sh <path/to/dockershim> <out-dir>
#
# writes <out-dir>/dockershim_<version>_<arch>.deb and prints its path. The
# version is Cargo.toml's [package] version, and the binary must report the
# same (`dockershim --version`), so a stale binary is not packaged by mistake.
#
# Contents:
#   /usr/bin/dockershim                       the binary, stripped as dh_strip
#                                             would (DEB_BUILD_OPTIONS=nostrip
#                                             keeps it as it is)
#   /lib/systemd/system/dockershim.{socket,service}
#                                             deploy/systemd's units, with the
#                                             binary and docs at the package's
#                                             paths instead of /usr/local
#   /etc/default/dockershim                   conffile: DOCKERSHIM_OPTS, read
#                                             by the service's EnvironmentFile=
#   /etc/dockershim/config.toml               conffile: deploy/config.toml, the
#                                             configuration file with every key
#                                             commented out
#   /etc/dockershim/config.d/                 empty, for drop-ins
#   /usr/share/doc/dockershim/                README.md, docs/*.md, copyright,
#                                             changelog.gz
#   /usr/share/man/man8/dockershim.8.gz       `dockershim man`
#   /usr/share/bash-completion/completions/dockershim,
#   /usr/share/zsh/vendor-completions/_dockershim,
#   /usr/share/fish/vendor_completions.d/dockershim.fish
#                                             `dockershim completion <shell>`
#
# Relationships, and why:
#   Depends     the shared libraries the binary links (dpkg-shlibdeps when
#               dpkg-dev is installed, otherwise read from the ELF headers),
#               and adduser (postinst creates the docker group if missing).
#   Recommends  a Docker Engine >= 20.10 from a package, not Depends: the
#               engine may come from Docker's static binaries or run on
#               another host (--docker-endpoint tcp://...), and a Depends
#               would make apt install and start a second engine there.
#   no Conflicts/Provides/Replaces with cri-dockerd: the two use different
#               files and sockets and can be installed side by side, which
#               is what switching a node (docs/operations.md) needs.
#
# Environment: SOURCE_DATE_EPOCH (default: the last commit's time) fixes the
# files' times; DEBFULLNAME and DEBEMAIL set the Maintainer field (default:
# the last commit's author); DPKG_DEB_COMPRESSOR_TYPE and
# DPKG_DEB_COMPRESSOR_LEVEL are read by dpkg-deb itself.
set -euo pipefail

die() { echo "deploy/deb/build.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: deploy/deb/build.sh <path/to/dockershim> <out-dir>"
binary=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then die "$binary is not an executable file"; fi
[ -d "$out" ] || die "$out is not a directory"
out=$(cd "$out" && pwd)

# --- Version and architecture -------------------------------------------
version=$(sed -n '/^\[package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' "$src/Cargo.toml" | head -n 1)
[ -n "$version" ] || die "no [package] version in $src/Cargo.toml"
reported=$("$binary" --version 2>/dev/null) || die "$binary --version failed"
# --version goes on with the commit and build date: "dockershim 0.1.0 (commit ...)".
case "$reported" in
  "dockershim $version (commit "*) ;;
  *) die "$binary reports '$reported', Cargo.toml says $version: rebuild it" ;;
esac

# e_machine of the ELF header (2 bytes, little-endian, at offset 18).
[ "$(head -c 4 "$binary" | od -An -c | tr -d ' ')" = '177ELF' ] || die "$binary is not an ELF file"
machine=$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' ')
case "$machine" in
  62) arch=amd64 ;;
  183) arch=arm64 ;;
  *) die "$binary: unsupported ELF machine $machine" ;;
esac

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
build_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")

if [ -n "${DEBEMAIL:-}" ]; then
  maintainer="${DEBFULLNAME:-dockershim maintainers} <$DEBEMAIL>"
else
  maintainer=$(git -C "$src" log -1 --format='%an <%ae>' 2>/dev/null || true)
  [ -n "$maintainer" ] || die "set DEBEMAIL (and DEBFULLNAME) for the Maintainer field"
fi

# --- Staging ---------------------------------------------------------------
umask 022
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/dockershim
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/default" \
  "$root/etc/dockershim/config.d" "$doc/docs" "$root/usr/share/man/man8"

install -m 0755 "$binary" "$root/usr/bin/dockershim"
case " ${DEB_BUILD_OPTIONS:-} " in
  *" nostrip "*) ;;
  *)
    # What dh_strip does to an executable. Rust keeps its symbol table for
    # backtraces; Debian ships them without (lintian: unstripped-binary).
    if command -v strip >/dev/null; then
      strip --remove-section=.comment --remove-section=.note "$root/usr/bin/dockershim"
    else
      echo "deploy/deb/build.sh: strip not found (binutils): packaging the binary unstripped" >&2
    fi
    ;;
esac

# The units in deploy/systemd are written for deploy/install.sh, which puts
# the binary in /usr/local/bin; a package owns /usr/bin instead.
for unit in dockershim.socket dockershim.service; do
  sed -e 's#/usr/local/bin/dockershim#/usr/bin/dockershim#g' \
    -e 's#/usr/local/share/doc/dockershim/#/usr/share/doc/dockershim/#g' \
    "$src/deploy/systemd/$unit" >"$root/lib/systemd/system/$unit"
  chmod 0644 "$root/lib/systemd/system/$unit"
  if grep -q '/usr/local' "$root/lib/systemd/system/$unit"; then
    die "deploy/systemd/$unit still names /usr/local after rewriting: $(grep /usr/local "$root/lib/systemd/system/$unit")"
  fi
done
grep -q '^ExecStart=/usr/bin/dockershim ' "$root/lib/systemd/system/dockershim.service" ||
  die "dockershim.service: ExecStart does not run /usr/bin/dockershim"
grep -q '^EnvironmentFile=-/etc/default/dockershim$' "$root/lib/systemd/system/dockershim.service" ||
  die "dockershim.service no longer reads /etc/default/dockershim: update deploy/deb"

install -m 0644 "$here/default" "$root/etc/default/dockershim"
install -m 0644 "$src/deploy/config.toml" "$root/etc/dockershim/config.toml"

install -m 0644 "$src/README.md" "$doc/README.md"
install -m 0644 "$src"/docs/*.md "$doc/docs/"
install -m 0644 "$here/copyright" "$doc/copyright"

# A native package's changelog (required by Debian policy).
commit=$(git -C "$src" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
cat >"$stage/changelog" <<EOF
dockershim ($version) unstable; urgency=medium

  * dockershim $version, git commit $commit, packaged by deploy/deb/build.sh.
    The project's history is its git log.

 -- $maintainer  $build_date
EOF
gzip -9n <"$stage/changelog" >"$doc/changelog.gz"

# The manual page and the shell completions: generated by the binary from
# its own flag definitions, so they cannot drift from them.
"$binary" man >"$stage/dockershim.8" || die "$binary man failed"
mkdir -p "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d"
"$binary" completion bash >"$root/usr/share/bash-completion/completions/dockershim" || die "$binary completion bash failed"
"$binary" completion zsh >"$root/usr/share/zsh/vendor-completions/_dockershim" || die "$binary completion zsh failed"
"$binary" completion fish >"$root/usr/share/fish/vendor_completions.d/dockershim.fish" || die "$binary completion fish failed"
gzip -9n <"$stage/dockershim.8" >"$root/usr/share/man/man8/dockershim.8.gz"

# --- Control area ------------------------------------------------------------
# Shared library dependencies.
depends=
if command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$stage/shlibs/debian"
  printf 'Source: dockershim\n\nPackage: dockershim\nArchitecture: any\n' >"$stage/shlibs/debian/control"
  depends=$(cd "$stage/shlibs" && dpkg-shlibdeps -O "-e$root/usr/bin/dockershim" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p') || depends=
fi
if [ -z "$depends" ]; then
  command -v readelf >/dev/null || die "neither dpkg-shlibdeps (dpkg-dev) nor readelf (binutils) found"
  glibc=
  libgcc=
  for lib in $(readelf -d "$root/usr/bin/dockershim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
      libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | libutil.so.1 | ld-linux*.so.*) glibc=1 ;;
      libgcc_s.so.1) libgcc=1 ;;
      *) die "the binary needs $lib; install dpkg-dev so dpkg-shlibdeps can name its package" ;;
    esac
  done
  if [ -n "$glibc" ]; then
    v=$(readelf -V -W "$root/usr/bin/dockershim" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    depends="libc6${v:+ (>= $v)}"
  fi
  [ -z "$libgcc" ] || depends="${depends:+$depends, }libgcc-s1 (>= 4.2)"
fi
depends="${depends:+$depends, }adduser"

installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)

cat >"$root/DEBIAN/control" <<EOF
Package: dockershim
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Recommends: docker.io (>= 20.10) | docker-ce (>= 5:20.10)
Suggests: containernetworking-plugins, iptables
Section: admin
Priority: optional
Description: Kubernetes CRI v1 runtime that runs pods on Docker Engine
 dockershim lets the kubelet, and crictl, run pods on a plain Docker
 Engine: it serves the Container Runtime Interface (CRI v1) on a Unix socket
 and turns each call into Docker Engine API requests. It is a successor of
 the dockershim removed from Kubernetes 1.24 and a drop-in alternative to
 cri-dockerd: the same container names and labels, so running pods are
 adopted, and the same flags.
 .
 The package runs it as dockershim.service, activated by dockershim.socket
 on /run/dockershim.sock. Pod networking uses CNI plugins (for example
 from containernetworking-plugins) or Docker's own bridge.
EOF

printf '/etc/default/dockershim\n/etc/dockershim/config.toml\n' >"$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

# Same bytes from the same inputs.
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +

deb="$out/dockershim_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "$deb"
