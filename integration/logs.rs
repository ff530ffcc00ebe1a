//! CRI log files: format, partial lines, early output, ReopenContainerLog
//! after a rename, and a shim killed and restarted while a container logs.

use std::path::PathBuf;
use std::time::Duration;

use dockershim::cri::*;
use dockershim::logs::crilog::{self, Stream, Tag};
use tonic::Code;

use crate::support::*;

struct Parsed {
    stream: Stream,
    tag: Tag,
    timestamp: chrono::DateTime<chrono::Utc>,
    content: Vec<u8>,
}

/// Every entry of a CRI log file, each checked to parse the way the
/// kubelet's parser reads it.
fn entries(path: &PathBuf) -> Vec<Parsed> {
    let data = std::fs::read(path).unwrap_or_default();
    data.split_inclusive(|b| *b == b'\n')
        .filter(|line| line.ends_with(b"\n"))
        .map(|line| {
            let e = crilog::parse_line(line).unwrap_or_else(|err| {
                panic!("bad line {:?}: {err}", String::from_utf8_lossy(line))
            });
            Parsed {
                stream: e.stream,
                tag: e.tag,
                timestamp: e.timestamp,
                content: e.content.to_vec(),
            }
        })
        .collect()
}

/// Full lines of one stream, with partial entries joined.
fn lines(entries: &[Parsed], stream: Stream) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for e in entries.iter().filter(|e| e.stream == stream) {
        current.extend_from_slice(&e.content);
        if e.tag == Tag::Full {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

struct Logging {
    _cleanup: Cleanup,
    shim: Shim,
    rt: dockershim::cri::v1::runtime_service_client::RuntimeServiceClient<
        tonic::transport::Channel,
    >,
    pod_id: String,
    pod: PodSandboxConfig,
    cleanup_labels: std::collections::HashMap<String, String>,
}

async fn logging_pod() -> Logging {
    logging_pod_with(&[]).await
}

async fn logging_pod_with(flags: &[&str]) -> Logging {
    let cleanup = Cleanup::new();
    let mut args = vec![
        "--pod-infra-container-image",
        UNPULLABLE_PAUSE,
        "--pod-infra-pull-timeout",
        "10",
    ];
    args.extend_from_slice(flags);
    let shim = Shim::start_with(&args).await;
    let mut rt = shim.runtime().await;
    let pod = pod_config(&cleanup, &unique("logs"));
    let pod_id = run_pod(&mut rt, &pod).await;
    let cleanup_labels = cleanup.labels();
    Logging {
        _cleanup: cleanup,
        shim,
        rt,
        pod_id,
        pod,
        cleanup_labels,
    }
}

impl Logging {
    async fn run(&mut self, name: &str, script: &str) -> (String, PathBuf) {
        let mut config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: TEST_IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}/0.log"),
            labels: self.cleanup_labels.clone(),
            ..Default::default()
        };
        config.linux = None;
        let id = start_container(&mut self.rt, &self.pod_id, &self.pod, config).await;
        (
            id,
            PathBuf::from(&self.pod.log_directory).join(format!("{name}/0.log")),
        )
    }
}

async fn wait_for(path: &PathBuf, what: &str, check: impl Fn(&[Parsed]) -> bool) {
    // Generous: these run beside the abuse tests' floods, and output that
    // ends without a newline reaches the file only once Docker ends the
    // exited container's log stream.
    let ok = eventually(Duration::from_secs(60), || async { check(&entries(path)) }).await;
    let data = std::fs::read(path).unwrap_or_default();
    let tail = &data[data.len().saturating_sub(300)..];
    assert!(
        ok,
        "{what}: {} bytes, ending {:?}",
        data.len(),
        String::from_utf8_lossy(tail)
    );
}

#[tokio::test]
async fn stdout_and_stderr_lines_are_tagged_in_order_with_timestamps() {
    let mut pod = logging_pod().await;
    let (_, path) = pod
        .run(
            "both",
            "for i in 1 2 3; do echo out$i; echo err$i >&2; done; sleep 1000",
        )
        .await;
    wait_for(&path, "six lines", |e| e.len() >= 6).await;
    let all = entries(&path);
    assert_eq!(
        lines(&all, Stream::Stdout),
        vec![b"out1".to_vec(), b"out2".to_vec(), b"out3".to_vec()]
    );
    assert_eq!(
        lines(&all, Stream::Stderr),
        vec![b"err1".to_vec(), b"err2".to_vec(), b"err3".to_vec()]
    );
    assert!(all.iter().all(|e| e.tag == Tag::Full));
    assert!(
        all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "timestamps go back"
    );
    // The raw format: `<RFC3339Nano> <stream> <tag> <content>`.
    let raw = std::fs::read_to_string(&path).unwrap();
    let first = raw.lines().next().unwrap();
    let fields: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(fields[0].ends_with('Z') && fields[0].len() == 30, "{first}");
    assert!(
        ["stdout", "stderr"].contains(&fields[1]) && fields[2] == "F",
        "{first}"
    );
}

#[tokio::test]
async fn long_lines_split_into_partial_entries_and_output_without_newline_is_kept() {
    let mut pod = logging_pod().await;
    let (_, long) = pod
        .run(
            "long",
            "head -c 1049576 /dev/zero | tr '\\0' 'a'; echo; echo after",
        )
        .await;
    wait_for(&long, "the long line and the next", |e| {
        lines(e, Stream::Stdout).len() >= 2
    })
    .await;
    let all = entries(&long);
    let joined = lines(&all, Stream::Stdout);
    assert_eq!(joined[0].len(), 1024 * 1024 + 1000);
    assert!(joined[0].iter().all(|b| *b == b'a'));
    assert_eq!(joined[1], b"after");
    assert!(
        all.iter().filter(|e| e.tag == Tag::Partial).count() >= 63,
        "long line not split"
    );
    assert!(all.iter().all(|e| e.content.len() <= 16 * 1024));

    let (_, tail) = pod.run("tail", "echo first; printf 'no-newline'").await;
    wait_for(&tail, "the unterminated output", |e| e.len() >= 2).await;
    let all = entries(&tail);
    let last = all.last().unwrap();
    assert_eq!(
        (last.tag, last.content.as_slice()),
        (Tag::Partial, &b"no-newline"[..])
    );
}

#[tokio::test]
async fn the_json_file_driver_keeps_long_lines_whole() {
    let mut pod = logging_pod_with(&["--docker-log-driver", "json-file"]).await;
    let (id, long) = pod
        .run(
            "jsonlong",
            "head -c 1048576 /dev/zero | tr '\\0' 'b'; echo; echo after",
        )
        .await;
    wait_for(&long, "the long line and the next", |e| {
        lines(e, Stream::Stdout).len() >= 2
    })
    .await;
    let joined = lines(&entries(&long), Stream::Stdout);
    assert_eq!(
        (joined[0].len(), joined[1].as_slice()),
        (1024 * 1024, &b"after"[..])
    );
    let inspected = docker()
        .await
        .inspect_container(
            &id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    assert_eq!(
        inspected
            .host_config
            .unwrap()
            .log_config
            .unwrap()
            .typ
            .as_deref(),
        Some("json-file")
    );
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_kept_with_the_default_local_driver() {
    let mut pod = logging_pod().await;
    let (id, binary) = pod.run("binary", "printf '\\377\\001\\033[1mx\\n'").await;
    wait_for(&binary, "binary output", |e| !e.is_empty()).await;
    assert_eq!(entries(&binary)[0].content, b"\xff\x01\x1b[1mx");
    let inspected = docker()
        .await
        .inspect_container(
            &id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    let log_config = inspected.host_config.unwrap().log_config.unwrap();
    assert_eq!(log_config.typ.as_deref(), Some("local"));
    assert_eq!(
        log_config.config.unwrap()["max-size"],
        "10m",
        "Docker's copy is bounded"
    );
}

#[tokio::test]
async fn output_of_a_container_that_exits_at_once_is_in_the_file() {
    let mut pod = logging_pod().await;
    let (_, path) = pod.run("quick", "echo quick; echo gone >&2").await;
    wait_for(&path, "both lines", |e| e.len() >= 2).await;
    let all = entries(&path);
    assert_eq!(lines(&all, Stream::Stdout), vec![b"quick".to_vec()]);
    assert_eq!(lines(&all, Stream::Stderr), vec![b"gone".to_vec()]);
}

/// Numbers of `lineN` entries across files, in file order.
fn numbers(paths: &[PathBuf]) -> Vec<u64> {
    paths
        .iter()
        .flat_map(|p| lines(&entries(p), Stream::Stdout))
        .map(|l| {
            String::from_utf8(l)
                .unwrap()
                .trim_start_matches("line")
                .parse()
                .unwrap()
        })
        .collect()
}

fn consecutive(numbers: &[u64]) -> bool {
    let breaks: Vec<_> = numbers.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    if !breaks.is_empty() {
        eprintln!("sequence breaks: {breaks:?}");
    }
    !numbers.is_empty() && breaks.is_empty() && numbers[0] == 1
}

const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.005; done";

#[tokio::test]
async fn reopen_after_a_rename_loses_and_doubles_nothing() {
    let mut pod = logging_pod().await;
    let (id, path) = pod.run("rotated", COUNTER).await;
    wait_for(&path, "some lines", |e| e.len() > 50).await;
    let rotated = path.with_extension("log.20261126-000000");
    std::fs::rename(&path, &rotated).unwrap();
    pod.rt
        .reopen_container_log(ReopenContainerLogRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    wait_for(&path, "lines in the new file", |e| e.len() > 50).await;
    pod.rt
        .stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = numbers(&[rotated.clone(), path.clone()]);
    assert!(
        consecutive(&n),
        "lines lost or doubled across the rotation: {} lines",
        n.len()
    );
    assert!(!numbers(&[rotated]).is_empty() && !numbers(&[path]).is_empty());

    let err = pod
        .rt
        .reopen_container_log(ReopenContainerLogRequest { container_id: id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}

#[tokio::test]
async fn a_shim_killed_while_a_container_logs_resumes_without_gaps_or_doubles() {
    let mut pod = logging_pod().await;
    let (id, path) = pod.run("counter", COUNTER).await;
    wait_for(&path, "some lines", |e| e.len() > 50).await;
    pod.shim.kill(); // SIGKILL: nothing flushed on the way out
    tokio::time::sleep(Duration::from_millis(700)).await; // the container logs on meanwhile
    pod.shim.restart().await;
    let mut rt = pod.shim.runtime().await;
    let before = numbers(std::slice::from_ref(&path)).len();
    wait_for(&path, "lines after the restart", |e| e.len() > before + 100).await;
    rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = numbers(&[path]);
    assert!(
        consecutive(&n),
        "lines lost or doubled across the restart ({} lines)",
        n.len()
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.pod_id.clone(),
    })
    .await
    .unwrap();
}

/// The kubelet links a container's log into /var/log/containers only if the
/// file exists when StartContainer answers, and `kubectl logs` of a finished
/// Job reads the file as soon as the container is reported exited: both must
/// hold for every container, however many start and exit at once.
#[tokio::test]
async fn log_file_exists_at_start_and_is_complete_when_the_exit_is_reported() {
    let pod = logging_pod().await;
    const CONTAINERS: usize = 50;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONTAINERS {
        let mut rt = pod.rt.clone();
        let mut config = container_config(&pod._cleanup, &format!("quick{i}"), "");
        config.command = vec!["echo".into(), format!("line from container {i}")];
        config.labels = pod.cleanup_labels.clone();
        let (pod_id, sandbox) = (pod.pod_id.clone(), pod.pod.clone());
        tasks.spawn(async move {
            let path = PathBuf::from(&sandbox.log_directory).join(&config.log_path);
            let id = rt
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod_id,
                    config: Some(config),
                    sandbox_config: Some(sandbox),
                })
                .await
                .expect("CreateContainer")
                .into_inner()
                .container_id;
            rt.start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .expect("StartContainer");
            assert!(
                path.exists(),
                "container {i}: no log file when StartContainer answered"
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let status = container_status(&mut rt, &id).await;
                if status.state == ContainerState::ContainerExited as i32 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "container {i} not exited after 60 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let logged = lines(&entries(&path), Stream::Stdout);
            assert_eq!(
                logged,
                vec![format!("line from container {i}").into_bytes()],
                "container {i}: log at the first exited status"
            );
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("container task");
    }
}
