//! Reading other processes' costs from `/proc`: CPU time (their own and
//! that of the children they reaped), resident memory, open descriptors, and
//! finding the daemons a comparison has to charge (the process listening on
//! a Unix socket, the container shims of a containerd).
//!
//! The peer benchmarks charge each runtime for every process on its path:
//! the shim, dockerd, Docker's containerd and its shims on one side, the
//! benchmark's containerd and its shims on the other. A runtime's work is
//! spread over processes that come and go (`runc` runs as a child of a shim
//! for every exec), so CPU is read with the children's reaped time included.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

/// Fields of `/proc/<pid>/stat` after the command name (which may hold
/// spaces and parentheses): index 0 is the state, 1 the parent's PID.
fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    Ok(stat
        .rsplit_once(')')
        .context("odd stat")?
        .1
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

fn ticks(fields: &[String], index: usize) -> Result<u64> {
    fields
        .get(index)
        .context("short stat")?
        .parse()
        .context("odd stat field")
}

/// User plus system CPU time of a process and of the children it has
/// reaped (utime, stime, cutime, cstime).
pub fn cpu_with_children(pid: u32) -> Result<Duration> {
    let fields = stat_fields(pid)?;
    let total =
        ticks(&fields, 11)? + ticks(&fields, 12)? + ticks(&fields, 13)? + ticks(&fields, 14)?;
    let hz = rustix::param::clock_ticks_per_second();
    Ok(Duration::from_secs_f64(total as f64 / hz as f64))
}

/// How long the threads of a process have been runnable but waiting for a
/// core (the second field of each thread's `schedstat`), summed over the
/// threads it has now. A thread that ends takes its share with it, so take
/// differences with `saturating_sub`.
pub fn run_queue_wait(pid: u32) -> Result<Duration> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(entry?.path().join("schedstat")) else {
            continue;
        };
        total += text
            .split_whitespace()
            .nth(1)
            .context("short schedstat")?
            .parse::<u64>()
            .context("odd schedstat")?;
    }
    Ok(Duration::from_nanos(total))
}

/// The parent of a process.
pub fn parent(pid: u32) -> Result<u32> {
    let fields = stat_fields(pid)?;
    fields
        .get(1)
        .context("short stat")?
        .parse()
        .context("odd ppid")
}

/// The arguments a process was started with (empty for a kernel thread or a
/// process that is gone).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("odd VmRSS")?
        .parse()?)
}

/// How many file descriptors a process holds open.
pub fn fd_count(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("list /proc/{pid}/fd"))?
        .count())
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The process listening on a Unix socket path, found through the
/// socket's inode in `/proc/net/unix` and the descriptors that point at it.
pub fn listener_of(path: &Path) -> Result<u32> {
    let table = std::fs::read_to_string("/proc/net/unix")?;
    let wanted = path.display().to_string();
    // Columns: Num RefCount Protocol Flags Type St Inode Path; flags 00010000
    // is __SO_ACCEPTCON, a listening socket.
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() >= 8 && cols[7] == wanted && cols[3] == "00010000")
                .then(|| format!("socket:[{}]", cols[6]))
        })
        .collect();
    if inodes.is_empty() {
        anyhow::bail!("nothing listens on {wanted}");
    }
    for pid in all_pids() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Ok(pid);
            }
        }
    }
    anyhow::bail!("no process holds the socket listening on {wanted}")
}

/// The container shims (`containerd-shim-runc-v2`) serving the containerd
/// whose gRPC socket is `socket`: each is started with `-address <socket>`.
pub fn shims_of(socket: &Path) -> Vec<u32> {
    let socket = socket.display().to_string();
    all_pids()
        .into_iter()
        .filter(|&pid| {
            let args = cmdline(pid);
            args.first().is_some_and(|a| a.contains("containerd-shim"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "-address" && w[1] == socket)
        })
        .collect()
}

/// The `-address` a container shim was started with: the socket of the
/// containerd it serves.
pub fn shim_address(pid: u32) -> Option<String> {
    let args = cmdline(pid);
    args.windows(2)
        .find(|w| w[0] == "-address")
        .map(|w| w[1].clone())
}

/// CPU time of a set of processes at one moment.
pub type CpuSnapshot = HashMap<u32, Duration>;

/// Reads the CPU time of each process; processes already gone are left out.
pub fn snapshot(pids: &[u32]) -> CpuSnapshot {
    pids.iter()
        .filter_map(|&pid| Some((pid, cpu_with_children(pid).ok()?)))
        .collect()
}

/// The CPU the processes spent between two snapshots; a process that only
/// the later one has (a shim started meanwhile) counts from zero.
pub fn spent(before: &CpuSnapshot, after: &CpuSnapshot) -> Duration {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or_default()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(fd_count(me).unwrap() > 0);
        assert!(cpu_with_children(me).is_ok());
        assert_eq!(parent(me).unwrap(), std::os::unix::process::parent_id());
    }

    #[test]
    fn spent_counts_new_processes_from_zero() {
        let before = CpuSnapshot::from([(1, Duration::from_millis(10))]);
        let after = CpuSnapshot::from([
            (1, Duration::from_millis(15)),
            (2, Duration::from_millis(7)),
        ]);
        assert_eq!(spent(&before, &after), Duration::from_millis(12));
    }
}
