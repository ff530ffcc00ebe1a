//! Docker's log stream of a TTY container, cut into bounded messages.
//!
//! With a TTY, `GET /containers/{id}/logs?timestamps=1` is not framed: it is
//! each logged message as `<RFC 3339 timestamp> <content>`, one after the
//! other. Docker's log copier ends a message at a newline, or cuts it after
//! [`LOG_MESSAGE_MAX`] bytes without one, so a long line arrives as
//! `TS1 <16 KiB>TS2 <16 KiB>TS3 <rest>\n`. Reading up to a newline, as a line
//! reader would, holds a newline-free flood in memory whole and writes none
//! of it. [`TtyMessages`] takes one message at a time and never holds more
//! than one message and one read.
//!
//! A timestamp is only looked for where Docker can have put one: at the
//! start, after a newline and after a 16 KiB cut. Inside the piece that
//! follows a cut it is looked for anywhere too, because Docker 20.10's
//! `local` driver drops the newline that ends a line longer than 16 KiB, so
//! the next message's timestamp follows that piece directly. Anywhere else a
//! string that looks like a timestamp is content.

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::log_stream::parse_timestamp;

/// Size at which Docker's log copier cuts a line into partial messages.
pub const LOG_MESSAGE_MAX: usize = 16 * 1024;
/// Longest timestamp field accepted, without its space: Docker writes
/// `2006-01-02T15:04:05.000000000Z` (30 bytes); an offset instead of `Z`
/// and a longer fraction still fit.
const TIMESTAMP_MAX: usize = 40;
/// Bytes read from Docker at a time. With one message (at most 16 KiB and
/// its timestamp) this bounds the buffer to about 48 KiB per container.
pub const READ_CHUNK: usize = 32 * 1024;

/// Whether bytes start with a Docker timestamp and its space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    /// Yes: the timestamp, and the length of the field with its space.
    Yes(DateTime<Utc>, usize),
    /// No, whatever follows.
    No,
    /// The bytes end before it can be told.
    NeedMore,
}

/// Checks the shape `YYYY-MM-DDTHH:MM:SS(.fraction)?(Z|±HH:MM) ` byte by
/// byte, so that content is never taken for a timestamp because it merely
/// starts with digits, and then parses the field as the CRI does.
fn timestamp_prefix(bytes: &[u8]) -> Prefix {
    // `d`: a digit; other bytes stand for themselves.
    const DATE_TIME: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    const OFFSET: &[u8] = b"dd:dd";
    let mut i = 0;
    // Compares bytes[i..] with a shape; `None` when the bytes end first.
    let matches = |shape: &[u8], from: usize| -> Option<bool> {
        for (k, want) in shape.iter().enumerate() {
            let got = *bytes.get(from + k)?;
            let ok = if *want == b'd' {
                got.is_ascii_digit()
            } else {
                got == *want
            };
            if !ok {
                return Some(false);
            }
        }
        Some(true)
    };
    match matches(DATE_TIME, i) {
        None => return Prefix::NeedMore,
        Some(false) => return Prefix::No,
        Some(true) => i += DATE_TIME.len(),
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += digits;
        if i >= bytes.len() {
            return if i > TIMESTAMP_MAX {
                Prefix::No
            } else {
                Prefix::NeedMore
            };
        }
        if digits == 0 {
            return Prefix::No;
        }
    }
    match bytes.get(i) {
        None => return Prefix::NeedMore,
        Some(b'Z') => i += 1,
        Some(b'+' | b'-') => match matches(OFFSET, i + 1) {
            None => return Prefix::NeedMore,
            Some(false) => return Prefix::No,
            Some(true) => i += 1 + OFFSET.len(),
        },
        Some(_) => return Prefix::No,
    }
    if i > TIMESTAMP_MAX {
        return Prefix::No;
    }
    match bytes.get(i) {
        None => Prefix::NeedMore,
        Some(b' ') => match parse_timestamp(&bytes[..i]) {
            Some(ts) => Prefix::Yes(ts, i + 1),
            // The right shape with an impossible value (month 13).
            None => Prefix::No,
        },
        Some(_) => Prefix::No,
    }
}

/// Where the decoder is in Docker's stream.
#[derive(Debug, Clone, Copy)]
enum At {
    /// At the start of a message: a timestamp comes next. `cut` holds the
    /// timestamp of the message before when that one was cut at 16 KiB
    /// without a newline.
    Start { cut: Option<DateTime<Utc>> },
    /// Inside the message stamped `ts`, its timestamp consumed. After a cut
    /// (`after_cut`) it may end without a newline where the next timestamp
    /// starts (Docker 20.10); `scanned` bytes of it are known to hold none.
    /// `searched` bytes are known to hold no newline: with small reads, a
    /// message is not searched again from its start after each one.
    Content {
        ts: DateTime<Utc>,
        after_cut: bool,
        scanned: usize,
        searched: usize,
    },
}

/// Reads a TTY container's timestamped log stream message by message. Each
/// message's content is at most [`LOG_MESSAGE_MAX`] bytes, its newline
/// included.
///
/// [`next`](Self::next) is cancel safe: every decision is made on bytes
/// already in the buffer and the only await is a read into it, so a
/// `select!` that drops the future loses nothing.
pub struct TtyMessages<R> {
    reader: R,
    buf: BytesMut,
    eof: bool,
    at: At,
    /// The last message's timestamp, for bytes that come without one.
    last: DateTime<Utc>,
}

impl<R: AsyncRead + Unpin> TtyMessages<R> {
    /// Decodes `reader`. Bytes that come before any timestamp (never from
    /// Docker) are stamped `now`.
    pub fn new(reader: R, now: DateTime<Utc>) -> Self {
        Self {
            reader,
            buf: BytesMut::new(),
            eof: false,
            at: At::Start { cut: None },
            last: now,
        }
    }

    /// The next message's timestamp and content, or `None` at the end of
    /// the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<(DateTime<Utc>, Bytes)>> {
        loop {
            if let Some(message) = self.decode() {
                return Ok(Some(message));
            }
            if self.eof {
                return Ok(None);
            }
            // At most one read at a time: a message is decided within its
            // 16 KiB and a timestamp, so the buffer never needs more.
            let mut limited = (&mut self.buf).limit(READ_CHUNK);
            if self.reader.read_buf(&mut limited).await? == 0 {
                self.eof = true;
            }
        }
    }

    /// The capacity of the decoder's buffer, for tests of the bound.
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Takes the next message out of the buffer if the buffer holds all of
    /// it (or the stream has ended).
    fn decode(&mut self) -> Option<(DateTime<Utc>, Bytes)> {
        loop {
            if self.buf.is_empty() {
                return None;
            }
            let (ts, after_cut, mut scanned, searched) = match self.at {
                At::Start { cut } => {
                    let (ts, after_cut) = match (timestamp_prefix(&self.buf), cut) {
                        (Prefix::Yes(ts, len), _) => {
                            let _ = self.buf.split_to(len);
                            (ts, cut.is_some())
                        }
                        (Prefix::NeedMore, _) if !self.eof => return None,
                        // After a cut, bytes without a timestamp are more
                        // of the same line.
                        (_, Some(ts)) => (ts, true),
                        // Not Docker's format: the bytes are kept, as
                        // content of the message before.
                        (_, None) => {
                            tracing::debug!("TTY log message without a timestamp");
                            (self.last, false)
                        }
                    };
                    self.at = At::Content {
                        ts,
                        after_cut,
                        scanned: 0,
                        searched: 0,
                    };
                    continue;
                }
                At::Content {
                    ts,
                    after_cut,
                    scanned,
                    searched,
                } => (ts, after_cut, scanned, searched),
            };
            let window = &self.buf[..self.buf.len().min(LOG_MESSAGE_MAX)];
            let newline = window[searched.min(window.len())..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|at| at + searched);
            // Docker 20.10's dropped newline: the next timestamp, before
            // any newline.
            let next = if after_cut {
                let end = newline.unwrap_or(LOG_MESSAGE_MAX).min(self.buf.len());
                match next_timestamp(&self.buf[..], scanned, end, ts, self.eof) {
                    Scan::At(k) => Some(k),
                    Scan::Upto(clear) => {
                        scanned = clear;
                        // A timestamp may start there: its rest decides.
                        if clear < end {
                            self.at = At::Content {
                                ts,
                                after_cut,
                                scanned,
                                searched: newline.unwrap_or(window.len()),
                            };
                            return None;
                        }
                        None
                    }
                }
            } else {
                None
            };
            let (len, cut) = match (next, newline) {
                (Some(k), _) => (k, false),
                (None, Some(nl)) => (nl + 1, false),
                (None, None) if window.len() == LOG_MESSAGE_MAX => (LOG_MESSAGE_MAX, true),
                // The output ended without a newline.
                (None, None) if self.eof => (self.buf.len(), false),
                (None, None) => {
                    self.at = At::Content {
                        ts,
                        after_cut,
                        scanned,
                        searched: window.len(),
                    };
                    return None;
                }
            };
            let content = self.buf.split_to(len).freeze();
            self.at = At::Start {
                cut: cut.then_some(ts),
            };
            self.last = ts;
            return Some((ts, content));
        }
    }
}

/// Where the next timestamp is in a piece after a cut.
enum Scan {
    /// It starts at this offset.
    At(usize),
    /// None starts before this offset; from there, more bytes are needed to
    /// tell (or the piece's end is reached).
    Upto(usize),
}

/// Looks in `buf` for a Docker timestamp not earlier than `ts` that starts
/// at or after `from` (and at 1 or later: a message is not empty) and
/// before `end`, the piece's end (its newline, or 16 KiB).
fn next_timestamp(buf: &[u8], from: usize, end: usize, ts: DateTime<Utc>, eof: bool) -> Scan {
    for k in from.max(1)..end {
        match timestamp_prefix(&buf[k..]) {
            Prefix::Yes(found, _) if found >= ts => return Scan::At(k),
            Prefix::NeedMore if !eof => return Scan::Upto(k),
            _ => {}
        }
    }
    Scan::Upto(end.max(from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// A reader that hands out `wire` at most `step` bytes per read.
    fn trickle(wire: &[u8], step: usize) -> impl AsyncRead + Unpin + '_ {
        let chunks = wire
            .chunks(step)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)));
        tokio_util::io::StreamReader::new(futures_util::stream::iter(chunks))
    }

    fn decode_with(reader: impl AsyncRead + Unpin) -> Vec<(DateTime<Utc>, Vec<u8>)> {
        let mut messages = TtyMessages::new(reader, ts(0));
        let mut out = Vec::new();
        while let Some((ts, content)) = messages
            .next()
            .now_or_never()
            .expect("an in-memory reader never waits")
            .expect("an in-memory reader cannot fail")
        {
            out.push((ts, content.to_vec()));
        }
        out
    }

    /// Decodes `wire` whole and a byte at a time, which must agree.
    fn decode(wire: &[u8]) -> Vec<(DateTime<Utc>, Vec<u8>)> {
        let whole = decode_with(wire);
        for step in [1, 7, 31, 4096] {
            assert_eq!(
                decode_with(trickle(wire, step)),
                whole,
                "read {step} bytes at a time"
            );
        }
        whole
    }

    fn ts(nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_728_940, nanos).expect("valid time")
    }

    const T1: &str = "2026-11-26T21:35:40.000000001Z ";
    const T2: &str = "2026-11-26T21:35:40.000000002Z ";
    const T3: &str = "2026-11-26T21:35:40.000000003Z ";

    #[test]
    fn timestamps_are_recognised_by_their_exact_shape() {
        let yes = |s: &str| matches!(timestamp_prefix(s.as_bytes()), Prefix::Yes(..));
        assert!(yes(T1));
        assert!(yes("2026-11-26T21:35:40Z x"));
        assert!(yes("2026-11-26T22:35:40.5+01:00 x"));
        assert!(!yes("2026-11-26 21:35:40Z x"));
        assert!(!yes("2026-13-26T21:35:40Z x"));
        assert!(!yes("2026-11-26T21:35:40.Z x"));
        assert!(!yes("2026-11-26T21:35:40Zx"));
        assert!(!yes("12345"));
        assert_eq!(
            timestamp_prefix(b"2026-11-26T21:35:40.0000"),
            Prefix::NeedMore
        );
        assert_eq!(timestamp_prefix(b"2026-11-26T21:35:40Z"), Prefix::NeedMore);
        assert_eq!(timestamp_prefix(b"2026-11-2x"), Prefix::No);
        let long_fraction = format!("2026-11-26T21:35:40.{}", "1".repeat(64));
        assert_eq!(timestamp_prefix(long_fraction.as_bytes()), Prefix::No);
    }

    #[test]
    fn lines_and_docker_pieces_come_apart() {
        let piece = vec![b'x'; LOG_MESSAGE_MAX];
        let mut wire = format!("{T1}hello\n").into_bytes();
        wire.extend_from_slice(T1.as_bytes());
        wire.extend_from_slice(&piece);
        wire.extend_from_slice(format!("{T2}tail\n{T3}unterminated").as_bytes());
        assert_eq!(
            decode(&wire),
            vec![
                (ts(1), b"hello\n".to_vec()),
                (ts(1), piece),
                (ts(2), b"tail\n".to_vec()),
                (ts(3), b"unterminated".to_vec()),
            ]
        );
    }

    #[test]
    fn a_timestamp_inside_content_is_content() {
        let wire = format!("{T1}said {T2}x\n{T3}{T3}y\n");
        assert_eq!(
            decode(wire.as_bytes()),
            vec![
                (ts(1), format!("said {T2}x\n").into_bytes()),
                (ts(3), format!("{T3}y\n").into_bytes()),
            ]
        );
    }

    #[test]
    fn after_a_cut_the_next_timestamp_ends_a_piece_without_newline() {
        // Docker 20.10's local driver drops the newline of a long line.
        let piece = vec![b'x'; LOG_MESSAGE_MAX];
        let mut wire = T1.as_bytes().to_vec();
        wire.extend_from_slice(&piece);
        // An earlier timestamp-looking string is content; a later one is
        // the next message.
        wire.extend_from_slice(format!("{T2}rest {T1}more{T3}next\n").as_bytes());
        assert_eq!(
            decode(&wire),
            vec![
                (ts(1), piece),
                (ts(2), format!("rest {T1}more").into_bytes()),
                (ts(3), b"next\n".to_vec()),
            ]
        );
    }

    #[test]
    fn bytes_without_a_timestamp_are_kept() {
        let piece = vec![b'x'; LOG_MESSAGE_MAX];
        // Not Docker's format: stamped as the message before.
        let mut wire = format!("{T1}a\ngarbage\n").into_bytes();
        wire.extend_from_slice(T2.as_bytes());
        wire.extend_from_slice(&piece);
        // Not Docker's cut: more of the same message, stamped as it.
        wire.extend_from_slice(b"more\n");
        wire.extend_from_slice(b"2026-11-2");
        assert_eq!(
            decode(&wire),
            [
                (ts(1), b"a\n".to_vec()),
                (ts(1), b"garbage\n".to_vec()),
                (ts(2), piece),
                (ts(2), b"more\n".to_vec()),
                (ts(2), b"2026-11-2".to_vec()),
            ]
        );
    }

    #[test]
    fn a_run_longer_than_a_docker_piece_is_cut_not_held() {
        let long = vec![b'z'; 3 * LOG_MESSAGE_MAX + 5];
        let mut wire = T1.as_bytes().to_vec();
        wire.extend_from_slice(&long);
        let got = decode(&wire);
        assert_eq!(
            got.iter().map(|(_, c)| c.len()).collect::<Vec<_>>(),
            vec![LOG_MESSAGE_MAX, LOG_MESSAGE_MAX, LOG_MESSAGE_MAX, 5]
        );
        assert!(got.iter().all(|(t, _)| *t == ts(1)));
    }

    #[tokio::test]
    async fn a_newline_free_flood_is_read_in_bounded_pieces() {
        // 64 MiB of output with no newline, delivered as Docker does (a
        // timestamp every 16 KiB): the decoder's buffer stays small.
        const PIECES: usize = 4096;
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let piece = vec![0u8; LOG_MESSAGE_MAX];
            for _ in 0..PIECES {
                tx.write_all(T1.as_bytes()).await?;
                tx.write_all(&piece).await?;
            }
            std::io::Result::Ok(())
        });
        let mut messages = TtyMessages::new(rx, ts(0));
        let (mut total, mut count, mut most_buffered) = (0, 0, 0);
        while let Some((_, content)) = messages.next().await.expect("in-memory pipe") {
            assert!(content.len() <= LOG_MESSAGE_MAX);
            total += content.len();
            count += 1;
            most_buffered = most_buffered.max(messages.buffered());
        }
        writer.await.expect("writer task").expect("writer");
        assert_eq!((total, count), (PIECES * LOG_MESSAGE_MAX, PIECES));
        assert!(most_buffered <= 64 * 1024, "buffer grew to {most_buffered}");
    }

    #[tokio::test]
    async fn a_dropped_read_loses_nothing() {
        // The log writer's select! drops `next` whenever its flush timer
        // fires; a message half read must still come whole.
        let (mut tx, rx) = tokio::io::duplex(1024);
        let mut messages = TtyMessages::new(rx, ts(0));
        use tokio::io::AsyncWriteExt;
        tx.write_all(T1.as_bytes()).await.expect("write");
        tx.write_all(b"hal").await.expect("write");
        assert!(messages.next().now_or_never().is_none());
        tx.write_all(b"f\n").await.expect("write");
        drop(tx);
        assert_eq!(
            messages.next().await.expect("read"),
            Some((ts(1), Bytes::from_static(b"half\n")))
        );
        assert_eq!(messages.next().await.expect("read"), None);
    }
}
