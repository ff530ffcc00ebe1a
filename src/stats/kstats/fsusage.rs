//! Disk usage of a directory tree (a container's writable layer), measured in
//! the background and cached.
//!
//! Walking a layer can take seconds, far longer than a stats call may wait, so
//! [`FsUsageCache::get`] only ever returns what it already has and, when that
//! is missing or older than the configured interval, starts one walk in the
//! background ([`tokio::task::spawn_blocking`] inside a runtime, a plain
//! thread outside one). At most one walk per path runs at a time, and a path is
//! walked at most once per interval, measured from the end of its last walk.
//!
//! [`measure_dir`] is the walk itself, the equivalent of `du -x -s
//! --block-size=1` plus an inode count.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Usage of one directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Bytes allocated on disk (`st_blocks` × 512), hard links counted once.
    pub used_bytes: u64,
    /// Inodes in the tree, the top directory included.
    pub inodes_used: u64,
    /// When the walk finished.
    pub measured_at: SystemTime,
}

/// Walks the tree at `path` synchronously: sums allocated bytes
/// (`st_blocks` × 512) and counts inodes, without following symlinks (a link
/// counts as itself), without crossing into other filesystems (entries whose
/// `st_dev` differs from the top's are skipped), and counting every inode once
/// however many hard links reach it.
///
/// Fails only if `path` itself cannot be examined. Errors below it (entries
/// removed during the walk, unreadable directories) are skipped, so the result
/// is a best-effort lower bound for a tree that changes while it is walked.
pub fn measure_dir(path: &Path) -> io::Result<FsUsage> {
    walk(path, u64::MAX)?.ok_or_else(|| io::Error::other("more inodes than a u64 counts"))
}

/// [`measure_dir`], giving up (`Ok(None)`) once more than `max_inodes`
/// inodes are counted.
fn walk(path: &Path, max_inodes: u64) -> io::Result<Option<FsUsage>> {
    let top = std::fs::symlink_metadata(path)?;
    let dev = top.dev();
    let mut used_bytes = 0u64;
    let mut inodes_used = 0u64;
    // Inodes that may be reached twice: hard-linked files, and directories
    // (a bind mount within the same filesystem could otherwise loop).
    let mut seen: HashSet<u64> = HashSet::new();
    struct OverBudget;
    // Ok(true) when newly counted, Ok(false) when seen before.
    let mut count = |md: &std::fs::Metadata| -> Result<bool, OverBudget> {
        if (md.is_dir() || md.nlink() > 1) && !seen.insert(md.ino()) {
            return Ok(false);
        }
        used_bytes = used_bytes.saturating_add(md.blocks().saturating_mul(512));
        inodes_used += 1;
        if inodes_used > max_inodes {
            return Err(OverBudget);
        }
        Ok(true)
    };
    if count(&top).is_err() {
        return Ok(None);
    }
    let mut pending: Vec<PathBuf> = Vec::new();
    if top.is_dir() {
        pending.push(path.to_path_buf());
    }
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                skipped(&dir, &e);
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    skipped(&dir, &e);
                    continue;
                }
            };
            // DirEntry::metadata does not follow symlinks.
            let md = match entry.metadata() {
                Ok(md) => md,
                Err(e) => {
                    skipped(&entry.path(), &e);
                    continue;
                }
            };
            if md.dev() != dev {
                continue;
            }
            match count(&md) {
                Err(OverBudget) => return Ok(None),
                Ok(true) if md.is_dir() => pending.push(entry.path()),
                Ok(_) => {}
            }
        }
    }
    Ok(Some(FsUsage {
        used_bytes,
        inodes_used,
        measured_at: SystemTime::now(),
    }))
}

fn skipped(path: &Path, e: &io::Error) {
    if e.kind() != io::ErrorKind::NotFound {
        tracing::debug!(path = %path.display(), error = %e, "disk usage walk skips entry");
    }
}

/// Cached [`measure_dir`] results, refreshed in the background.
///
/// Cheap to share by reference; all state sits behind one mutex that is never
/// held during a walk.
#[derive(Debug)]
pub struct FsUsageCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    min_interval: Duration,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    /// Source of [`Entry::id`]s.
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    /// Distinguishes this entry from one re-created after it was dropped by
    /// [`FsUsageCache::retain`], so an older walk does not write into it.
    id: u64,
    value: Option<FsUsage>,
    walking: bool,
    /// When the last walk ended (successfully or not).
    finished: Option<Instant>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FsUsageCache {
    /// A cache that walks each path at most once per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                min_interval,
                entries: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The last measured usage of `path` (`None` before the first walk ends, or
    /// if the last walk failed, e.g. the directory is gone). Never waits: if
    /// the value is missing or stale and no walk of `path` is running, starts
    /// one in the background.
    pub fn get(&self, path: &Path) -> Option<FsUsage> {
        let mut entries = self.inner.lock();
        let entry = entries.entry(path.to_path_buf()).or_insert_with(|| Entry {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            value: None,
            walking: false,
            finished: None,
        });
        let stale = entry
            .finished
            .is_none_or(|at| at.elapsed() >= self.inner.min_interval);
        if stale && !entry.walking {
            entry.walking = true;
            let walk = Walk {
                inner: Arc::clone(&self.inner),
                path: path.to_path_buf(),
                id: entry.id,
                result: None,
            };
            let value = entry.value;
            drop(entries);
            walk.start();
            return value;
        }
        entry.value
    }

    /// Like [`get`](Self::get), but when no walk of `path` has given a value
    /// yet and the tree holds at most `max_inodes` inodes, measures it here and
    /// now: the first answer for a new container's (usually tiny) layer is then
    /// a size instead of nothing. A bigger tree is left to the background walk
    /// `get` starts. Blocks for the walk, so call it off the async runtime.
    pub fn get_or_measure(&self, path: &Path, max_inodes: u64) -> Option<FsUsage> {
        if let Some(usage) = self.get(path) {
            return Some(usage);
        }
        let usage = walk(path, max_inodes).ok().flatten()?;
        // The background walk `get` started records its own result when it
        // ends; until then this one stands in.
        if let Some(entry) = self.inner.lock().get_mut(path)
            && entry.value.is_none()
        {
            entry.value = Some(usage);
        }
        Some(usage)
    }

    /// Keeps only the paths for which `keep` returns true; a walk of a
    /// dropped path still running is discarded.
    pub fn retain(&self, mut keep: impl FnMut(&Path) -> bool) {
        self.inner.lock().retain(|path, _| keep(path));
    }
}

/// One background walk. Dropping it records the outcome, so the entry is
/// released even if the task never runs (runtime shutting down) or panics.
struct Walk {
    inner: Arc<Inner>,
    path: PathBuf,
    id: u64,
    result: Option<io::Result<FsUsage>>,
}

impl Walk {
    fn start(self) {
        let run = move || {
            let mut walk = self;
            walk.result = Some(measure_dir(&walk.path));
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            drop(handle.spawn_blocking(run));
            return;
        }
        // The closure is dropped, releasing the entry, if the spawn fails.
        if let Err(e) = std::thread::Builder::new()
            .name("fs-usage".into())
            .spawn(run)
        {
            tracing::warn!(error = %e, "cannot start disk usage walk");
        }
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        let mut entries = self.inner.lock();
        let Some(entry) = entries.get_mut(&self.path) else {
            return;
        };
        if entry.id != self.id {
            return;
        }
        entry.walking = false;
        entry.finished = Some(Instant::now());
        match self.result.take() {
            Some(Ok(usage)) => entry.value = Some(usage),
            Some(Err(e)) => {
                tracing::debug!(path = %self.path.display(), error = %e, "disk usage walk failed");
                entry.value = None;
            }
            // Never ran: keep the old value.
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fill(path: &Path, len: usize) {
        fs::write(path, vec![0x5a; len]).unwrap();
    }

    #[test]
    fn measure_counts_files_dirs_and_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layer");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fill(&root.join("a/one"), 100 * 1024);
        fill(&root.join("a/b/two"), 10 * 1024);
        fs::write(root.join("empty"), b"").unwrap();
        let u = measure_dir(&root).unwrap();
        // layer, a, a/b, one, two, empty
        assert_eq!(u.inodes_used, 6);
        assert!(u.used_bytes >= 110 * 1024, "{u:?}");
        assert!(u.used_bytes < 1024 * 1024, "{u:?}");
    }

    #[test]
    fn measure_counts_hard_links_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layer");
        fs::create_dir_all(root.join("sub")).unwrap();
        fill(&root.join("data"), 256 * 1024);
        let before = measure_dir(&root).unwrap();
        fs::hard_link(root.join("data"), root.join("sub/link")).unwrap();
        let after = measure_dir(&root).unwrap();
        assert_eq!(after.inodes_used, before.inodes_used);
        assert_eq!(after.used_bytes, before.used_bytes);
    }

    #[test]
    fn measure_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fill(&outside.join("big"), 1024 * 1024);
        let root = tmp.path().join("layer");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(outside.join("big"), root.join("filelink")).unwrap();
        let u = measure_dir(&root).unwrap();
        // layer and the two links themselves.
        assert_eq!(u.inodes_used, 3);
        assert!(u.used_bytes < 1024 * 1024, "{u:?}");
        // A symlink as the top is measured as itself.
        let link = measure_dir(&root.join("dirlink")).unwrap();
        assert_eq!(link.inodes_used, 1);
    }

    #[test]
    fn measure_missing_dir_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let err = measure_dir(&tmp.path().join("nope")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    /// Polls `get` until it returns a value satisfying `ok`, for at most 5 s.
    fn wait_for(cache: &FsUsageCache, path: &Path, ok: impl Fn(&FsUsage) -> bool) -> FsUsage {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(u) = cache.get(path)
                && ok(&u)
            {
                return u;
            }
            assert!(Instant::now() < deadline, "no usage for {}", path.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn layer() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layer");
        fs::create_dir(&root).unwrap();
        fill(&root.join("f"), 64 * 1024);
        (tmp, root)
    }

    #[test]
    fn cache_without_runtime_fills_in_background() {
        let (_tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::from_secs(3600));
        assert_eq!(cache.get(&root), None);
        let u = wait_for(&cache, &root, |_| true);
        assert_eq!(u.inodes_used, 2);
        assert_eq!(u.used_bytes, measure_dir(&root).unwrap().used_bytes);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn cache_in_runtime_fills_in_background() {
        let (_tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::from_secs(3600));
        assert_eq!(cache.get(&root), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        let u = loop {
            if let Some(u) = cache.get(&root) {
                break u;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(u.inodes_used, 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn cache_in_current_thread_runtime() {
        let (_tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::from_secs(3600));
        assert_eq!(cache.get(&root), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if cache.get(&root).is_some() {
                break;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn cache_respects_min_interval() {
        let (_tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::from_secs(3600));
        let first = wait_for(&cache, &root, |_| true);
        fill(&root.join("g"), 64 * 1024);
        for _ in 0..20 {
            assert_eq!(cache.get(&root), Some(first));
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn cache_refreshes_stale_values() {
        let (_tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::ZERO);
        let first = wait_for(&cache, &root, |_| true);
        fill(&root.join("g"), 64 * 1024);
        // A walk may see the new file before its bytes: wait for both.
        let second = wait_for(&cache, &root, |u| {
            u.inodes_used == 3 && u.used_bytes > first.used_bytes
        });
        assert_eq!(second.inodes_used, 3);
    }

    #[test]
    fn bounded_walk_gives_up_on_big_trees() {
        let (_tmp, root) = layer();
        let whole = walk(&root, 2).unwrap().unwrap();
        assert_eq!(whole.inodes_used, 2);
        assert_eq!(whole.used_bytes, measure_dir(&root).unwrap().used_bytes);
        assert_eq!(walk(&root, 1).unwrap(), None);
        assert_eq!(walk(&root, 0).unwrap(), None);
    }

    #[test]
    fn get_or_measure_answers_small_trees_at_once() {
        let (_tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::from_secs(3600));
        let u = cache.get_or_measure(&root, 100).unwrap();
        assert_eq!(u.inodes_used, 2);
        // The value stays for plain gets, whichever walk recorded it.
        assert_eq!(cache.get(&root).map(|u| u.inodes_used), Some(2));
    }

    #[test]
    fn get_or_measure_leaves_big_trees_to_the_background() {
        let (_tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::from_secs(3600));
        assert_eq!(cache.get_or_measure(&root, 1), None);
        let u = wait_for(&cache, &root, |_| true);
        assert_eq!(u.inodes_used, 2);
        assert_eq!(cache.get_or_measure(&root, 1), Some(u));
    }

    #[test]
    fn cache_retain_and_missing_dir() {
        let (tmp, root) = layer();
        let cache = FsUsageCache::new(Duration::from_secs(3600));
        wait_for(&cache, &root, |_| true);
        cache.retain(|path| path != root);
        assert_eq!(cache.get(&root), None);
        wait_for(&cache, &root, |_| true);
        cache.retain(|_| false);
        assert_eq!(cache.get(&root), None);

        // A path that does not exist stays None, and is walked once per interval.
        let gone = tmp.path().join("gone");
        assert_eq!(cache.get(&gone), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let walking = cache.inner.lock().get(&gone).is_some_and(|e| e.walking);
            if !walking {
                break;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        fs::create_dir(&gone).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(cache.get(&gone), None);
    }
}
