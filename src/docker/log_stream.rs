//! A container's logs as Docker serves them (`GET /containers/{id}/logs`
//! with `timestamps=1`), read as timestamped [`Frame`]s.
//!
//! Docker puts each logged message's RFC 3339 timestamp and a space before
//! its content; without a TTY each message is a multiplexed frame
//! ([`super::multiplex`]), with one the messages follow each other
//! unframed and are cut apart by [`TtyMessages`]. Either way a message
//! holds at most [`LOG_MESSAGE_MAX`] bytes of content: Docker's log copier
//! cuts longer lines into pieces. The stream is read only as fast as its
//! messages are taken.

use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

use super::multiplex::Demuxer;
use super::streams::Frame;
use super::tty_log::TtyMessages;

pub use super::tty_log::LOG_MESSAGE_MAX;

type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// One logged message: when Docker logged it, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    /// Docker's timestamp of the message.
    pub timestamp: DateTime<Utc>,
    /// Its stream and content (at most [`LOG_MESSAGE_MAX`] bytes, ending
    /// with a newline unless Docker cut the line or the output ended).
    pub frame: Frame,
}

/// A container's log messages, one at a time.
pub struct LogStream {
    source: Source,
}

enum Source {
    /// Containers without a TTY: one message per frame.
    Framed(Demuxer<Reader>),
    /// TTY containers: stdout only, cut at Docker's message boundaries.
    Tty(TtyMessages<Reader>),
}

impl LogStream {
    /// Reads the response body `body` of a container with or without a TTY.
    pub(super) fn new(body: Reader, tty: bool) -> Self {
        let source = if tty {
            Source::Tty(TtyMessages::new(body, Utc::now()))
        } else {
            Source::Framed(Demuxer::new(body))
        };
        Self { source }
    }

    /// The next message, or `None` at the end of the logs (the container
    /// stopped, or the logs were not followed). Cancel safe.
    pub async fn next(&mut self) -> std::io::Result<Option<LogMessage>> {
        let demux = match &mut self.source {
            Source::Tty(messages) => {
                return Ok(messages
                    .next()
                    .await?
                    .map(|(timestamp, content)| LogMessage {
                        timestamp,
                        frame: Frame::Stdout(content),
                    }));
            }
            Source::Framed(demux) => demux,
        };
        loop {
            let Some(frame) = demux.next().await? else {
                return Ok(None);
            };
            let payload = frame.bytes();
            let Some(space) = payload.iter().position(|b| *b == b' ') else {
                continue;
            };
            let Some(timestamp) = parse_timestamp(&payload[..space]) else {
                tracing::debug!("log message without a timestamp");
                continue;
            };
            let content = payload.slice(space + 1..);
            let frame = match frame {
                Frame::Stdout(_) => Frame::Stdout(content),
                Frame::Stderr(_) => Frame::Stderr(content),
            };
            return Ok(Some(LogMessage { timestamp, frame }));
        }
    }
}

/// Parses a timestamp as Docker writes it before a log message and as the
/// CRI log format writes it before a line (RFC 3339, nanoseconds), within
/// years 0 to 9999.
pub fn parse_timestamp(field: &[u8]) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|ts| ts.with_timezone(&Utc))
        .filter(|ts| (0..=9999).contains(&ts.year()))
}

/// A logged message as Docker sends it, for the fake Docker.
#[cfg(test)]
pub(super) fn encode(message: &LogMessage, tty: bool) -> Vec<u8> {
    let stamped = |content: &[u8]| {
        let mut out = message
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            .into_bytes();
        out.push(b' ');
        out.extend_from_slice(content);
        bytes::Bytes::from(out)
    };
    match &message.frame {
        _ if tty => stamped(message.frame.bytes()).to_vec(),
        Frame::Stdout(content) => super::multiplex::encode(&Frame::Stdout(stamped(content))),
        Frame::Stderr(content) => super::multiplex::encode(&Frame::Stderr(stamped(content))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ts(nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_728_940, nanos).expect("valid time")
    }

    async fn read_all(wire: Vec<u8>, tty: bool) -> Vec<LogMessage> {
        let mut stream = LogStream::new(Box::new(std::io::Cursor::new(wire)), tty);
        let mut out = Vec::new();
        while let Some(message) = stream.next().await.expect("in-memory body") {
            out.push(message);
        }
        out
    }

    #[tokio::test]
    async fn framed_messages_keep_their_stream_and_lose_their_timestamp() {
        let messages = vec![
            LogMessage {
                timestamp: ts(1),
                frame: Frame::Stdout(Bytes::from_static(b"out 2026-11-26T21:35:40Z\n")),
            },
            LogMessage {
                timestamp: ts(2),
                frame: Frame::Stderr(Bytes::from_static(b"err")),
            },
        ];
        let wire = messages.iter().flat_map(|m| encode(m, false)).collect();
        assert_eq!(read_all(wire, false).await, messages);
    }

    #[tokio::test]
    async fn framed_messages_without_a_timestamp_are_skipped() {
        let mut wire = super::super::multiplex::encode(&Frame::Stdout(Bytes::from_static(
            b"no-timestamp-here",
        )));
        wire.extend(super::super::multiplex::encode(&Frame::Stdout(
            Bytes::from_static(b"garbage then"),
        )));
        let kept = LogMessage {
            timestamp: ts(3),
            frame: Frame::Stdout(Bytes::from_static(b"kept\n")),
        };
        wire.extend(encode(&kept, false));
        assert_eq!(read_all(wire, false).await, vec![kept]);
    }

    #[tokio::test]
    async fn tty_messages_are_stdout() {
        let wire = b"2026-11-26T21:35:40.000000001Z \x02hi\r\n".to_vec();
        assert_eq!(
            read_all(wire, true).await,
            vec![LogMessage {
                timestamp: ts(1),
                frame: Frame::Stdout(Bytes::from_static(b"\x02hi\r\n")),
            }]
        );
    }
}
