//! The resident memory of a process under test: read from
//! `/proc/<pid>/status` and sampled in the background for its peak, so the
//! abuse tests can bound how much a hostile tenant makes the shim hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The resident set of process `pid`, in bytes.
pub fn vm_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

/// A process's resident set before, at its peak and after an abuse, in bytes.
pub struct RssFigures {
    pub before: u64,
    pub peak: u64,
    pub after: u64,
}

impl RssFigures {
    /// Fails the test if the peak grew `bound` bytes or more over `before`.
    pub fn assert_growth_under(&self, bound: u64, what: &str) {
        assert!(
            self.peak - self.before < bound,
            "{what}: the shim's RSS grew {} KiB, over {} KiB",
            (self.peak - self.before) / 1024,
            bound / 1024
        );
    }
}

/// Samples a process's RSS every 20 ms in the background, keeping the peak,
/// until finished (at most 10 minutes of samples).
pub struct RssWatch {
    pid: u32,
    before: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    pub fn start(pid: u32) -> Self {
        let before = vm_rss(pid);
        let peak = Arc::new(AtomicU64::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                for _ in 0..30_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    peak.fetch_max(vm_rss(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        RssWatch {
            pid,
            before,
            peak,
            stop,
            task,
        }
    }

    /// Stops sampling and prints the figures (for docs/performance.md, run
    /// with `--nocapture`).
    pub async fn finish(self, what: &str) -> RssFigures {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("RSS sampler");
        let after = vm_rss(self.pid);
        let peak = self.peak.load(Ordering::Relaxed).max(after);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "RSS {what}: before {:.1} MiB, peak {:.1} MiB (+{:.1}), after {:.1} MiB (+{:.1})",
            mib(self.before),
            mib(peak),
            mib(peak - self.before),
            mib(after),
            mib(after.saturating_sub(self.before)),
        );
        RssFigures {
            before: self.before,
            peak,
            after,
        }
    }
}
