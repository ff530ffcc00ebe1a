//! The CRI container log file: the on-disk format that the kubelet (`kubectl logs`)
//! and `crictl logs` read, and the pieces needed to produce it from raw container
//! output.
//!
//! Every line of such a file is
//!
//! ```text
//! <timestamp> <stream> <tag> <content>\n
//! 2026-11-26T21:35:40.292383669Z stdout F hello world
//! ```
//!
//! * `timestamp` is RFC 3339 with nanoseconds. We always write UTC with a fixed
//!   nine-digit fraction and `Z`. Go's `time.RFC3339Nano` (what containerd uses)
//!   trims trailing zeros, and conmon writes a numeric local offset; the kubelet
//!   parses all of these leniently, and so does [`parse_line`]. Fixed width keeps
//!   lines sortable as text and matches the kubelet's own `--timestamps` output.
//! * `stream` is `stdout` or `stderr`.
//! * `tag` is `F` when the content is a whole line (its `\n` is not stored) or `P`
//!   when it is a piece: either a slice of a line longer than the configured
//!   maximum, or output that ended without a newline. The kubelet re-adds the
//!   newline only after `F` entries, so concatenating contents restores the
//!   original byte stream.
//! * `content` is raw bytes, not necessarily UTF-8, never containing `\n`.
//!
//! [`LineSplitter`] turns arbitrary output chunks into [`Entry`]s, [`encode`] and
//! [`parse_line`] convert between entries and lines, and [`LogFile`] appends lines
//! to the file and cooperates with the kubelet's rotation (rename, then
//! `ReopenContainerLog`). [`last_timestamp`] recovers where a previous run stopped.

use std::fmt;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};
use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWriteExt, BufWriter};

/// containerd's default `max_container_log_line_size`; longer lines are split.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024;

/// Length of a timestamp as [`encode_timestamp`] writes it (for years 0..=9999).
pub const TIMESTAMP_LEN: usize = "2006-01-02T15:04:05.000000000Z".len();

/// Which container output stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The spelling used in the log file (and in the CRI API).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an entry's content is a whole line or a piece of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// `P`: more content of the same line follows in a later entry, or the
    /// output ended without a newline.
    Partial,
    /// `F`: the content ends a line; the `\n` itself is not stored.
    Full,
}

impl Tag {
    /// The spelling used in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Partial => "P",
            Tag::Full => "F",
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a CRI log file. The content is borrowed so that splitting and
/// parsing never allocate per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub timestamp: DateTime<Utc>,
    pub stream: Stream,
    pub tag: Tag,
    /// Raw bytes without the line terminator; must not contain `\n`.
    pub content: &'a [u8],
}

// ---------------------------------------------------------------------------
// Splitting raw output into entries
// ---------------------------------------------------------------------------

/// Cuts one stream's raw output into CRI log entries.
///
/// Semantics follow containerd's CRI logger:
///
/// * each `\n`-terminated line becomes one `F` entry without the `\n`; an empty
///   line gives an `F` entry with empty content;
/// * a line longer than `max_len` bytes becomes `P` entries of exactly `max_len`
///   bytes followed by an `F` entry with the remaining 1..=`max_len` bytes (a line
///   of exactly `max_len` bytes is a single `F`); splits ignore UTF-8 boundaries,
///   as containerd's do, because content is bytes;
/// * bytes without a newline wait in the splitter until the line is completed,
///   grows past `max_len`, or [`flush`](Self::flush) emits them as a `P` entry.
///
/// Timestamps: an entry gets the timestamp passed to the call that emitted it,
/// i.e. the arrival time of the chunk that completed the line (or pushed it over
/// the limit). containerd does the same: it stamps `time.Now()` when it writes an
/// entry, not when the line's first byte arrived.
///
/// `\r` is content by default, so CRLF output keeps its `\r` (as Docker's
/// json-file logs did). containerd instead drops a `\r` that directly precedes
/// `\n`; [`strip_crlf`](Self::strip_crlf) selects that behaviour.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    stream: Stream,
    /// `usize::MAX` when unlimited, so the arithmetic below needs no special case.
    max_len: usize,
    strip_cr: bool,
    /// Start of the current line, not yet emitted. At most `max_len` bytes, or
    /// `max_len + 1` when the last one is a `\r` whose fate (content, or half of
    /// a CRLF) depends on the next chunk.
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream` that cuts lines longer than `max_len` bytes
    /// (`0` means no limit, like a non-positive limit in containerd).
    pub fn new(stream: Stream, max_len: usize) -> Self {
        LineSplitter {
            stream,
            max_len: if max_len == 0 { usize::MAX } else { max_len },
            strip_cr: false,
            pending: Vec::new(),
        }
    }

    /// Drop the `\r` of a `\r\n` line ending, as containerd does.
    pub fn strip_crlf(mut self, strip: bool) -> Self {
        self.strip_cr = strip;
        self
    }

    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Whether some output is waiting for the rest of its line.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Feed the next chunk of output, received at `timestamp`; `out` is called
    /// for every entry that the chunk completes, in order.
    pub fn push(&mut self, chunk: &[u8], timestamp: DateTime<Utc>, mut out: impl FnMut(Entry<'_>)) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.feed(&rest[..nl], true, timestamp, &mut out);
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() {
            self.feed(rest, false, timestamp, &mut out);
        }
    }

    /// End of stream (or a deliberate cut): emit whatever is waiting as `P`
    /// entries, because the output really did stop without a newline.
    pub fn flush(&mut self, timestamp: DateTime<Utc>, mut out: impl FnMut(Entry<'_>)) {
        let mut rest = &self.pending[..];
        while !rest.is_empty() {
            let n = rest.len().min(self.max_len);
            out(self.entry(Tag::Partial, &rest[..n], timestamp));
            rest = &rest[n..];
        }
        self.pending.clear();
    }

    fn entry<'a>(&self, tag: Tag, content: &'a [u8], timestamp: DateTime<Utc>) -> Entry<'a> {
        Entry {
            timestamp,
            stream: self.stream,
            tag,
            content,
        }
    }

    /// Handle `data`, the part of the current line contained in one chunk;
    /// `complete` says whether a `\n` followed it.
    fn feed(
        &mut self,
        mut data: &[u8],
        complete: bool,
        timestamp: DateTime<Utc>,
        out: &mut impl FnMut(Entry<'_>),
    ) {
        let max = self.max_len;
        // The '\r' of a CRLF is the last byte of the line: in this chunk, or
        // already held in `pending` when the chunk starts with the '\n'.
        let mut strip_pending_cr = false;
        if complete && self.strip_cr {
            match data.strip_suffix(b"\r") {
                Some(stripped) => data = stripped,
                None => strip_pending_cr = data.is_empty(),
            }
        }
        if !self.pending.is_empty() {
            // Copy only what is needed to finish a piece; once the held bytes are
            // gone, the rest of `data` is emitted straight from the chunk.
            loop {
                let take = max.saturating_sub(self.pending.len()).min(data.len());
                self.pending.extend_from_slice(&data[..take]);
                data = &data[take..];
                if data.is_empty() {
                    break;
                }
                if !complete && self.strip_cr && data == b"\r" && self.pending.len() == max {
                    // If a '\n' comes next this '\r' vanishes and the line is
                    // exactly `max` bytes, which must be an F, not P + F.
                    self.pending.push(b'\r');
                    return;
                }
                out(self.entry(Tag::Partial, &self.pending[..max], timestamp));
                self.pending.drain(..max);
                if self.pending.is_empty() {
                    break;
                }
            }
            if !self.pending.is_empty() {
                if complete {
                    self.finish_pending(strip_pending_cr, timestamp, out);
                }
                return;
            }
        }

        if complete {
            let mut line = data;
            while line.len() > max {
                out(self.entry(Tag::Partial, &line[..max], timestamp));
                line = &line[max..];
            }
            out(self.entry(Tag::Full, line, timestamp));
        } else {
            // Emitting a piece is only right once the line is known to be longer
            // than `max`; a trailing '\r' may still turn out to be half a CRLF.
            let keep = if self.strip_cr && data.last() == Some(&b'\r') {
                max.saturating_add(1)
            } else {
                max
            };
            while data.len() > keep {
                out(self.entry(Tag::Partial, &data[..max], timestamp));
                data = &data[max..];
            }
            self.pending.extend_from_slice(data);
        }
    }

    fn finish_pending(
        &mut self,
        strip_cr: bool,
        timestamp: DateTime<Utc>,
        out: &mut impl FnMut(Entry<'_>),
    ) {
        let mut line = &self.pending[..];
        if strip_cr {
            line = line.strip_suffix(b"\r").unwrap_or(line);
        }
        while line.len() > self.max_len {
            out(self.entry(Tag::Partial, &line[..self.max_len], timestamp));
            line = &line[self.max_len..];
        }
        out(self.entry(Tag::Full, line, timestamp));
        self.pending.clear();
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Append `entry` as one CRI log line (with its `\n`) to `buf`.
///
/// Appending rather than overwriting lets a caller batch several entries into
/// one write; clear the buffer between batches to reuse it.
pub fn encode(entry: &Entry<'_>, buf: &mut Vec<u8>) {
    buf.reserve(TIMESTAMP_LEN + " stdout P \n".len() + entry.content.len());
    encode_timestamp(entry.timestamp, buf);
    buf.push(b' ');
    buf.extend_from_slice(entry.stream.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(entry.tag.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(entry.content);
    buf.push(b'\n');
}

/// Append `ts` as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (always nine fraction digits).
pub fn encode_timestamp(ts: DateTime<Utc>, buf: &mut Vec<u8>) {
    // chrono represents a leap second as second 59 with nanoseconds >= 1e9.
    let (second, nanos) = match ts.nanosecond() {
        n if n >= 1_000_000_000 => (60, n - 1_000_000_000),
        n => (ts.second(), n),
    };
    let year = ts.year();
    if year < 0 {
        buf.push(b'-');
    }
    push_digits(buf, year.unsigned_abs(), 4);
    buf.push(b'-');
    push_digits(buf, ts.month(), 2);
    buf.push(b'-');
    push_digits(buf, ts.day(), 2);
    buf.push(b'T');
    push_digits(buf, ts.hour(), 2);
    buf.push(b':');
    push_digits(buf, ts.minute(), 2);
    buf.push(b':');
    push_digits(buf, second, 2);
    buf.push(b'.');
    push_digits(buf, nanos, 9);
    buf.push(b'Z');
}

fn push_digits(buf: &mut Vec<u8>, mut value: u32, min_width: usize) {
    let mut digits = [b'0'; 10];
    let mut start = digits.len();
    while value > 0 {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    start = start.min(digits.len() - min_width.min(digits.len()));
    buf.extend_from_slice(&digits[start..]);
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Why a line is not a valid CRI log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("CRI log line has no {0} field")]
    MissingField(&'static str),
    #[error("invalid CRI log timestamp {0:?}")]
    InvalidTimestamp(String),
    #[error("invalid CRI log stream {0:?} (want stdout or stderr)")]
    InvalidStream(String),
    #[error("invalid CRI log tag {0:?} (want P or F)")]
    InvalidTag(String),
    #[error("CRI log line contains a newline inside its content")]
    EmbeddedNewline,
}

/// Parse one CRI log line, with or without its trailing `\n`.
///
/// Accepts what the kubelet accepts: any RFC 3339 timestamp (trimmed or fixed
/// fraction, `Z` or numeric offset; converted to UTC) and tags followed by
/// further `:`-separated tags, of which only the first is interpreted. Unlike
/// the kubelet, a first tag other than `P` or `F` is an error rather than
/// silently meaning "full".
pub fn parse_line(line: &[u8]) -> Result<Entry<'_>, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (ts_field, rest) = split_field(line).ok_or(ParseError::MissingField("timestamp"))?;
    let timestamp = parse_timestamp(ts_field)?;
    let (stream_field, rest) = split_field(rest).ok_or(ParseError::MissingField("stream"))?;
    let stream = match stream_field {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => return Err(ParseError::InvalidStream(excerpt(other))),
    };
    let (tag_field, content) = split_field(rest).ok_or(ParseError::MissingField("tag"))?;
    let first_tag = tag_field.split(|&b| b == b':').next().unwrap_or(tag_field);
    let tag = match first_tag {
        b"P" => Tag::Partial,
        b"F" => Tag::Full,
        _ => return Err(ParseError::InvalidTag(excerpt(tag_field))),
    };
    if content.contains(&b'\n') {
        return Err(ParseError::EmbeddedNewline);
    }
    Ok(Entry {
        timestamp,
        stream,
        tag,
        content,
    })
}

/// Parse a CRI log timestamp field into UTC.
///
/// A time whose UTC year is outside 0000-9999 (possible with an offset at
/// either end) is rejected: RFC 3339, and so [`encode_timestamp`], has no
/// form for it. Docker stamps its log messages in the same form, so one
/// parser reads both.
pub fn parse_timestamp(field: &[u8]) -> Result<DateTime<Utc>, ParseError> {
    crate::docker::log_stream::parse_timestamp(field)
        .ok_or_else(|| ParseError::InvalidTimestamp(excerpt(field)))
}

/// Split at the first space: the field before it and everything after it.
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

/// Bounded, printable copy of a bad field for an error message.
fn excerpt(bytes: &[u8]) -> String {
    const LIMIT: usize = 64;
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(LIMIT)]).into_owned();
    if bytes.len() > LIMIT {
        s.push('…');
    }
    s
}

// ---------------------------------------------------------------------------
// The log file
// ---------------------------------------------------------------------------

const WRITE_BUFFER: usize = 64 * 1024;
/// A scratch buffer that grew past this for one huge chunk is released after
/// use rather than kept for the container's lifetime.
const SCRATCH_KEEP: usize = 1024 * 1024;

/// A container's CRI log file, opened for appending.
///
/// Writes are buffered: call [`flush`](Self::flush) when output goes idle so
/// readers (`kubectl logs -f`) see it, and [`close`](Self::close) at the end;
/// dropping a `LogFile` discards whatever is still buffered. A write future
/// that is cancelled midway may leave a partial line in the file.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    /// The pod's log directory and the file's path inside it: every open
    /// resolves the path beneath the directory (see [`open_beneath`]).
    dir: PathBuf,
    relative: PathBuf,
    writer: BufWriter<File>,
    scratch: Vec<u8>,
}

impl LogFile {
    /// Open (creating if needed, but not its directory) the log file at
    /// `path`, beneath the directory that holds it.
    pub async fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("container log path {} names no file", path.display()),
            ));
        };
        Self::open_beneath(dir.to_path_buf(), PathBuf::from(name)).await
    }

    /// Open (creating it and its directories if needed) the log file at
    /// `relative` inside the pod's log directory `dir`. No symlink inside
    /// `dir` is followed or created through: the file is written in the
    /// pod's directory or not at all.
    ///
    /// If the file ends in the middle of a line, for instance after a crash,
    /// that incomplete line is cut off (see [`last_timestamp`]: writing
    /// resumes after the last complete line).
    pub async fn open_beneath(dir: PathBuf, relative: PathBuf) -> io::Result<Self> {
        let file = open_log(&dir, &relative).await?;
        Ok(LogFile {
            path: dir.join(&relative),
            dir,
            relative,
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            scratch: Vec::new(),
        })
    }

    /// Timestamp of the last complete line in the file (see
    /// [`last_timestamp`]), read through the open file rather than the path.
    pub async fn last_timestamp(&mut self) -> io::Result<Option<DateTime<Utc>>> {
        self.writer.flush().await?;
        let file = self.writer.get_mut();
        let len = file.metadata().await?.len();
        last_timestamp_in(file, len).await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry.
    pub async fn write_entry(&mut self, entry: &Entry<'_>) -> io::Result<()> {
        self.scratch.clear();
        encode(entry, &mut self.scratch);
        self.write_scratch().await
    }

    /// Split `chunk` with `splitter` and append the resulting entries in one
    /// write. The splitter's callback cannot await, so entries are encoded into
    /// a reused buffer first.
    pub async fn write_output(
        &mut self,
        splitter: &mut LineSplitter,
        chunk: &[u8],
        timestamp: DateTime<Utc>,
    ) -> io::Result<()> {
        self.scratch.clear();
        let scratch = &mut self.scratch;
        splitter.push(chunk, timestamp, |entry| encode(&entry, scratch));
        self.write_scratch().await
    }

    /// Append what `splitter` still holds (see [`LineSplitter::flush`]); for the
    /// end of a stream.
    pub async fn finish_output(
        &mut self,
        splitter: &mut LineSplitter,
        timestamp: DateTime<Utc>,
    ) -> io::Result<()> {
        self.scratch.clear();
        let scratch = &mut self.scratch;
        splitter.flush(timestamp, |entry| encode(&entry, scratch));
        self.write_scratch().await
    }

    async fn write_scratch(&mut self) -> io::Result<()> {
        let result = if self.scratch.is_empty() {
            Ok(())
        } else {
            self.writer.write_all(&self.scratch).await
        };
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        result
    }

    /// Push buffered lines to the file.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().await
    }

    /// Switch to a fresh file at the same path, for `ReopenContainerLog`.
    ///
    /// The kubelet renames the current file away before asking, so buffered
    /// lines are flushed into the old (renamed) file first: they belong to it.
    /// On error the current file stays in use and nothing buffered is dropped,
    /// so the call can be retried (the kubelet renames the file back on error).
    pub async fn reopen(&mut self) -> io::Result<()> {
        self.writer.flush().await?;
        let file = open_log(&self.dir, &self.relative).await?;
        let old = std::mem::replace(
            &mut self.writer,
            BufWriter::with_capacity(WRITE_BUFFER, file),
        );
        let mut old = old.into_inner();
        old.shutdown().await
    }

    /// Flush and close the file.
    pub async fn close(mut self) -> io::Result<()> {
        self.writer.flush().await?;
        self.writer.shutdown().await
    }
}

async fn open_log(dir: &Path, relative: &Path) -> io::Result<File> {
    let path = dir.join(relative);
    let (dir_owned, relative_owned) = (dir.to_path_buf(), relative.to_path_buf());
    let file = tokio::task::spawn_blocking(move || open_beneath(&dir_owned, &relative_owned))
        .await
        .map_err(io::Error::other)?
        .map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("open container log {}: {err}", path.display()),
            )
        })?;
    let mut file = File::from_std(file);
    // One writer per file, even across processes: a second shim on the same
    // Docker (or one started while the old one still runs) must not
    // interleave its own copy of the lines. The lock goes with the file.
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |err| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is being written by another process: {err}",
                    path.display()
                ),
            )
        },
    )?;
    truncate_torn_line(&path, &mut file).await?;
    Ok(file)
}

/// Opens `relative` inside `dir` for appending, creating it and its parent
/// directories, one component at a time with `O_NOFOLLOW`.
///
/// The pod's log directory is shared with the kubelet and possibly with
/// hostPath mounts: anyone who can write there could plant a symlink at
/// the file's name or at one of its directories, and have container output
/// appended to (or a file created at) any path. Opening each component
/// relative to the last, never following a symlink, keeps every write
/// beneath `dir`; a symlink anywhere below `dir` is an error (ELOOP or
/// ENOTDIR), and a dangling one's target is not created. `dir` itself is
/// the kubelet's and is trusted.
fn open_beneath(dir: &Path, relative: &Path) -> io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    use std::path::Component;

    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the log path must stay inside the pod's log directory",
                ));
            }
        }
    }
    let Some((name, parents)) = parts.split_last() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the log path names no file",
        ));
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut at = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for part in parents {
        match rustix::fs::mkdirat(&at, *part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(err) => return Err(err.into()),
        }
        at = rustix::fs::openat(&at, *part, dir_flags, Mode::empty())?;
    }
    // Read access is only for checking the last byte; O_APPEND still puts
    // every write at the end whatever the read position is.
    let fd = rustix::fs::openat(
        &at,
        *name,
        OFlags::RDWR | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o640),
    )?;
    let file = std::fs::File::from(fd);
    // A FIFO or device planted at the name is no log file.
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(
            "refusing a container log path that is not a regular file",
        ));
    }
    Ok(file)
}

/// Cuts an incomplete last line (a write torn by a crash) off the file. The
/// writer resumes after the last complete line, by its timestamp, so the cut
/// line is written again in full rather than left as a fragment.
///
/// Only a file this writer made is repaired: the complete line before the
/// fragment must be a CRI log line. Any other file is left as it is (the
/// path is checked to be the pod's, but what is already there may not be
/// ours to cut).
async fn truncate_torn_line(path: &Path, file: &mut File) -> io::Result<()> {
    let len = file.metadata().await?.len();
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::End(-1)).await?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last).await?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // The last complete line: between the last two newlines, read from the
    // end in one window (a line of ours is at most WRITTEN_LINE_MAX).
    let window = len.min(WRITTEN_LINE_MAX + SCAN_BLOCK as u64);
    let mut tail = vec![0u8; usize::try_from(window).unwrap_or(SCAN_BLOCK)];
    file.seek(SeekFrom::Start(len - window)).await?;
    file.read_exact(&mut tail).await?;
    let ours = match tail.iter().rposition(|b| *b == b'\n') {
        Some(end) => {
            let start = tail[..end]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            // A line cut by the window's start is not a whole line.
            let whole = start > 0 || window == len;
            let keep = len - window + end as u64 + 1;
            (whole && parse_line(&tail[start..end]).is_ok()).then_some(keep)
        }
        None => None,
    };
    let Some(keep) = ours else {
        tracing::warn!(path = %path.display(), "container log ends with an incomplete line but holds no CRI log line before it; leaving the file as it is");
        return Ok(());
    };
    tracing::warn!(path = %path.display(), bytes = len - keep, "container log ends with an incomplete line; cutting it");
    file.set_len(keep).await?;
    Ok(())
}

/// Longest line the writer writes: a header (timestamp, stream, tag) and at
/// most [`DEFAULT_MAX_LINE_LEN`] bytes of content, with room to spare.
const WRITTEN_LINE_MAX: u64 = 64 * 1024;

// ---------------------------------------------------------------------------
// Resuming
// ---------------------------------------------------------------------------

const SCAN_BLOCK: usize = 32 * 1024;
/// Enough for any header (timestamp with offset, stream, tags).
const HEADER_PROBE: usize = 256;
/// Unparseable lines skipped before giving up.
const MAX_LINES_TRIED: usize = 16;
/// Backward scanning stops here; only lines written without a length limit
/// can be longer.
const MAX_SCAN: u64 = 16 * 1024 * 1024;

/// Timestamp of the last complete line of the CRI log at `path`, reading only
/// the end of the file. A trailing line without `\n` (still being written, or
/// torn by a crash) is ignored, as are unparseable lines. `None` when the file
/// is missing, unreadable or holds no valid complete line.
pub async fn last_timestamp(path: impl AsRef<Path>) -> Option<DateTime<Utc>> {
    let path = path.as_ref();
    match scan_last_timestamp(path).await {
        Ok(ts) => ts,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read container log to resume");
            None
        }
    }
}

async fn scan_last_timestamp(path: &Path) -> io::Result<Option<DateTime<Utc>>> {
    let mut file = File::open(path).await?;
    let len = file.metadata().await?.len();
    last_timestamp_in(&mut file, len).await
}

/// The scan behind [`last_timestamp`], over any seekable reader of `len`
/// bytes (a file, or a `std::io::Cursor` for tests and fuzzing).
pub async fn last_timestamp_in<R>(file: &mut R, len: u64) -> io::Result<Option<DateTime<Utc>>>
where
    R: AsyncRead + AsyncSeek + Unpin,
{
    let mut scan = BackwardScan {
        block: Vec::new(),
        budget: MAX_SCAN,
    };
    let Newline::At(mut line_end) = scan.rfind_newline(file, len).await? else {
        return Ok(None);
    };
    for _ in 0..MAX_LINES_TRIED {
        let line_start = match scan.rfind_newline(file, line_end).await? {
            Newline::At(nl) => nl + 1,
            Newline::StartOfFile => 0,
            Newline::GaveUp => return Ok(None),
        };
        let probe =
            usize::try_from(line_end - line_start).map_or(HEADER_PROBE, |n| n.min(HEADER_PROBE));
        let header = &mut scan.block;
        header.resize(probe, 0);
        file.seek(SeekFrom::Start(line_start)).await?;
        file.read_exact(header).await?;
        if let Ok(entry) = parse_line(header) {
            return Ok(Some(entry.timestamp));
        }
        if line_start == 0 {
            return Ok(None);
        }
        line_end = line_start - 1;
    }
    Ok(None)
}

enum Newline {
    At(u64),
    StartOfFile,
    GaveUp,
}

struct BackwardScan {
    block: Vec<u8>,
    /// Bytes that may still be read; caps the cost of a pathological file.
    budget: u64,
}

impl BackwardScan {
    /// Position of the last `\n` before offset `end`, reading backwards in blocks.
    async fn rfind_newline<R>(&mut self, file: &mut R, mut end: u64) -> io::Result<Newline>
    where
        R: AsyncRead + AsyncSeek + Unpin,
    {
        while end > 0 {
            if self.budget == 0 {
                return Ok(Newline::GaveUp);
            }
            let n = end.min(SCAN_BLOCK as u64).min(self.budget);
            let start = end - n;
            self.budget -= n;
            self.block.resize(n as usize, 0);
            file.seek(SeekFrom::Start(start)).await?;
            file.read_exact(&mut self.block).await?;
            if let Some(i) = self.block.iter().rposition(|&b| b == b'\n') {
                return Ok(Newline::At(start + i as u64));
            }
            end = start;
        }
        Ok(Newline::StartOfFile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn ts(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).unwrap()
    }

    const T0: i64 = 1_795_728_940; // 2026-11-26T21:35:40Z

    type Owned = (Tag, Vec<u8>);

    fn split_all(splitter: &mut LineSplitter, chunks: &[&[u8]]) -> Vec<Owned> {
        let mut got = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, ts(T0, 0), |e| got.push((e.tag, e.content.to_vec())));
        }
        splitter.flush(ts(T0, 0), |e| got.push((e.tag, e.content.to_vec())));
        got
    }

    fn split(max: usize, strip: bool, chunks: &[&[u8]]) -> Vec<Owned> {
        split_all(
            &mut LineSplitter::new(Stream::Stdout, max).strip_crlf(strip),
            chunks,
        )
    }

    fn full(s: &[u8]) -> Owned {
        (Tag::Full, s.to_vec())
    }

    fn part(s: &[u8]) -> Owned {
        (Tag::Partial, s.to_vec())
    }

    /// Tiny deterministic PRNG (xorshift64*) so the chunking test needs no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A unique directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> Self {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let unique = format!(
                "crilog-{}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                name
            );
            let dir = std::env::temp_dir().join(unique);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn path(&self, file: &str) -> PathBuf {
            self.0.join(file)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn parse_file(path: &Path) -> Vec<(DateTime<Utc>, Stream, Tag, Vec<u8>)> {
        let data = std::fs::read(path).unwrap();
        assert!(
            data.is_empty() || data.ends_with(b"\n"),
            "file must end with a newline"
        );
        data.split_inclusive(|&b| b == b'\n')
            .map(|line| {
                let e = parse_line(line).unwrap();
                (e.timestamp, e.stream, e.tag, e.content.to_vec())
            })
            .collect()
    }

    // --- format ---

    #[test]
    fn encode_matches_the_documented_format() {
        let entry = Entry {
            timestamp: ts(T0, 292_383_669),
            stream: Stream::Stdout,
            tag: Tag::Full,
            content: b"hello world",
        };
        let mut buf = Vec::new();
        encode(&entry, &mut buf);
        assert_eq!(
            buf,
            b"2026-11-26T21:35:40.292383669Z stdout F hello world\n"
        );
    }

    #[test]
    fn timestamp_always_has_nine_fraction_digits() {
        let mut buf = Vec::new();
        encode_timestamp(ts(T0, 0), &mut buf);
        assert_eq!(buf, b"2026-11-26T21:35:40.000000000Z");
        buf.clear();
        encode_timestamp(ts(T0, 120_000_000), &mut buf);
        assert_eq!(buf, b"2026-11-26T21:35:40.120000000Z");
        assert_eq!(buf.len(), TIMESTAMP_LEN);
        buf.clear();
        encode_timestamp(ts(-62_135_596_800, 5), &mut buf); // year 1
        assert_eq!(buf, b"0001-01-01T00:00:00.000000005Z");
    }

    #[test]
    fn round_trip_encode_parse() {
        let cases: [(DateTime<Utc>, Stream, Tag, &[u8]); 6] = [
            (ts(T0, 1), Stream::Stdout, Tag::Full, b"plain"),
            (
                ts(T0, 999_999_999),
                Stream::Stderr,
                Tag::Partial,
                b"with  spaces  ",
            ),
            (ts(0, 0), Stream::Stdout, Tag::Full, b""),
            (ts(T0, 5), Stream::Stderr, Tag::Full, b" leading space"),
            (
                ts(T0, 7),
                Stream::Stdout,
                Tag::Partial,
                b"\xff\xfe\x00 bytes\r",
            ),
            (
                ts(4_102_444_799, 123),
                Stream::Stdout,
                Tag::Full,
                "ünï✓🦀".as_bytes(),
            ),
        ];
        let mut buf = Vec::new();
        for (t, stream, tag, content) in cases {
            buf.clear();
            let entry = Entry {
                timestamp: t,
                stream,
                tag,
                content,
            };
            encode(&entry, &mut buf);
            assert_eq!(parse_line(&buf).unwrap(), entry);
            assert_eq!(
                parse_line(&buf[..buf.len() - 1]).unwrap(),
                entry,
                "without \\n"
            );
        }
    }

    #[test]
    fn parser_accepts_other_runtimes_timestamps_and_extra_tags() {
        // containerd (Go RFC3339Nano, trimmed, no fraction at all when zero)
        let e = parse_line(b"2026-11-26T21:35:40.29238Z stdout F x\n").unwrap();
        assert_eq!(e.timestamp, ts(T0, 292_380_000));
        let e = parse_line(b"2026-11-26T21:35:40Z stderr P y").unwrap();
        assert_eq!(
            (e.timestamp, e.stream, e.tag, e.content),
            (ts(T0, 0), Stream::Stderr, Tag::Partial, &b"y"[..])
        );
        // conmon / containerd on a non-UTC host: numeric offset
        let e = parse_line(b"2026-11-26T22:35:40.000000001+01:00 stdout F z").unwrap();
        assert_eq!(e.timestamp, ts(T0, 1));
        // forward-compatible extra tags
        let e = parse_line(b"2026-11-26T21:35:40Z stdout P:future:tags c d").unwrap();
        assert_eq!((e.tag, e.content), (Tag::Partial, &b"c d"[..]));
    }

    #[test]
    fn parser_rejects_malformed_lines() {
        use ParseError::*;
        let bad: [(&[u8], ParseError); 10] = [
            (b"", MissingField("timestamp")),
            (b"no-spaces-at-all", MissingField("timestamp")),
            (b"2026-11-26T21:35:40Z stdout", MissingField("stream")),
            (b"2026-11-26T21:35:40Z stdout F", MissingField("tag")),
            (
                b"yesterday stdout F x",
                InvalidTimestamp("yesterday".into()),
            ),
            (
                b"2026-11-26 stdout F x",
                InvalidTimestamp("2026-11-26".into()),
            ),
            (
                b"\xff\xfe stdout F x",
                InvalidTimestamp("\u{fffd}\u{fffd}".into()),
            ),
            (
                b"2026-11-26T21:35:40Z stdin F x",
                InvalidStream("stdin".into()),
            ),
            (b"2026-11-26T21:35:40Z stdout X x", InvalidTag("X".into())),
            (b"2026-11-26T21:35:40Z stdout F a\nb\n", EmbeddedNewline),
        ];
        for (line, want) in bad {
            assert_eq!(
                parse_line(line),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(
            parse_line(b"2026-11-26T21:35:40Z  stdout F x").is_err(),
            "empty stream field"
        );
        assert!(
            parse_line(b"2026-11-26T21:35:40Z stdout  x").is_err(),
            "empty tag field"
        );
    }

    // --- splitting ---

    #[test]
    fn full_lines_partial_tail_and_empty_lines() {
        let got = split(DEFAULT_MAX_LINE_LEN, false, &[b"one\ntwo\n\n\nthree"]);
        assert_eq!(
            got,
            vec![
                full(b"one"),
                full(b"two"),
                full(b""),
                full(b""),
                part(b"three")
            ]
        );
        assert_eq!(
            split(DEFAULT_MAX_LINE_LEN, false, &[b"\n\n"]),
            vec![full(b""), full(b"")]
        );
        assert_eq!(split(DEFAULT_MAX_LINE_LEN, false, &[b""]), vec![]);
    }

    #[test]
    fn output_without_final_newline_is_partial_only_on_flush() {
        let mut s = LineSplitter::new(Stream::Stderr, 100);
        let mut got = Vec::new();
        s.push(b"done\nno newline", ts(T0, 0), |e| {
            got.push((e.tag, e.content.to_vec()))
        });
        assert_eq!(got, vec![full(b"done")]);
        assert!(s.has_pending());
        s.flush(ts(T0, 1), |e| got.push((e.tag, e.content.to_vec())));
        assert_eq!(got, vec![full(b"done"), part(b"no newline")]);
        assert!(!s.has_pending());
        s.flush(ts(T0, 2), |_| panic!("nothing pending"));
    }

    #[test]
    fn split_points_at_the_limit() {
        assert_eq!(split(4, false, &[b"abcd\n"]), vec![full(b"abcd")]);
        assert_eq!(
            split(4, false, &[b"abcde\n"]),
            vec![part(b"abcd"), full(b"e")]
        );
        assert_eq!(
            split(4, false, &[b"abcdefgh\n"]),
            vec![part(b"abcd"), full(b"efgh")]
        );
        assert_eq!(split(4, false, &[b"abcd"]), vec![part(b"abcd")]);
        assert_eq!(
            split(4, false, &[b"abcdefghi"]),
            vec![part(b"abcd"), part(b"efgh"), part(b"i")]
        );
        // 0 means unlimited
        let long = vec![b'x'; 100_000];
        assert_eq!(split(0, false, &[&long, b"\n"]), vec![full(&long)]);
    }

    #[test]
    fn one_mib_line_is_split_and_joins_back_exactly() {
        let line: Vec<u8> = (0..1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .map(|b| if b == b'\n' { b'N' } else { b })
            .collect();
        let mut input = line.clone();
        input.push(b'\n');
        let got = split(DEFAULT_MAX_LINE_LEN, false, &[&input]);
        assert_eq!(got.len(), 64);
        let (last, pieces) = got.split_last().unwrap();
        assert!(
            pieces
                .iter()
                .all(|(tag, c)| *tag == Tag::Partial && c.len() == DEFAULT_MAX_LINE_LEN)
        );
        assert_eq!(last.0, Tag::Full);
        assert_eq!(last.1.len(), DEFAULT_MAX_LINE_LEN);
        let joined: Vec<u8> = got.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        assert_eq!(joined, line);

        // the same in 4 KiB chunks, through the encoder and parser
        let mut s = LineSplitter::new(Stream::Stdout, DEFAULT_MAX_LINE_LEN);
        let mut file = Vec::new();
        for chunk in input.chunks(4096) {
            s.push(chunk, ts(T0, 0), |e| encode(&e, &mut file));
        }
        let mut rebuilt = Vec::new();
        let mut tags = Vec::new();
        for l in file.split_inclusive(|&b| b == b'\n') {
            let e = parse_line(l).unwrap();
            tags.push(e.tag);
            rebuilt.extend_from_slice(e.content);
        }
        assert_eq!(rebuilt, line);
        assert_eq!(tags.iter().filter(|t| **t == Tag::Partial).count(), 63);
        assert_eq!(tags.last(), Some(&Tag::Full));
    }

    /// Found with the `cri_log` fuzz target's check that every line that
    /// parses is written back as one that parses: a year-0000 time with a
    /// positive offset (or 9999 with a negative one) is outside 0000-9999
    /// in UTC, where RFC 3339 and `encode_timestamp` have no form for it.
    #[test]
    fn timestamps_outside_four_digit_years_in_utc_are_rejected() {
        for field in [
            &b"0000-01-01T00:00:00+00:01"[..],
            b"9999-12-31T23:59:59-01:00",
        ] {
            assert!(
                matches!(parse_timestamp(field), Err(ParseError::InvalidTimestamp(_))),
                "{}",
                String::from_utf8_lossy(field)
            );
        }
        for field in [&b"0000-01-01T00:00:00Z"[..], b"9999-12-31T23:59:59Z"] {
            let ts = parse_timestamp(field).unwrap();
            let mut text = Vec::new();
            encode_timestamp(ts, &mut text);
            assert_eq!(parse_timestamp(&text), Ok(ts));
        }
    }

    #[test]
    fn non_utf8_bytes_are_preserved() {
        let input: &[u8] = b"\xff\xfe\x80\x00\x01\xc3(\n\xe2\x82";
        let got = split(DEFAULT_MAX_LINE_LEN, false, &[input]);
        assert_eq!(
            got,
            vec![full(b"\xff\xfe\x80\x00\x01\xc3("), part(b"\xe2\x82")]
        );
        let mut buf = Vec::new();
        for (tag, content) in &got {
            buf.clear();
            let e = Entry {
                timestamp: ts(T0, 0),
                stream: Stream::Stdout,
                tag: *tag,
                content,
            };
            encode(&e, &mut buf);
            assert_eq!(parse_line(&buf).unwrap().content, &content[..]);
        }
    }

    #[test]
    fn carriage_return_is_content_by_default() {
        assert_eq!(split(100, false, &[b"dos\r\n"]), vec![full(b"dos\r")]);
        assert_eq!(split(100, false, &[b"dos\r", b"\n"]), vec![full(b"dos\r")]);
        assert_eq!(
            split(100, false, &[b"progress 10%\rprogress 20%\n"]),
            vec![full(b"progress 10%\rprogress 20%")]
        );
        assert_eq!(
            split(3, false, &[b"abc\r\n"]),
            vec![part(b"abc"), full(b"\r")]
        );
    }

    #[test]
    fn containerd_style_crlf_stripping() {
        assert_eq!(split(100, true, &[b"dos\r\n"]), vec![full(b"dos")]);
        assert_eq!(split(100, true, &[b"dos\r", b"\n"]), vec![full(b"dos")]);
        assert_eq!(split(100, true, &[b"a\r\r\n"]), vec![full(b"a\r")]);
        assert_eq!(split(100, true, &[b"10%\r20%\n"]), vec![full(b"10%\r20%")]);
        assert_eq!(split(100, true, &[b"\r\n"]), vec![full(b"")]);
        // a CRLF right after the limit does not make the line longer than it
        assert_eq!(split(3, true, &[b"abc\r\n"]), vec![full(b"abc")]);
        assert_eq!(split(3, true, &[b"abc\r", b"\n"]), vec![full(b"abc")]);
        assert_eq!(split(3, true, &[b"ab", b"c\r", b"\n"]), vec![full(b"abc")]);
        assert_eq!(split(3, true, &[b"abc", b"\r", b"\n"]), vec![full(b"abc")]);
        assert_eq!(
            split(3, true, &[b"abc\r", b"d\n"]),
            vec![part(b"abc"), full(b"\rd")]
        );
        assert_eq!(
            split(3, true, &[b"abc", b"\r", b"\r\n"]),
            vec![part(b"abc"), full(b"\r")]
        );
        // output that stops after '\r' keeps it (there was no CRLF)
        assert_eq!(split(3, true, &[b"abc\r"]), vec![part(b"abc"), part(b"\r")]);
        assert_eq!(split(100, true, &[b"abc\r"]), vec![part(b"abc\r")]);
    }

    #[test]
    fn chunk_boundaries_do_not_change_the_entries() {
        let mut input = Vec::new();
        input.extend_from_slice("héllo wörld ✓ 🦀 ünïcödé\n".as_bytes());
        input.extend_from_slice(b"\n\n");
        input.extend_from_slice(b"crlf line\r\n");
        input.extend_from_slice(b"bare\rcr\r\r\n");
        input.extend_from_slice(b"abcdefg\r\nabcdef\r\n");
        input.extend_from_slice(b"\xff\xfe\x00\x80 binary\n");
        input.extend_from_slice(
            "a long line of ✓✓✓✓✓✓✓✓ multibyte 🦀🦀🦀 text that spans many pieces\n".as_bytes(),
        );
        input.extend_from_slice(b"exactly\nexactly7\n");
        input.extend_from_slice(
            "ends mid-character \u{2713}"
                .as_bytes()
                .split_last()
                .unwrap()
                .1,
        );

        for max in [7, 16, DEFAULT_MAX_LINE_LEN] {
            for strip in [false, true] {
                let reference = split(max, strip, &[&input]);
                let joined: Vec<u8> = reference
                    .iter()
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                if !strip {
                    let newlines = input.iter().filter(|&&b| b == b'\n').count();
                    assert_eq!(
                        joined.len() + newlines,
                        input.len(),
                        "no byte lost or added"
                    );
                }
                // every single cut point, including right before and after each '\n'
                for cut in 0..=input.len() {
                    let (a, b) = input.split_at(cut);
                    assert_eq!(
                        split(max, strip, &[a, b]),
                        reference,
                        "max {max} strip {strip} cut {cut}"
                    );
                }
                // byte by byte
                let bytes: Vec<&[u8]> = input.chunks(1).collect();
                assert_eq!(
                    split(max, strip, &bytes),
                    reference,
                    "max {max} strip {strip} bytewise"
                );
                // random chunkings
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ max as u64);
                for round in 0..200 {
                    let mut chunks = Vec::new();
                    let mut rest = &input[..];
                    while !rest.is_empty() {
                        let n = 1 + rng.below(rest.len().min(24));
                        let (a, b) = rest.split_at(n);
                        chunks.push(a);
                        rest = b;
                    }
                    assert_eq!(
                        split(max, strip, &chunks),
                        reference,
                        "max {max} strip {strip} round {round}"
                    );
                }
            }
        }
    }

    /// Straightforward whole-input definition of the splitting rules.
    fn model(input: &[u8], max: usize, strip: bool) -> Vec<Owned> {
        let mut got = Vec::new();
        let mut segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let tail = segments.pop().unwrap_or_default();
        for mut line in segments {
            if strip {
                line = line.strip_suffix(b"\r").unwrap_or(line);
            }
            while line.len() > max {
                got.push(part(&line[..max]));
                line = &line[max..];
            }
            got.push(full(line));
        }
        got.extend(tail.chunks(max).map(part));
        got
    }

    #[test]
    fn matches_a_simple_model_on_random_inputs() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for case in 0..2000 {
            let len = rng.below(40);
            let input: Vec<u8> = (0..len).map(|_| b"ab\r\r\n"[rng.below(5)]).collect();
            let max = 1 + rng.below(6);
            let strip = case % 2 == 0;
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (a, b) = rest.split_at(1 + rng.below(rest.len().min(8)));
                chunks.push(a);
                rest = b;
            }
            assert_eq!(
                split(max, strip, &chunks),
                model(&input, max, strip),
                "input {:?} max {max} strip {strip} chunks {chunks:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn entries_get_the_timestamp_of_the_call_that_emits_them() {
        let mut s = LineSplitter::new(Stream::Stdout, 4);
        let mut got = Vec::new();
        let mut record = |e: Entry<'_>| got.push((e.timestamp, e.tag, e.content.to_vec()));
        s.push(b"ab", ts(T0, 1), &mut record);
        s.push(b"c\nd", ts(T0, 2), &mut record);
        s.push(b"efghij", ts(T0, 3), &mut record);
        s.flush(ts(T0, 4), &mut record);
        assert_eq!(
            got,
            vec![
                (ts(T0, 2), Tag::Full, b"abc".to_vec()),
                (ts(T0, 3), Tag::Partial, b"defg".to_vec()),
                (ts(T0, 4), Tag::Partial, b"hij".to_vec()),
            ]
        );
    }

    // --- file ---

    #[tokio::test]
    async fn log_file_write_flush_and_reopen_after_rename() {
        let dir = TempDir::new("reopen");
        let path = dir.path("0.log");
        let rotated = dir.path("0.log.20261126-213540");
        let mut log = LogFile::open(&path).await.unwrap();
        let mut out = LineSplitter::new(Stream::Stdout, 8);
        let mut err = LineSplitter::new(Stream::Stderr, 8);

        let mut expected = Vec::new();
        for i in 0..100u32 {
            let line = format!("line {i}\n");
            expected.push(line);
            let splitter = if i % 3 == 0 { &mut err } else { &mut out };
            log.write_output(splitter, expected.last().unwrap().as_bytes(), ts(T0, i))
                .await
                .unwrap();
            if i == 10 {
                log.flush().await.unwrap();
            }
            if i == 49 {
                // Buffered lines 11..=49 are not flushed yet: reopen must put
                // them into the renamed file, where the kubelet expects them.
                std::fs::rename(&path, &rotated).unwrap();
                log.reopen().await.unwrap();
            }
        }
        log.write_entry(&Entry {
            timestamp: ts(T0, 1000),
            stream: Stream::Stdout,
            tag: Tag::Full,
            content: b"direct",
        })
        .await
        .unwrap();
        log.write_output(&mut out, b"tail", ts(T0, 1001))
            .await
            .unwrap();
        log.finish_output(&mut out, ts(T0, 1002)).await.unwrap();
        log.close().await.unwrap();

        let old = parse_file(&rotated);
        let new = parse_file(&path);
        let rebuild = |entries: &[(DateTime<Utc>, Stream, Tag, Vec<u8>)]| {
            let mut text = Vec::new();
            for (_, _, tag, content) in entries {
                text.extend_from_slice(content);
                if *tag == Tag::Full {
                    text.push(b'\n');
                }
            }
            String::from_utf8(text).unwrap()
        };
        assert_eq!(rebuild(&old), expected[..50].concat());
        assert_eq!(rebuild(&new), expected[50..].concat() + "direct\ntail");
        // streams and per-line timestamps survive
        for (t, stream, tag, _) in old.iter().chain(&new) {
            if *tag == Tag::Full && t.nanosecond() < 100 {
                let i = t.nanosecond();
                assert_eq!(*stream == Stream::Stderr, i % 3 == 0, "line {i}");
            }
        }
        assert_eq!(new.last().unwrap().2, Tag::Partial);
    }

    #[tokio::test]
    async fn open_cuts_a_torn_line() {
        let dir = TempDir::new("torn");
        let path = dir.path("0.log");
        std::fs::write(&path, b"2026-11-26T21:35:40.000000000Z stdout F kept\n2026-11-26T21:35:40.000000001Z stdout F tor").unwrap();
        let mut log = LogFile::open(&path).await.unwrap();
        let mut s = LineSplitter::new(Stream::Stdout, DEFAULT_MAX_LINE_LEN);
        log.write_output(&mut s, b"after restart\n", ts(T0, 2))
            .await
            .unwrap();
        log.close().await.unwrap();
        let contents: Vec<Vec<u8>> = parse_file(&path).into_iter().map(|e| e.3).collect();
        assert_eq!(contents, vec![b"kept".to_vec(), b"after restart".to_vec()]);
    }

    #[tokio::test]
    async fn open_leaves_a_file_it_did_not_write_as_it_is() {
        let dir = TempDir::new("foreign");
        for foreign in [
            &b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534"[..],
            &b"no newline at all"[..],
        ] {
            let path = dir.path("0.log");
            std::fs::write(&path, foreign).unwrap();
            let log = LogFile::open(&path).await.unwrap();
            log.close().await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), foreign);
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn open_refuses_a_symlink_at_the_log_path() {
        let dir = TempDir::new("symlink");
        let target = dir.path("elsewhere");
        std::fs::write(&target, b"").unwrap();
        let path = dir.path("0.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(LogFile::open(&path).await.is_err());
        assert!(std::fs::read(&target).unwrap().is_empty());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_dangling_symlink_at_the_log_path_is_not_created_through() {
        let dir = TempDir::new("dangling");
        let target = dir.path("created-through-the-link");
        let path = dir.path("0.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(LogFile::open(&path).await.is_err());
        assert!(
            std::fs::symlink_metadata(&target).is_err(),
            "the link's target was created"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlinked_directory_in_the_log_path_is_not_followed() {
        let pod = TempDir::new("pod");
        let outside = TempDir::new("outside");
        std::os::unix::fs::symlink(&outside.0, pod.path("app")).unwrap();
        let opened = LogFile::open_beneath(pod.0.clone(), PathBuf::from("app/0.log")).await;
        assert!(opened.is_err());
        assert!(
            std::fs::read_dir(&outside.0).unwrap().next().is_none(),
            "nothing is created outside the pod's directory"
        );
        // Without the link, the directory and the file are made beneath it.
        std::fs::remove_file(pod.path("app")).unwrap();
        let log = LogFile::open_beneath(pod.0.clone(), PathBuf::from("app/0.log"))
            .await
            .unwrap();
        log.close().await.unwrap();
        assert!(std::fs::metadata(pod.path("app/0.log")).unwrap().is_file());
        // `..` never climbs out.
        assert!(
            LogFile::open_beneath(pod.0.clone(), PathBuf::from("../escape.log"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn last_timestamp_skips_an_incomplete_last_line() {
        let dir = TempDir::new("last");
        let path = dir.path("0.log");
        assert_eq!(last_timestamp(&path).await, None, "missing file");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(last_timestamp(&path).await, None, "empty file");
        std::fs::write(
            &path,
            b"2026-11-26T21:35:40.000000001Z stdout P no newline yet",
        )
        .unwrap();
        assert_eq!(last_timestamp(&path).await, None, "no complete line");

        let mut data = Vec::new();
        for i in 1..=3 {
            encode(
                &Entry {
                    timestamp: ts(T0, i),
                    stream: Stream::Stdout,
                    tag: Tag::Full,
                    content: b"x",
                },
                &mut data,
            );
        }
        std::fs::write(&path, &data).unwrap();
        assert_eq!(last_timestamp(&path).await, Some(ts(T0, 3)));
        data.extend_from_slice(b"2026-11-26T21:35:41.000000000Z stdout F half a li");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(last_timestamp(&path).await, Some(ts(T0, 3)));
        data.extend_from_slice(b"ne\ngarbage line\n");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(
            last_timestamp(&path).await,
            Some(ts(T0 + 1, 0)),
            "unparseable last line skipped"
        );
        // containerd-written line (trimmed fraction) is understood too
        data.extend_from_slice(b"2026-11-26T21:35:42.5Z stderr F y\n");
        std::fs::write(&path, &data).unwrap();
        assert_eq!(last_timestamp(&path).await, Some(ts(T0 + 2, 500_000_000)));
    }

    #[tokio::test]
    async fn last_timestamp_reads_only_the_end_of_a_big_file() {
        use std::io::Write;
        let dir = TempDir::new("big");
        let path = dir.path("0.log");
        // A sparse 4 GiB prefix: reading it all would take seconds, so this test
        // stays fast only if the scan really starts at the end.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(4 << 30).unwrap();
        drop(file);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut data = b"\n".to_vec();
        let long = vec![b'z'; 3 * SCAN_BLOCK + 17]; // spans several scan blocks
        for (i, content) in [&b"short"[..], &long, &b"last"[..], &long]
            .into_iter()
            .enumerate()
        {
            encode(
                &Entry {
                    timestamp: ts(T0, i as u32),
                    stream: Stream::Stdout,
                    tag: Tag::Full,
                    content,
                },
                &mut data,
            );
        }
        file.write_all(&data).unwrap();
        drop(file);
        let started = std::time::Instant::now();
        assert_eq!(last_timestamp(&path).await, Some(ts(T0, 3)));
        // an incomplete long line after it is skipped
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"2026-11-26T21:35:59.000000000Z stdout F ")
            .unwrap();
        file.write_all(&long).unwrap();
        drop(file);
        assert_eq!(last_timestamp(&path).await, Some(ts(T0, 3)));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
