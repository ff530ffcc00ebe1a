//! Per-process facts from `/proc`: open file descriptors and sockets, and the
//! open-files limit.
//!
//! cAdvisor counts a container's descriptors by listing `/proc/<pid>/fd` of
//! every process in its cgroup and its sockets by the `socket:[inode]` targets
//! of those links; its one `ulimit` is the root process's soft `Max open
//! files`. The functions take the `/proc` root as a parameter so tests can
//! point them at a fake tree.

use std::path::Path;

/// Where the kernel's process information is mounted.
pub const PROC: &str = "/proc";

/// Descriptors open in a set of processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdCounts {
    /// Open file descriptors.
    pub fds: u64,
    /// Those that are sockets.
    pub sockets: u64,
}

/// Counts the descriptors of `pids` under `proc_root`. A process that exits
/// meanwhile, or whose table cannot be read, counts as none, and a descriptor
/// closed between the listing and its `readlink` is still counted (but not as
/// a socket): the figure is a snapshot of a moving target either way.
pub fn count_fds(proc_root: &Path, pids: &[u32]) -> FdCounts {
    let mut counts = FdCounts::default();
    for pid in pids {
        let dir = proc_root.join(pid.to_string()).join("fd");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            counts.fds += 1;
            let is_socket = std::fs::read_link(entry.path()).is_ok_and(|target| {
                target
                    .as_os_str()
                    .as_encoded_bytes()
                    .starts_with(b"socket:")
            });
            if is_socket {
                counts.sockets += 1;
            }
        }
    }
    counts
}

/// The soft limit on open files of process `pid`, from
/// `<proc_root>/<pid>/limits`; `None` if unreadable or unlimited (the CRI's
/// metric values are unsigned, so cAdvisor's -1 for unlimited has no
/// representation).
pub fn soft_open_files_limit(proc_root: &Path, pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("limits")).ok()?;
    parse_max_open_files(&text)
}

/// The soft value of the `Max open files` line of a `limits` file:
///
/// ```text
/// Limit                     Soft Limit           Hard Limit           Units
/// Max open files            1048576              1048576              files
/// ```
fn parse_max_open_files(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("Max open files")?;
        rest.split_ascii_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// A fake `/proc/<pid>/fd` whose links point at `targets`.
    fn fake_fds(root: &Path, pid: u32, targets: &[&str]) {
        let dir = root.join(pid.to_string()).join("fd");
        fs::create_dir_all(&dir).unwrap();
        for (i, target) in targets.iter().enumerate() {
            symlink(target, dir.join(i.to_string())).unwrap();
        }
    }

    #[test]
    fn counts_fds_and_sockets_over_processes() {
        let tmp = tempfile::tempdir().unwrap();
        fake_fds(
            tmp.path(),
            10,
            &["/dev/null", "socket:[1234]", "pipe:[99]", "socket:[77]"],
        );
        fake_fds(tmp.path(), 11, &["/etc/hosts", "anon_inode:[eventfd]"]);
        // 12 has exited: no directory.
        let counts = count_fds(tmp.path(), &[10, 11, 12]);
        assert_eq!(counts, FdCounts { fds: 6, sockets: 2 });
        assert_eq!(count_fds(tmp.path(), &[]), FdCounts::default());
    }

    #[test]
    fn reads_the_soft_open_files_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("42");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("limits"),
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max cpu time              unlimited            unlimited            seconds   \n\
             Max open files            1024                 524288               files     \n\
             Max locked memory         8388608              8388608              bytes     \n",
        )
        .unwrap();
        assert_eq!(soft_open_files_limit(tmp.path(), 42), Some(1024));
        assert_eq!(soft_open_files_limit(tmp.path(), 43), None);
        assert_eq!(
            parse_max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(parse_max_open_files("garbage\n"), None);
    }
}
