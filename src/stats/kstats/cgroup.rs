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

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

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

struct MountinfoEntry<'a> {
    root: String,
    point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_mountinfo_line(line: &str) -> Option<MountinfoEntry<'_>> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    // The optional fields end at a lone "-", which comes after field 6.
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fstype = fields.get(sep + 1)?;
    let super_options = fields.get(sep + 3).copied().unwrap_or("");
    let root = unescape(fields.get(3)?);
    let point = PathBuf::from(unescape(fields.get(4)?));
    Some(MountinfoEntry {
        root: root.to_string_lossy().into_owned(),
        point,
        fstype,
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
        s.pids = self
            .controller_dir("pids")
            .and_then(|d| read_u64(&d.join("pids.current")));
        s
    }

    fn read_cpu(&self, s: &mut CgroupSample) {
        if let Some(dir) = self.v1.get("cpuacct") {
            s.cpu_usage_ns = read_u64(&dir.join("cpuacct.usage"));
        } else if let Some(dir) = &self.unified {
            s.cpu_usage_ns = read_keyed(&dir.join("cpu.stat"))
                .and_then(|stat| stat.get("usage_usec"))
                .map(|us| us.saturating_mul(1000));
        }
    }

    fn read_memory(&self, s: &mut CgroupSample) {
        let inactive_file;
        if let Some(dir) = self.v1.get("memory") {
            s.memory_usage = read_u64(&dir.join("memory.usage_in_bytes"));
            s.memory_limit =
                read_u64(&dir.join("memory.limit_in_bytes")).filter(|l| *l < V1_UNLIMITED);
            let stat = read_keyed(&dir.join("memory.stat")).unwrap_or_default();
            // The total_ keys include descendants; use_hierarchy=0 setups and
            // some kernels' root cgroup lack them.
            let get = |key: &str| stat.get(&format!("total_{key}")).or_else(|| stat.get(key));
            inactive_file = get("inactive_file");
            s.memory_rss = get("rss");
            s.page_faults = get("pgfault");
            s.major_page_faults = get("pgmajfault");
            s.oom_kills =
                read_keyed(&dir.join("memory.oom_control")).and_then(|c| c.get("oom_kill"));
        } else if let Some(dir) = &self.unified {
            s.memory_usage = read_u64(&dir.join("memory.current"));
            s.memory_limit = read_u64(&dir.join("memory.max"));
            let stat = read_keyed(&dir.join("memory.stat")).unwrap_or_default();
            inactive_file = stat.get("inactive_file");
            s.memory_rss = stat.get("anon");
            s.page_faults = stat.get("pgfault");
            s.major_page_faults = stat.get("pgmajfault");
            s.oom_kills = read_keyed(&dir.join("memory.events")).and_then(|e| e.get("oom_kill"));
        } else {
            return;
        }
        s.memory_working_set = working_set(s.memory_usage, inactive_file);
    }
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
