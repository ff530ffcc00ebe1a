//! Container and pod statistics, and the cAdvisor-named pod metrics (in the
//! `metrics` submodule), read from the kernel ([`kstats`]) for the containers
//! the live view holds, so a stats call costs no Docker request at all.

pub mod kstats;
mod metrics;

pub use metrics::{metric_descriptors, pod_sandbox_metrics};

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;

use crate::api::{
    ContainerAttributes, ContainerStats, ContainerStatsFilter, CpuUsage, FilesystemIdentifier,
    FilesystemUsage, LinuxPodSandboxStats, MemoryUsage, NetworkInterfaceUsage, NetworkUsage,
    PodSandboxAttributes, PodSandboxStats, PodSandboxStatsFilter, ProcessUsage, UInt64Value,
};
use crate::docker::now_nanos;
use crate::error::Result;
use crate::naming;
use crate::view::{Entry, Kind, Phase, View};
use kstats::{CgroupRoots, CgroupSample, CpuRateTracker, FsUsageCache, InterfaceCounters};

/// How often a container's writable layer is walked at most.
const LAYER_WALK_INTERVAL: Duration = Duration::from_secs(60);

/// The live view the statistics are read for, where cgroups live, the last
/// CPU samples, and the cached sizes of writable layers.
pub struct Stats {
    /// The containers whose statistics are read.
    view: Arc<View>,
    roots: Option<CgroupRoots>,
    cpu: CpuRateTracker,
    layers: FsUsageCache,
    /// The directory reported for writable layers: where the image store
    /// keeps them (`HostFacts::image_fs_dir`).
    layer_mountpoint: String,
    /// The device mounted under `layer_mountpoint`, looked up on first use.
    layer_device: OnceLock<String>,
}

impl Stats {
    /// Learns where cgroups are mounted; without them, stats carry only
    /// attributes.
    pub fn new(view: Arc<View>, image_fs_dir: &str) -> Self {
        let roots = match CgroupRoots::discover() {
            Ok(roots) => Some(roots),
            Err(err) => {
                tracing::warn!(error = %err, "no cgroup mounts found: container stats will be empty");
                None
            }
        };
        Self {
            view,
            roots,
            cpu: CpuRateTracker::new(),
            layers: FsUsageCache::new(LAYER_WALK_INTERVAL),
            layer_mountpoint: image_fs_dir.to_string(),
            layer_device: OnceLock::new(),
        }
    }

    /// Forgets CPU samples and layer sizes of containers the view no
    /// longer holds.
    fn prune(&self) {
        let live: Vec<Entry> = self
            .view
            .all(Kind::Container)
            .into_iter()
            .chain(self.view.all(Kind::Sandbox))
            .collect();
        let ids: std::collections::HashSet<&str> = live.iter().map(Entry::id).collect();
        let layers: std::collections::HashSet<PathBuf> = live
            .iter()
            .filter_map(|e| upper_dir(&e.inspected))
            .collect();
        self.cpu.retain(|id| ids.contains(id));
        self.layers.retain(|path| layers.contains(path));
    }
}

/// One reading of a running container's cgroup.
struct Reading {
    at: i64,
    cgroup: CgroupSample,
    nano_cores: Option<u64>,
}

fn pid_of(inspected: &ContainerInspectResponse) -> Option<u32> {
    inspected
        .state
        .as_ref()
        .and_then(|s| s.pid)
        .and_then(|pid| u32::try_from(pid).ok())
        .filter(|pid| *pid > 0)
}

fn read(stats: &Stats, entry: &Entry) -> Option<Reading> {
    if entry.phase() != Phase::Running {
        return None;
    }
    let roots = stats.roots.as_ref()?;
    let pid = pid_of(&entry.inspected)?;
    let cgroup = roots.of_pid(pid).ok()?.read();
    let nano_cores = cgroup
        .cpu_usage_ns
        .and_then(|ns| stats.cpu.observe(entry.id(), Instant::now(), ns));
    Some(Reading {
        at: now_nanos(),
        cgroup,
        nano_cores,
    })
}

fn value(v: Option<u64>) -> Option<UInt64Value> {
    v.map(|value| UInt64Value { value })
}

fn cpu(r: &Reading) -> CpuUsage {
    CpuUsage {
        timestamp: r.at,
        usage_core_nano_seconds: value(r.cgroup.cpu_usage_ns),
        usage_nano_cores: value(r.nano_cores),
        psi: None,
    }
}

fn memory(r: &Reading) -> MemoryUsage {
    let c = &r.cgroup;
    MemoryUsage {
        timestamp: r.at,
        working_set_bytes: value(c.memory_working_set),
        available_bytes: value(
            c.memory_limit
                .zip(c.memory_working_set)
                .map(|(limit, ws)| limit.saturating_sub(ws)),
        ),
        usage_bytes: value(c.memory_usage),
        rss_bytes: value(c.memory_rss),
        page_faults: value(c.page_faults),
        major_page_faults: value(c.major_page_faults),
        psi: None,
    }
}

/// The container's writable layer: overlay2's upper directory, which Docker
/// reports; with the containerd image store Docker reports none, and the
/// running container's root mount shows the snapshot's.
fn upper_dir(inspected: &ContainerInspectResponse) -> Option<PathBuf> {
    inspected
        .graph_driver
        .as_ref()
        .and_then(|g| g.data.get("UpperDir"))
        .map(PathBuf::from)
        .or_else(|| pid_of(inspected).and_then(kstats::overlay_upper_dir_of_pid))
}

fn writable_layer(stats: &Stats, inspected: &ContainerInspectResponse) -> Option<FilesystemUsage> {
    let usage = stats.layers.get(&upper_dir(inspected)?)?;
    Some(FilesystemUsage {
        timestamp: usage
            .measured_at
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(0),
        fs_id: Some(FilesystemIdentifier {
            mountpoint: stats.layer_mountpoint.clone(),
        }),
        used_bytes: value(Some(usage.used_bytes)),
        inodes_used: value(Some(usage.inodes_used)),
    })
}

/// `ImageFsInfo`'s container filesystems: the containers' writable layers,
/// which the image store keeps beside the images (`layer_mountpoint`), with
/// their bytes and inodes summed. Layers not walked yet count from the next
/// call on (the walk starts in the background); layers whose directory is
/// unknown (a stopped container on the containerd store) are left out.
pub fn container_filesystems(stats: &Stats) -> Vec<FilesystemUsage> {
    stats.prune();
    let usages: Vec<kstats::FsUsage> = stats
        .view
        .all(Kind::Container)
        .into_iter()
        .chain(stats.view.all(Kind::Sandbox))
        .filter_map(|e| upper_dir(&e.inspected))
        .filter_map(|dir| stats.layers.get(&dir))
        .collect();
    vec![FilesystemUsage {
        timestamp: now_nanos(),
        fs_id: Some(FilesystemIdentifier {
            mountpoint: stats.layer_mountpoint.clone(),
        }),
        used_bytes: value(Some(usages.iter().map(|u| u.used_bytes).sum())),
        inodes_used: value(Some(usages.iter().map(|u| u.inodes_used).sum())),
    }]
}

fn container_attributes(inspected: &ContainerInspectResponse) -> ContainerAttributes {
    let docker_labels = inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let (labels, annotations) = naming::from_docker_labels(&docker_labels, false);
    ContainerAttributes {
        id: inspected.id.clone().unwrap_or_default(),
        metadata: inspected
            .name
            .as_deref()
            .and_then(naming::parse_container_name),
        labels,
        annotations,
    }
}

fn container_stats_of(stats: &Stats, entry: &Entry) -> ContainerStats {
    let reading = read(stats, entry);
    ContainerStats {
        attributes: Some(container_attributes(&entry.inspected)),
        cpu: reading.as_ref().map(cpu),
        memory: reading.as_ref().map(memory),
        writable_layer: writable_layer(stats, &entry.inspected),
        swap: None,
        io: None,
    }
}

/// `ContainerStats` of one container.
pub async fn container_stats(stats: &Stats, id: &str) -> Result<ContainerStats> {
    let entry = stats.view.find(id, Kind::Container, "container").await?;
    Ok(container_stats_of(stats, &entry))
}

/// `ListContainerStats`: the running containers matching the filter.
pub fn list_container_stats(
    stats: &Stats,
    filter: Option<ContainerStatsFilter>,
) -> Vec<ContainerStats> {
    let filter = filter.unwrap_or_default();
    stats.prune();
    // Filters first: reading a container's cgroup files is the costly part.
    stats
        .view
        .all(Kind::Container)
        .iter()
        .filter(|e| e.phase() == Phase::Running)
        .filter(|e| filter.id.is_empty() || e.id().starts_with(&filter.id))
        .filter(|e| {
            filter.pod_sandbox_id.is_empty() || e.sandbox_id().starts_with(&filter.pod_sandbox_id)
        })
        .filter(|e| has_labels(e, &filter.label_selector))
        .map(|e| container_stats_of(stats, e))
        .collect()
}

/// Whether an object carries every label of a CRI selector. CRI labels are
/// stored as Docker labels under their own names.
fn has_labels(entry: &Entry, selector: &std::collections::HashMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(k, v)| entry.labels().get(k) == Some(v))
}

fn sandbox_attributes(inspected: &ContainerInspectResponse) -> PodSandboxAttributes {
    let docker_labels = inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let (labels, annotations) = naming::from_docker_labels(&docker_labels, true);
    PodSandboxAttributes {
        id: inspected.id.clone().unwrap_or_default(),
        metadata: inspected
            .name
            .as_deref()
            .and_then(naming::parse_sandbox_name),
        labels,
        annotations,
    }
}

fn host_network(inspected: &ContainerInspectResponse) -> bool {
    inspected
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        == Some("host")
}

/// The pod's interfaces (loopback left out), read in its network
/// namespace through the pause process.
fn interfaces(sandbox: &Entry) -> Vec<InterfaceCounters> {
    if sandbox.phase() != Phase::Running || host_network(&sandbox.inspected) {
        return Vec::new();
    }
    pid_of(&sandbox.inspected)
        .and_then(|pid| kstats::net_dev_of_pid(pid).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.name != "lo")
        .collect()
}

fn network(at: i64, interfaces: &[InterfaceCounters]) -> Option<NetworkUsage> {
    let usage = |i: &InterfaceCounters| NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: value(Some(i.rx_bytes)),
        rx_errors: value(Some(i.rx_errors)),
        tx_bytes: value(Some(i.tx_bytes)),
        tx_errors: value(Some(i.tx_errors)),
    };
    let default = interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .or_else(|| interfaces.first())?;
    Some(NetworkUsage {
        timestamp: at,
        default_interface: Some(usage(default)),
        interfaces: interfaces.iter().map(usage).collect(),
    })
}

fn sum(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.fold(None, |acc, v| match (acc, v) {
        (None, v) => v,
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, None) => a,
    })
}

fn pod_stats_of(stats: &Stats, sandbox: &Entry) -> PodSandboxStats {
    let containers = stats.view.containers_of(sandbox.id());
    // The pod's usage is its containers' plus the pause process's.
    let readings: Vec<Reading> = std::iter::once(sandbox)
        .chain(containers.iter())
        .filter_map(|e| read(stats, e))
        .collect();
    let at = now_nanos();
    let total = |f: fn(&CgroupSample) -> Option<u64>| sum(readings.iter().map(|r| f(&r.cgroup)));
    let pod = (!readings.is_empty()).then(|| Reading {
        at,
        cgroup: CgroupSample {
            cpu_usage_ns: total(|c| c.cpu_usage_ns),
            memory_usage: total(|c| c.memory_usage),
            memory_working_set: total(|c| c.memory_working_set),
            memory_rss: total(|c| c.memory_rss),
            page_faults: total(|c| c.page_faults),
            major_page_faults: total(|c| c.major_page_faults),
            memory_limit: None,
            pids: total(|c| c.pids),
            oom_kills: total(|c| c.oom_kills),
        },
        nano_cores: sum(readings.iter().map(|r| r.nano_cores)),
    });
    PodSandboxStats {
        attributes: Some(sandbox_attributes(&sandbox.inspected)),
        linux: Some(LinuxPodSandboxStats {
            cpu: pod.as_ref().map(cpu),
            memory: pod.as_ref().map(memory),
            network: network(at, &interfaces(sandbox)),
            process: pod.as_ref().map(|p| ProcessUsage {
                timestamp: at,
                process_count: value(p.cgroup.pids),
            }),
            containers: containers
                .iter()
                .filter(|e| e.phase() == Phase::Running)
                .map(|e| container_stats_of(stats, e))
                .collect(),
            io: None,
        }),
        windows: None,
    }
}

/// `PodSandboxStats` of one sandbox.
pub async fn pod_sandbox_stats(stats: &Stats, id: &str) -> Result<PodSandboxStats> {
    let sandbox = stats.view.find(id, Kind::Sandbox, "pod sandbox").await?;
    Ok(pod_stats_of(stats, &sandbox))
}

/// `ListPodSandboxStats`: the ready sandboxes matching the filter.
pub fn list_pod_sandbox_stats(
    stats: &Stats,
    filter: Option<PodSandboxStatsFilter>,
) -> Vec<PodSandboxStats> {
    let filter = filter.unwrap_or_default();
    stats.prune();
    stats
        .view
        .all(Kind::Sandbox)
        .iter()
        .filter(|e| e.phase() == Phase::Running)
        .filter(|e| filter.id.is_empty() || e.id().starts_with(&filter.id))
        .filter(|e| has_labels(e, &filter.label_selector))
        .map(|e| pod_stats_of(stats, e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_skip_unknown_values() {
        assert_eq!(sum([Some(1), None, Some(2)].into_iter()), Some(3));
        assert_eq!(sum([None, None].into_iter()), None);
        assert_eq!(sum([Some(u64::MAX), Some(1)].into_iter()), Some(u64::MAX));
    }

    #[test]
    fn network_usage_prefers_eth0_as_default() {
        let ifaces = vec![
            InterfaceCounters {
                name: "net1".into(),
                rx_bytes: 1,
                ..Default::default()
            },
            InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 7,
                ..Default::default()
            },
        ];
        let usage = network(5, &ifaces).unwrap();
        let default = usage.default_interface.unwrap();
        assert_eq!(default.name, "eth0");
        assert_eq!(default.rx_bytes.unwrap().value, 7);
        assert_eq!(usage.interfaces.len(), 2);
        assert!(network(5, &[]).is_none());
    }
}
