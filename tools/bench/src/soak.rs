//! `dockershim-bench soak`: many pod cycles on real CNI plugins, to find
//! what the shim leaks.
//!
//! It starts a shim of this build with a CNI network of its own (bridge
//! `dsoak0` with host-local IPs from 10.231.0.0/16, then the firewall and
//! portmap plugins), runs one warm-up round, measures, then runs N cycles of
//! RunPodSandbox (every k-th pod with a host port) + CreateContainer +
//! StartContainer of a `sleep` container + StopContainer + StopPodSandbox +
//! RemovePodSandbox, a few at a time, and measures again. It prints the
//! deltas of what a lost teardown leaves (containers, veths, host-local IPs,
//! CNI cache files, iptables rules, sandbox checkpoints), of the shim's fds,
//! threads and RSS, and the pods per minute, and fails when something that
//! should be back to where it was is not.
//!
//! The host is shared (other Docker engines, other CNI tests), so the leak
//! checks count only what carries this soak's marks (its bridge, network
//! name and subnet); host-wide counts are printed beside them for context.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use dockershim::api::*;
use dockershim::naming::TYPE_LABEL;
use tonic::transport::Channel;

use crate::{IMAGE, LABEL, Shim, Summary, cleanup, docker_endpoint, machine, ms, sleeper};

/// The CNI network's name; it is in the comment of every portmap rule.
const NETWORK: &str = "dsoak";
/// The soak's bridge; the name starts with [`NETWORK`], so rules naming
/// the bridge count as the soak's too.
const BRIDGE: &str = "dsoak0";
const SUBNET: &str = "10.231.0.0/16";
/// How the soak's pod addresses begin, in host-local's files and in rules.
const SUBNET_PREFIX: &str = "10.231.";
/// Host ports come from here up, away from the integration tests' 20000 to
/// 49999. portmap binds nothing: its DNAT rules see only new connections
/// to the port, so local ephemeral ports in the range are not disturbed.
const FIRST_HOST_PORT: i32 = 51000;
const HOST_PORTS: i32 = 1000;
/// Where Debian's containernetworking-plugins are.
const CNI_BIN: &str = "/usr/lib/cni";
/// How long the shim idles after the soak before its threads are counted
/// again.
const IDLE: Duration = Duration::from_secs(15);
/// Bound on each CRI call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The plugins' chains shared by every pod and every CNI user of the host
/// (firewall: CNI-FORWARD, CNI-ADMIN; portmap: CNI-HOSTPORT-*). Only the
/// per-pod ones are the soak's.
const SHARED_CHAINS: [&str; 5] = [
    "CNI-ADMIN",
    "CNI-FORWARD",
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-MASQ",
    "CNI-HOSTPORT-SETMARK",
];

/// What `dockershim-bench soak` was asked for.
pub struct Options {
    pub cycles: u64,
    pub concurrency: usize,
    /// Every k-th pod gets a host port; 0: none does.
    pub hostport_every: u64,
    /// No new cycle starts after this.
    pub minutes: u64,
}

/// Runs the soak; an error when a cycle failed or something leaked.
pub async fn soak(options: Options) -> Result<()> {
    if options.concurrency == 0 || options.cycles == 0 {
        bail!("--cycles and --concurrency must be at least 1");
    }
    cleanup();
    let lab = Lab::new()?;
    let result = async {
        let shim = Shim::start_with(&lab.shim_args()).await?;
        let outcome = tokio::select! {
            r = run(&shim, &lab, &options) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        // Whatever happened: the pods go through the shim while it runs.
        if let Err(err) = sweep(&shim).await {
            println!("warning: removing what is left through the shim: {err:#}");
        }
        let logged = shim.logged();
        println!("shim log (--log-level warn): {} lines", logged.len());
        for line in logged.iter().take(20) {
            println!("  {line}");
        }
        outcome
    }
    .await;
    cleanup();
    lab.remove();
    result
}

/// The soak proper, on a started shim: warm-up, measure, cycles, measure,
/// report.
async fn run(shim: &Shim, lab: &Lab, options: &Options) -> Result<()> {
    let docker = Docker::connect_with_unix(&docker_endpoint(), 120, bollard::API_DEFAULT_VERSION)?
        .negotiate_version()
        .await
        .context("connect to Docker")?;
    docker
        .inspect_image(IMAGE)
        .await
        .with_context(|| format!("{IMAGE} is missing: integration/test.sh builds it"))?;
    let rt = shim.client().await?;
    wait_network_ready(rt.clone()).await?;
    println!("machine: {}", machine(&docker).await?);
    println!(
        "soak: {} cycles, {} at a time, a host port on every {} pod; CNI bridge {BRIDGE} {SUBNET} + firewall + portmap",
        options.cycles,
        options.concurrency,
        ordinal(options.hostport_every),
    );
    let logs_dir = tempfile::tempdir()?;
    let pods = Pods {
        logs_dir: logs_dir.path().to_path_buf(),
        hostport_every: options.hostport_every,
    };

    // Warm-up: one round at the soak's concurrency, so the plugins' shared
    // chains exist and the shim's pools and caches have their working size
    // before the first measurement.
    let warm = Tally::default();
    let started = Instant::now();
    let jobs = (0..options.concurrency as u64).map(|i| pods.cycle(rt.clone(), i, &warm));
    futures_util::future::join_all(jobs).await;
    if warm.errors() > 0 {
        warm.print();
        bail!("the warm-up round failed");
    }
    println!(
        "warm-up: {} cycles in {:.1?}",
        options.concurrency,
        started.elapsed()
    );
    let before = Sample::take(shim, &docker, rt.clone(), lab).await?;

    let tally = Tally::default();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let checkpoints = Mutex::new(Vec::new());
    let every = (options.cycles / 4).max(1);
    let deadline = Instant::now() + Duration::from_secs(options.minutes * 60);
    let out_of_time = AtomicBool::new(false);
    let started = Instant::now();
    let workers = (0..options.concurrency).map(|_| {
        let rt = rt.clone();
        let (next, done, tally, pods) = (&next, &done, &tally, &pods);
        let (checkpoints, out_of_time) = (&checkpoints, &out_of_time);
        async move {
            loop {
                if Instant::now() > deadline {
                    out_of_time.store(true, Ordering::Relaxed);
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= options.cycles {
                    break;
                }
                // Indices go on from the warm-up's, so names stay unique.
                pods.cycle(rt.clone(), options.concurrency as u64 + i, tally)
                    .await;
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if finished.is_multiple_of(every) || finished == options.cycles {
                    let point = Checkpoint::take(shim, finished, started.elapsed());
                    checkpoints
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(point);
                }
            }
        }
    });
    futures_util::future::join_all(workers).await;
    let elapsed = started.elapsed();
    let cycles = done.load(Ordering::Relaxed);
    if out_of_time.load(Ordering::Relaxed) {
        println!(
            "stopped after {cycles} cycles: the {} minute bound",
            options.minutes
        );
    }

    // After a failed call a cycle may leave its pod (or, when
    // RunPodSandbox failed or timed out, one whose id the bench never got):
    // what the shim still lists is removed through it first, and said, so
    // the deltas show what the shim itself lost. With no failure nothing
    // is swept: a sandbox still listed is the shim's leak.
    if tally.errors() > 0 {
        let left = sweep(shim).await?;
        println!(
            "removed {left} sandboxes left by failed cycles through the shim before measuring"
        );
    }
    let after = settle(shim, &docker, rt.clone(), lab, &before).await?;

    println!(
        "\n== soak: {cycles} cycles in {:.1?}: {:.1} pods per minute",
        elapsed,
        cycles as f64 / elapsed.as_secs_f64().max(1e-9) * 60.0
    );
    tally.print();
    print!("checkpoints (RSS / fds / threads):");
    for point in checkpoints.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        print!(
            " {}: {} KiB / {} / {};",
            point.cycles, point.rss_kib, point.fds, point.threads
        );
    }
    println!();
    let leaks = report(&before, &after);
    lab.print_new_shared_chains(&after);
    // Tokio's blocking threads (file and cgroup reads, CNI plugin runs)
    // exit after 10 s idle: what is left after that is what stays.
    tokio::time::sleep(IDLE).await;
    let pid = shim.child.id();
    println!(
        "after {IDLE:?} idle: RSS {} KiB, fds {}, threads {}",
        shim.rss_kib()?,
        fds(pid)?,
        threads(pid)?
    );
    let errors = tally.errors();
    match (leaks, errors) {
        (0, 0) => {
            println!("no leaks, no errors");
            Ok(())
        }
        _ => bail!("{leaks} leaks, {errors} failed calls"),
    }
}

/// Ordinal of `n` for the header line ("10th"); "no" for 0.
fn ordinal(n: u64) -> String {
    match n {
        0 => "no".into(),
        1 => "single".into(),
        n if n % 10 == 2 && n % 100 != 12 => format!("{n}nd"),
        n if n % 10 == 3 && n % 100 != 13 => format!("{n}rd"),
        n => format!("{n}th"),
    }
}

/// Waits until the shim reports its CNI network ready (it reads the
/// configuration directory at start).
async fn wait_network_ready(mut rt: RuntimeServiceClient<Channel>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = rt
            .status(StatusRequest { verbose: false })
            .await?
            .into_inner()
            .status
            .unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .find(|c| c.r#type == "NetworkReady");
        if ready.is_some_and(|c| c.status) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the shim's network is not ready after 30 s: {}",
                ready.map(|c| c.message.as_str()).unwrap_or("no condition")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops and removes, through the shim, every sandbox of the bench it
/// lists; how many there were.
async fn sweep(shim: &Shim) -> Result<usize> {
    let mut rt = shim.client().await?;
    let ours = our_sandboxes(&mut rt).await?;
    for id in &ours {
        let stop = rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        });
        tokio::time::timeout(CALL_TIMEOUT, stop)
            .await
            .context("StopPodSandbox timed out")?
            .with_context(|| format!("StopPodSandbox {id}"))?;
        let remove = rt.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        });
        tokio::time::timeout(CALL_TIMEOUT, remove)
            .await
            .context("RemovePodSandbox timed out")?
            .with_context(|| format!("RemovePodSandbox {id}"))?;
    }
    Ok(ours.len())
}

async fn our_sandboxes(rt: &mut RuntimeServiceClient<Channel>) -> Result<Vec<String>> {
    let filter = PodSandboxFilter {
        label_selector: HashMap::from([(LABEL.to_string(), "1".to_string())]),
        ..Default::default()
    };
    Ok(rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await?
        .into_inner()
        .items
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// The six CRI calls of a cycle.
#[derive(Clone, Copy)]
enum Call {
    RunPodSandbox,
    CreateContainer,
    StartContainer,
    StopContainer,
    StopPodSandbox,
    RemovePodSandbox,
}

const CALLS: [Call; 6] = [
    Call::RunPodSandbox,
    Call::CreateContainer,
    Call::StartContainer,
    Call::StopContainer,
    Call::StopPodSandbox,
    Call::RemovePodSandbox,
];

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::RunPodSandbox => "RunPodSandbox",
            Call::CreateContainer => "CreateContainer",
            Call::StartContainer => "StartContainer",
            Call::StopContainer => "StopContainer",
            Call::StopPodSandbox => "StopPodSandbox",
            Call::RemovePodSandbox => "RemovePodSandbox",
        }
    }
}

/// Per call type: the times of the calls that succeeded, the number that
/// failed and the first failure.
#[derive(Default)]
struct Tally {
    calls: Mutex<[CallTally; 6]>,
}

#[derive(Default)]
struct CallTally {
    times: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

/// Failures printed as they happen; the rest are only counted.
const ERRORS_SHOWN: u64 = 10;

impl Tally {
    fn lock(&self) -> std::sync::MutexGuard<'_, [CallTally; 6]> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes one call within [`CALL_TIMEOUT`] and records its outcome.
    async fn call<T>(
        &self,
        which: Call,
        request: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Option<T> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(CALL_TIMEOUT, request).await;
        let elapsed = started.elapsed();
        let error = match outcome {
            Ok(Ok(response)) => {
                self.lock()[which as usize].times.push(elapsed);
                return Some(response.into_inner());
            }
            Ok(Err(status)) => format!("{:?}: {}", status.code(), status.message()),
            Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
        };
        let total = {
            let mut calls = self.lock();
            let entry = &mut calls[which as usize];
            entry.errors += 1;
            entry.first_error.get_or_insert_with(|| error.clone());
            calls.iter().map(|c| c.errors).sum::<u64>()
        };
        if total <= ERRORS_SHOWN {
            println!("error: {}: {error}", which.name());
        }
        None
    }

    fn errors(&self) -> u64 {
        self.lock().iter().map(|c| c.errors).sum()
    }

    fn print(&self) {
        let calls = self.lock();
        println!(
            "{:<17} {:>6} {:>6} {:>10} {:>10} {:>10}",
            "call", "ok", "errors", "median ms", "p99 ms", "max ms"
        );
        for which in CALLS {
            let entry = &calls[which as usize];
            let summary = Summary::of(&entry.times);
            let max = entry.times.iter().max().copied().unwrap_or_default();
            println!(
                "{:<17} {:>6} {:>6} {:>10.1} {:>10.1} {:>10.1}",
                which.name(),
                entry.times.len(),
                entry.errors,
                ms(summary.p50),
                ms(summary.p99),
                ms(max)
            );
            if let Some(first) = &entry.first_error {
                println!("  first error: {first}");
            }
        }
    }
}

/// What every cycle shares.
struct Pods {
    logs_dir: PathBuf,
    hostport_every: u64,
}

impl Pods {
    /// One pod's life as the kubelet drives it: sandbox (with a host port
    /// on every k-th), a `sleep` container created and started, then the
    /// container stopped and the sandbox stopped and removed. A failed call
    /// ends the cycle, but what was made is still taken down.
    async fn cycle(&self, mut rt: RuntimeServiceClient<Channel>, index: u64, tally: &Tally) {
        let mut labels = HashMap::from([(LABEL.to_string(), "1".to_string())]);
        labels.insert("dockershim-bench-soak".into(), index.to_string());
        let host_port = (self.hostport_every > 0 && index.is_multiple_of(self.hostport_every))
            .then(|| {
                // Distinct for every pod in flight at once: the range is far
                // larger than any concurrency.
                FIRST_HOST_PORT + ((index / self.hostport_every) as i32 % HOST_PORTS)
            });
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: format!("soak{index}"),
                namespace: "soak".into(),
                uid: format!("soak-{}-{index}", std::process::id()),
                attempt: 0,
            }),
            hostname: format!("soak{index}"),
            log_directory: self
                .logs_dir
                .join(format!("pod{index}"))
                .display()
                .to_string(),
            port_mappings: host_port
                .map(|host_port| PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: 8080,
                    host_port,
                    host_ip: String::new(),
                })
                .into_iter()
                .collect(),
            labels: labels.clone(),
            ..Default::default()
        };
        let run = rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        });
        let Some(sandbox) = tally.call(Call::RunPodSandbox, run).await else {
            return;
        };
        let sandbox = sandbox.pod_sandbox_id;
        let create = rt.create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(sleeper(labels)),
            sandbox_config: Some(config),
        });
        if let Some(container) = tally.call(Call::CreateContainer, create).await {
            let id = container.container_id;
            let start = rt.start_container(StartContainerRequest {
                container_id: id.clone(),
            });
            tally.call(Call::StartContainer, start).await;
            // At once: `sleep` as PID 1 ignores SIGTERM.
            let stop = rt.stop_container(StopContainerRequest {
                container_id: id,
                timeout: 0,
            });
            tally.call(Call::StopContainer, stop).await;
        }
        let stop = rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone(),
        });
        tally.call(Call::StopPodSandbox, stop).await;
        let remove = rt.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox,
        });
        tally.call(Call::RemovePodSandbox, remove).await;
    }
}

/// The shim's process figures at one point of the run.
struct Checkpoint {
    cycles: u64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

impl Checkpoint {
    fn take(shim: &Shim, cycles: u64, elapsed: Duration) -> Self {
        let point = Self {
            cycles,
            rss_kib: shim.rss_kib().unwrap_or(0),
            fds: fds(shim.child.id()).unwrap_or(0),
            threads: threads(shim.child.id()).unwrap_or(0),
        };
        println!(
            "after {cycles} cycles ({elapsed:.0?}, {:.1} pods per minute): RSS {} KiB, fds {}, threads {}",
            cycles as f64 / elapsed.as_secs_f64().max(1e-9) * 60.0,
            point.rss_kib,
            point.fds,
            point.threads
        );
        point
    }
}

/// The shim's open file descriptors.
fn fds(pid: u32) -> Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// The shim's threads.
fn threads(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .context("no Threads line")?
        .trim()
        .parse()
        .context("odd Threads line")
}

/// Everything counted before and after the cycles.
#[derive(Clone, Default)]
struct Sample {
    docker_containers: i64,
    shim_sandboxes: i64,
    shim_containers: i64,
    checkpoints: i64,
    bridge_veths: i64,
    host_veths: i64,
    ips: i64,
    cache_files: i64,
    rules: Rules,
    fds: i64,
    threads: i64,
    rss_kib: i64,
}

impl Sample {
    async fn take(
        shim: &Shim,
        docker: &Docker,
        mut rt: RuntimeServiceClient<Channel>,
        lab: &Lab,
    ) -> Result<Self> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![TYPE_LABEL.to_string()],
            )])),
            ..Default::default()
        };
        let docker_containers = docker.list_containers(Some(options)).await?.len();
        let shim_sandboxes = our_sandboxes(&mut rt).await?.len();
        let shim_containers = rt
            .list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    label_selector: HashMap::from([(LABEL.to_string(), "1".to_string())]),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .containers
            .len();
        let pid = shim.child.id();
        Ok(Self {
            docker_containers: docker_containers as i64,
            shim_sandboxes: shim_sandboxes as i64,
            shim_containers: shim_containers as i64,
            checkpoints: count_files(&shim.dir.path().join("state").join("sandbox")) as i64,
            bridge_veths: count_entries(&Path::new("/sys/class/net").join(BRIDGE).join("brif"))
                as i64,
            host_veths: host_veths()? as i64,
            ips: count_matching(&lab.ipam_dir().join(NETWORK), SUBNET_PREFIX) as i64,
            cache_files: count_files(&lab.cache_dir()) as i64,
            rules: Rules::read()?,
            fds: fds(pid)? as i64,
            threads: threads(pid)? as i64,
            rss_kib: shim.rss_kib()? as i64,
        })
    }

    /// The figures, in print order: name, value, and whether a change is a
    /// leak (else it is printed for context only).
    fn rows(&self) -> Vec<(&'static str, i64, bool)> {
        vec![
            (
                "containers in Docker (shim's type label)",
                self.docker_containers,
                true,
            ),
            ("sandboxes the shim lists", self.shim_sandboxes, true),
            ("containers the shim lists", self.shim_containers, true),
            ("sandbox checkpoint files", self.checkpoints, true),
            ("veths on the soak's bridge", self.bridge_veths, true),
            ("IPs held by host-local", self.ips, true),
            ("CNI cache files", self.cache_files, true),
            (
                "iptables rules of the soak (nat+filter)",
                self.rules.ours,
                true,
            ),
            (
                "per-pod CNI- chains of the soak",
                self.rules.our_chains,
                true,
            ),
            ("veths on the host (all engines)", self.host_veths, false),
            (
                "iptables rules on the host (nat+filter)",
                self.rules.all,
                false,
            ),
            ("CNI- chains on the host", self.rules.cni_chains, false),
            ("shim open fds", self.fds, false),
            ("shim threads", self.threads, false),
            ("shim RSS KiB", self.rss_kib, false),
        ]
    }

    /// Whether every leak-checked figure is back where it was.
    fn settled(&self, before: &Self) -> bool {
        self.rows()
            .iter()
            .zip(before.rows())
            .all(|(a, b)| !a.2 || a.1 == b.1)
    }
}

/// Measures after the run; when something is not back yet, measures again
/// for a while, since some of it (a container's removal by Docker, a
/// dying veth) may lag the calls.
async fn settle(
    shim: &Shim,
    docker: &Docker,
    rt: RuntimeServiceClient<Channel>,
    lab: &Lab,
    before: &Sample,
) -> Result<Sample> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    loop {
        let after = Sample::take(shim, docker, rt.clone(), lab).await?;
        if after.settled(before) || Instant::now() > deadline {
            if started.elapsed() > Duration::from_secs(1) {
                println!("measured {:.1?} after the last cycle", started.elapsed());
            }
            return Ok(after);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints before, after and delta of every figure, one line per leak;
/// returns the number of leaks.
fn report(before: &Sample, after: &Sample) -> usize {
    println!(
        "{:<42} {:>9} {:>9} {:>7}",
        "figure", "before", "after", "delta"
    );
    let mut leaks = Vec::new();
    for ((name, was, checked), (_, is, _)) in before.rows().into_iter().zip(after.rows()) {
        let delta = is - was;
        println!(
            "{name:<42} {was:>9} {is:>9} {delta:>+7}{}",
            if checked { "" } else { "  (context)" }
        );
        if checked && delta != 0 {
            leaks.push(format!(
                "LEAK: {name}: {was} before, {is} after ({delta:+})"
            ));
        }
    }
    for leak in &leaks {
        println!("{leak}");
    }
    if !after.rules.leftover.is_empty() {
        println!("the soak's iptables rules left:");
        for line in &after.rules.leftover {
            println!("  {line}");
        }
    }
    leaks.len()
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

/// Files below `dir`, at any depth.
pub(crate) fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// Files in `dir` whose name starts with `prefix`.
fn count_matching(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
    })
}

/// veth interfaces in the host's network namespace.
fn host_veths() -> Result<usize> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
        .context("run ip link")?;
    if !out.status.success() {
        bail!("ip link: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

/// The iptables rules (nat and filter) and which of them are the soak's.
#[derive(Clone, Default)]
struct Rules {
    /// Rules (`-A` lines) of both tables.
    all: i64,
    /// Rules that name the soak's network, bridge or subnet, or sit in one
    /// of its per-pod chains.
    ours: i64,
    /// Chains whose name starts with `CNI-`.
    cni_chains: i64,
    /// `CNI-` chains other than the shared ones that hold or are the
    /// target of one of the soak's rules: portmap's `CNI-DN-*`.
    our_chains: i64,
    /// The soak's rules, as `iptables-save` prints them (without the
    /// shared chains' scaffolding).
    leftover: Vec<String>,
    /// Per table: the soak's rules outside its own chains, and its chains.
    tables: Vec<TableRules>,
    /// Every `CNI-` chain seen.
    chain_names: BTreeSet<String>,
}

#[derive(Clone, Default)]
struct TableRules {
    table: &'static str,
    rules: Vec<String>,
    chains: Vec<String>,
}

impl Rules {
    fn read() -> Result<Self> {
        let mut rules = Self::default();
        for table in ["nat", "filter"] {
            let out = Command::new("iptables-save")
                .args(["-t", table])
                .output()
                .context("run iptables-save")?;
            if !out.status.success() {
                bail!(
                    "iptables-save -t {table}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            rules.add_table(table, &String::from_utf8_lossy(&out.stdout));
        }
        Ok(rules)
    }

    fn add_table(&mut self, table: &'static str, save: &str) {
        let appends: Vec<(&str, &str)> = save
            .lines()
            .filter_map(|l| l.strip_prefix("-A "))
            .filter_map(|l| Some((l.split_whitespace().next()?, l)))
            .collect();
        let marked = |line: &str| line.contains(NETWORK) || line.contains(SUBNET_PREFIX);
        let per_pod = |chain: &str| chain.starts_with("CNI-") && !SHARED_CHAINS.contains(&chain);
        // The soak's per-pod chains: they hold one of its rules, or one of
        // its rules jumps to them.
        let mut chains = BTreeSet::new();
        for (chain, line) in &appends {
            if !marked(line) {
                continue;
            }
            if per_pod(chain) {
                chains.insert(chain.to_string());
            }
            if let Some(target) = line.split(" -j ").nth(1).and_then(|t| t.split(' ').next())
                && per_pod(target)
            {
                chains.insert(target.to_string());
            }
        }
        let mut ours = TableRules {
            table,
            ..Default::default()
        };
        for (chain, line) in &appends {
            self.all += 1;
            let in_ours = chains.contains(*chain);
            if in_ours || marked(line) {
                self.ours += 1;
                self.leftover.push(format!("{table}: -A {line}"));
                if !in_ours {
                    ours.rules.push(line.to_string());
                }
            }
        }
        for name in save
            .lines()
            .filter_map(|l| l.strip_prefix(':'))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| name.starts_with("CNI-"))
        {
            self.cni_chains += 1;
            self.chain_names.insert(format!("{table}/{name}"));
        }
        self.our_chains += chains.len() as i64;
        ours.chains = chains.into_iter().collect();
        self.tables.push(ours);
    }

    /// Deletes the soak's rules and per-pod chains, one `iptables-restore
    /// --noflush` transaction per table, so others' rules stay untouched.
    fn delete(&self) -> Result<()> {
        for table in &self.tables {
            if table.rules.is_empty() && table.chains.is_empty() {
                continue;
            }
            let mut script = format!("*{}\n", table.table);
            for rule in &table.rules {
                script.push_str(&format!("-D {rule}\n"));
            }
            for chain in &table.chains {
                script.push_str(&format!("-F {chain}\n"));
            }
            for chain in &table.chains {
                script.push_str(&format!("-X {chain}\n"));
            }
            script.push_str("COMMIT\n");
            let mut child = Command::new("iptables-restore")
                .arg("--noflush")
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("run iptables-restore")?;
            child
                .stdin
                .take()
                .context("no stdin")?
                .write_all(script.as_bytes())?;
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!(
                    "iptables-restore -t {}: {}",
                    table.table,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }
}

/// The soak's CNI setup: configuration, cache and host-local directories in
/// a temporary directory, and its bridge.
struct Lab {
    dir: tempfile::TempDir,
    /// The `CNI-` chains that existed before the soak.
    chains_before: BTreeSet<String>,
}

impl Lab {
    /// Removes what an earlier soak left (bridge, rules), then writes the
    /// configuration.
    fn new() -> Result<Self> {
        scrub()?;
        let dir = tempfile::tempdir()?;
        let lab = Self {
            dir,
            chains_before: Rules::read()?.chain_names,
        };
        std::fs::create_dir_all(lab.conf_dir())?;
        let conflist = format!(
            r#"{{
  "cniVersion": "1.0.0",
  "name": "{NETWORK}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{SUBNET}"}}]],
        "dataDir": "{}"
      }}
    }},
    {{"type": "firewall"}},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"#,
            lab.ipam_dir().display()
        );
        std::fs::write(lab.conf_dir().join("10-soak.conflist"), conflist)?;
        Ok(lab)
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    fn shim_args(&self) -> Vec<String> {
        [
            "--network-plugin",
            "cni",
            "--cni-conf-dir",
            &self.conf_dir().display().to_string(),
            "--cni-bin-dir",
            CNI_BIN,
            "--cni-cache-dir",
            &self.cache_dir().display().to_string(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// Says which `CNI-` chains appeared during the soak and were left (the
    /// plugins' shared ones, which they never delete).
    fn print_new_shared_chains(&self, after: &Sample) {
        let new: Vec<&String> = after
            .rules
            .chain_names
            .difference(&self.chains_before)
            .filter(|c| SHARED_CHAINS.iter().any(|s| c.ends_with(&format!("/{s}"))))
            .collect();
        if !new.is_empty() {
            println!(
                "shared CNI chains the plugins made during the soak (kept, as the plugins keep them): {new:?}"
            );
        }
    }

    /// Removes the soak's rules, chains and bridge, and its directories.
    fn remove(self) {
        if let Err(err) = scrub() {
            println!("warning: {err:#}");
        }
    }
}

/// Deletes the soak's iptables rules and per-pod chains and its bridge.
fn scrub() -> Result<()> {
    let rules = Rules::read()?;
    if rules.ours > 0 {
        println!("removing {} iptables rules of a soak", rules.ours);
        rules.delete()?;
    }
    if Path::new("/sys/class/net").join(BRIDGE).exists() {
        let out = Command::new("ip")
            .args(["link", "del", BRIDGE])
            .output()
            .context("run ip link del")?;
        if !out.status.success() {
            bail!(
                "ip link del {BRIDGE}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-DN-0123456789abcdef01234 - [0:0]
:CNI-DN-fedcba9876543210fedcb - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"dsoak\" id: \"abc\"" -m multiport --dports 51000 -j CNI-DN-0123456789abcdef01234
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"other\" id: \"def\"" -m multiport --dports 30000 -j CNI-DN-fedcba9876543210fedcb
-A CNI-DN-0123456789abcdef01234 -p tcp -m tcp --dport 51000 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-0123456789abcdef01234 -p tcp -m tcp --dport 51000 -j DNAT --to-destination 10.231.0.2:8080
-A CNI-DN-fedcba9876543210fedcb -p tcp -m tcp --dport 30000 -j DNAT --to-destination 10.233.4.2:80
COMMIT
"#;

    #[test]
    fn rules_of_the_soak_are_told_from_others() {
        let mut rules = Rules::default();
        rules.add_table("nat", SAVE);
        assert_eq!(rules.all, 6);
        // The jump with its comment, and both rules of its DNAT chain, the
        // one without a mark included.
        assert_eq!(rules.ours, 3);
        assert_eq!(rules.our_chains, 1);
        assert_eq!(rules.cni_chains, 3);
        let table = &rules.tables[0];
        assert_eq!(table.chains, ["CNI-DN-0123456789abcdef01234"]);
        // Only the jump is deleted by rule; the chain is flushed whole.
        assert_eq!(table.rules.len(), 1);
        assert!(table.rules[0].starts_with("CNI-HOSTPORT-DNAT "));
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal(10), "10th");
        assert_eq!(ordinal(2), "2nd");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(0), "no");
    }
}
