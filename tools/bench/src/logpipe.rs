//! `dockershim-bench logpipe`: the CPU each runtime spends per MiB of
//! container output that ends up in CRI log files, with every file checked
//! line by line.
//!
//! N containers in one pod each print M MiB of numbered lines of a fixed
//! size (`seq -w | sed`), all at once: they wait for a file to appear in a
//! directory mounted into them, so the measurement starts after every
//! container runs and covers only the output. The CPU is read from
//! `/proc` when the last line is in every file:
//! - the shim: its own CPU, and that of the Docker processes below it
//!   (dockerd, the engine's containerd, the containers' shims);
//! - the raw Docker floor: the same containers made by the benchmark with
//!   the same log driver and options as the shim's, nobody reading the
//!   logs: what Docker alone spends storing the output;
//! - containerd's CRI: containerd and the shims of its pod.
//!
//! Each CRI log file is then read back: every line present, in order,
//! none lost, none altered.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{CreateContainerOptions, LogsOptions};
use dockershim::api::runtime_service_client::RuntimeServiceClient;
use dockershim::image::pause::PauseImage;
use futures_util::StreamExt;
use tonic::transport::Channel;

use crate::containerd::Containerd;
use crate::peer::{self, DockerSide, PodNetwork, Spec, Table};
use crate::{IMAGE, LABEL, Shim, ms, procs};

/// How long the output of one run may take to land in the files.
const FILL_LIMIT: Duration = Duration::from_secs(600);

/// The output one run asks of each container.
#[derive(Clone)]
struct Output {
    /// Bytes per line, newline included.
    line: usize,
    lines: usize,
    /// Digits of the sequence number at the start of each line.
    width: usize,
    /// What follows the number and a space.
    pad: String,
}

impl Output {
    fn new(mib: u64, line: u64) -> Result<Self> {
        let line = line as usize;
        if !(16..=16 * 1024).contains(&line) {
            bail!("--line takes sizes from 16 to 16384 bytes");
        }
        let lines = (mib as usize * 1024 * 1024) / line;
        if lines == 0 {
            bail!("--mib {mib} holds no line of {line} bytes");
        }
        let width = lines.to_string().len();
        let pad = "x".repeat(line - 2 - width);
        Ok(Self {
            line,
            lines,
            width,
            pad,
        })
    }

    fn mib(&self) -> f64 {
        (self.lines * self.line) as f64 / 1048576.0
    }

    fn text(&self, seq: usize) -> String {
        format!("{seq:0width$} {}", self.pad, width = self.width)
    }

    /// The container's command: wait for the start signal, print, then stay
    /// alive (an exit would add its own work to the figures).
    fn command(&self) -> Vec<String> {
        let script = format!(
            "while [ ! -e /go/go ]; do sleep 0.05; done; seq -w 1 {} | sed 's/$/ {}/'; exec sleep 3600",
            self.lines, self.pad
        );
        vec!["sh".into(), "-c".into(), script]
    }
}

/// What reading a CRI log file back found.
#[derive(Default, Debug, Clone, Copy)]
struct Check {
    lines: usize,
    lost: usize,
    out_of_order: usize,
    altered: usize,
}

impl Check {
    fn add(&mut self, other: Check) {
        self.lines += other.lines;
        self.lost += other.lost;
        self.out_of_order += other.out_of_order;
        self.altered += other.altered;
    }

    fn clean(&self) -> bool {
        self.lost == 0 && self.out_of_order == 0 && self.altered == 0
    }
}

/// Reads a CRI log file (`<time> <stream> <P|F> <text>` lines, partial
/// entries joined) and checks it holds exactly lines 1..=N of `output`.
fn check_file(path: &Path, output: &Output) -> Result<Check> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut check = Check::default();
    let mut expected = 1usize;
    let mut partial = String::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        let mut fields = line.splitn(4, ' ');
        let (_, stream, tag, text) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next().unwrap_or(""),
        );
        if stream != Some("stdout") {
            check.altered += 1;
            continue;
        }
        partial.push_str(text);
        if tag == Some("P") {
            continue;
        }
        let whole = std::mem::take(&mut partial);
        let seq = whole
            .get(..output.width)
            .and_then(|n| n.parse::<usize>().ok());
        match seq {
            Some(seq) if whole == output.text(seq) => {
                check.lines += 1;
                if seq == expected {
                    expected += 1;
                } else if seq > expected {
                    check.lost += seq - expected;
                    expected = seq + 1;
                } else {
                    check.out_of_order += 1;
                }
            }
            _ => check.altered += 1,
        }
    }
    check.lost += (output.lines + 1).saturating_sub(expected);
    Ok(check)
}

/// Whether the end of a file holds the last line.
fn has_last(path: &Path, output: &Output) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut tail = Vec::new();
    let last = format!(" {}\n", output.text(output.lines));
    file.seek(SeekFrom::Start(
        len.saturating_sub(2 * output.line as u64 + 256),
    ))
    .is_ok()
        && file.read_to_end(&mut tail).is_ok()
        && String::from_utf8_lossy(&tail).ends_with(&last)
}

/// One run's figures: CPU per MiB of the runtime's own processes and of
/// those below it, the wall time, and the files' check.
struct Figures {
    own: f64,
    below: f64,
    took: Duration,
    check: Option<(usize, Check)>,
}

pub async fn logpipe(containers: u64, mib: u64, line_sizes: &[u64]) -> Result<()> {
    if containers == 0 || mib == 0 || line_sizes.is_empty() {
        bail!("--containers, --mib and --line must be above 0");
    }
    let outputs = line_sizes
        .iter()
        .map(|&l| Output::new(mib, l))
        .collect::<Result<Vec<_>>>()?;
    crate::cleanup();
    let mut table = Table::default();
    let outcome = tokio::select! {
        r = run(containers as usize, &outputs, &mut table) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    crate::cleanup();
    table.print("logpipe");
    outcome
}

async fn run(containers: usize, outputs: &[Output], table: &mut Table) -> Result<()> {
    let docker = peer::docker().await?;
    let work = tempfile::tempdir()?;
    println!(
        "== logpipe: {containers} containers in one pod, output sizes {:?} MiB each, line sizes {:?}",
        outputs
            .iter()
            .map(|o| format!("{:.2}", o.mib()))
            .collect::<Vec<_>>(),
        outputs.iter().map(|o| o.line).collect::<Vec<_>>()
    );

    // The shim; it also tells which log driver and options its containers
    // get, for the raw floor.
    let mut shim_figures = Vec::new();
    let mut log_config = None;
    {
        let shim = Shim::start().await?;
        let rt = shim.client().await?;
        let result = async {
            for (k, output) in outputs.iter().enumerate() {
                let dir = work.path().join(format!("shim{k}"));
                let (pod, go) = start_pod(&rt, &dir, containers, output).await?;
                let side = DockerSide::find(&docker, &pod.containers).await?;
                if log_config.is_none() {
                    log_config = docker
                        .inspect_container(&pod.containers[0], None)
                        .await?
                        .host_config
                        .and_then(|h| h.log_config);
                }
                let pid = shim.child.id();
                let own = procs::cpu_with_children(pid)?;
                let below = procs::snapshot(&side.pids());
                let took = go_and_wait(&go, &pod.logs, output).await?;
                let own = procs::cpu_with_children(pid)? - own;
                let below = procs::spent(&below, &procs::snapshot(&side.pids()));
                let check = check_all(&pod.logs, output)?;
                let total = output.mib() * containers as f64;
                shim_figures.push(Figures {
                    own: ms(own) / total,
                    below: ms(below) / total,
                    took,
                    check: Some(check),
                });
                peer::remove_all(&rt).await?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = peer::remove_all(&rt).await {
            println!("warning: removing the shim's pods: {err:#}");
        }
        drop(shim);
        crate::cleanup();
        result?;
    }

    // The raw floor: Docker storing the same output, nobody reading it.
    let mut raw_figures = Vec::new();
    {
        let result = async {
            for (k, output) in outputs.iter().enumerate() {
                let go = work.path().join(format!("raw{k}-go"));
                std::fs::create_dir_all(&go)?;
                let ids =
                    raw_containers(&docker, &go, containers, output, log_config.clone()).await?;
                let side = DockerSide::find(&docker, &ids).await?;
                let below = procs::snapshot(&side.pids());
                let started = Instant::now();
                std::fs::write(go.join("go"), b"")?;
                wait_docker_logs(&docker, &ids, output).await?;
                let took = started.elapsed();
                let below = procs::spent(&below, &procs::snapshot(&side.pids()));
                let total = output.mib() * containers as f64;
                raw_figures.push(Figures {
                    own: 0.0,
                    below: ms(below) / total,
                    took,
                    check: None,
                });
                crate::cleanup();
            }
            anyhow::Ok(())
        }
        .await;
        crate::cleanup();
        result?;
    }

    // containerd's CRI.
    let mut peer_figures = Vec::new();
    let version;
    {
        let mut containerd = Containerd::start(&[&PauseImage::builtin(), IMAGE]).await?;
        version = containerd.version.clone();
        let rt = containerd.client().await?;
        let result = async {
            for (k, output) in outputs.iter().enumerate() {
                let dir = work.path().join(format!("containerd{k}"));
                let (pod, go) = start_pod(&rt, &dir, containers, output).await?;
                let pid = containerd.pid();
                let shims = procs::shims_of(containerd.socket());
                let own = procs::cpu_with_children(pid)?;
                let below = procs::snapshot(&shims);
                let took = go_and_wait(&go, &pod.logs, output).await?;
                let own = procs::cpu_with_children(pid)? - own;
                let below = procs::spent(&below, &procs::snapshot(&shims));
                let check = check_all(&pod.logs, output)?;
                let total = output.mib() * containers as f64;
                peer_figures.push(Figures {
                    own: ms(own) / total,
                    below: ms(below) / total,
                    took,
                    check: Some(check),
                });
                peer::remove_all(&rt).await?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = peer::remove_all(&rt).await {
            println!("warning: removing containerd's pods: {err:#}");
        }
        containerd.stop();
        result?;
    }

    for (k, output) in outputs.iter().enumerate() {
        report(
            table,
            containers,
            output,
            &shim_figures[k],
            &raw_figures[k],
            &peer_figures[k],
            &version,
        );
    }
    Ok(())
}

/// One pod of `containers` printers waiting for `<dir>/go/go`.
async fn start_pod(
    rt: &RuntimeServiceClient<Channel>,
    dir: &Path,
    containers: usize,
    output: &Output,
) -> Result<(peer::Pod, PathBuf)> {
    let go = dir.join("go");
    std::fs::create_dir_all(&go)?;
    let command = output.command();
    let specs = (0..containers)
        .map(|i| Spec {
            name: format!("printer{i}"),
            command: command.clone(),
            go_dir: Some(go.clone()),
        })
        .collect();
    let pod = peer::make_pod(
        rt.clone(),
        dir.join("logs"),
        "logpipe".into(),
        PodNetwork::Pod,
        specs,
    )
    .await?;
    // Let the just-started containers and log writers settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((pod, go))
}

/// Gives the start signal and waits until every file ends with the last
/// line; returns the time that took.
async fn go_and_wait(go: &Path, logs: &[PathBuf], output: &Output) -> Result<Duration> {
    let started = Instant::now();
    std::fs::write(go.join("go"), b"")?;
    loop {
        if logs.iter().all(|p| has_last(p, output)) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > FILL_LIMIT {
            let done = logs.iter().filter(|p| has_last(p, output)).count();
            bail!(
                "after {FILL_LIMIT:?} only {done} of {} log files are complete",
                logs.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check_all(logs: &[PathBuf], output: &Output) -> Result<(usize, Check)> {
    let mut total = Check::default();
    let mut clean = 0;
    for path in logs {
        let check = check_file(path, output)?;
        if check.clean() && check.lines == output.lines {
            clean += 1;
        }
        total.add(check);
    }
    Ok((clean, total))
}

/// The same printers made directly in Docker, with the shim's log driver
/// and options, started; they too wait for the signal.
async fn raw_containers(
    docker: &Docker,
    go: &Path,
    containers: usize,
    output: &Output,
    log_config: Option<HostConfigLogConfig>,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for i in 0..containers {
        let id = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(format!(
                        "dockershim-bench-logpipe-{}-{i}",
                        std::process::id()
                    )),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(IMAGE.to_string()),
                    cmd: Some(output.command()),
                    labels: Some(HashMap::from([(LABEL.to_string(), "1".to_string())])),
                    host_config: Some(HostConfig {
                        binds: Some(vec![format!("{}:/go:ro", go.display())]),
                        network_mode: Some("none".into()),
                        log_config: log_config.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await?
            .id;
        docker.start_container(&id, None).await?;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(ids)
}

/// Waits until Docker's own log of each container ends with the last line
/// (asked with `tail=1`, twice a second: a small cost next to the output's).
async fn wait_docker_logs(docker: &Docker, ids: &[String], output: &Output) -> Result<()> {
    let last = output.text(output.lines);
    let started = Instant::now();
    let mut pending: Vec<&String> = ids.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let options = LogsOptions {
                stdout: true,
                tail: "1".into(),
                ..Default::default()
            };
            let mut text = Vec::new();
            let mut logs = docker.logs(id, Some(options));
            while let Some(chunk) = logs.next().await {
                text.extend_from_slice(&chunk?.into_bytes());
            }
            if String::from_utf8_lossy(&text).trim_end() != last {
                still.push(id);
            }
        }
        pending = still;
        if started.elapsed() > FILL_LIMIT {
            bail!("Docker did not store all output within {FILL_LIMIT:?}");
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

fn describe_check(check: &Option<(usize, Check)>, containers: usize) -> String {
    match check {
        Some((clean, c)) => format!(
            "files complete and in order: {clean}/{containers}; lines {}, lost {}, out of order {}, altered {}",
            c.lines, c.lost, c.out_of_order, c.altered
        ),
        None => String::new(),
    }
}

fn report(
    table: &mut Table,
    containers: usize,
    output: &Output,
    shim: &Figures,
    raw: &Figures,
    peer: &Figures,
    version: &str,
) {
    let total = output.mib() * containers as f64;
    let l = output.line;
    println!(
        "\n== logpipe, {l}-byte lines: {containers} containers x {:.2} MiB ({} lines each), {total:.1} MiB in all",
        output.mib(),
        output.lines
    );
    println!(
        "shim:            {:.1?}; shim CPU {:.2} ms/MiB; Docker below it (dockerd + containerd + shims) {:.2} ms/MiB",
        shim.took, shim.own, shim.below
    );
    println!(
        "                 {}",
        describe_check(&shim.check, containers)
    );
    println!(
        "raw Docker:      {:.1?}; dockerd + containerd + shims {:.2} ms/MiB (nobody reading the logs)",
        raw.took, raw.below
    );
    println!(
        "containerd {version}: {:.1?}; containerd CPU {:.2} ms/MiB; its shims {:.2} ms/MiB",
        peer.took, peer.own, peer.below
    );
    println!(
        "                 {}",
        describe_check(&peer.check, containers)
    );
    let whole = shim.own + shim.below;
    let peer_whole = peer.own + peer.below;
    let ratio = whole / peer_whole.max(1e-9);
    println!(
        "CPU per MiB, whole path: shim + Docker {whole:.2} ms, raw Docker {:.2} ms, containerd + shims {peer_whole:.2} ms",
        raw.below
    );
    println!(
        "ratio (shim + Docker) / containerd: {ratio:.2}; shim's own share over the raw floor: {:.2} ms/MiB",
        whole - raw.below
    );
    table.row(
        format!("logpipe {l} B: shim CPU per MiB"),
        format!("{:.2} ms", shim.own),
        "<= 20 ms",
        Some(shim.own <= 20.0),
    );
    table.row(
        format!("logpipe {l} B: shim+Docker / raw / containerd"),
        format!("{whole:.1} / {:.1} / {peer_whole:.1} ms", raw.below),
        "",
        None,
    );
    table.row(
        format!("logpipe {l} B: ratio (shim+Docker)/containerd"),
        format!("{ratio:.2}"),
        "<= 2.0",
        Some(ratio <= 2.0),
    );
    for (who, figures) in [("shim", shim), ("containerd", peer)] {
        if let Some((clean, c)) = &figures.check {
            table.row(
                format!("logpipe {l} B: {who} files complete, in order"),
                format!("{clean}/{containers} (lost {})", c.lost),
                &format!("{containers}/{containers}"),
                Some(*clean == containers && c.clean()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_asked_size() {
        let output = Output::new(1, 100).unwrap();
        assert_eq!(output.text(1).len() + 1, 100);
        assert_eq!(output.lines, 10485);
        let output = Output::new(10, 4096).unwrap();
        assert_eq!(output.text(7).len() + 1, 4096);
    }

    #[test]
    fn check_finds_lost_and_altered_lines() {
        let output = Output {
            line: 8,
            lines: 4,
            width: 1,
            pad: "xxxxx".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let entry =
            |tag: &str, text: &str| format!("2026-11-27T00:00:00.000000000Z stdout {tag} {text}\n");
        let content = [
            entry("F", "1 xxxxx"),
            entry("P", "3 xx"),
            entry("F", "xxx"),
            entry("F", "4 xxxxy"),
        ]
        .concat();
        std::fs::write(&path, content).unwrap();
        let check = check_file(&path, &output).unwrap();
        assert_eq!(check.lines, 2);
        assert_eq!(check.lost, 2, "2 skipped, 4 altered so missing at the end");
        assert_eq!(check.altered, 1);
        assert!(!check.clean());
    }
}
