#!/usr/bin/env bash
# Builds the release artefacts of dockershim from a built binary:
#
#   deploy/release.sh <path/to/dockershim> <out-dir>
#
# writes into <out-dir>:
#   dockershim-<version>-linux-<arch>.tar.gz   the binary (stripped), the
#       systemd units, the commented configuration file, deploy/install.sh
#       (run it from the unpacked directory: sudo ./deploy/install.sh
#       ./dockershim), the manual page, the bash, zsh and fish completions,
#       README.md, docs/ and LICENSE, under dockershim-<version>-linux-<arch>/
#   dockershim_<version>_<arch>.deb            deploy/deb/build.sh's package
#   SHA256SUMS                                 of both, for `sha256sum -c`
# and prints their paths. The version is Cargo.toml's, and the binary must
# report it (as for the .deb). The tarball is reproducible: its files' times
# are SOURCE_DATE_EPOCH (default: the last commit's time), owned by root,
# in name order.
set -euo pipefail

die() { echo "deploy/release.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: deploy/release.sh <path/to/dockershim> <out-dir>"
binary=$1
out=$2
src=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$binary" ] || die "$binary is not an executable file"
[ -d "$out" ] || die "$out is not a directory"
out=$(cd "$out" && pwd)

# The package first: it checks the binary's version and architecture.
deb=$("$src/deploy/deb/build.sh" "$binary" "$out")
version=$(sed -n '/^\[package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' "$src/Cargo.toml" | head -n 1)
arch=$(dpkg-deb --field "$deb" Architecture)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

name=dockershim-$version-linux-$arch
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
top=$stage/$name
umask 022
mkdir -p "$top/deploy/systemd" "$top/docs" "$top/man" "$top/completions"
install -m 0755 "$binary" "$top/dockershim"
if command -v strip >/dev/null; then
  strip --remove-section=.comment --remove-section=.note "$top/dockershim"
fi
install -m 0755 "$src/deploy/install.sh" "$top/deploy/install.sh"
install -m 0644 "$src"/deploy/systemd/dockershim.{service,socket} "$top/deploy/systemd/"
install -m 0644 "$src/deploy/config.toml" "$top/deploy/config.toml"
install -m 0644 "$src/README.md" "$src/LICENSE" "$top/"
install -m 0644 "$src"/docs/*.md "$top/docs/"
"$top/dockershim" man >"$top/man/dockershim.8"
"$top/dockershim" completion bash >"$top/completions/dockershim.bash"
"$top/dockershim" completion zsh >"$top/completions/_dockershim"
"$top/dockershim" completion fish >"$top/completions/dockershim.fish"

tarball=$out/$name.tar.gz
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C "$stage" -cf - "$name" | gzip -9n >"$tarball"
(cd "$out" && sha256sum "$(basename "$tarball")" "$(basename "$deb")" >SHA256SUMS)
printf '%s\n' "$tarball" "$deb" "$out/SHA256SUMS"
