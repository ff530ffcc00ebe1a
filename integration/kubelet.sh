#!/usr/bin/env bash
# A real kubelet on top of dockershim: builds the kubelet, runs it standalone
# (no API server) with static pods against a shim of its own, and checks what
# a node depends on.
#
# Usage (as root):
#   integration/kubelet.sh build
#       Builds the kubelet from the Go module k8s.io/kubernetes v1.36.3 with
#       the machine's Go and module proxy, into
#       $DOCKERSHIM_TEST_CACHE/kubelet-v1.36.3/kubelet (default
#       /var/cache/dockershim-test/...). Does nothing when it is there.
#   integration/kubelet.sh run <docker-socket> [on|off|both]
#       Runs the kubelet against a dockershim it starts on a private socket,
#       over the Docker Engine at <docker-socket>, once with the feature gates
#       EventedPLEG and PodAndContainerStatsFromCRI on and once with both off
#       (or only the one given). Exits non-zero when any check fails.
#       Takes about 70s per setting. Needs curl and python3; uses crictl
#       from $DOCKERSHIM_TEST_CACHE/cri-tools-v1.37.0 (integration/critest.sh
#       build) when it is there, else checks through the kubelet and Docker.
#
# The Docker at <docker-socket> must be one where nothing else runs CRI pods
# (a private engine of integration/dockerd.sh): the kubelet kills every pod
# the runtime lists that it did not create. It must hold the image
# dockershim-test/busybox:latest (integration/test.sh imports it); the shim
# uses its built-in pause image (it is given an unpullable pod infra image).
# The system's /var/run/docker.sock is refused.
#
# What `run` checks, for each feature-gate setting (static pods in
# integration/kubelet/*.yaml):
#   - every pod and container runs (kubelet /pods, and crictl through the
#     shim);
#   - `probes`: exec liveness and readiness probes of two containers run and
#     succeed (/metrics/probes), the pod is Ready, nothing restarts;
#   - `volumes`: an emptyDir shared by two containers and a hostPath work;
#   - every container has its /var/log/containers/<pod>_<ns>_<c>-<id>.log
#     link, pointing to its CRI log file;
#   - /stats/summary: each pod's CPU is at least the sum of its containers';
#   - `logger`: the kubelet rotates its log (containerLogMaxSize 1Mi, 3
#     files), the rotated and current files hold every line once, in order,
#     and `crictl logs -f` (or the kubelet's containerLogs?follow) reads on
#     across a rotation;
#   - `crasher`: a container that exits 1 is restarted with a growing
#     back-off, and the CRI attempt follows the restart count;
#   - with EventedPLEG, the kubelet's GetContainerEvents stream connected
#     without error (its /metrics);
#   - removing the manifest of `volumes` stops it, and its sandbox and
#     containers are removed from the runtime;
#   - with the gates on (the kubelet's image filesystem stats from the CRI):
#     image garbage collection. The kubelet is restarted over its running
#     pods with image GC and eviction thresholds that the disk passes; it
#     must remove an image that no container uses (imported for the check),
#     keep the image its pods use and the pinned pause image, and its pods
#     run on. Note that it removes every image of that Docker that no
#     container uses;
#   - the kubelet's log has no CRI error (lines with "rpc error"), except the
#     ones in the allow-list below.
#
# The kubelet runs standalone: no kubeconfig, authentication and
# authorization off (anonymous, AlwaysAllow), its ports on 127.0.0.1
# (10250, read-only 10255, healthz 10248; DOCKERSHIM_KUBELET_PORTS="a b c"
# overrides), failSwapOn and failCgroupV1 off, the cgroup driver Docker
# reports, eviction and image GC thresholds off (until the image GC check),
# makeIPTablesUtilChains off
# (so iptables is not touched), its root, cert, volume-plugin and pod-log
# directories under the work directory. What it still changes on the host is
# put back when the run ends, whatever the exit path:
#   - sysctls: the kubelet sets vm.overcommit_memory=1, vm.panic_on_oom=0,
#     kernel.panic=10, kernel.panic_on_oops=1, kernel.keys.root_maxkeys and
#     kernel.keys.root_maxbytes (protectKernelDefaults only turns that into a
#     refusal to start): recorded before, written back after;
#   - the /kubepods cgroups it makes in every cgroup hierarchy (cgroupfs
#     driver, as integration/dockerd.sh's engines have);
#   - the links it makes in /var/log/containers (the directory too, if it
#     made it) -- pod log directories are under the work directory;
#   - the mounts under its root directory (it bind-mounts the root onto
#     itself, rshared);
#   - /var/lib/kubelet/device-plugins/kubelet.sock (the device manager's
#     socket has a fixed path), and the directories, if it made them;
#   - the pods: the kubelet and the shim are stopped (only the PIDs started
#     here), then every CRI container left in that Docker is removed.
# Note that kernel.panic_on_oops=1 and kernel.panic=10 hold while the kubelet
# runs: a kernel oops in that time reboots the machine.
#
# Environment:
#   DOCKERSHIM_TEST_CACHE     parent of the kubelet cache (/var/cache/dockershim-test)
#   DOCKERSHIM_KUBELET_WORK   work directory (/tmp/dockershim-kubelet), emptied per run
#   DOCKERSHIM_BIN            the shim binary (target/debug/dockershim)
#   DOCKERSHIM_KUBELET_PORTS  kubelet port, read-only port, healthz port ("10250 10255 10248")
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD

k8s_version=v1.36.3
cri_tools_version=v1.37.0
cache_parent="${DOCKERSHIM_TEST_CACHE:-/var/cache/dockershim-test}"
kubelet_dir="$cache_parent/kubelet-$k8s_version"
kubelet_bin="$kubelet_dir/kubelet"
crictl_bin="$cache_parent/cri-tools-$cri_tools_version/crictl"
work="${DOCKERSHIM_KUBELET_WORK:-/tmp/dockershim-kubelet}"
shim_bin="${DOCKERSHIM_BIN:-$repo/target/debug/dockershim}"
# The shim's /metrics, to record which CRI calls the kubelet makes.
shim_metrics_port="${DOCKERSHIM_KUBELET_METRICS_PORT:-10262}"
read -r kubelet_port ro_port healthz_port <<<"${DOCKERSHIM_KUBELET_PORTS:-10250 10255 10248}"
node=dockershim-e2e
manifests_src="$repo/integration/kubelet"
pods=(probes crasher volumes logger)

# kubelet log lines with "rpc error" (or errors of its CRI client) that are
# not defects of the shim: Python regexes searched in the line; say why. Built
# in (see cmd_crierrors): NotFound from ContainerStatus for a container the
# shim has removed already -- the kubelet removes a dead container from its
# container GC, its pod container deletor and its PLEG events, and each path
# asks ContainerStatus first, so all but the first get NotFound (as with
# containerd).
cri_error_allow=(
  # grpc-go's own status when the caller's context ends: the kubelet cancels
  # the sync of a pod whose manifest is removed, and a call in flight (e.g.
  # Version, when it builds its standalone node object) ends so. The shim
  # never answers with this text.
  'code = Canceled desc = context canceled'
)

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=integration/go-tools.sh
. "$repo/integration/go-tools.sh"
# shellcheck source=integration/node-host.sh
. "$repo/integration/node-host.sh"
usage() {
  sed -n '/^# Usage/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Things to undo on exit, whatever the exit path (last in, first out).
cleanups=()
cleanup() {
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
    eval "${cleanups[i]}" || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------
do_build() {
  if [ -x "$kubelet_bin" ]; then
    say "kubelet $k8s_version already built: $kubelet_bin"
    return
  fi
  require_go_proxy "the kubelet $k8s_version (Go >= 1.26, kubernetes' go.mod)"
  local start=$SECONDS scratch
  scratch=$(mktemp -d /tmp/dockershim-kubelet-build.XXXXXX)
  cleanups+=("rm -rf '$scratch'")
  (
    set -e
    k8s_scratch_module "$scratch" "$k8s_version"
    go get "k8s.io/kubernetes/cmd/kubelet@$k8s_version"
    go build -trimpath -ldflags "$(k8s_version_ldflags "$k8s_version")" \
      -o "$scratch/kubelet" k8s.io/kubernetes/cmd/kubelet
  ) || die "building the kubelet $k8s_version failed"
  "$scratch/kubelet" --version || die "the kubelet built does not run"
  mkdir -p "$kubelet_dir"
  mv "$scratch/kubelet" "$kubelet_bin.tmp"
  mv "$kubelet_bin.tmp" "$kubelet_bin"
  say "built the kubelet in $((SECONDS - start))s: $kubelet_bin ($(du -h "$kubelet_bin" | cut -f1))"
}

# ---------------------------------------------------------------------------
# run: helpers
# ---------------------------------------------------------------------------
docker_sock=
dapi() { # method path
  curl -sS --fail --max-time 60 --unix-socket "$docker_sock" -X "$1" "http://docker$2"
}

# Checks in Python, on the kubelet's JSON and the log files.
write_checker() { # file
  cat >"$1" <<'PY'
import glob, gzip, json, os, re, sys, time, urllib.request

def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()

def pods(ro):
    return json.loads(get("http://127.0.0.1:%s/pods" % ro))["items"]

def find(items, name):
    for p in items:
        if p["metadata"]["name"] == name:
            return p
    return None

def cid(s):
    return (s or "").split("://", 1)[-1]

def state_of(cs):
    return next(iter(cs.get("state") or {"unknown": {}}))

def cmd_running(ro, may_crash, *names):
    """Every pod Running; every container running, or (may_crash) started at least once."""
    items, bad = pods(ro), []
    for n in names:
        p = find(items, n)
        if p is None:
            bad.append("%s: not in /pods" % n)
            continue
        st = p.get("status", {})
        if st.get("phase") != "Running":
            bad.append("%s: phase %s" % (n, st.get("phase")))
        specs = [c["name"] for c in p["spec"]["containers"]]
        seen = {c["name"]: c for c in st.get("containerStatuses") or []}
        for c in specs:
            cs = seen.get(c)
            if cs is None:
                bad.append("%s/%s: no status" % (n, c))
                continue
            s = state_of(cs)
            started = s == "running" or cs.get("restartCount", 0) > 0 or "terminated" in (cs.get("lastState") or {}) or s == "terminated"
            if s != "running" and not (c in may_crash.split(",") and started):
                bad.append("%s/%s: %s %s" % (n, c, s, json.dumps(cs.get("state"))))
    for b in bad:
        print(b)
    return not bad

def cmd_ready(ro, name):
    p = find(pods(ro), name)
    if p is None:
        print("%s: not in /pods" % name)
        return False
    st = p.get("status", {})
    cond = {c["type"]: c["status"] for c in st.get("conditions") or []}
    ok = cond.get("Ready") == "True"
    for cs in st.get("containerStatuses") or []:
        ok = ok and cs.get("ready") is True
        print("%s: ready=%s started=%s restarts=%s" % (cs["name"], cs.get("ready"), cs.get("started"), cs.get("restartCount")))
    print("conditions: %s" % cond)
    return ok

def cmd_restarts_zero(ro, name):
    p = find(pods(ro), name)
    bad = [cs["name"] for cs in (p or {}).get("status", {}).get("containerStatuses") or [] if cs.get("restartCount", 0) != 0]
    if p is None or bad:
        print("restarted: %s" % (bad or "pod missing"))
        return False
    return True

def cmd_probes(ro, name):
    """Liveness and readiness of every container of the pod have succeeded."""
    text = get("http://127.0.0.1:%s/metrics/probes" % ro).decode()
    p = find(pods(ro), name)
    full = p["metadata"]["name"] if p else name
    counts = {}
    for line in text.splitlines():
        m = re.match(r'prober_probe_total\{(.*)\} (\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("pod") != full:
            continue
        key = (labels.get("container"), labels.get("probe_type"), labels.get("result"))
        counts[key] = counts.get(key, 0) + float(m.group(2))
    ok = True
    for c in [c["name"] for c in p["spec"]["containers"]] if p else []:
        for t in ("Liveness", "Readiness"):
            n = counts.get((c, t, "successful"), 0)
            other = {r: v for (cc, tt, r), v in counts.items() if cc == c and tt == t and r != "successful"}
            print("%s %s: %d successful %s" % (c, t, n, other or ""))
            ok = ok and n > 0
    return ok and p is not None

def cmd_links(ro, logdir):
    """Every current container has /var/log/containers/<pod>_<ns>_<c>-<id>.log -> its CRI log."""
    bad, n = [], 0
    for p in pods(ro):
        md = p["metadata"]
        for cs in p.get("status", {}).get("containerStatuses") or []:
            i = cid(cs.get("containerID"))
            if not i:
                continue
            n += 1
            link = "/var/log/containers/%s_%s_%s-%s.log" % (md["name"], md.get("namespace", "default"), cs["name"], i)
            if not os.path.islink(link):
                bad.append("missing %s (%s)" % (link, state_of(cs)))
            elif not os.path.exists(link):
                bad.append("dangling %s -> %s" % (link, os.readlink(link)))
            elif not os.path.realpath(link).startswith(os.path.realpath(logdir) + "/"):
                bad.append("%s -> %s, outside %s" % (link, os.readlink(link), logdir))
    for b in bad:
        print(b)
    print("%d containers, %d without a good link" % (n, len(bad)))
    return not bad and n > 0

def ts(t):
    """An RFC 3339 time of the summary API as (seconds, nanoseconds), comparable."""
    m = re.match(r'(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$', t or "")
    if not m:
        return None
    import calendar
    secs = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    if m.group(8) != "Z":
        sign = 1 if m.group(8)[0] == "+" else -1
        secs -= sign * (int(m.group(8)[1:3]) * 3600 + int(m.group(8)[4:6]) * 60)
    return (secs, int((m.group(7) or "0")[:9].ljust(9, "0")))

def summary_pods(ro):
    s = json.loads(get("http://127.0.0.1:%s/stats/summary" % ro))
    return {p["podRef"]["name"]: p for p in s.get("pods") or []}

def cmd_stats(ro, *names):
    """Each pod's CPU >= the sum of its containers'. The pod's and the
    containers' counters may be read at different times (without
    PodAndContainerStatsFromCRI the pod's comes from cAdvisor's cache, up to
    its housekeeping interval old, the containers' from the runtime), so the
    pod's counter is compared once its time is after the containers' (the
    summary API gives whole seconds, so a later second): cumulative counters
    only grow, and a pod cgroup holding its containers has used at least what
    they had used by then."""
    first = summary_pods(ro)
    want, ok = {}, True
    for n in names:
        p = first.get(n)
        if p is None:
            print("%s: not in /stats/summary" % n)
            ok = False
            continue
        parts = {c["name"]: (c.get("cpu") or {}) for c in p.get("containers") or []}
        if not parts or any(c.get("usageCoreNanoSeconds") is None or ts(c.get("time")) is None for c in parts.values()):
            print("%s: containers without CPU usage or time: %s" % (n, parts))
            ok = False
            continue
        want[n] = (sum(c["usageCoreNanoSeconds"] for c in parts.values()),
                   max((ts(c["time"]), c["time"]) for c in parts.values()),
                   {k: c["usageCoreNanoSeconds"] for k, c in parts.items()})
    deadline = time.time() + 40
    cur = first
    while want:
        for n in list(want):
            total, t, parts = want[n]
            cpu = (cur.get(n) or {}).get("cpu") or {}
            pt = ts(cpu.get("time"))
            if pt is None or cpu.get("usageCoreNanoSeconds") is None:
                print("%s: pod without CPU usage or time: %s" % (n, cpu))
                ok = False
                del want[n]
            elif pt > t[0]:
                good = cpu["usageCoreNanoSeconds"] >= total
                print("%s: pod %d ns at %s, containers %s = %d ns at %s%s" % (
                    n, cpu["usageCoreNanoSeconds"], cpu["time"], parts, total, t[1],
                    "" if good else "  <- pod below the sum by %.1f ms" % ((total - cpu["usageCoreNanoSeconds"]) / 1e6)))
                ok = ok and good
                del want[n]
        if not want:
            break
        if time.time() > deadline:
            for n in want:
                print("%s: the pod's CPU time never reached its containers' in 40s" % n)
            return False
        time.sleep(2)
        cur = summary_pods(ro)
    return ok

LINE = re.compile(rb'^\S+ (stdout|stderr) ([FP]) ?(.*)$')

def read_cri(path):
    data = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    return data.split(b"\n")

def seqs_from_cri(lines, pending):
    out = []
    for raw in lines:
        if not raw:
            continue
        m = LINE.match(raw)
        if not m:
            out.append(("bad", raw[:80]))
            continue
        pending[0] += m.group(3)
        if m.group(2) == b"F":
            mm = re.match(rb'seq (\d+) ', pending[0])
            out.append(("seq", int(mm.group(1))) if mm else ("bad", pending[0][:80]))
            pending[0] = b""
    return out

def gaps(nums):
    g = []
    for a, b in zip(nums, nums[1:]):
        if b != a + 1:
            g.append((a, b))
    return g

def cmd_logfiles(d):
    """The rotated and current CRI log files of one container hold consecutive lines."""
    files = [f for f in glob.glob(os.path.join(d, "*.log*")) if not f.endswith(".tmp")]
    cur = [f for f in files if re.search(r'\.log$', f)]
    rot = sorted((f for f in files if f not in cur), key=lambda f: re.sub(r'\.gz$', '', f))
    if len(cur) != 1:
        print("current log files: %s" % cur)
        return False
    pending, nums, bad = [b""], [], []
    for f in rot + cur:
        got = seqs_from_cri(read_cri(f), pending)
        ns = [v for k, v in got if k == "seq"]
        bad += [v for k, v in got if k == "bad"]
        print("%s: %d lines%s" % (os.path.basename(f), len(ns), " %d..%d" % (ns[0], ns[-1]) if ns else ""))
        nums += ns
    g = gaps(nums)
    for a, b in g[:10]:
        print("gap or disorder: %d then %d" % (a, b))
    for b in bad[:5]:
        print("unparsed: %r" % b)
    print("%d rotated files, %d lines, %d gaps" % (len(rot), len(nums), len(g)))
    return bool(rot) and not g and not bad and bool(nums)

def cmd_firstseq(path):
    got = [v for k, v in seqs_from_cri(read_cri(path), [b""]) if k == "seq"]
    print(got[0] if got else -1)
    return bool(got)

def cmd_stream(path, boundary):
    """Output of a follow read (`seq <n> ...` lines) spans the rotation boundary."""
    boundary = int(boundary)
    nums = []
    for raw in open(path, "rb").read().split(b"\n"):
        m = re.match(rb'seq (\d+) ', raw)
        if m:
            nums.append(int(m.group(1)))
    if not nums:
        print("no lines read")
        return False
    g = gaps(nums)
    print("read %d lines, %d..%d, rotation boundary at %d, %d gaps%s" % (
        len(nums), nums[0], nums[-1], boundary, len(g),
        (": " + ", ".join("%d->%d" % x for x in g[:5])) if g else ""))
    return nums[0] < boundary < nums[-1]

def cmd_sample(ro, name, container, out, seconds):
    """Every second, the container's restart count (for the back-off check)."""
    end = time.time() + float(seconds)
    with open(out, "a") as f:
        while time.time() < end:
            try:
                p = find(pods(ro), name)
                for cs in (p or {}).get("status", {}).get("containerStatuses") or []:
                    if cs["name"] == container:
                        f.write("%.1f %d %s %s\n" % (time.time(), cs.get("restartCount", 0), state_of(cs), cid(cs.get("containerID"))))
                        f.flush()
            except Exception as e:
                f.write("# %s\n" % e)
            time.sleep(1)
    return True

def cmd_restarts(path, want):
    """The restart count reached `want`, and the gaps between restarts grow (back-off)."""
    want = int(want)
    first, last = {}, None
    for line in open(path):
        if line.startswith("#"):
            continue
        t, n = line.split()[:2]
        n = int(n)
        first.setdefault(n, float(t))
        last = n
    counts = sorted(first)
    print("restart count seen: %s" % ", ".join("%d at +%.0fs" % (n, first[n] - first[counts[0]]) for n in counts))
    if last is None or last < want:
        print("restart count %s, want %d" % (last, want))
        return False
    steps = [first[n + 1] - first[n] for n in range(1, want) if n in first and n + 1 in first]
    print("gaps between restarts: %s s" % ", ".join("%.0f" % s for s in steps))
    if counts != list(range(counts[0], counts[-1] + 1)) or any(b <= a for a, b in zip(steps, steps[1:])):
        print("restarts not back-off shaped")
        return False
    return True

def cmd_restartcount(ro, name, container):
    p = find(pods(ro), name)
    for cs in (p or {}).get("status", {}).get("containerStatuses") or []:
        if cs["name"] == container:
            print(cs.get("restartCount", 0), cid(cs.get("containerID")))
            return True
    return False

def cmd_gone(ro, name):
    return find(pods(ro), name) is None

def cmd_poduid(ro, name):
    p = find(pods(ro), name)
    if p:
        print(p["metadata"]["uid"])
    return p is not None

def cmd_crierrors(kubelet_log, shim_log, *allow):
    """Lines of the kubelet's log with "rpc error", or errors of its CRI client
    (remote_runtime.go, remote_image.go), except the benign ones: printed,
    with a count of what was allowed and why."""
    removed = set()
    for line in open(shim_log, errors="replace"):
        m = re.search(r'container removed.*container=([0-9a-f]{64})', line)
        if m:
            removed.add(m.group(1))
    allowed, errors = {}, []
    for line in open(kubelet_log, errors="replace"):
        line = line.rstrip("\n")
        if "rpc error" not in line and not re.match(r'E\d{4} \S+ +\d+ (remote_runtime|remote_image)\.go', line):
            continue
        # The kubelet removes a dead container from several places (container
        # GC, the pod's container deletor, its PLEG's ContainerDied and
        # ContainerRemoved events), and each asks ContainerStatus first: all
        # but the first get NotFound. Benign once the shim removed it.
        m = re.search(r'code = NotFound desc = container \\"([0-9a-f]{64})\\" not found', line)
        if m and m.group(1) in removed:
            why = "NotFound for a container already removed at the kubelet's request (kubelet removes twice)"
            allowed[why] = allowed.get(why, 0) + 1
            continue
        hit = next((a for a in allow if re.search(a, line)), None)
        if hit:
            allowed[hit] = allowed.get(hit, 0) + 1
            continue
        errors.append(line)
    for why, n in allowed.items():
        print("allowed %dx: %s" % (n, why))
    for e in errors:
        print("ERROR " + e[:600])
    return not errors

def cmd_eventedpleg(ro):
    """The kubelet's evented PLEG connected to GetContainerEvents without error."""
    text = get("http://127.0.0.1:%s/metrics" % ro).decode()
    vals = {}
    for line in text.splitlines():
        m = re.match(r'kubelet_evented_pleg_connection_(success|error)_count(?:\{\})? (\S+)$', line)
        if m:
            vals[m.group(1)] = float(m.group(2))
    print("evented PLEG connections: %d successful, %d errors" % (vals.get("success", 0), vals.get("error", 0)))
    return vals.get("success", 0) >= 1 and vals.get("error", 0) == 0

def cmd_jq(expr):
    """Evaluates a Python expression on `d`, the JSON on stdin."""
    d = json.load(sys.stdin)
    r = eval(expr)
    if isinstance(r, (list, tuple)):
        for x in r:
            print(x)
    elif r is not None:
        print(r)
    return True

if __name__ == "__main__":
    try:
        ok = globals()["cmd_" + sys.argv[1].replace("-", "_")](*sys.argv[2:])
    except Exception as e:
        print("%s: %s" % (type(e).__name__, e))
        ok = False
    sys.exit(0 if ok else 1)
PY
}

# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------
results=()
failed=0
gate_label=
pass() { results+=("PASS  [$gate_label] $*"); printf '  PASS %s\n' "$*"; }
fail() { results+=("FAIL  [$gate_label] $*"); printf '  FAIL %s\n' "$*" >&2; failed=1; }

# Polls "$@" every second until it succeeds or $1 seconds have passed; the
# last output is in $last.
last=
wait_for() { # seconds command...
  local limit=$1 start=$SECONDS
  shift
  while :; do
    if last=$("$@" 2>&1); then
      return 0
    fi
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 1
  done
}

chk() { python3 "$w/check.py" "$@"; }
crictl() { "$crictl_bin" --config "$w/crictl.yaml" "$@"; }

cri_filter='%7B%22label%22%3A%5B%22io.kubernetes.docker.type%22%5D%7D'
cri_containers() { # IDs of every CRI container (sandboxes included) in the Docker
  dapi GET "/containers/json?all=1&filters=$cri_filter" | python3 -c 'import json,sys; [print(c["Id"]) for c in json.load(sys.stdin)]'
}

# Everything one run started or changed, undone.
kubelet_pid=
shim_pid=
bg_pids=()
logs_dir_made=
var_lib_kubelet_made=
device_plugins_made=
teardown() {
  local pid id mp link
  for pid in "${bg_pids[@]}"; do
    stop_pid "$pid" helper
  done
  bg_pids=()
  stop_pid "$kubelet_pid" kubelet
  kubelet_pid=
  if [ -n "$shim_pid" ] && kill -0 "$shim_pid" 2>/dev/null && [ -x "$crictl_bin" ]; then
    timeout 120 "$crictl_bin" --config "$w/crictl.yaml" rmp -af >/dev/null 2>&1 ||
      printf 'warning: crictl rmp -af failed\n' >&2
  fi
  stop_pid "$shim_pid" dockershim
  shim_pid=
  for id in $(cri_containers 2>/dev/null); do
    dapi DELETE "/containers/$id?force=1&v=1" >/dev/null || printf 'warning: cannot remove container %s\n' "$id" >&2
  done
  # The kubelet's links to the pod logs of this run.
  for link in /var/log/containers/*; do
    [ -L "$link" ] || continue
    case "$(readlink "$link")" in "$w"/*) rm -f "$link" ;; esac
  done
  if [ -n "$logs_dir_made" ]; then
    rmdir /var/log/containers 2>/dev/null || true
  fi
  unmount_under "$w"
  remove_kubepods_cgroups || true
  # The device manager's socket has a fixed path (not under --root-dir).
  if [ -n "$var_lib_kubelet_made" ]; then
    rm -rf /var/lib/kubelet
  elif [ -n "$device_plugins_made" ]; then
    rm -rf /var/lib/kubelet/device-plugins
  fi
}

# Starts the kubelet on $w/kubelet.yaml, its log appended to $w/kubelet.log,
# and waits until it is healthy.
start_kubelet() {
  "$kubelet_bin" --config "$w/kubelet.yaml" --root-dir "$w/root" --cert-dir "$w/root/pki" \
    --hostname-override "$node" --v=2 >>"$w/kubelet.log" 2>&1 &
  kubelet_pid=$!
  if ! wait_for 60 curl -sf "http://127.0.0.1:$healthz_port/healthz"; then
    tail -30 "$w/kubelet.log"
    fail "the kubelet did not become healthy"
    return 1
  fi
}

# The kubelet's image GC removes an image no container uses, and keeps the
# images in use and the pinned pause image. The image GC manager frees space
# when its thresholds are passed, on a timer (at start, when it has no
# history and so removes nothing, then every 5 minutes), and when the
# eviction manager (every 10 s) sees the image or node filesystem under its
# threshold. So the kubelet is restarted over the running pods with
# thresholds that any use of the disk passes (image GC high 1%, low 0%;
# nodefs and imagefs available below 99%) and a minimum image age of 1 s: it
# frees every unused, unpinned image within seconds. (The pods are static,
# so the eviction manager does not evict them.)
check_image_gc() {
  local victim="dockershim-test/gc-victim:$RANDOM$RANDOM" victim_id
  # Busybox's rootfs with a file of its own: an image with an id of its own.
  local rootfs="$w/gc-victim"
  mkdir -p "$rootfs"
  echo "$victim" >"$rootfs/victim"
  victim_id=$(tar -C "$rootfs" -c . | curl -sS --fail --max-time 60 --unix-socket "$docker_sock" \
    -X POST -H 'Content-Type: application/x-tar' --data-binary @- \
    "http://docker/images/create?fromSrc=-&repo=${victim%:*}&tag=${victim##*:}" >/dev/null &&
    dapi GET "/images/$victim/json" | chk jq 'd["Id"]') || {
    fail "image GC: cannot import $victim"
    return
  }
  local restarted_at=$SECONDS
  stop_pid "$kubelet_pid" kubelet
  sed -i -e 's/^imageGCHighThresholdPercent: .*/imageGCHighThresholdPercent: 1/' \
    -e 's/^imageGCLowThresholdPercent: .*/imageGCLowThresholdPercent: 0/' \
    -e 's/^  \(nodefs\|imagefs\)\.available: .*/  \1.available: "99%"/' "$w/kubelet.yaml"
  # (0s would mean the default, 2 minutes.)
  echo "imageMinimumGCAge: 1s" >>"$w/kubelet.yaml"
  start_kubelet || return
  if wait_for 60 eval '! dapi GET "/images/$victim_id/json" >/dev/null 2>&1'; then
    pass "image GC removed the unused image $victim (${victim_id:0:19}) $((SECONDS - restarted_at))s after the kubelet restarted with thresholds the disk passes"
  else
    fail "image GC: $victim ($victim_id) still in Docker 60s after the kubelet restarted with thresholds the disk passes: $(grep -iE 'image garbage|Removing image|imageFs' "$w/kubelet.log" | tail -5)"
    return
  fi
  if grep -q "\"Removing image to free bytes\" imageID=\"$victim_id\"" "$w/kubelet.log"; then
    pass "image GC: the kubelet's log says it removed $victim to free bytes"
  else
    fail "image GC: the kubelet's log does not say it removed $victim_id: $(grep 'Removing image' "$w/kubelet.log" | tail -3)"
  fi
  if dapi GET /images/dockershim-test/busybox:latest/json >/dev/null; then
    pass "image GC kept dockershim-test/busybox:latest, which the pods' containers use"
  else
    fail "image GC removed dockershim-test/busybox:latest, which the pods' containers use"
  fi
  if [ -x "$crictl_bin" ]; then
    local pinned
    pinned=$(crictl images -o json | chk jq '[i["repoTags"] for i in d["images"] if i.get("pinned")]')
    if [ -n "$pinned" ]; then
      pass "image GC kept the pinned pause image ($pinned)"
    else
      fail "image GC: no pinned (pause) image left: $(crictl images 2>&1 | head -5)"
    fi
  fi
  local names=()
  for p in "${pods[@]}"; do
    [ "$p" = volumes ] || names+=("$p-$node")
  done
  if wait_for 60 chk running "$ro_port" crash "${names[@]}"; then
    pass "after the kubelet's restart, its pods run on"
  else
    printf '%s\n' "$last"
    fail "after the kubelet's restart, its pods are not all running"
  fi
}

# One run of the kubelet with the feature gates on (true) or off (false).
run_once() { # true|false
  local gates=$1
  gate_start=$SECONDS
  gate_label="EventedPLEG=$gates,PodAndContainerStatsFromCRI=$gates"
  say "kubelet $k8s_version with $gate_label"
  w="$work/gates-$gates"
  unmount_under "$w"
  rm -rf "$w"
  mkdir -p "$w/root" "$w/manifests" "$w/hostpath" "$w/pod-logs" "$w/shim"
  write_checker "$w/check.py"
  cat >"$w/crictl.yaml" <<EOF
runtime-endpoint: unix://$w/shim.sock
image-endpoint: unix://$w/shim.sock
timeout: 30
EOF
  [ -d /var/log/containers ] && logs_dir_made= || logs_dir_made=1
  [ -d /var/lib/kubelet ] && var_lib_kubelet_made= || var_lib_kubelet_made=1
  [ -d /var/lib/kubelet/device-plugins ] && device_plugins_made= || device_plugins_made=1
  cleanups+=("teardown")
  run_checks "$gates" || true
  # Which CRI calls the kubelet made, from the shim's own metrics
  # (docs/compatibility.md lists them).
  if curl -s "http://127.0.0.1:$shim_metrics_port/metrics" >"$w/shim-metrics.txt"; then
    say "CRI calls the kubelet made: $(grep -oE 'dockershim_grpc_requests_total\{method="[A-Za-z/]+' "$w/shim-metrics.txt" |
      sed 's/.*method="//' | sort -u | tr '\n' ' ')"
  fi
  say "checks done in $((SECONDS - gate_start))s; tearing down"
  teardown
  unset 'cleanups[${#cleanups[@]}-1]'
  say "run with $gate_label took $((SECONDS - gate_start))s"
}

run_checks() { # true|false
  local gates=$1

  # The shim, on a socket of its own.
  "$shim_bin" \
    --container-runtime-endpoint "unix://$w/shim.sock" \
    --docker-endpoint "unix://$docker_sock" \
    --cri-dockerd-root-directory "$w/shim" \
    --network-plugin docker \
    --pod-infra-container-image 127.0.0.1:9/none:0 \
    --pod-infra-pull-timeout 5 \
    --metrics-bind-addr "127.0.0.1:$shim_metrics_port" \
    >"$w/shim.log" 2>&1 &
  shim_pid=$!
  wait_for 30 test -S "$w/shim.sock" || { tail -20 "$w/shim.log"; fail "the shim did not start"; return 1; }

  # The kubelet, standalone.
  local driver
  driver=$(dapi GET /info | python3 -c 'import json,sys; print(json.load(sys.stdin)["CgroupDriver"])')
  cat >"$w/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$w/shim.sock
cgroupDriver: $driver
failCgroupV1: false
failSwapOn: false
staticPodPath: $w/manifests
fileCheckFrequency: 2s
podLogsDir: $w/pod-logs
volumePluginDir: $w/root/volume-plugins
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: $ro_port
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
containerLogMaxSize: 1Mi
containerLogMaxFiles: 3
containerLogMonitorInterval: 3s
evictionHard:
  memory.available: "0%"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
  imagefs.inodesFree: "0%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
makeIPTablesUtilChains: false
featureGates:
  EventedPLEG: $gates
  PodAndContainerStatsFromCRI: $gates
EOF
  local p
  for p in "${pods[@]}"; do
    sed "s#@HOSTPATH@#$w/hostpath#" "$manifests_src/$p.yaml" >"$w/manifests/$p.yaml"
  done
  local token="token-$RANDOM-$RANDOM"
  echo "$token" >"$w/hostpath/token"
  start_kubelet || return 1
  local started=$SECONDS

  # The restart counts of the crashing container, sampled from now on.
  python3 "$w/check.py" sample "$ro_port" "crasher-$node" crash "$w/restarts" 300 &
  bg_pids+=($!)

  # 1. Pods and containers run.
  local names=()
  for p in "${pods[@]}"; do names+=("$p-$node"); done
  if wait_for 120 chk running "$ro_port" crash "${names[@]}"; then
    pass "all pods Running, containers running (kubelet /pods) after $((SECONDS - started))s"
  else
    printf '%s\n' "$last"
    fail "pods not running after 120s (kubelet /pods)"
    return 1
  fi
  if [ -x "$crictl_bin" ]; then
    local want=$((${#pods[@]}))
    if wait_for 30 eval 'test "$(crictl pods --state ready -q | wc -l)" = '"$want"; then
      pass "crictl: $want sandboxes ready"
    else
      fail "crictl: sandboxes ready: $(crictl pods 2>&1)"
    fi
    local running
    running=$(crictl ps --state running -o json | chk jq '[c["metadata"]["name"] for c in d["containers"]]' | sort | tr '\n' ' ')
    if [ "$running" = "app log reader sidecar writer " ] || [ "$running" = "app crash log reader sidecar writer " ]; then
      pass "crictl: containers running: $running"
    else
      fail "crictl: containers running: '$running'"
    fi
  fi

  # 2. Probes and readiness.
  if wait_for 30 chk ready "$ro_port" "probes-$node"; then
    pass "probes pod Ready, both containers ready"
  else
    printf '%s\n' "$last"
    fail "probes pod not Ready after 30s"
  fi
  if wait_for 30 chk probes "$ro_port" "probes-$node"; then
    pass "exec liveness and readiness probes succeed in both containers: $(echo "$last" | awk '{printf "%s %s %s; ", $1, $2, $3}')"
  else
    printf '%s\n' "$last"
    fail "probes did not all succeed within 30s (/metrics/probes)"
  fi

  # 3. emptyDir and hostPath.
  if wait_for 30 test -s "$w/hostpath/token-seen" -a -s "$w/hostpath/from-emptydir"; then
    if [ "$(cat "$w/hostpath/from-emptydir")" = from-writer ] && [ "$(cat "$w/hostpath/token-seen")" = "$token" ]; then
      pass "emptyDir shared by two containers, hostPath read and written"
    else
      fail "volumes: from-emptydir='$(cat "$w/hostpath/from-emptydir")' token-seen='$(cat "$w/hostpath/token-seen")'"
    fi
  else
    fail "volumes: the reader wrote nothing to the hostPath in 30s"
  fi

  # 4. Remove the volumes pod's manifest (checked in 9).
  local volumes_uid
  volumes_uid=$(chk poduid "$ro_port" "volumes-$node" || true)
  rm -f "$w/manifests/volumes.yaml"
  local removed_at=$SECONDS

  # 5. Links in /var/log/containers.
  if wait_for 10 chk links "$ro_port" "$w/pod-logs"; then
    pass "every container has its /var/log/containers link ($(echo "$last" | tail -1))"
  else
    printf '%s\n' "$last"
    fail "/var/log/containers links missing"
  fi

  # 6. /stats/summary: the pod's CPU covers its containers'.
  if wait_for 20 chk stats "$ro_port" "probes-$node" "logger-$node"; then
    pass "/stats/summary: pod CPU >= sum of its containers' ($(echo "$last" | tr '\n' ';'))"
  else
    printf '%s\n' "$last"
    fail "/stats/summary: pod CPU below the sum of its containers'"
  fi

  # 7. Log rotation.
  local logdir
  logdir=$(find "$w/pod-logs" -mindepth 2 -maxdepth 2 -path "*/default_logger-${node}_*/log" | head -1)
  if [ -z "$logdir" ]; then
    fail "no pod log directory for the logger in $w/pod-logs"
  elif wait_for 60 eval 'ls "$logdir" | grep -q "\.log\.[0-9]"'; then
    sleep 1
    if wait_for 5 chk logfiles "$logdir"; then
      pass "log rotated; rotated + current files hold every line once, in order ($(echo "$last" | tail -1))"
    else
      printf '%s\n' "$last"
      fail "rotated log files: lines lost, doubled or unreadable"
    fi
    local cur s0 s1 lcid
    cur=$logdir/0.log
    s0=$(chk firstseq "$cur")
    read -r _ lcid < <(chk restartcount "$ro_port" "logger-$node" log)
    if [ -x "$crictl_bin" ]; then
      timeout 60 "$crictl_bin" --config "$w/crictl.yaml" logs -f "$lcid" >"$w/follow.out" 2>"$w/follow.err" &
    else
      timeout 60 curl -skN "https://127.0.0.1:$kubelet_port/containerLogs/default/logger-$node/log?follow=true" >"$w/follow.out" 2>"$w/follow.err" &
    fi
    local follow_pid=$!
    bg_pids+=("$follow_pid")
    # Wait for a rotation after the read began, then a few more seconds.
    if wait_for 40 eval 's1=$(chk firstseq "$cur") && [ "$s1" -gt "$s0" ] && echo "$s1"'; then
      s1=$last
      sleep 4
      kill "$follow_pid" 2>/dev/null || true
      wait "$follow_pid" 2>/dev/null || true
      local reader="crictl logs -f"
      [ -x "$crictl_bin" ] || reader="kubelet containerLogs?follow"
      if chk stream "$w/follow.out" "$s1" >"$w/follow.check"; then
        pass "$reader read across a rotation: $(cat "$w/follow.check")"
      else
        fail "$reader did not read across a rotation: $(cat "$w/follow.check") $(head -c 300 "$w/follow.err")"
      fi
    else
      fail "no rotation within 40s while following (first line stays $s0)"
    fi
  else
    fail "no rotated log file in $logdir after 60s: $(ls -la "$logdir")"
  fi

  # 8. Restarts with back-off.
  if wait_for $((started + 150 - SECONDS)) chk restarts "$w/restarts" 3; then
    pass "crasher restarted with back-off: $(echo "$last" | tr '\n' ';')"
  else
    printf '%s\n' "$last"
    fail "crasher: restarts not seen with back-off within 150s"
  fi
  if [ -x "$crictl_bin" ]; then
    local rc ccid attempt
    read -r rc ccid < <(chk restartcount "$ro_port" "crasher-$node" crash)
    attempt=$(crictl inspect "$ccid" 2>/dev/null | chk jq 'd["status"]["metadata"]["attempt"]' || echo "?")
    if [ "$attempt" = "$rc" ]; then
      pass "crictl: attempt of the current crasher container = restart count ($rc)"
    else
      fail "crictl: attempt of the current crasher container is $attempt, restart count $rc"
    fi
  fi

  # 9. The removed pod is stopped and removed.
  if wait_for $((removed_at + 60 - SECONDS)) chk gone "$ro_port" "volumes-$node"; then
    pass "volumes pod gone from /pods (checked $((SECONDS - removed_at))s after its manifest was removed)"
  else
    fail "volumes pod still in /pods 60s after its manifest was removed"
  fi
  local gone_check
  if [ -x "$crictl_bin" ]; then
    gone_check='test -z "$(crictl pods --label io.kubernetes.pod.uid=$volumes_uid -q)" && test -z "$(crictl ps -a --label io.kubernetes.pod.uid=$volumes_uid -q)"'
  else
    gone_check='test -z "$(dapi GET "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.kubernetes.pod.uid%3D$volumes_uid%22%5D%7D" | chk jq "[c[\"Id\"] for c in d]")"'
  fi
  if [ -z "$volumes_uid" ]; then
    fail "volumes pod had no UID in /pods"
  elif wait_for $((removed_at + 150 - SECONDS)) eval "$gone_check"; then
    pass "volumes pod's sandbox and containers removed from the runtime (within $((SECONDS - removed_at))s of its manifest's removal; the kubelet's container GC runs each minute)"
  else
    fail "volumes pod's sandbox or containers still in the runtime 150s after its manifest was removed: $( [ -x "$crictl_bin" ] && crictl pods --label "io.kubernetes.pod.uid=$volumes_uid"; [ -x "$crictl_bin" ] && crictl ps -a --label "io.kubernetes.pod.uid=$volumes_uid")"
  fi

  # 10. Links again, now that the crasher restarted a few times.
  if wait_for 10 chk links "$ro_port" "$w/pod-logs"; then
    pass "every container has its /var/log/containers link after restarts ($(echo "$last" | tail -1))"
  else
    printf '%s\n' "$last"
    fail "/var/log/containers links missing after restarts"
  fi

  # 11. The probes pod never restarted (its liveness probes never failed 3 times).
  if chk restarts-zero "$ro_port" "probes-$node"; then
    pass "probes pod: no restart"
  else
    fail "probes pod: containers restarted"
  fi

  # 12. With EventedPLEG, the kubelet's event stream from the shim works.
  if [ "$gates" = true ]; then
    if chk eventedpleg "$ro_port" >"$w/evented.check"; then
      pass "EventedPLEG: $(cat "$w/evented.check")"
    else
      fail "EventedPLEG: $(cat "$w/evented.check")"
    fi
  fi

  # 13. Image garbage collection, with the kubelet's stats from the CRI (its
  # cAdvisor path knows the image filesystem of containerd and CRI-O only).
  if [ "$gates" = true ]; then
    check_image_gc
  fi

  # 14. No CRI error in the kubelet's log.
  if chk crierrors "$w/kubelet.log" "$w/shim.log" "${cri_error_allow[@]}" >"$w/crierrors.check"; then
    pass "no CRI error in the kubelet's log$(sed -n 's/^allowed/;/p' "$w/crierrors.check" | tr -d '\n')"
  else
    grep '^ERROR' "$w/crierrors.check" | head -20 | cut -c1-400 >&2
    fail "$(grep -c '^ERROR' "$w/crierrors.check") CRI errors in the kubelet's log ($w/kubelet.log)"
  fi

  if ! kill -0 "$kubelet_pid" 2>/dev/null; then
    fail "the kubelet exited during the run: $(tail -5 "$w/kubelet.log")"
  fi
  if ! kill -0 "$shim_pid" 2>/dev/null; then
    fail "the shim exited during the run: $(tail -5 "$w/shim.log")"
  fi
}

do_run() {
  docker_sock=${1:?usage: integration/kubelet.sh run <docker-socket> [on|off|both]}
  local which=${2:-both}
  case "$which" in on | off | both) ;; *) usage ;; esac
  [ "$(id -u)" = 0 ] || die "run as root"
  [ -S "$docker_sock" ] || die "no Docker socket at $docker_sock"
  case "$(readlink -f "$docker_sock")" in
    /var/run/docker.sock | /run/docker.sock)
      die "refusing the system's Docker ($docker_sock): the kubelet kills every CRI pod it did not make; use a private engine (integration/dockerd.sh)" ;;
  esac
  [ -x "$kubelet_bin" ] || die "no kubelet at $kubelet_bin: run integration/kubelet.sh build"
  [ -x "$shim_bin" ] || die "no shim binary at $shim_bin (cargo build, or DOCKERSHIM_BIN)"
  command -v curl >/dev/null || die "curl is needed"
  command -v python3 >/dev/null || die "python3 is needed"
  [ -x "$crictl_bin" ] || say "no crictl at $crictl_bin: checking through the kubelet and Docker only"
  dapi GET /_ping >/dev/null || die "Docker does not answer on $docker_sock"
  dapi GET /images/dockershim-test/busybox:latest/json >/dev/null 2>&1 ||
    die "image dockershim-test/busybox:latest is not in that Docker (integration/test.sh imports it)"
  [ -z "$(cri_containers)" ] ||
    die "the Docker at $docker_sock holds CRI containers already; the kubelet would kill them: use a Docker of its own"
  local port
  for port in "$kubelet_port" "$ro_port" "$healthz_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port on 127.0.0.1 is taken (DOCKERSHIM_KUBELET_PORTS)"
    fi
  done
  local root
  while read -r root; do
    if [ -d "$root/kubepods" ]; then
      find "$root/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$root/kubepods" ] && die "$root/kubepods exists and is in use: is another kubelet running?"
    fi
  done < <(cgroup_roots)

  mkdir -p "$work"
  record_sysctls
  local start=$SECONDS
  case "$which" in
    both) run_once true; run_once false ;;
    on) run_once true ;;
    off) run_once false ;;
  esac
  restore_sysctls
  printf '\nkubelet e2e results (%ss):\n' "$((SECONDS - start))"
  printf '  %s\n' "${results[@]}"
  [ "$failed" = 0 ] || die "kubelet e2e: some checks failed (logs in $work)"
  say "kubelet e2e: all checks passed"
}

case "${1:-}" in
  build) do_build ;;
  run) shift; do_run "$@" ;;
  *) usage ;;
esac
