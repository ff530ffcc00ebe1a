//! The fake Docker's streams, scripted by the test: what an exec or an
//! attached container prints and reads, when an exec exits and how, and
//! what a container logs.
//!
//! The bytes travel in Docker's own wire format (multiplexed frames unless
//! there is a TTY, timestamps before log messages), so the shim decodes
//! them as it decodes a real Docker's.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::docker::log_stream::{self, LogMessage, LogStream};
use crate::docker::multiplex;
use crate::docker::streams::{Frame, ProcessStreams};

/// Bytes in flight between a scripted process and the shim, each way: a
/// process printing more waits until the shim reads, as with Docker.
const PIPE: usize = 64 * 1024;

/// How a scripted exec is doing, as `inspect_exec` reports it.
#[derive(Debug, Default)]
pub(super) struct ExecStatus {
    pub running: bool,
    pub exit_code: Option<i64>,
}

/// A status shared by a script and the fake's record of the exec.
pub(super) type SharedStatus = Arc<Mutex<ExecStatus>>;

/// Locks a status, whatever a panicking test left in it.
pub(super) fn status(shared: &SharedStatus) -> std::sync::MutexGuard<'_, ExecStatus> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The container's side of a scripted exec or attach.
pub struct ProcessScript {
    io: DuplexStream,
    tty: bool,
    status: SharedStatus,
}

/// The shim's side of a scripted process, not yet handed out.
pub(super) struct PendingProcess {
    pub io: DuplexStream,
    pub tty: bool,
    pub status: SharedStatus,
}

impl PendingProcess {
    /// The streams the shim gets for it; the process now runs.
    pub fn start(self) -> ProcessStreams {
        status(&self.status).running = true;
        ProcessStreams::new(Box::new(self.io), self.tty)
    }
}

/// A scripted process (with a TTY or not): the container's side, and the
/// shim's side waiting to be started.
pub(super) fn pair(tty: bool) -> (PendingProcess, ProcessScript) {
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let status = SharedStatus::default();
    (
        PendingProcess {
            io: ours,
            tty,
            status: status.clone(),
        },
        ProcessScript {
            io: theirs,
            tty,
            status,
        },
    )
}

/// The streams of a process scripted by the returned script, without a
/// container: for tests of what reads them.
pub fn scripted_process(tty: bool) -> (ProcessStreams, ProcessScript) {
    let (pending, script) = pair(tty);
    (pending.start(), script)
}

impl ProcessScript {
    /// Prints `bytes` on stdout, as one frame; waits while the shim has
    /// not read what was printed before. Fails once the shim has hung up.
    pub async fn stdout(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.print(Frame::Stdout(Bytes::copy_from_slice(bytes)))
            .await
    }

    /// Prints `bytes` on stderr (stdout with a TTY, as a terminal merges them).
    pub async fn stderr(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.print(Frame::Stderr(Bytes::copy_from_slice(bytes)))
            .await
    }

    async fn print(&mut self, frame: Frame) -> std::io::Result<()> {
        if self.tty {
            self.io.write_all(frame.bytes()).await
        } else {
            self.io.write_all(&multiplex::encode(&frame)).await
        }
    }

    /// Reads exactly `n` bytes of the process's stdin.
    pub async fn read_stdin(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    /// Waits for the end of the process's stdin; the bytes that came before.
    pub async fn stdin_to_end(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.io.read_to_end(&mut buf).await?;
        Ok(buf)
    }

    /// The process exits with `code`: Docker records it, then the output
    /// ends.
    pub fn exit(self, code: i64) {
        let mut status = status(&self.status);
        status.running = false;
        status.exit_code = Some(code);
    }
}

/// A container's log, as Docker keeps it: every message so far, and the
/// followers of new ones.
#[derive(Default)]
pub(super) struct ContainerLog {
    history: Vec<LogMessage>,
    followers: Vec<mpsc::UnboundedSender<std::io::Result<Bytes>>>,
}

impl ContainerLog {
    /// The messages logged from `since` (inclusive) on, and, when
    /// `follow`, the ones logged later until [`end`](Self::end).
    pub fn stream(
        &mut self,
        tty: bool,
        decode_tty: bool,
        follow: bool,
        since: Option<DateTime<Utc>>,
    ) -> LogStream {
        let (tx, rx) = mpsc::unbounded_channel();
        for message in &self.history {
            if since.is_none_or(|since| message.timestamp >= since) {
                let _ = tx.send(Ok(Bytes::from(log_stream::encode(message, tty))));
            }
        }
        if follow {
            self.followers.push(tx);
        }
        let body = tokio_util::io::StreamReader::new(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        );
        LogStream::new(Box::new(body), decode_tty)
    }

    /// Logs `message` and sends it to the followers.
    pub fn push(&mut self, tty: bool, message: LogMessage) {
        let wire = Bytes::from(log_stream::encode(&message, tty));
        self.followers
            .retain(|follower| follower.send(Ok(wire.clone())).is_ok());
        self.history.push(message);
    }

    /// Breaks the followers' connections.
    pub fn break_followers(&mut self) {
        for follower in self.followers.drain(..) {
            let _ = follower.send(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "docker closed the connection",
            )));
        }
    }

    /// Ends the followers' streams: the container stopped.
    pub fn end(&mut self) {
        self.followers.clear();
    }
}
