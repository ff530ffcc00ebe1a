//! The Docker floor of a node case: what the same work costs through
//! Docker's API alone, with no CRI runtime and no kubelet, measured on the
//! same engine in the same run. N containers (one `sleep` each, no network)
//! are created and started 8 at a time, then execs of `true` are made on
//! them at the probes' rate (two per container every 10 s), each as any
//! Docker-based ExecSync must make it: create, start attached, read to
//! EOF, inspect for the exit code. The CPU of dockerd, Docker's containerd
//! and the container shims over the window is the least a Docker runtime's
//! node can spend on those probes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use futures_util::StreamExt;
use tokio::task::JoinSet;

use super::runtime::Engine;
use crate::{IMAGE, procs};

/// The label on the floor's containers (not a CRI runtime's).
const FLOOR_LABEL: &str = "dockershim-bench-node-floor";
/// Execs in flight at most: an overloaded engine skips ticks instead of
/// piling up work.
const MAX_IN_FLIGHT: usize = 256;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the floor measured.
pub struct Floor {
    /// Seconds to create and start the N containers.
    pub start: f64,
    /// CPU seconds per minute of dockerd + Docker's containerd, and of the
    /// container shims.
    pub engine_cpu: f64,
    pub shims_cpu: f64,
    pub calls: usize,
    pub failed: usize,
    pub skipped: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs the floor for `n` containers over `window`; the containers are
/// removed whatever happens.
pub async fn docker_floor(engine: &Engine, n: u64, window: Duration) -> Result<Floor> {
    let docker = crate::peer::docker().await?;
    let mut ids = Vec::new();
    let outcome = run(&docker, engine, n, window, &mut ids).await;
    for id in &ids {
        let removed = docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        if let Err(err) = removed {
            eprintln!("warning: cannot remove floor container {id}: {err}");
        }
    }
    outcome
}

async fn run(
    docker: &Docker,
    engine: &Engine,
    n: u64,
    window: Duration,
    ids: &mut Vec<String>,
) -> Result<Floor> {
    let started = Instant::now();
    let made: Vec<Result<String>> = futures_util::stream::iter((0..n).map(|i| make(docker, i)))
        .buffer_unordered(crate::CONCURRENCY)
        .collect()
        .await;
    for m in made {
        match m {
            Ok(id) => ids.push(id),
            Err(err) => return Err(err),
        }
    }
    let start = started.elapsed().as_secs_f64();
    // As the cases settle before their window.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let engine_pids = [engine.dockerd, engine.containerd];
    let shims = procs::shims_of(&engine.containerd_socket);
    let (e0, s0) = (procs::snapshot(&engine_pids), procs::snapshot(&shims));
    let window_start = Instant::now();
    // Two probes per container every 10 s.
    let interval = Duration::from_secs_f64(5.0 / n as f64);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running = JoinSet::new();
    let mut latencies = Vec::new();
    let (mut failed, mut skipped, mut next) = (0usize, 0usize, 0usize);
    let mut record =
        |joined: std::result::Result<(Duration, Result<()>), tokio::task::JoinError>| match joined
            .map_err(|e| anyhow!("{e}"))
            .and_then(|(t, r)| r.map(|()| t))
        {
            Ok(took) => latencies.push(took.as_secs_f64() * 1e3),
            Err(_) => failed += 1,
        };
    while window_start.elapsed() < window {
        ticks.tick().await;
        while let Some(joined) = running.try_join_next() {
            record(joined);
        }
        if running.len() >= MAX_IN_FLIGHT {
            skipped += 1;
            continue;
        }
        let id = ids[next % ids.len()].clone();
        next += 1;
        let docker = docker.clone();
        running.spawn(async move {
            let t = Instant::now();
            let r = tokio::time::timeout(CALL_TIMEOUT, crate::exec::docker_exec(docker, id))
                .await
                .unwrap_or_else(|_| Err(anyhow!("no answer within {CALL_TIMEOUT:?}")));
            (t.elapsed(), r)
        });
    }
    while let Some(joined) = running.join_next().await {
        record(joined);
    }
    let minutes = window_start.elapsed().as_secs_f64() / 60.0;
    let (e1, s1) = (
        procs::snapshot(&engine_pids),
        procs::snapshot(&procs::shims_of(&engine.containerd_socket)),
    );
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1]
        }
    };
    Ok(Floor {
        start,
        engine_cpu: procs::spent(&e0, &e1).as_secs_f64() / minutes,
        shims_cpu: procs::spent(&s0, &s1).as_secs_f64() / minutes,
        calls: latencies.len() + failed,
        failed,
        skipped,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
    })
}

/// One container, created and started; its ID.
async fn make(docker: &Docker, i: u64) -> Result<String> {
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_string()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "trap \"exit 0\" TERM; sleep 1000000 & wait".into(),
        ]),
        labels: Some(HashMap::from([(FLOOR_LABEL.to_string(), "1".to_string())])),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("dsb-floor-{i}")),
                ..Default::default()
            }),
            body,
        )
        .await
        .context("create a floor container")?
        .id;
    docker
        .start_container(&id, None)
        .await
        .context("start a floor container")?;
    Ok(id)
}
