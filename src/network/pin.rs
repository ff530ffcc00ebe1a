//! Pinned pod network namespaces.
//!
//! CNI plugins undo only what they find: the bridge plugin learns the
//! pod's addresses from its interface inside the namespace, and without
//! the namespace it releases the IP but leaves its ipMasq chains in the
//! host's iptables. A pod's namespace lives as long as its pause process,
//! which dies when Docker restarts or the container is killed; the
//! teardown comes later. So, as containerd does, the namespace is pinned
//! by a bind mount under the shim's state directory from ADD until its DEL
//! has run. The pin also survives a restart of the shim.

use std::io;
use std::path::{Path, PathBuf};

use crate::naming;

/// `f_type` of a namespace file (`NSFS_MAGIC`).
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Where the pod namespaces are pinned.
#[derive(Debug, Clone)]
pub struct NetnsPins {
    dir: PathBuf,
}

impl NetnsPins {
    /// Pins under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The pin's path; `None` for anything but a full Docker id, so a
    /// name can never reach outside the directory.
    fn path(&self, sandbox_id: &str) -> Option<PathBuf> {
        naming::is_full_id(sandbox_id).then(|| self.dir.join(sandbox_id))
    }

    /// Pins the network namespace of process `pid` for the sandbox and
    /// returns the pin's path.
    pub fn pin(&self, sandbox_id: &str, pid: u32) -> io::Result<PathBuf> {
        let path = self.path(sandbox_id).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a sandbox id: {sandbox_id:?}"),
            )
        })?;
        if is_namespace(&path) {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.dir)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
        if let Err(err) = rustix::mount::mount_bind(&source, &path) {
            let _ = std::fs::remove_file(&path);
            return Err(err.into());
        }
        Ok(path)
    }

    /// The sandbox's pinned namespace, if one is pinned.
    pub fn pinned(&self, sandbox_id: &str) -> Option<PathBuf> {
        self.path(sandbox_id).filter(|p| is_namespace(p))
    }

    /// The sandboxes with a pin (or the empty file a crash between its
    /// two steps left); nothing when the directory does not exist yet.
    pub fn sandboxes(&self) -> io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut ids = Vec::new();
        for entry in entries {
            if let Some(name) = entry?.file_name().to_str()
                && naming::is_full_id(name)
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Releases the sandbox's pin (its DEL has run); nothing to do when
    /// there is none.
    pub fn unpin(&self, sandbox_id: &str) -> io::Result<()> {
        let Some(path) = self.path(sandbox_id) else {
            return Ok(());
        };
        if is_namespace(&path) {
            rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH)?;
        }
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// Whether `path` is a mounted namespace file (not the empty file under it).
fn is_namespace(path: &Path) -> bool {
    // `f_type` is an i64 on x86_64 but narrower on some architectures.
    #[allow(clippy::useless_conversion)]
    rustix::fs::statfs(path).is_ok_and(|fs| i64::from(fs.f_type) == NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_ids_name_a_pin() {
        let pins = NetnsPins::new(PathBuf::from("/run/pins"));
        assert!(pins.path("../../etc/passwd").is_none());
        assert!(pins.path("abc").is_none());
        let id = "a".repeat(64);
        assert_eq!(pins.path(&id), Some(PathBuf::from("/run/pins").join(&id)));
        assert!(pins.pin("../x", 1).is_err());
    }

    #[test]
    fn an_unpinned_sandbox_has_no_pin_and_unpins_cleanly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pins = NetnsPins::new(dir.path().to_path_buf());
        let id = "b".repeat(64);
        // A file left without its mount (a crash between the two steps).
        std::fs::write(dir.path().join(&id), b"").expect("write");
        assert_eq!(pins.pinned(&id), None);
        pins.unpin(&id).expect("unpin");
        assert!(!dir.path().join(&id).exists());
        pins.unpin(&id).expect("unpin twice");
    }

    #[test]
    fn sandboxes_lists_only_pin_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pins = NetnsPins::new(dir.path().join("netns"));
        assert_eq!(
            pins.sandboxes().expect("no directory yet"),
            Vec::<String>::new()
        );
        std::fs::create_dir(dir.path().join("netns")).expect("mkdir");
        let (a, b) = ("c".repeat(64), "d".repeat(64));
        for name in [b.as_str(), a.as_str(), "not-an-id", "abc"] {
            std::fs::write(dir.path().join("netns").join(name), b"").expect("write");
        }
        assert_eq!(pins.sandboxes().expect("list"), vec![a, b]);
    }
}
