//! `dockershim-bench exec`: the cost of `ExecSync`, as liveness and
//! readiness probes make it, against the raw Docker floor and containerd's
//! CRI in the same run.
//!
//! N running containers; `ExecSync` of `true` at R calls a second, spread
//! round-robin over them, for S seconds, open loop (a call is started on
//! each tick whether or not the previous ones have returned, as the
//! kubelet's probe workers do). The floor is Docker's own exec made by the
//! benchmark with bollard on the same containers at the same rate: create
//! the exec, start it attached, read to EOF, inspect it for the exit code,
//! which is the least any Docker-based ExecSync has to do. Shim and floor
//! alternate in two rounds so drift on the shared machine hits both. Then
//! the same containers are made in a private containerd
//! ([`crate::containerd`]) and the same calls go through its CRI.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use dockershim::api::ExecSyncRequest;
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use dockershim::image::pause::PauseImage;
use futures_util::StreamExt;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::containerd::Containerd;
use crate::peer::{self, DockerSide, PodNetwork, Spec, Table};
use crate::{IMAGE, Shim, Summary, ms, procs};

/// Calls in flight at once at most; a tick that finds this many still
/// running is skipped and counted, so an overloaded runtime cannot pile
/// up unbounded work.
const MAX_IN_FLIGHT: usize = 256;
/// Containers per pod, as in a pod with sidecars.
const PER_POD: usize = 10;
/// One call's limit.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The latencies of a paced run, and what went wrong.
#[derive(Default)]
struct Load {
    latencies: Vec<Duration>,
    failed: usize,
    skipped: usize,
    first_error: Option<String>,
}

impl Load {
    fn add(&mut self, other: Load) {
        self.latencies.extend(other.latencies);
        self.failed += other.failed;
        self.skipped += other.skipped;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn calls(&self) -> usize {
        self.latencies.len() + self.failed
    }

    fn describe(&self) -> String {
        let s = Summary::of(&self.latencies);
        let mut text = format!(
            "{} calls, {} failed, {} skipped; latency p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms",
            self.calls(),
            self.failed,
            self.skipped,
            ms(s.p50),
            ms(s.p99),
            ms(s.mean)
        );
        if let Some(err) = &self.first_error {
            text.push_str(&format!(" (first error: {err})"));
        }
        text
    }
}

/// Starts `call(target)` `rate` times a second for `duration`, targets in
/// turn, and times each call.
async fn paced<F, Fut>(rate: u64, duration: Duration, targets: &[String], call: F) -> Load
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let mut load = Load::default();
    let record = |load: &mut Load,
                  joined: Result<(Duration, Result<()>), tokio::task::JoinError>| {
        let outcome = joined
            .map_err(|e| anyhow!("{e}"))
            .and_then(|(took, r)| r.map(|()| took));
        match outcome {
            Ok(took) => load.latencies.push(took),
            Err(err) => {
                load.failed += 1;
                load.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    };
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running = JoinSet::new();
    let end = Instant::now() + duration;
    let mut next = 0usize;
    while Instant::now() < end {
        ticks.tick().await;
        while let Some(joined) = running.try_join_next() {
            record(&mut load, joined);
        }
        if running.len() >= MAX_IN_FLIGHT {
            load.skipped += 1;
            continue;
        }
        let target = targets[next % targets.len()].clone();
        next += 1;
        let call = call(target);
        running.spawn(async move {
            let started = Instant::now();
            let result = tokio::time::timeout(CALL_TIMEOUT, call)
                .await
                .unwrap_or_else(|_| Err(anyhow!("no answer within {CALL_TIMEOUT:?}")));
            (started.elapsed(), result)
        });
    }
    // Every call has its own timeout, so this ends within it.
    while let Some(joined) = running.join_next().await {
        record(&mut load, joined);
    }
    load
}

async fn exec_sync(mut rt: RuntimeServiceClient<Channel>, id: String) -> Result<()> {
    let reply = rt
        .exec_sync(ExecSyncRequest {
            container_id: id,
            cmd: vec!["true".into()],
            timeout: 10,
        })
        .await?
        .into_inner();
    if reply.exit_code != 0 {
        bail!("`true` exited with {}", reply.exit_code);
    }
    Ok(())
}

/// Docker's own exec of `true`: create, start attached, read to EOF,
/// inspect for the exit code.
pub(crate) async fn docker_exec(docker: Docker, id: String) -> Result<()> {
    let exec = docker
        .create_exec(
            &id,
            CreateExecOptions::<String> {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(vec!["true".into()]),
                ..Default::default()
            },
        )
        .await?
        .id;
    match docker.start_exec(&exec, None).await? {
        StartExecResults::Attached { mut output, .. } => {
            while let Some(chunk) = output.next().await {
                chunk?;
            }
        }
        StartExecResults::Detached => bail!("the exec started detached"),
    }
    let code = docker.inspect_exec(&exec).await?.exit_code;
    if code != Some(0) {
        bail!("`true` exited with {code:?}");
    }
    Ok(())
}

fn per_call(cpu: Duration, load: &Load) -> f64 {
    ms(cpu) / load.calls().max(1) as f64
}

/// What one runtime's run gave.
struct Figures {
    load: Load,
    /// CPU of the runtime's own process(es) per call, in ms; for the
    /// floor, this benchmark's own (its bollard client, and its pacing).
    cpu: f64,
    /// CPU of the processes below it (Docker's for the shim), per call.
    below: f64,
}

pub async fn exec(containers: u64, rate: u64, seconds: u64) -> Result<()> {
    if containers == 0 || rate == 0 || seconds == 0 {
        bail!("--containers, --rate and --seconds must be above 0");
    }
    crate::cleanup();
    let mut table = Table::default();
    let outcome = tokio::select! {
        r = run(containers as usize, rate, seconds, &mut table) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    crate::cleanup();
    table.print("exec");
    outcome
}

async fn run(containers: usize, rate: u64, seconds: u64, table: &mut Table) -> Result<()> {
    let pods = containers.div_ceil(PER_POD);
    let per_pod = containers.div_ceil(pods);
    let total = pods * per_pod;
    let docker = peer::docker().await?;
    println!(
        "== exec: {total} containers in {pods} pods, ExecSync `true` at {rate}/s for {seconds} s per runtime"
    );
    let logs = tempfile::tempdir()?;
    let spec = |i: usize| Spec::new(format!("sleeper{i}"), &["sleep", "3600"]);

    // The shim and the raw floor, on the same Docker containers.
    let (shim, floor, shim_mem) = {
        let shim = Shim::start().await?;
        let rt = shim.client().await?;
        let result = async {
            let started = Instant::now();
            let made =
                peer::make_pods(&rt, logs.path(), pods, per_pod, PodNetwork::Pod, spec).await?;
            let ids: Vec<String> = made.iter().flat_map(|p| p.containers.clone()).collect();
            println!(
                "shim: made {} pods in {:.1?}",
                made.len(),
                started.elapsed()
            );
            let side = DockerSide::find(&docker, &ids).await?;
            println!(
                "machine: {}",
                peer::machine(&docker, "(not started yet)").await
            );
            // Warm-up: connections, the shim's per-container state.
            for id in ids.iter().take(10) {
                exec_sync(rt.clone(), id.clone()).await?;
                docker_exec(docker.clone(), id.clone()).await?;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let pid = shim.child.id();
            let mem_before = (procs::rss_kib(pid)?, procs::fd_count(pid)?);
            let half = Duration::from_secs_f64(seconds as f64 / 2.0);
            let (mut shim_load, mut raw_load) = (Load::default(), Load::default());
            let (mut shim_cpu, mut shim_docker_cpu, mut raw_docker_cpu, mut raw_client_cpu) = (
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
            );
            for round in 0..2 {
                println!("round {}: shim, then raw Docker", round + 1);
                let own = procs::cpu_with_children(pid)?;
                let below = procs::snapshot(&side.pids());
                let rt = rt.clone();
                shim_load.add(paced(rate, half, &ids, |id| exec_sync(rt.clone(), id)).await);
                shim_cpu += procs::cpu_with_children(pid)? - own;
                shim_docker_cpu += procs::spent(&below, &procs::snapshot(&side.pids()));

                let below = procs::snapshot(&side.pids());
                let client = procs::cpu_with_children(std::process::id())?;
                raw_load.add(paced(rate, half, &ids, |id| docker_exec(docker.clone(), id)).await);
                raw_client_cpu += procs::cpu_with_children(std::process::id())? - client;
                raw_docker_cpu += procs::spent(&below, &procs::snapshot(&side.pids()));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mem_after = (procs::rss_kib(pid)?, procs::fd_count(pid)?);
            let shim = Figures {
                cpu: per_call(shim_cpu, &shim_load),
                below: per_call(shim_docker_cpu, &shim_load),
                load: shim_load,
            };
            let floor = Figures {
                cpu: per_call(raw_client_cpu, &raw_load),
                below: per_call(raw_docker_cpu, &raw_load),
                load: raw_load,
            };
            anyhow::Ok((shim, floor, (mem_before, mem_after)))
        }
        .await;
        match peer::remove_all(&rt).await {
            Ok(n) => println!("shim: removed {n} pods"),
            Err(err) => println!("warning: removing the shim's pods: {err:#}"),
        }
        drop(shim);
        crate::cleanup();
        result?
    };

    // containerd's CRI, the same pods and calls.
    let (peer_figures, version, peer_mem) = {
        let mut containerd = Containerd::start(&[&PauseImage::builtin(), IMAGE]).await?;
        let rt = containerd.client().await?;
        let result = async {
            let started = Instant::now();
            let made =
                peer::make_pods(&rt, logs.path(), pods, per_pod, PodNetwork::Pod, spec).await?;
            let ids: Vec<String> = made.iter().flat_map(|p| p.containers.clone()).collect();
            println!(
                "containerd {}: made {} pods in {:.1?}",
                containerd.version,
                made.len(),
                started.elapsed()
            );
            for id in ids.iter().take(10) {
                exec_sync(rt.clone(), id.clone()).await?;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let pid = containerd.pid();
            let mem_before = (procs::rss_kib(pid)?, procs::fd_count(pid)?);
            let own = procs::cpu_with_children(pid)?;
            let shims = procs::shims_of(containerd.socket());
            let below = procs::snapshot(&shims);
            let rt2 = rt.clone();
            let load = paced(rate, Duration::from_secs(seconds), &ids, |id| {
                exec_sync(rt2.clone(), id)
            })
            .await;
            let cpu = procs::cpu_with_children(pid)? - own;
            let shim_cpu = procs::spent(&below, &procs::snapshot(&shims));
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mem_after = (procs::rss_kib(pid)?, procs::fd_count(pid)?);
            anyhow::Ok((
                Figures {
                    cpu: per_call(cpu, &load),
                    below: per_call(shim_cpu, &load),
                    load,
                },
                (mem_before, mem_after),
            ))
        }
        .await;
        match peer::remove_all(&rt).await {
            Ok(n) => println!("containerd: removed {n} pods"),
            Err(err) => println!("warning: removing containerd's pods: {err:#}"),
        }
        let version = containerd.version.clone();
        containerd.stop();
        let (figures, mem) = result?;
        (figures, version, mem)
    };

    report(
        table,
        &shim,
        &floor,
        &peer_figures,
        shim_mem,
        peer_mem,
        &version,
    );
    Ok(())
}

type Mem = ((u64, usize), (u64, usize));

fn report(
    table: &mut Table,
    shim: &Figures,
    floor: &Figures,
    peer: &Figures,
    shim_mem: Mem,
    peer_mem: Mem,
    version: &str,
) {
    let s = Summary::of(&shim.load.latencies);
    let f = Summary::of(&floor.load.latencies);
    let c = Summary::of(&peer.load.latencies);
    println!("\nshim ExecSync:        {}", shim.load.describe());
    println!(
        "                      shim CPU {:.3} ms/call; Docker below it (dockerd + containerd + shims) {:.3} ms/call",
        shim.cpu, shim.below
    );
    println!("raw Docker exec:      {}", floor.load.describe());
    println!(
        "                      Docker (dockerd + containerd + shims) {:.3} ms/call; the client (this benchmark, bollard) {:.3} ms/call",
        floor.below, floor.cpu
    );
    println!("containerd {version} ExecSync: {}", peer.load.describe());
    println!(
        "                      containerd CPU {:.3} ms/call; its shims {:.3} ms/call",
        peer.cpu, peer.below
    );
    let ((rss0, fd0), (rss1, fd1)) = shim_mem;
    let ((crss0, cfd0), (crss1, cfd1)) = peer_mem;
    println!("shim memory: RSS {rss0} -> {rss1} KiB, fds {fd0} -> {fd1}");
    println!("containerd memory: RSS {crss0} -> {crss1} KiB, fds {cfd0} -> {cfd1}");
    let r50 = ms(s.p50) / ms(f.p50).max(1e-9);
    let r99 = ms(s.p99) / ms(f.p99).max(1e-9);
    let c50 = ms(s.p50) / ms(c.p50).max(1e-9);
    let c99 = ms(s.p99) / ms(c.p99).max(1e-9);
    let whole = shim.cpu + shim.below;
    let peer_whole = peer.cpu + peer.below;
    println!("ratio shim / raw Docker: p50 {r50:.3}, p99 {r99:.3}");
    println!("ratio shim / containerd: p50 {c50:.3}, p99 {c99:.3}");
    println!(
        "CPU per call, whole path: shim + Docker {whole:.3} ms, raw Docker {:.3} ms, containerd + shims {peer_whole:.3} ms",
        floor.below
    );

    let pair = |x: &Summary| format!("{:.2} / {:.2} ms", ms(x.p50), ms(x.p99));
    table.row("exec shim p50 / p99", pair(&s), "", None);
    table.row("exec raw Docker p50 / p99", pair(&f), "", None);
    table.row(
        format!("exec containerd {version} p50 / p99"),
        pair(&c),
        "",
        None,
    );
    table.row(
        "exec ratio shim/raw p50",
        format!("{r50:.3}"),
        "<= 1.05",
        Some(r50 <= 1.05),
    );
    table.row(
        "exec ratio shim/raw p99",
        format!("{r99:.3}"),
        "<= 1.05",
        Some(r99 <= 1.05),
    );
    table.row(
        "exec ratio shim/containerd p50 / p99",
        format!("{c50:.3} / {c99:.3}"),
        "",
        None,
    );
    table.row(
        "exec shim CPU per call",
        format!("{:.3} ms", shim.cpu),
        "<= 0.5 ms",
        Some(shim.cpu <= 0.5),
    );
    table.row(
        "exec client CPU per raw Docker exec (bollard)",
        format!("{:.3} ms", floor.cpu),
        "",
        None,
    );
    table.row(
        "exec CPU/call shim+Docker / raw / containerd",
        format!("{whole:.2} / {:.2} / {peer_whole:.2} ms", floor.below),
        "",
        None,
    );
    table.row(
        "exec shim RSS before -> after",
        format!("{rss0} -> {rss1} KiB"),
        "no growth (<= +1024 KiB)",
        Some(rss1 <= rss0 + 1024),
    );
    table.row(
        "exec shim fds before -> after",
        format!("{fd0} -> {fd1}"),
        "no growth",
        Some(fd1 <= fd0),
    );
    let failed = shim.load.failed + floor.load.failed + peer.load.failed;
    table.row(
        "exec failed calls (shim + raw + containerd)",
        format!("{failed}"),
        "0",
        Some(failed == 0),
    );
}
