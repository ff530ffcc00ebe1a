//! Container logs in the CRI format.
//!
//! One writer per container follows Docker's own copy of its output (the
//! json-file or local log driver, bounded by the shim's size limit), as
//! timestamped messages ([`LogStream`]), and writes it to the container's
//! CRI log path in the format the kubelet and crictl read ([`crilog`]). Docker's copy is the durable buffer: a writer
//! started after a restart of the shim resumes after the last entry already
//! in the file, by timestamp, so every line lands exactly once, including
//! output written before any writer was attached.

pub mod crilog;
pub mod driver;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::docker::{DockerApi, Filters, Frame, LOG_MESSAGE_MAX, LogMessage, LogStream};
use crate::naming;
use crilog::{LineSplitter, LogFile, Stream};

/// Longest CRI log entry; longer lines are split into partial entries.
pub const MAX_LINE: usize = 16 * 1024;
/// Buffered log data reaches the file at least this often.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Why a log file could not be reopened.
#[derive(Debug, thiserror::Error)]
pub enum ReopenError {
    /// No writer runs for the container (it is not running, or has no log path).
    #[error("no log writer runs for container {0}")]
    NotRunning(String),
    /// The file could not be reopened.
    #[error("reopen {path}: {source}")]
    Io {
        /// The log path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Where a container's CRI log file is: the pod's log directory, and the
/// file's path inside it, which is opened without following symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLocation {
    /// The sandbox's log directory (the kubelet's, trusted).
    pub dir: PathBuf,
    /// The file, relative to `dir`.
    pub relative: PathBuf,
}

impl LogLocation {
    /// From a container's Docker labels. A container created before the
    /// shim recorded the log directory is confined to its file's own
    /// directory.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        let path = Path::new(labels.get(naming::LOG_PATH_LABEL)?);
        if let Some(dir) = labels.get(naming::LOG_DIR_LABEL).map(Path::new)
            && let Ok(relative) = path.strip_prefix(dir)
        {
            return Some(Self {
                dir: dir.to_path_buf(),
                relative: relative.to_path_buf(),
            });
        }
        Some(Self {
            dir: path.parent()?.to_path_buf(),
            relative: PathBuf::from(path.file_name()?),
        })
    }

    /// The file's full path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.relative)
    }
}

enum Control {
    Reopen(oneshot::Sender<std::io::Result<()>>),
}

struct Writer {
    control: mpsc::Sender<Control>,
    /// The copying task; `None` while the container is being started.
    task: Option<JoinHandle<()>>,
    path: PathBuf,
    /// Closed (its sender dropped) once every byte of the container's
    /// output is in the file, or the writer gave up.
    drained: watch::Receiver<()>,
}

impl Writer {
    fn is_active(&self) -> bool {
        self.task.as_ref().is_none_or(|t| !t.is_finished())
    }
}

/// The log writers of all containers.
pub struct LogWriters {
    docker: Arc<dyn DockerApi>,
    writers: Mutex<HashMap<String, Writer>>,
}

/// A container's log file, opened before the container starts and not yet
/// copied to. Dropping it unused (the start failed) unregisters the writer.
pub struct PendingLog<'a> {
    writers: &'a LogWriters,
    id: String,
    file: Option<LogFile>,
    last: Option<DateTime<Utc>>,
    control: Option<mpsc::Receiver<Control>>,
    drained: Option<watch::Sender<()>>,
}

impl PendingLog<'_> {
    /// Starts copying the container's output (it has been started). With
    /// `follow`, the writer keeps going until the container's output ends;
    /// without, it catches up and stops.
    pub fn copy(mut self, tty: bool, follow: bool) {
        let (Some(file), Some(control), Some(drained)) =
            (self.file.take(), self.control.take(), self.drained.take())
        else {
            return;
        };
        let task = tokio::spawn(write_logs(
            self.writers.docker.clone(),
            self.id.clone(),
            file,
            self.last,
            tty,
            follow,
            control,
            drained,
        ));
        if let Some(writer) = self.writers.writers().get_mut(&self.id) {
            writer.task = Some(task);
        }
    }
}

impl Drop for PendingLog<'_> {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.writers.writers().remove(&self.id);
        }
    }
}

impl LogWriters {
    /// No writers yet.
    pub fn new(docker: Arc<dyn DockerApi>) -> Self {
        Self {
            docker,
            writers: Mutex::new(HashMap::new()),
        }
    }

    fn writers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Writer>> {
        self.writers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates (or opens, after a restart) a container's log file and
    /// registers its writer, before the container starts: the kubelet links
    /// the file into `/var/log/containers` only if it exists when
    /// `StartContainer` answers, and [`drained`](Self::drained) must know of
    /// the writer before Docker can report the container exited. `None`
    /// when a writer already runs for the container.
    pub async fn prepare(
        &self,
        container_id: &str,
        location: LogLocation,
    ) -> std::io::Result<Option<PendingLog<'_>>> {
        if self
            .writers()
            .get(container_id)
            .is_some_and(Writer::is_active)
        {
            return Ok(None);
        }
        // The pod's directory is the kubelet's; below it, the file and its
        // directories are created without following symlinks.
        tokio::fs::create_dir_all(&location.dir).await?;
        let path = location.path();
        let mut file = LogFile::open_beneath(location.dir, location.relative).await?;
        let last = file.last_timestamp().await?;
        let (control, control_rx) = mpsc::channel(4);
        let (drained_tx, drained) = watch::channel(());
        let mut writers = self.writers();
        if writers.get(container_id).is_some_and(Writer::is_active) {
            return Ok(None);
        }
        writers.insert(
            container_id.to_string(),
            Writer {
                control,
                task: None,
                path,
                drained,
            },
        );
        Ok(Some(PendingLog {
            writers: self,
            id: container_id.to_string(),
            file: Some(file),
            last,
            control: Some(control_rx),
            drained: Some(drained_tx),
        }))
    }

    /// Waits, at most `limit`, until every byte a container wrote is in its
    /// log file. The live view calls it before it reports a container
    /// exited, so whoever sees the exit can read the whole log.
    pub async fn drained(&self, container_id: &str, limit: Duration) {
        let Some(mut drained) = self.writers().get(container_id).map(|w| w.drained.clone()) else {
            return;
        };
        // Nothing is ever sent: `changed` returns when the writer ends.
        if tokio::time::timeout(limit, drained.changed())
            .await
            .is_err()
        {
            tracing::warn!(
                container = container_id,
                ?limit,
                "log writer still copying; reporting the exit anyway"
            );
        }
    }

    /// Reopens a running container's log file at its path (the kubelet has
    /// renamed the old one), without losing a line.
    pub async fn reopen(&self, container_id: &str) -> Result<(), ReopenError> {
        let (control, path) = {
            let writers = self.writers();
            match writers.get(container_id).filter(|w| w.is_active()) {
                Some(w) => (w.control.clone(), w.path.clone()),
                None => return Err(ReopenError::NotRunning(container_id.to_string())),
            }
        };
        let (ack, done) = oneshot::channel();
        control
            .send(Control::Reopen(ack))
            .await
            .map_err(|_| ReopenError::NotRunning(container_id.to_string()))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ReopenError::Io { path, source }),
            Err(_) => Err(ReopenError::NotRunning(container_id.to_string())),
        }
    }

    /// Stops a container's writer (the container is being removed).
    pub fn stop(&self, container_id: &str) {
        if let Some(task) = self
            .writers()
            .remove(container_id)
            .and_then(|writer| writer.task)
        {
            task.abort();
        }
    }

    /// After a start of the shim: resumes the writers of containers started
    /// before `shim_started` that still run, and catches up the files of
    /// those that exited while no writer ran. Containers started later were
    /// started by another shim on the same Docker, whose writers have them.
    pub async fn resume(&self, shim_started: DateTime<Utc>) {
        let filters = Filters::from([(
            "label".to_string(),
            vec![format!("{}={}", naming::TYPE_LABEL, naming::TYPE_CONTAINER)],
        )]);
        let containers = match self.docker.list_containers(filters).await {
            Ok(containers) => containers,
            Err(err) => {
                return tracing::warn!(error = %err, "cannot list containers to resume their logs");
            }
        };
        for summary in containers {
            let (Some(id), Some(location)) = (
                summary.id.as_deref(),
                summary.labels.as_ref().and_then(LogLocation::from_labels),
            ) else {
                continue;
            };
            let Ok(inspected) = self.docker.inspect_container(id).await else {
                continue;
            };
            let tty = inspected
                .config
                .as_ref()
                .and_then(|c| c.tty)
                .unwrap_or(false);
            let state = inspected.state.unwrap_or_default();
            let started = crate::docker::timestamp_nanos(state.started_at.as_deref());
            let before_us = shim_started
                .timestamp_nanos_opt()
                .is_some_and(|ours| started < ours);
            if started == 0 || !before_us {
                continue;
            }
            let follow = state.running == Some(true);
            // A file that is gone (or was never made) is not recreated for
            // an exited container; a symlink there is left to the open,
            // which refuses it.
            if !follow && std::fs::symlink_metadata(location.path()).is_err() {
                continue;
            }
            match self.prepare(id, location).await {
                Ok(Some(pending)) => pending.copy(tty, follow),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(container = id, error = %err, "cannot open container log to resume it")
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_logs(
    docker: Arc<dyn DockerApi>,
    id: String,
    file: LogFile,
    last: Option<DateTime<Utc>>,
    tty: bool,
    follow: bool,
    mut control: mpsc::Receiver<Control>,
    drained: watch::Sender<()>,
) {
    let path = file.path().to_path_buf();
    match copy_logs(docker.as_ref(), &id, file, last, tty, follow, &mut control).await {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
            tracing::info!(container = %id, error = %err, "another writer has this container's log");
        }
        Err(err) => {
            tracing::warn!(container = %id, path = %path.display(), error = %err, "container log writer stopped");
        }
    }
    // Later reopen requests find the writer gone; answer any already queued.
    control.close();
    while let Ok(Control::Reopen(ack)) = control.try_recv() {
        let _ = ack.send(Err(std::io::Error::other(
            "the container's output has ended",
        )));
    }
    drop(drained);
}

async fn copy_logs(
    docker: &dyn DockerApi,
    id: &str,
    file: LogFile,
    last: Option<DateTime<Utc>>,
    tty: bool,
    follow: bool,
    control: &mut mpsc::Receiver<Control>,
) -> std::io::Result<()> {
    let since = last.map(|t| (t.timestamp(), t.timestamp_subsec_nanos()));
    let messages = docker
        .container_logs(id, tty, follow, since)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    copy_stream(messages, file, last, control).await
}

/// Copies a container's log `messages` into `file` until they end.
async fn copy_stream(
    mut messages: LogStream,
    mut file: LogFile,
    last: Option<DateTime<Utc>>,
    control: &mut mpsc::Receiver<Control>,
) -> std::io::Result<()> {
    let mut stdout = LineSplitter::new(Stream::Stdout, MAX_LINE);
    let mut stderr = LineSplitter::new(Stream::Stderr, MAX_LINE);
    let (mut stdout_unterminated, mut stderr_unterminated) = (false, false);
    let mut latest = last.unwrap_or(DateTime::<Utc>::MIN_UTC);
    // Armed when unflushed data waits: it reaches the file by then at the
    // latest, however steadily more output trickles in. One timer, reset,
    // rather than a new one per message.
    let flush_timer = tokio::time::sleep(FLUSH_INTERVAL);
    tokio::pin!(flush_timer);
    let mut unflushed = false;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(LogMessage { timestamp: ts, frame }) = message? else { break };
                let (stream, content) = match frame {
                    Frame::Stdout(content) => (Stream::Stdout, content),
                    Frame::Stderr(content) => (Stream::Stderr, content),
                };
                // Docker's `since` is inclusive: skip what the file has.
                if last.is_some_and(|l| ts <= l) {
                    continue;
                }
                // Docker stamps stdout and stderr in separate readers, so the
                // two can be out of order by microseconds; the file keeps
                // time monotonic, as its readers (`--since`) assume.
                let ts = ts.max(latest);
                latest = ts;
                let (splitter, unterminated) = match stream {
                    Stream::Stdout => (&mut stdout, &mut stdout_unterminated),
                    Stream::Stderr => (&mut stderr, &mut stderr_unterminated),
                };
                // Docker's copier cuts a message without a newline only when
                // its 16 KiB buffer is full or the stream ends. A shorter one
                // followed by more output is the last piece of a long line
                // whose newline Docker's local driver dropped: end the line.
                if *unterminated {
                    file.write_output(splitter, b"\n", ts).await?;
                }
                *unterminated = !content.ends_with(b"\n") && content.len() < LOG_MESSAGE_MAX;
                file.write_output(splitter, &content, ts).await?;
                if !unflushed {
                    flush_timer.as_mut().reset(tokio::time::Instant::now() + FLUSH_INTERVAL);
                    unflushed = true;
                }
            }
            Some(Control::Reopen(ack)) = control.recv() => {
                let _ = ack.send(file.reopen().await);
            }
            () = &mut flush_timer, if unflushed => {
                file.flush().await?;
                unflushed = false;
            }
        }
    }
    // Output that ended without a newline is a final partial entry.
    if latest == DateTime::<Utc>::MIN_UTC {
        latest = Utc::now();
    }
    file.finish_output(&mut stdout, latest).await?;
    file.finish_output(&mut stderr, latest).await?;
    file.close().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::FakeDocker;
    use bytes::Bytes;
    use crilog::Tag;

    fn ts(nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_728_940, nanos).expect("valid time")
    }

    fn stdout(nanos: u32, content: &[u8]) -> LogMessage {
        LogMessage {
            timestamp: ts(nanos),
            frame: Frame::Stdout(Bytes::copy_from_slice(content)),
        }
    }

    fn stderr(nanos: u32, content: &[u8]) -> LogMessage {
        LogMessage {
            timestamp: ts(nanos),
            frame: Frame::Stderr(Bytes::copy_from_slice(content)),
        }
    }

    /// A log file's entries as (timestamp, stream, tag, content).
    fn entries(path: &Path) -> Vec<(DateTime<Utc>, Stream, Tag, Vec<u8>)> {
        let data = std::fs::read(path).unwrap_or_default();
        data.split_inclusive(|b| *b == b'\n')
            .map(|line| {
                let e = crilog::parse_line(line).expect("a CRI log line");
                (e.timestamp, e.stream, e.tag, e.content.to_vec())
            })
            .collect()
    }

    /// Copies what a TTY container logged into a CRI file; its entries as
    /// (timestamp, tag, content).
    async fn copy_tty(messages: Vec<LogMessage>) -> Vec<(DateTime<Utc>, Tag, Vec<u8>)> {
        let docker = FakeDocker::new();
        let id = docker.run_container("tty", true).await;
        for message in messages {
            docker.log(&id, message);
        }
        let logs = docker
            .container_logs(&id, true, false, None)
            .await
            .expect("logs");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("0.log");
        let file = LogFile::open(&path).await.expect("open the log");
        let (_control, mut control_rx) = mpsc::channel(1);
        copy_stream(logs, file, None, &mut control_rx)
            .await
            .expect("copy");
        entries(&path)
            .into_iter()
            .map(|(ts, stream, tag, content)| {
                assert_eq!(stream, Stream::Stdout);
                (ts, tag, content)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_tty_line_cut_by_docker_is_partial_entries_and_unterminated_output_is_kept() {
        let piece = vec![b'x'; LOG_MESSAGE_MAX];
        assert_eq!(
            copy_tty(vec![
                stdout(1, b"hello\r\n"),
                stdout(1, &piece),
                stdout(2, b"tail\r\n"),
                stdout(3, b"last"),
            ])
            .await,
            vec![
                (ts(1), Tag::Full, b"hello\r".to_vec()),
                // An entry is stamped by the message that completes it, as
                // without a TTY.
                (ts(2), Tag::Partial, piece),
                (ts(2), Tag::Full, b"tail\r".to_vec()),
                // Output that ends without a newline is a final partial line.
                (ts(3), Tag::Partial, b"last".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn a_tty_flood_without_newlines_is_written_as_partial_entries() {
        // 300 KB of output with no newline, as Docker serves it: a
        // timestamp every 16 KiB, and the rest at the end.
        const FLOOD: usize = 300_000;
        let mut messages = Vec::new();
        let mut left = FLOOD;
        while left > 0 {
            let n = left.min(LOG_MESSAGE_MAX);
            messages.push(stdout(1, &vec![b'z'; n]));
            left -= n;
        }
        let entries = copy_tty(messages).await;
        assert!(entries.iter().all(|(_, tag, _)| *tag == Tag::Partial));
        assert!(entries.iter().all(|(_, _, c)| c.len() <= MAX_LINE));
        assert_eq!(
            entries.iter().map(|(_, _, c)| c.len()).sum::<usize>(),
            FLOOD
        );
        assert_eq!(entries.len(), FLOOD.div_ceil(MAX_LINE));
    }

    #[tokio::test]
    async fn a_timestamp_inside_tty_content_is_content() {
        // Not after a newline or a cut: Docker cannot have put it there.
        let inner = "2026-11-26T21:35:40.000000002Z it said";
        assert_eq!(
            copy_tty(vec![
                stdout(1, format!("at {inner}\n").as_bytes()),
                stdout(3, b"next\n"),
            ])
            .await,
            vec![
                (ts(1), Tag::Full, format!("at {inner}").into_bytes()),
                (ts(3), Tag::Full, b"next".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn a_long_tty_line_whose_newline_docker_dropped_ends_at_the_next_timestamp() {
        // Docker 20.10's local driver: the last piece of a line longer than
        // 16 KiB comes without its newline, the next message right after.
        let piece = vec![b'y'; LOG_MESSAGE_MAX];
        assert_eq!(
            copy_tty(vec![
                stdout(1, &piece),
                stdout(2, b"rest"),
                stdout(3, b"next\n")
            ])
            .await,
            vec![
                (ts(2), Tag::Partial, piece),
                (ts(3), Tag::Full, b"rest".to_vec()),
                (ts(3), Tag::Full, b"next".to_vec()),
            ]
        );
    }

    /// Waits, at most 5 s, until `path` holds `n` entries.
    async fn wait_for_entries(path: &Path, n: usize) -> Vec<(DateTime<Utc>, Stream, Tag, Vec<u8>)> {
        for _ in 0..250 {
            let got = entries(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{} has {:?}, not {n} entries",
            path.display(),
            entries(path)
        );
    }

    /// A log writer following container `id` into a fresh file.
    async fn follow(docker: &Arc<FakeDocker>, id: &str, dir: &Path) -> (LogWriters, PathBuf) {
        let writers = LogWriters::new(docker.clone());
        let location = LogLocation {
            dir: dir.to_path_buf(),
            relative: PathBuf::from("c/0.log"),
        };
        let path = location.path();
        let pending = writers
            .prepare(id, location)
            .await
            .expect("open the log")
            .expect("no writer yet");
        pending.copy(false, true);
        (writers, path)
    }

    #[tokio::test]
    async fn a_followed_log_gets_new_output_as_cri_lines_until_the_container_stops() {
        let docker = Arc::new(FakeDocker::new());
        let id = docker.run_container("app", false).await;
        docker.log(&id, stdout(1, b"before the writer\n"));
        let dir = tempfile::tempdir().expect("temp dir");
        let (writers, path) = follow(&docker, &id, dir.path()).await;
        wait_for_entries(&path, 1).await;

        // Output written later reaches the file, each stream on its own.
        docker.log(&id, stderr(2, b"an error\n"));
        // Shorter than Docker's cut and without a newline, then more: a
        // line whose newline Docker's local driver dropped, ended.
        docker.log(&id, stdout(3, b"ended "));
        docker.log(&id, stdout(4, b"line\n"));
        wait_for_entries(&path, 3).await;

        // Still followed: this reaches the file too, once the stop ends
        // the stream and with it the unterminated line.
        docker.log(&id, stdout(5, b"no newline at the end"));
        docker
            .stop_container(&id, Duration::ZERO)
            .await
            .expect("stop");
        writers.drained(&id, Duration::from_secs(5)).await;
        assert!(matches!(
            writers.reopen(&id).await,
            Err(ReopenError::NotRunning(_))
        ));
        assert_eq!(
            String::from_utf8(std::fs::read(&path).expect("read the log")).expect("text"),
            "2026-11-26T21:35:40.000000001Z stdout F before the writer\n\
             2026-11-26T21:35:40.000000002Z stderr F an error\n\
             2026-11-26T21:35:40.000000004Z stdout F ended \n\
             2026-11-26T21:35:40.000000004Z stdout F line\n\
             2026-11-26T21:35:40.000000005Z stdout P no newline at the end\n"
        );
    }

    #[tokio::test]
    async fn a_broken_log_stream_stops_the_writer_with_what_it_had_written() {
        let docker = Arc::new(FakeDocker::new());
        let id = docker.run_container("app", false).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (writers, path) = follow(&docker, &id, dir.path()).await;
        docker.log(&id, stdout(1, b"kept\n"));
        wait_for_entries(&path, 1).await;
        docker.break_logs(&id);
        writers.drained(&id, Duration::from_secs(5)).await;
        assert!(matches!(
            writers.reopen(&id).await,
            Err(ReopenError::NotRunning(_))
        ));
        // The container still runs; what it prints now is not copied.
        docker.log(&id, stdout(2, b"lost\n"));
        tokio::time::sleep(FLUSH_INTERVAL * 2).await;
        assert_eq!(
            entries(&path),
            vec![(ts(1), Stream::Stdout, Tag::Full, b"kept".to_vec())]
        );
    }

    #[tokio::test]
    async fn a_writer_started_again_copies_each_line_once() {
        // The file holds output up to T2; Docker's `since` is inclusive.
        let docker = Arc::new(FakeDocker::new());
        let id = docker.run_container("app", false).await;
        for message in [stdout(1, b"one\n"), stdout(2, b"two\n")] {
            docker.log(&id, message);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (writers, path) = follow(&docker, &id, dir.path()).await;
        wait_for_entries(&path, 2).await;
        writers.stop(&id);
        // Let the aborted writer go, and its hold on the file with it.
        tokio::task::yield_now().await;
        docker.log(&id, stdout(3, b"three\n"));
        let (_writers, path) = follow(&docker, &id, dir.path()).await;
        let got = wait_for_entries(&path, 3).await;
        tokio::time::sleep(FLUSH_INTERVAL * 2).await;
        assert_eq!(entries(&path), got);
        assert_eq!(
            got.iter().map(|e| e.3.clone()).collect::<Vec<_>>(),
            [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[tokio::test]
    async fn a_failed_log_request_ends_the_writer() {
        let docker = Arc::new(FakeDocker::new());
        let id = docker.run_container("app", false).await;
        docker.fail_next(
            crate::docker::fake::Op::Logs,
            crate::docker::DockerError::Transport("refused".into()),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let (writers, _path) = follow(&docker, &id, dir.path()).await;
        writers.drained(&id, Duration::from_secs(5)).await;
        assert!(matches!(
            writers.reopen(&id).await,
            Err(ReopenError::NotRunning(_))
        ));
    }
}
