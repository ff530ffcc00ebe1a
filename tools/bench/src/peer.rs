//! What the peer benchmarks (`exec`, `logpipe`, `stream`) share: a CRI
//! client for any socket (the shim's or containerd's), pods made and
//! removed the same way on both runtimes, Docker's own processes to charge,
//! and the table of figures against their targets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::Docker;
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use dockershim::api::*;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::{IMAGE, LABEL, procs};

/// A CRI client on a Unix socket. Its HTTP/2 receive window adapts to the
/// bandwidth-delay product, as grpc-go's (the kubelet's and crictl's) does
/// by default: with a fixed 64 KiB window a relist of hundreds of pods
/// waits on WINDOW_UPDATE round trips that grpc-go's growing window avoids.
pub async fn cri_client(socket: &Path) -> Result<RuntimeServiceClient<Channel>> {
    let socket = socket.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:50051")?
        .timeout(Duration::from_secs(120))
        .http2_adaptive_window(true)
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

/// A raw Docker client on the engine the bench uses.
pub async fn docker() -> Result<Docker> {
    Docker::connect_with_unix(&crate::docker_endpoint(), 600, bollard::API_DEFAULT_VERSION)?
        .negotiate_version()
        .await
        .context("connect to Docker")
}

/// One container of a pod to be made.
#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub command: Vec<String>,
    /// Host directory mounted read-only at `/go` (a start signal).
    pub go_dir: Option<PathBuf>,
}

impl Spec {
    pub fn new(name: impl Into<String>, command: &[&str]) -> Self {
        Self {
            name: name.into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            go_dir: None,
        }
    }
}

/// Whose network namespace a pod's containers share.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PodNetwork {
    /// The pod's own, set up by the runtime (Docker's bridge, or CNI).
    Pod,
    /// The node's (hostNetwork): no address is taken from the runtime's
    /// pool, so a bridge's subnet does not limit how many pods run.
    Node,
}

/// A pod made through a CRI runtime.
pub struct Pod {
    pub sandbox: String,
    pub containers: Vec<String>,
    /// Each container's CRI log file, in the order of `containers`.
    pub logs: Vec<PathBuf>,
}

/// Makes a pod as the kubelet does (sandbox, then each container created
/// and started), every object labelled [`LABEL`]; logs go under `logs_dir`.
pub async fn make_pod(
    mut rt: RuntimeServiceClient<Channel>,
    logs_dir: PathBuf,
    name: String,
    network: PodNetwork,
    specs: Vec<Spec>,
) -> Result<Pod> {
    let labels = HashMap::from([(LABEL.to_string(), "1".to_string())]);
    let namespaces = (network == PodNetwork::Node).then(|| NamespaceOption {
        network: NamespaceMode::Node as i32,
        ..Default::default()
    });
    let pod_logs = logs_dir.join(&name);
    // containerd opens the log file without creating its directory.
    std::fs::create_dir_all(&pod_logs)?;
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            namespace: "bench".into(),
            uid: format!("bench-{}-{name}", std::process::id()),
            attempt: 0,
        }),
        log_directory: pod_logs.display().to_string(),
        labels: labels.clone(),
        linux: namespaces.clone().map(|namespaces| LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces),
                ..Default::default()
            }),
            ..Default::default()
        }),
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
    let mut pod = Pod {
        sandbox: sandbox.clone(),
        containers: Vec::new(),
        logs: Vec::new(),
    };
    for spec in specs {
        let mounts = spec
            .go_dir
            .iter()
            .map(|dir| Mount {
                container_path: "/go".into(),
                host_path: dir.display().to_string(),
                readonly: true,
                ..Default::default()
            })
            .collect();
        let id = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: spec.name.clone(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: IMAGE.into(),
                        ..Default::default()
                    }),
                    command: spec.command,
                    log_path: format!("{}.log", spec.name),
                    labels: labels.clone(),
                    mounts,
                    linux: namespaces.clone().map(|namespaces| LinuxContainerConfig {
                        security_context: Some(LinuxContainerSecurityContext {
                            namespace_options: Some(namespaces),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                sandbox_config: Some(config.clone()),
            })
            .await
            .context("CreateContainer")?
            .into_inner()
            .container_id;
        rt.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .context("StartContainer")?;
        pod.logs.push(pod_logs.join(format!("{}.log", spec.name)));
        pod.containers.push(id);
    }
    Ok(pod)
}

/// Makes `pods` pods of `per_pod` containers each, [`crate::CONCURRENCY`]
/// at a time; the containers are named `{prefix}{i}` for a global `i`.
pub async fn make_pods(
    rt: &RuntimeServiceClient<Channel>,
    logs_dir: &Path,
    pods: usize,
    per_pod: usize,
    network: PodNetwork,
    spec: impl Fn(usize) -> Spec,
) -> Result<Vec<Pod>> {
    let jobs = (0..pods)
        .map(|p| {
            let specs = (0..per_pod).map(|c| spec(p * per_pod + c)).collect();
            make_pod(
                rt.clone(),
                logs_dir.to_path_buf(),
                format!("peer{p}"),
                network,
                specs,
            )
        })
        .collect();
    let mut made = Vec::new();
    for result in crate::concurrently(jobs, Duration::from_secs(900)).await? {
        made.push(result?);
    }
    Ok(made)
}

/// Stops and removes every pod labelled [`LABEL`] the runtime lists, with
/// their containers (StopContainer with timeout 0 first: `sleep` as PID 1
/// ignores SIGTERM). Returns how many pods it removed.
pub async fn remove_all(rt: &RuntimeServiceClient<Channel>) -> Result<usize> {
    let mut rt = rt.clone();
    let ours = HashMap::from([(LABEL.to_string(), "1".to_string())]);
    let containers = rt
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                label_selector: ours.clone(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .containers;
    let jobs = containers
        .into_iter()
        .map(|c| {
            let mut rt = rt.clone();
            async move {
                rt.stop_container(StopContainerRequest {
                    container_id: c.id,
                    timeout: 0,
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .collect();
    for result in crate::concurrently(jobs, Duration::from_secs(600)).await? {
        result.context("StopContainer")?;
    }
    let sandboxes = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: ours,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .items;
    let count = sandboxes.len();
    let jobs = sandboxes
        .into_iter()
        .map(|s| {
            let mut rt = rt.clone();
            async move {
                rt.stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
                .context("StopPodSandbox")?;
                rt.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: s.id,
                })
                .await
                .context("RemovePodSandbox")?;
                anyhow::Ok(())
            }
        })
        .collect();
    for result in crate::concurrently(jobs, Duration::from_secs(600)).await? {
        result?;
    }
    Ok(count)
}

/// The Docker processes a container's work passes through: dockerd, the
/// engine's containerd, and the containerd shims of the given containers
/// (each the parent of its container's first process).
pub struct DockerSide {
    pub dockerd: u32,
    pub containerd: Option<u32>,
    pub shims: Vec<u32>,
}

impl DockerSide {
    pub async fn find(docker: &Docker, containers: &[String]) -> Result<Self> {
        let endpoint = crate::docker_endpoint();
        let socket = endpoint.strip_prefix("unix://").unwrap_or(&endpoint);
        let dockerd = procs::listener_of(Path::new(socket))?;
        let mut shims = Vec::new();
        for id in containers {
            let pid = docker
                .inspect_container(id, None)
                .await?
                .state
                .and_then(|s| s.pid)
                .filter(|&p| p > 0)
                .with_context(|| format!("container {id} has no process"))?;
            let shim = procs::parent(pid as u32)?;
            if !shims.contains(&shim) {
                shims.push(shim);
            }
        }
        let containerd = shims
            .first()
            .and_then(|&s| procs::shim_address(s))
            .and_then(|address| procs::listener_of(Path::new(&address)).ok());
        Ok(Self {
            dockerd,
            containerd,
            shims,
        })
    }

    /// dockerd, then containerd and the shims.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.dockerd];
        pids.extend(self.containerd);
        pids.extend(&self.shims);
        pids
    }
}

/// One line of a part's closing table.
pub struct Row {
    figure: String,
    value: String,
    target: String,
    pass: Option<bool>,
}

/// The closing table of a part: each figure, its target and whether it
/// was met.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    pub fn row(
        &mut self,
        figure: impl Into<String>,
        value: String,
        target: &str,
        pass: Option<bool>,
    ) {
        self.rows.push(Row {
            figure: figure.into(),
            value,
            target: target.into(),
            pass,
        });
    }

    pub fn print(&self, title: &str) {
        println!("\n== summary: {title}");
        println!("{:<52} {:>28}  {:<26} result", "figure", "value", "target");
        for row in &self.rows {
            let result = match row.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "",
            };
            println!(
                "{:<52} {:>28}  {:<26} {result}",
                row.figure, row.value, row.target
            );
        }
    }
}

/// The machine and the versions compared, for the printout.
pub async fn machine(docker: &Docker, containerd: &str) -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let version = docker.version().await.ok();
    format!(
        "nproc {nproc}, kernel {kernel}, Docker {} (API {}), containerd {containerd}",
        version
            .as_ref()
            .and_then(|v| v.version.clone())
            .unwrap_or_default(),
        version
            .as_ref()
            .and_then(|v| v.api_version.clone())
            .unwrap_or_default(),
    )
}
