//! The three runtimes a kubelet is run against, each started fresh for one
//! case in the case's directory and stopped after it: dockershim and
//! cri-dockerd on the benchmark's Docker engine, and a private containerd
//! 2.x with its CRI plugin. Each knows the processes a node pays for it
//! (the runtime, the engine's daemons, the container shims) and counts what
//! its pods left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use dockershim::api::*;
use dockershim::naming::TYPE_LABEL;
use tonic::transport::Channel;

use crate::containerd::{self, Containerd, terminate};
use crate::procs;

/// Where `integration/rollback.sh build` puts cri-dockerd.
const CRI_DOCKERD: &str = "/var/cache/dockershim-test/cri-dockerd-v0.3.17/cri-dockerd";
/// Debian unstable's containerd 2.1, unpacked by `integration/dockerd.sh
/// fetch 28`.
const CONTAINERD_2: &str = "/var/cache/dockershim-test/docker-28/bin/containerd";
/// The CNI network of the Docker runtimes' pods: a bridge and subnet of
/// their own (containerd's are in `containerd.rs`), one case at a time.
const BRIDGE: &str = "dsbnode0";
const SUBNET: &str = "10.246.0.0/16";
/// containerd 2.x's network: its own, not the peer benchmarks' (`dpeer0`),
/// so a `frontier` run may go on beside.
const CONTAINERD_NET: containerd::Net = containerd::Net {
    bridge: "dsbnode1",
    subnet: "10.247.0.0/16",
    name: "dockershim-bench-node-cd",
};
const NETWORK: &str = "dockershim-bench-node";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dockershim,
    CriDockerd,
    Containerd,
}

impl Kind {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "dockershim" => Kind::Dockershim,
            "cri-dockerd" => Kind::CriDockerd,
            "containerd" => Kind::Containerd,
            other => bail!("unknown runtime {other} (dockershim, cri-dockerd, containerd)"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Dockershim => "dockershim",
            Kind::CriDockerd => "cri-dockerd",
            Kind::Containerd => "containerd",
        }
    }

    pub fn on_docker(self) -> bool {
        self != Kind::Containerd
    }
}

/// The binaries a run needs, checked before anything starts.
pub struct Binaries {
    pub shim: PathBuf,
    pub cri_dockerd: PathBuf,
    pub containerd: PathBuf,
}

impl Binaries {
    pub fn find(kinds: &[Kind]) -> Result<Self> {
        let shim = std::env::current_exe()?
            .parent()
            .context("the bench binary has no directory")?
            .join("dockershim");
        let cri_dockerd = std::env::var("DOCKERSHIM_BENCH_CRI_DOCKERD")
            .map_or_else(|_| PathBuf::from(CRI_DOCKERD), PathBuf::from);
        let containerd = std::env::var("DOCKERSHIM_BENCH_CONTAINERD2")
            .map_or_else(|_| PathBuf::from(CONTAINERD_2), PathBuf::from);
        for kind in kinds {
            let (path, how) = match kind {
                Kind::Dockershim => (&shim, "build it beside the bench (cargo build --release)"),
                Kind::CriDockerd => (&cri_dockerd, "integration/rollback.sh build"),
                Kind::Containerd => (&containerd, "integration/dockerd.sh fetch 28"),
            };
            if !path.exists() {
                bail!("no {} at {}: {how}", kind.name(), path.display());
            }
        }
        Ok(Self {
            shim,
            cri_dockerd,
            containerd,
        })
    }
}

/// The Docker engine's own processes, found through its socket: dockerd
/// and the containerd it was started with (`--containerd <socket>`).
#[derive(Clone)]
pub struct Engine {
    pub socket: PathBuf,
    pub dockerd: u32,
    pub containerd: u32,
    pub containerd_socket: PathBuf,
    /// The runc of dockerd's default runtime (`--default-runtime <name>`
    /// with `--add-runtime <name>=<path>`), else Debian 12's; containerd
    /// is given the same, so every runtime's containers run on one runc.
    pub runc: PathBuf,
}

impl Engine {
    pub fn find(socket: &Path) -> Result<Self> {
        let dockerd = procs::listener_of(socket).context("find dockerd")?;
        let args = procs::cmdline(dockerd);
        let containerd_socket = flag_values(&args, "--containerd")
            .next()
            .map(PathBuf::from)
            .context("dockerd was not started with --containerd (use integration/dockerd.sh)")?;
        let containerd =
            procs::listener_of(&containerd_socket).context("find Docker's containerd")?;
        let runc = match flag_values(&args, "--default-runtime").last() {
            None | Some("runc") => PathBuf::from(containerd::RUNC),
            Some(name) => flag_values(&args, "--add-runtime")
                .filter_map(|v| v.split_once('='))
                .find(|(n, _)| *n == name)
                .map(|(_, path)| PathBuf::from(path))
                .with_context(|| {
                    format!("dockerd's default runtime {name} has no --add-runtime {name}=<path>")
                })?,
        };
        Ok(Self {
            socket: socket.to_path_buf(),
            dockerd,
            containerd,
            containerd_socket,
            runc,
        })
    }
}

/// The values a command line gives `flag`, as `flag value` or `flag=value`.
fn flag_values<'a>(args: &'a [String], flag: &'a str) -> impl Iterator<Item = &'a str> {
    args.iter().enumerate().filter_map(move |(i, arg)| {
        if arg == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            arg.strip_prefix(flag)?.strip_prefix('=')
        }
    })
}

/// One runtime, started for one case.
pub struct Runtime {
    pub kind: Kind,
    socket: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    containerd: Option<Containerd>,
    engine: Option<Engine>,
}

impl Runtime {
    /// Starts the runtime with its state in `dir` and waits until its CRI
    /// answers. `pause` is the sandbox image, which Docker holds.
    pub async fn start(
        kind: Kind,
        bins: &Binaries,
        engine: &Engine,
        dir: &Path,
        pause: &str,
        images: &[&str],
    ) -> Result<Self> {
        let mut me = Self {
            kind,
            socket: dir.join("cri.sock"),
            dir: dir.to_path_buf(),
            child: None,
            containerd: None,
            engine: None,
        };
        if kind == Kind::Containerd {
            let mut all = vec![pause];
            all.extend(images);
            let c =
                Containerd::start_v2x(bins.containerd.clone(), &engine.runc, CONTAINERD_NET, &all)
                    .await?;
            me.socket = c.socket().to_path_buf();
            me.containerd = Some(c);
            return Ok(me);
        }
        if Command::new("ip")
            .args(["link", "show", BRIDGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            bail!("bridge {BRIDGE} exists already: a node run was killed? (ip link del {BRIDGE})");
        }
        me.engine = Some(engine.clone());
        std::fs::create_dir_all(dir.join("cni"))?;
        std::fs::write(dir.join("cni/10-node.conflist"), cni_config(dir))?;
        let binary = match kind {
            Kind::Dockershim => &bins.shim,
            _ => &bins.cri_dockerd,
        };
        let child = Command::new(binary)
            .arg("--container-runtime-endpoint")
            .arg(format!("unix://{}", me.socket.display()))
            .arg("--docker-endpoint")
            .arg(format!("unix://{}", engine.socket.display()))
            .args(["--network-plugin", "cni", "--cni-bin-dir", "/usr/lib/cni"])
            .arg("--cni-conf-dir")
            .arg(dir.join("cni"))
            .arg("--cni-cache-dir")
            .arg(dir.join("cni-cache"))
            .arg("--cri-dockerd-root-directory")
            .arg(dir.join("root"))
            .args(["--pod-infra-container-image", pause])
            .args(["--streaming-bind-addr", "127.0.0.1", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("runtime.log"))?)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        me.child = Some(child);
        me.wait_ready().await?;
        Ok(me)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited ({status}): {}",
                    self.kind.name(),
                    self.log_tail()
                );
            }
            if let Ok(mut rt) = crate::peer::cri_client(&self.socket).await
                && rt.version(VersionRequest::default()).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}'s CRI did not answer in 30 s: {}",
                    self.kind.name(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("runtime.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn client(&self) -> Result<RuntimeServiceClient<Channel>> {
        crate::peer::cri_client(&self.socket).await
    }

    /// The CRI runtime's own process: the shim, cri-dockerd, or containerd.
    pub fn pid(&self) -> u32 {
        match (&self.child, &self.containerd) {
            (Some(child), _) => child.id(),
            (None, Some(c)) => c.pid(),
            (None, None) => 0,
        }
    }

    /// The engine's daemons besides the runtime: dockerd and Docker's
    /// containerd (none for containerd, which is the runtime).
    pub fn engine_pids(&self) -> Vec<u32> {
        self.engine
            .as_ref()
            .map(|e| vec![e.dockerd, e.containerd])
            .unwrap_or_default()
    }

    /// The container shims now serving this runtime's containers.
    pub fn shims(&self) -> Vec<u32> {
        match (&self.engine, &self.containerd) {
            (Some(e), _) => procs::shims_of(&e.containerd_socket),
            (None, Some(c)) => procs::shims_of(c.socket()),
            (None, None) => Vec::new(),
        }
    }

    /// What the pods left: each kind of leftover and how many. All must be
    /// zero once the kubelet has removed every pod.
    pub async fn leftovers(&self, nsfs_before: usize) -> Result<Vec<(&'static str, usize)>> {
        let mut rt = self.client().await?;
        let (sandboxes, containers) = crate::relist_peer::relist(&mut rt).await?;
        let mut out = vec![
            ("CRI sandboxes", sandboxes),
            ("CRI containers", containers),
            ("container shims", self.shims().len()),
            ("netns mounts", nsfs_mounts().saturating_sub(nsfs_before)),
        ];
        let (ipam, bridge) = match &self.containerd {
            Some(c) => (
                c.dir().join("ipam").join(CONTAINERD_NET.name),
                CONTAINERD_NET.bridge,
            ),
            None => (self.dir.join("ipam").join(NETWORK), BRIDGE),
        };
        out.push(("host-local IPs", leased_ips(&ipam)));
        out.push(("veths on the bridge", veths(bridge)));
        if self.kind.on_docker() {
            out.push(("Docker CRI containers", docker_cri_containers()?));
            out.push((
                "CNI cache files",
                crate::soak::count_files(&self.dir.join("cni-cache")),
            ));
            out.push((
                "sandbox checkpoints",
                crate::soak::count_files(&self.dir.join("root/sandbox")),
            ));
        } else {
            out.push(("CNI cache files", containerd_cni_results()));
        }
        Ok(out)
    }

    /// Stops and removes every pod the runtime still lists, so that the
    /// engine is clean for the next case whatever went wrong. Returns how
    /// many sandboxes and containers it removed.
    pub async fn force_clean(&self) -> Result<usize> {
        let mut rt = self.client().await?;
        let mut removed = 0;
        let containers = rt
            .list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
        for c in containers {
            let _ = rt
                .stop_container(StopContainerRequest {
                    container_id: c.id.clone(),
                    timeout: 0,
                })
                .await;
            rt.remove_container(RemoveContainerRequest {
                container_id: c.id.clone(),
            })
            .await
            .with_context(|| format!("remove container {}", c.id))?;
            removed += 1;
        }
        let sandboxes = rt
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items;
        for s in sandboxes {
            let _ = rt
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await;
            rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await
            .with_context(|| format!("remove sandbox {}", s.id))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Stops the runtime (containerd also cleans its directory, shims and
    /// bridge) and deletes the Docker runtimes' bridge.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(child.id(), Duration::from_secs(10));
            let _ = child.wait();
        }
        if let Some(mut c) = self.containerd.take() {
            c.stop();
        }
        if self.kind.on_docker() {
            let _ = Command::new("ip")
                .args(["link", "del", BRIDGE])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Docker runtimes' CNI network: a bridge with host-local addresses
/// kept in the case's directory, and portmap (as a node's CNI has it).
fn cni_config(dir: &Path) -> String {
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "{NETWORK}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{SUBNET}" }}]],
        "dataDir": "{}"
      }}
    }},
    {{ "type": "portmap", "capabilities": {{ "portMappings": true }} }}
  ]
}}
"#,
        dir.join("ipam").display()
    )
}

/// Network namespace mounts on the host (`nsfs`), wherever they are.
pub fn nsfs_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .filter(|l| {
                    l.split_once(" - ")
                        .is_some_and(|(_, rest)| rest.starts_with("nsfs "))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Addresses host-local holds leased: one file per address, besides its
/// `lock` and `last_reserved_ip.*`.
fn leased_ips(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name != "lock" && !name.starts_with("last_reserved_ip")
                })
                .count()
        })
        .unwrap_or(0)
}

fn veths(bridge: &str) -> usize {
    Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0)
}

/// Entries of containerd's network in libcni's result cache.
fn containerd_cni_results() -> usize {
    std::fs::read_dir("/var/lib/cni/results")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(CONTAINERD_NET.name)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Containers the Docker engine holds that a CRI runtime made (the shim
/// and cri-dockerd both label them so).
pub fn docker_cri_containers() -> Result<usize> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label={TYPE_LABEL}"))
        .output()
        .context("run docker ps")?;
    if !out.status.success() {
        bail!("docker ps: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

#[cfg(test)]
mod tests {
    use super::flag_values;

    #[test]
    fn flag_values_reads_both_spellings_in_order() {
        let args: Vec<String> = [
            "dockerd",
            "--add-runtime",
            "clamp=/x/runc-oom-clamp",
            "--add-runtime=other=/y",
            "--default-runtime",
            "clamp",
            "--add-runtimes=no",
        ]
        .map(String::from)
        .to_vec();
        let added: Vec<_> = flag_values(&args, "--add-runtime").collect();
        assert_eq!(added, ["clamp=/x/runc-oom-clamp", "other=/y"]);
        assert_eq!(
            flag_values(&args, "--default-runtime").last(),
            Some("clamp")
        );
        assert_eq!(flag_values(&args, "--containerd").next(), None);
    }
}
