#!/usr/bin/env bash
# Sourced by the scripts that build the field's test tools from Go modules
# (critest.sh, kubelet.sh, rollback.sh): Go and a module proxy are required,
# never optional. Needs the caller's `die` and `say`.

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
