//! `--runtime-cgroups`: moves the shim's own process into a cgroup of the
//! operator's choosing at start, so the node accounts the runtime's CPU and
//! memory apart from the pods' (the kubelet's `--runtime-cgroups` names the
//! same cgroup to report it).

use std::io;
use std::path::{Path, PathBuf};

/// Where the cgroup filesystems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Moves this process into `cgroup` (a path from the cgroup root, like
/// `/runtime` or `/system.slice/dockershim.service`), creating it where
/// needed: in the unified hierarchy on cgroup v2, in every mounted
/// controller hierarchy on v1. Returns the directories it joined.
pub fn join(cgroup: &str) -> io::Result<Vec<PathBuf>> {
    join_under(Path::new(CGROUP_ROOT), cgroup, std::process::id())
}

fn join_under(root: &Path, cgroup: &str, pid: u32) -> io::Result<Vec<PathBuf>> {
    let relative = Path::new(cgroup.trim_start_matches('/'));
    if cgroup.is_empty()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--runtime-cgroups {cgroup:?}: use an absolute cgroup path without '..'"),
        ));
    }
    let hierarchies = if root.join("cgroup.controllers").exists() {
        vec![root.to_path_buf()]
    } else {
        v1_hierarchies(root)?
    };
    if hierarchies.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no cgroup hierarchy is mounted under {}", root.display()),
        ));
    }
    let mut joined = Vec::new();
    for hierarchy in hierarchies {
        let dir = hierarchy.join(relative);
        std::fs::create_dir_all(&dir)
            .and_then(|()| inherit_cpusets(&hierarchy, relative))
            .and_then(|()| std::fs::write(dir.join("cgroup.procs"), pid.to_string()))
            .map_err(|e| io::Error::new(e.kind(), format!("join cgroup {}: {e}", dir.display())))?;
        joined.push(dir);
    }
    Ok(joined)
}

/// A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and the
/// kernel refuses processes into it (ENOSPC): give each level on the way
/// down its parent's, as systemd and runc do.
fn inherit_cpusets(hierarchy: &Path, relative: &Path) -> io::Result<()> {
    let mut parent = hierarchy.to_path_buf();
    for component in relative.components() {
        let child = parent.join(component);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let Ok(current) = std::fs::read_to_string(child.join(file)) else {
                continue;
            };
            if current.trim().is_empty() {
                let inherited = std::fs::read_to_string(parent.join(file))?;
                std::fs::write(child.join(file), inherited.trim())?;
            }
        }
        parent = child;
    }
    Ok(())
}

/// The v1 controller hierarchies: real directories under the root that hold
/// processes (`cpu` and the like are often symlinks to `cpu,cpuacct`).
fn v1_hierarchies(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && entry.path().join("cgroup.procs").exists() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_the_unified_hierarchy_on_v2() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory").unwrap();
        let joined = join_under(root.path(), "/runtime/shim", 42).unwrap();
        assert_eq!(joined, vec![root.path().join("runtime/shim")]);
        let procs = std::fs::read_to_string(root.path().join("runtime/shim/cgroup.procs")).unwrap();
        assert_eq!(procs, "42");
    }

    #[test]
    fn joins_every_controller_on_v1() {
        let root = tempfile::tempdir().unwrap();
        for controller in ["cpu,cpuacct", "memory"] {
            std::fs::create_dir(root.path().join(controller)).unwrap();
            std::fs::write(root.path().join(controller).join("cgroup.procs"), "").unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpu")).unwrap();
        let joined = join_under(root.path(), "runtime", 7).unwrap();
        assert_eq!(
            joined,
            vec![
                root.path().join("cpu,cpuacct/runtime"),
                root.path().join("memory/runtime")
            ]
        );
    }

    #[test]
    fn a_new_v1_cpuset_gets_its_parents_cpus_and_memory_nodes() {
        let root = tempfile::tempdir().unwrap();
        let cpuset = root.path().join("cpuset");
        std::fs::create_dir_all(cpuset.join("a/b")).unwrap();
        for (dir, cpus, mems) in [(&cpuset, "0-1\n", "0\n"), (&cpuset.join("a"), "\n", "\n")] {
            std::fs::write(dir.join("cpuset.cpus"), cpus).unwrap();
            std::fs::write(dir.join("cpuset.mems"), mems).unwrap();
        }
        std::fs::write(cpuset.join("a/b/cpuset.cpus"), "").unwrap();
        std::fs::write(cpuset.join("a/b/cpuset.mems"), "").unwrap();
        inherit_cpusets(&cpuset, Path::new("a/b")).unwrap();
        for dir in ["a", "a/b"] {
            let read = |f: &str| std::fs::read_to_string(cpuset.join(dir).join(f)).unwrap();
            assert_eq!(
                (read("cpuset.cpus"), read("cpuset.mems")),
                ("0-1".into(), "0".into())
            );
        }
    }

    #[test]
    fn refuses_paths_that_climb_out() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "").unwrap();
        assert!(join_under(root.path(), "/../etc", 1).is_err());
        assert!(join_under(root.path(), "", 1).is_err());
    }
}
