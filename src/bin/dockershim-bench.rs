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
//! It needs the test image `dockershim-test/busybox:latest`
//! (`integration/test.sh` builds it) and runs as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dockershim::cri::v1::runtime_service_client::RuntimeServiceClient;
use dockershim::cri::*;
use dockershim::docker::DockerApi;
use dockershim::docker::client::BollardDocker;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tonic::transport::{Channel, Endpoint};

const IMAGE: &str = "dockershim-test/busybox:latest";
const LABEL: &str = "dockershim-bench";

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: u64| -> Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .context(format!("{name} needs a value"))?
                .parse()
                .context(format!("{name} takes a number")),
            None => Ok(default),
        }
    };
    match args.first().map(String::as_str) {
        Some("logs") => logs(flag("--containers", 100)?, flag("--mib-per-container", 1)?).await,
        _ => bail!("usage: dockershim-bench logs [--containers N] [--mib-per-container M]"),
    }
}

/// A shim process of this build on a private socket.
struct Shim {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Shim {
    async fn start() -> Result<Self> {
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
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::UnixStream::connect(&socket).await.is_err() {
            if Instant::now() > deadline {
                bail!("the shim did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            socket,
            _dir: dir,
        })
    }

    async fn client(&self) -> Result<RuntimeServiceClient<Channel>> {
        let socket = self.socket.clone();
        let channel = Endpoint::try_from("http://[::]:50051")?
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(socket).await?,
                    ))
                }
            }))
            .await?;
        Ok(RuntimeServiceClient::new(channel))
    }

    /// User plus system CPU time of the shim so far.
    fn cpu(&self) -> Result<Duration> {
        cpu_of(self.child.id())
    }

    /// Resident memory of the shim, in KiB.
    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .context("no VmRSS")?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("odd VmRSS")?
            .parse()?)
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let docker = BollardDocker::connect("unix:///var/run/docker.sock").await?;
    let own_before = cpu_of(std::process::id())?;
    let mut read = 0u64;
    for id in &ids {
        let mut body = docker.container_logs(id, false, None).await?;
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
