//! Test support: a real shim process on a private socket against the real
//! Docker daemon, CRI clients over that socket, test images made locally,
//! and clean-up of every Docker object a test created.
//!
//! The tests need a running Docker: a missing daemon fails them (with a
//! message saying how to start it), it never skips them.

#![allow(dead_code)]

pub mod own_docker;
pub mod rss;
pub mod stream_client;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use dockershim::cri::v1::image_service_client::ImageServiceClient;
use dockershim::cri::v1::runtime_service_client::RuntimeServiceClient;
use dockershim::cri::*;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// Local image every test container runs: busybox, imported without a registry.
pub const TEST_IMAGE: &str = "dockershim-test/busybox:latest";
/// Label put on every pod and container the tests create.
pub const TEST_LABEL: &str = "dockershim-test-run";
/// Pause image that cannot be found or pulled, to exercise the built-in one.
pub const UNPULLABLE_PAUSE: &str = "127.0.0.1:9/dockershim-test/no-such-pause:0";

/// Docker socket the tests (and the shims they start) use.
pub fn docker_socket() -> String {
    std::env::var("DOCKERSHIM_TEST_DOCKER").unwrap_or_else(|_| "/var/run/docker.sock".into())
}

/// A bollard client for assertions on what Docker actually did.
pub async fn docker() -> Docker {
    let docker = Docker::connect_with_unix(&docker_socket(), 120, bollard::API_DEFAULT_VERSION)
        .expect("docker client")
        .negotiate_version()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Docker is not reachable at {}: {e}. The integration tests need a running \
                 Docker daemon: run integration/test.sh, which installs and starts it",
                docker_socket()
            )
        });
    docker.ping().await.expect("docker ping");
    docker
}

/// Whether Docker keeps its images in the containerd image store (Docker
/// 29's default, or 28 with the containerd-snapshotter feature).
pub async fn containerd_image_store() -> bool {
    docker()
        .await
        .info()
        .await
        .expect("docker info")
        .driver_status
        .unwrap_or_default()
        .iter()
        .any(|pair| pair.get(1).map(String::as_str) == Some("io.containerd.snapshotter.v1"))
}

/// A name no other test (or earlier run) uses: lower-case, no `_`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// Checks that [`TEST_IMAGE`] exists; integration/test.sh builds it from
/// the host's static busybox.
pub fn ensure_test_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", TEST_IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the docker CLI")
            .success();
        assert!(
            present,
            "{TEST_IMAGE} is missing: run integration/test.sh, which builds it"
        );
    });
}

/// A shim process serving on its own socket.
pub struct Shim {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Shim {
    /// Starts a shim whose pause image cannot be pulled, so the built-in one
    /// is used (the test machines have no registry access).
    pub async fn start() -> Shim {
        Self::start_with(&[
            "--pod-infra-container-image",
            UNPULLABLE_PAUSE,
            "--pod-infra-pull-timeout",
            "10",
        ])
        .await
    }

    /// Starts a shim with extra flags.
    pub async fn start_with(extra: &[&str]) -> Shim {
        Self::launch(None, extra).await
    }

    /// Starts a shim listening on `socket`, with extra flags.
    pub async fn start_on(socket: &Path, extra: &[&str]) -> Shim {
        Self::launch(Some(socket), extra).await
    }

    async fn launch(socket: Option<&Path>, extra: &[&str]) -> Shim {
        docker().await;
        ensure_test_image();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let socket = socket.map_or_else(|| dir.join("cri.sock"), Path::to_path_buf);
        let mut args = vec![
            "--container-runtime-endpoint".to_string(),
            format!("unix://{}", socket.display()),
            "--cri-dockerd-root-directory".to_string(),
            dir.join("state").display().to_string(),
            "--log-level".to_string(),
            "debug".to_string(),
        ];
        if !extra.contains(&"--docker-endpoint") {
            args.extend([
                "--docker-endpoint".to_string(),
                format!("unix://{}", docker_socket()),
            ]);
        }
        if !extra.contains(&"--network-plugin") {
            // Docker's bridge unless the test asks for CNI, whatever the
            // machine's /etc/cni holds.
            args.extend(["--network-plugin".to_string(), "docker".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut shim = Shim {
            child: None,
            log: dir.join("shim.log"),
            dir,
            socket,
            args,
            _tmp: tmp,
        };
        shim.spawn().await;
        shim
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_dockershim"))
            .args(&self.args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockershim");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.socket.exists() && tokio::net::UnixStream::connect(&self.socket).await.is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("dockershim exited with {status} at start:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "dockershim did not listen within 30 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The shim's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The shim's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the shim with SIGKILL (no clean-up of its own) and waits.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running shim");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "shim ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the same shim again (same socket and flags) after [`kill`].
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub async fn channel(&self) -> Channel {
        let socket = self.socket.clone();
        Endpoint::try_from("http://[::]:50051")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(socket).await?,
                    ))
                }
            }))
            .await
            .expect("connect to the shim")
    }

    /// A runtime-service client.
    pub async fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel().await)
    }

    /// An image-service client.
    pub async fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel().await)
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes, when dropped, every Docker container carrying this run's label,
/// so a failing test leaves nothing behind.
pub struct Cleanup {
    pub run: String,
}

impl Cleanup {
    pub fn new() -> Self {
        Cleanup { run: unique("run") }
    }

    /// Labels to put on every pod and container of the test.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(TEST_LABEL.to_string(), self.run.clone())])
    }

    /// Ids of the Docker containers (any state) carrying this run's label.
    pub fn docker_ids(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label={TEST_LABEL}={}", self.run),
            ])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = self.docker_ids();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
}

/// A pod config with the test label, a hostname and a log directory.
pub fn pod_config(cleanup: &Cleanup, name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            namespace: "dockershim-test".to_string(),
            uid: unique("uid"),
            attempt: 0,
        }),
        hostname: name.chars().take(60).collect(),
        log_directory: format!("/tmp/dockershim-test-logs/{name}"),
        labels: cleanup.labels(),
        annotations: HashMap::from([(
            "test.dockershim/purpose".to_string(),
            "integration".to_string(),
        )]),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

/// A busybox container config running `sh -c script`, with the test label.
pub fn container_config(cleanup: &Cleanup, name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: TEST_IMAGE.to_string(),
            ..Default::default()
        }),
        command: vec!["sh".to_string(), "-c".to_string(), script.to_string()],
        log_path: format!("{name}/0.log"),
        labels: cleanup.labels(),
        ..Default::default()
    }
}

/// The CRI runtime client the tests drive.
pub type Cri = RuntimeServiceClient<Channel>;

/// Stops and removes a pod, as the kubelet does when a pod is deleted.
pub async fn stop_and_remove_pod(rt: &mut Cri, id: &str) {
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    })
    .await
    .expect("StopPodSandbox");
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    })
    .await
    .expect("RemovePodSandbox");
}

/// Runs a pod and returns its id.
pub async fn run_pod(rt: &mut RuntimeServiceClient<Channel>, config: &PodSandboxConfig) -> String {
    rt.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    })
    .await
    .expect("RunPodSandbox")
    .into_inner()
    .pod_sandbox_id
}

/// Creates a container in a pod (not started); returns its id.
pub async fn create_container(
    rt: &mut RuntimeServiceClient<Channel>,
    pod_id: &str,
    pod: &PodSandboxConfig,
    config: ContainerConfig,
) -> String {
    rt.create_container(CreateContainerRequest {
        pod_sandbox_id: pod_id.to_string(),
        config: Some(config),
        sandbox_config: Some(pod.clone()),
    })
    .await
    .expect("CreateContainer")
    .into_inner()
    .container_id
}

/// Puts a pod in the host's network namespace (for a Docker whose bridge
/// leads nowhere, such as a test's own daemon).
pub fn use_host_network(pod: &mut PodSandboxConfig) {
    pod.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: NamespaceMode::Node as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
}

/// Creates and starts a container in a pod; returns its id.
pub async fn start_container(
    rt: &mut RuntimeServiceClient<Channel>,
    pod_id: &str,
    pod: &PodSandboxConfig,
    config: ContainerConfig,
) -> String {
    let id = create_container(rt, pod_id, pod, config).await;
    rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("StartContainer");
    id
}

/// Runs a command in a container and returns (stdout, stderr, exit code).
pub async fn exec(
    rt: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[&str],
) -> (String, String, i32) {
    let out = rt
        .exec_sync(ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.exit_code,
    )
}

/// Waits until `check` holds, polling for up to `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A container's status (not verbose).
pub async fn container_status(rt: &mut RuntimeServiceClient<Channel>, id: &str) -> ContainerStatus {
    rt.container_status(ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: false,
    })
    .await
    .expect("ContainerStatus")
    .into_inner()
    .status
    .expect("a status")
}

/// The host PID of a running container's main process.
pub async fn container_pid(id: &str) -> i64 {
    docker()
        .await
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect")
        .state
        .and_then(|s| s.pid)
        .expect("a pid")
}

/// A pod sandbox's status (not verbose).
pub async fn sandbox_status(rt: &mut RuntimeServiceClient<Channel>, id: &str) -> PodSandboxStatus {
    rt.pod_sandbox_status(PodSandboxStatusRequest {
        pod_sandbox_id: id.to_string(),
        verbose: false,
    })
    .await
    .expect("PodSandboxStatus")
    .into_inner()
    .status
    .expect("a status")
}
