//! The typed streams of an exec or an attach: what the process prints, as
//! stdout and stderr frames, and a writer for its stdin.
//!
//! Docker sends a process's output on the hijacked connection either as it
//! is (with a TTY) or multiplexed ([`super::multiplex`]); which one is
//! decided here, from the TTY setting, so callers see [`Frame`]s either way.
//! Frames are handed out as Docker's reads deliver them, without copying,
//! and the connection is read only when the caller asks for the next frame:
//! a process that prints faster than the caller consumes waits on Docker.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::hijack::RawStream;
use super::multiplex::Demuxer;

/// Bytes read from a TTY stream at a time: one frame at most.
const TTY_READ: usize = 32 * 1024;

/// A piece of a process's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Printed on stdout (everything, with a TTY).
    Stdout(Bytes),
    /// Printed on stderr.
    Stderr(Bytes),
}

impl Frame {
    /// The bytes printed.
    pub fn bytes(&self) -> &Bytes {
        match self {
            Frame::Stdout(bytes) | Frame::Stderr(bytes) => bytes,
        }
    }
}

/// The process's stdin: writing sends to it, shutting it down is its EOF.
pub type StdinWriter = Box<dyn AsyncWrite + Send + Unpin>;

type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// The output of a process, frame by frame.
pub struct OutputStream {
    source: Source,
}

enum Source {
    /// A TTY: one stream, passed through as read.
    Tty { reader: Reader, buf: BytesMut },
    /// Docker's multiplexed stdout and stderr.
    Multiplexed(Demuxer<Reader>),
}

impl OutputStream {
    /// Reads `reader`, multiplexed unless the process has a TTY.
    pub(super) fn new(reader: Reader, tty: bool) -> Self {
        let source = if tty {
            Source::Tty {
                reader,
                buf: BytesMut::with_capacity(TTY_READ),
            }
        } else {
            Source::Multiplexed(Demuxer::new(reader))
        };
        Self { source }
    }

    /// The next frame, or `None` once the process's output has ended.
    /// Cancel safe: a frame half read stays buffered for the next call.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        match &mut self.source {
            Source::Tty { reader, buf } => {
                buf.reserve(TTY_READ);
                if reader.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
                Ok(Some(Frame::Stdout(buf.split().freeze())))
            }
            Source::Multiplexed(demux) => demux.next().await,
        }
    }
}

/// The streams of a started exec or of an attach: one connection to
/// Docker, read and written.
pub struct ProcessStreams {
    raw: Box<dyn RawStream>,
    tty: bool,
}

impl ProcessStreams {
    /// The hijacked connection `raw` of a process with or without a TTY.
    pub(super) fn new(raw: Box<dyn RawStream>, tty: bool) -> Self {
        Self { raw, tty }
    }

    /// The output alone; the process's stdin is left open, never written.
    pub fn into_output(self) -> OutputStream {
        OutputStream::new(self.raw, self.tty)
    }

    /// The output and the stdin writer, to be used concurrently.
    pub fn split(self) -> (OutputStream, StdinWriter) {
        let (reader, writer) = tokio::io::split(self.raw);
        (
            OutputStream::new(Box::new(reader), self.tty),
            Box::new(writer),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn tty_output_is_stdout_as_read_even_when_it_looks_like_a_frame_header() {
        let (mut docker, ours) = tokio::io::duplex(1024);
        let mut output = ProcessStreams::new(Box::new(ours), true).into_output();
        docker.write_all(b"\x01\x00\x00\x00raw").await.unwrap();
        assert_eq!(
            output.next().await.unwrap(),
            Some(Frame::Stdout(Bytes::from_static(b"\x01\x00\x00\x00raw")))
        );
        drop(docker);
        assert_eq!(output.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn multiplexed_output_comes_apart_and_stdin_reaches_the_connection() {
        let (mut docker, ours) = tokio::io::duplex(1024);
        let (mut output, mut stdin) = ProcessStreams::new(Box::new(ours), false).split();
        docker
            .write_all(&super::super::multiplex::encode(&Frame::Stderr(
                Bytes::from_static(b"oops"),
            )))
            .await
            .unwrap();
        assert_eq!(
            output.next().await.unwrap(),
            Some(Frame::Stderr(Bytes::from_static(b"oops")))
        );
        stdin.write_all(b"typed").await.unwrap();
        stdin.shutdown().await.unwrap();
        let mut got = Vec::new();
        docker.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"typed");
    }
}
