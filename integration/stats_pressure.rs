//! Swap, I/O and pressure stall figures of the CRI stats calls: filled
//! exactly where the host's cgroups keep them, unset where they do not.
//!
//! The expectation is worked out here from the container's cgroup
//! directories under `/sys/fs/cgroup` (does the pressure file exist in the
//! container's own directory of the unified hierarchy, does the memory
//! cgroup account swap), not through the shim's mount discovery, so the
//! test fails both when a field the host has is missing and when a field
//! it lacks is made up.

use std::path::{Path, PathBuf};

use dockershim::cri::*;

use crate::support::*;

/// Memory the container puts in its tmpfs.
const FILL_MIB: u64 = 32;

/// `/proc/<pid>/cgroup`: (controllers, path) per line.
fn proc_cgroups(pid: i64) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers.to_string(), path.to_string()))
        })
        .collect()
}

/// The process's directory in the unified hierarchy, if it has one of its
/// own (not the root): `/sys/fs/cgroup/unified` on the hybrid layout,
/// `/sys/fs/cgroup` on v2, told apart by which one lists the process.
fn unified_dir(pid: i64) -> Option<PathBuf> {
    let path = proc_cgroups(pid)
        .into_iter()
        .find(|(c, _)| c.is_empty())
        .map(|(_, p)| p)?;
    if path == "/" {
        return None;
    }
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|root| PathBuf::from(format!("{root}{path}")))
        .find(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .is_ok_and(|procs| procs.lines().any(|l| l.trim() == pid.to_string()))
        })
}

/// The process's v1 memory cgroup directory, if the memory controller is
/// mounted as v1.
fn v1_memory_dir(pid: i64) -> Option<PathBuf> {
    let path = proc_cgroups(pid)
        .into_iter()
        .find(|(c, _)| c.split(',').any(|c| c == "memory"))
        .map(|(_, p)| p)?;
    let dir = PathBuf::from(format!("/sys/fs/cgroup/memory{path}"));
    dir.exists().then_some(dir)
}

fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `total=` of the `some` or `full` line of a pressure file, microseconds.
fn psi_total(file: &Path, kind: &str) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.starts_with(kind))?
        .split_ascii_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Checks a CRI pressure figure against its file read before (`before`, µs)
/// and after the call: the total, in nanoseconds, lies between them; the
/// averages are percentages.
fn assert_psi(what: &str, psi: &PsiStats, file: &Path, before: &[Option<u64>; 2]) {
    for (i, (kind, data)) in [("some", &psi.some), ("full", &psi.full)]
        .into_iter()
        .enumerate()
    {
        let after = psi_total(file, kind);
        let Some(data) = data else {
            assert_eq!(after, None, "{what} {kind}: the file has the line");
            continue;
        };
        let (lo, hi) = (before[i].unwrap(), after.unwrap());
        assert!(
            (lo * 1000..=hi * 1000).contains(&data.total),
            "{what} {kind} total {} ns is the file's, {lo}..={hi} µs",
            data.total
        );
        for avg in [data.avg10, data.avg60, data.avg300] {
            assert!((0.0..=100.0).contains(&avg), "{what} {kind} avg {avg}");
        }
    }
}

/// The totals of a pressure file, read before a stats call.
fn psi_before(file: &Path) -> [Option<u64>; 2] {
    [psi_total(file, "some"), psi_total(file, "full")]
}

/// What the host keeps for one cgroup, read from its files.
struct Expected {
    /// The directory holding its pressure files, if it has them.
    pressure_dir: Option<PathBuf>,
    /// (swap used, swap limit or none) if the cgroup accounts swap.
    swap: Option<(u64, Option<u64>)>,
}

fn expected_of(pid: i64) -> Expected {
    let unified = unified_dir(pid);
    let pressure_dir = unified
        .clone()
        .filter(|d| d.join("memory.pressure").exists());
    const UNLIMITED: u64 = 1 << 62;
    let swap = if let Some(mem) = v1_memory_dir(pid) {
        // Swap accounting shows as the memsw files.
        number(&mem.join("memory.memsw.usage_in_bytes")).map(|memsw| {
            let usage = number(&mem.join("memory.usage_in_bytes")).unwrap();
            let limit = number(&mem.join("memory.limit_in_bytes")).unwrap();
            let memsw_limit = number(&mem.join("memory.memsw.limit_in_bytes")).unwrap();
            let swap_limit =
                (limit < UNLIMITED && memsw_limit < UNLIMITED).then(|| memsw_limit - limit);
            (memsw.saturating_sub(usage), swap_limit)
        })
    } else {
        let dir = unified.unwrap();
        number(&dir.join("memory.swap.current"))
            .map(|used| (used, number(&dir.join("memory.swap.max"))))
    };
    Expected { pressure_dir, swap }
}

fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .unwrap()
        .lines()
        .count()
        > 1
}

/// Checks one container's stats against what its cgroup keeps; `before`
/// are the pressure totals read just before the call.
fn check_container(
    stats: &ContainerStats,
    expected: &Expected,
    before: &[[Option<u64>; 2]; 3],
    what: &str,
) {
    let memory = stats.memory.as_ref().unwrap();
    let usage = memory.usage_bytes.as_ref().unwrap().value;
    assert!(
        usage >= FILL_MIB << 20,
        "{what}: memory usage {usage} holds the {FILL_MIB} MiB in tmpfs"
    );
    let cpu = stats.cpu.as_ref().unwrap();
    match &expected.pressure_dir {
        Some(dir) => {
            assert_psi(
                &format!("{what} cpu"),
                cpu.psi.as_ref().expect("cpu psi"),
                &dir.join("cpu.pressure"),
                &before[0],
            );
            assert_psi(
                &format!("{what} memory"),
                memory.psi.as_ref().expect("memory psi"),
                &dir.join("memory.pressure"),
                &before[1],
            );
            let io = stats.io.as_ref().expect("io usage");
            assert!(io.timestamp > 0);
            assert_psi(
                &format!("{what} io"),
                io.psi.as_ref().expect("io psi"),
                &dir.join("io.pressure"),
                &before[2],
            );
        }
        None => {
            assert_eq!(cpu.psi, None, "{what}: no pressure file, no cpu psi");
            assert_eq!(memory.psi, None, "{what}: no pressure file, no memory psi");
            assert_eq!(stats.io, None, "{what}: no pressure file, no io");
        }
    }
    match expected.swap {
        Some((used, limit)) => {
            let swap = stats.swap.as_ref().expect("swap usage");
            let reported = swap.swap_usage_bytes.as_ref().unwrap().value;
            if host_has_swap() {
                assert!(
                    reported.abs_diff(used) < 4 << 20,
                    "{what}: swap {reported} is the cgroup's {used}"
                );
            } else {
                assert_eq!(reported, 0, "{what}: no swap device, none used");
            }
            assert_eq!(
                swap.swap_available_bytes.as_ref().map(|v| v.value),
                limit.map(|l| l.saturating_sub(reported)),
                "{what}: available swap is the limit minus the usage"
            );
        }
        None => assert_eq!(stats.swap, None, "{what}: no swap accounting, no swap"),
    }
}

fn pressure_files(dir: Option<&PathBuf>) -> [[Option<u64>; 2]; 3] {
    ["cpu.pressure", "memory.pressure", "io.pressure"]
        .map(|f| dir.map_or([None, None], |d| psi_before(&d.join(f))))
}

#[tokio::test]
async fn swap_io_and_pressure_are_filled_where_the_cgroups_keep_them() {
    let name = unique("psi");
    // A cgroup of the pod's own, as the kubelet gives every pod.
    let systemd = docker().await.info().await.unwrap().cgroup_driver
        == Some(bollard::models::SystemInfoCgroupDriverEnum::SYSTEMD);
    let parent_name = name.replace('-', "");
    // Dropped after `cleanup` has removed the containers.
    let _pod_cgroup = (!systemd).then(|| PodCgroup(parent_name.clone()));
    let shim = Shim::start().await;
    let mut rt = shim.runtime().await;
    let cleanup = Cleanup::new();
    let cgroup_parent = if systemd {
        format!("{parent_name}.slice")
    } else {
        format!("/{parent_name}")
    };
    let mut pod = pod_config(&cleanup, &name);
    pod.linux.as_mut().unwrap().cgroup_parent = cgroup_parent.clone();
    let pod_id = run_pod(&mut rt, &pod).await;
    let mut config = container_config(
        &cleanup,
        "fill",
        &format!(
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count={FILL_MIB} 2>/dev/null; \
             touch /tmp/filled; exec sleep 3600"
        ),
    );
    // Room for swap beyond memory, so the available swap is neither 0 nor
    // unlimited where the host accounts it.
    config.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 256 << 20,
            memory_swap_limit_in_bytes: 320 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut rt, &pod_id, &pod, config).await;
    let filled = eventually(std::time::Duration::from_secs(20), || {
        let mut rt = rt.clone();
        let id = id.clone();
        async move { exec(&mut rt, &id, &["test", "-e", "/tmp/filled"]).await.2 == 0 }
    })
    .await;
    assert!(filled, "the container filled its tmpfs");

    let pid = container_pid(&id).await;
    let expected = expected_of(pid);
    let before = pressure_files(expected.pressure_dir.as_ref());
    let stats = rt
        .container_stats(ContainerStatsRequest {
            container_id: id.clone(),
        })
        .await
        .expect("ContainerStats")
        .into_inner()
        .stats
        .unwrap();
    check_container(&stats, &expected, &before, "ContainerStats");
    eprintln!(
        "ContainerStats: pressure files in {:?}, swap {:?}; cpu psi {:?}; swap {:?}",
        expected.pressure_dir,
        expected.swap,
        stats.cpu.as_ref().and_then(|c| c.psi.as_ref()),
        stats.swap
    );

    let before = pressure_files(expected.pressure_dir.as_ref());
    let listed = rt
        .list_container_stats(ListContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                id: id.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("ListContainerStats")
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    check_container(&listed[0], &expected, &before, "ListContainerStats");

    // The pod's own figures come from its cgroup: the pause container's
    // parent directory.
    let pause_pid = container_pid(&pod_id).await;
    let pod_dir = unified_dir(pause_pid)
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .filter(|d| d.join("memory.pressure").exists());
    let before = pressure_files(pod_dir.as_ref());
    let listed = rt
        .list_pod_sandbox_stats(ListPodSandboxStatsRequest {
            filter: Some(PodSandboxStatsFilter {
                id: pod_id.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("ListPodSandboxStats")
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    let linux = listed[0].linux.as_ref().unwrap();
    let pod_cpu = linux.cpu.as_ref().unwrap();
    let pod_memory = linux.memory.as_ref().unwrap();
    assert!(pod_memory.usage_bytes.as_ref().unwrap().value >= FILL_MIB << 20);
    match &pod_dir {
        Some(dir) => {
            assert_psi(
                "pod cpu",
                pod_cpu.psi.as_ref().expect("pod cpu psi"),
                &dir.join("cpu.pressure"),
                &before[0],
            );
            assert_psi(
                "pod memory",
                pod_memory.psi.as_ref().expect("pod memory psi"),
                &dir.join("memory.pressure"),
                &before[1],
            );
            assert_psi(
                "pod io",
                linux
                    .io
                    .as_ref()
                    .and_then(|io| io.psi.as_ref())
                    .expect("pod io psi"),
                &dir.join("io.pressure"),
                &before[2],
            );
        }
        None => {
            assert_eq!(pod_cpu.psi, None);
            assert_eq!(pod_memory.psi, None);
            assert_eq!(linux.io, None);
        }
    }
    eprintln!(
        "pod cgroup {pod_dir:?}: cpu psi {:?}, io {:?}",
        pod_cpu.psi, linux.io
    );
    let before = pressure_files(expected.pressure_dir.as_ref());
    let in_pod = rt
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod_id.clone(),
        })
        .await
        .expect("PodSandboxStats")
        .into_inner()
        .stats
        .unwrap()
        .linux
        .unwrap()
        .containers;
    assert_eq!(in_pod.len(), 1);
    check_container(&in_pod[0], &expected, &before, "PodSandboxStats container");

    // The metrics carry the same readings.
    let metrics = rt
        .list_pod_sandbox_metrics(ListPodSandboxMetricsRequest {})
        .await
        .unwrap()
        .into_inner()
        .pod_metrics;
    let container = metrics
        .iter()
        .find(|m| m.pod_sandbox_id == pod_id)
        .and_then(|m| m.container_metrics.iter().find(|c| c.container_id == id))
        .expect("the container's metrics");
    let metric = |name: &str| {
        container
            .metrics
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.value.as_ref())
            .map(|v| v.value)
    };
    if expected.swap.is_some() && !host_has_swap() {
        assert_eq!(metric("container_memory_swap"), Some(0));
    }
    assert_eq!(
        metric("container_pressure_memory_waiting_seconds_total").is_some(),
        expected.pressure_dir.is_some()
    );

    stop_and_remove_pod(&mut rt, &pod_id).await;

    // A pod without a cgroup of its own shares Docker's parent with every
    // container: no pod pressure figures, though the pause container has
    // its own.
    let shared = pod_config(&cleanup, &unique("psi-shared"));
    let shared_id = run_pod(&mut rt, &shared).await;
    let pause_pid = container_pid(&shared_id).await;
    let linux = rt
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: shared_id.clone(),
        })
        .await
        .expect("PodSandboxStats")
        .into_inner()
        .stats
        .unwrap()
        .linux
        .unwrap();
    let cpu = linux.cpu.expect("the pause process's cpu");
    assert!(cpu.usage_core_nano_seconds.is_some());
    assert_eq!(
        (cpu.psi, linux.memory.unwrap().psi, linux.io),
        (None, None, None),
        "no pod cgroup, no pod pressure (pause's own files: {:?})",
        expected_of(pause_pid).pressure_dir
    );
    stop_and_remove_pod(&mut rt, &shared_id).await;
}

/// The pod's cgroupfs parent, which Docker creates and leaves behind:
/// removed (in every hierarchy) once its containers are gone.
struct PodCgroup(String);

impl Drop for PodCgroup {
    fn drop(&mut self) {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for hierarchy in hierarchies.flatten() {
            let _ = std::fs::remove_dir(hierarchy.path().join(&self.0));
        }
    }
}
