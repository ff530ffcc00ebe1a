//! Pod networking: Docker's own bridge, or CNI plugins attached to the
//! pause container's network namespace.
//!
//! With CNI the pause container runs with Docker's `none` network; once it
//! runs, loopback and the node's network are added in `/proc/<pid>/ns/net`
//! before RunPodSandbox returns, so a sandbox is never reported ready
//! without its IP. The pod IPs come from the ADD result, kept in memory and
//! in libcni's cache (which also lets DEL work after a crash, after the
//! pause container is gone, and for pods networked by cri-dockerd).

pub mod bridge;
pub mod cni;
#[cfg(test)]
pub(crate) mod fake;
pub mod pin;
pub mod pod;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use self::cni::{Cni, CniError, CniSettings, NetworkConfigList, RuntimeConf};
use self::pin::NetnsPins;
pub use self::pod::{PendingSet, PendingSetup, PodAttachment, PodNetwork};
use crate::api::PodSandboxConfig;
use crate::config::{Config, NetworkPlugin};
use crate::error::{Error, Result};
use crate::naming::protocol_name;

/// The interface name of the pod's network, as the kubelet expects.
pub const POD_IFNAME: &str = "eth0";

/// How often the CNI config directory is checked for changes.
const CONF_POLL: Duration = Duration::from_secs(2);

/// Pod annotations that ask for bandwidth limits.
const INGRESS_BANDWIDTH: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS_BANDWIDTH: &str = "kubernetes.io/egress-bandwidth";

/// The pod networking the configuration asks for; with CNI, its config
/// directory is watched from here on.
pub fn from_config(config: &Config) -> std::result::Result<Arc<dyn PodNetwork>, String> {
    match config.network_plugin()? {
        NetworkPlugin::Docker => Ok(Arc::new(bridge::DockerBridge)),
        NetworkPlugin::Cni => {
            let network = Arc::new(CniNetwork::new(config));
            network.watch();
            Ok(network)
        }
    }
}

/// Pods attached by CNI plugins: the client, the network config in use,
/// the pod CIDR, and the IPs of the pods attached by this process.
pub struct CniNetwork {
    client: Cni,
    config: RwLock<ConfigState>,
    pod_cidr: RwLock<String>,
    /// Sandbox id to its pod IPs (primary first).
    pod_ips: Mutex<HashMap<String, Vec<IpAddr>>>,
    /// Sandboxes whose network is being set up right now.
    pending: PendingSet,
    /// The pods' network namespaces, kept for their DEL.
    pins: NetnsPins,
}

struct ConfigState {
    loaded: std::result::Result<Arc<NetworkConfigList>, String>,
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

impl CniNetwork {
    /// CNI as configured, with the configuration read once.
    fn new(config: &Config) -> Self {
        if config.hairpin_mode != "promiscuous-bridge" {
            tracing::warn!(
                hairpin_mode = %config.hairpin_mode,
                "--hairpin-mode is not applied with CNI: set hairpinMode in the bridge plugin's configuration"
            );
        }
        if config.network_plugin_mtu != 0 {
            tracing::warn!(
                mtu = config.network_plugin_mtu,
                "--network-plugin-mtu is not applied with CNI: set mtu in the network configuration"
            );
        }
        let settings = CniSettings {
            conf_dir: config.cni_conf_dir.clone(),
            bin_dirs: config.cni_bin_dir.clone(),
            cache_dir: config.cni_cache_dir.clone(),
            plugin_timeout: Duration::from_secs(config.cni_plugin_timeout),
        };
        let network = CniNetwork {
            client: Cni::new(settings),
            config: RwLock::new(ConfigState {
                loaded: Err("cni config uninitialized".into()),
                fingerprint: vec![(PathBuf::new(), None, u64::MAX)],
            }),
            pod_cidr: RwLock::new(config.pod_cidr.clone()),
            pod_ips: Mutex::new(HashMap::new()),
            pending: PendingSet::default(),
            pins: NetnsPins::new(config.root_directory.join("netns")),
        };
        network.reload_if_changed();
        network
    }

    /// Re-reads the CNI configuration whenever its directory changes, for
    /// the life of the process.
    fn watch(self: &Arc<Self>) {
        let network = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CONF_POLL).await;
                let Some(network) = network.upgrade() else {
                    return;
                };
                network.reload_if_changed();
            }
        });
    }
}

#[async_trait]
impl PodNetwork for CniNetwork {
    fn is_cni(&self) -> bool {
        true
    }

    fn docker_network_mode(&self) -> &'static str {
        "none"
    }

    fn ready(&self) -> std::result::Result<(), (String, String)> {
        self.reload_if_changed();
        match &self.read_config().loaded {
            Ok(_) => Ok(()),
            Err(why) => Err(("NetworkPluginNotReady".into(), why.clone())),
        }
    }

    fn set_pod_cidr(&self, cidr: &str) {
        if cidr.is_empty() {
            return;
        }
        let mut current = self.pod_cidr.write().unwrap_or_else(|e| e.into_inner());
        if *current != cidr {
            tracing::info!(pod_cidr = cidr, "pod CIDR updated");
            *current = cidr.to_string();
        }
    }

    fn begin(&self, sandbox_id: &str) -> PendingSetup<'_> {
        self.pending.begin(sandbox_id)
    }

    fn any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn is_pending(&self, sandbox_id: &str) -> bool {
        self.pending.contains(sandbox_id)
    }

    /// Attaches a pod to loopback and the node's CNI network.
    async fn attach(&self, pod: &PodAttachment<'_>) -> Result<()> {
        let result = self.add(pod).await;
        if let Err(err) = result {
            if let Err(undo) = self
                .del(pod.sandbox_id, Some(pod.pid), Some(pod.config))
                .await
            {
                tracing::error!(sandbox = pod.sandbox_id, error = %undo, "cannot undo a failed network setup");
            }
            return Err(err);
        }
        Ok(())
    }

    /// Detaches by the cached results (so it works after a restart, with a
    /// changed configuration, and for pods attached by cri-dockerd), then,
    /// while the pod's namespace is known (its pause runs, or it is
    /// pinned), by the current network config in case ADD never got to
    /// cache its result.
    async fn detach(
        &self,
        sandbox_id: &str,
        pid: Option<u32>,
        pod: Option<&PodSandboxConfig>,
    ) -> Result<()> {
        self.del(sandbox_id, pid, pod).await
    }

    fn pinned_sandboxes(&self) -> Result<Vec<String>> {
        self.pins.sandboxes().map_err(|err| {
            Error::Internal(format!("list the pinned pod network namespaces: {err}"))
        })
    }

    fn pod_ips(&self, sandbox_id: &str) -> Option<Vec<IpAddr>> {
        if let Some(ips) = lock(&self.pod_ips).get(sandbox_id) {
            return Some(ips.clone());
        }
        // Attached before this process started: the cached result says,
        // once; a pod without one is remembered as having no IPs.
        let ips = self.cached_ips(sandbox_id);
        lock(&self.pod_ips).insert(sandbox_id.to_string(), ips.clone());
        Some(ips)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CniNetwork {
    fn read_config(&self) -> std::sync::RwLockReadGuard<'_, ConfigState> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads the network configuration when the files in the config
    /// directory changed (names, sizes or modification times).
    fn reload_if_changed(&self) {
        let settings = self.client.settings();
        let fingerprint = fingerprint(&settings.conf_dir);
        if self.read_config().fingerprint == fingerprint {
            return;
        }
        let loaded = match cni::load_network(settings) {
            Ok(list) => {
                tracing::info!(network = %list.name, file = %list.source.display(), "CNI network configuration loaded");
                Ok(Arc::new(list))
            }
            Err(err) => {
                tracing::warn!(error = %err, "no usable CNI network configuration");
                Err(format!("cni config uninitialized: {err}"))
            }
        };
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = ConfigState {
            loaded,
            fingerprint,
        };
    }

    fn network(&self) -> Result<Arc<NetworkConfigList>> {
        self.read_config()
            .loaded
            .clone()
            .map_err(|why| Error::FailedPrecondition(format!("pod network is not ready: {why}")))
    }

    async fn add(&self, pod: &PodAttachment<'_>) -> Result<()> {
        let network = self.network()?;
        let netns = PathBuf::from(format!("/proc/{}/ns/net", pod.pid));
        // Pinned before ADD, so even a DEL after a failed ADD finds it.
        if let Err(err) = self.pins.pin(pod.sandbox_id, pod.pid) {
            tracing::warn!(
                sandbox = pod.sandbox_id,
                error = %err,
                "cannot pin the pod's network namespace: if its pause process dies before the teardown, plugins may leave rules behind"
            );
        }
        let args = cni_args(pod.sandbox_id, pod.config);
        let loopback = RuntimeConf {
            container_id: pod.sandbox_id.to_string(),
            netns: Some(netns.clone()),
            // The plugin sets up `lo` whatever the name; cri-dockerd passes
            // eth0, so its teardown after a rollback finds the cache entry
            // (`cni-loopback-<id>-eth0`) where it looks.
            ifname: POD_IFNAME.into(),
            args: args.clone(),
            capability_args: Map::new(),
        };
        self.client
            .add(&cni::loopback_network(), &loopback)
            .await
            .map_err(|e| cni_error("set up loopback", pod.sandbox_id, e))?;
        let pod_cidr = self
            .pod_cidr
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let conf = RuntimeConf {
            container_id: pod.sandbox_id.to_string(),
            netns: Some(netns),
            ifname: POD_IFNAME.into(),
            args,
            capability_args: capability_args(pod.config, &pod_cidr)?,
        };
        let result = self
            .client
            .add(&network, &conf)
            .await
            .map_err(|e| cni_error("set up the pod network", pod.sandbox_id, e))?;
        let ips = result.pod_ips();
        tracing::info!(sandbox = pod.sandbox_id, network = %network.name, ips = ?ips, "pod network attached");
        lock(&self.pod_ips).insert(pod.sandbox_id.to_string(), ips);
        Ok(())
    }

    async fn del(
        &self,
        sandbox_id: &str,
        pid: Option<u32>,
        pod: Option<&PodSandboxConfig>,
    ) -> Result<()> {
        // Without its pause process (Docker restarted, the container was
        // killed) the pod's namespace is still there if it was pinned: DEL
        // then finds what ADD made inside it (see `pin`).
        let netns = pid
            .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net")))
            .or_else(|| self.pins.pinned(sandbox_id));
        let cached = self
            .client
            .cached_for_container(sandbox_id)
            .map_err(|e| cni_error("read the network cache", sandbox_id, e))?;
        let mut done = HashSet::new();
        // The pod's networks first, loopback last: the reverse of ADD.
        let mut cached = cached;
        cached.sort_by_key(|entry| entry.network_name == cni::LOOPBACK_NETWORK);
        for entry in &cached {
            self.client
                .del_cached(
                    &entry.network_name,
                    sandbox_id,
                    &entry.ifname,
                    netns.as_deref(),
                )
                .await
                .map_err(|e| cni_error("tear down the pod network", sandbox_id, e))?;
            done.insert(entry.network_name.clone());
        }
        // ADD may have died before caching its result: while the pod's
        // namespace is known (its pause runs, or it is pinned), DEL with the
        // current configuration is safe.
        if netns.is_some()
            && let Ok(network) = self.network()
            && !done.contains(&network.name)
        {
            let pod_cidr = self
                .pod_cidr
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let conf = RuntimeConf {
                container_id: sandbox_id.to_string(),
                netns,
                ifname: POD_IFNAME.into(),
                args: pod.map(|p| cni_args(sandbox_id, p)).unwrap_or_default(),
                // A DEL never fails for a bad annotation: what ADD would
                // have refused is left out.
                capability_args: pod
                    .and_then(|p| capability_args(p, &pod_cidr).ok())
                    .unwrap_or_default(),
            };
            self.client
                .del(&network, &conf)
                .await
                .map_err(|e| cni_error("tear down the pod network", sandbox_id, e))?;
        }
        // A shim killed while caching an ADD's result leaves a temporary
        // file that no DEL removes. Garbage, not state: a failure to remove
        // it does not fail the teardown.
        match self.client.remove_unfinished(sandbox_id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sandbox = sandbox_id,
                files = n,
                "removed unfinished cni cache files"
            ),
            Err(err) => {
                tracing::warn!(sandbox = sandbox_id, error = %err, "could not remove unfinished cni cache files");
            }
        }
        self.pins.unpin(sandbox_id).map_err(|err| {
            Error::Internal(format!(
                "release the pinned network namespace of sandbox {sandbox_id}: {err}"
            ))
        })?;
        lock(&self.pod_ips).remove(sandbox_id);
        tracing::info!(sandbox = sandbox_id, "pod network detached");
        Ok(())
    }

    fn cached_ips(&self, sandbox_id: &str) -> Vec<IpAddr> {
        match self.client.cached_for_container(sandbox_id) {
            Ok(entries) => entries
                .iter()
                // Loopback's result (127.0.0.1, ::1) is on eth0 too.
                .filter(|e| e.ifname == POD_IFNAME && e.network_name != cni::LOOPBACK_NETWORK)
                .filter_map(|e| e.result.as_ref())
                .flat_map(|r| r.pod_ips())
                .collect(),
            Err(err) => {
                tracing::warn!(sandbox = sandbox_id, error = %err, "cannot read the network cache");
                Vec::new()
            }
        }
    }
}

/// A fingerprint of the config directory's candidate files.
fn fingerprint(dir: &std::path::Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.modified().ok(), meta.len()))
        })
        .collect();
    files.sort();
    files
}

fn cni_error(what: &str, sandbox_id: &str, err: CniError) -> Error {
    let message = format!("{what} of pod sandbox {sandbox_id}: {err}");
    match err {
        CniError::NoConfig(_) => Error::FailedPrecondition(message),
        CniError::Timeout { .. } => Error::DeadlineExceeded(message),
        CniError::Invalid(_) => Error::InvalidArgument(message),
        CniError::Plugin { .. } | CniError::Io { .. } => Error::Internal(message),
    }
}

/// `CNI_ARGS` as the kubelet's runtimes send them.
fn cni_args(sandbox_id: &str, config: &PodSandboxConfig) -> Vec<(String, String)> {
    let meta = config.metadata.clone().unwrap_or_default();
    vec![
        ("IgnoreUnknown".into(), "1".into()),
        ("K8S_POD_NAMESPACE".into(), meta.namespace),
        ("K8S_POD_NAME".into(), meta.name),
        ("K8S_POD_INFRA_CONTAINER_ID".into(), sandbox_id.into()),
        ("K8S_POD_UID".into(), meta.uid),
    ]
}

/// The runtime capabilities a plugin may declare: host ports, bandwidth
/// limits, the pod CIDR and DNS.
fn capability_args(config: &PodSandboxConfig, pod_cidr: &str) -> Result<Map<String, Value>> {
    let mut args = Map::new();
    let ports: Vec<Value> = config
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| {
            let mut port = json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": protocol_name(p.protocol),
            });
            if !p.host_ip.is_empty() {
                port["hostIP"] = json!(p.host_ip);
            }
            port
        })
        .collect();
    args.insert("portMappings".into(), Value::Array(ports));

    let rate = |key: &str| -> Result<Option<u64>> {
        config
            .annotations
            .get(key)
            .map(|v| {
                parse_bandwidth(v).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "annotation {key}={v:?} is not a bandwidth between 1k and 1P"
                    ))
                })
            })
            .transpose()
    };
    let (ingress, egress) = (rate(INGRESS_BANDWIDTH)?, rate(EGRESS_BANDWIDTH)?);
    if ingress.is_some() || egress.is_some() {
        let mut bandwidth = Map::new();
        // The burst is as large as the plugin allows, as the kubelet did:
        // the annotations only give a rate.
        if let Some(rate) = ingress {
            bandwidth.insert("ingressRate".into(), json!(rate));
            bandwidth.insert("ingressBurst".into(), json!(i32::MAX));
        }
        if let Some(rate) = egress {
            bandwidth.insert("egressRate".into(), json!(rate));
            bandwidth.insert("egressBurst".into(), json!(i32::MAX));
        }
        args.insert("bandwidth".into(), Value::Object(bandwidth));
    }

    if !pod_cidr.is_empty() {
        args.insert("ipRanges".into(), json!([[{ "subnet": pod_cidr }]]));
    }

    if let Some(dns) = &config.dns_config {
        args.insert(
            "dns".into(),
            json!({
                "servers": dns.servers,
                "searches": dns.searches,
                "options": dns.options,
            }),
        );
    }
    Ok(args)
}

/// A Kubernetes quantity (`10M`, `1Gi`, `500k`) as bits per second, within
/// the 1k..1P range the kubelet allowed.
fn parse_bandwidth(value: &str) -> Option<u64> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        _ => return None,
    };
    let bits = number * multiplier;
    if !(1e3..=1e15).contains(&bits) {
        return None;
    }
    // In range and finite, so the conversion cannot truncate meaningfully.
    Some(bits.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_network_setup_ends_with_its_guard_even_when_the_call_is_cancelled() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let config = crate::config::Config::parse_from([
            "dockershim",
            "--network-plugin",
            "cni",
            "--cni-conf-dir",
            &path,
            "--cri-dockerd-root-directory",
            &path,
        ]);
        let network = CniNetwork::new(&config);
        let pending = network.begin("ran");
        assert!(network.is_pending("ran") && network.any_pending());
        drop(pending);
        assert!(!network.is_pending("ran") && !network.any_pending());

        // RunPodSandbox dropped while it sets the network up (the kubelet
        // gave up on the call): the sandbox must not read as pending for
        // ever.
        let setup = async {
            let _pending = network.begin("cancelled");
            std::future::pending::<()>().await;
        };
        let cut = tokio::time::timeout(std::time::Duration::from_millis(10), setup).await;
        assert!(cut.is_err());
        assert!(!network.is_pending("cancelled") && !network.any_pending());
    }
    use crate::api::{DnsConfig, PodSandboxMetadata, PortMapping, Protocol};

    fn pod() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                namespace: "prod".into(),
                uid: "u-1".into(),
                attempt: 0,
            }),
            port_mappings: vec![
                PortMapping {
                    protocol: Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                },
                PortMapping {
                    protocol: Protocol::Tcp as i32,
                    container_port: 80,
                    host_port: 0,
                    host_ip: String::new(),
                },
            ],
            annotations: HashMap::from([(INGRESS_BANDWIDTH.to_string(), "10M".to_string())]),
            dns_config: Some(DnsConfig {
                servers: vec!["10.96.0.10".into()],
                searches: vec![],
                options: vec!["ndots:5".into()],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn capabilities_carry_host_ports_bandwidth_ranges_and_dns() {
        let args = capability_args(&pod(), "10.244.1.0/24").unwrap();
        assert_eq!(
            args["portMappings"],
            json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}])
        );
        assert_eq!(args["bandwidth"]["ingressRate"], json!(10_000_000u64));
        assert!(args["bandwidth"].get("egressRate").is_none());
        assert_eq!(args["ipRanges"], json!([[{"subnet": "10.244.1.0/24"}]]));
        assert_eq!(args["dns"]["servers"], json!(["10.96.0.10"]));

        let bare = capability_args(&PodSandboxConfig::default(), "").unwrap();
        assert_eq!(
            bare["portMappings"],
            json!([]),
            "always present, as libcni users expect"
        );
        assert!(!bare.contains_key("ipRanges"));
        assert!(!bare.contains_key("bandwidth"));
    }

    #[test]
    fn bad_bandwidth_annotations_are_refused() {
        let mut config = pod();
        config
            .annotations
            .insert(EGRESS_BANDWIDTH.into(), "lots".into());
        assert!(matches!(
            capability_args(&config, ""),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn bandwidth_quantities() {
        assert_eq!(parse_bandwidth("1k"), Some(1000));
        assert_eq!(parse_bandwidth("1.5M"), Some(1_500_000));
        assert_eq!(parse_bandwidth("1Mi"), Some(1_048_576));
        assert_eq!(parse_bandwidth("999"), None, "below 1k");
        assert_eq!(parse_bandwidth("2P"), None, "above 1P");
        assert_eq!(parse_bandwidth("10X"), None);
    }

    #[test]
    fn cni_args_name_the_pod() {
        let args = cni_args("abc", &pod());
        let get = |k: &str| {
            args.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("K8S_POD_NAMESPACE"), Some("prod"));
        assert_eq!(get("K8S_POD_NAME"), Some("web"));
        assert_eq!(get("K8S_POD_INFRA_CONTAINER_ID"), Some("abc"));
        assert_eq!(get("K8S_POD_UID"), Some("u-1"));
        assert_eq!(get("IgnoreUnknown"), Some("1"));
    }
}
