//! Benchmarks of dockershim against the raw Docker API, run on a real
//! Docker. Each prints its figures and their ratio to a baseline measured in
//! the same run, since the machines it runs on are shared and noisy.
//!
//! `dockershim-bench logs [--containers N] [--mib-per-container M]`:
//! the CPU time the shim spends per MiB of container output it writes to CRI
//! log files, against the CPU time of just reading the same output from
//! Docker's log API; and the shim's memory with N containers logging at
//! once, against the shim idle.
//!
//! `dockershim-bench podstart [--pods N]`: the time of RunPodSandbox +
//! CreateContainer + StartContainer, one pod at a time, against the same
//! four Docker calls made directly (pause container on the bridge, then a
//! `sleep` container joining its namespaces), interleaved.
//!
//! `dockershim-bench relist [--pods 10,100,300]`: with that many running
//! pods, one relist (ListPodSandbox + ListContainers) against one
//! `GET /containers/json?all=1` (interleaved), then the relists alone, with
//! no Docker list in between, and the shim's memory meanwhile.
//!
//! `dockershim-bench stats [--containers N]`: ListContainerStats for N
//! running containers against one one-shot Docker stats call per container.
//!
//! `dockershim-bench all`: idle memory, podstart, relist 10,100,300 and
//! stats 100 on the 300 pods, then a table of every figure and its target.
//!
//! `dockershim-bench soak [--cycles N] [--concurrency C] [--hostport-every K]
//! [--minutes M]`: N pod cycles on CNI (see `soak.rs`), and what they leak.
//!
//! `dockershim-bench exec [--containers 100] [--rate 10] [--seconds 60]`,
//! `dockershim-bench logpipe [--containers 10] [--mib 10] [--line 100,4096]`
//! and `dockershim-bench stream [--mib 1024]`: the shim against the raw
//! Docker floor and a private containerd's CRI in the same run (see
//! `exec.rs`, `logpipe.rs`, `stream.rs` and `containerd.rs`);
//! `dockershim-bench relist-peer [--pods 300]`: the relist of the shim and
//! of containerd's CRI with that many pods.
//!
//! `dockershim-bench frontier`: those four at their defaults, one after the
//! other on one engine, so that every figure beside containerd comes from
//! one run.
//!
//! `dockershim-bench node [--pods 30,100] [--runtimes
//! dockershim,cri-dockerd,containerd] [--evented-pleg off,on]
//! [--steady-minutes 5] [--settle-seconds 30] [--kubelet PATH]
//! [--docker-floor on|off]`: a real
//! kubelet with N static pods (exec-probed `sleep`s) against each runtime
//! in turn: burst start, steady-state CPU and memory of every process on
//! the runtime's path, the kubelet's CRI and relist histograms, teardown
//! and its leftovers, with ratios to containerd 2.x's (see `node/`). It
//! needs `DOCKER_HOST` on a private engine of `integration/dockerd.sh`.
//!
//! It needs the test image `dockershim-test/busybox:latest`
//! (`integration/test.sh` builds it) and runs as root. Everything it creates
//! carries the label `dockershim-bench`, and is removed at the start and at
//! the end, also when a step fails or on Ctrl-C.

mod containerd;
mod exec;
mod logpipe;
mod node;
mod peer;
mod procs;
mod relist_peer;
mod soak;
mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StatsOptions,
};
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use dockershim::api::*;
use dockershim::docker::client::BollardDocker;
// The pause image the shim imports when the configured one cannot be pulled
// (the bench starts the shim with an unreachable one), and the label on
// every container the shim creates: the library's own, so a version bump or
// a rename cannot leave the bench looking for the wrong ones.
use dockershim::image::pause::PauseImage;
use dockershim::naming::TYPE_LABEL;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tonic::transport::Channel;

const IMAGE: &str = "dockershim-test/busybox:latest";
const LABEL: &str = "dockershim-bench";
/// Marks the app containers whose stats the `stats` step reads.
const STATS_LABEL: &str = "dockershim-bench-stats";
/// Pods created or removed at once.
const CONCURRENCY: usize = 8;

const USAGE: &str = "usage: dockershim-bench logs [--containers N] [--mib-per-container M]
       dockershim-bench podstart [--pods N]
       dockershim-bench relist [--pods N,N,...]
       dockershim-bench stats [--containers N]
       dockershim-bench all
       dockershim-bench soak [--cycles N] [--concurrency C] [--hostport-every K] [--minutes M]
       dockershim-bench exec [--containers N] [--rate CALLS_PER_S] [--seconds S]
       dockershim-bench logpipe [--containers N] [--mib M] [--line BYTES,BYTES]
       dockershim-bench stream [--mib M]
       dockershim-bench relist-peer [--pods N]
       dockershim-bench frontier
       dockershim-bench node [--pods N,N] [--runtimes dockershim,cri-dockerd,containerd|none]
                             [--evented-pleg off,on] [--steady-minutes M] [--settle-seconds S]
                             [--kubelet PATH] [--docker-floor on|off]";

/// The defaults of the parts measured beside containerd, for their own
/// commands and for `frontier`. `exec`: containers, calls a second,
/// seconds per runtime.
const EXEC: (u64, u64, u64) = (100, 10, 60);
/// `logpipe`: containers, MiB each writes, line sizes in bytes.
const LOGPIPE: (u64, u64, &[u64]) = (10, 10, &[100, 4096]);
/// `stream`: MiB per transfer.
const STREAM_MIB: u64 = 1024;
/// `relist-peer`: running pods.
const RELIST_PEER_PODS: u64 = 300;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Result<Option<&String>> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(Some(
                args.get(i + 1).context(format!("{name} needs a value"))?,
            )),
            None => Ok(None),
        }
    };
    let flag = |name: &str, default: u64| -> Result<u64> {
        match value(name)? {
            Some(v) => v.parse().context(format!("{name} takes a number")),
            None => Ok(default),
        }
    };
    let list = |name: &str, default: &[u64]| -> Result<Vec<u64>> {
        match value(name)? {
            Some(v) => v
                .split(',')
                .map(|n| n.trim().parse::<u64>())
                .collect::<Result<_, _>>()
                .context(format!("{name} takes numbers separated by commas")),
            None => Ok(default.to_vec()),
        }
    };
    let task = match args.first().map(String::as_str) {
        Some("logs") => {
            return logs(flag("--containers", 100)?, flag("--mib-per-container", 1)?).await;
        }
        Some("exec") => {
            let (containers, rate, seconds) = EXEC;
            return exec::exec(
                flag("--containers", containers)?,
                flag("--rate", rate)?,
                flag("--seconds", seconds)?,
            )
            .await;
        }
        Some("logpipe") => {
            let (containers, mib, lines) = LOGPIPE;
            return logpipe::logpipe(
                flag("--containers", containers)?,
                flag("--mib", mib)?,
                &list("--line", lines)?,
            )
            .await;
        }
        Some("stream") => return stream::stream(flag("--mib", STREAM_MIB)?).await,
        Some("relist-peer") => {
            return relist_peer::relist_peer(flag("--pods", RELIST_PEER_PODS)?).await;
        }
        Some("frontier") => return frontier().await,
        Some("node") => {
            let minutes = match value("--steady-minutes")? {
                Some(v) => v.parse().context("--steady-minutes takes a number")?,
                None => 5.0,
            };
            return node::node(node::Options::parse(
                list("--pods", &[30, 100])?,
                value("--runtimes")?.map_or("dockershim,cri-dockerd,containerd", String::as_str),
                value("--evented-pleg")?.map_or("off,on", String::as_str),
                minutes,
                flag("--settle-seconds", 30)?,
                value("--kubelet")?.cloned(),
                value("--docker-floor")?.map_or("on", String::as_str),
            )?)
            .await;
        }
        Some("podstart") => Task::PodStart(flag("--pods", 20)?),
        Some("relist") => Task::Relist(list("--pods", &[10, 100, 300])?),
        Some("stats") => Task::Stats(flag("--containers", 100)?),
        Some("all") => Task::All,
        Some("soak") => {
            return soak::soak(soak::Options {
                cycles: flag("--cycles", 1000)?,
                concurrency: flag("--concurrency", 4)? as usize,
                hostport_every: flag("--hostport-every", 10)?,
                minutes: flag("--minutes", 60)?,
            })
            .await;
        }
        _ => bail!("{USAGE}"),
    };
    run(task).await
}

/// Every part measured beside containerd, at its defaults, in one run. A
/// part that fails does not stop the others; the run then fails at the end.
async fn frontier() -> Result<()> {
    let mut failed = Vec::new();
    let (containers, rate, seconds) = EXEC;
    if let Err(err) = exec::exec(containers, rate, seconds).await {
        failed.push(format!("exec: {err:#}"));
    }
    let (containers, mib, lines) = LOGPIPE;
    if let Err(err) = logpipe::logpipe(containers, mib, lines).await {
        failed.push(format!("logpipe: {err:#}"));
    }
    if let Err(err) = stream::stream(STREAM_MIB).await {
        failed.push(format!("stream: {err:#}"));
    }
    if let Err(err) = relist_peer::relist_peer(RELIST_PEER_PODS).await {
        failed.push(format!("relist-peer: {err:#}"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("parts failed:\n  {}", failed.join("\n  "))
    }
}

/// A shim process of this build on a private socket.
struct Shim {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Shim {
    /// A shim on Docker's bridge.
    async fn start() -> Result<Self> {
        Self::start_with(&["--network-plugin".into(), "docker".into()]).await
    }

    /// A shim with these network flags (`--network-plugin` and the like).
    async fn start_with(network: &[String]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("cri.sock");
        let binary = std::env::current_exe()?
            .parent()
            .context("bench binary has no directory")?
            .join("dockershim");
        let child = Command::new(&binary)
            .args([
                "--container-runtime-endpoint",
                &format!("unix://{}", socket.display()),
                "--cri-dockerd-root-directory",
                &dir.path().join("state").display().to_string(),
                "--pod-infra-container-image",
                "127.0.0.1:9/none:0",
                "--pod-infra-pull-timeout",
                "5",
                "--log-level",
                "warn",
            ])
            .args(network)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("shim.log"))?)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            if Instant::now() > deadline {
                bail!("the shim did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, socket, dir })
    }

    async fn client(&self) -> Result<RuntimeServiceClient<Channel>> {
        peer::cri_client(&self.socket).await
    }

    /// User plus system CPU time of the shim so far.
    fn cpu(&self) -> Result<Duration> {
        cpu_of(self.child.id())
    }

    /// Resident memory of the shim, in KiB.
    fn rss_kib(&self) -> Result<u64> {
        procs::rss_kib(self.child.id())
    }
}

impl Shim {
    /// What the shim logged so far (warnings and errors: it runs at
    /// `--log-level warn`).
    fn logged(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("shim.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(strip_colours)
            .collect()
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A log line without its terminal colour sequences (`ESC [ ... m`).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// User plus system CPU time of a process so far.
fn cpu_of(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("odd stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let hz = rustix::param::clock_ticks_per_second();
    Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// The Docker the bench and the shims it starts use: `DOCKER_HOST` (as for
/// the shim and the `docker` CLI), else the system's socket. A private engine
/// from `integration/dockerd.sh` is picked with
/// `eval "$(integration/dockerd.sh env 26 <state>)"`.
fn docker_endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

fn cleanup() {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={LABEL}")])
        .output();
    if let Ok(out) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether a log file already holds the trickle that follows the bulk
/// output, i.e. all of the bulk output.
fn has_tick(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).is_ok()
        && file.read_to_end(&mut tail).is_ok()
        && String::from_utf8_lossy(&tail).contains(" stdout F tick\n")
}

async fn logs(containers: u64, mib: u64) -> Result<()> {
    cleanup();
    let shim = Shim::start().await?;
    let mut rt = shim.client().await?;
    let logs_dir = tempfile::tempdir()?;
    let labels = std::collections::HashMap::from([(LABEL.to_string(), "1".to_string())]);
    let pod = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "bench".into(),
            namespace: "bench".into(),
            uid: format!("bench-{}", std::process::id()),
            attempt: 0,
        }),
        log_directory: logs_dir.path().display().to_string(),
        labels: labels.clone(),
        ..Default::default()
    };
    let pod_id = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = shim.rss_kib()?;

    // Each container writes `mib` MiB of 100-byte lines, then keeps a slow
    // trickle going so every writer stays alive for the memory reading.
    let bytes = mib * 1024 * 1024;
    let script = format!(
        "yes 'dockershim log benchmark line: the quick brown fox jumps over the lazy dog 0123456789abcdef' | head -c {bytes}; while true; do echo tick; sleep 1; done"
    );
    let cpu_before = shim.cpu()?;
    let started = Instant::now();
    let mut ids = Vec::new();
    let mut paths = Vec::new();
    for i in 0..containers {
        let name = format!("logger{i}");
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.clone()],
            log_path: format!("{name}.log"),
            labels: labels.clone(),
            ..Default::default()
        };
        let id = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.clone()),
            })
            .await?
            .into_inner()
            .container_id;
        rt.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
        paths.push(logs_dir.path().join(format!("{name}.log")));
        ids.push(id);
    }
    // Wait until every file holds all of its container's bulk output.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut peak_rss = shim.rss_kib()?;
    loop {
        peak_rss = peak_rss.max(shim.rss_kib()?);
        let written: u64 = paths.iter().map(|p| file_size(p)).sum();
        if paths.iter().all(|p| has_tick(p)) {
            println!(
                "wrote {:.1} MiB of CRI log lines in {:.1?}",
                written as f64 / 1048576.0,
                started.elapsed()
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("log files did not fill within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shim_cpu = shim.cpu()? - cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady_rss = shim.rss_kib()?;

    // Baseline: read the same output from Docker's log API, as the shim does,
    // and throw it away.
    let docker = BollardDocker::connect(&docker_endpoint(), Default::default()).await?;
    let own_before = cpu_of(std::process::id())?;
    let mut read = 0u64;
    for id in &ids {
        let mut body = docker.container_logs_body(id, false, None).await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = body.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            read += n as u64;
        }
    }
    let raw_cpu = cpu_of(std::process::id())?.saturating_sub(own_before);

    let total_mib = (containers * mib) as f64;
    let shim_per_mib = shim_cpu.as_secs_f64() * 1000.0 / total_mib;
    let raw_per_mib = raw_cpu.as_secs_f64() * 1000.0 / (read as f64 / 1048576.0);
    println!("containers: {containers}, output per container: {mib} MiB");
    println!("shim CPU per MiB written to CRI logs:       {shim_per_mib:.2} ms");
    println!(
        "baseline: CPU per MiB read from Docker API: {raw_per_mib:.2} ms ({:.1} MiB read)",
        read as f64 / 1048576.0
    );
    println!(
        "ratio shim / raw read: {:.2}",
        shim_per_mib / raw_per_mib.max(1e-9)
    );
    println!(
        "shim memory idle: {idle_rss} KiB; with {containers} logging containers: {steady_rss} KiB (peak {peak_rss} KiB)"
    );
    println!(
        "memory per logging container: {:.1} KiB; ratio loaded / idle: {:.2}",
        (steady_rss.saturating_sub(idle_rss)) as f64 / containers as f64,
        steady_rss as f64 / idle_rss as f64
    );

    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await?;
    cleanup();
    Ok(())
}

/// What `run` measures.
enum Task {
    PodStart(u64),
    Relist(Vec<u64>),
    Stats(u64),
    All,
}

/// A pod created through the shim: its sandbox and its one container.
struct Pod {
    sandbox: String,
    container: String,
    /// Whether its container carries [`STATS_LABEL`].
    for_stats: bool,
}

/// One line of the summary table.
struct Row {
    figure: String,
    value: String,
    target: String,
    pass: Option<bool>,
}

/// Mean and percentiles of a set of timings.
struct Summary {
    mean: Duration,
    p50: Duration,
    p90: Duration,
    p99: Duration,
}

impl Summary {
    fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        // Nearest rank: the smallest sample with at least p of them at or
        // below it.
        let rank = |p: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[i - 1]
        };
        let total: Duration = sorted.iter().sum();
        Self {
            mean: total / (sorted.len().max(1) as u32),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
        }
    }

    /// "M / P / Q ms" (mean, p50, p99), as the summary tables show it.
    fn columns(&self) -> String {
        format!(
            "{:.3} / {:.3} / {:.3} ms",
            ms(self.mean),
            ms(self.p50),
            ms(self.p99)
        )
    }
}

/// "mean M ms, p50 P ms, p99 Q ms", as every timing line prints it.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms",
            ms(self.mean),
            ms(self.p50),
            ms(self.p99)
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Runs a task on a fresh shim; whatever happens, the pods go through the
/// shim, the shim is killed and every labelled container is removed.
async fn run(task: Task) -> Result<()> {
    cleanup();
    let stats_group = match &task {
        Task::Stats(n) => *n as usize,
        Task::All => 100,
        _ => 0,
    };
    let result = async {
        let shim = Shim::start().await?;
        let mut bench = Bench::new(shim, stats_group).await?;
        println!("machine: {}", bench.machine);
        let outcome = tokio::select! {
            r = bench.run(&task) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        bench.teardown().await;
        bench.print_summary();
        let logged = bench.shim.logged();
        println!("shim log (--log-level warn): {} lines", logged.len());
        for line in logged.iter().take(20) {
            println!("  {line}");
        }
        outcome
    }
    .await;
    cleanup();
    result
}

/// The machine a run is on: cores, kernel and Docker.
async fn machine(docker: &Docker) -> Result<String> {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let version = docker.version().await?;
    Ok(format!(
        "nproc {nproc}, kernel {kernel}, Docker {} (API {})",
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default()
    ))
}

/// What every step shares: the shim, a CRI client, a raw Docker client, the
/// pods kept from one step to the next and the table being filled.
struct Bench {
    shim: Shim,
    rt: RuntimeServiceClient<Channel>,
    docker: Docker,
    machine: String,
    logs_dir: tempfile::TempDir,
    /// Pods through the shim, to be removed through it.
    pods: Vec<Pod>,
    /// Containers made with raw Docker calls, to be removed.
    raw: Vec<String>,
    /// Pods created so far, so that names stay unique.
    created: u64,
    /// How many of the first pods carry [`STATS_LABEL`].
    stats_group: usize,
    idle_rss: u64,
    rows: Vec<Row>,
}

impl Bench {
    async fn new(shim: Shim, stats_group: usize) -> Result<Self> {
        let mut rt = shim.client().await?;
        let docker =
            Docker::connect_with_unix(&docker_endpoint(), 120, bollard::API_DEFAULT_VERSION)?
                .negotiate_version()
                .await
                .context("connect to Docker")?;
        let machine = machine(&docker).await?;
        // Idle: the connection is up and every list has been served once.
        rt.version(VersionRequest::default()).await?;
        rt.list_pod_sandbox(ListPodSandboxRequest::default())
            .await?;
        rt.list_containers(ListContainersRequest::default()).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_rss = shim.rss_kib()?;
        let mut bench = Self {
            shim,
            rt,
            docker,
            machine,
            logs_dir: tempfile::tempdir()?,
            pods: Vec::new(),
            raw: Vec::new(),
            created: 0,
            stats_group,
            idle_rss,
            rows: Vec::new(),
        };
        println!("shim memory idle (no pods): {idle_rss} KiB");
        bench.row(
            "shim RSS idle, no pods",
            format!("{idle_rss} KiB"),
            "",
            None,
        );
        Ok(bench)
    }

    fn row(&mut self, figure: impl Into<String>, value: String, target: &str, pass: Option<bool>) {
        self.rows.push(Row {
            figure: figure.into(),
            value,
            target: target.into(),
            pass,
        });
    }

    async fn run(&mut self, task: &Task) -> Result<()> {
        match task {
            Task::PodStart(n) => self.podstart(*n).await,
            Task::Relist(counts) => self.relist(counts).await,
            Task::Stats(n) => self.stats(*n).await,
            Task::All => {
                self.podstart(20).await?;
                self.relist(&[10, 100, 300]).await?;
                self.stats(100).await
            }
        }
    }

    fn next_index(&mut self) -> u64 {
        self.created += 1;
        self.created
    }

    /// Pod start latency: shim and raw Docker, one pod at a time,
    /// alternating which goes first.
    async fn podstart(&mut self, n: u64) -> Result<()> {
        println!("\n== podstart: {n} pods one at a time, shim and raw Docker interleaved");
        let kept = self.pods.len();
        let logs_dir = self.logs_dir.path().to_path_buf();
        // Untimed warm-up of both paths; the shim's pause container tells
        // which image a pause container is made of.
        let index = self.next_index();
        let warm = create_pod(self.rt.clone(), logs_dir.clone(), index, false).await?;
        let pause_image = self
            .docker
            .inspect_container(&warm.sandbox, None)
            .await?
            .config
            .and_then(|c| c.image)
            .unwrap_or_else(PauseImage::builtin);
        self.pods.push(warm);
        raw_pod(&self.docker, &pause_image, index, &mut self.raw).await?;

        let deadline = Instant::now() + Duration::from_secs(600);
        let (mut shim_times, mut raw_times) = (Vec::new(), Vec::new());
        for i in 0..n {
            if Instant::now() > deadline {
                println!("stopped after {i} pods: the 10 minute bound");
                break;
            }
            let index = self.next_index();
            for shim_turn in [i % 2 == 0, i % 2 == 1] {
                let started = Instant::now();
                if shim_turn {
                    let pod = create_pod(self.rt.clone(), logs_dir.clone(), index, false).await?;
                    shim_times.push(started.elapsed());
                    self.pods.push(pod);
                } else {
                    raw_pod(&self.docker, &pause_image, index, &mut self.raw).await?;
                    raw_times.push(started.elapsed());
                }
            }
        }
        let shim = Summary::of(&shim_times);
        let raw = Summary::of(&raw_times);
        let r50 = ratio(shim.p50, raw.p50);
        let r90 = ratio(shim.p90, raw.p90);
        println!(
            "pause image: {pause_image}; pods timed: {}",
            shim_times.len()
        );
        println!(
            "shim RunPodSandbox+CreateContainer+StartContainer: median {:.1} ms, p90 {:.1} ms",
            ms(shim.p50),
            ms(shim.p90)
        );
        println!(
            "raw Docker create+start pause, create+start sleep:  median {:.1} ms, p90 {:.1} ms",
            ms(raw.p50),
            ms(raw.p90)
        );
        println!("ratio shim / raw: median {r50:.3}, p90 {r90:.3}");
        self.row(
            "podstart shim median / p90",
            format!("{:.1} / {:.1} ms", ms(shim.p50), ms(shim.p90)),
            "",
            None,
        );
        self.row(
            "podstart raw median / p90",
            format!("{:.1} / {:.1} ms", ms(raw.p50), ms(raw.p90)),
            "",
            None,
        );
        self.row(
            "podstart ratio shim/raw (median)",
            format!("{r50:.3}"),
            "<= 1.10",
            Some(r50 <= 1.10),
        );
        self.row(
            "podstart ratio shim/raw (p90)",
            format!("{r90:.3}"),
            "",
            None,
        );

        let mine = self.pods.split_off(kept);
        self.remove_pods(mine).await?;
        self.remove_raw().await;
        Ok(())
    }

    /// Relist cost at each pod count, growing the same set of pods.
    async fn relist(&mut self, counts: &[u64]) -> Result<()> {
        let mut counts: Vec<usize> = counts.iter().map(|&c| c as usize).collect();
        counts.sort_unstable();
        counts.dedup();
        let filter = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![TYPE_LABEL.to_string()],
            )])),
            ..Default::default()
        };
        for count in counts {
            println!("\n== relist: {count} running pods");
            self.set_pods(count).await?;
            for _ in 0..5 {
                self.shim_relist().await?;
                self.docker.list_containers(Some(filter.clone())).await?;
            }
            let (mut shim_times, mut raw_times) = (Vec::new(), Vec::new());
            let (mut seen, mut raw_seen) = ((0, 0), 0);
            let mut peak = 0;
            let cpu_before = self.shim.cpu()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            for k in 0..200 {
                if Instant::now() > deadline {
                    break;
                }
                for shim_turn in [k % 2 == 0, k % 2 == 1] {
                    let started = Instant::now();
                    if shim_turn {
                        seen = self.shim_relist().await?;
                        shim_times.push(started.elapsed());
                    } else {
                        raw_seen = self
                            .docker
                            .list_containers(Some(filter.clone()))
                            .await?
                            .len();
                        raw_times.push(started.elapsed());
                    }
                }
                if k % 10 == 0 {
                    peak = peak.max(self.shim.rss_kib()?);
                }
            }
            // The shim is idle during the raw calls, so its CPU over the
            // loop is what the relists cost it.
            let shim_cpu = (self.shim.cpu()? - cpu_before) / (shim_times.len().max(1) as u32);
            // The same relists with no Docker list in between: what the
            // kubelet sees, without dockerd busy with the raw baseline.
            let mut alone_times = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while alone_times.len() < 200 && Instant::now() < deadline {
                let started = Instant::now();
                self.shim_relist().await?;
                alone_times.push(started.elapsed());
            }
            let alone = Summary::of(&alone_times);
            let rss = self.shim.rss_kib()?;
            peak = peak.max(rss);
            if seen.0 < count || seen.1 < count {
                println!(
                    "warning: the shim listed {} sandboxes and {} containers for {count} pods",
                    seen.0, seen.1
                );
            }
            let shim = Summary::of(&shim_times);
            let raw = Summary::of(&raw_times);
            let by_mean = ratio(raw.mean, shim.mean);
            let by_p50 = ratio(raw.p50, shim.p50);
            println!(
                "iterations: {}; shim CPU per relist: {:.3} ms",
                shim_times.len(),
                ms(shim_cpu)
            );
            println!(
                "shim ListPodSandbox+ListContainers ({} sandboxes, {} containers): {shim}",
                seen.0, seen.1
            );
            println!("raw GET /containers/json?all=1 ({raw_seen} containers): {raw}");
            println!("speed ratio raw / shim: {by_mean:.1}x by mean, {by_p50:.1}x by p50");
            println!(
                "shim alone, no Docker list in between ({} relists): {alone}",
                alone_times.len()
            );
            println!(
                "shim memory: idle {} KiB; under relist with {count} pods {rss} KiB (peak {peak} KiB)",
                self.idle_rss
            );
            self.row(
                format!("relist {count} pods: shim mean / p50 / p99"),
                shim.columns(),
                "p99 < 5 ms",
                Some(shim.p99 < Duration::from_millis(5)),
            );
            self.row(
                format!("relist {count} pods: shim alone mean / p50 / p99"),
                alone.columns(),
                "p99 < 5 ms",
                Some(alone.p99 < Duration::from_millis(5)),
            );
            self.row(
                format!("relist {count} pods: raw mean / p50 / p99"),
                raw.columns(),
                "",
                None,
            );
            let (target, pass) = if count >= 300 {
                (">= 20x", Some(by_mean >= 20.0))
            } else {
                ("", None)
            };
            self.row(
                format!("relist {count} pods: ratio raw/shim (mean)"),
                format!("{by_mean:.1}x"),
                target,
                pass,
            );
            self.row(
                format!("relist {count} pods: shim RSS (peak)"),
                format!("{rss} KiB ({peak})"),
                "",
                None,
            );
        }
        Ok(())
    }

    /// One relist: every sandbox and every container; how many of each.
    async fn shim_relist(&mut self) -> Result<(usize, usize)> {
        relist_peer::relist(&mut self.rt).await
    }

    /// ListContainerStats for the labelled containers against one-shot
    /// Docker stats of each.
    async fn stats(&mut self, n: u64) -> Result<()> {
        let n = n as usize;
        println!("\n== stats: {n} running containers");
        if self.pods.len() < n {
            self.set_pods(n).await?;
        }
        let ids: Vec<String> = self
            .pods
            .iter()
            .filter(|p| p.for_stats)
            .map(|p| p.container.clone())
            .collect();
        if ids.len() != n {
            bail!("{} containers carry {STATS_LABEL}, not {n}", ids.len());
        }
        let filter = ContainerStatsFilter {
            label_selector: HashMap::from([(STATS_LABEL.to_string(), "1".to_string())]),
            ..Default::default()
        };
        // Warm-up: the shim's first sample of each container's CPU, and the
        // connection to Docker.
        self.shim_stats(Some(filter.clone())).await?;
        raw_stats(&self.docker, &ids[0]).await?;

        let (mut shim_times, mut seq_times, mut par_times) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = Vec::new();
        let mut shim_cpu = Duration::ZERO;
        // Docker 20.10 answers a one-shot stats request at its collector's
        // next tick (once a second), so a sequential round of 100 takes
        // about 100 s: at most three rounds, no new one after 2 minutes.
        let deadline = Instant::now() + Duration::from_secs(120);
        for round in 0..3 {
            if round > 0 && Instant::now() > deadline {
                break;
            }
            let cpu_before = self.shim.cpu()?;
            for _ in 0..20 {
                let started = Instant::now();
                last = self.shim_stats(Some(filter.clone())).await?;
                shim_times.push(started.elapsed());
            }
            shim_cpu += self.shim.cpu()? - cpu_before;
            let started = Instant::now();
            let sequential = async {
                for id in &ids {
                    raw_stats(&self.docker, id).await?;
                }
                anyhow::Ok(())
            };
            tokio::time::timeout(Duration::from_secs(300), sequential)
                .await
                .map_err(|_| anyhow!("sequential Docker stats took over 5 minutes"))??;
            seq_times.push(started.elapsed());
            let started = Instant::now();
            let jobs = ids.iter().map(|id| raw_stats(&self.docker, id)).collect();
            for result in concurrently(jobs, Duration::from_secs(120)).await? {
                result?;
            }
            par_times.push(started.elapsed());
        }
        // What the kubelet asks: every running container, no filter.
        let started = Instant::now();
        let everything = self.shim_stats(None).await?;
        let unfiltered = started.elapsed();

        let complete = ids
            .iter()
            .filter(|id| {
                last.iter().any(|s| {
                    s.attributes.as_ref().is_some_and(|a| &a.id == *id)
                        && s.cpu
                            .as_ref()
                            .is_some_and(|c| c.usage_core_nano_seconds.is_some())
                        && s.memory
                            .as_ref()
                            .is_some_and(|m| m.working_set_bytes.is_some())
                })
            })
            .count();
        let with_rate = last
            .iter()
            .filter(|s| s.cpu.as_ref().is_some_and(|c| c.usage_nano_cores.is_some()))
            .count();
        let shim = Summary::of(&shim_times);
        let seq = Summary::of(&seq_times);
        let par = Summary::of(&par_times);
        let r_seq = ratio(seq.p50, shim.p50);
        let r_par = ratio(par.p50, shim.p50);
        println!(
            "shim ListContainerStats ({} stats, {} calls): median {:.2} ms, p90 {:.2} ms, shim CPU {:.2} ms per call",
            last.len(),
            shim_times.len(),
            ms(shim.p50),
            ms(shim.p90),
            ms(shim_cpu / (shim_times.len().max(1) as u32))
        );
        println!(
            "raw one-shot stats of each container, sequential ({} rounds): median {:.1} ms",
            seq_times.len(),
            ms(seq.p50)
        );
        println!(
            "raw one-shot stats of each container, {CONCURRENCY} at a time: median {:.1} ms",
            ms(par.p50)
        );
        println!(
            "ratio raw / shim: {r_seq:.1}x sequential, {r_par:.1}x with concurrency {CONCURRENCY}"
        );
        println!(
            "shim ListContainerStats unfiltered ({} stats): {:.2} ms",
            everything.len(),
            ms(unfiltered)
        );
        println!("complete stats (cpu and memory): {complete}/{n}; with a CPU rate: {with_rate}");
        if complete < n {
            println!(
                "warning: the shim returned complete stats for only {complete} of {n} containers"
            );
        }
        self.row(
            format!("stats {n}: shim ListContainerStats median"),
            format!("{:.2} ms", ms(shim.p50)),
            "",
            None,
        );
        self.row(
            format!("stats {n}: raw sequential / concurrency {CONCURRENCY}"),
            format!("{:.1} / {:.1} ms", ms(seq.p50), ms(par.p50)),
            "",
            None,
        );
        self.row(
            format!("stats {n}: ratio raw sequential/shim"),
            format!("{r_seq:.1}x"),
            ">= 10x",
            Some(r_seq >= 10.0),
        );
        self.row(
            format!("stats {n}: ratio raw concurrency {CONCURRENCY}/shim"),
            format!("{r_par:.1}x"),
            "",
            None,
        );
        self.row(
            format!("stats {n}: complete (cpu + memory)"),
            format!("{complete}/{n}"),
            &format!("{n}/{n}"),
            Some(complete == n),
        );
        Ok(())
    }

    async fn shim_stats(
        &mut self,
        filter: Option<ContainerStatsFilter>,
    ) -> Result<Vec<ContainerStats>> {
        Ok(self
            .rt
            .list_container_stats(ListContainerStatsRequest { filter })
            .await?
            .into_inner()
            .stats)
    }

    /// Brings the kept pods to `count` running ones: creates the missing
    /// ones [`CONCURRENCY`] at a time, or removes the extra ones.
    async fn set_pods(&mut self, count: usize) -> Result<()> {
        if self.pods.len() > count {
            let extra = self.pods.split_off(count);
            self.remove_pods(extra).await?;
        }
        if self.pods.len() < count {
            let started = Instant::now();
            let logs_dir = self.logs_dir.path().to_path_buf();
            let mut jobs = Vec::new();
            for slot in self.pods.len()..count {
                let index = self.next_index();
                jobs.push(create_pod(
                    self.rt.clone(),
                    logs_dir.clone(),
                    index,
                    slot < self.stats_group,
                ));
            }
            let wanted = jobs.len();
            let mut failed = Vec::new();
            for result in concurrently(jobs, Duration::from_secs(900)).await? {
                match result {
                    Ok(pod) => self.pods.push(pod),
                    Err(err) => failed.push(err),
                }
            }
            println!(
                "created {} pods ({CONCURRENCY} at a time) in {:.1?}",
                wanted - failed.len(),
                started.elapsed()
            );
            if let Some(first) = failed.first() {
                bail!(
                    "{} of {wanted} pods failed; the first: {first:#}",
                    failed.len()
                );
            }
        }
        self.wait_running(count).await
    }

    /// Waits until the shim lists `count` ready sandboxes and running
    /// containers of ours.
    async fn wait_running(&mut self, count: usize) -> Result<()> {
        let ours = HashMap::from([(LABEL.to_string(), "1".to_string())]);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let running = self
                .rt
                .list_containers(ListContainersRequest {
                    filter: Some(ContainerFilter {
                        state: Some(ContainerStateValue {
                            state: ContainerState::ContainerRunning as i32,
                        }),
                        label_selector: ours.clone(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .containers
                .len();
            let ready = self
                .rt
                .list_pod_sandbox(ListPodSandboxRequest {
                    filter: Some(PodSandboxFilter {
                        state: Some(PodSandboxStateValue {
                            state: PodSandboxState::SandboxReady as i32,
                        }),
                        label_selector: ours.clone(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .items
                .len();
            if running == count && ready == count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "after 2 minutes the shim lists {ready} ready sandboxes and {running} running containers, not {count}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn remove_pods(&mut self, pods: Vec<Pod>) -> Result<()> {
        if pods.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let total = pods.len();
        let jobs = pods
            .into_iter()
            .map(|pod| remove_pod(self.rt.clone(), pod))
            .collect();
        let failed: Vec<anyhow::Error> = concurrently(jobs, Duration::from_secs(600))
            .await?
            .into_iter()
            .filter_map(Result::err)
            .collect();
        println!(
            "removed {} pods through the shim ({CONCURRENCY} at a time) in {:.1?}",
            total - failed.len(),
            started.elapsed()
        );
        if let Some(first) = failed.first() {
            bail!(
                "{} of {total} pods were not removed; the first: {first:#}",
                failed.len()
            );
        }
        Ok(())
    }

    async fn remove_raw(&mut self) {
        for id in std::mem::take(&mut self.raw) {
            let options = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            if let Err(err) = self.docker.remove_container(&id, Some(options)).await {
                println!("warning: remove container {id}: {err}");
            }
        }
    }

    /// Removes what is left, also after a failure.
    async fn teardown(&mut self) {
        let pods = std::mem::take(&mut self.pods);
        if let Err(err) = self.remove_pods(pods).await {
            println!("warning: {err:#}");
        }
        self.remove_raw().await;
    }

    fn print_summary(&self) {
        println!("\n== summary: {}", self.machine);
        println!("{:<46} {:>30}  {:<11} result", "figure", "value", "target");
        for row in &self.rows {
            let result = match row.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "",
            };
            println!(
                "{:<46} {:>30}  {:<11} {result}",
                row.figure, row.value, row.target
            );
        }
    }
}

/// Runs the jobs [`CONCURRENCY`] at a time within `limit`; their results
/// come in the order they finish.
async fn concurrently<T, F>(jobs: Vec<F>, limit: Duration) -> Result<Vec<Result<T>>>
where
    F: std::future::Future<Output = Result<T>>,
{
    let all = futures_util::stream::iter(jobs)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>();
    tokio::time::timeout(limit, all)
        .await
        .map_err(|_| anyhow!("did not finish within {limit:?}"))
}

/// The one container of a bench pod: `sleep 3600` in the test image,
/// logging to `sleeper/0.log` under the pod's log directory.
fn sleeper(labels: HashMap<String, String>) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "sleeper".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: "sleeper/0.log".into(),
        labels,
        ..Default::default()
    }
}

/// A pod as the kubelet makes one: sandbox, one `sleep 3600` container with
/// a CRI log file, started.
async fn create_pod(
    mut rt: RuntimeServiceClient<Channel>,
    logs_dir: PathBuf,
    index: u64,
    for_stats: bool,
) -> Result<Pod> {
    let mut labels = HashMap::from([(LABEL.to_string(), "1".to_string())]);
    if for_stats {
        labels.insert(STATS_LABEL.to_string(), "1".to_string());
    }
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("bench{index}"),
            namespace: "bench".into(),
            uid: format!("bench-{}-{index}", std::process::id()),
            attempt: 0,
        }),
        log_directory: logs_dir.join(format!("pod{index}")).display().to_string(),
        labels: labels.clone(),
        ..Default::default()
    };
    let sandbox = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .context("RunPodSandbox")?
        .into_inner()
        .pod_sandbox_id;
    let container = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(sleeper(labels)),
            sandbox_config: Some(config),
        })
        .await
        .context("CreateContainer")?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: container.clone(),
    })
    .await
    .context("StartContainer")?;
    Ok(Pod {
        sandbox,
        container,
        for_stats,
    })
}

/// Removes a pod as the kubelet does: its container stopped (at once:
/// `sleep` as PID 1 ignores SIGTERM), then the sandbox stopped and removed.
async fn remove_pod(mut rt: RuntimeServiceClient<Channel>, pod: Pod) -> Result<()> {
    rt.stop_container(StopContainerRequest {
        container_id: pod.container,
        timeout: 0,
    })
    .await
    .context("StopContainer")?;
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.sandbox.clone(),
    })
    .await
    .context("StopPodSandbox")?;
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.sandbox,
    })
    .await
    .context("RemovePodSandbox")?;
    Ok(())
}

/// The same pod with raw Docker calls: a pause container on the bridge
/// with a shareable IPC namespace, then `sleep 3600` joining its network
/// and IPC. Each id goes into `made` as soon as it exists.
async fn raw_pod(
    docker: &Docker,
    pause_image: &str,
    index: u64,
    made: &mut Vec<String>,
) -> Result<()> {
    let labels = HashMap::from([(LABEL.to_string(), "1".to_string())]);
    let name = format!("dockershim-bench-raw-{}-{index}", std::process::id());
    let create = |suffix: &str| CreateContainerOptions {
        name: Some(format!("{name}-{suffix}")),
        ..Default::default()
    };
    let pause = docker
        .create_container(
            Some(create("pause")),
            ContainerCreateBody {
                image: Some(pause_image.to_string()),
                labels: Some(labels.clone()),
                host_config: Some(HostConfig {
                    network_mode: Some("bridge".into()),
                    ipc_mode: Some("shareable".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?
        .id;
    made.push(pause.clone());
    docker.start_container(&pause, None).await?;
    let joined = format!("container:{pause}");
    let app = docker
        .create_container(
            Some(create("sleeper")),
            ContainerCreateBody {
                image: Some(IMAGE.to_string()),
                cmd: Some(vec!["sleep".into(), "3600".into()]),
                labels: Some(labels),
                host_config: Some(HostConfig {
                    network_mode: Some(joined.clone()),
                    ipc_mode: Some(joined),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?
        .id;
    made.push(app.clone());
    docker.start_container(&app, None).await?;
    Ok(())
}

/// One-shot stats of one container, as a per-container collector reads
/// them.
async fn raw_stats(docker: &Docker, id: &str) -> Result<()> {
    let options = StatsOptions {
        stream: false,
        one_shot: true,
    };
    docker
        .stats(id, Some(options))
        .try_next()
        .await?
        .context("Docker returned no stats")?;
    Ok(())
}
