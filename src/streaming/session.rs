//! What exec and attach sessions look like whatever the wire protocol:
//! channels of bytes for stdin, stdout and stderr, terminal sizes, a signal
//! that the client went away, and the outcome reported on the error stream
//! in the form each protocol version expects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::docker::TermSize;

/// Chunks buffered per channel before the sender waits.
pub const CHANNEL_DEPTH: usize = 16;

/// Largest piece of stdin queued for the process: with [`CHANNEL_DEPTH`]
/// it bounds the stdin a session holds in flight to 512 KiB, whatever the
/// size of the client's messages or frames.
pub const STDIN_CHUNK: usize = 32 * 1024;

/// Queues `data` for the process in pieces of at most [`STDIN_CHUNK`]
/// bytes, each copied out so that no piece keeps a larger message alive.
/// Fails once the process side is gone.
pub async fn send_stdin(
    tx: &mpsc::Sender<Bytes>,
    data: Bytes,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    if data.len() <= STDIN_CHUNK {
        return tx.send(data).await;
    }
    for piece in data.chunks(STDIN_CHUNK) {
        tx.send(Bytes::copy_from_slice(piece)).await?;
    }
    Ok(())
}

/// The client's side of a session, as the Docker bridge sees it.
pub struct SessionIo {
    /// Bytes the client sends to the process; closed at the client's EOF.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// Where the process's stdout goes.
    pub stdout: Option<mpsc::Sender<Bytes>>,
    /// Where the process's stderr goes.
    pub stderr: Option<mpsc::Sender<Bytes>>,
    /// Terminal sizes from the client (TTY sessions).
    pub resize: Option<mpsc::Receiver<TermSize>>,
    /// Cancelled when the client disconnects.
    pub client_gone: CancellationToken,
}

/// The protocol adapter's ends of a session's channels.
pub struct ClientSide {
    /// Forward the client's stdin here; drop it at the client's EOF.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// The process's stdout, to send to the client.
    pub stdout: Option<mpsc::Receiver<Bytes>>,
    /// The process's stderr, to send to the client.
    pub stderr: Option<mpsc::Receiver<Bytes>>,
    /// Forward the client's terminal sizes here.
    pub resize: Option<mpsc::Sender<TermSize>>,
    /// Cancel when the client disconnects.
    pub client_gone: CancellationToken,
}

/// Which channels a session has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The client sends stdin.
    pub stdin: bool,
    /// The client reads stdout.
    pub stdout: bool,
    /// The client reads stderr (never with a TTY).
    pub stderr: bool,
    /// The client sends terminal sizes.
    pub resize: bool,
}

/// Creates the channels of a session: one end for the protocol adapter, the
/// other for the Docker bridge.
pub fn channels(wanted: Wanted) -> (ClientSide, SessionIo) {
    fn pair<T>(on: bool) -> (Option<mpsc::Sender<T>>, Option<mpsc::Receiver<T>>) {
        if on {
            let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        }
    }
    let (stdin_tx, stdin_rx) = pair(wanted.stdin);
    let (stdout_tx, stdout_rx) = pair(wanted.stdout);
    let (stderr_tx, stderr_rx) = pair(wanted.stderr);
    let (resize_tx, resize_rx) = pair(wanted.resize);
    let client_gone = CancellationToken::new();
    (
        ClientSide {
            stdin: stdin_tx,
            stdout: stdout_rx,
            stderr: stderr_rx,
            resize: resize_tx,
            client_gone: client_gone.clone(),
        },
        SessionIo {
            stdin: stdin_rx,
            stdout: stdout_tx,
            stderr: stderr_tx,
            resize: resize_rx,
            client_gone,
        },
    )
}

/// When a session last carried traffic, either way.
#[derive(Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    /// Records traffic now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once there has been no traffic for `limit`; never without
    /// a limit, or when the deadline is past what the clock can represent.
    pub async fn idle_for(&self, limit: Option<Duration>) {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let Some(deadline) = last
                .checked_add(limit)
                .and_then(|idle| self.start.checked_add(idle))
            else {
                return std::future::pending().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code (attach: the container's output ended).
    Exited(i32),
    /// The session could not run, for this reason.
    Failed(String),
}

/// Versions of the remote-command protocol (`X-Stream-Protocol-Version` or
/// the WebSocket subprotocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RemoteCommandVersion {
    /// `channel.k8s.io`
    V1,
    /// `v2.channel.k8s.io`
    V2,
    /// `v3.channel.k8s.io`: adds the resize stream.
    V3,
    /// `v4.channel.k8s.io`: the error stream carries a JSON status.
    V4,
    /// `v5.channel.k8s.io`: adds the WebSocket close signal.
    V5,
}

impl RemoteCommandVersion {
    /// Protocols offered over SPDY, most preferred first.
    pub const SPDY: [(&'static str, RemoteCommandVersion); 5] = [
        ("v5.channel.k8s.io", RemoteCommandVersion::V5),
        ("v4.channel.k8s.io", RemoteCommandVersion::V4),
        ("v3.channel.k8s.io", RemoteCommandVersion::V3),
        ("v2.channel.k8s.io", RemoteCommandVersion::V2),
        ("channel.k8s.io", RemoteCommandVersion::V1),
    ];

    /// Whether a TTY session gets a resize stream.
    pub fn has_resize(self) -> bool {
        self >= RemoteCommandVersion::V3
    }

    /// The error-stream payload for an outcome: JSON status from v4, plain
    /// text (only on failure) before. `None` means write nothing.
    pub fn status_payload(self, outcome: &Outcome, cmd: &[String]) -> Option<Vec<u8>> {
        if self >= RemoteCommandVersion::V4 {
            return Some(status_json(outcome, cmd).into_bytes());
        }
        match outcome {
            Outcome::Exited(0) => None,
            Outcome::Exited(code) => Some(
                format!("command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}")
                    .into_bytes(),
            ),
            Outcome::Failed(message) => Some(message.clone().into_bytes()),
        }
    }
}

/// A Kubernetes `metav1.Status` for the error stream, as client-go reads it:
/// `NonZeroExitCode` carries the exit code in its `ExitCode` cause.
pub fn status_json(outcome: &Outcome, cmd: &[String]) -> String {
    let value = match outcome {
        Outcome::Exited(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    };
    value.to_string()
}

/// Splits a stream of concatenated JSON terminal sizes (as the client's
/// encoder writes them) into sizes, keeping an incomplete tail for later.
#[derive(Default)]
pub struct ResizeDecoder {
    pending: Vec<u8>,
}

impl ResizeDecoder {
    /// Adds bytes and returns every complete size in them. Malformed input
    /// is dropped (and logged) rather than ending the session.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<TermSize> {
        const MAX_PENDING: usize = 4096;
        self.pending.extend_from_slice(bytes);
        let mut sizes = Vec::new();
        let mut consumed = 0;
        let mut stream =
            serde_json::Deserializer::from_slice(&self.pending).into_iter::<TermSize>();
        loop {
            match stream.next() {
                Some(Ok(size)) => {
                    consumed = stream.byte_offset();
                    sizes.push(size);
                }
                Some(Err(err)) if err.is_eof() => break,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "dropping a malformed resize message");
                    consumed = self.pending.len();
                    break;
                }
                None => {
                    consumed = self.pending.len();
                    break;
                }
            }
        }
        self.pending.drain(..consumed);
        if self.pending.len() > MAX_PENDING {
            self.pending.clear();
        }
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_matches_what_client_go_parses() {
        let cmd = vec!["sh".to_string()];
        let ok: serde_json::Value =
            serde_json::from_str(&status_json(&Outcome::Exited(0), &cmd)).unwrap();
        assert_eq!(ok, serde_json::json!({"metadata": {}, "status": "Success"}));
        let failed: serde_json::Value =
            serde_json::from_str(&status_json(&Outcome::Exited(3), &cmd)).unwrap();
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        let internal: serde_json::Value =
            serde_json::from_str(&status_json(&Outcome::Failed("boom".into()), &cmd)).unwrap();
        assert_eq!(internal["code"], 500);
    }

    #[test]
    fn old_versions_report_only_failures_as_text() {
        let v2 = RemoteCommandVersion::V2;
        assert_eq!(v2.status_payload(&Outcome::Exited(0), &[]), None);
        assert!(v2.status_payload(&Outcome::Exited(1), &[]).is_some());
        assert!(
            RemoteCommandVersion::V4
                .status_payload(&Outcome::Exited(0), &[])
                .is_some()
        );
        assert!(!RemoteCommandVersion::V2.has_resize());
        assert!(RemoteCommandVersion::V3.has_resize());
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_traffic_both_ways() {
        let activity = Activity::default();
        let limit = Duration::from_secs(10);
        let watcher = activity.clone();
        let idle = tokio::spawn(async move { watcher.idle_for(Some(limit)).await });
        tokio::time::sleep(Duration::from_secs(8)).await;
        activity.touch();
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(
            !idle.is_finished(),
            "traffic 8 s ago keeps the session alive"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(idle.await.is_ok());
    }

    /// Issue 21: `--streaming-idle-timeout 0` closed every session at once
    /// (the kubelet reads 0 as no timeout), and a huge value overflowed the
    /// deadline arithmetic.
    #[tokio::test(start_paused = true)]
    async fn no_limit_and_huge_limits_never_expire() {
        assert_eq!(crate::streaming::idle_limit(Duration::ZERO), None);
        let limit = Duration::from_secs(u64::MAX);
        assert_eq!(crate::streaming::idle_limit(limit), Some(limit));
        let activity = Activity::default();
        let watchers: Vec<_> = [None, Some(limit), Some(Duration::MAX)]
            .into_iter()
            .map(|limit| {
                let watcher = activity.clone();
                tokio::spawn(async move { watcher.idle_for(limit).await })
            })
            .collect();
        tokio::time::advance(Duration::from_secs(100 * 365 * 24 * 3600)).await;
        activity.touch();
        tokio::time::advance(Duration::from_secs(3600)).await;
        for watcher in watchers {
            assert!(!watcher.is_finished());
            watcher.abort();
        }
    }

    /// Issue 21: a WebSocket exec of a process that never reads stdin took
    /// 18 messages of 16 MiB (304 MiB) before sends blocked.
    #[tokio::test]
    async fn stdin_in_flight_is_bounded_in_bytes() {
        let (client, mut io) = channels(Wanted {
            stdin: true,
            stdout: false,
            stderr: false,
            resize: false,
        });
        let tx = client.stdin.expect("a stdin channel");
        let sender = tokio::spawn(async move {
            for _ in 0..4 {
                if send_stdin(&tx, Bytes::from(vec![1u8; 4 << 20]))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let rx = io.stdin.as_mut().expect("a stdin channel");
        // Let the sender run until the channel is full (nobody reads) or it
        // has sent everything.
        for _ in 0..100_000 {
            if rx.len() >= CHANNEL_DEPTH || sender.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let mut queued = 0;
        while let Ok(piece) = rx.try_recv() {
            assert!(
                piece.len() <= STDIN_CHUNK,
                "a piece of {} bytes",
                piece.len()
            );
            queued += piece.len();
        }
        assert_eq!(queued, CHANNEL_DEPTH * STDIN_CHUNK);
        drop(io);
        sender.await.unwrap();
    }

    #[test]
    fn resize_messages_split_across_reads() {
        let mut decoder = ResizeDecoder::default();
        assert_eq!(decoder.push(br#"{"Width":80,"Hei"#), vec![]);
        assert_eq!(
            decoder.push(b"ght\":24}\n{\"width\":100,\"height\":30}"),
            vec![
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 30
                }
            ]
        );
        assert_eq!(decoder.push(b"garbage"), vec![]);
        assert_eq!(
            decoder.push(br#"{"Width":1,"Height":2}"#),
            vec![TermSize {
                width: 1,
                height: 2
            }]
        );
    }
}
