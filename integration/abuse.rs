//! Hostile streaming clients against the real shim (issue 21): each abuse
//! runs in the test, the shim's resident memory is sampled throughout, and
//! its growth must stay under [`RSS_BOUND`]; afterwards the shim must
//! still serve another pod. The figures are printed (run with
//! `--nocapture`) for docs/performance.md.

use std::time::Duration;

use bytes::Bytes;
use dockershim::cri::*;
use dockershim::streaming::spdy::HeaderBlock;
use futures_util::SinkExt;
use hyper::StatusCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::rss::RssWatch;
use crate::support::stream_client::*;
use crate::support::*;

/// The most the shim's RSS may grow during one abuse, in bytes.
const RSS_BOUND: u64 = 64 * 1024 * 1024;

/// Bound on each step of an abuse, so a blocked send ends the abuse
/// instead of the test.
const STEP: Duration = Duration::from_secs(5);

/// The shim's process: the one whose command line names its socket.
fn shim_pid(shim: &Shim) -> u32 {
    let needle = format!("unix://{}", shim.socket.display());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|arg| arg == needle)
        {
            return pid;
        }
    }
    panic!("no process serves {needle}");
}

struct Node {
    cleanup: Cleanup,
    shim: Shim,
    rt: Cri,
}

async fn node() -> Node {
    let cleanup = Cleanup::new();
    let shim = Shim::start().await;
    let rt = shim.runtime().await;
    Node { cleanup, shim, rt }
}

/// A pod running `sleep` in one container: (pod id, container id).
async fn pod(node: &mut Node) -> (String, String) {
    let config = pod_config(&node.cleanup, &unique("abuse"));
    let pod_id = run_pod(&mut node.rt, &config).await;
    let mut container = container_config(&node.cleanup, "main", "sleep 1000");
    container.stdin = true;
    let ctr = start_container(&mut node.rt, &pod_id, &config, container).await;
    (pod_id, ctr)
}

async fn exec_url(rt: &mut Cri, ctr: &str, cmd: &[&str], stdin: bool) -> String {
    rt.exec(ExecRequest {
        container_id: ctr.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin,
        stdout: true,
        stderr: true,
    })
    .await
    .unwrap()
    .into_inner()
    .url
}

/// Another pod is served normally: an exec's output comes back.
async fn serves_another_pod(node: &mut Node) {
    let (_, ctr) = pod(node).await;
    let url = exec_url(&mut node.rt, &ctr, &["echo", "still-serving"], false).await;
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        SpdySession::open(&url, "v4.channel.k8s.io", false, true, true, false)
            .await
            .finish(),
    )
    .await
    .expect("an exec in another pod");
    assert_eq!(done.stdout(), "still-serving\n");
}

/// A header block of `values` empty values (NUL separators only on the
/// wire) for one name, after a first value that makes it unique.
fn nul_headers(kind: &str, first: &str, values: usize) -> HeaderBlock {
    let mut block: HeaderBlock = [("streamtype", kind), ("port", "80")].into_iter().collect();
    block.insert("requestid", first);
    for _ in 0..values {
        block.insert("requestid", "");
    }
    block
}

#[tokio::test]
async fn spdy_header_abuse_stays_within_the_memory_budget() {
    let mut node = node().await;
    let (pod_id, ctr) = pod(&mut node).await;
    // Warm the streaming server up so its first allocations are not counted.
    let url = exec_url(&mut node.rt, &ctr, &["true"], false).await;
    SpdySession::open(&url, "v4.channel.k8s.io", false, true, true, false)
        .await
        .finish()
        .await;
    let watch = RssWatch::start(shim_pid(&node.shim));

    // As measured in issue 21: 40 streams, each with a new request id and
    // a 250 KiB header block of NUL separators, and no data stream.
    let request = PortForwardRequest {
        pod_sandbox_id: pod_id.clone(),
        port: vec![80],
    };
    let url = node
        .rt
        .port_forward(request.clone())
        .await
        .unwrap()
        .into_inner()
        .url;
    let (status, _, conn) = spdy_upgrade(&url, &["portforward.k8s.io"]).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    let conn = conn.unwrap();
    let mut refused = 0;
    let mut held = Vec::new();
    for i in 0..40 {
        let headers = nul_headers("error", &format!("nul-{i}"), 250 * 1024);
        match tokio::time::timeout(STEP, conn.open(headers)).await {
            Ok(Ok(stream)) => held.push(stream),
            _ => refused += 1,
        }
    }
    eprintln!(
        "250 KiB NUL header blocks: {} held, {refused} refused",
        held.len()
    );
    // The same within the per-block budget: blocks the decoder accepts
    // (8,000 values each), as many unpaired streams as the client can open.
    let url = node
        .rt
        .port_forward(request)
        .await
        .unwrap()
        .into_inner()
        .url;
    let (_, _, conn2) = spdy_upgrade(&url, &["portforward.k8s.io"]).await;
    let conn2 = conn2.unwrap();
    let mut refused2 = 0;
    let mut held2 = Vec::new();
    for i in 0..400 {
        let headers = nul_headers("error", &format!("small-{i}"), 8_000);
        match tokio::time::timeout(STEP, conn2.open(headers)).await {
            Ok(Ok(stream)) => held2.push(stream),
            _ => refused2 += 1,
        }
    }
    eprintln!(
        "8,000-value header blocks: {} opened, {refused2} refused",
        held2.len()
    );
    assert!(refused2 > 0, "no stream was refused");
    // Let the shim finish with the abusive session before "after".
    tokio::time::sleep(Duration::from_secs(1)).await;
    watch
        .finish("SPDY header abuse")
        .await
        .assert_growth_under(RSS_BOUND, "SPDY header abuse");
    drop((held, held2, conn, conn2));
    serves_another_pod(&mut node).await;
}

#[tokio::test]
async fn websocket_stdin_abuse_stays_within_the_memory_budget() {
    let mut node = node().await;
    let (_, ctr) = pod(&mut node).await;
    let url = exec_url(&mut node.rt, &ctr, &["true"], false).await;
    WsSession::connect(&url, "v4.channel.k8s.io")
        .await
        .finish()
        .await;
    let watch = RssWatch::start(shim_pid(&node.shim));

    // As measured in issue 21: 16 MiB stdin messages to `sleep`, which
    // never reads them.
    let url = exec_url(&mut node.rt, &ctr, &["sleep", "600"], true).await;
    let mut ws = WsSession::connect(&url, "v4.channel.k8s.io").await;
    let mut big = vec![0u8; 16 << 20];
    big[0] = 0; // stdin
    let mut accepted = 0;
    for _ in 0..20 {
        let message = Message::Binary(Bytes::from(big.clone()));
        match tokio::time::timeout(STEP, ws.socket.send(message)).await {
            Ok(Ok(())) => accepted += 1,
            _ => break,
        }
    }
    eprintln!("16 MiB stdin messages: {accepted} sent before the shim stopped taking them");
    drop(ws);

    // Messages within the size limit, until the sends block.
    let url = exec_url(&mut node.rt, &ctr, &["sleep", "600"], true).await;
    let mut ws = WsSession::connect(&url, "v4.channel.k8s.io").await;
    let mut piece = vec![0u8; (1 << 20) - 1];
    piece[0] = 0;
    let mut sent = 0;
    for _ in 0..300 {
        let message = Message::Binary(Bytes::from(piece.clone()));
        match tokio::time::timeout(STEP, ws.socket.send(message)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    eprintln!("1 MiB stdin messages: {sent} sent before sends blocked");
    assert!(
        sent < 300,
        "stdin to a process that never reads it never pushed back"
    );
    // Let the shim finish with the abusive session before "after".
    tokio::time::sleep(Duration::from_secs(1)).await;
    watch
        .finish("WebSocket stdin abuse")
        .await
        .assert_growth_under(RSS_BOUND, "WebSocket stdin abuse");
    drop(ws);
    serves_another_pod(&mut node).await;
}
