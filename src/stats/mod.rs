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
    FilesystemUsage, IoUsage, LinuxPodSandboxStats, MemoryUsage, NetworkInterfaceUsage,
    NetworkUsage, PodSandboxAttributes, PodSandboxStats, PodSandboxStatsFilter, ProcessUsage,
    PsiData, PsiStats, SwapUsage, UInt64Value,
};
use crate::docker::now_nanos;
use crate::error::Result;
use crate::naming;
use crate::view::{Entry, Kind, Phase, View};
use kstats::{
    CgroupRoots, CgroupSample, CpuRateTracker, FsUsageCache, InterfaceCounters, Pressure, Psi,
    PsiLine,
};

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

/// The CRI's pressure figures: its totals are nanoseconds (the kubelet
/// passes them on as the Summary API's `PSIData.Total`, documented in
/// nanoseconds), the kernel's microseconds.
fn psi(psi: &Psi) -> PsiStats {
    let data = |line: &PsiLine| PsiData {
        total: line.total_us.saturating_mul(1000),
        avg10: line.avg10,
        avg60: line.avg60,
        avg300: line.avg300,
    };
    PsiStats {
        full: psi.full.as_ref().map(data),
        some: psi.some.as_ref().map(data),
    }
}

fn cpu(r: &Reading) -> CpuUsage {
    CpuUsage {
        timestamp: r.at,
        usage_core_nano_seconds: value(r.cgroup.cpu_usage_ns),
        usage_nano_cores: value(r.nano_cores),
        psi: r.cgroup.pressure.cpu.as_ref().map(psi),
    }
}

/// Only where the cgroup has an `io.pressure` of its own: PSI is all the
/// CRI's `IoUsage` carries.
fn io(r: &Reading) -> Option<IoUsage> {
    r.cgroup.pressure.io.as_ref().map(|p| IoUsage {
        timestamp: r.at,
        psi: Some(psi(p)),
    })
}

/// Only with swap accounting; the available bytes only under a swap limit
/// (as the kubelet defines them: the limit minus the usage).
fn swap(r: &Reading) -> Option<SwapUsage> {
    r.cgroup.swap.map(|s| SwapUsage {
        timestamp: r.at,
        swap_usage_bytes: value(Some(s.used)),
        swap_available_bytes: value(s.available()),
    })
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
        psi: c.pressure.memory.as_ref().map(psi),
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
        swap: reading.as_ref().and_then(swap),
        io: reading.as_ref().and_then(io),
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

/// The stalls of the pod as a whole, from its own cgroup: the pause
/// container's parent, when the pod was given a cgroup parent (the kubelet
/// gives every pod one). Without it the parent is Docker's, shared by every
/// container, and the pod has no pressure figures. They cannot be summed
/// from the containers'.
fn pod_pressure(stats: &Stats, sandbox: &Entry) -> Pressure {
    let has_own_cgroup = sandbox
        .inspected
        .host_config
        .as_ref()
        .and_then(|h| h.cgroup_parent.as_deref())
        .is_some_and(|p| !p.is_empty());
    if sandbox.phase() != Phase::Running || !has_own_cgroup {
        return Pressure::default();
    }
    stats
        .roots
        .as_ref()
        .zip(pid_of(&sandbox.inspected))
        .and_then(|(roots, pid)| roots.of_pid(pid).ok())
        .and_then(|cgroup| cgroup.parent())
        .map(|pod| pod.read_pressure())
        .unwrap_or_default()
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
            // The CRI has no pod swap; the kubelet sums the containers'.
            swap: None,
            pressure: pod_pressure(stats, sandbox),
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
            io: pod.as_ref().and_then(io),
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

    /// A reading of the cgroup at `path` in the hierarchies of `mountinfo`.
    fn reading_of(mountinfo: &str, proc_cgroup: &str) -> Reading {
        let cgroup = CgroupRoots::from_mountinfo(mountinfo)
            .from_proc_cgroup(proc_cgroup)
            .read();
        Reading {
            at: 42,
            cgroup,
            nano_cores: None,
        }
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn data(total: u64, avg10: f64, avg60: f64, avg300: f64) -> Option<PsiData> {
        Some(PsiData {
            total,
            avg10,
            avg60,
            avg300,
        })
    }

    #[test]
    fn cgroup_v2_tree_fills_swap_and_pressure() {
        let tmp = tempfile::tempdir().unwrap();
        let mountinfo = format!(
            "26 22 0:23 / {} rw - cgroup2 cgroup2 rw,nsdelegate\n",
            tmp.path().display()
        );
        let dir = tmp.path().join("kubepods.slice/pod.slice/ctr.scope");
        write(&dir, "cpu.stat", "usage_usec 2500\n");
        write(&dir, "memory.current", "9000000\n");
        write(&dir, "memory.max", "max\n");
        write(&dir, "memory.stat", "anon 4000000\ninactive_file 1000000\n");
        write(&dir, "memory.swap.current", "4096\n");
        write(&dir, "memory.swap.max", "1048576\n");
        write(
            &dir,
            "cpu.pressure",
            "some avg10=1.25 avg60=0.50 avg300=0.10 total=2500000\n\
             full avg10=0.75 avg60=0.25 avg300=0.05 total=1000000\n",
        );
        write(
            &dir,
            "memory.pressure",
            "some avg10=12.34 avg60=5.00 avg300=1.25 total=10\n\
             full avg10=2.00 avg60=1.00 avg300=0.50 total=5\n",
        );
        write(
            &dir,
            "io.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=20\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
        let r = reading_of(&mountinfo, "0::/kubepods.slice/pod.slice/ctr.scope\n");

        // Totals in nanoseconds, averages as the kernel wrote them.
        assert_eq!(
            cpu(&r).psi,
            Some(PsiStats {
                some: data(2_500_000_000, 1.25, 0.5, 0.1),
                full: data(1_000_000_000, 0.75, 0.25, 0.05),
            })
        );
        let mem = memory(&r);
        assert_eq!(
            mem.psi,
            Some(PsiStats {
                some: data(10_000, 12.34, 5.0, 1.25),
                full: data(5_000, 2.0, 1.0, 0.5),
            })
        );
        assert_eq!(mem.usage_bytes, value(Some(9_000_000)));
        assert_eq!(
            io(&r),
            Some(IoUsage {
                timestamp: 42,
                psi: Some(PsiStats {
                    some: data(20_000, 0.0, 0.0, 0.0),
                    full: data(7_000, 0.0, 0.0, 0.0),
                }),
            })
        );
        assert_eq!(
            swap(&r),
            Some(SwapUsage {
                timestamp: 42,
                swap_usage_bytes: value(Some(4096)),
                swap_available_bytes: value(Some(1_044_480)),
            })
        );

        // Unlimited swap: the usage only. CPU pressure before Linux 5.13:
        // no "full" line.
        write(&dir, "memory.swap.max", "max\n");
        write(
            &dir,
            "cpu.pressure",
            "some avg10=1.25 avg60=0.50 avg300=0.10 total=2500000\n",
        );
        let r = reading_of(&mountinfo, "0::/kubepods.slice/pod.slice/ctr.scope\n");
        let swap_usage = swap(&r).unwrap();
        assert_eq!(swap_usage.swap_usage_bytes, value(Some(4096)));
        assert_eq!(swap_usage.swap_available_bytes, None);
        let cpu_psi = cpu(&r).psi.unwrap();
        assert!(cpu_psi.some.is_some());
        assert_eq!(cpu_psi.full, None);

        // No swap accounting, no PSI in the kernel: all unset.
        for f in [
            "memory.swap.current",
            "memory.swap.max",
            "cpu.pressure",
            "memory.pressure",
            "io.pressure",
        ] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        let r = reading_of(&mountinfo, "0::/kubepods.slice/pod.slice/ctr.scope\n");
        assert_eq!(swap(&r), None);
        assert_eq!(io(&r), None);
        assert_eq!(cpu(&r).psi, None);
        assert_eq!(memory(&r).psi, None);
    }

    #[test]
    fn cgroup_v1_tree_has_swap_with_accounting_and_never_pressure() {
        let tmp = tempfile::tempdir().unwrap();
        let b = tmp.path().display();
        let mountinfo = format!(
            "29 25 0:26 / {b}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             30 25 0:27 / {b}/memory rw - cgroup cgroup rw,memory\n"
        );
        let proc_cgroup = "3:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        let cpu_dir = tmp.path().join("cpu,cpuacct/docker/abc");
        let mem = tmp.path().join("memory/docker/abc");
        write(&cpu_dir, "cpuacct.usage", "123456789\n");
        write(&mem, "memory.usage_in_bytes", "10000000\n");
        write(&mem, "memory.limit_in_bytes", "67108864\n");
        write(
            &mem,
            "memory.stat",
            "total_rss 100\ntotal_inactive_file 10\n",
        );

        // Without swap accounting.
        let r = reading_of(&mountinfo, proc_cgroup);
        assert_eq!(swap(&r), None);
        assert_eq!(io(&r), None);
        assert_eq!(cpu(&r).psi, None);
        assert_eq!(memory(&r).psi, None);
        assert_eq!(cpu(&r).usage_core_nano_seconds, value(Some(123_456_789)));

        // With it: memsw is memory plus swap.
        write(
            &mem,
            "memory.stat",
            "total_rss 100\ntotal_inactive_file 10\ntotal_swap 4096\n",
        );
        write(&mem, "memory.memsw.usage_in_bytes", "10004096\n");
        write(&mem, "memory.memsw.limit_in_bytes", "134217728\n");
        let r = reading_of(&mountinfo, proc_cgroup);
        assert_eq!(
            swap(&r),
            Some(SwapUsage {
                timestamp: 42,
                swap_usage_bytes: value(Some(4096)),
                swap_available_bytes: value(Some(67_104_768)),
            })
        );
        assert_eq!(io(&r), None);
        assert_eq!(cpu(&r).psi, None);
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
