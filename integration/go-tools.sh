#!/usr/bin/env bash
# Sourced by the scripts that build the field's test tools from Go modules
# (critest.sh, kubelet.sh, node-e2e.sh, rollback.sh): Go and a module proxy
# are required, never optional. Needs the caller's `die` and `say`.

# require_go_proxy <what is being built>: fails the run without Go or a
# module proxy, else says which Go and proxy build <what>.
require_go_proxy() {
  local what=$1 proxy
  command -v go >/dev/null || die "Go is missing: building $what needs it"
  proxy=$(go env GOPROXY)
  case "$proxy" in
    "" | off) die "no Go module proxy (GOPROXY='$proxy'): building $what needs one" ;;
  esac
  say "building $what with $(go version | cut -d' ' -f3) from $proxy"
}

# k8s_scratch_module <dir> <k8s-version>: makes <dir> a Go module that
# requires k8s.io/kubernetes at <k8s-version> (v1.X.Y) and can build its
# packages. kubernetes requires its staging modules (k8s.io/api,
# k8s.io/kubelet, ...) at v0.0.0 and replaces them with
# ./staging/src/k8s.io/<name>; a module that requires kubernetes does not
# see those replaces, so each is replaced here with its published tag of the
# same release (v0.X.Y). The list comes from kubernetes' own go.mod, read
# through the module proxy. Run it in a subshell: it exports the Go
# environment the builds need (CGO off, -mod=mod, the machine's toolchain).
k8s_scratch_module() {
  local dir=$1 version=$2 gomod mods m
  cd "$dir" || return 1
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod" GOTOOLCHAIN=local
  go mod init dockershim-k8s-build >/dev/null 2>&1 || return 1
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || { echo "cannot fetch k8s.io/kubernetes@$version" >&2; return 1; }
  mods=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => \./staging/src/k8s.io/.*#\1#p' "$gomod")
  [ -n "$mods" ] || { echo "no staging replace in $gomod" >&2; return 1; }
  for m in $mods; do
    go mod edit -replace "$m=$m@v0.${version#v1.}"
  done
  go mod edit -require "k8s.io/kubernetes@$version"
}

# k8s_version_ldflags <k8s-version>: the -ldflags that stamp <k8s-version>
# into a kubernetes binary, as kubernetes' hack/lib/version.sh sets them.
k8s_version_ldflags() {
  local version=$1 minor p flags="-s -w"
  minor=${version#v1.}
  minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  printf '%s' "$flags"
}
