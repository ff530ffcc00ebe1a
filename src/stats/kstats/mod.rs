//! Container and pod statistics read straight from the kernel.
//!
//! The kubelet's `ContainerStats`, `ListContainerStats`, `PodSandboxStats` and
//! `ListPodSandboxStats` calls are answered from cgroup files and `/proc`
//! instead of asking Docker for every container (Docker's stats endpoint is
//! slow: without one-shot mode it waits for a second sample per container).
//!
//! # Pieces
//!
//! - [`CgroupRoots`]: where the cgroup hierarchies are mounted, learned once
//!   from `/proc/self/mountinfo` (cgroup v1, v2, or the hybrid layout).
//! - [`ProcessCgroup`]: the cgroup directories of one process (from
//!   `/proc/<pid>/cgroup`) or of a known cgroup path; [`ProcessCgroup::read`]
//!   takes a [`CgroupSample`] (CPU, memory, swap, pids, OOM kills, pressure
//!   stalls), and [`ProcessCgroup::read_metrics`] the fuller
//!   [`CgroupMetrics`] the cAdvisor-named metrics need (CPU modes and
//!   throttling, memory details, limits, block I/O, huge pages).
//! - [`CpuRateTracker`]: turns cumulative CPU time into nano-cores between two
//!   samples, as the CRI's `usage_nano_cores` wants.
//! - [`net_dev_of_pid`] / [`parse_net_dev`]: interface counters of the network
//!   namespace a process lives in (the pod's sandbox).
//! - [`FsUsageCache`] / [`measure_dir`]: disk usage of a container's writable
//!   layer, walked in the background and cached so that stats calls never wait
//!   for a walk.
//! - [`overlay_upper_dir_of_pid`]: a running container's writable layer, from
//!   the overlay at the root of its mount namespace.
//! - [`count_fds`] / [`soft_open_files_limit`]: descriptors, sockets and the
//!   open-files limit of processes, from `/proc`.
//! - [`block_device_name`] / [`capacity_of`] / [`device_of`]: names of block
//!   devices, and the size and device of the filesystem holding a path.
//!
//! Everything here reads small pseudo-files synchronously; each read is a few
//! microseconds, so callers may do it inline on the async runtime. Only the
//! directory walk is slow, and it always runs off the runtime.

mod blkio;
mod cgroup;
mod devices;
mod fsusage;
mod netdev;
mod pressure;
mod procfs;
mod rootfs;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub use self::blkio::DeviceIo;
pub use self::cgroup::{
    CgroupMetrics, CgroupRoots, CgroupSample, CgroupSpec, CgroupVersion, CpuDetail, HugetlbUsage,
    MemoryDetail, ProcessCgroup, Swap,
};
pub use self::devices::{FsCapacity, SYS, block_device_name, capacity_of, device_of};
pub use self::fsusage::{FsUsage, FsUsageCache, measure_dir};
pub use self::netdev::{InterfaceCounters, net_dev_of_pid, parse_net_dev};
pub use self::pressure::{Pressure, Psi, PsiLine};
pub use self::procfs::{FdCounts, PROC, count_fds, soft_open_files_limit};
pub use self::rootfs::overlay_upper_dir_of_pid;

/// CPU usage in nano-cores (billionths of a CPU) from two cumulative samples.
///
/// Keeps, per key (a container or sandbox id), the sample that starts the
/// current window and the rate of the last full window. Every caller shares
/// the tracker (the kubelet's stats calls, its metrics scrapes, the
/// metrics endpoint), and two calls a millisecond apart would otherwise
/// measure a millisecond: an idle-looking zero for a container that works
/// in bursts. So a window is at least [`MIN_WINDOW`] long, and calls inside
/// it get the last full window's rate. Thread-safe; share it by reference
/// or in an `Arc`.
#[derive(Debug, Default)]
pub struct CpuRateTracker {
    last: Mutex<HashMap<String, CpuWindow>>,
}

/// The shortest span a rate is measured over.
pub const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    cpu_usage_ns: u64,
}

#[derive(Debug, Clone, Copy)]
struct CpuWindow {
    start: CpuSample,
    /// The rate over the last full window, if one has passed.
    rate: Option<u64>,
}

impl CpuRateTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `cpu_usage_ns` (cumulative CPU time) taken at `at` for `key` and
    /// returns the nano-cores used over the last full window.
    ///
    /// `None` until a first window of [`MIN_WINDOW`] has passed, and after
    /// the counter went backwards (the container was recreated under the
    /// same key). A sample inside the current window, or older than its
    /// start (two callers racing), leaves the window as it is.
    pub fn observe(&self, key: &str, at: Instant, cpu_usage_ns: u64) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let sample = CpuSample { at, cpu_usage_ns };
        let Some(window) = last.get_mut(key) else {
            last.insert(
                key.to_owned(),
                CpuWindow {
                    start: sample,
                    rate: None,
                },
            );
            return None;
        };
        if cpu_usage_ns < window.start.cpu_usage_ns {
            *window = CpuWindow {
                start: sample,
                rate: None,
            };
            return None;
        }
        let long_enough = at
            .checked_duration_since(window.start.at)
            .is_some_and(|elapsed| elapsed >= MIN_WINDOW);
        if long_enough {
            window.rate = nano_cores(window.start, sample);
            window.start = sample;
        }
        window.rate
    }

    /// Keeps only the keys for which `keep` returns true; for pruning after a
    /// listing, so keys of removed containers do not pile up.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.retain(|key, _| keep(key));
    }
}

/// Average nano-cores between two samples; `None` if the counter went
/// backwards or no time passed.
fn nano_cores(before: CpuSample, after: CpuSample) -> Option<u64> {
    let used = after.cpu_usage_ns.checked_sub(before.cpu_usage_ns)?;
    let elapsed = after.at.checked_duration_since(before.at)?.as_nanos();
    if elapsed == 0 {
        return None;
    }
    let rate = u128::from(used) * 1_000_000_000 / elapsed;
    Some(u64::try_from(rate).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cpu_rate_first_sample_is_none() {
        let t = CpuRateTracker::new();
        assert_eq!(t.observe("a", Instant::now(), 1_000), None);
    }

    #[test]
    fn cpu_rate_between_two_samples() {
        let t = CpuRateTracker::new();
        let t0 = Instant::now();
        assert_eq!(t.observe("a", t0, 5_000_000_000), None);
        // 0.5 s of CPU over 2 s of wall time: a quarter of a core.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(t.observe("a", t1, 5_500_000_000), Some(250_000_000));
        // Two full cores over the next second.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(t.observe("a", t2, 7_500_000_000), Some(2_000_000_000));
        // Other keys are independent.
        assert_eq!(t.observe("b", t2, 1), None);
    }

    #[test]
    fn cpu_rate_counter_reset_is_none_then_recovers() {
        let t = CpuRateTracker::new();
        let t0 = Instant::now();
        assert_eq!(t.observe("a", t0, 9_000_000_000), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.observe("a", t1, 100_000_000), None);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(t.observe("a", t2, 600_000_000), Some(500_000_000));
    }

    #[test]
    fn cpu_rate_calls_inside_a_window_get_the_last_full_windows_rate() {
        let t = CpuRateTracker::new();
        let t0 = Instant::now();
        assert_eq!(t.observe("a", t0, 0), None);
        // Inside the first window: nothing measured yet.
        let early = t0 + Duration::from_millis(300);
        assert_eq!(t.observe("a", early, 100_000_000), None);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(t.observe("a", t1, 1_000_000_000), Some(500_000_000));
        // A caller right after another (the kubelet's list calls back to
        // back, a scrape) gets the same rate, not that of a millisecond in
        // which the container happened to sleep.
        let right_after = t1 + Duration::from_millis(1);
        assert_eq!(
            t.observe("a", right_after, 1_000_000_000),
            Some(500_000_000)
        );
        // An older sample (a racing caller) changes nothing either.
        assert_eq!(t.observe("a", t0, 1_000_000_000), Some(500_000_000));
        // The next window starts at t1: 1 s of CPU over 1 s.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(t.observe("a", t2, 2_000_000_000), Some(1_000_000_000));
    }

    #[test]
    fn cpu_rate_retain() {
        let t = CpuRateTracker::new();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        t.observe("a", t0, 0);
        t.observe("b", t0, 0);
        t.retain(|k| k != "a");
        assert_eq!(t.observe("a", t1, 10), None);
        t.retain(|k| k != "b");
        assert_eq!(t.observe("b", t1, 10), None);
        assert_eq!(
            t.observe("a", t1 + Duration::from_secs(1), 1_000_000_010),
            Some(1_000_000_000)
        );
    }
}
