//! `dockershim-bench node`: what each runtime costs a node full of pods
//! under a real kubelet. For every EventedPLEG setting, pod count and
//! runtime (dockershim and cri-dockerd on the benchmark's Docker engine, a
//! private containerd 2.x), one case: a fresh runtime and a fresh
//! standalone kubelet v1.36.3 on it; N static pod manifests appear at once
//! and the time until the kubelet reports all N Running is taken; then, in
//! steady state, the CPU and memory of the runtime, the engine's daemons,
//! the container shims and the kubelet, and the kubelet's own histograms of
//! its CRI calls and relists; then every manifest is removed, the time
//! until the pods are gone is taken, and what they left is counted.
//!
//! Each pod is one `sleep` container with an exec liveness and an exec
//! readiness probe every 10 s. The figures are printed per case and then
//! side by side with their ratio to containerd's from the same run, with
//! the Docker floor of each pod count ([`floor`]) beside them.
//!
//! It runs on a private Docker engine (`DOCKER_HOST`, see
//! `integration/dockerd.sh`) where nothing else runs CRI pods, since the
//! kubelet removes every pod of its runtime that it did not make.

mod floor;
mod kubelet;
mod metrics;
mod runtime;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dockershim::api::*;
use dockershim::docker::client::BollardDocker;
use dockershim::image::pause::PauseImage;

use crate::{IMAGE, procs};
use kubelet::{HostGuard, Kubelet};
use metrics::Histogram;
use runtime::{Binaries, Engine, Kind, Runtime};

/// What a run measures; see the command's usage.
pub struct Options {
    pub pods: Vec<u64>,
    pub runtimes: Vec<Kind>,
    pub evented: Vec<bool>,
    pub steady: Duration,
    /// Between the last pod Running and the steady-state window: the
    /// probes' first rounds and the kubelet's first relists after the burst.
    pub settle: Duration,
    pub kubelet: PathBuf,
    /// Whether to measure the Docker floor ([`floor`]) per pod count.
    pub floor: bool,
}

impl Options {
    pub fn parse(
        pods: Vec<u64>,
        runtimes: &str,
        evented: &str,
        steady_minutes: f64,
        settle_seconds: u64,
        kubelet: Option<String>,
        floor: &str,
    ) -> Result<Self> {
        let runtimes = match runtimes {
            "none" => Vec::new(),
            list => list
                .split(',')
                .map(|r| Kind::parse(r.trim()))
                .collect::<Result<Vec<_>>>()?,
        };
        let evented = evented
            .split(',')
            .map(|e| match e.trim() {
                "on" => Ok(true),
                "off" => Ok(false),
                other => bail!("--evented-pleg takes on and off, not {other}"),
            })
            .collect::<Result<Vec<_>>>()?;
        if pods.is_empty() || pods.iter().any(|&n| n == 0 || n > 300) {
            bail!("--pods takes counts from 1 to 300");
        }
        if !(0.1..=60.0).contains(&steady_minutes) {
            bail!("--steady-minutes takes 0.1 to 60");
        }
        Ok(Self {
            pods,
            runtimes,
            evented,
            steady: Duration::from_secs_f64(steady_minutes * 60.0),
            settle: Duration::from_secs(settle_seconds),
            kubelet: kubelet.map_or_else(|| PathBuf::from(kubelet::DEFAULT_BINARY), PathBuf::from),
            floor: match floor {
                "on" => true,
                "off" => false,
                other => bail!("--docker-floor takes on or off, not {other}"),
            },
        })
        .and_then(|opts: Self| {
            if opts.runtimes.is_empty() && !opts.floor {
                bail!(
                    "--runtimes none measures only the Docker floor: not with --docker-floor off"
                );
            }
            Ok(opts)
        })
    }
}

/// The whole run: checks, then every case; a case that fails does not stop
/// the others, the run then fails at the end.
pub async fn node(opts: Options) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("run as root: the kubelet needs it");
    }
    let endpoint = std::env::var("DOCKER_HOST").context(
        "set DOCKER_HOST to a private engine (eval \"$(integration/dockerd.sh env 28 <dir>)\")",
    )?;
    let docker_socket = PathBuf::from(
        endpoint
            .strip_prefix("unix://")
            .context("DOCKER_HOST must be unix://<socket>")?,
    );
    if matches!(
        docker_socket
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(Path::to_str),
        Some("/var/run/docker.sock" | "/run/docker.sock")
    ) {
        bail!("refusing the system's Docker: the kubelet kills every CRI pod it did not make");
    }
    if !opts.kubelet.exists() {
        bail!(
            "no kubelet at {}: integration/kubelet.sh build",
            opts.kubelet.display()
        );
    }
    let bins = Binaries::find(&opts.runtimes)?;
    let engine = Engine::find(&docker_socket)?;
    if runtime::docker_cri_containers()? > 0 {
        bail!("the Docker engine holds CRI containers already: use one of the benchmark's own");
    }
    ensure_test_image()?;
    let docker = BollardDocker::connect(&endpoint, Default::default()).await?;
    // The sandbox image of all three: the shim's built-in pause image, made
    // in Docker here (no registry) and copied into containerd.
    let pause = PauseImage::new(PauseImage::builtin(), Duration::from_secs(5))
        .ensure(&docker)
        .await
        .context("make the pause image")?;
    let host = HostGuard::record()?;
    println!(
        "node: kubelet {}, pods {:?}, runtimes {:?}, EventedPLEG {:?}, steady {} s, settle {} s; {}",
        opts.kubelet.display(),
        opts.pods,
        opts.runtimes.iter().map(|k| k.name()).collect::<Vec<_>>(),
        opts.evented,
        opts.steady.as_secs(),
        opts.settle.as_secs(),
        crate::peer::machine(&crate::peer::docker().await?, &version_of(&bins.containerd)).await,
    );
    println!(
        "kubelet {}; cri-dockerd {}; runc of every runtime: {}",
        version_of(&opts.kubelet),
        version_of(&bins.cri_dockerd),
        engine.runc.display()
    );
    let mut results = Vec::new();
    let mut floors: HashMap<u64, floor::Floor> = HashMap::new();
    let mut failed = Vec::new();
    for &evented in &opts.evented {
        for &n in &opts.pods {
            for &kind in &opts.runtimes {
                let label = format!(
                    "{} N={n} EventedPLEG={}",
                    kind.name(),
                    if evented { "on" } else { "off" }
                );
                println!("\n== {label}");
                match run_case(&opts, &bins, &engine, &pause, kind, n, evented).await {
                    Ok(result) => {
                        result.print();
                        results.push(result);
                    }
                    Err(err) => {
                        println!("FAILED: {err:#}");
                        failed.push(format!("{label}: {err:#}"));
                    }
                }
            }
            if opts.floor && !floors.contains_key(&n) {
                println!("\n== Docker floor N={n}");
                match floor::docker_floor(&engine, n, &pause, opts.steady).await {
                    Ok(f) => {
                        println!(
                            "{n} pods' pause and app containers created and started, all pods at once, in {:.1} s; {} execs ({} failed, {} skipped), p50 {:.1} ms, p99 {:.1} ms; dockerd + containerd {:.2} CPU s/min, shims {:.2}",
                            f.start,
                            f.calls,
                            f.failed,
                            f.skipped,
                            f.p50_ms,
                            f.p99_ms,
                            f.engine_cpu,
                            f.shims_cpu
                        );
                        floors.insert(n, f);
                    }
                    Err(err) => {
                        println!("FAILED: {err:#}");
                        failed.push(format!("Docker floor N={n}: {err:#}"));
                    }
                }
            }
        }
    }
    drop(host);
    summary(&results, &floors);
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("cases failed:\n  {}", failed.join("\n  "))
    }
}

/// One runtime, one pod count, one EventedPLEG setting: everything started
/// fresh in a directory of its own and removed again, whatever happens.
async fn run_case(
    opts: &Options,
    bins: &Binaries,
    engine: &Engine,
    pause: &str,
    kind: Kind,
    n: u64,
    evented: bool,
) -> Result<CaseResult> {
    // Unix socket paths are short: a short directory under /tmp.
    let temp = tempfile::Builder::new()
        .prefix("dsb-node.")
        .tempdir_in("/tmp")?;
    let dir = temp.path().to_path_buf();
    let nsfs_before = runtime::nsfs_mounts();
    let mut rt = Runtime::start(kind, bins, engine, &dir.join("rt"), pause, &[IMAGE]).await?;
    let outcome = async {
        let mut kubelet =
            Kubelet::start(&opts.kubelet, &dir.join("kubelet"), rt.socket(), evented).await?;
        let result = measure(opts, &rt, &mut kubelet, n, evented, nsfs_before).await;
        kubelet.stop();
        result
    }
    .await;
    // Whatever the kubelet left (on a failure: everything), so the engine is
    // clean for the next case; a measured case has nothing left by now.
    let forced = rt.force_clean().await;
    rt.stop();
    let mut result = outcome?;
    result.forced = forced.context("remove what the pods left")?;
    // The next case's kubelet would remove them; say so instead.
    if kind.on_docker() && runtime::docker_cri_containers()? > 0 {
        bail!("CRI containers left in Docker after the case");
    }
    Ok(result)
}

/// Burst start, steady state and teardown of one case.
async fn measure(
    opts: &Options,
    rt: &Runtime,
    kubelet: &mut Kubelet,
    n: u64,
    evented: bool,
    nsfs_before: usize,
) -> Result<CaseResult> {
    let mut result = CaseResult::new(rt.kind, n, evented);

    // Burst: N manifests written beside the static pod directory, then
    // renamed into it one after the other (a rename is atomic, so the
    // kubelet never reads half a file).
    let names: Vec<String> = (0..n).map(|i| format!("dsb{i}")).collect();
    for name in &names {
        std::fs::write(
            kubelet.staging().join(format!("{name}.yaml")),
            manifest(name),
        )?;
    }
    let m0 = kubelet.metrics()?;
    let t0 = Instant::now();
    for name in &names {
        let file = format!("{name}.yaml");
        std::fs::rename(
            kubelet.staging().join(&file),
            kubelet.manifests().join(&file),
        )?;
    }
    let mut first_running: HashMap<String, f64> = HashMap::new();
    let limit = Duration::from_secs(120 + 3 * n);
    loop {
        for pod in kubelet.pods()? {
            if pod.running {
                first_running
                    .entry(pod.name)
                    .or_insert_with(|| t0.elapsed().as_secs_f64());
            }
        }
        if first_running.len() as u64 >= n {
            break;
        }
        if t0.elapsed() > limit || !kubelet.alive() {
            bail!(
                "{} of {n} pods Running after {:.0} s (kubelet alive: {})",
                first_running.len(),
                t0.elapsed().as_secs_f64(),
                kubelet.alive()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    result.burst = t0.elapsed().as_secs_f64();
    let mut starts: Vec<f64> = first_running.values().copied().collect();
    starts.sort_by(f64::total_cmp);
    result.start_p50 = percentile(&starts, 0.5);
    result.start_p99 = percentile(&starts, 0.99);
    let m1 = kubelet.metrics()?;
    let start_hist = hist1(&m1, "kubelet_pod_start_duration_seconds")
        .since(&hist1(&m0, "kubelet_pod_start_duration_seconds"));
    result.start_hist = (start_hist.quantile(0.5), start_hist.quantile(0.99));
    result.burst_ops = ops(&m1, &m0);
    println!(
        "burst: {n} pods Running in {:.1} s (p50 {:.1} s, p99 {:.1} s per pod)",
        result.burst, result.start_p50, result.start_p99
    );

    // Steady state.
    tokio::time::sleep(opts.settle).await;
    let groups = |rt: &Runtime, kubelet: &Kubelet| -> [Vec<u32>; 4] {
        [
            vec![rt.pid()],
            rt.engine_pids(),
            rt.shims(),
            vec![kubelet.pid()],
        ]
    };
    let before_pids = groups(rt, kubelet);
    let before: Vec<_> = before_pids.iter().map(|p| procs::snapshot(p)).collect();
    let m2 = kubelet.metrics()?;
    let window = Instant::now();
    println!(
        "steady state: {} s from now (runtime pid {}, kubelet pid {})",
        opts.steady.as_secs(),
        rt.pid(),
        kubelet.pid()
    );
    tokio::time::sleep(opts.steady).await;
    let after_pids = groups(rt, kubelet);
    let after: Vec<_> = after_pids.iter().map(|p| procs::snapshot(p)).collect();
    let minutes = window.elapsed().as_secs_f64() / 60.0;
    let m3 = kubelet.metrics()?;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        result.cpu[i] = procs::spent(b, a).as_secs_f64() / minutes;
        result.rss[i] = after_pids[i]
            .iter()
            .filter_map(|&p| procs::rss_kib(p).ok())
            .sum();
    }
    result.steady_ops = ops(&m3, &m2);
    result.relist = hist1(&m3, "kubelet_pleg_relist_duration_seconds")
        .since(&hist1(&m2, "kubelet_pleg_relist_duration_seconds"));
    result.evented_errors =
        metrics::scalar(&m3, "kubelet_evented_pleg_connection_error_count").unwrap_or(0.0);
    let pods = kubelet.pods()?;
    result.running_after = pods.iter().filter(|p| p.running).count() as u64;
    result.restarts = pods.iter().map(|p| p.restarts).sum();

    // Teardown: every manifest removed at once; the pods are stopped (no
    // running container, no ready sandbox), then removed from the runtime
    // (the kubelet's container GC removes a deleted pod's sandbox, once a
    // minute), then nothing at all is left.
    let t1 = Instant::now();
    for name in &names {
        std::fs::remove_file(kubelet.manifests().join(format!("{name}.yaml")))?;
    }
    let limit = Duration::from_secs(200 + n);
    let mut rtc = rt.client().await?;
    let clean = loop {
        let sandboxes = rtc
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items;
        let containers = rtc
            .list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
        let ready = sandboxes
            .iter()
            .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
            .count();
        let running = containers
            .iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32)
            .count();
        if ready == 0 && running == 0 && result.stopped.is_none() {
            result.stopped = Some(t1.elapsed().as_secs_f64());
        }
        if sandboxes.is_empty() && containers.is_empty() && result.removed.is_none() {
            result.removed = Some(t1.elapsed().as_secs_f64());
        }
        if result.removed.is_some() {
            let left = leftovers(rt, kubelet, nsfs_before).await?;
            if left.iter().all(|(_, c)| *c == 0) {
                result.clean = Some(t1.elapsed().as_secs_f64());
                break left;
            }
        }
        if t1.elapsed() > limit || !kubelet.alive() {
            break leftovers(rt, kubelet, nsfs_before).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    result.leftovers = clean;
    Ok(result)
}

/// The runtime's leftovers and the kubelet's (pod cgroups, pod and pod-log
/// directories, log links).
async fn leftovers(
    rt: &Runtime,
    kubelet: &Kubelet,
    nsfs_before: usize,
) -> Result<Vec<(&'static str, usize)>> {
    let mut all = rt.leftovers(nsfs_before).await?;
    all.push(("pod cgroups", kubelet::pod_cgroups()));
    all.push(("kubelet pod dirs", entries(&kubelet.pod_dirs())));
    all.push(("pod log dirs", entries(&kubelet.pod_logs())));
    all.push(("/var/log/containers links", kubelet.log_links()));
    Ok(all)
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A pod: one `sleep` (behind a shell that exits on SIGTERM, so the stop
/// does not wait out the grace period) with exec liveness and readiness
/// probes every 10 s.
fn manifest(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: sleep
    image: {IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, 'trap "exit 0" TERM; sleep 1000000 & wait']
    livenessProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 10
      timeoutSeconds: 5
      failureThreshold: 3
    readinessProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 10
      timeoutSeconds: 5
"#
    )
}

/// Imports the test image from the host's static busybox when the engine
/// lacks it (as `integration/test.sh` does).
fn ensure_test_image() -> Result<()> {
    let present = std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("run docker")?;
    if present.success() {
        return Ok(());
    }
    let status = std::process::Command::new("sh")
        .args([
            "-ec",
            r#"r=$(mktemp -d); trap 'rm -rf "$r"' EXIT; mkdir -p "$r/bin" "$r/tmp"
cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
tar -C "$r" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$1" >/dev/null"#,
            "sh",
            IMAGE,
        ])
        .status()
        .context("import the test image")?;
    if !status.success() {
        bail!("cannot import {IMAGE} from /bin/busybox (apt-get install busybox-static)");
    }
    Ok(())
}

/// What `<binary> --version` prints (first line), or `?`.
fn version_of(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("?")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".to_string())
}

/// The single series of a histogram without labels.
fn hist1(text: &str, name: &str) -> Histogram {
    metrics::histograms(text, name, "operation_type")
        .into_values()
        .fold(Histogram::default(), |mut acc, h| {
            // Without the label there is one series; added up in case the
            // kubelet ever splits it.
            if acc.buckets.is_empty() {
                acc.buckets = h.buckets;
            } else {
                for (b, (_, c)) in acc.buckets.iter_mut().zip(h.buckets) {
                    b.1 += c;
                }
            }
            acc.sum += h.sum;
            acc.count += h.count;
            acc
        })
}

/// The kubelet's CRI operations between two scrapes, by operation.
fn ops(later: &str, earlier: &str) -> BTreeMap<String, Histogram> {
    const NAME: &str = "kubelet_runtime_operations_duration_seconds";
    let before = metrics::histograms(earlier, NAME, "operation_type");
    metrics::histograms(later, NAME, "operation_type")
        .into_iter()
        .map(|(op, h)| {
            let since = h.since(before.get(&op).unwrap_or(&Histogram::default()));
            (op, since)
        })
        .filter(|(_, h)| h.count > 0.0)
        .collect()
}

/// The `q` percentile of sorted values (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The process groups a case charges, in this order.
const GROUPS: [&str; 4] = [
    "runtime",
    "engine (dockerd + its containerd)",
    "container shims",
    "kubelet",
];

/// Everything one case measured.
struct CaseResult {
    kind: Kind,
    n: u64,
    evented: bool,
    burst: f64,
    start_p50: f64,
    start_p99: f64,
    start_hist: (Option<f64>, Option<f64>),
    /// CPU seconds per minute of each of [`GROUPS`] in steady state.
    cpu: [f64; 4],
    /// Resident memory of each of [`GROUPS`] at the end of it, KiB.
    rss: [u64; 4],
    burst_ops: BTreeMap<String, Histogram>,
    steady_ops: BTreeMap<String, Histogram>,
    relist: Histogram,
    evented_errors: f64,
    running_after: u64,
    restarts: u64,
    stopped: Option<f64>,
    removed: Option<f64>,
    clean: Option<f64>,
    leftovers: Vec<(&'static str, usize)>,
    /// Sandboxes and containers the bench had to remove itself.
    forced: usize,
}

impl CaseResult {
    fn new(kind: Kind, n: u64, evented: bool) -> Self {
        Self {
            kind,
            n,
            evented,
            burst: 0.0,
            start_p50: 0.0,
            start_p99: 0.0,
            start_hist: (None, None),
            cpu: [0.0; 4],
            rss: [0; 4],
            burst_ops: BTreeMap::new(),
            steady_ops: BTreeMap::new(),
            relist: Histogram::default(),
            evented_errors: 0.0,
            running_after: 0,
            restarts: 0,
            stopped: None,
            removed: None,
            clean: None,
            leftovers: Vec::new(),
            forced: 0,
        }
    }

    fn stack_cpu(&self) -> f64 {
        self.cpu[0] + self.cpu[1] + self.cpu[2]
    }

    fn stack_rss(&self) -> u64 {
        self.rss[0] + self.rss[1] + self.rss[2]
    }

    fn left(&self) -> String {
        let left: Vec<String> = self
            .leftovers
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|(what, c)| format!("{c} {what}"))
            .collect();
        if left.is_empty() && self.forced == 0 && !self.leftovers.is_empty() {
            "nothing".to_string()
        } else if self.leftovers.is_empty() {
            "not counted".to_string()
        } else {
            let mut all = left.join(", ");
            if self.forced > 0 {
                all.push_str(&format!("; bench removed {}", self.forced));
            }
            all
        }
    }

    fn print(&self) {
        println!(
            "pod start (first seen Running, 0.25 s polling): p50 {:.1} s, p99 {:.1} s; kubelet_pod_start_duration_seconds p50 {} p99 {}",
            self.start_p50,
            self.start_p99,
            secs(self.start_hist.0),
            secs(self.start_hist.1)
        );
        for (i, group) in GROUPS.iter().enumerate() {
            println!(
                "  {group:<36} {:>7.2} CPU s/min  {:>8.1} MiB",
                self.cpu[i],
                self.rss[i] as f64 / 1024.0
            );
        }
        println!(
            "  after the window: {} of {} pods Running, {} restarts{}",
            self.running_after,
            self.n,
            self.restarts,
            if self.evented {
                format!(", evented PLEG connection errors {}", self.evented_errors)
            } else {
                String::new()
            }
        );
        println!("  kubelet's CRI operations (count, mean, p50, p99 ms), burst | steady:");
        let all: std::collections::BTreeSet<&String> = self
            .burst_ops
            .keys()
            .chain(self.steady_ops.keys())
            .collect();
        for op in all {
            println!(
                "    {op:<28} {} | {}",
                op_cell(self.burst_ops.get(op)),
                op_cell(self.steady_ops.get(op))
            );
        }
        println!("  PLEG relist (steady): {}", op_cell(Some(&self.relist)));
        println!(
            "teardown: all stopped in {} s, removed from the runtime in {} s, nothing left in {} s; left: {}",
            secs(self.stopped),
            secs(self.removed),
            secs(self.clean),
            self.left()
        );
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn op_cell(h: Option<&Histogram>) -> String {
    match h {
        Some(h) if h.count > 0.0 => format!(
            "{:>6} {:>7.2} {:>7.2} {:>7.2}",
            h.count,
            h.mean().unwrap_or(f64::NAN) * 1e3,
            h.quantile(0.5).unwrap_or(f64::NAN) * 1e3,
            h.quantile(0.99).unwrap_or(f64::NAN) * 1e3
        ),
        _ => format!("{:>30}", "-"),
    }
}

/// The cases side by side, per EventedPLEG setting and pod count, with
/// each runtime's figure over containerd's.
fn summary(results: &[CaseResult], floors: &HashMap<u64, floor::Floor>) {
    let mut keys: Vec<(bool, u64)> = results.iter().map(|r| (r.evented, r.n)).collect();
    keys.dedup();
    for (evented, n) in keys {
        let row: Vec<&CaseResult> = results
            .iter()
            .filter(|r| r.evented == evented && r.n == n)
            .collect();
        let base = row.iter().find(|r| r.kind == Kind::Containerd);
        println!(
            "\n## N = {n}, EventedPLEG {} (ratio: the figure over containerd's)",
            if evented { "on" } else { "off" }
        );
        let mut header = format!("{:<44}", "figure");
        for r in &row {
            header.push_str(&format!(" {:>22}", r.kind.name()));
        }
        println!("{header}");
        let line = |name: &str, f: &dyn Fn(&CaseResult) -> Option<f64>, digits: usize| {
            let mut text = format!("{name:<44}");
            for r in &row {
                let v = f(r);
                let ratio = match (v, base.and_then(|b| f(b))) {
                    (Some(v), Some(b)) if b > 0.0 => format!(" ({:.2}x)", v / b),
                    _ => String::new(),
                };
                let cell = v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}{ratio}"));
                text.push_str(&format!(" {cell:>22}"));
            }
            println!("{text}");
        };
        line("burst start, s", &|r| Some(r.burst), 1);
        line("pod start p50, s", &|r| Some(r.start_p50), 1);
        line("pod start p99, s", &|r| Some(r.start_p99), 1);
        line("runtime process CPU s/min", &|r| Some(r.cpu[0]), 2);
        line(
            "dockerd + Docker's containerd CPU s/min",
            &|r| Some(r.cpu[1]),
            2,
        );
        line("container shims CPU s/min", &|r| Some(r.cpu[2]), 2);
        line(
            "runtime + engine CPU s/min",
            &|r| Some(r.cpu[0] + r.cpu[1]),
            2,
        );
        line(
            "runtime + engine + shims CPU s/min",
            &|r| Some(r.stack_cpu()),
            2,
        );
        line("kubelet CPU s/min", &|r| Some(r.cpu[3]), 2);
        line(
            "runtime process RSS MiB",
            &|r| Some(r.rss[0] as f64 / 1024.0),
            1,
        );
        line(
            "runtime + engine + shims RSS MiB",
            &|r| Some(r.stack_rss() as f64 / 1024.0),
            1,
        );
        line("kubelet RSS MiB", &|r| Some(r.rss[3] as f64 / 1024.0), 1);
        let mut ops: Vec<&String> = row.iter().flat_map(|r| r.steady_ops.keys()).collect();
        ops.sort();
        ops.dedup();
        for op in ops {
            line(
                &format!("steady {op} p99 ms"),
                &|r| {
                    r.steady_ops
                        .get(op)
                        .and_then(|h| h.quantile(0.99))
                        .map(|v| v * 1e3)
                },
                2,
            );
        }
        let mut ops: Vec<&String> = row.iter().flat_map(|r| r.burst_ops.keys()).collect();
        ops.sort();
        ops.dedup();
        for op in ops {
            line(
                &format!("burst {op} p99 ms"),
                &|r| {
                    r.burst_ops
                        .get(op)
                        .and_then(|h| h.quantile(0.99))
                        .map(|v| v * 1e3)
                },
                2,
            );
        }
        line(
            "PLEG relist p50 ms",
            &|r| r.relist.quantile(0.5).map(|v| v * 1e3),
            2,
        );
        line(
            "PLEG relist p99 ms",
            &|r| r.relist.quantile(0.99).map(|v| v * 1e3),
            2,
        );
        line("teardown: all stopped, s", &|r| r.stopped, 1);
        line(
            "teardown: all removed from the runtime, s",
            &|r| r.removed,
            1,
        );
        line("teardown: nothing left, s", &|r| r.clean, 1);
        let mut text = format!("{:<44}", "left after teardown");
        for r in &row {
            text.push_str(&format!(" {:>22}", r.left()));
        }
        println!("{text}");
        if let Some(f) = floors.get(&n) {
            println!(
                "Docker floor (no CRI, no kubelet): {n} pods' two containers started in {:.1} s; execs at the probes' rate: dockerd + containerd {:.2} CPU s/min, shims {:.2}, together {:.2}; exec p50 {:.1} ms, p99 {:.1} ms ({} calls, {} failed)",
                f.start,
                f.engine_cpu,
                f.shims_cpu,
                f.engine_cpu + f.shims_cpu,
                f.p50_ms,
                f.p99_ms,
                f.calls,
                f.failed
            );
        }
    }
}
