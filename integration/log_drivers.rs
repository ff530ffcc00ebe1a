//! The operator's log driver kept: a daemon whose default driver ships
//! container logs to syslog keeps doing so under the shim, and the CRI log
//! file gets every line too (written from Docker's dual-logging cache),
//! across a rotation; a driver named by `--docker-log-driver` takes the
//! options of `--docker-log-opt`.
//!
//! The syslog server is the test's own, on 127.0.0.1 over TCP.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockershim::cri::*;
use dockershim::logs::crilog::{self, Stream, Tag};
use tokio::io::AsyncBufReadExt;

use crate::support::own_docker::{Bridge, OwnDocker};
use crate::support::*;

/// The messages a syslog server on 127.0.0.1 received, in order, from
/// RFC 5424 frames, one per line (Docker's syslog driver ends each frame
/// with a newline on plain TCP).
struct SyslogServer {
    port: u16,
    messages: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SyslogServer {
    async fn start() -> SyslogServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let received = messages.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let received = received.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(conn).lines();
                    while let Ok(Some(frame)) = lines.next_line().await {
                        // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
                        let message = frame.splitn(8, ' ').nth(7).unwrap_or_default();
                        received.lock().unwrap().push(message.to_string());
                    }
                });
            }
        });
        SyslogServer {
            port,
            messages,
            task,
        }
    }

    fn address(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for SyslogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The full stdout lines of CRI log files, in file order, each entry checked
/// to parse as the kubelet reads it.
fn cri_lines(paths: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for path in paths {
        let data = std::fs::read(path).unwrap_or_default();
        for line in data.split_inclusive(|b| *b == b'\n') {
            let entry = crilog::parse_line(line).unwrap_or_else(|err| {
                panic!("bad line {:?}: {err}", String::from_utf8_lossy(line))
            });
            if entry.stream != Stream::Stdout {
                continue;
            }
            current.extend_from_slice(entry.content);
            if entry.tag == Tag::Full {
                out.push(String::from_utf8(std::mem::take(&mut current)).unwrap());
            }
        }
    }
    out
}

/// Lines with spaces, tabs, brackets and text beyond ASCII, numbered.
fn expected(lines: usize) -> Vec<String> {
    (1..=lines)
        .map(|i| format!("line {i}\tfür <syslog> [and] {{the CRI}} file: ✓"))
        .collect()
}

/// A script printing `expected(lines)`, a few milliseconds apart.
fn printer(lines: usize) -> String {
    format!(
        "i=0; while [ $i -lt {lines} ]; do i=$((i+1)); \
         printf 'line %d\\tfür <syslog> [and] {{the CRI}} file: ✓\\n' $i; sleep 0.002; done"
    )
}

/// A pod on the host's network (a test daemon's bridge leads nowhere) with
/// one container running `script`; returns the container id and its CRI
/// log path.
async fn run_printer(shim: &Shim, cleanup: &Cleanup, script: &str) -> (Cri, String, PathBuf) {
    let mut rt = shim.runtime().await;
    let mut pod = pod_config(cleanup, &unique("logdrv"));
    use_host_network(&mut pod);
    let pod_id = run_pod(&mut rt, &pod).await;
    let id = start_container(
        &mut rt,
        &pod_id,
        &pod,
        container_config(cleanup, "printer", script),
    )
    .await;
    let path = PathBuf::from(&pod.log_directory).join("printer/0.log");
    (rt, id, path)
}

async fn exited(rt: &Cri, id: &str) -> bool {
    eventually(Duration::from_secs(120), || {
        let mut rt = rt.clone();
        async move {
            container_status(&mut rt, id).await.state == ContainerState::ContainerExited as i32
        }
    })
    .await
}

#[tokio::test]
async fn the_daemons_syslog_driver_and_the_cri_file_both_get_every_line_across_a_rotation() {
    docker().await;
    ensure_test_image();
    let syslog = SyslogServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let bridge = Bridge::create();
    let address = format!("syslog-address={}", syslog.address());
    let own = OwnDocker::start_with_test_image_and(
        &root,
        &bridge,
        &[
            "--log-driver",
            "syslog",
            "--log-opt",
            &address,
            "--log-opt",
            "syslog-format=rfc5424micro",
        ],
    );
    let shim = own.start_shim().await;
    let cleanup = Cleanup::new();
    const LINES: usize = 3000;
    let (mut rt, id, path) = run_printer(&shim, &cleanup, &printer(LINES)).await;

    // The kubelet's rotation, half-way: rename, then ReopenContainerLog.
    let rotated = path.with_extension("log.20261207-000000");
    let half = eventually(Duration::from_secs(60), || async {
        cri_lines(std::slice::from_ref(&path)).len() >= LINES / 2
    })
    .await;
    assert!(half, "half the lines in the CRI file: {}", shim.logs());
    std::fs::rename(&path, &rotated).unwrap();
    rt.reopen_container_log(ReopenContainerLogRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    assert!(exited(&rt, &id).await, "the printer did not exit");

    let inspected = own
        .cli()
        .args(["inspect", "--format", "{{.HostConfig.LogConfig.Type}}", &id])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspected.stdout).trim(),
        "syslog",
        "the container keeps the daemon's driver"
    );
    let want = expected(LINES);
    let files = [rotated.clone(), path.clone()];
    let in_files = cri_lines(&files);
    assert!(
        !cri_lines(&[rotated]).is_empty() && !cri_lines(&[path]).is_empty(),
        "both files have lines"
    );
    assert!(
        in_files == want,
        "CRI files: {} lines, first differing: {:?}",
        in_files.len(),
        in_files.iter().zip(&want).find(|(a, b)| a != b)
    );
    let shipped = eventually(Duration::from_secs(30), || async {
        syslog.messages().len() >= LINES
    })
    .await;
    let messages = syslog.messages();
    assert!(shipped, "syslog got {} of {LINES} lines", messages.len());
    assert!(
        messages == want,
        "syslog: {} lines, first differing: {:?}",
        messages.len(),
        messages.iter().zip(&want).find(|(a, b)| a != b)
    );
    drop(own);
}

#[tokio::test]
async fn a_driver_named_by_flag_takes_the_options_given_by_flag() {
    let syslog = SyslogServer::start().await;
    let address = format!("syslog-address={}", syslog.address());
    let shim = Shim::start_with(&[
        "--docker-log-driver",
        "syslog",
        "--docker-log-opt",
        &address,
        "--docker-log-opt",
        "syslog-format=rfc5424",
        "--docker-log-opt",
        "tag=dockershim-test",
    ])
    .await;
    let cleanup = Cleanup::new();
    let (rt, id, path) = run_printer(&shim, &cleanup, &printer(50)).await;
    assert!(exited(&rt, &id).await, "the printer did not exit");

    let inspected = docker().await.inspect_container(&id, None).await.unwrap();
    let log_config = inspected.host_config.unwrap().log_config.unwrap();
    assert_eq!(log_config.typ.as_deref(), Some("syslog"));
    let options = log_config.config.unwrap_or_default();
    assert_eq!(options.get("syslog-address"), Some(&syslog.address()));
    assert_eq!(
        options.get("tag").map(String::as_str),
        Some("dockershim-test")
    );
    assert!(!options.contains_key("max-size"), "{options:?}");

    let want = expected(50);
    let complete = eventually(Duration::from_secs(30), || async {
        syslog.messages().len() >= 50 && cri_lines(std::slice::from_ref(&path)).len() >= 50
    })
    .await;
    assert!(
        complete,
        "syslog {} lines, CRI file {} lines",
        syslog.messages().len(),
        cri_lines(std::slice::from_ref(&path)).len()
    );
    assert_eq!(syslog.messages(), want);
    assert_eq!(cri_lines(&[path]), want);
}
