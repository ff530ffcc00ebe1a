//! The Docker floor of a node case: what the same work costs through
//! Docker's API alone, with no CRI runtime and no kubelet, measured on the
//! same engine in the same run. N pods' worth of containers are made all at
//! once, as a kubelet's pod workers make them: per pod a pause container
//! (no network: the CNI ADD is not Docker's work), then a `sleep` container
//! in its network and IPC namespaces, each created and started. Then execs
//! of `true` are made on the `sleep`s at the probes' rate (two per
//! container every 10 s), each as any
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
    /// Seconds to create and start the N pods' containers.
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

/// Runs the floor for `n` pods over `window`, with `pause` as the pods'
/// first container; every container is removed whatever happens.
pub async fn docker_floor(engine: &Engine, n: u64, pause: &str, window: Duration) -> Result<Floor> {
    let docker = crate::peer::docker().await?;
    let mut made = Vec::new();
    let outcome = run(&docker, engine, n, pause, window, &mut made).await;
    // Apps first: a pause container cannot go while one is in its
    // namespaces.
    for id in made.iter().rev() {
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

/// `made`: every container made, each pod's pause before its app.
async fn run(
    docker: &Docker,
    engine: &Engine,
    n: u64,
    pause: &str,
    window: Duration,
    made: &mut Vec<String>,
) -> Result<Floor> {
    let started = Instant::now();
    let pods: Vec<(Option<String>, Result<String>)> =
        futures_util::future::join_all((0..n).map(|i| make_pod(docker, pause, i))).await;
    let mut ids = Vec::new();
    let mut first_error = None;
    for (pause_id, app) in pods {
        made.extend(pause_id);
        match app {
            Ok(id) => {
                made.push(id.clone());
                ids.push(id);
            }
            Err(err) => first_error = first_error.or(Some(err)),
        }
    }
    if let Some(err) = first_error {
        return Err(err);
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

/// Pod `i`: its pause container, then the app in the pause's network and
/// IPC namespaces. The pause's ID, should it have been created, and the
/// app's.
async fn make_pod(docker: &Docker, pause: &str, i: u64) -> (Option<String>, Result<String>) {
    let pause_id = match create(docker, format!("dsb-floor-{i}-pause"), pause, None, None).await {
        Ok(id) => id,
        Err(err) => return (None, Err(err)),
    };
    if let Err(err) = start(docker, &pause_id).await {
        return (Some(pause_id), Err(err));
    }
    let cmd = vec![
        "sh".into(),
        "-c".into(),
        "trap \"exit 0\" TERM; sleep 1000000 & wait".into(),
    ];
    let app = async {
        let id = create(
            docker,
            format!("dsb-floor-{i}"),
            IMAGE,
            Some(cmd),
            Some(&pause_id),
        )
        .await?;
        start(docker, &id).await?;
        Ok(id)
    }
    .await;
    (Some(pause_id), app)
}

/// Creates a container of the floor; `pod`: the pause container whose
/// network and IPC namespaces it joins (none of its own otherwise).
async fn create(
    docker: &Docker,
    name: String,
    image: &str,
    cmd: Option<Vec<String>>,
    pod: Option<&str>,
) -> Result<String> {
    let (network_mode, ipc_mode) = match pod {
        Some(pause) => (
            format!("container:{pause}"),
            Some(format!("container:{pause}")),
        ),
        None => ("none".to_string(), Some("shareable".to_string())),
    };
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd,
        labels: Some(HashMap::from([(FLOOR_LABEL.to_string(), "1".to_string())])),
        host_config: Some(HostConfig {
            network_mode: Some(network_mode),
            ipc_mode,
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name),
                ..Default::default()
            }),
            body,
        )
        .await
        .context("create a floor container")?
        .id)
}

async fn start(docker: &Docker, id: &str) -> Result<()> {
    docker
        .start_container(id, None)
        .await
        .context("start a floor container")
}
