//! `dockershim-bench relist-peer [--pods 300]`: the kubelet's relist
//! (ListPodSandbox + ListContainers, no filter) with that many running pods,
//! on the shim and on a private containerd's CRI ([`crate::containerd`]),
//! one after the other in the same run. The shim's relists are timed twice:
//! alone, and each after a `GET /containers/json?all=1` on the same Docker,
//! as the kubelet sees them while another Docker client lists. The pods
//! share the node's network, so no bridge's subnet bounds their number.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use dockershim::api::{ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter};
use dockershim::image::pause::PauseImage;
use tonic::transport::Channel;

use crate::containerd::Containerd;
use crate::peer::{self, PodNetwork, Spec, Table};
use crate::{IMAGE, Shim, Summary, ms, procs};

/// Relists timed per runtime, within [`LIMIT`].
const ITERATIONS: usize = 200;
const LIMIT: Duration = Duration::from_secs(60);

/// One relist; how many sandboxes and containers it listed.
pub async fn relist(rt: &mut RuntimeServiceClient<Channel>) -> Result<(usize, usize)> {
    let sandboxes = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await?
        .into_inner()
        .items
        .len();
    let containers = rt
        .list_containers(ListContainersRequest::default())
        .await?
        .into_inner()
        .containers
        .len();
    Ok((sandboxes, containers))
}

/// What one runtime gave: the relist times (alone, and interleaved with
/// Docker's list when one was asked for), how long its threads waited for
/// a core during each, its CPU per relist and what it listed.
struct Figures {
    times: Vec<Duration>,
    waits: Vec<Waits>,
    interleaved: Vec<Duration>,
    interleaved_waits: Vec<Waits>,
    interleaved_cpu: Duration,
    /// ListPodSandbox calls whose filter matches no pod: the round trip
    /// and scheduling noise every call pays, with nothing to encode.
    empty: Vec<Duration>,
    cpu: Duration,
    seen: (usize, usize),
}

/// Makes the pods, times the relists (reading `pid`'s CPU meanwhile), then,
/// with `docker`, the relists again, each after one Docker list.
async fn measure(
    rt: &RuntimeServiceClient<Channel>,
    pods: usize,
    pid: u32,
    docker: Option<&Docker>,
) -> Result<Figures> {
    let logs = tempfile::tempdir()?;
    let started = Instant::now();
    peer::make_pods(rt, logs.path(), pods, 1, PodNetwork::Node, |_| {
        Spec::new("sleeper", &["sleep", "3600"])
    })
    .await?;
    println!("made {pods} pods in {:.1?}", started.elapsed());
    let mut rt = rt.clone();
    for _ in 0..5 {
        relist(&mut rt).await?;
    }
    let cpu_before = procs::cpu_with_children(pid)?;
    let deadline = Instant::now() + LIMIT;
    let (mut times, mut waits) = (Vec::new(), Vec::new());
    let mut seen = (0, 0);
    while times.len() < ITERATIONS && Instant::now() < deadline {
        let (listed, took, waited) = timed_relist(&mut rt, pid).await?;
        seen = listed;
        times.push(took);
        waits.push(waited);
    }
    let cpu = (procs::cpu_with_children(pid)? - cpu_before) / (times.len().max(1) as u32);
    if seen.0 < pods || seen.1 < pods {
        bail!(
            "listed {} sandboxes and {} containers for {pods} pods",
            seen.0,
            seen.1
        );
    }
    let (mut interleaved, mut interleaved_waits) = (Vec::new(), Vec::new());
    let mut interleaved_cpu = Duration::ZERO;
    if let Some(docker) = docker {
        let all = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let cpu_before = procs::cpu_with_children(pid)?;
        let deadline = Instant::now() + LIMIT;
        while interleaved.len() < ITERATIONS && Instant::now() < deadline {
            docker.list_containers(Some(all.clone())).await?;
            let (_, took, waited) = timed_relist(&mut rt, pid).await?;
            interleaved.push(took);
            interleaved_waits.push(waited);
        }
        interleaved_cpu =
            (procs::cpu_with_children(pid)? - cpu_before) / (interleaved.len().max(1) as u32);
    }
    let nothing = ListPodSandboxRequest {
        filter: Some(PodSandboxFilter {
            label_selector: HashMap::from([("dockershim-bench/none".to_string(), "1".to_string())]),
            ..Default::default()
        }),
    };
    let mut empty = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while empty.len() < ITERATIONS && Instant::now() < deadline {
        let started = Instant::now();
        rt.list_pod_sandbox(nothing.clone()).await?;
        empty.push(started.elapsed());
    }
    Ok(Figures {
        times,
        waits,
        interleaved,
        interleaved_waits,
        interleaved_cpu,
        empty,
        cpu,
        seen,
    })
}

/// One relist: what it listed, how long it took, and how long the
/// runtime `pid` and this client waited for a core meanwhile.
async fn timed_relist(
    rt: &mut RuntimeServiceClient<Channel>,
    pid: u32,
) -> Result<((usize, usize), Duration, Waits)> {
    let before = Waits::now(pid)?;
    let started = Instant::now();
    let listed = relist(rt).await?;
    let took = started.elapsed();
    Ok((listed, took, Waits::now(pid)?.since(&before)))
}

/// How long the threads of the runtime and of this benchmark (the client,
/// which decodes the answers) have waited for a core, or did during one
/// relist.
#[derive(Clone, Copy, Default)]
struct Waits {
    runtime: Duration,
    client: Duration,
}

impl Waits {
    fn now(runtime: u32) -> Result<Self> {
        Ok(Self {
            runtime: procs::run_queue_wait(runtime)?,
            client: procs::run_queue_wait(std::process::id())?,
        })
    }

    fn since(&self, earlier: &Waits) -> Waits {
        Waits {
            runtime: self.runtime.saturating_sub(earlier.runtime),
            client: self.client.saturating_sub(earlier.client),
        }
    }
}

/// How long the runtime's threads and the client's waited for a core
/// during the relists, on average and during the slowest twentieth of
/// them: what tells a slow relist that worked longer from one that could
/// not run.
fn waiting(times: &[Duration], waits: &[Waits]) -> String {
    let mut by_time: Vec<(Duration, Waits)> =
        times.iter().copied().zip(waits.iter().copied()).collect();
    by_time.sort_by_key(|(took, _)| *took);
    let count = (by_time.len() / 20).max(1).min(by_time.len());
    let slowest = &by_time[by_time.len() - count..];
    format!(
        "waiting for a core per relist: runtime {:.3} ms, client {:.3} ms; the slowest {count} relists took {:.3} ms on average, of it waiting: runtime {:.3} ms, client {:.3} ms",
        mean_ms(waits.iter().map(|w| w.runtime)),
        mean_ms(waits.iter().map(|w| w.client)),
        mean_ms(slowest.iter().map(|(took, _)| *took)),
        mean_ms(slowest.iter().map(|(_, w)| w.runtime)),
        mean_ms(slowest.iter().map(|(_, w)| w.client)),
    )
}

/// The mean of some durations, in ms (0 for none).
fn mean_ms(durations: impl ExactSizeIterator<Item = Duration>) -> f64 {
    let n = durations.len().max(1);
    ms(durations.sum::<Duration>()) / n as f64
}

pub async fn relist_peer(pods: u64) -> Result<()> {
    if pods == 0 {
        bail!("--pods must be above 0");
    }
    crate::cleanup();
    let mut table = Table::default();
    let outcome = tokio::select! {
        r = run(pods as usize, &mut table) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    crate::cleanup();
    table.print("relist-peer");
    outcome
}

async fn run(pods: usize, table: &mut Table) -> Result<()> {
    println!("== relist-peer: {pods} running pods, {ITERATIONS} relists (at most {LIMIT:?}) each");
    let shim = {
        let shim = Shim::start().await?;
        let rt = shim.client().await?;
        let docker = peer::docker().await?;
        let result = measure(&rt, pods, shim.child.id(), Some(&docker)).await;
        match peer::remove_all(&rt).await {
            Ok(n) => println!("shim: removed {n} pods"),
            Err(err) => println!("warning: removing the shim's pods: {err:#}"),
        }
        drop(shim);
        crate::cleanup();
        result?
    };
    let (peer_figures, version) = {
        let mut containerd = Containerd::start(&[&PauseImage::builtin(), IMAGE]).await?;
        let rt = containerd.client().await?;
        let result = measure(&rt, pods, containerd.pid(), None).await;
        match peer::remove_all(&rt).await {
            Ok(n) => println!("containerd: removed {n} pods"),
            Err(err) => println!("warning: removing containerd's pods: {err:#}"),
        }
        let version = containerd.version.clone();
        containerd.stop();
        (result?, version)
    };

    let s = Summary::of(&shim.times);
    let c = Summary::of(&peer_figures.times);
    let line = |who: &str, f: &Figures, x: &Summary| {
        println!(
            "{who} ListPodSandbox+ListContainers ({} sandboxes, {} containers, {} relists): {x}; CPU {:.3} ms per relist",
            f.seen.0,
            f.seen.1,
            f.times.len(),
            ms(f.cpu)
        );
        println!(
            "{who} ListPodSandbox matching no pod ({} calls): {}",
            f.empty.len(),
            Summary::of(&f.empty)
        );
    };
    line("shim", &shim, &s);
    println!("  {}", waiting(&shim.times, &shim.waits));
    let si = Summary::of(&shim.interleaved);
    println!(
        "shim, each relist after one Docker list of all containers ({} relists): {si}; CPU {:.3} ms per relist",
        shim.interleaved.len(),
        ms(shim.interleaved_cpu)
    );
    println!("  {}", waiting(&shim.interleaved, &shim.interleaved_waits));
    line(&format!("containerd {version}"), &peer_figures, &c);
    println!("  {}", waiting(&peer_figures.times, &peer_figures.waits));
    let by_mean = ms(c.mean) / ms(s.mean).max(1e-9);
    println!("speed ratio containerd / shim: {by_mean:.1}x by mean");
    table.row(
        format!("relist {pods} pods: shim mean / p50 / p99"),
        s.columns(),
        "p99 < 5 ms",
        Some(s.p99 < Duration::from_millis(5)),
    );
    table.row(
        format!("relist {pods} pods after Docker lists: shim mean / p50 / p99"),
        si.columns(),
        "p99 < 5 ms",
        Some(si.p99 < Duration::from_millis(5)),
    );
    table.row(
        format!("relist {pods} pods: containerd mean / p50 / p99"),
        c.columns(),
        "",
        None,
    );
    table.row(
        format!("relist {pods} pods: ratio containerd/shim (mean)"),
        format!("{by_mean:.1}x"),
        "",
        None,
    );
    table.row(
        format!("relist {pods} pods: CPU per relist shim / containerd"),
        format!("{:.3} / {:.3} ms", ms(shim.cpu), ms(peer_figures.cpu)),
        "",
        None,
    );
    Ok(())
}
