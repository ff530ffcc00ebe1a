//! Docker's log stream of a TTY container, cut into bounded messages.
//!
//! With a TTY, `GET /containers/{id}/logs?timestamps=1` is not framed: it is
//! each logged message as `<RFC 3339 timestamp> <content>`, one after the
//! other. A whole line's content ends with its `\n`; a piece of a longer
//! line (Docker's log copier cuts at [`DOCKER_MESSAGE_MAX`] bytes) has none,
//! so the next message's timestamp follows it directly. Reading up to a
//! newline, as a line reader would, holds a newline-free flood in memory
//! whole and writes nothing of it; [`TtyMessages`] never holds more than
//! one piece and a timestamp's worth of look-ahead.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::crilog::parse_timestamp;

/// Size at which Docker's log copier cuts a line into partial messages.
pub const DOCKER_MESSAGE_MAX: usize = 16 * 1024;
/// Longest timestamp field looked for, with its space: Docker writes
/// RFC 3339 with at most nine fraction digits in UTC (31 bytes); an offset
/// or a wider year is still under this.
const TIMESTAMP_MAX: usize = 40;
/// Bytes read from Docker at a time.
const READ_CHUNK: usize = 32 * 1024;

/// Reads a TTY container's timestamped log stream message by message. Each
/// message's content is at most [`DOCKER_MESSAGE_MAX`] bytes; a longer run
/// without a timestamp after it (not Docker's cut) comes as several pieces
/// with the same timestamp.
pub struct TtyMessages<R> {
    reader: R,
    buf: BytesMut,
    eof: bool,
    /// The timestamp of a message whose content continues (its previous
    /// piece filled [`DOCKER_MESSAGE_MAX`] and no timestamp followed).
    continuing: Option<DateTime<Utc>>,
    /// Bytes before the next `\n` are dropped: a line without a timestamp.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> TtyMessages<R> {
    /// Decodes `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: BytesMut::new(),
            eof: false,
            continuing: None,
            skipping: false,
        }
    }

    /// The next message's timestamp and content, or `None` at the end of
    /// the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<(DateTime<Utc>, Bytes)>> {
        loop {
            if self.skipping {
                match self.buf.iter().position(|b| *b == b'\n') {
                    Some(nl) => {
                        let _ = self.buf.split_to(nl + 1);
                        self.skipping = false;
                    }
                    None => {
                        self.buf.clear();
                        if !self.fill().await? {
                            return Ok(None);
                        }
                        continue;
                    }
                }
            }
            let ts = match self.continuing.take() {
                Some(ts) => ts,
                None => match self.timestamp().await? {
                    Head::Timestamp(ts) => ts,
                    Head::End => return Ok(None),
                    Head::NotATimestamp => {
                        tracing::debug!("TTY log message without a timestamp; skipping its line");
                        self.skipping = true;
                        continue;
                    }
                },
            };
            return self.content(ts).await.map(Some);
        }
    }

    /// Reads and consumes the timestamp that starts a message.
    async fn timestamp(&mut self) -> std::io::Result<Head> {
        match self.peek_timestamp().await? {
            Some((ts, len)) => {
                let _ = self.buf.split_to(len);
                Ok(Head::Timestamp(ts))
            }
            None if self.buf.is_empty() && self.eof => Ok(Head::End),
            None => Ok(Head::NotATimestamp),
        }
    }

    /// Whether the buffer starts with `<timestamp> `: the timestamp and the
    /// length of the field with its space. Reads until it can tell.
    async fn peek_timestamp(&mut self) -> std::io::Result<Option<(DateTime<Utc>, usize)>> {
        loop {
            let window = &self.buf[..self.buf.len().min(TIMESTAMP_MAX)];
            if let Some(space) = window.iter().position(|b| *b == b' ') {
                return Ok(parse_timestamp(&window[..space])
                    .ok()
                    .map(|ts| (ts, space + 1)));
            }
            if window.len() == TIMESTAMP_MAX || window.contains(&b'\n') || !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The content of the message stamped `ts`: through its `\n`, or the
    /// first [`DOCKER_MESSAGE_MAX`] bytes of a longer run.
    async fn content(&mut self, ts: DateTime<Utc>) -> std::io::Result<(DateTime<Utc>, Bytes)> {
        loop {
            let window = &self.buf[..self.buf.len().min(DOCKER_MESSAGE_MAX)];
            if let Some(nl) = window.iter().position(|b| *b == b'\n') {
                return Ok((ts, self.buf.split_to(nl + 1).freeze()));
            }
            if window.len() == DOCKER_MESSAGE_MAX {
                let piece = self.buf.split_to(DOCKER_MESSAGE_MAX).freeze();
                // Docker's cut is followed by the next piece's timestamp;
                // anything else is more of this message.
                if self.peek_timestamp().await?.is_none() && !(self.buf.is_empty() && self.eof) {
                    self.continuing = Some(ts);
                }
                return Ok((ts, piece));
            }
            if !self.fill().await? {
                // The output ended without a newline.
                return Ok((ts, self.buf.split().freeze()));
            }
        }
    }

    /// Reads more into the buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.reserve(READ_CHUNK);
        if self.reader.read_buf(&mut self.buf).await? == 0 {
            self.eof = true;
        }
        Ok(!self.eof)
    }
}

enum Head {
    Timestamp(DateTime<Utc>),
    NotATimestamp,
    End,
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn decode(wire: &[u8]) -> Vec<(DateTime<Utc>, Vec<u8>)> {
        let mut messages = TtyMessages::new(wire);
        let mut out = Vec::new();
        while let Some((ts, content)) = messages
            .next()
            .now_or_never()
            .expect("a slice never waits")
            .expect("a slice cannot fail")
        {
            out.push((ts, content.to_vec()));
        }
        out
    }

    fn ts(nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_728_940, nanos).expect("valid time")
    }

    const T1: &str = "2026-11-26T21:35:40.000000001Z ";
    const T2: &str = "2026-11-26T21:35:40.000000002Z ";

    #[test]
    fn lines_and_docker_pieces_come_apart() {
        let piece = vec![b'x'; DOCKER_MESSAGE_MAX];
        let mut wire = format!("{T1}hello\n").into_bytes();
        wire.extend_from_slice(T1.as_bytes());
        wire.extend_from_slice(&piece);
        wire.extend_from_slice(T2.as_bytes());
        wire.extend_from_slice(b"tail\n");
        wire.extend_from_slice(b"no timestamp here\n");
        wire.extend_from_slice(T2.as_bytes());
        wire.extend_from_slice(b"unterminated");
        assert_eq!(
            decode(&wire),
            vec![
                (ts(1), b"hello\n".to_vec()),
                (ts(1), piece),
                (ts(2), b"tail\n".to_vec()),
                (ts(2), b"unterminated".to_vec()),
            ]
        );
    }

    #[test]
    fn a_run_longer_than_a_docker_piece_is_cut_not_held() {
        let long = vec![b'z'; 3 * DOCKER_MESSAGE_MAX + 5];
        let mut wire = T1.as_bytes().to_vec();
        wire.extend_from_slice(&long);
        let got = decode(&wire);
        assert_eq!(
            got.iter().map(|(_, c)| c.len()).collect::<Vec<_>>(),
            vec![
                DOCKER_MESSAGE_MAX,
                DOCKER_MESSAGE_MAX,
                DOCKER_MESSAGE_MAX,
                5
            ]
        );
        assert!(got.iter().all(|(t, _)| *t == ts(1)));
        assert_eq!(got.concat_content(), long);
    }

    trait Concat {
        fn concat_content(&self) -> Vec<u8>;
    }
    impl Concat for Vec<(DateTime<Utc>, Vec<u8>)> {
        fn concat_content(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, c)| c.iter().copied()).collect()
        }
    }

    #[tokio::test]
    async fn a_newline_free_flood_is_read_in_bounded_pieces() {
        // 64 MiB of output with no newline, delivered as Docker does (a
        // timestamp every 16 KiB): the decoder's buffer stays small.
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let piece = vec![0u8; DOCKER_MESSAGE_MAX];
            for _ in 0..4096 {
                tx.write_all(T1.as_bytes()).await?;
                tx.write_all(&piece).await?;
            }
            std::io::Result::Ok(())
        });
        let mut messages = TtyMessages::new(rx);
        let mut total = 0;
        let mut most_buffered = 0;
        while let Some((_, content)) = messages.next().await.expect("in-memory pipe") {
            assert!(content.len() <= DOCKER_MESSAGE_MAX);
            total += content.len();
            most_buffered = most_buffered.max(messages.buf.capacity());
        }
        writer.await.expect("writer task").expect("writer");
        assert_eq!(total, 4096 * DOCKER_MESSAGE_MAX);
        assert!(
            most_buffered <= 4 * READ_CHUNK,
            "buffer grew to {most_buffered}"
        );
    }
}
