//! A connection to Docker that is read in batches rather than message by
//! message, for followed log streams.
//!
//! Docker flushes every log message of a followed stream on its own, so a
//! reader that is always waiting gets one small read, one wake-up and one
//! trip through the HTTP decoder per line: with 100-byte lines that was most
//! of the shim's CPU per MiB. After a read that came back small, this reader
//! waits a moment before the next one so that messages pile up in the socket
//! and arrive together. Nothing is lost by waiting: Docker's log file is the
//! buffer, and the container never blocks on this reader. Lines still reach
//! the CRI file within the log writer's flush interval plus [`BATCH_DELAY`].
//!
//! It wraps the socket, under the HTTP decoder: a read above the decoder
//! returns one message whatever has arrived.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Pause after a small read before reading again.
pub const BATCH_DELAY: Duration = Duration::from_millis(20);
/// A read of at least this many bytes is not small: the stream is busy and
/// is read again at once.
const SMALL_READ: usize = 16 * 1024;

/// An [`AsyncRead`] that pauses for [`BATCH_DELAY`] after each read that
/// found little waiting.
pub struct Batched<R> {
    inner: R,
    /// Armed after a small read; the next read waits for it.
    pause: Pin<Box<Sleep>>,
    paused: bool,
}

impl<R> Batched<R> {
    /// Wraps `inner`; the first read does not wait.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            pause: Box::pin(tokio::time::sleep(Duration::ZERO)),
            paused: false,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Batched<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.paused {
            if this.pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.paused = false;
        }
        let before = buf.filled().len();
        let offered = buf.remaining();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let read = buf.filled().len() - before;
            // End of stream (0) needs no pause; nothing follows it. A read
            // that filled the buffer offered means more is waiting: pausing
            // then would throttle a busy container's log below its output.
            if read > 0 && read < SMALL_READ && read < offered {
                this.pause.as_mut().reset(Instant::now() + BATCH_DELAY);
                this.paused = true;
            }
        }
        result
    }
}

impl<R: AsyncWrite + Unpin> AsyncWrite for Batched<R> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn small_reads_are_followed_by_a_pause_and_nothing_is_lost() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = Batched::new(rx);
        tx.write_all(b"one\n").await.unwrap();
        let mut buf = vec![0u8; 64];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one\n");

        // Written during the pause: all of it comes in the next read, which
        // does not happen before the pause ends.
        let start = Instant::now();
        tx.write_all(b"two\n").await.unwrap();
        tx.write_all(b"three\n").await.unwrap();
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"two\nthree\n");
        assert!(Instant::now() - start >= BATCH_DELAY);

        drop(tx);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reads_that_fill_the_buffer_are_not_followed_by_a_pause() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = Batched::new(rx);
        tx.write_all(&[1u8; 300]).await.unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 100];
        for _ in 0..3 {
            reader.read_exact(&mut buf).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_stream_is_read_without_pauses() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut reader = Batched::new(rx);
        let big = vec![7u8; SMALL_READ * 2];
        tx.write_all(&big).await.unwrap();
        let start = Instant::now();
        let mut buf = vec![0u8; SMALL_READ];
        reader.read_exact(&mut buf).await.unwrap();
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(Instant::now(), start);
    }
}
