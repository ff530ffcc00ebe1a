//! A real kubelet, standalone (no API server), with static pods, on one CRI
//! socket: started with a configuration of its own in the case's directory
//! (as `integration/kubelet.sh` runs it), asked over its read-only port
//! what its pods do and what its metrics say, and stopped again.
//!
//! [`HostGuard`] puts back what a kubelet changes on the host outside its
//! directories: the sysctls it sets at start, its `/kubepods` cgroups, its
//! links in `/var/log/containers` and the device-plugin directory it makes
//! under `/var/lib/kubelet`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::containerd::{remove_cgroup_tree, terminate, unmount_under};

/// Where `integration/kubelet.sh build` puts the kubelet.
pub const DEFAULT_BINARY: &str = "/var/cache/dockershim-test/kubelet-v1.36.3/kubelet";
/// The node's name; static pods are named `<manifest name>-<node>`.
pub const NODE: &str = "dsb-node";
/// Port, read-only port and healthz port: not those of
/// `integration/kubelet.sh`, so the two never meet on one port.
const PORTS: (u16, u16, u16) = (10350, 10355, 10348);

/// The sysctls the kubelet sets at start.
const SYSCTLS: &[&str] = &[
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// What the host looked like before the first kubelet; dropping it puts it
/// back.
pub struct HostGuard {
    sysctls: Vec<(String, String)>,
    logs_dir_made: bool,
    var_lib_kubelet_made: bool,
    device_plugins_made: bool,
}

impl HostGuard {
    pub fn record() -> Result<Self> {
        let mut sysctls = Vec::new();
        for name in SYSCTLS {
            let value = std::fs::read_to_string(format!("/proc/sys/{name}"))
                .with_context(|| format!("read sysctl {name}"))?;
            sysctls.push((name.to_string(), value.trim().to_string()));
        }
        for root in cgroup_roots() {
            let kubepods = root.join("kubepods");
            if kubepods.exists() {
                remove_cgroup_tree(&kubepods);
                if kubepods.exists() {
                    bail!(
                        "{} exists and is in use: does another kubelet run?",
                        kubepods.display()
                    );
                }
            }
        }
        Ok(Self {
            sysctls,
            logs_dir_made: !Path::new("/var/log/containers").is_dir(),
            var_lib_kubelet_made: !Path::new("/var/lib/kubelet").is_dir(),
            device_plugins_made: !Path::new("/var/lib/kubelet/device-plugins").is_dir(),
        })
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for (name, value) in &self.sysctls {
            let path = format!("/proc/sys/{name}");
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            if now.trim() != value
                && let Err(err) = std::fs::write(&path, value)
            {
                eprintln!("warning: cannot restore sysctl {name}={value}: {err}");
            }
        }
        remove_kubepods();
        if self.logs_dir_made {
            let _ = std::fs::remove_dir("/var/log/containers");
        }
        if self.var_lib_kubelet_made {
            let _ = std::fs::remove_dir_all("/var/lib/kubelet");
        } else if self.device_plugins_made {
            let _ = std::fs::remove_dir_all("/var/lib/kubelet/device-plugins");
        }
    }
}

/// One kubelet process and its directory.
pub struct Kubelet {
    child: Child,
    dir: PathBuf,
    stopped: bool,
}

impl Kubelet {
    /// Starts the kubelet on the CRI socket with an empty static pod
    /// directory and waits until it is healthy (at most 60 s).
    pub async fn start(binary: &Path, dir: &Path, socket: &Path, evented: bool) -> Result<Self> {
        for sub in ["root", "manifests", "staging", "pod-logs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("kubelet.yaml"), config(dir, socket, evented))?;
        for port in [PORTS.0, PORTS.1, PORTS.2] {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                bail!("port {port} on 127.0.0.1 is taken: another kubelet runs?");
            }
        }
        let root = dir.join("root");
        let child = Command::new(binary)
            .arg("--config")
            .arg(dir.join("kubelet.yaml"))
            .arg("--root-dir")
            .arg(&root)
            .arg("--cert-dir")
            .arg(root.join("pki"))
            .args(["--hostname-override", NODE, "--v=1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kubelet.log"))?)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut me = Self {
            child,
            dir: dir.to_path_buf(),
            stopped: false,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = me.child.try_wait()? {
                bail!("the kubelet exited ({status}): {}", me.log_tail());
            }
            if get(PORTS.2, "/healthz").is_ok() {
                return Ok(me);
            }
            if Instant::now() > deadline {
                bail!("the kubelet was not healthy in 60 s: {}", me.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    /// A directory on the same filesystem, where manifests are written
    /// before they are renamed into the static pod directory at once.
    pub fn staging(&self) -> PathBuf {
        self.dir.join("staging")
    }

    pub fn pod_logs(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }

    pub fn pod_dirs(&self) -> PathBuf {
        self.dir.join("root/pods")
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The kubelet's `/metrics`.
    pub fn metrics(&self) -> Result<String> {
        get(PORTS.1, "/metrics")
    }

    /// The kubelet's pods: name, whether it is Running with every
    /// container running, and its containers' restarts.
    pub fn pods(&self) -> Result<Vec<PodView>> {
        let body = get(PORTS.1, "/pods")?;
        let json: serde_json::Value =
            serde_json::from_str(&body).context("the kubelet's /pods is not JSON")?;
        let items = json["items"].as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .map(|p| {
                let status = &p["status"];
                let containers = status["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let wanted = p["spec"]["containers"].as_array().map_or(0, Vec::len);
                let running = status["phase"] == "Running"
                    && containers.len() == wanted
                    && containers.iter().all(|c| c["state"]["running"].is_object());
                PodView {
                    name: p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    running,
                    restarts: containers
                        .iter()
                        .map(|c| c["restartCount"].as_u64().unwrap_or(0))
                        .sum(),
                }
            })
            .collect())
    }

    /// Links in `/var/log/containers` into this kubelet's pod logs.
    pub fn log_links(&self) -> usize {
        log_links_into(&self.dir).len()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("kubelet.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Stops the kubelet and removes what it left outside the runtime: its
    /// mounts, its links in `/var/log/containers`, its `/kubepods` cgroups.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        terminate(self.child.id(), Duration::from_secs(15));
        let _ = self.child.wait();
        unmount_under(&self.dir);
        for link in log_links_into(&self.dir) {
            let _ = std::fs::remove_file(link);
        }
        remove_kubepods();
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One pod as the kubelet reports it.
pub struct PodView {
    pub name: String,
    pub running: bool,
    pub restarts: u64,
}

fn log_links_into(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/var/log/containers") else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_link(p).is_ok_and(|t| t.starts_with(dir)))
        .collect()
}

/// Every cgroup hierarchy's root (each v1 controller, or the v2 root).
fn cgroup_roots() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut roots = Vec::new();
    if root.join("cgroup.procs").exists() {
        roots.push(root.to_path_buf());
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            if e.path().join("cgroup.procs").exists() {
                roots.push(e.path());
            }
        }
    }
    roots
}

/// Pod cgroups (`pod<uid>` directories below `kubepods`) in any hierarchy,
/// by their path inside it.
pub fn pod_cgroups() -> usize {
    let mut seen: HashMap<PathBuf, ()> = HashMap::new();
    for root in cgroup_roots() {
        let kubepods = root.join("kubepods");
        // kubepods/pod<uid> (guaranteed) and kubepods/<class>/pod<uid>.
        let mut dirs = vec![kubepods.clone()];
        if let Ok(entries) = std::fs::read_dir(&kubepods) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("pod")
                    && let Ok(rel) = e.path().strip_prefix(&root)
                {
                    seen.insert(rel.to_path_buf(), ());
                }
            }
        }
    }
    seen.len()
}

/// Removes `/kubepods` in every hierarchy, retrying for up to 10 s while
/// the last processes in them exit.
fn remove_kubepods() {
    for _ in 0..20 {
        let mut left = false;
        for root in cgroup_roots() {
            let kubepods = root.join("kubepods");
            if kubepods.exists() {
                remove_cgroup_tree(&kubepods);
                left |= kubepods.exists();
            }
        }
        if !left {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("warning: /kubepods cgroups left");
}

/// A GET on the kubelet's loopback HTTP ports; the body of a 200 answer.
/// HTTP/1.0, so the answer is neither chunked nor kept alive. The answer
/// may take long: an overloaded node's kubelet (cri-dockerd at N = 300)
/// took over 30 s for `/metrics`.
fn get(port: u16, path: &str) -> Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(180)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("read {path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{path}: no end of the HTTP header"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        bail!("GET {path}: {status}");
    }
    Ok(body.to_string())
}

/// The kubelet's configuration: as `integration/kubelet.sh`'s (standalone,
/// loopback ports, no eviction or image GC, no iptables), with static pods
/// read every second, room for 300 pods, and EventedPLEG as asked.
fn config(dir: &Path, socket: &Path, evented: bool) -> String {
    let d = dir.display();
    let (port, ro, healthz) = PORTS;
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://{socket}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
staticPodPath: {d}/manifests
fileCheckFrequency: 1s
podLogsDir: {d}/pod-logs
volumePluginDir: {d}/root/volume-plugins
address: 127.0.0.1
port: {port}
readOnlyPort: {ro}
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization:
  mode: AlwaysAllow
maxPods: 400
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
  EventedPLEG: {evented}
"#,
        socket = socket.display()
    )
}
