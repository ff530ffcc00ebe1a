#!/usr/bin/env bash
# Sourced by kubelet.sh and node-e2e.sh: what a kubelet changes on the host,
# recorded and put back, and stopping what a run started. Needs the caller's
# `$work` (for the sysctl record) and `cleanups` array (eval'd last in, first
# out on exit).

# The sysctls the kubelet sets at start (vm.overcommit_memory=1,
# vm.panic_on_oom=0, kernel.panic=10, kernel.panic_on_oops=1, the key
# quotas): record_sysctls saves them and registers their restore.
sysctls=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
record_sysctls() {
  local s
  : >"$work/sysctls"
  for s in "${sysctls[@]}"; do
    echo "$s=$(sysctl -n "$s")" >>"$work/sysctls"
  done
  cleanups+=("restore_sysctls")
}
restore_sysctls() {
  local kv now
  while read -r kv; do
    now=$(sysctl -n "${kv%%=*}")
    if [ "$now" != "${kv#*=}" ]; then
      sysctl -q -w "$kv" || printf 'warning: cannot restore %s\n' "$kv" >&2
    fi
  done <"$work/sysctls"
}

cgroup_roots() { # every hierarchy: each v1 one and the unified one
  local d
  for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [ -e "$d/cgroup.procs" ] && printf '%s\n' "${d%/}"
  done
}
# Deletes the /kubepods cgroups (deepest first); fails if one stays.
remove_kubepods_cgroups() {
  local root left=0 _
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    left=0
    while read -r root; do
      [ -d "$root/kubepods" ] || continue
      find "$root/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$root/kubepods" ] && left=1
    done < <(cgroup_roots)
    [ $left = 0 ] && return 0
    sleep 1
  done
  printf 'warning: /kubepods cgroups left: %s\n' "$(ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null | tr '\n' ' ')" >&2
  return 1
}

stop_pid() { # pid name
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    printf 'warning: %s (%s) ignored SIGTERM, killing it\n' "$2" "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Unmounts everything at or under directory $1, deepest first (the kubelet
# bind-mounts its root directory onto itself, rshared).
unmount_under() {
  local mp
  while read -r mp; do
    umount "$mp" 2>/dev/null || umount -l "$mp" || printf 'warning: cannot unmount %s\n' "$mp" >&2
  done < <(awk -v d="$1" 'index($5, d "/") == 1 || $5 == d {print $5}' /proc/self/mountinfo | sort -r)
}
