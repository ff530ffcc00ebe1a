//! The cAdvisor-named container metrics: `ListMetricDescriptors` and
//! `ListPodSandboxMetrics`.
//!
//! With `PodAndContainerStatsFromCRI` the kubelet serves `/metrics/cadvisor`
//! from these calls instead of its built-in cAdvisor, turning each descriptor
//! into a Prometheus metric family and each metric into a sample. So every
//! metric keeps the name, help, type (counter or gauge) and labels cAdvisor
//! gives it, and its value comes from the same cgroup and `/proc` files
//! cAdvisor reads ([`kstats`](super::kstats)). critest's conformance spec
//! lists the names it expects and checks that each descriptor's label keys
//! are as many as the label values of the metrics served under it; the kubelet
//! rejects a sample whose values do not match its family's keys.
//!
//! # Layout
//!
//! As containerd lays them out: the pod's network counters are the pod's own
//! metrics, labelled as its pause container (`container="POD"`, as cAdvisor
//! labelled the pause container that holds the network namespace); everything
//! else belongs to its container. Only running containers are reported, as
//! cAdvisor drops a container once its cgroup is gone.
//!
//! # Labels
//!
//! Every metric starts with [`BASE_LABELS`]: `container` (the CRI name),
//! `id` (the container id), `image`, `name` (the Docker name), `namespace`
//! and `pod`, the set the kubelet attached to cAdvisor's metrics for Docker
//! containers. Metric-specific keys follow (`cpu`, `device`, `interface`, ...).
//!
//! # Values
//!
//! The CRI carries unsigned integers, so cAdvisor's fractional seconds are
//! whole seconds here (truncated), and values cAdvisor gives as -1 (an
//! unlimited ulimit) are left out. A metric whose files are missing (no
//! pressure files outside the unified hierarchy, no hugetlb controller, no
//! quota for the CFS throttling figures, as cAdvisor also omits them) is left
//! out rather than reported as 0; `container_memory_swap` alone is 0 without
//! swap accounting, as cAdvisor reports it. Swap and pressure are the same
//! readings the CRI stats carry.

use std::path::Path;

use super::Stats;
use super::kstats::{self, CgroupMetrics, DeviceIo, FdCounts, FsCapacity, InterfaceCounters};
use super::{interfaces, pid_of, upper_dir};
use crate::api::{
    ContainerMetrics, Metric, MetricDescriptor, MetricType, PodSandboxMetadata, PodSandboxMetrics,
    UInt64Value,
};
use crate::docker::{now_nanos, timestamp_nanos};
use crate::naming;
use crate::view::{Entry, Kind, Phase};

/// Label keys every metric starts with, in this order.
const BASE_LABELS: [&str; 6] = ["container", "id", "image", "name", "namespace", "pod"];

/// The `container` label of the pod-level (network) metrics.
const POD_CONTAINER: &str = "POD";

/// Interfaces cAdvisor leaves out of the network metrics, by name prefix: the
/// loopback, and host-side or bridge devices that may show up in a shared
/// namespace.
const IGNORED_INTERFACES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];

/// A new container's writable layer is measured on the spot when it holds at
/// most this many inodes (a few milliseconds of `lstat`s), so its first
/// metrics already carry `container_fs_usage_bytes`; bigger layers wait for
/// the background walk.
const INLINE_WALK_MAX_INODES: u64 = 4096;

/// One metric family: name, help, type, and the label keys after
/// [`BASE_LABELS`]. `N` fixes how many label values its samples carry, so a
/// sample cannot disagree with its descriptor.
struct Def<const N: usize> {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    extra: [&'static str; N],
}

const fn counter<const N: usize>(
    name: &'static str,
    help: &'static str,
    extra: [&'static str; N],
) -> Def<N> {
    Def {
        name,
        help,
        kind: MetricType::Counter,
        extra,
    }
}

const fn gauge<const N: usize>(
    name: &'static str,
    help: &'static str,
    extra: [&'static str; N],
) -> Def<N> {
    Def {
        name,
        help,
        kind: MetricType::Gauge,
        extra,
    }
}

/// A [`Def`] of any label count, for the list of descriptors.
trait Describe: Sync {
    fn descriptor(&self) -> MetricDescriptor;
}

impl<const N: usize> Describe for Def<N> {
    fn descriptor(&self) -> MetricDescriptor {
        MetricDescriptor {
            name: self.name.to_owned(),
            help: self.help.to_owned(),
            label_keys: BASE_LABELS
                .iter()
                .chain(&self.extra)
                .map(|k| (*k).to_owned())
                .collect(),
        }
    }
}

// The families, with cAdvisor's help texts.

const LAST_SEEN: Def<0> = gauge(
    "container_last_seen",
    "Last time a container was seen by the exporter",
    [],
);
const CPU_USER: Def<0> = counter(
    "container_cpu_user_seconds_total",
    "Cumulative user cpu time consumed in seconds.",
    [],
);
const CPU_SYSTEM: Def<0> = counter(
    "container_cpu_system_seconds_total",
    "Cumulative system cpu time consumed in seconds.",
    [],
);
/// cAdvisor labels the total `cpu="total"` when per-CPU figures are off, as
/// the kubelet runs it.
const CPU_USAGE: Def<1> = counter(
    "container_cpu_usage_seconds_total",
    "Cumulative cpu time consumed in seconds.",
    ["cpu"],
);
const CFS_PERIODS: Def<0> = counter(
    "container_cpu_cfs_periods_total",
    "Number of elapsed enforcement period intervals.",
    [],
);
const CFS_THROTTLED_PERIODS: Def<0> = counter(
    "container_cpu_cfs_throttled_periods_total",
    "Number of throttled period intervals.",
    [],
);
const CFS_THROTTLED_SECONDS: Def<0> = counter(
    "container_cpu_cfs_throttled_seconds_total",
    "Total time duration the container has been throttled.",
    [],
);
const MEMORY_CACHE: Def<0> = gauge(
    "container_memory_cache",
    "Number of bytes of page cache memory.",
    [],
);
const MEMORY_RSS: Def<0> = gauge("container_memory_rss", "Size of RSS in bytes.", []);
const MEMORY_KERNEL: Def<0> = gauge(
    "container_memory_kernel_usage",
    "Size of kernel memory allocated in bytes.",
    [],
);
const MEMORY_MAPPED_FILE: Def<0> = gauge(
    "container_memory_mapped_file",
    "Size of memory mapped files in bytes.",
    [],
);
const MEMORY_SWAP: Def<0> = gauge(
    "container_memory_swap",
    "Container swap usage in bytes.",
    [],
);
const MEMORY_FAILCNT: Def<0> = counter(
    "container_memory_failcnt",
    "Number of memory usage hits limits",
    [],
);
const MEMORY_USAGE: Def<0> = gauge(
    "container_memory_usage_bytes",
    "Current memory usage in bytes, including all memory regardless of when it was accessed",
    [],
);
const MEMORY_MAX_USAGE: Def<0> = gauge(
    "container_memory_max_usage_bytes",
    "Maximum memory usage recorded in bytes",
    [],
);
const MEMORY_WORKING_SET: Def<0> = gauge(
    "container_memory_working_set_bytes",
    "Current working set in bytes.",
    [],
);
const MEMORY_FAILURES: Def<2> = counter(
    "container_memory_failures_total",
    "Cumulative count of memory allocation failures.",
    ["failure_type", "scope"],
);
const HUGETLB_USAGE: Def<1> = gauge(
    "container_hugetlb_usage_bytes",
    "Current hugepage usage in bytes",
    ["pagesize"],
);
const HUGETLB_MAX_USAGE: Def<1> = gauge(
    "container_hugetlb_max_usage_bytes",
    "Maximum hugepage usage recorded in bytes",
    ["pagesize"],
);
const FS_INODES_FREE: Def<1> = gauge(
    "container_fs_inodes_free",
    "Number of available Inodes",
    ["device"],
);
const FS_INODES_TOTAL: Def<1> = gauge("container_fs_inodes_total", "Number of Inodes", ["device"]);
const FS_LIMIT: Def<1> = gauge(
    "container_fs_limit_bytes",
    "Number of bytes that can be consumed by the container on this filesystem.",
    ["device"],
);
const FS_USAGE: Def<1> = gauge(
    "container_fs_usage_bytes",
    "Number of bytes that are consumed by the container on this filesystem.",
    ["device"],
);
const FS_READS_BYTES: Def<1> = counter(
    "container_fs_reads_bytes_total",
    "Cumulative count of bytes read",
    ["device"],
);
const FS_READS: Def<1> = counter(
    "container_fs_reads_total",
    "Cumulative count of reads completed",
    ["device"],
);
const FS_WRITES_BYTES: Def<1> = counter(
    "container_fs_writes_bytes_total",
    "Cumulative count of bytes written",
    ["device"],
);
const FS_WRITES: Def<1> = counter(
    "container_fs_writes_total",
    "Cumulative count of writes completed",
    ["device"],
);
const BLKIO_DEVICE_USAGE: Def<4> = counter(
    "container_blkio_device_usage_total",
    "Blkio Device bytes usage",
    ["device", "major", "minor", "operation"],
);
const NET_RX_BYTES: Def<1> = counter(
    "container_network_receive_bytes_total",
    "Cumulative count of bytes received",
    ["interface"],
);
const NET_RX_PACKETS: Def<1> = counter(
    "container_network_receive_packets_total",
    "Cumulative count of packets received",
    ["interface"],
);
const NET_RX_DROPPED: Def<1> = counter(
    "container_network_receive_packets_dropped_total",
    "Cumulative count of packets dropped while receiving",
    ["interface"],
);
const NET_RX_ERRORS: Def<1> = counter(
    "container_network_receive_errors_total",
    "Cumulative count of errors encountered while receiving",
    ["interface"],
);
const NET_TX_BYTES: Def<1> = counter(
    "container_network_transmit_bytes_total",
    "Cumulative count of bytes transmitted",
    ["interface"],
);
const NET_TX_PACKETS: Def<1> = counter(
    "container_network_transmit_packets_total",
    "Cumulative count of packets transmitted",
    ["interface"],
);
const NET_TX_DROPPED: Def<1> = counter(
    "container_network_transmit_packets_dropped_total",
    "Cumulative count of packets dropped while transmitting",
    ["interface"],
);
const NET_TX_ERRORS: Def<1> = counter(
    "container_network_transmit_errors_total",
    "Cumulative count of errors encountered while transmitting",
    ["interface"],
);
const PROCESSES: Def<0> = gauge(
    "container_processes",
    "Number of processes running inside the container.",
    [],
);
const FILE_DESCRIPTORS: Def<0> = gauge(
    "container_file_descriptors",
    "Number of open file descriptors for the container.",
    [],
);
const SOCKETS: Def<0> = gauge(
    "container_sockets",
    "Number of open sockets for the container.",
    [],
);
const THREADS_MAX: Def<0> = gauge(
    "container_threads_max",
    "Maximum number of threads allowed inside the container, infinity if value is zero",
    [],
);
const THREADS: Def<0> = gauge(
    "container_threads",
    "Number of threads running inside the container",
    [],
);
const ULIMITS_SOFT: Def<1> = gauge(
    "container_ulimits_soft",
    "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice",
    ["ulimit"],
);
const OOM_EVENTS: Def<0> = counter(
    "container_oom_events_total",
    "Count of out of memory events observed for the container",
    [],
);
const PRESSURE_CPU_STALLED: Def<0> = counter(
    "container_pressure_cpu_stalled_seconds_total",
    "Total time duration no tasks in the container could make progress due to CPU congestion.",
    [],
);
const PRESSURE_CPU_WAITING: Def<0> = counter(
    "container_pressure_cpu_waiting_seconds_total",
    "Total time duration tasks in the container have waited due to CPU congestion.",
    [],
);
const PRESSURE_MEMORY_STALLED: Def<0> = counter(
    "container_pressure_memory_stalled_seconds_total",
    "Total time duration no tasks in the container could make progress due to memory congestion.",
    [],
);
const PRESSURE_MEMORY_WAITING: Def<0> = counter(
    "container_pressure_memory_waiting_seconds_total",
    "Total time duration tasks in the container have waited due to memory congestion.",
    [],
);
const PRESSURE_IO_STALLED: Def<0> = counter(
    "container_pressure_io_stalled_seconds_total",
    "Total time duration no tasks in the container could make progress due to IO congestion.",
    [],
);
const PRESSURE_IO_WAITING: Def<0> = counter(
    "container_pressure_io_waiting_seconds_total",
    "Total time duration tasks in the container have waited due to IO congestion.",
    [],
);
const START_TIME: Def<0> = gauge(
    "container_start_time_seconds",
    "Start time of the container since unix epoch in seconds.",
    [],
);
const SPEC_CPU_PERIOD: Def<0> = gauge(
    "container_spec_cpu_period",
    "CPU period of the container.",
    [],
);
const SPEC_CPU_QUOTA: Def<0> = gauge(
    "container_spec_cpu_quota",
    "CPU quota of the container.",
    [],
);
const SPEC_CPU_SHARES: Def<0> = gauge(
    "container_spec_cpu_shares",
    "CPU share of the container.",
    [],
);
const SPEC_MEMORY_LIMIT: Def<0> = gauge(
    "container_spec_memory_limit_bytes",
    "Memory limit for the container.",
    [],
);
const SPEC_MEMORY_SWAP_LIMIT: Def<0> = gauge(
    "container_spec_memory_swap_limit_bytes",
    "Memory swap limit for the container.",
    [],
);
const SPEC_MEMORY_RESERVATION: Def<0> = gauge(
    "container_spec_memory_reservation_limit_bytes",
    "Memory reservation limit for the container.",
    [],
);

/// Every family served; `ListMetricDescriptors` lists them in this order.
static FAMILIES: &[&dyn Describe] = &[
    &LAST_SEEN,
    &START_TIME,
    &CPU_USER,
    &CPU_SYSTEM,
    &CPU_USAGE,
    &CFS_PERIODS,
    &CFS_THROTTLED_PERIODS,
    &CFS_THROTTLED_SECONDS,
    &MEMORY_CACHE,
    &MEMORY_RSS,
    &MEMORY_KERNEL,
    &MEMORY_MAPPED_FILE,
    &MEMORY_SWAP,
    &MEMORY_FAILCNT,
    &MEMORY_USAGE,
    &MEMORY_MAX_USAGE,
    &MEMORY_WORKING_SET,
    &MEMORY_FAILURES,
    &HUGETLB_USAGE,
    &HUGETLB_MAX_USAGE,
    &FS_INODES_FREE,
    &FS_INODES_TOTAL,
    &FS_LIMIT,
    &FS_USAGE,
    &FS_READS_BYTES,
    &FS_READS,
    &FS_WRITES_BYTES,
    &FS_WRITES,
    &BLKIO_DEVICE_USAGE,
    &NET_RX_BYTES,
    &NET_RX_PACKETS,
    &NET_RX_DROPPED,
    &NET_RX_ERRORS,
    &NET_TX_BYTES,
    &NET_TX_PACKETS,
    &NET_TX_DROPPED,
    &NET_TX_ERRORS,
    &PROCESSES,
    &FILE_DESCRIPTORS,
    &SOCKETS,
    &THREADS_MAX,
    &THREADS,
    &ULIMITS_SOFT,
    &OOM_EVENTS,
    &PRESSURE_CPU_STALLED,
    &PRESSURE_CPU_WAITING,
    &PRESSURE_MEMORY_STALLED,
    &PRESSURE_MEMORY_WAITING,
    &PRESSURE_IO_STALLED,
    &PRESSURE_IO_WAITING,
    &SPEC_CPU_PERIOD,
    &SPEC_CPU_QUOTA,
    &SPEC_CPU_SHARES,
    &SPEC_MEMORY_LIMIT,
    &SPEC_MEMORY_SWAP_LIMIT,
    &SPEC_MEMORY_RESERVATION,
];

/// `ListMetricDescriptors`.
pub fn metric_descriptors() -> Vec<MetricDescriptor> {
    FAMILIES.iter().map(|f| f.descriptor()).collect()
}

/// `ListPodSandboxMetrics`: every ready pod's metrics.
pub fn pod_sandbox_metrics(stats: &Stats) -> Vec<PodSandboxMetrics> {
    stats.prune();
    let sandboxes: Vec<Entry> = stats
        .view
        .all(Kind::Sandbox)
        .into_iter()
        .filter(|e| e.phase() == Phase::Running)
        .collect();
    if sandboxes.is_empty() {
        return Vec::new();
    }
    let host = Host::read(stats);
    sandboxes
        .iter()
        .map(|sandbox| pod_metrics_of(stats, &host, sandbox))
        .collect()
}

/// Facts shared by all containers: the filesystem their writable layers live
/// on (Docker's data directory).
struct Host {
    /// The `device` label of the filesystem metrics.
    fs_device: String,
    fs: Option<FsCapacity>,
}

impl Host {
    fn read(stats: &Stats) -> Self {
        let dir = Path::new(&stats.layer_mountpoint);
        // The mount under Docker's data directory does not change while the
        // daemon runs; look it up once.
        let fs_device = stats
            .layer_device
            .get_or_init(|| match kstats::device_of(dir) {
                Ok(device) => device.unwrap_or_default(),
                Err(err) => {
                    tracing::debug!(dir = %dir.display(), error = %err, "no device for Docker's data directory");
                    String::new()
                }
            })
            .clone();
        Self {
            fs_device,
            fs: kstats::capacity_of(dir).ok(),
        }
    }
}

fn pod_metrics_of(stats: &Stats, host: &Host, sandbox: &Entry) -> PodSandboxMetrics {
    let pod = naming::parse_sandbox_name(sandbox.inspected.name.as_deref().unwrap_or_default())
        .unwrap_or_default();
    let metrics = network_metrics(
        &base_labels(POD_CONTAINER, sandbox, &pod),
        now_nanos(),
        &interfaces(sandbox),
    );
    let container_metrics = stats
        .view
        .containers_of(sandbox.id())
        .iter()
        .filter_map(|entry| {
            let sample = sample(stats, entry)?;
            let name = entry
                .inspected
                .name
                .as_deref()
                .and_then(naming::parse_container_name)
                .map(|m| m.name)
                .unwrap_or_default();
            Some(ContainerMetrics {
                container_id: entry.id().to_owned(),
                metrics: container_metrics(&base_labels(&name, entry, &pod), &sample, host),
            })
        })
        .collect();
    PodSandboxMetrics {
        pod_sandbox_id: sandbox.id().to_owned(),
        metrics,
        container_metrics,
    }
}

/// [`BASE_LABELS`]' values for a container (or the pause container, named
/// `POD`).
fn base_labels(container: &str, entry: &Entry, pod: &PodSandboxMetadata) -> Vec<String> {
    let image = entry
        .inspected
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let docker_name = entry
        .inspected
        .name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/');
    vec![
        container.to_owned(),
        entry.id().to_owned(),
        image,
        docker_name.to_owned(),
        pod.namespace.clone(),
        pod.name.clone(),
    ]
}

/// What one running container's metrics are made of, read from the kernel.
#[derive(Debug, Default)]
struct ContainerSample {
    /// When it was read, Unix nanoseconds.
    at: i64,
    cgroup: CgroupMetrics,
    /// Block I/O per device, with the device's `/dev` name ("" if unknown).
    io: Vec<(String, DeviceIo)>,
    fds: Option<FdCounts>,
    /// The root process's soft limit on open files.
    open_files: Option<u64>,
    started_secs: Option<u64>,
    /// Bytes used by the writable layer.
    layer_bytes: Option<u64>,
}

/// Reads a running container's cgroup and processes; `None` if it is not
/// running or its cgroup cannot be found.
fn sample(stats: &Stats, entry: &Entry) -> Option<ContainerSample> {
    if entry.phase() != Phase::Running {
        return None;
    }
    let roots = stats.roots.as_ref()?;
    let pid = pid_of(&entry.inspected)?;
    let mut cgroup = roots.of_pid(pid).ok()?.read_metrics();
    let at = now_nanos();
    let proc = Path::new(kstats::PROC);
    let sys = Path::new(kstats::SYS);
    let io = std::mem::take(&mut cgroup.io)
        .into_iter()
        .map(|d| {
            let name = kstats::block_device_name(sys, d.major, d.minor).unwrap_or_default();
            (name, d)
        })
        .collect();
    let fds = cgroup
        .procs
        .as_deref()
        .map(|pids| kstats::count_fds(proc, pids));
    let started = entry
        .inspected
        .state
        .as_ref()
        .map(|s| timestamp_nanos(s.started_at.as_deref()))
        .and_then(|ns| u64::try_from(ns).ok())
        .filter(|ns| *ns > 0)
        .map(|ns| ns / 1_000_000_000);
    let layer_bytes = upper_dir(&entry.inspected)
        .and_then(|dir| stats.layers.get_or_measure(&dir, INLINE_WALK_MAX_INODES))
        .map(|u| u.used_bytes);
    Some(ContainerSample {
        at,
        cgroup,
        io,
        fds,
        open_files: kstats::soft_open_files_limit(proc, pid),
        started_secs: started,
        layer_bytes,
    })
}

/// Builds metrics that share one set of base label values and timestamp.
struct Emitter<'a> {
    base: &'a [String],
    at: i64,
    out: Vec<Metric>,
}

impl<'a> Emitter<'a> {
    fn new(base: &'a [String], at: i64) -> Self {
        Self {
            base,
            at,
            out: Vec::new(),
        }
    }

    /// Adds a sample of `def` labelled `extra` after the base labels; none if
    /// `value` is unknown.
    fn put<const N: usize>(&mut self, def: &Def<N>, extra: [&str; N], value: Option<u64>) {
        let Some(value) = value else {
            return;
        };
        let label_values = self
            .base
            .iter()
            .cloned()
            .chain(extra.iter().map(|v| (*v).to_owned()))
            .collect();
        self.out.push(Metric {
            name: def.name.to_owned(),
            timestamp: self.at,
            metric_type: def.kind as i32,
            label_values,
            value: Some(UInt64Value { value }),
        });
    }
}

fn seconds_from_ns(ns: u64) -> u64 {
    ns / 1_000_000_000
}

fn seconds_from_us(us: u64) -> u64 {
    us / 1_000_000
}

/// The pod's network counters, per interface cAdvisor would report.
fn network_metrics(base: &[String], at: i64, interfaces: &[InterfaceCounters]) -> Vec<Metric> {
    let mut e = Emitter::new(base, at);
    let reported = interfaces
        .iter()
        .filter(|i| !IGNORED_INTERFACES.iter().any(|p| i.name.starts_with(p)));
    for i in reported {
        let name = [i.name.as_str()];
        e.put(&NET_RX_BYTES, name, Some(i.rx_bytes));
        e.put(&NET_RX_PACKETS, name, Some(i.rx_packets));
        e.put(&NET_RX_DROPPED, name, Some(i.rx_dropped));
        e.put(&NET_RX_ERRORS, name, Some(i.rx_errors));
        e.put(&NET_TX_BYTES, name, Some(i.tx_bytes));
        e.put(&NET_TX_PACKETS, name, Some(i.tx_packets));
        e.put(&NET_TX_DROPPED, name, Some(i.tx_dropped));
        e.put(&NET_TX_ERRORS, name, Some(i.tx_errors));
    }
    e.out
}

/// A container's metrics from its sample.
fn container_metrics(base: &[String], s: &ContainerSample, host: &Host) -> Vec<Metric> {
    let mut e = Emitter::new(base, s.at);
    let c = &s.cgroup;
    let usage = &c.sample;

    let now = u64::try_from(s.at).ok().map(seconds_from_ns);
    e.put(&LAST_SEEN, [], now);
    e.put(&START_TIME, [], s.started_secs);

    e.put(&CPU_USER, [], c.cpu.user_ns.map(seconds_from_ns));
    e.put(&CPU_SYSTEM, [], c.cpu.system_ns.map(seconds_from_ns));
    e.put(
        &CPU_USAGE,
        ["total"],
        usage.cpu_usage_ns.map(seconds_from_ns),
    );
    // cAdvisor reports the CFS figures only for containers with a quota:
    // without one the kernel counts no periods.
    if c.spec.cpu_quota_us.is_some() {
        e.put(&CFS_PERIODS, [], c.cpu.periods);
        e.put(&CFS_THROTTLED_PERIODS, [], c.cpu.throttled_periods);
        e.put(
            &CFS_THROTTLED_SECONDS,
            [],
            c.cpu.throttled_ns.map(seconds_from_ns),
        );
    }

    e.put(&MEMORY_CACHE, [], c.memory.cache);
    e.put(&MEMORY_RSS, [], usage.memory_rss);
    e.put(&MEMORY_KERNEL, [], c.memory.kernel_usage);
    e.put(&MEMORY_MAPPED_FILE, [], c.memory.mapped_file);
    // The same reading as the CRI stats' swap, but 0 without swap
    // accounting, as cAdvisor reports it (critest expects the metric).
    e.put(
        &MEMORY_SWAP,
        [],
        usage.memory_usage.map(|_| usage.swap.map_or(0, |s| s.used)),
    );
    e.put(&MEMORY_FAILCNT, [], c.memory.failcnt);
    e.put(&MEMORY_USAGE, [], usage.memory_usage);
    e.put(&MEMORY_MAX_USAGE, [], c.memory.max_usage);
    e.put(&MEMORY_WORKING_SET, [], usage.memory_working_set);
    e.put(
        &MEMORY_FAILURES,
        ["pgfault", "container"],
        c.memory.own_page_faults,
    );
    e.put(
        &MEMORY_FAILURES,
        ["pgmajfault", "container"],
        c.memory.own_major_page_faults,
    );
    e.put(
        &MEMORY_FAILURES,
        ["pgfault", "hierarchy"],
        usage.page_faults,
    );
    e.put(
        &MEMORY_FAILURES,
        ["pgmajfault", "hierarchy"],
        usage.major_page_faults,
    );
    e.put(&OOM_EVENTS, [], usage.oom_kills);

    for h in &c.hugetlb {
        let pagesize = [h.pagesize.as_str()];
        e.put(&HUGETLB_USAGE, pagesize, h.usage);
        e.put(&HUGETLB_MAX_USAGE, pagesize, h.max_usage);
    }

    let device = [host.fs_device.as_str()];
    if let Some(fs) = &host.fs {
        e.put(&FS_INODES_FREE, device, Some(fs.inodes_free));
        e.put(&FS_INODES_TOTAL, device, Some(fs.inodes_total));
        e.put(&FS_LIMIT, device, Some(fs.capacity_bytes));
    }
    e.put(&FS_USAGE, device, s.layer_bytes);

    for (name, io) in &s.io {
        let device = [name.as_str()];
        e.put(&FS_READS_BYTES, device, io.bytes_of("Read"));
        e.put(&FS_WRITES_BYTES, device, io.bytes_of("Write"));
        e.put(&FS_READS, device, io.ops_of("Read"));
        e.put(&FS_WRITES, device, io.ops_of("Write"));
        let (major, minor) = (io.major.to_string(), io.minor.to_string());
        for (op, bytes) in &io.bytes {
            e.put(
                &BLKIO_DEVICE_USAGE,
                [name.as_str(), major.as_str(), minor.as_str(), op.as_str()],
                Some(*bytes),
            );
        }
    }

    e.put(
        &PROCESSES,
        [],
        c.procs.as_ref().and_then(|p| u64::try_from(p.len()).ok()),
    );
    e.put(&FILE_DESCRIPTORS, [], s.fds.map(|f| f.fds));
    e.put(&SOCKETS, [], s.fds.map(|f| f.sockets));
    e.put(&THREADS, [], usage.pids);
    e.put(&THREADS_MAX, [], c.threads_max);
    e.put(&ULIMITS_SOFT, ["max_open_files"], s.open_files);

    // The same reading as the CRI stats' PSI.
    let p = &usage.pressure;
    let full = |psi: &Option<kstats::Psi>| {
        psi.and_then(|p| p.full)
            .map(|line| seconds_from_us(line.total_us))
    };
    let some = |psi: &Option<kstats::Psi>| {
        psi.and_then(|p| p.some)
            .map(|line| seconds_from_us(line.total_us))
    };
    e.put(&PRESSURE_CPU_STALLED, [], full(&p.cpu));
    e.put(&PRESSURE_CPU_WAITING, [], some(&p.cpu));
    e.put(&PRESSURE_MEMORY_STALLED, [], full(&p.memory));
    e.put(&PRESSURE_MEMORY_WAITING, [], some(&p.memory));
    e.put(&PRESSURE_IO_STALLED, [], full(&p.io));
    e.put(&PRESSURE_IO_WAITING, [], some(&p.io));

    let spec = &c.spec;
    e.put(&SPEC_CPU_PERIOD, [], spec.cpu_period_us);
    e.put(&SPEC_CPU_QUOTA, [], spec.cpu_quota_us);
    e.put(&SPEC_CPU_SHARES, [], spec.cpu_shares);
    e.put(&SPEC_MEMORY_LIMIT, [], spec.memory_limit);
    e.put(&SPEC_MEMORY_SWAP_LIMIT, [], spec.memory_swap_limit);
    e.put(&SPEC_MEMORY_RESERVATION, [], spec.memory_reservation);

    e.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::kstats::{
        CgroupSample, CgroupSpec, CpuDetail, HugetlbUsage, MemoryDetail, Pressure, Psi, PsiLine,
        Swap,
    };
    use std::collections::{HashMap, HashSet};

    /// cri-tools v1.37.0 `pkg/validate/pod.go` `expectedMetricDescriptorNames`.
    const CRITEST_EXPECTED: [&str; 56] = [
        "container_blkio_device_usage_total",
        "container_cpu_cfs_periods_total",
        "container_cpu_cfs_throttled_periods_total",
        "container_cpu_cfs_throttled_seconds_total",
        "container_cpu_system_seconds_total",
        "container_cpu_usage_seconds_total",
        "container_cpu_user_seconds_total",
        "container_file_descriptors",
        "container_fs_inodes_free",
        "container_fs_inodes_total",
        "container_fs_limit_bytes",
        "container_fs_reads_bytes_total",
        "container_fs_reads_total",
        "container_fs_usage_bytes",
        "container_fs_writes_bytes_total",
        "container_fs_writes_total",
        "container_hugetlb_max_usage_bytes",
        "container_hugetlb_usage_bytes",
        "container_last_seen",
        "container_memory_cache",
        "container_memory_failcnt",
        "container_memory_failures_total",
        "container_memory_kernel_usage",
        "container_memory_mapped_file",
        "container_memory_max_usage_bytes",
        "container_memory_rss",
        "container_memory_swap",
        "container_memory_usage_bytes",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
        "container_network_receive_errors_total",
        "container_network_receive_packets_dropped_total",
        "container_network_receive_packets_total",
        "container_network_transmit_bytes_total",
        "container_network_transmit_errors_total",
        "container_network_transmit_packets_dropped_total",
        "container_network_transmit_packets_total",
        "container_oom_events_total",
        "container_pressure_cpu_stalled_seconds_total",
        "container_pressure_cpu_waiting_seconds_total",
        "container_pressure_io_stalled_seconds_total",
        "container_pressure_io_waiting_seconds_total",
        "container_pressure_memory_stalled_seconds_total",
        "container_pressure_memory_waiting_seconds_total",
        "container_processes",
        "container_sockets",
        "container_spec_cpu_period",
        "container_spec_cpu_quota",
        "container_spec_cpu_shares",
        "container_spec_memory_limit_bytes",
        "container_spec_memory_reservation_limit_bytes",
        "container_spec_memory_swap_limit_bytes",
        "container_start_time_seconds",
        "container_threads",
        "container_threads_max",
        "container_ulimits_soft",
    ];

    /// Names critest lets a runtime leave without values: not on this host
    /// (pressure on cgroup v1, hugetlb without the controller), or block I/O
    /// a virtual disk does not account.
    const MAY_BE_EMPTY: [&str; 13] = [
        "container_hugetlb_max_usage_bytes",
        "container_hugetlb_usage_bytes",
        "container_pressure_cpu_stalled_seconds_total",
        "container_pressure_cpu_waiting_seconds_total",
        "container_pressure_io_stalled_seconds_total",
        "container_pressure_io_waiting_seconds_total",
        "container_pressure_memory_stalled_seconds_total",
        "container_pressure_memory_waiting_seconds_total",
        "container_blkio_device_usage_total",
        "container_fs_reads_bytes_total",
        "container_fs_reads_total",
        "container_fs_writes_bytes_total",
        "container_fs_writes_total",
    ];

    fn descriptors_by_name() -> HashMap<String, MetricDescriptor> {
        metric_descriptors()
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect()
    }

    #[test]
    fn descriptors_are_exactly_critests_list() {
        let descriptors = metric_descriptors();
        let served: HashSet<&str> = descriptors.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            served.len(),
            descriptors.len(),
            "duplicate descriptor names"
        );
        let expected: HashSet<&str> = CRITEST_EXPECTED.into_iter().collect();
        assert_eq!(served, expected);
        for d in &descriptors {
            assert!(!d.help.is_empty(), "{}", d.name);
            assert_eq!(
                &d.label_keys[..BASE_LABELS.len()],
                BASE_LABELS,
                "{}",
                d.name
            );
            let keys: HashSet<&String> = d.label_keys.iter().collect();
            assert_eq!(keys.len(), d.label_keys.len(), "repeated key in {}", d.name);
        }
    }

    fn base() -> Vec<String> {
        [
            "app",
            "abc123",
            "busybox",
            "k8s_app_pod_ns_uid_0",
            "ns",
            "pod",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    /// Pressure figures with these totals (microseconds).
    fn psi(some_us: u64, full_us: u64) -> Psi {
        let line = |total_us| PsiLine {
            total_us,
            avg10: 0.5,
            avg60: 0.25,
            avg300: 0.0,
        };
        Psi {
            some: Some(line(some_us)),
            full: Some(line(full_us)),
        }
    }

    /// A container with every figure known, as on a cgroup v2 host with a
    /// CPU quota, huge pages and one disk.
    fn full_sample() -> ContainerSample {
        ContainerSample {
            at: 1_700_000_000_123_456_789,
            cgroup: CgroupMetrics {
                sample: CgroupSample {
                    cpu_usage_ns: Some(3_500_000_000),
                    memory_usage: Some(10 << 20),
                    memory_working_set: Some(8 << 20),
                    memory_rss: Some(6 << 20),
                    page_faults: Some(1000),
                    major_page_faults: Some(3),
                    memory_limit: Some(64 << 20),
                    pids: Some(5),
                    oom_kills: Some(0),
                    swap: Some(Swap {
                        used: 0,
                        limit: Some(0),
                    }),
                    pressure: Pressure {
                        cpu: Some(psi(2_500_000, 1_000_000)),
                        memory: Some(psi(0, 0)),
                        io: Some(psi(0, 0)),
                    },
                },
                cpu: CpuDetail {
                    user_ns: Some(2_900_000_000),
                    system_ns: Some(600_000_000),
                    periods: Some(40),
                    throttled_periods: Some(2),
                    throttled_ns: Some(1_200_000_000),
                },
                memory: MemoryDetail {
                    cache: Some(2 << 20),
                    mapped_file: Some(1 << 20),
                    failcnt: Some(0),
                    max_usage: Some(12 << 20),
                    kernel_usage: Some(300_000),
                    own_page_faults: Some(900),
                    own_major_page_faults: Some(1),
                },
                spec: CgroupSpec {
                    cpu_shares: Some(1024),
                    cpu_period_us: Some(100_000),
                    cpu_quota_us: Some(20_000),
                    memory_limit: Some(64 << 20),
                    memory_swap_limit: Some(64 << 20),
                    memory_reservation: Some(0),
                },
                threads_max: Some(0),
                procs: Some(vec![10, 11]),
                io: Vec::new(),
                hugetlb: vec![HugetlbUsage {
                    pagesize: "2MB".into(),
                    usage: Some(0),
                    max_usage: Some(0),
                }],
            },
            io: vec![(
                "/dev/vda".into(),
                DeviceIo {
                    major: 253,
                    minor: 0,
                    bytes: vec![("Read".into(), 4096), ("Write".into(), 8192)],
                    ops: vec![("Read".into(), 1), ("Write".into(), 2)],
                },
            )],
            fds: Some(FdCounts { fds: 7, sockets: 1 }),
            open_files: Some(1_048_576),
            started_secs: Some(1_699_999_000),
            layer_bytes: Some(40_960),
        }
    }

    fn host() -> Host {
        Host {
            fs_device: "/dev/vda1".into(),
            fs: Some(FsCapacity {
                capacity_bytes: 100 << 30,
                inodes_total: 6_000_000,
                inodes_free: 5_000_000,
            }),
        }
    }

    fn ifaces() -> Vec<InterfaceCounters> {
        vec![InterfaceCounters {
            name: "eth0".into(),
            rx_bytes: 1500,
            rx_packets: 10,
            tx_bytes: 700,
            tx_packets: 5,
            ..Default::default()
        }]
    }

    fn all_metrics() -> Vec<Metric> {
        let mut metrics = network_metrics(&base(), 1, &ifaces());
        metrics.extend(container_metrics(&base(), &full_sample(), &host()));
        metrics
    }

    /// What critest's "listing pod sandbox metrics" spec checks, and what the
    /// kubelet needs to turn the samples into Prometheus metrics.
    #[test]
    fn every_sample_matches_its_descriptor() {
        let descriptors = descriptors_by_name();
        let metrics = all_metrics();
        let mut seen = HashSet::new();
        for m in &metrics {
            let d = descriptors
                .get(&m.name)
                .unwrap_or_else(|| panic!("no descriptor for {}", m.name));
            assert_eq!(m.label_values.len(), d.label_keys.len(), "{}", m.name);
            assert!(m.value.is_some(), "{}", m.name);
            // The kubelet's registry rejects two samples of one family with
            // the same labels.
            assert!(
                seen.insert((m.name.clone(), m.label_values.clone())),
                "duplicate sample {} {:?}",
                m.name,
                m.label_values
            );
        }
        let served: HashSet<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        for name in CRITEST_EXPECTED {
            assert!(served.contains(name), "no sample of {name}");
        }
    }

    #[test]
    fn types_follow_cadvisor() {
        let metrics = all_metrics();
        let types: HashMap<&str, i32> = metrics
            .iter()
            .map(|m| (m.name.as_str(), m.metric_type))
            .collect();
        let counter = MetricType::Counter as i32;
        let gauge = MetricType::Gauge as i32;
        // cAdvisor's counters are the cumulative `_total`s and failcnt; its
        // inode total is a gauge despite the suffix.
        for name in CRITEST_EXPECTED {
            let is_counter = (name.ends_with("_total") && name != "container_fs_inodes_total")
                || name == "container_memory_failcnt";
            let want = if is_counter { counter } else { gauge };
            assert_eq!(types.get(name), Some(&want), "{name}");
        }
    }

    #[test]
    fn values_are_converted_as_cadvisor_does() {
        let metrics = all_metrics();
        let one = |name: &str, extra: &[&str]| {
            metrics
                .iter()
                .find(|m| m.name == name && m.label_values[BASE_LABELS.len()..] == *extra)
                .and_then(|m| m.value.as_ref())
                .map(|v| v.value)
        };
        // Whole seconds.
        assert_eq!(
            one("container_cpu_usage_seconds_total", &["total"]),
            Some(3)
        );
        assert_eq!(one("container_cpu_user_seconds_total", &[]), Some(2));
        assert_eq!(
            one("container_cpu_cfs_throttled_seconds_total", &[]),
            Some(1)
        );
        assert_eq!(
            one("container_pressure_cpu_waiting_seconds_total", &[]),
            Some(2)
        );
        assert_eq!(
            one("container_pressure_cpu_stalled_seconds_total", &[]),
            Some(1)
        );
        assert_eq!(one("container_last_seen", &[]), Some(1_700_000_000));
        assert_eq!(
            one("container_start_time_seconds", &[]),
            Some(1_699_999_000)
        );
        assert_eq!(one("container_processes", &[]), Some(2));
        assert_eq!(one("container_threads", &[]), Some(5));
        assert_eq!(
            one("container_memory_failures_total", &["pgfault", "container"]),
            Some(900)
        );
        assert_eq!(
            one("container_memory_failures_total", &["pgfault", "hierarchy"]),
            Some(1000)
        );
        assert_eq!(
            one("container_fs_usage_bytes", &["/dev/vda1"]),
            Some(40_960)
        );
        assert_eq!(
            one(
                "container_blkio_device_usage_total",
                &["/dev/vda", "253", "0", "Write"]
            ),
            Some(8192)
        );
        assert_eq!(one("container_fs_writes_total", &["/dev/vda"]), Some(2));
        assert_eq!(
            one("container_ulimits_soft", &["max_open_files"]),
            Some(1_048_576)
        );
        assert_eq!(
            one("container_network_receive_bytes_total", &["eth0"]),
            Some(1500)
        );
    }

    #[test]
    fn unknown_figures_are_left_out_not_zeroed() {
        let sample = ContainerSample {
            at: 5_000_000_000,
            ..ContainerSample::default()
        };
        let host = Host {
            fs_device: String::new(),
            fs: None,
        };
        let names: Vec<String> = container_metrics(&base(), &sample, &host)
            .into_iter()
            .map(|m| m.name)
            .collect();
        // Only the exporter's own clock is known.
        assert_eq!(names, ["container_last_seen"]);
    }

    #[test]
    fn swap_and_pressure_are_the_cri_stats_readings() {
        let swap_of = |sample: &ContainerSample| {
            container_metrics(&base(), sample, &host())
                .into_iter()
                .find(|m| m.name == "container_memory_swap")
                .and_then(|m| m.value)
                .map(|v| v.value)
        };
        let mut sample = full_sample();
        sample.cgroup.sample.swap = Some(Swap {
            used: 4096,
            limit: None,
        });
        assert_eq!(swap_of(&sample), Some(4096));
        // No swap accounting: 0, as cAdvisor reports it.
        sample.cgroup.sample.swap = None;
        assert_eq!(swap_of(&sample), Some(0));
        // No memory controller at all: nothing.
        sample.cgroup.sample.memory_usage = None;
        assert_eq!(swap_of(&sample), None);

        sample.cgroup.sample.pressure = Pressure::default();
        let names: HashSet<String> = container_metrics(&base(), &sample, &host())
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert!(!names.iter().any(|n| n.starts_with("container_pressure_")));
    }

    #[test]
    fn cfs_figures_only_with_a_quota() {
        let mut sample = full_sample();
        sample.cgroup.spec.cpu_quota_us = None;
        let names: HashSet<String> = container_metrics(&base(), &sample, &host())
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert!(!names.contains("container_cpu_cfs_periods_total"));
        assert!(!names.contains("container_spec_cpu_quota"));
        assert!(names.contains("container_spec_cpu_period"));
        // critest lets a runtime omit these; everything else stays.
        for name in CRITEST_EXPECTED {
            let optional = MAY_BE_EMPTY.contains(&name)
                || name.starts_with("container_cpu_cfs_")
                || name == "container_spec_cpu_quota"
                || name.starts_with("container_network_");
            assert!(optional || names.contains(name), "{name}");
        }
    }

    #[test]
    fn network_leaves_out_interfaces_cadvisor_ignores() {
        let names = ["lo", "eth0", "veth1234", "docker0", "net1"];
        let interfaces: Vec<InterfaceCounters> = names
            .iter()
            .map(|n| InterfaceCounters {
                name: (*n).into(),
                ..Default::default()
            })
            .collect();
        let metrics = network_metrics(&base(), 7, &interfaces);
        let reported: HashSet<&str> = metrics
            .iter()
            .map(|m| m.label_values[BASE_LABELS.len()].as_str())
            .collect();
        assert_eq!(reported, HashSet::from(["eth0", "net1"]));
        assert_eq!(metrics.len(), 2 * 8);
        assert!(metrics.iter().all(|m| m.timestamp == 7));
        assert!(
            metrics
                .iter()
                .all(|m| m.metric_type == MetricType::Counter as i32)
        );
    }
}
