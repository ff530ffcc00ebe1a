//! A private containerd with its CRI plugin, the peer the shim is compared
//! with: started by the benchmark from a config of its own in a temporary
//! directory (its own root, state, sockets, CNI configuration and bridge),
//! and stopped by it again, also after a failure.
//!
//! Nothing it uses may clash with the containerds of the Docker engines on
//! the machine: the ttrpc socket lives beside its gRPC socket, the debug and
//! metrics endpoints are off, network namespaces are mounted under its
//! state, host-local keeps its leases in the directory, and the bridge and
//! subnet (`dpeer0`, 10.232.0.0/16) are its own. It holds only the images
//! the benchmark copies into it from Docker (`docker save`, `ctr import`):
//! there is no registry.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dockershim::api::VersionRequest;
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

use crate::procs;

/// The CNI network of a private containerd: bridge, subnet and network
/// name (libcni caches results under the name in [`CNI_RESULTS`]).
#[derive(Clone, Copy)]
pub struct Net {
    pub bridge: &'static str,
    pub subnet: &'static str,
    pub name: &'static str,
}

/// The peer benchmarks' network.
pub const PEER_NET: Net = Net {
    bridge: BRIDGE,
    subnet: SUBNET,
    name: NETWORK,
};

/// The bridge the CNI configuration creates, and its subnet.
const BRIDGE: &str = "dpeer0";
const SUBNET: &str = "10.232.0.0/16";
/// The CNI network's name; libcni caches results under it in
/// [`CNI_RESULTS`].
const NETWORK: &str = "dockershim-bench-peer";
/// Where Debian's CNI plugins are.
const CNI_BIN: &str = "/usr/lib/cni";
/// Where libcni caches each attachment's result.
const CNI_RESULTS: &str = "/var/lib/cni/results";
/// Debian 12's runc, the one the Docker engines use too.
pub const RUNC: &str = "/usr/sbin/runc";

/// containerd binaries to try, newest first: Debian 13's 1.7 unpacked by
/// `integration/dockerd.sh fetch 26`, then the system's (Debian 12's 1.6).
/// `DOCKERSHIM_BENCH_CONTAINERD` names another one.
const CANDIDATES: &[&str] = &[
    "/var/cache/dockershim-test/docker-26/bin/containerd",
    "/usr/bin/containerd",
];

/// A containerd process the benchmark started, and everything it keeps.
pub struct Containerd {
    child: Child,
    dir: PathBuf,
    /// Keeps the directory until the process is stopped and its mounts gone.
    _temp: tempfile::TempDir,
    socket: PathBuf,
    /// `containerd --version`'s third word.
    pub version: String,
    /// cgroup directories named `k8s.io` that existed before the start, so
    /// the stop removes only those it created.
    cgroups_before: Vec<PathBuf>,
    /// libcni's result cache before the start (`None`: no such directory);
    /// libcni keeps it in `/var/lib/cni` whatever the configuration says.
    cni_results_before: Option<Vec<std::ffi::OsString>>,
    net: Net,
    stopped: bool,
}

impl Containerd {
    /// Starts containerd with the CRI plugin on a private socket and copies
    /// the given Docker images into its `k8s.io` namespace; the first is the
    /// sandbox (pause) image.
    pub async fn start(images: &[&str]) -> Result<Self> {
        Self::start_binary(
            pick_binary()?,
            Format::V2,
            Path::new(RUNC),
            PEER_NET,
            images,
        )
        .await
    }

    /// Like [`Containerd::start`], with a containerd 2.x binary (which
    /// reads only a version-3 configuration).
    /// It uses its own network `net`, so it can run beside a peer
    /// benchmark's containerd. Its runc shim runs `runc`, so it can use
    /// the same one as a Docker engine beside it.
    pub async fn start_v2x(
        binary: PathBuf,
        runc: &Path,
        net: Net,
        images: &[&str],
    ) -> Result<Self> {
        if !binary.with_file_name("containerd-shim-runc-v2").exists() {
            bail!("no containerd-shim-runc-v2 beside {}", binary.display());
        }
        Self::start_binary(binary, Format::V3, runc, net, images).await
    }

    async fn start_binary(
        binary: PathBuf,
        format: Format,
        runc: &Path,
        net: Net,
        images: &[&str],
    ) -> Result<Self> {
        let bin_dir = binary
            .parent()
            .context("containerd has no directory")?
            .to_path_buf();
        let version = Command::new(&binary)
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default();
        if Command::new("ip")
            .args(["link", "show", net.bridge])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            bail!(
                "bridge {} exists already: another peer benchmark runs, or one was killed (ip link del {})",
                net.bridge,
                net.bridge
            );
        }
        // Unix socket paths are short: a short directory under /tmp.
        let temp = tempfile::Builder::new()
            .prefix("dsb-cd.")
            .tempdir_in("/tmp")?;
        let dir = temp.path().to_path_buf();
        let socket = dir.join("containerd.sock");
        let cni_conf = dir.join("cni");
        std::fs::create_dir_all(&cni_conf)?;
        std::fs::write(cni_conf.join("10-bench.conflist"), cni_config(&dir, net))?;
        let pause = images.first().context("no sandbox image given")?;
        let text = match format {
            Format::V2 => config(&dir, pause, runc),
            Format::V3 => config_v3(&dir, pause, runc),
        };
        std::fs::write(dir.join("config.toml"), text)?;
        let cgroups_before = k8s_cgroups();
        let cni_results_before = cni_results();
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display());
        let child = Command::new(&binary)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env_clear()
            .env("PATH", &path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("containerd.log"))?)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut me = Self {
            child,
            dir,
            _temp: temp,
            socket,
            version,
            cgroups_before,
            cni_results_before,
            net,
            stopped: false,
        };
        me.wait_ready().await?;
        let ctr = bin_dir.join("ctr");
        for image in images {
            me.import(&ctr, image)?;
        }
        Ok(me)
    }

    /// Waits until the CRI plugin answers, at most 30 s.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("containerd exited ({status}): {}", self.log_tail());
            }
            if self.socket.exists()
                && let Ok(mut rt) = crate::peer::cri_client(&self.socket).await
                && rt.version(VersionRequest::default()).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd's CRI did not answer within 30 s: {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Copies one image from Docker into containerd's `k8s.io` namespace.
    fn import(&self, ctr: &Path, image: &str) -> Result<()> {
        let tar = self.dir.join("image.tar");
        let saved = Command::new("docker")
            .args(["save", "-o"])
            .arg(&tar)
            .arg(image)
            .output()
            .context("run docker save")?;
        if !saved.status.success() {
            bail!(
                "docker save {image}: {}",
                String::from_utf8_lossy(&saved.stderr).trim()
            );
        }
        let imported = Command::new(ctr)
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io", "images", "import"])
            .arg(&tar)
            .output()
            .context("run ctr images import")?;
        let _ = std::fs::remove_file(&tar);
        if !imported.status.success() {
            bail!(
                "ctr images import {image}: {}",
                String::from_utf8_lossy(&imported.stderr).trim()
            );
        }
        Ok(())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its private directory: config, root, state, CNI configuration and
    /// host-local's leases (`ipam/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn client(&self) -> Result<RuntimeServiceClient<Channel>> {
        crate::peer::cri_client(&self.socket).await
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Stops containerd and removes all it left: pods' shims (should a
    /// removal have failed), mounts under its directory, the bridge, the
    /// CNI result cache entries and the cgroups it created. The pods
    /// themselves should have been removed through the CRI before.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let shims = procs::shims_of(&self.socket);
        terminate(self.child.id(), Duration::from_secs(10));
        let _ = self.child.wait();
        // Shims outlive containerd. Those left hold pods whose removal
        // failed: their containers first (the shim is their subreaper), then
        // the shim, all by PID and only those of this containerd.
        for shim in shims {
            for pid in children_of(shim) {
                kill(pid, rustix::process::Signal::KILL);
            }
            terminate(shim, Duration::from_secs(5));
        }
        unmount_under(&self.dir);
        let _ = Command::new("ip")
            .args(["link", "del", self.net.bridge])
            .stderr(Stdio::null())
            .status();
        // Cache entries of its networks (its own and containerd's built-in
        // loopback) that appeared during the run: left by pods that were
        // not removed through the CRI.
        let before = self.cni_results_before.clone().unwrap_or_default();
        for name in cni_results().unwrap_or_default() {
            let text = name.to_string_lossy();
            if !before.contains(&name)
                && (text.starts_with(self.net.name) || text.starts_with("cni-loopback-"))
            {
                let _ = std::fs::remove_file(Path::new(CNI_RESULTS).join(&name));
            }
        }
        if self.cni_results_before.is_none() {
            // Only if empty: the directories were made for this run.
            let _ = std::fs::remove_dir(CNI_RESULTS);
            let _ = std::fs::remove_dir("/var/lib/cni");
        }
        for cgroup in k8s_cgroups() {
            if !self.cgroups_before.contains(&cgroup) {
                remove_cgroup_tree(&cgroup);
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pick_binary() -> Result<PathBuf> {
    let wanted = std::env::var("DOCKERSHIM_BENCH_CONTAINERD").ok();
    let candidates: Vec<String> = match wanted {
        Some(one) => vec![one],
        None => CANDIDATES.iter().map(|c| c.to_string()).collect(),
    };
    for candidate in &candidates {
        let path = PathBuf::from(candidate);
        let shim = path.with_file_name("containerd-shim-runc-v2");
        if path.exists() && shim.exists() {
            return Ok(path);
        }
    }
    bail!(
        "no containerd with containerd-shim-runc-v2 beside it among {candidates:?} (set DOCKERSHIM_BENCH_CONTAINERD)"
    )
}

/// Which configuration format the containerd binary reads.
#[derive(Clone, Copy)]
enum Format {
    /// Version 2: containerd 1.6 and 1.7.
    V2,
    /// Version 3: containerd 2.x, whose CRI plugin is split into a runtime
    /// and an images plugin; the old CRI section keeps the stream server.
    V3,
}

/// The part of a configuration both layouts share: the version, the
/// private root, state and sockets, and debug and metrics endpoints off.
fn config_head(version: u32, dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = {version}
root = "{d}/root"
state = "{d}/state"
oom_score = 0

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""
"#
    )
}

/// containerd 2.x's configuration: the same directories, sockets, runc and
/// CNI network as [`config`], in the version-3 layout. NRI is off: its
/// socket has a fixed path that a Docker engine's containerd 2.x may use.
fn config_v3(dir: &Path, sandbox_image: &str, runc: &Path) -> String {
    let d = dir.display();
    let runc = runc.display();
    let head = config_head(3, dir);
    format!(
        r#"{head}
[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{sandbox_image}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true

  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{d}/cni"
    max_conf_num = 1

  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  disable_tcp_service = true
"#
    )
}

/// containerd's configuration (version 2, read by 1.6 and 1.7).
fn config(dir: &Path, sandbox_image: &str, runc: &Path) -> String {
    let d = dir.display();
    let runc = runc.display();
    let head = config_head(2, dir);
    format!(
        r#"{head}
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_tcp_service = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{d}/cni"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
"#
    )
}

/// A bridge network of its own with host-local addresses and portmap;
/// containerd adds the loopback interface itself. No masquerading: the
/// pods talk only to the host.
fn cni_config(dir: &Path, net: Net) -> String {
    let (name, bridge, subnet) = (net.name, net.bridge, net.subnet);
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "{name}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{subnet}" }}]],
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

fn kill(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL.
pub(crate) fn terminate(pid: u32, grace: Duration) {
    kill(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(pid, rustix::process::Signal::KILL);
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| procs::parent(p).is_ok_and(|pp| pp == pid))
                .collect()
        })
        .unwrap_or_default()
}

/// The names in libcni's result cache, or `None` without that directory.
fn cni_results() -> Option<Vec<std::ffi::OsString>> {
    std::fs::read_dir(CNI_RESULTS)
        .ok()
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
}

/// Detaches every mount at or below `dir`, deepest first.
pub(crate) fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for point in points {
        let _ = rustix::mount::unmount(&point, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Every `k8s.io` cgroup directory (containerd's parent for pods without a
/// cgroup parent) in the cgroup v1 hierarchies or at the v2 root.
fn k8s_cgroups() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    if root.join("k8s.io").is_dir() {
        found.push(root.join("k8s.io"));
    }
    if let Ok(controllers) = std::fs::read_dir(root) {
        for controller in controllers.flatten() {
            let candidate = controller.path().join("k8s.io");
            if candidate.is_dir() {
                found.push(candidate);
            }
        }
    }
    found
}

/// Removes a cgroup directory and its (empty) children, deepest first.
pub(crate) fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&child.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
