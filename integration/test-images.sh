#!/usr/bin/env bash
# Sourced by critest.sh and node-e2e.sh: the busybox root filesystem their
# test images are built on, and the loopback registry that serves those
# images under their real registry names (registry.k8s.io, gcr.io, ...).
# Needs the caller's `say`, `die`, `$cache_parent` (the tool cache), and the
# arrays `cleanups` (eval'd last in, first out on exit) and `started_pids`
# (killed on exit).

# Serialises the runs that serve the registry names: they share port 443
# and /etc/hosts (and critest's runs, its host ports).
registry_hosts_lock=/run/dockershim-test-registry.lock
# Marks what serve_registry_hosts adds to /etc/hosts.
hosts_marker="# dockershim-test-registry"

# take_registry_hosts_lock: waits until no other such run is going (fd 9).
take_registry_hosts_lock() {
  exec 9>"$registry_hosts_lock"
  if ! flock -n 9; then
    say "waiting for another run that serves the registry names to finish"
    flock 9
  fi
}

busybox_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The dynamically linked busybox from Debian's `busybox` package, unpacked
# (not installed: it conflicts with busybox-static, which test.sh installs).
fetch_busybox() {
  local dir="$cache_parent/busybox-deb"
  if [ -x "$dir/root/bin/busybox" ]; then
    return
  fi
  say "fetching Debian's busybox package"
  rm -rf "$dir"
  mkdir -p "$dir"
  # apt-get download runs as _apt where it can; give it a directory it may write.
  chmod 755 "$dir"
  chown _apt "$dir" 2>/dev/null || true
  (cd "$dir" && apt-get download -q busybox >"$dir/apt.log" 2>&1) || {
    cat "$dir/apt.log"
    die "apt-get download busybox failed"
  }
  dpkg -x "$dir"/busybox_*.deb "$dir/root"
  [ -x "$dir/root/bin/busybox" ] || die "no bin/busybox in Debian's busybox package"
}

# The base root filesystem of the busybox image, in $1.
make_busybox_rootfs() {
  local root=$1 bb="$cache_parent/busybox-deb/root/bin/busybox" lib applet
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,home,proc,sys,dev,tmp,var/run,var/www}
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  cp "$bb" "$root/bin/busybox"
  # The shared libraries busybox links to, from the host (same Debian).
  for lib in $(ldd "$bb" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln "$root/bin/busybox" "$root/bin/$applet"
  done
  # Applets Debian's build leaves out and specs use.
  cat >"$root/bin/pgrep" <<'EOF'
#!/bin/sh
# pgrep stand-in: the pids of processes whose name matches the regex $1.
status=1
for dir in /proc/[0-9]*; do
  read -r name <"$dir/comm" 2>/dev/null || continue
  if echo "$name" | grep -qE -- "$1"; then
    echo "${dir#/proc/}"
    status=0
  fi
done
exit $status
EOF
  cat >"$root/bin/ipcs" <<'EOF'
#!/bin/sh
# ipcs -m stand-in: the kernel's table of shared memory segments.
echo "------ Shared Memory Segments --------"
cat /proc/sysvipc/shm
EOF
  chmod 755 "$root/bin/pgrep" "$root/bin/ipcs"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
EOF
}

# serve_registry_hosts <upstream> <dir> <probe-repo> <probe-tag> <host>...:
# until the caller exits, serves each <host> from 127.0.0.1:443 as a TLS
# pull-through proxy of the plain-HTTP registry <upstream>: a CA made in
# <dir> and trusted for those names through /etc/docker/certs.d, an
# /etc/hosts entry, and a docker-registry. <probe-repo>:<probe-tag> must be
# in <upstream> already (the images were pushed). Take the lock first.
serve_registry_hosts() {
  local upstream=$1 dir=$2 probe_repo=$3 probe_tag=$4
  shift 4
  local -a hosts=("$@")
  curl -sf -o /dev/null "http://$upstream/v2/" ||
    die "no registry answers on http://$upstream/v2/ (DOCKERSHIM_TEST_REGISTRY): start it and push the images first"
  # Docker's own store pushes Docker v2 manifests, the containerd image
  # store OCI manifests and indexes.
  curl -sf -o /dev/null "http://$upstream/v2/$probe_repo/manifests/$probe_tag" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.oci.image.index.v1+json' ||
    die "$probe_repo:$probe_tag is not in $upstream: build and push the images first"
  if ss -Hltn 'sport = :443' | grep -q .; then
    die "port 443 is in use: the registry serving ${hosts[*]} needs it" \
      "(a registry left by a killed run has its pid in $dir/pid)"
  fi
  rm -rf "$dir"
  mkdir -p "$dir/data"

  # A CA and a certificate for the names.
  local san
  san=$(printf 'DNS:%s,' "${hosts[@]}")
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=dockershim test registry CA' \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=${hosts[0]}" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=%sIP:127.0.0.1\n' "$san" >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.crt" 2>/dev/null

  # Docker trusts it for those names (/etc/docker/certs.d/<name>/ca.crt).
  local host
  if [ ! -e /etc/docker/certs.d ]; then
    mkdir -p /etc/docker/certs.d
    cleanups+=("rmdir /etc/docker/certs.d 2>/dev/null")
  fi
  for host in "${hosts[@]}"; do
    if [ ! -e "/etc/docker/certs.d/$host" ]; then
      mkdir -p "/etc/docker/certs.d/$host"
      cleanups+=("rm -rf '/etc/docker/certs.d/$host'")
    fi
    if [ ! -e "/etc/docker/certs.d/$host/ca.crt" ] ||
      grep -q 'dockershim .*CA' "/etc/docker/certs.d/$host/ca.crt" 2>/dev/null; then
      { echo "# dockershim test registry CA"; cat "$dir/ca.crt"; } >"/etc/docker/certs.d/$host/ca.crt"
      cleanups+=("rm -f '/etc/docker/certs.d/$host/ca.crt'; rmdir '/etc/docker/certs.d/$host' 2>/dev/null")
    else
      die "/etc/docker/certs.d/$host/ca.crt exists and is not ours"
    fi
  done

  # The names resolve to 127.0.0.1. /etc/hosts may be a bind mount: rewrite
  # it in place, never replace it.
  if grep -q -- "$hosts_marker" /etc/hosts; then
    # Runs hold the lock, so this entry is one a killed run left.
    say "removing the /etc/hosts entry a killed run left"
    remove_hosts_entry
  fi
  echo "127.0.0.1 ${hosts[*]} $hosts_marker" >>/etc/hosts
  cleanups+=("remove_hosts_entry")

  # The registry: TLS on 127.0.0.1:443, a pull-through proxy of the upstream.
  cat >"$dir/config.yml" <<EOC
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:443
  secret: dockershim-test-registry
  tls: {certificate: $dir/server.crt, key: $dir/server.key}
proxy: {remoteurl: "http://$upstream"}
EOC
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  started_pids+=($!)
  echo $! >"$dir/pid"
  for _ in $(seq 1 30); do
    curl -sf -o /dev/null --cacert "$dir/ca.crt" "https://${hosts[0]}/v2/" && break
    sleep 0.5
  done
  for host in "${hosts[@]}"; do
    curl -sf -o /dev/null --cacert "$dir/ca.crt" "https://$host/v2/" || {
      cat "$dir/log"
      die "https://$host/v2/ does not answer"
    }
  done
  say "serving ${hosts[*]} on 127.0.0.1:443 (proxy of $upstream)"
}

# Removes serve_registry_hosts' /etc/hosts entry.
# shellcheck disable=SC2317 # run by cleanup
remove_hosts_entry() {
  local kept
  kept=$(grep -v -- "$hosts_marker" /etc/hosts || true)
  printf '%s\n' "$kept" >/etc/hosts
}
