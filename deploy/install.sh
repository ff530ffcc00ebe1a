#!/usr/bin/env bash
# Installs dockershim on a systemd host: the binary, the socket and service
# units, the manual page and shell completions, the commented configuration
# file /etc/dockershim/config.toml and
# /etc/crictl.yaml pointing at the socket (each of these two unless one exists).
#
# Usage: deploy/install.sh [path/to/dockershim]   (default: builds a release)
# From a source tree, or from an unpacked release tarball (deploy/release.sh):
#   sudo ./deploy/install.sh ./dockershim
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
binary=${1:-}
if [ -z "$binary" ]; then
  cargo build --release --locked
  binary=target/release/dockershim
fi
install -m 0755 "$binary" /usr/local/bin/dockershim
install -m 0644 deploy/systemd/dockershim.socket /etc/systemd/system/dockershim.socket
install -m 0644 deploy/systemd/dockershim.service /etc/systemd/system/dockershim.service
install -d /usr/local/share/doc/dockershim
install -m 0644 README.md /usr/local/share/doc/dockershim/README.md
# The manual page and completions, from the binary's own flag definitions.
install -d /usr/local/share/man/man8 /usr/local/share/bash-completion/completions \
  /usr/local/share/zsh/site-functions /usr/local/share/fish/vendor_completions.d
/usr/local/bin/dockershim man >/usr/local/share/man/man8/dockershim.8
/usr/local/bin/dockershim completion bash >/usr/local/share/bash-completion/completions/dockershim
/usr/local/bin/dockershim completion zsh >/usr/local/share/zsh/site-functions/_dockershim
/usr/local/bin/dockershim completion fish >/usr/local/share/fish/vendor_completions.d/dockershim.fish
install -d /etc/dockershim /etc/dockershim/config.d
if [ ! -e /etc/dockershim/config.toml ]; then
  install -m 0644 deploy/config.toml /etc/dockershim/config.toml
fi
if [ ! -e /etc/crictl.yaml ]; then
  cat >/etc/crictl.yaml <<'YAML'
runtime-endpoint: unix:///run/dockershim.sock
image-endpoint: unix:///run/dockershim.sock
timeout: 30
YAML
fi
systemctl daemon-reload
systemctl enable --now dockershim.socket
systemctl enable dockershim.service
systemctl restart dockershim.service
echo "dockershim installed; point the kubelet at --container-runtime-endpoint=unix:///run/dockershim.sock"
