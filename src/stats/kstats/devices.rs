//! Names of block devices and the filesystem holding a path, for the
//! `device` labels and the capacity figures of the cAdvisor-named metrics.
//!
//! cgroups report block I/O by `major:minor`; cAdvisor labels it `/dev/<name>`,
//! which sysfs gives in `/sys/dev/block/<major>:<minor>/uevent`. A
//! container's filesystem figures are those of the filesystem under Docker's
//! data directory, labelled with the device mounted there (the mount source in
//! `/proc/self/mountinfo`), its capacity from `statvfs`.

use std::io;
use std::path::Path;

use super::cgroup::parse_mountinfo_line;

/// Where sysfs is mounted.
pub const SYS: &str = "/sys";

/// `/dev/<name>` of block device `major:minor`, from `<sys_root>/dev/block`;
/// `None` if the device is unknown there.
pub fn block_device_name(sys_root: &Path, major: u64, minor: u64) -> Option<String> {
    let uevent = sys_root
        .join("dev/block")
        .join(format!("{major}:{minor}"))
        .join("uevent");
    let text = std::fs::read_to_string(uevent).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("DEVNAME="))
        .filter(|name| !name.is_empty())
        .map(|name| format!("/dev/{name}"))
}

/// Size and inodes of a filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsCapacity {
    /// Total size, bytes.
    pub capacity_bytes: u64,
    /// Total inodes.
    pub inodes_total: u64,
    /// Free inodes.
    pub inodes_free: u64,
}

/// Capacity of the filesystem holding `path`.
pub fn capacity_of(path: &Path) -> io::Result<FsCapacity> {
    let st = rustix::fs::statvfs(path)?;
    Ok(FsCapacity {
        capacity_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        inodes_total: st.f_files,
        inodes_free: st.f_ffree,
    })
}

/// The device mounted where `path` lives (the source of the deepest mount
/// containing it), from this process's `mountinfo`.
pub fn device_of(path: &Path) -> io::Result<Option<String>> {
    // Resolve links so the mount points compare with the real location.
    let path = std::fs::canonicalize(path)?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mount_source(&mountinfo, &path))
}

/// The source of the deepest mount in `mountinfo` whose mount point contains
/// `path`; the last such line wins among equals, as later mounts hide earlier
/// ones.
fn mount_source(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for entry in mountinfo.lines().filter_map(parse_mountinfo_line) {
        if !path.starts_with(&entry.point) {
            continue;
        }
        let depth = entry.point.components().count();
        if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            best = Some((depth, entry.source.to_owned()));
        }
    }
    best.map(|(_, source)| source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn names_block_devices_from_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().join("dev/block/8:1");
        fs::create_dir_all(&dev).unwrap();
        fs::write(
            dev.join("uevent"),
            "MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\nPARTN=1\n",
        )
        .unwrap();
        assert_eq!(
            block_device_name(tmp.path(), 8, 1).as_deref(),
            Some("/dev/sda1")
        );
        assert_eq!(block_device_name(tmp.path(), 8, 2), None);
    }

    #[test]
    fn finds_the_deepest_mount_holding_a_path() {
        let mountinfo = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 253:2 / /var/lib rw,relatime shared:2 - xfs /dev/vdb rw
41 40 0:50 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=x
42 22 0:51 / /var/library rw - tmpfs tmpfs rw
";
        let at = |p: &str| mount_source(mountinfo, Path::new(p));
        assert_eq!(at("/var/lib/docker").as_deref(), Some("/dev/vdb"));
        assert_eq!(at("/var/lib").as_deref(), Some("/dev/vdb"));
        // Whole components only: /var/library is not under /var/lib.
        assert_eq!(at("/var/library/x").as_deref(), Some("tmpfs"));
        assert_eq!(at("/home").as_deref(), Some("/dev/vda1"));
        assert_eq!(mount_source("", Path::new("/")), None);
    }

    #[test]
    fn capacity_of_a_real_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let cap = capacity_of(tmp.path()).unwrap();
        assert!(cap.capacity_bytes > 0, "{cap:?}");
        assert!(cap.inodes_free <= cap.inodes_total, "{cap:?}");
        assert!(capacity_of(&tmp.path().join("missing")).is_err());
        // The temp dir's own filesystem has some mount source.
        assert!(device_of(tmp.path()).unwrap().is_some());
    }
}
