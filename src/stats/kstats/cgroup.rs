//! Locating a process's cgroups and reading their accounting files.
//!
//! Three layouts exist:
//!
//! - **v1**: one `cgroup` mount per hierarchy, each carrying one or more
//!   controllers (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpu,cpuacct`, ...).
//! - **v2**: a single `cgroup2` mount (`/sys/fs/cgroup`) with every controller.
//! - **hybrid**: the v1 controllers plus an empty unified hierarchy at
//!   `/sys/fs/cgroup/unified` (systemd's transitional layout).
//!
//! [`CgroupRoots`] remembers the mounts (from `/proc/self/mountinfo`), and
//! [`CgroupRoots::of_pid`] joins them with the paths in `/proc/<pid>/cgroup`.
//! Each statistic is read from the v1 hierarchy of its controller when there is
//! one, else from the unified hierarchy, so all three layouts go through the
//! same code.
//!
//! Paths in `/proc/<pid>/cgroup` are relative to the root of the hierarchy as
//! seen from the reader's cgroup namespace, while a mount may expose only a
//! subtree (the mount's *root* in mountinfo, e.g. `/docker/<id>` when the shim
//! itself runs in a container without a cgroup namespace). That prefix is
//! stripped before joining.
//!
//! Files read (v1 / v2):
//!
//! | field                | v1                                   | v2                          |
//! |----------------------|--------------------------------------|-----------------------------|
//! | `cpu_usage_ns`       | `cpuacct.usage`                      | `cpu.stat` `usage_usec`×1000 |
//! | `memory_usage`       | `memory.usage_in_bytes`              | `memory.current`            |
//! | `memory_working_set` | usage − `memory.stat` `total_inactive_file` | usage − `memory.stat` `inactive_file` |
//! | `memory_rss`         | `memory.stat` `total_rss`            | `memory.stat` `anon`        |
//! | `page_faults`        | `memory.stat` `total_pgfault`        | `memory.stat` `pgfault`     |
//! | `major_page_faults`  | `memory.stat` `total_pgmajfault`     | `memory.stat` `pgmajfault`  |
//! | `memory_limit`       | `memory.limit_in_bytes`              | `memory.max`                |
//! | `pids`               | `pids.current`                       | `pids.current`              |
//! | `oom_kills`          | `memory.oom_control` `oom_kill`      | `memory.events` `oom_kill`  |
//! | `swap.used`          | `memory.stat` `total_swap` (only there with swap accounting) | `memory.swap.current` |
//! | `swap.limit`         | `memory.memsw.limit_in_bytes` − `memory.limit_in_bytes` | `memory.swap.max` |
//! | `pressure`           | the unified hierarchy's `*.pressure` files (hybrid layout), if any | `cpu.pressure`, `memory.pressure`, `io.pressure` |
//!
//! Pressure stall information is kept per cgroup of the unified hierarchy,
//! which on the hybrid layout holds every container too (runc puts it there
//! beside its v1 cgroups), so it is read there whatever the layout; never in
//! the hierarchy's root, whose files are the whole machine's.
//!
//! [`ProcessCgroup::read_metrics`] reads those and what the cAdvisor-named
//! metrics need besides ([`CgroupMetrics`]). cAdvisor reads the same files
//! (through runc's cgroup library), so the values match what the kubelet's
//! cAdvisor showed:
//!
//! | field                    | v1                                          | v2                                   |
//! |--------------------------|---------------------------------------------|--------------------------------------|
//! | `cpu.user_ns`/`system_ns`| `cpuacct.stat` `user`/`system` (USER_HZ ticks) | `cpu.stat` `user_usec`/`system_usec` |
//! | `cpu.periods` etc.       | `cpu.stat` `nr_periods`, `nr_throttled`, `throttled_time` | `cpu.stat` `nr_periods`, `nr_throttled`, `throttled_usec` |
//! | `memory.cache`           | `memory.stat` `total_cache`                 | `memory.stat` `file`                 |
//! | `memory.mapped_file`     | `memory.stat` `total_mapped_file`           | `memory.stat` `file_mapped`          |
//! | `memory.failcnt`         | `memory.failcnt`                            | `memory.events` `max`                |
//! | `memory.max_usage`       | `memory.max_usage_in_bytes`                 | `memory.peak`                        |
//! | `memory.kernel_usage`    | `memory.kmem.usage_in_bytes`                | `memory.stat` `kernel`               |
//! | `memory.own_page_faults` | `memory.stat` `pgfault`, `pgmajfault`       | same as the hierarchy's              |
//! | `spec.cpu_shares`        | `cpu.shares`                                | `cpu.weight`, converted to shares    |
//! | `spec.cpu_period_us`/`cpu_quota_us` | `cpu.cfs_period_us`/`cpu.cfs_quota_us` | `cpu.max`                     |
//! | `spec.memory_limit`      | `memory.limit_in_bytes`                     | `memory.max`                         |
//! | `spec.memory_swap_limit` | `memory.memsw.limit_in_bytes`               | `memory.swap.max`                    |
//! | `spec.memory_reservation`| `memory.soft_limit_in_bytes`                | `memory.min`                         |
//! | `threads_max`            | `pids.max`                                  | `pids.max`                           |
//! | `procs`                  | `cgroup.procs` (cpu hierarchy)              | `cgroup.procs`                       |
//! | `io`                     | `blkio.*io_service_bytes_recursive`, `blkio.*io_serviced_recursive` | `io.stat` |
//! | `hugetlb`                | `hugetlb.<size>.usage_in_bytes`, `.max_usage_in_bytes` | `hugetlb.<size>.current`  |

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::blkio::{DeviceIo, parse_blkio, parse_io_stat};
use super::pressure::{Pressure, parse_psi};

/// v1 limits at or above this are "unlimited": the kernel reports no limit as
/// `PAGE_COUNTER_MAX` pages in bytes (just under 2^63, depending on page size).
const V1_UNLIMITED: u64 = 1 << 62;

/// The v1 controller names the kernel knows; other superoptions of a `cgroup`
/// mount (`rw`, `xattr`, `release_agent=...`) are flags, not controllers.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Which cgroup layout the machine uses for its resource controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Per-controller hierarchies (including the hybrid layout).
    V1,
    /// The unified hierarchy only.
    V2,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The subtree of the hierarchy the mount shows (mountinfo field 4).
    root: String,
    /// Where it is mounted.
    point: PathBuf,
}

impl Mount {
    /// The directory of the cgroup at `path` (a path from `/proc/<pid>/cgroup`).
    fn join(&self, path: &str) -> PathBuf {
        let rel = strip_root(path, &self.root).unwrap_or(path);
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            self.point.clone()
        } else {
            self.point.join(rel)
        }
    }
}

/// `path` relative to `root` when `root` is a whole-component prefix of it.
fn strip_root<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Where the cgroup hierarchies are mounted, learned once from
/// `/proc/self/mountinfo`.
///
/// v1: one mount per hierarchy, whose controllers may be comma-joined
/// (`cpu,cpuacct`); v2: one unified mount; hybrid: v1 controllers plus the
/// unified hierarchy (usually at `/sys/fs/cgroup/unified`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupRoots {
    /// v1 controller (or `name=...` for named hierarchies) → its mount.
    v1: HashMap<String, Mount>,
    /// The cgroup2 mount, if any.
    unified: Option<Mount>,
}

impl CgroupRoots {
    /// Reads `/proc/self/mountinfo`. Fails if it cannot be read or shows no
    /// cgroup mount at all.
    pub fn discover() -> io::Result<Self> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        let roots = Self::from_mountinfo(&text);
        if roots.v1.is_empty() && roots.unified.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup or cgroup2 mount in /proc/self/mountinfo",
            ));
        }
        tracing::debug!(version = ?roots.version(), ?roots, "cgroup mounts");
        Ok(roots)
    }

    /// Parses the text of a `mountinfo` file. Malformed lines are skipped.
    /// When a hierarchy is mounted more than once, the first mount showing the
    /// whole hierarchy (root `/`) wins, else the first mount.
    pub fn from_mountinfo(text: &str) -> Self {
        let mut roots = Self::default();
        for line in text.lines() {
            let Some(entry) = parse_mountinfo_line(line) else {
                continue;
            };
            let mount = Mount {
                root: entry.root,
                point: entry.point,
            };
            match entry.fstype {
                "cgroup2" => keep_better(&mut roots.unified, mount),
                "cgroup" => {
                    for opt in entry.super_options.split(',') {
                        let is_controller =
                            V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=");
                        if !is_controller {
                            continue;
                        }
                        match roots.v1.get_mut(opt) {
                            None => {
                                roots.v1.insert(opt.to_owned(), mount.clone());
                            }
                            Some(slot) => {
                                if slot.root != "/" && mount.root == "/" {
                                    *slot = mount.clone();
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        roots
    }

    /// [`CgroupVersion::V1`] when any resource controller is mounted as a v1
    /// hierarchy (pure v1 or hybrid), else [`CgroupVersion::V2`] if the unified
    /// hierarchy is mounted.
    pub fn version(&self) -> CgroupVersion {
        let any_v1 = self.v1.keys().any(|c| !c.starts_with("name="));
        if !any_v1 && self.unified.is_some() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    }

    /// The cgroup of process `pid`, from `/proc/<pid>/cgroup`.
    pub fn of_pid(&self, pid: u32) -> io::Result<ProcessCgroup> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        Ok(self.from_proc_cgroup(&text))
    }

    /// Parses the text of a `/proc/<pid>/cgroup` file: lines
    /// `hierarchy-id:controllers:path`, where `0::path` is the unified
    /// hierarchy. Controllers that are not mounted are left out.
    pub fn from_proc_cgroup(&self, text: &str) -> ProcessCgroup {
        let mut cg = ProcessCgroup::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                if let Some(m) = &self.unified {
                    cg.unified = Some(m.join(path));
                    cg.unified_depth = path.split('/').filter(|c| !c.is_empty()).count();
                }
                continue;
            }
            for controller in controllers.split(',') {
                if let Some(m) = self.v1.get(controller) {
                    cg.v1.insert(controller.to_owned(), m.join(path));
                }
            }
        }
        cg
    }
}

/// Replaces `slot` with `new` if empty, or if `new` shows the whole hierarchy
/// and the current one does not.
fn keep_better(slot: &mut Option<Mount>, new: Mount) {
    match slot {
        None => *slot = Some(new),
        Some(old) if old.root != "/" && new.root == "/" => *slot = Some(new),
        Some(_) => {}
    }
}

/// One line of `/proc/<pid>/mountinfo`.
pub(super) struct MountinfoEntry<'a> {
    /// The subtree of the filesystem the mount shows.
    pub(super) root: String,
    /// Where it is mounted.
    pub(super) point: PathBuf,
    pub(super) fstype: &'a str,
    /// The mounted device (`/dev/sda1`), or a name for virtual filesystems.
    pub(super) source: &'a str,
    pub(super) super_options: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
pub(super) fn parse_mountinfo_line(line: &str) -> Option<MountinfoEntry<'_>> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    // The optional fields end at a lone "-", which comes after field 6.
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fstype = fields.get(sep + 1)?;
    let source = fields.get(sep + 2).copied().unwrap_or("");
    let super_options = fields.get(sep + 3).copied().unwrap_or("");
    let root = unescape(fields.get(3)?);
    let point = PathBuf::from(unescape(fields.get(4)?));
    Some(MountinfoEntry {
        root: root.to_string_lossy().into_owned(),
        point,
        fstype,
        source,
        super_options,
    })
}

/// Undoes the kernel's octal escapes in mountinfo (`\040` for space, etc.).
fn unescape(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

/// The cgroup directories of one process (or one cgroup path): per v1
/// controller, and in the unified hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCgroup {
    /// v1 controller → directory.
    v1: HashMap<String, PathBuf>,
    /// Directory in the unified hierarchy.
    unified: Option<PathBuf>,
    /// How deep the unified directory sits in its hierarchy: 0 for the root,
    /// whose files describe the whole machine (as a v1 or hybrid host's
    /// processes often do: `0::/`).
    unified_depth: usize,
}

/// One statistics sample of a cgroup. A field is `None` when its file is
/// missing or unreadable (e.g. `pids.current` in the v1 root cgroup).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupSample {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory charged to the cgroup, bytes (includes page cache).
    pub memory_usage: Option<u64>,
    /// Usage minus inactive file pages, floored at 0: what the kubelet evicts on.
    pub memory_working_set: Option<u64>,
    /// Anonymous memory, bytes.
    pub memory_rss: Option<u64>,
    /// Cumulative page faults.
    pub page_faults: Option<u64>,
    /// Cumulative major page faults.
    pub major_page_faults: Option<u64>,
    /// Memory limit, bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Number of tasks.
    pub pids: Option<u64>,
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kills: Option<u64>,
    /// Swap charged to the cgroup; `None` without swap accounting.
    pub swap: Option<Swap>,
    /// Pressure stall information; each resource `None` where the cgroup
    /// has no pressure file of its own.
    pub pressure: Pressure,
}

/// Swap use of a cgroup, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swap {
    /// Swap in use.
    pub used: u64,
    /// How much swap the cgroup may use (swap alone, not memory plus swap);
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

impl Swap {
    /// What is left below the limit; `None` when unlimited.
    pub fn available(&self) -> Option<u64> {
        self.limit.map(|limit| limit.saturating_sub(self.used))
    }
}

impl ProcessCgroup {
    /// The directory holding `controller`'s files: its v1 hierarchy if mounted,
    /// else the unified hierarchy.
    pub fn controller_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .get(controller)
            .or(self.unified.as_ref())
            .map(PathBuf::as_path)
    }

    /// Reads every statistic. Never fails: a missing or unreadable file leaves
    /// its fields `None`.
    pub fn read(&self) -> CgroupSample {
        let mut s = CgroupSample::default();
        self.read_cpu(&mut s);
        self.read_memory(&mut s);
        s.pids = self.read_pids();
        s.pressure = self.read_pressure();
        s
    }

    /// The unified hierarchy's cgroup one level up (a pod's, for the cgroup
    /// of one of its containers when the pod has a cgroup parent of its
    /// own), for its pressure files; `None` for a cgroup outside the unified
    /// hierarchy or in its root. Its v1 directories are not looked up.
    pub fn parent(&self) -> Option<ProcessCgroup> {
        if self.unified_depth == 0 {
            return None;
        }
        Some(ProcessCgroup {
            v1: HashMap::new(),
            unified: Some(self.unified.as_ref()?.parent()?.to_path_buf()),
            unified_depth: self.unified_depth - 1,
        })
    }

    /// Reads everything the cAdvisor-named metrics need: the [`CgroupSample`]
    /// and the details, limits and per-device figures of [`CgroupMetrics`].
    /// Never fails, like [`read`](Self::read); it reads a dozen more files, so
    /// the plain stats calls keep using `read`.
    pub fn read_metrics(&self) -> CgroupMetrics {
        let mut sample = CgroupSample::default();
        let cpu_stat = self.read_cpu(&mut sample);
        let memory_stat = self.read_memory(&mut sample);
        sample.pids = self.read_pids();
        sample.pressure = self.read_pressure();
        CgroupMetrics {
            sample,
            cpu: self.read_cpu_detail(cpu_stat.as_ref()),
            memory: self.read_memory_detail(memory_stat.as_ref()),
            spec: self.read_spec(),
            threads_max: self
                .controller_dir("pids")
                .and_then(|d| read_limit(&d.join("pids.max"))),
            procs: self.read_procs(),
            io: self.read_io(),
            hugetlb: self.read_hugetlb(),
        }
    }

    fn read_pids(&self) -> Option<u64> {
        self.controller_dir("pids")
            .and_then(|d| read_u64(&d.join("pids.current")))
    }

    /// Fills the CPU usage; returns v2's `cpu.stat`, which holds the details
    /// too.
    fn read_cpu(&self, s: &mut CgroupSample) -> Option<Keyed> {
        if let Some(dir) = self.v1.get("cpuacct") {
            s.cpu_usage_ns = read_u64(&dir.join("cpuacct.usage"));
            None
        } else if let Some(dir) = &self.unified {
            let stat = read_keyed(&dir.join("cpu.stat"));
            s.cpu_usage_ns = stat
                .as_ref()
                .and_then(|stat| stat.get("usage_usec"))
                .map(|us| us.saturating_mul(1000));
            stat
        } else {
            None
        }
    }

    /// Fills the memory figures; returns the `memory.stat` read, for the
    /// details.
    fn read_memory(&self, s: &mut CgroupSample) -> Option<Keyed> {
        let inactive_file;
        let stat;
        if let Some(dir) = self.v1.get("memory") {
            s.memory_usage = read_u64(&dir.join("memory.usage_in_bytes"));
            s.memory_limit =
                read_u64(&dir.join("memory.limit_in_bytes")).filter(|l| *l < V1_UNLIMITED);
            stat = read_keyed(&dir.join("memory.stat"));
            let stat = stat.as_ref();
            let get = |key: &str| stat.and_then(|stat| stat.hierarchical(key));
            inactive_file = get("inactive_file");
            s.memory_rss = get("rss");
            s.page_faults = get("pgfault");
            s.major_page_faults = get("pgmajfault");
            s.oom_kills =
                read_keyed(&dir.join("memory.oom_control")).and_then(|c| c.get("oom_kill"));
            // The kernel lists swap in memory.stat only with swap accounting
            // on; memsw limits memory and swap together.
            s.swap = get("swap").map(|used| Swap {
                used,
                limit: read_u64(&dir.join("memory.memsw.limit_in_bytes"))
                    .filter(|l| *l < V1_UNLIMITED)
                    .zip(s.memory_limit)
                    .map(|(memsw, memory)| memsw.saturating_sub(memory)),
            });
        } else if let Some(dir) = &self.unified {
            s.memory_usage = read_u64(&dir.join("memory.current"));
            s.memory_limit = read_u64(&dir.join("memory.max"));
            stat = read_keyed(&dir.join("memory.stat"));
            let get = |key: &str| stat.as_ref().and_then(|stat| stat.get(key));
            inactive_file = get("inactive_file");
            s.memory_rss = get("anon");
            s.page_faults = get("pgfault");
            s.major_page_faults = get("pgmajfault");
            s.oom_kills = read_keyed(&dir.join("memory.events")).and_then(|e| e.get("oom_kill"));
            // Without swap accounting there are no memory.swap.* files.
            s.swap = read_u64(&dir.join("memory.swap.current")).map(|used| Swap {
                used,
                limit: read_u64(&dir.join("memory.swap.max")),
            });
        } else {
            return None;
        }
        s.memory_working_set = working_set(s.memory_usage, inactive_file);
        stat
    }

    fn read_cpu_detail(&self, v2_stat: Option<&Keyed>) -> CpuDetail {
        let mut d = CpuDetail::default();
        if let Some(dir) = self.v1.get("cpuacct") {
            if let Some(text) = read_file(&dir.join("cpuacct.stat")) {
                (d.user_ns, d.system_ns) =
                    parse_cpuacct_stat(&text, rustix::param::clock_ticks_per_second());
            }
        } else if let Some(stat) = v2_stat {
            let ns = |key: &str| stat.get(key).map(|us| us.saturating_mul(1000));
            d.user_ns = ns("user_usec");
            d.system_ns = ns("system_usec");
        }
        if let Some(dir) = self.v1.get("cpu") {
            if let Some(stat) = read_keyed(&dir.join("cpu.stat")) {
                d.periods = stat.get("nr_periods");
                d.throttled_periods = stat.get("nr_throttled");
                d.throttled_ns = stat.get("throttled_time");
            }
        } else if let Some(stat) = v2_stat {
            // Without the cpu controller enabled, cpu.stat has only the usage
            // keys and these stay unknown.
            d.periods = stat.get("nr_periods");
            d.throttled_periods = stat.get("nr_throttled");
            d.throttled_ns = stat.get("throttled_usec").map(|us| us.saturating_mul(1000));
        }
        d
    }

    fn read_memory_detail(&self, stat: Option<&Keyed>) -> MemoryDetail {
        let mut d = MemoryDetail::default();
        // A key missing from a readable memory.stat counts as 0, as cAdvisor
        // reads it (swap, for one, is only there with swap accounting on).
        if let Some(dir) = self.v1.get("memory") {
            if let Some(stat) = stat {
                d.cache = Some(stat.hierarchical("cache").unwrap_or(0));
                d.mapped_file = Some(stat.hierarchical("mapped_file").unwrap_or(0));
                d.own_page_faults = stat.get("pgfault");
                d.own_major_page_faults = stat.get("pgmajfault");
            }
            d.failcnt = read_u64(&dir.join("memory.failcnt"));
            d.max_usage = read_u64(&dir.join("memory.max_usage_in_bytes"));
            d.kernel_usage = read_u64(&dir.join("memory.kmem.usage_in_bytes"));
        } else if let (Some(dir), Some(stat)) = (&self.unified, stat) {
            d.cache = Some(stat.get("file").unwrap_or(0));
            d.mapped_file = Some(stat.get("file_mapped").unwrap_or(0));
            // v2 counts faults for the whole subtree only.
            d.own_page_faults = stat.get("pgfault");
            d.own_major_page_faults = stat.get("pgmajfault");
            // The "max" event counts the times usage hit memory.max, v1's
            // failcnt.
            d.failcnt = read_keyed(&dir.join("memory.events")).and_then(|e| e.get("max"));
            // memory.peak exists from Linux 5.19; before that cAdvisor reports
            // 0, and so does this, keeping the metric in place.
            d.max_usage = Some(read_u64(&dir.join("memory.peak")).unwrap_or(0));
            d.kernel_usage = stat.get("kernel").or_else(|| {
                // Before Linux 5.18 there is no total: sum its parts.
                let parts = ["kernel_stack", "pagetables", "percpu", "slab", "vmalloc"];
                let present: Vec<u64> = parts.iter().filter_map(|k| stat.get(k)).collect();
                (!present.is_empty())
                    .then(|| present.iter().fold(0u64, |a, b| a.saturating_add(*b)))
            });
        }
        d
    }

    fn read_spec(&self) -> CgroupSpec {
        let mut spec = CgroupSpec::default();
        if let Some(dir) = self.v1.get("cpu") {
            spec.cpu_shares = read_u64(&dir.join("cpu.shares"));
            spec.cpu_period_us = read_u64(&dir.join("cpu.cfs_period_us"));
            // -1 means no quota.
            spec.cpu_quota_us = read_file(&dir.join("cpu.cfs_quota_us"))
                .and_then(|t| t.trim().parse::<i64>().ok())
                .and_then(|q| u64::try_from(q).ok())
                .filter(|q| *q > 0);
        } else if let Some(dir) = &self.unified {
            spec.cpu_shares = read_u64(&dir.join("cpu.weight")).and_then(weight_to_shares);
            if let Some(text) = read_file(&dir.join("cpu.max")) {
                (spec.cpu_quota_us, spec.cpu_period_us) = parse_cpu_max(&text);
            }
        }
        // Unlimited reads as 0, as cAdvisor reports it; so does a limit file
        // that is missing while the memory controller is there (no swap
        // accounting).
        let (limit, swap, reservation) = if let Some(dir) = self.v1.get("memory") {
            (
                dir.join("memory.limit_in_bytes"),
                dir.join("memory.memsw.limit_in_bytes"),
                dir.join("memory.soft_limit_in_bytes"),
            )
        } else if let Some(dir) = &self.unified {
            (
                dir.join("memory.max"),
                dir.join("memory.swap.max"),
                dir.join("memory.min"),
            )
        } else {
            return spec;
        };
        spec.memory_limit = read_limit(&limit);
        if spec.memory_limit.is_some() {
            spec.memory_swap_limit = Some(read_limit(&swap).unwrap_or(0));
            spec.memory_reservation = Some(read_limit(&reservation).unwrap_or(0));
        }
        spec
    }

    /// The processes (not threads) of the cgroup, from the cpu hierarchy's
    /// `cgroup.procs` as cAdvisor counts them.
    fn read_procs(&self) -> Option<Vec<u32>> {
        let text = read_file(&self.controller_dir("cpu")?.join("cgroup.procs"))?;
        Some(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    fn read_io(&self) -> Vec<DeviceIo> {
        if let Some(dir) = self.v1.get("blkio") {
            // The CFQ files (gone with CFQ in Linux 5.0), then BFQ's, then the
            // throttling layer's, which counts all I/O: the first that has
            // any device, as runc reads them.
            const FILES: [(&str, &str); 3] = [
                (
                    "blkio.io_service_bytes_recursive",
                    "blkio.io_serviced_recursive",
                ),
                (
                    "blkio.bfq.io_service_bytes_recursive",
                    "blkio.bfq.io_serviced_recursive",
                ),
                (
                    "blkio.throttle.io_service_bytes_recursive",
                    "blkio.throttle.io_serviced_recursive",
                ),
            ];
            FILES
                .iter()
                .find_map(|(bytes, ops)| {
                    let bytes = read_file(&dir.join(bytes))?;
                    let ops = read_file(&dir.join(ops)).unwrap_or_default();
                    let io = parse_blkio(&bytes, &ops);
                    (!io.is_empty()).then_some(io)
                })
                .unwrap_or_default()
        } else if let Some(dir) = &self.unified {
            read_file(&dir.join("io.stat"))
                .map(|text| parse_io_stat(&text))
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    fn read_hugetlb(&self) -> Vec<HugetlbUsage> {
        let (dir, v1) = if let Some(dir) = self.v1.get("hugetlb") {
            (dir, true)
        } else if let Some(dir) = &self.unified {
            (dir, false)
        } else {
            return Vec::new();
        };
        let usage_suffix = if v1 { ".usage_in_bytes" } else { ".current" };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut sizes: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| {
                let size = name.strip_prefix("hugetlb.")?.strip_suffix(usage_suffix)?;
                // Leaves out v2's hugetlb.<size>.rsvd.current.
                (!size.contains('.')).then(|| size.to_owned())
            })
            .collect();
        sizes.sort();
        sizes
            .into_iter()
            .map(|size| HugetlbUsage {
                usage: read_u64(&dir.join(format!("hugetlb.{size}{usage_suffix}"))),
                // v2 keeps no peak.
                max_usage: v1
                    .then(|| read_u64(&dir.join(format!("hugetlb.{size}.max_usage_in_bytes"))))
                    .flatten(),
                pagesize: size,
            })
            .collect()
    }

    /// The cgroup's own pressure files. In the hierarchy's root these files
    /// are the whole machine's, so none are read there.
    pub fn read_pressure(&self) -> Pressure {
        let Some(dir) = self.unified.as_ref().filter(|_| self.unified_depth > 0) else {
            return Pressure::default();
        };
        let read = |name: &str| read_file(&dir.join(name)).map(|t| parse_psi(&t));
        Pressure {
            cpu: read("cpu.pressure"),
            memory: read("memory.pressure"),
            io: read("io.pressure"),
        }
    }
}

/// What [`ProcessCgroup::read_metrics`] reads: the sample of the stats calls
/// plus what the cAdvisor-named metrics need. Each field is `None` (or empty)
/// when its files are missing or unreadable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupMetrics {
    /// Usage, as the stats calls read it.
    pub sample: CgroupSample,
    pub cpu: CpuDetail,
    pub memory: MemoryDetail,
    /// Limits and shares set on the cgroup.
    pub spec: CgroupSpec,
    /// `pids.max`; 0 when unlimited (cAdvisor's "infinity if zero").
    pub threads_max: Option<u64>,
    /// The processes in the cgroup.
    pub procs: Option<Vec<u32>>,
    /// Block I/O per device.
    pub io: Vec<DeviceIo>,
    /// Huge page usage per page size, sorted by size name.
    pub hugetlb: Vec<HugetlbUsage>,
}

/// CPU time by mode and CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuDetail {
    /// Cumulative CPU time in user mode, nanoseconds.
    pub user_ns: Option<u64>,
    /// Cumulative CPU time in kernel mode, nanoseconds.
    pub system_ns: Option<u64>,
    /// Enforcement periods elapsed (only counted while a quota is set).
    pub periods: Option<u64>,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: Option<u64>,
    /// Total time throttled, nanoseconds.
    pub throttled_ns: Option<u64>,
}

/// Memory figures beyond [`CgroupSample`]'s, bytes unless noted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryDetail {
    /// Page cache.
    pub cache: Option<u64>,
    /// Memory-mapped files.
    pub mapped_file: Option<u64>,
    /// Times usage hit the limit.
    pub failcnt: Option<u64>,
    /// Peak usage.
    pub max_usage: Option<u64>,
    /// Kernel memory charged to the cgroup.
    pub kernel_usage: Option<u64>,
    /// Page faults of the cgroup itself, without descendants (v1 only tells
    /// them apart; v2 gives the subtree's).
    pub own_page_faults: Option<u64>,
    /// Major page faults of the cgroup itself.
    pub own_major_page_faults: Option<u64>,
}

/// Limits and shares set on a cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupSpec {
    /// CPU shares (v2's weight converted back, as cAdvisor does).
    pub cpu_shares: Option<u64>,
    /// CFS period, microseconds.
    pub cpu_period_us: Option<u64>,
    /// CFS quota per period, microseconds; `None` when there is none.
    pub cpu_quota_us: Option<u64>,
    /// Memory limit, bytes; 0 when unlimited.
    pub memory_limit: Option<u64>,
    /// Swap limit, bytes (v1: memory plus swap; v2: swap alone); 0 when
    /// unlimited or without swap accounting.
    pub memory_swap_limit: Option<u64>,
    /// Memory reservation (v1's soft limit, v2's `memory.min`), bytes; 0
    /// when none.
    pub memory_reservation: Option<u64>,
}

/// Huge page usage of one page size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HugetlbUsage {
    /// The size as the kernel names it: `2MB`, `1GB`.
    pub pagesize: String,
    pub usage: Option<u64>,
    /// Peak usage (v1 only).
    pub max_usage: Option<u64>,
}

/// `user` and `system` of v1's `cpuacct.stat`, in `hz` ticks per second, as
/// nanoseconds.
fn parse_cpuacct_stat(text: &str, hz: u64) -> (Option<u64>, Option<u64>) {
    let stat = Keyed {
        text: text.to_owned(),
    };
    let ns = |key: &str| {
        let ticks = stat.get(key)?;
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1));
        Some(u64::try_from(ns).unwrap_or(u64::MAX))
    };
    (ns("user"), ns("system"))
}

/// v2's `cpu.max`: `"$QUOTA $PERIOD"`, `max` for no quota. Returns (quota,
/// period).
fn parse_cpu_max(text: &str) -> (Option<u64>, Option<u64>) {
    let mut it = text.split_ascii_whitespace();
    let quota = it.next().and_then(|q| q.parse().ok());
    let period = it.next().and_then(|p| p.parse().ok());
    (quota, period)
}

/// cgroup v2's `cpu.weight` (1–10000) as v1 shares (2–262144): the inverse of
/// the conversion runc applies when it sets the weight from shares, as
/// cAdvisor computes it (so 1024 shares read back as 998).
fn weight_to_shares(weight: u64) -> Option<u64> {
    (1..=10_000)
        .contains(&weight)
        .then(|| 2 + (weight - 1) * 262_142 / 9_999)
}

/// Usage minus inactive file pages, floored at 0; the usage itself when the
/// inactive figure is unknown (as cAdvisor does).
fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    let usage = usage?;
    Some(usage.saturating_sub(inactive_file.unwrap_or(0)))
}

/// Reads a file, logging errors other than "not found" at trace level.
fn read_file(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::trace!(path = %path.display(), error = %e, "cgroup file unreadable");
            }
            None
        }
    }
}

/// A single-number file; `None` if missing or not a number (`max` included).
fn read_u64(path: &Path) -> Option<u64> {
    read_file(path)?.trim().parse().ok()
}

/// A limit file: a number, or `max` for none. Unlimited reads as `Some(0)`,
/// as cAdvisor reports it, and so does a v1 limit at or above
/// [`V1_UNLIMITED`]; `None` if missing or garbled.
fn read_limit(path: &Path) -> Option<u64> {
    let text = read_file(path)?;
    match text.trim() {
        "max" => Some(0),
        n => n
            .parse()
            .ok()
            .map(|v: u64| if v >= V1_UNLIMITED { 0 } else { v }),
    }
}

/// A flat-keyed file (`key value` lines).
fn read_keyed(path: &Path) -> Option<Keyed> {
    read_file(path).map(|text| Keyed { text })
}

/// The text of a flat-keyed file, looked up on demand.
#[derive(Debug, Default)]
struct Keyed {
    text: String,
}

impl Keyed {
    /// v1's `total_<key>` (the cgroup and its descendants) if present, else
    /// `<key>` (`use_hierarchy=0` setups and some kernels' root cgroup lack
    /// the totals).
    fn hierarchical(&self, key: &str) -> Option<u64> {
        self.get(&format!("total_{key}")).or_else(|| self.get(key))
    }

    fn get(&self, key: &str) -> Option<u64> {
        self.text.lines().find_map(|line| {
            let mut it = line.split_ascii_whitespace();
            if it.next()? != key {
                return None;
            }
            it.next()?.parse().ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::blkio::parse_dev;
    use super::super::pressure::{Psi, PsiLine};
    use super::*;
    use std::fs;

    const MOUNTINFO_V1: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
32 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,net_cls,net_prio
";

    const MOUNTINFO_V2: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const MOUNTINFO_HYBRID: &str = "\
25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
";

    fn mount(root: &str, point: &str) -> Mount {
        Mount {
            root: root.into(),
            point: point.into(),
        }
    }

    #[test]
    fn mountinfo_v1_joined_controllers() {
        let r = CgroupRoots::from_mountinfo(MOUNTINFO_V1);
        assert_eq!(r.version(), CgroupVersion::V1);
        assert_eq!(r.unified, None);
        let cpu = mount("/", "/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(r.v1.get("cpu"), Some(&cpu));
        assert_eq!(r.v1.get("cpuacct"), Some(&cpu));
        assert_eq!(
            r.v1.get("memory"),
            Some(&mount("/", "/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            r.v1.get("net_prio"),
            Some(&mount("/", "/sys/fs/cgroup/net_cls,net_prio"))
        );
        assert_eq!(
            r.v1.get("name=systemd"),
            Some(&mount("/", "/sys/fs/cgroup/systemd"))
        );
        // Flags are not controllers.
        assert!(!r.v1.contains_key("rw"));
        assert!(!r.v1.contains_key("xattr"));
        assert_eq!(r.v1.len(), 7);
    }

    #[test]
    fn mountinfo_v2() {
        let r = CgroupRoots::from_mountinfo(MOUNTINFO_V2);
        assert_eq!(r.version(), CgroupVersion::V2);
        assert!(r.v1.is_empty());
        assert_eq!(r.unified, Some(mount("/", "/sys/fs/cgroup")));
    }

    #[test]
    fn mountinfo_hybrid() {
        let r = CgroupRoots::from_mountinfo(MOUNTINFO_HYBRID);
        assert_eq!(r.version(), CgroupVersion::V1);
        assert_eq!(r.unified, Some(mount("/", "/sys/fs/cgroup/unified")));
        assert_eq!(
            r.v1.get("memory"),
            Some(&mount("/", "/sys/fs/cgroup/memory"))
        );
    }

    #[test]
    fn mountinfo_only_named_v1_hierarchy_is_v2() {
        let text = "\
26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";
        assert_eq!(
            CgroupRoots::from_mountinfo(text).version(),
            CgroupVersion::V2
        );
    }

    #[test]
    fn mountinfo_escapes_optional_fields_and_subtree_roots() {
        let text = "\
40 31 0:37 /docker/abc /sys/fs/cgroup/memory rw,relatime master:3 shared:9 - cgroup cgroup rw,memory
41 31 0:37 / /mnt/my\\040cgroups rw,relatime - cgroup cgroup rw,memory
garbage line
";
        let r = CgroupRoots::from_mountinfo(text);
        // The later mount shows the whole hierarchy and wins.
        assert_eq!(r.v1.get("memory"), Some(&mount("/", "/mnt/my cgroups")));
        let first_only = CgroupRoots::from_mountinfo(text.lines().next().unwrap_or_default());
        assert_eq!(
            first_only.v1.get("memory"),
            Some(&mount("/docker/abc", "/sys/fs/cgroup/memory"))
        );
    }

    #[test]
    fn proc_cgroup_v1() {
        let r = CgroupRoots::from_mountinfo(MOUNTINFO_V1);
        let cg = r.from_proc_cgroup(
            "12:pids:/docker/abc\n\
             4:cpu,cpuacct:/docker/abc\n\
             3:memory:/docker/abc\n\
             2:devices:/docker/abc\n\
             1:name=systemd:/docker/abc\n\
             0::/system.slice/docker.service\n",
        );
        assert_eq!(
            cg.controller_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/docker/abc"))
        );
        assert_eq!(
            cg.controller_dir("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/docker/abc"))
        );
        assert_eq!(
            cg.controller_dir("cpu"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/docker/abc"))
        );
        assert_eq!(
            cg.controller_dir("pids"),
            Some(Path::new("/sys/fs/cgroup/pids/docker/abc"))
        );
        // devices is not mounted in the fixture; no unified mount either.
        assert_eq!(cg.controller_dir("devices"), None);
        assert_eq!(cg.unified, None);
    }

    #[test]
    fn proc_cgroup_v2() {
        let r = CgroupRoots::from_mountinfo(MOUNTINFO_V2);
        let cg = r.from_proc_cgroup("0::/kubepods.slice/cri-docker-abc.scope\n");
        let dir = Path::new("/sys/fs/cgroup/kubepods.slice/cri-docker-abc.scope");
        assert_eq!(cg.controller_dir("memory"), Some(dir));
        assert_eq!(cg.controller_dir("cpu"), Some(dir));
        let root = r.from_proc_cgroup("0::/\n");
        assert_eq!(
            root.controller_dir("pids"),
            Some(Path::new("/sys/fs/cgroup"))
        );
    }

    #[test]
    fn proc_cgroup_hybrid() {
        let r = CgroupRoots::from_mountinfo(MOUNTINFO_HYBRID);
        let cg = r.from_proc_cgroup("4:memory:/a\n3:cpu,cpuacct:/a\n1:name=systemd:/a\n0::/a\n");
        assert_eq!(
            cg.controller_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/a"))
        );
        // pids has no v1 mount, so it falls back to the unified hierarchy.
        assert_eq!(
            cg.controller_dir("pids"),
            Some(Path::new("/sys/fs/cgroup/unified/a"))
        );
    }

    #[test]
    fn proc_cgroup_strips_mount_root() {
        let text = "40 31 0:37 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let r = CgroupRoots::from_mountinfo(text);
        let cg = r.from_proc_cgroup("3:memory:/docker/abc\n");
        assert_eq!(
            cg.controller_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        let cg = r.from_proc_cgroup("3:memory:/docker/abc/child\n");
        assert_eq!(
            cg.controller_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/child"))
        );
        // Not a whole-component prefix: joined as is.
        let cg = r.from_proc_cgroup("3:memory:/docker/abcd\n");
        assert_eq!(
            cg.controller_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/docker/abcd"))
        );
    }

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    /// A fake v1 tree under `base`: mountinfo text for it and the cgroup dirs.
    fn fake_v1(base: &Path) -> CgroupRoots {
        let b = base.display();
        let mountinfo = format!(
            "29 25 0:26 / {b}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             30 25 0:27 / {b}/memory rw - cgroup cgroup rw,memory\n\
             31 25 0:28 / {b}/pids rw - cgroup cgroup rw,pids\n"
        );
        for c in ["cpu,cpuacct", "memory", "pids"] {
            fs::create_dir_all(base.join(c).join("docker/abc")).unwrap();
        }
        CgroupRoots::from_mountinfo(&mountinfo)
    }

    const V1_MEMORY_STAT: &str = "\
cache 1000
rss 2000
inactive_file 10
pgfault 5
pgmajfault 1
hierarchical_memory_limit 9223372036854771712
total_cache 4096000
total_rss 8192000
total_inactive_file 3000000
total_active_file 1000000
total_pgfault 12345
total_pgmajfault 67
";

    #[test]
    fn read_v1_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = fake_v1(tmp.path());
        let cpu = tmp.path().join("cpu,cpuacct/docker/abc");
        let mem = tmp.path().join("memory/docker/abc");
        let pids = tmp.path().join("pids/docker/abc");
        write(&cpu, "cpuacct.usage", "123456789\n");
        write(&mem, "memory.usage_in_bytes", "10000000\n");
        write(&mem, "memory.limit_in_bytes", "268435456\n");
        write(&mem, "memory.stat", V1_MEMORY_STAT);
        write(
            &mem,
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(&pids, "pids.current", "7\n");

        let cg = roots.from_proc_cgroup(
            "3:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:pids:/docker/abc\n",
        );
        assert_eq!(
            cg.read(),
            CgroupSample {
                cpu_usage_ns: Some(123_456_789),
                memory_usage: Some(10_000_000),
                memory_working_set: Some(7_000_000),
                memory_rss: Some(8_192_000),
                page_faults: Some(12345),
                major_page_faults: Some(67),
                memory_limit: Some(268_435_456),
                pids: Some(7),
                oom_kills: Some(2),
                // No swap key in memory.stat: swap accounting is off.
                swap: None,
                // No unified hierarchy mounted.
                pressure: Pressure::default(),
            }
        );

        // Unlimited memory, no oom_kill line (older kernels), missing pids file.
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        write(
            &mem,
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\n",
        );
        fs::remove_file(pids.join("pids.current")).unwrap();
        let s = cg.read();
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.oom_kills, None);
        assert_eq!(s.pids, None);
        assert_eq!(s.cpu_usage_ns, Some(123_456_789));
    }

    #[test]
    fn read_v1_without_total_keys_and_missing_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = fake_v1(tmp.path());
        let mem = tmp.path().join("memory/docker/abc");
        write(&mem, "memory.usage_in_bytes", "5000\n");
        write(
            &mem,
            "memory.stat",
            "rss 100\ninactive_file 9000\npgfault 3\n",
        );
        let cg = roots.from_proc_cgroup("3:memory:/docker/abc\n2:cpu,cpuacct:/gone\n");
        let s = cg.read();
        assert_eq!(s.cpu_usage_ns, None);
        assert_eq!(s.memory_usage, Some(5000));
        // inactive_file exceeds usage: saturates at 0.
        assert_eq!(s.memory_working_set, Some(0));
        assert_eq!(s.memory_rss, Some(100));
        assert_eq!(s.page_faults, Some(3));
        assert_eq!(s.major_page_faults, None);
        // pids is mounted but the process is not listed in it.
        assert_eq!(s.pids, None);
    }

    #[test]
    fn read_v1_swap_with_and_without_accounting() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = fake_v1(tmp.path());
        let mem = tmp.path().join("memory/docker/abc");
        write(&mem, "memory.usage_in_bytes", "10000000\n");
        write(&mem, "memory.limit_in_bytes", "67108864\n");
        write(&mem, "memory.stat", V1_MEMORY_STAT);
        let cg = roots.from_proc_cgroup("3:memory:/docker/abc\n");
        // Swap accounting off: no swap key, no memsw files.
        assert_eq!(cg.read().swap, None);

        // On: memory.stat counts swap, memsw limits memory and swap together.
        write(
            &mem,
            "memory.stat",
            &format!("{V1_MEMORY_STAT}swap 4096\ntotal_swap 8192\n"),
        );
        write(&mem, "memory.memsw.limit_in_bytes", "100663296\n");
        let swap = cg.read().swap.unwrap();
        assert_eq!(
            swap,
            Swap {
                used: 8192,
                limit: Some(33_554_432),
            }
        );
        assert_eq!(swap.available(), Some(33_546_240));

        // Memory limited, memory plus swap not (`--memory-swap -1`).
        write(&mem, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
        assert_eq!(
            cg.read().swap,
            Some(Swap {
                used: 8192,
                limit: None,
            })
        );
        // Neither limited.
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        assert_eq!(cg.read().swap.and_then(|s| s.limit), None);
        // No pressure on pure v1.
        assert_eq!(cg.read().pressure, Pressure::default());
    }

    #[test]
    fn parent_is_one_level_up_and_the_root_has_none() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = fake_hybrid(tmp.path());
        let pod = tmp.path().join("unified/kubepods/podu1");
        fs::create_dir_all(pod.join("abc")).unwrap();
        let pressure = "some avg10=3.00 avg60=2.00 avg300=1.00 total=777\n\
                        full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        write(&pod, "memory.pressure", pressure);
        let cg = roots.from_proc_cgroup("4:memory:/kubepods/podu1/abc\n0::/kubepods/podu1/abc\n");
        // The container's own directory has no pressure file.
        assert_eq!(cg.read().pressure.memory, None);
        let parent = cg.parent().unwrap();
        assert_eq!(parent.unified, Some(pod.clone()));
        let memory = parent.read_pressure().memory.unwrap();
        assert_eq!(memory.some.unwrap().total_us, 777);
        assert_eq!(memory.some.unwrap().avg10, 3.0);
        // Up to the hierarchy's root, whose files are the machine's.
        let top = parent.parent().unwrap().parent().unwrap();
        write(&tmp.path().join("unified"), "memory.pressure", pressure);
        assert_eq!(top.read_pressure(), Pressure::default());
        assert_eq!(top.parent(), None);
        // Pure v1: no unified directory to go up from.
        assert_eq!(
            roots
                .from_proc_cgroup("4:memory:/kubepods/podu1/abc\n")
                .parent(),
            None
        );
    }

    #[test]
    fn read_v2_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let mountinfo = format!(
            "26 22 0:23 / {} rw - cgroup2 cgroup2 rw,nsdelegate\n",
            tmp.path().display()
        );
        let roots = CgroupRoots::from_mountinfo(&mountinfo);
        assert_eq!(roots.version(), CgroupVersion::V2);
        let dir = tmp.path().join("kubepods.slice/pod.slice/ctr.scope");
        fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "cpu.stat",
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\n",
        );
        write(&dir, "memory.current", "9000000\n");
        write(&dir, "memory.max", "max\n");
        write(
            &dir,
            "memory.stat",
            "anon 4000000\nfile 5000000\nactive_file 1000000\ninactive_file 4000000\npgfault 99\npgmajfault 9\n",
        );
        write(
            &dir,
            "memory.events",
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        );
        write(&dir, "pids.current", "3\n");

        let cg = roots.from_proc_cgroup("0::/kubepods.slice/pod.slice/ctr.scope\n");
        assert_eq!(
            cg.read(),
            CgroupSample {
                cpu_usage_ns: Some(2_500_000),
                memory_usage: Some(9_000_000),
                memory_working_set: Some(5_000_000),
                memory_rss: Some(4_000_000),
                page_faults: Some(99),
                major_page_faults: Some(9),
                memory_limit: None,
                pids: Some(3),
                oom_kills: Some(1),
                // No memory.swap.* files: swap accounting is off.
                swap: None,
                // No pressure files (a kernel without PSI).
                pressure: Pressure::default(),
            }
        );

        write(&dir, "memory.max", "536870912\n");
        fs::remove_file(dir.join("memory.stat")).unwrap();
        let s = cg.read();
        assert_eq!(s.memory_limit, Some(536_870_912));
        // Without memory.stat the working set is the usage.
        assert_eq!(s.memory_working_set, Some(9_000_000));
        assert_eq!(s.memory_rss, None);
    }

    #[test]
    fn read_nothing_mounted_is_all_none() {
        let cg = CgroupRoots::default().from_proc_cgroup("0::/\n1:memory:/\n");
        assert_eq!(cg.read(), CgroupSample::default());
    }

    #[test]
    fn working_set_arithmetic() {
        assert_eq!(working_set(Some(100), Some(30)), Some(70));
        assert_eq!(working_set(Some(100), Some(100)), Some(0));
        assert_eq!(working_set(Some(100), Some(101)), Some(0));
        assert_eq!(working_set(Some(100), None), Some(100));
        assert_eq!(working_set(None, Some(5)), None);
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape(r"/a\040b\134c\011"), OsString::from("/a b\\c\t"));
        assert_eq!(unescape(r"/tail\04"), OsString::from(r"/tail\04"));
        assert_eq!(unescape(r"\777x"), OsString::from(r"\777x"));
    }

    /// A fake hybrid tree under `base` (v1 controllers plus a unified
    /// hierarchy for the pressure files) holding cgroup `/docker/abc`, as
    /// Docker's cgroupfs driver lays it out.
    fn fake_hybrid(base: &Path) -> CgroupRoots {
        let b = base.display();
        let mountinfo = format!(
            "29 25 0:26 / {b}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             30 25 0:27 / {b}/memory rw - cgroup cgroup rw,memory\n\
             31 25 0:28 / {b}/pids rw - cgroup cgroup rw,pids\n\
             32 25 0:29 / {b}/blkio rw - cgroup cgroup rw,blkio\n\
             33 25 0:30 / {b}/hugetlb rw - cgroup cgroup rw,hugetlb\n\
             34 25 0:31 / {b}/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
        );
        for c in [
            "cpu,cpuacct",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "unified",
        ] {
            fs::create_dir_all(base.join(c).join("docker/abc")).unwrap();
        }
        CgroupRoots::from_mountinfo(&mountinfo)
    }

    const HYBRID_PROC_CGROUP: &str = "6:hugetlb:/docker/abc\n5:blkio:/docker/abc\n\
        4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n2:pids:/docker/abc\n0::/docker/abc\n";

    #[test]
    fn read_metrics_v1_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = fake_hybrid(tmp.path());
        let at = |c: &str| tmp.path().join(c).join("docker/abc");
        let cpu = at("cpu,cpuacct");
        write(&cpu, "cpuacct.usage", "3500000000\n");
        write(&cpu, "cpuacct.stat", "user 250\nsystem 50\n");
        write(
            &cpu,
            "cpu.stat",
            "nr_periods 40\nnr_throttled 2\nthrottled_time 1200000000\n",
        );
        write(&cpu, "cpu.shares", "1024\n");
        write(&cpu, "cpu.cfs_period_us", "100000\n");
        write(&cpu, "cpu.cfs_quota_us", "20000\n");
        write(&cpu, "cgroup.procs", "10\n11\n");
        let mem = at("memory");
        write(&mem, "memory.usage_in_bytes", "10000000\n");
        write(&mem, "memory.limit_in_bytes", "67108864\n");
        write(
            &mem,
            "memory.stat",
            &format!("{V1_MEMORY_STAT}total_mapped_file 8192\n"),
        );
        write(&mem, "memory.failcnt", "3\n");
        write(&mem, "memory.max_usage_in_bytes", "12000000\n");
        write(&mem, "memory.kmem.usage_in_bytes", "300000\n");
        write(&mem, "memory.memsw.limit_in_bytes", "134217728\n");
        write(&mem, "memory.soft_limit_in_bytes", "9223372036854771712\n");
        write(
            &mem,
            "memory.oom_control",
            "oom_kill_disable 0\noom_kill 1\n",
        );
        let pids = at("pids");
        write(&pids, "pids.current", "5\n");
        write(&pids, "pids.max", "max\n");
        let blkio = at("blkio");
        // CFQ's file is there but empty (another scheduler): the throttling
        // layer's figures are used.
        write(&blkio, "blkio.io_service_bytes_recursive", "Total 0\n");
        write(
            &blkio,
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n\
             8:0 Total 12288\n8:16 Read 512\n8:16 Write 0\nTotal 12800\n",
        );
        write(
            &blkio,
            "blkio.throttle.io_serviced_recursive",
            "8:0 Read 1\n8:0 Write 2\n8:16 Read 1\nTotal 4\n",
        );
        let huge = at("hugetlb");
        write(&huge, "hugetlb.2MB.usage_in_bytes", "2097152\n");
        write(&huge, "hugetlb.2MB.max_usage_in_bytes", "4194304\n");
        write(&huge, "hugetlb.2MB.limit_in_bytes", "9223372036854771712\n");
        write(&huge, "hugetlb.1GB.usage_in_bytes", "0\n");
        let unified = at("unified");
        write(
            &unified,
            "cpu.pressure",
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=2500000\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n",
        );

        let cg = roots.from_proc_cgroup(HYBRID_PROC_CGROUP);
        let m = cg.read_metrics();
        assert_eq!(m.sample, {
            let mut s = cg.read();
            s.cpu_usage_ns = Some(3_500_000_000);
            s
        });
        assert_eq!(m.sample.memory_usage, Some(10_000_000));
        let hz = rustix::param::clock_ticks_per_second();
        assert_eq!(
            m.cpu,
            CpuDetail {
                user_ns: Some(250 * 1_000_000_000 / hz),
                system_ns: Some(50 * 1_000_000_000 / hz),
                periods: Some(40),
                throttled_periods: Some(2),
                throttled_ns: Some(1_200_000_000),
            }
        );
        assert_eq!(
            m.memory,
            MemoryDetail {
                cache: Some(4_096_000),
                mapped_file: Some(8192),
                failcnt: Some(3),
                max_usage: Some(12_000_000),
                kernel_usage: Some(300_000),
                // The cgroup's own, not total_pgfault's 12345.
                own_page_faults: Some(5),
                own_major_page_faults: Some(1),
            }
        );
        assert_eq!(
            m.spec,
            CgroupSpec {
                cpu_shares: Some(1024),
                cpu_period_us: Some(100_000),
                cpu_quota_us: Some(20_000),
                memory_limit: Some(67_108_864),
                memory_swap_limit: Some(134_217_728),
                memory_reservation: Some(0),
            }
        );
        assert_eq!(m.threads_max, Some(0));
        assert_eq!(m.procs, Some(vec![10, 11]));
        assert_eq!(m.io.len(), 2);
        let sda = &m.io[0];
        assert_eq!((sda.major, sda.minor), (8, 0));
        assert_eq!(sda.bytes_of("Read"), Some(4096));
        assert_eq!(sda.bytes_of("Async"), Some(12288));
        assert_eq!(sda.bytes.len(), 6);
        assert_eq!(sda.ops_of("Write"), Some(2));
        assert_eq!(m.io[1].ops_of("Write"), None);
        assert_eq!(
            m.hugetlb,
            [
                HugetlbUsage {
                    pagesize: "1GB".into(),
                    usage: Some(0),
                    max_usage: None,
                },
                HugetlbUsage {
                    pagesize: "2MB".into(),
                    usage: Some(2_097_152),
                    max_usage: Some(4_194_304),
                },
            ]
        );
        assert_eq!(
            m.sample.pressure.cpu,
            Some(Psi {
                some: Some(PsiLine {
                    total_us: 2_500_000,
                    avg10: 1.5,
                    avg60: 0.25,
                    avg300: 0.0,
                }),
                full: Some(PsiLine {
                    total_us: 1_000_000,
                    avg10: 0.0,
                    avg60: 0.0,
                    avg300: 0.0,
                }),
            })
        );
        assert_eq!(m.sample.pressure.memory, None);
        // memory.stat has no swap key: swap accounting is off.
        assert_eq!(m.sample.swap, None);

        // No quota, unlimited memory; a process in the unified root has
        // only the machine's pressure figures, which are not its own.
        write(&cpu, "cpu.cfs_quota_us", "-1\n");
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        let m = cg.read_metrics();
        assert_eq!(m.spec.cpu_quota_us, None);
        assert_eq!(m.spec.memory_limit, Some(0));
        write(
            &tmp.path().join("unified"),
            "cpu.pressure",
            "some total=9\n",
        );
        let at_root = roots.from_proc_cgroup(&HYBRID_PROC_CGROUP.replace("0::/docker/abc", "0::/"));
        assert_eq!(at_root.read_metrics().sample.pressure, Pressure::default());
        assert_eq!(at_root.read().pressure, Pressure::default());
    }

    #[test]
    fn read_metrics_v2_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let mountinfo = format!(
            "26 22 0:23 / {} rw - cgroup2 cgroup2 rw,nsdelegate\n",
            tmp.path().display()
        );
        let roots = CgroupRoots::from_mountinfo(&mountinfo);
        let dir = tmp.path().join("system.slice/docker-abc.scope");
        fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "cpu.stat",
            "usage_usec 3500000\nuser_usec 2900000\nsystem_usec 600000\n\
             nr_periods 40\nnr_throttled 2\nthrottled_usec 1200000\n",
        );
        write(&dir, "cpu.weight", "39\n");
        write(&dir, "cpu.max", "20000 100000\n");
        write(&dir, "memory.current", "10000000\n");
        write(&dir, "memory.max", "67108864\n");
        write(
            &dir,
            "memory.stat",
            "anon 6000000\nfile 2000000\nkernel 310000\nkernel_stack 49152\nslab 200000\n\
             file_mapped 8192\ninactive_file 1000000\npgfault 900\npgmajfault 1\n",
        );
        write(&dir, "memory.swap.current", "4096\n");
        write(&dir, "memory.swap.max", "max\n");
        write(&dir, "memory.min", "0\n");
        write(&dir, "memory.peak", "12000000\n");
        write(
            &dir,
            "memory.events",
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        );
        write(&dir, "pids.current", "5\n");
        write(&dir, "pids.max", "100\n");
        write(&dir, "cgroup.procs", "10\n");
        write(
            &dir,
            "io.stat",
            "253:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        write(&dir, "hugetlb.2MB.current", "0\n");
        write(&dir, "hugetlb.2MB.rsvd.current", "0\n");
        write(&dir, "hugetlb.2MB.max", "max\n");
        // CPU pressure before Linux 5.13 has no "full" line.
        write(
            &dir,
            "cpu.pressure",
            "some avg10=1.00 avg60=0.50 avg300=0.10 total=2500000\n",
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

        let cg = roots.from_proc_cgroup("0::/system.slice/docker-abc.scope\n");
        let m = cg.read_metrics();
        assert_eq!(m.sample, cg.read());
        assert_eq!(m.sample.memory_working_set, Some(9_000_000));
        assert_eq!(
            m.cpu,
            CpuDetail {
                user_ns: Some(2_900_000_000),
                system_ns: Some(600_000_000),
                periods: Some(40),
                throttled_periods: Some(2),
                throttled_ns: Some(1_200_000_000),
            }
        );
        assert_eq!(
            m.memory,
            MemoryDetail {
                cache: Some(2_000_000),
                mapped_file: Some(8192),
                failcnt: Some(4),
                max_usage: Some(12_000_000),
                kernel_usage: Some(310_000),
                own_page_faults: Some(900),
                own_major_page_faults: Some(1),
            }
        );
        assert_eq!(
            m.spec,
            CgroupSpec {
                cpu_shares: Some(998),
                cpu_period_us: Some(100_000),
                cpu_quota_us: Some(20_000),
                memory_limit: Some(67_108_864),
                memory_swap_limit: Some(0),
                memory_reservation: Some(0),
            }
        );
        assert_eq!(m.threads_max, Some(100));
        assert_eq!(m.procs, Some(vec![10]));
        assert_eq!(
            m.io,
            [DeviceIo {
                major: 253,
                minor: 0,
                bytes: vec![("Read".into(), 4096), ("Write".into(), 8192)],
                ops: vec![("Read".into(), 1), ("Write".into(), 2)],
            }]
        );
        assert_eq!(
            m.hugetlb,
            [HugetlbUsage {
                pagesize: "2MB".into(),
                usage: Some(0),
                max_usage: None,
            }]
        );
        let line = |total_us, avg10, avg60, avg300| {
            Some(PsiLine {
                total_us,
                avg10,
                avg60,
                avg300,
            })
        };
        assert_eq!(
            m.sample.pressure,
            Pressure {
                cpu: Some(Psi {
                    some: line(2_500_000, 1.0, 0.5, 0.1),
                    full: None,
                }),
                memory: Some(Psi {
                    some: line(10, 12.34, 5.0, 1.25),
                    full: line(5, 2.0, 1.0, 0.5),
                }),
                io: Some(Psi {
                    some: line(20, 0.0, 0.0, 0.0),
                    full: line(7, 0.0, 0.0, 0.0),
                }),
            }
        );
        // Unlimited swap: used, nothing said of what is left.
        assert_eq!(
            m.sample.swap,
            Some(Swap {
                used: 4096,
                limit: None,
            })
        );
        assert_eq!(m.sample.swap.and_then(|s| s.available()), None);
        write(&dir, "memory.swap.max", "1048576\n");
        let swap = cg.read().swap.unwrap();
        assert_eq!(swap.limit, Some(1_048_576));
        assert_eq!(swap.available(), Some(1_044_480));

        // Older kernels: no memory.peak (5.19), no "kernel" total (5.18); no
        // swap accounting; no quota; unlimited memory.
        for f in ["memory.peak", "memory.swap.current", "memory.swap.max"] {
            fs::remove_file(dir.join(f)).unwrap();
        }
        write(
            &dir,
            "memory.stat",
            "anon 6000000\nfile 2000000\nkernel_stack 49152\nslab 200000\n",
        );
        write(&dir, "cpu.max", "max 100000\n");
        write(&dir, "memory.max", "max\n");
        let m = cg.read_metrics();
        assert_eq!(m.memory.max_usage, Some(0));
        assert_eq!(m.sample.swap, None);
        assert_eq!(m.memory.kernel_usage, Some(249_152));
        assert_eq!(m.memory.mapped_file, Some(0));
        assert_eq!(m.spec.cpu_quota_us, None);
        assert_eq!(m.spec.cpu_period_us, Some(100_000));
        assert_eq!(m.spec.memory_limit, Some(0));
        assert_eq!(m.spec.memory_swap_limit, Some(0));
    }

    #[test]
    fn read_metrics_with_nothing_mounted_is_empty() {
        let cg = CgroupRoots::default().from_proc_cgroup("0::/\n1:memory:/\n");
        assert_eq!(cg.read_metrics(), CgroupMetrics::default());
    }

    #[test]
    fn weight_converts_back_to_shares_as_cadvisor_does() {
        assert_eq!(weight_to_shares(1), Some(2));
        // runc writes 1024 shares as weight 39.
        assert_eq!(weight_to_shares(39), Some(998));
        assert_eq!(weight_to_shares(100), Some(2597));
        assert_eq!(weight_to_shares(10_000), Some(262_144));
        assert_eq!(weight_to_shares(0), None);
        assert_eq!(weight_to_shares(10_001), None);
    }

    #[test]
    fn parses_small_formats() {
        assert_eq!(parse_cpu_max("max 100000\n"), (None, Some(100_000)));
        assert_eq!(parse_cpu_max("50000 100000"), (Some(50_000), Some(100_000)));
        assert_eq!(parse_cpu_max(""), (None, None));
        assert_eq!(
            parse_cpuacct_stat("user 100\nsystem 300\n", 100),
            (Some(1_000_000_000), Some(3_000_000_000))
        );
        assert_eq!(parse_cpuacct_stat("garbage", 100), (None, None));
        assert_eq!(
            parse_psi(
                "some avg10=0.10 avg60=0.00 avg300=0.00 total=12\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=x\n"
            ),
            Psi {
                some: Some(PsiLine {
                    total_us: 12,
                    avg10: 0.1,
                    avg60: 0.0,
                    avg300: 0.0,
                }),
                full: None,
            }
        );
        // A line without its averages is not a reading.
        assert_eq!(parse_psi("some total=12\n"), Psi::default());
        assert_eq!(parse_psi(""), Psi::default());
        assert_eq!(parse_dev("8:16"), Some((8, 16)));
        assert_eq!(parse_dev("8"), None);
        assert_eq!(parse_io_stat("garbage\n8:0 rbytes=x wbytes=3\n").len(), 1);
    }

    #[test]
    fn limits_read_unlimited_as_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |text: &str| {
            write(tmp.path(), "limit", text);
            read_limit(&tmp.path().join("limit"))
        };
        assert_eq!(at("max\n"), Some(0));
        assert_eq!(at("9223372036854771712\n"), Some(0));
        assert_eq!(at("67108864\n"), Some(67_108_864));
        assert_eq!(at("-1\n"), None);
        assert_eq!(read_limit(&tmp.path().join("missing")), None);
    }

    /// This machine's own cgroup (v1 cgroupfs, v2 or hybrid alike).
    #[test]
    fn live_read_metrics_of_own_process() {
        let roots = CgroupRoots::discover().unwrap();
        let cg = roots.of_pid(std::process::id()).unwrap();
        let m = cg.read_metrics();
        let me = std::process::id();
        assert!(
            m.procs.as_ref().is_some_and(|p| p.contains(&me)),
            "{roots:?} {cg:?} {m:?}"
        );
        assert!(m.cpu.user_ns.is_some(), "{roots:?} {cg:?} {m:?}");
    }

    /// This machine's own cgroup (v1 cgroupfs, v2 or hybrid alike).
    #[test]
    fn live_read_of_own_process() {
        let roots = CgroupRoots::discover().unwrap();
        let cg = roots.of_pid(std::process::id()).unwrap();
        let s = cg.read();
        assert!(s.cpu_usage_ns.unwrap_or(0) > 0, "{roots:?} {cg:?} {s:?}");
        assert!(s.memory_usage.unwrap_or(0) > 0, "{roots:?} {cg:?} {s:?}");
        assert!(s.memory_working_set.is_some());
    }
}
