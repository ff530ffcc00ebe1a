//! A connection to Docker that is read in batches rather than message by
//! message, for followed log streams.
//!
//! Docker flushes every log message of a followed stream on its own. A
//! reader that always waits on the socket is woken for each one: with
//! 100-byte lines that is ten thousand wake-ups (an epoll return, a thread
//! switch, a read) per MiB, most of the shim's CPU for logs. Even a reader
//! that merely stops reading for a while is still woken, since the socket
//! stays registered with the runtime's (edge-triggered) poller and each new
//! message is a new edge.
//!
//! So after a read that found little waiting, this reader leaves the poller
//! altogether for [`BATCH_DELAY`]; then it reads whatever piled up without
//! waiting, and registers again only if nothing did. Nothing is lost by
//! waiting: Docker's log file is the buffer, and the container never blocks
//! on this reader. Lines reach the CRI file within the log writer's flush
//! interval plus [`BATCH_DELAY`]. It sits under the HTTP decoder, which gets
//! many messages from one read.

use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Pause after a small read before reading again.
pub const BATCH_DELAY: Duration = Duration::from_millis(20);
/// A read of at least this many bytes is not small: the stream is busy and
/// is read again at once.
const SMALL_READ: usize = 16 * 1024;

/// A connected, non-blocking socket, out of the runtime's poller.
pub enum Socket {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

/// The same socket in the runtime's poller.
enum Registered {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl Socket {
    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Unix(s) => (&*s).read(buf),
            Socket::Tcp(s) => (&*s).read(buf),
        }
    }

    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Unix(s) => (&*s).write(buf),
            Socket::Tcp(s) => (&*s).write(buf),
        }
    }

    fn register(self) -> std::io::Result<Registered> {
        Ok(match self {
            Socket::Unix(s) => Registered::Unix(tokio::net::UnixStream::from_std(s)?),
            Socket::Tcp(s) => Registered::Tcp(tokio::net::TcpStream::from_std(s)?),
        })
    }
}

impl Registered {
    fn deregister(self) -> std::io::Result<Socket> {
        Ok(match self {
            Registered::Unix(s) => Socket::Unix(s.into_std()?),
            Registered::Tcp(s) => Socket::Tcp(s.into_std()?),
        })
    }
}

enum State {
    Out(Socket),
    In(Registered),
    /// Between the two, or after a failed move (every call then fails).
    Moving,
}

/// An [`AsyncRead`] + [`AsyncWrite`] over a [`Socket`] that pauses, out of
/// the poller, for [`BATCH_DELAY`] after each read that found little waiting.
pub struct Batched {
    state: State,
    /// Armed after a small read; the next read waits for it.
    pause: Pin<Box<Sleep>>,
    paused: bool,
}

fn gone() -> std::io::Error {
    std::io::Error::other("docker connection lost while moving in or out of the poller")
}

impl Batched {
    /// Wraps `socket`, which must be non-blocking; the first read does not
    /// wait.
    pub fn new(socket: Socket) -> Self {
        Self {
            state: State::Out(socket),
            pause: Box::pin(tokio::time::sleep(Duration::ZERO)),
            paused: false,
        }
    }

    /// Puts the socket into the poller, to wait for it.
    fn register(&mut self) -> std::io::Result<()> {
        if let State::Out(_) = self.state {
            let State::Out(socket) = std::mem::replace(&mut self.state, State::Moving) else {
                return Err(gone());
            };
            self.state = State::In(socket.register()?);
        }
        Ok(())
    }

    /// Takes the socket out of the poller for a pause.
    fn deregister(&mut self) -> std::io::Result<()> {
        if let State::In(_) = self.state {
            let State::In(registered) = std::mem::replace(&mut self.state, State::Moving) else {
                return Err(gone());
            };
            self.state = State::Out(registered.deregister()?);
        }
        Ok(())
    }

    /// After a read of `read` bytes into a buffer that had room for
    /// `offered`: pause if it found little waiting. End of stream (0) needs
    /// no pause, and a read that filled the buffer means more is waiting:
    /// pausing then would throttle a busy container's log below its output.
    fn after_read(&mut self, read: usize, offered: usize) -> std::io::Result<()> {
        if read > 0 && read < SMALL_READ && read < offered {
            // Out of the poller: messages arriving during the pause wake
            // nobody.
            self.deregister()?;
            self.pause.as_mut().reset(Instant::now() + BATCH_DELAY);
            self.paused = true;
        }
        Ok(())
    }
}

impl AsyncRead for Batched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.paused {
            ready!(this.pause.as_mut().poll(cx));
            this.paused = false;
        }
        let offered = buf.remaining();
        let before = buf.filled().len();
        loop {
            match &mut this.state {
                State::Out(socket) => match socket.read(buf.initialize_unfilled()) {
                    Ok(read) => {
                        buf.advance(read);
                        break;
                    }
                    // Nothing waiting: wait for it in the poller.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => this.register()?,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                },
                State::In(Registered::Unix(s)) => {
                    ready!(Pin::new(s).poll_read(cx, buf))?;
                    break;
                }
                State::In(Registered::Tcp(s)) => {
                    ready!(Pin::new(s).poll_read(cx, buf))?;
                    break;
                }
                State::Moving => return Poll::Ready(Err(gone())),
            }
        }
        this.after_read(buf.filled().len() - before, offered)?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Batched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Out(socket) => match socket.write(buf) {
                    Ok(written) => return Poll::Ready(Ok(written)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => this.register()?,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Poll::Ready(Err(e)),
                },
                State::In(Registered::Unix(s)) => return Pin::new(s).poll_write(cx, buf),
                State::In(Registered::Tcp(s)) => return Pin::new(s).poll_write(cx, buf),
                State::Moving => return Poll::Ready(Err(gone())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let how = std::net::Shutdown::Write;
        Poll::Ready(match &self.state {
            State::Out(Socket::Unix(s)) => s.shutdown(how),
            State::Out(Socket::Tcp(s)) => s.shutdown(how),
            State::In(Registered::Unix(s)) => std::os::fd::AsFd::as_fd(s)
                .try_clone_to_owned()
                .map(std::os::unix::net::UnixStream::from)
                .and_then(|s| s.shutdown(how)),
            State::In(Registered::Tcp(s)) => std::os::fd::AsFd::as_fd(s)
                .try_clone_to_owned()
                .map(std::net::TcpStream::from)
                .and_then(|s| s.shutdown(how)),
            State::Moving => Err(gone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use tokio::io::AsyncReadExt;

    fn pair() -> (Batched, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (Batched::new(Socket::Unix(ours)), theirs)
    }

    #[tokio::test(start_paused = true)]
    async fn small_reads_are_followed_by_a_pause_and_nothing_is_lost() {
        let (mut reader, mut tx) = pair();
        tx.write_all(b"one\n").unwrap();
        let mut buf = vec![0u8; 64];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one\n");

        // Written during the pause: all of it comes in the next read, which
        // does not happen before the pause ends.
        let start = Instant::now();
        tx.write_all(b"two\n").unwrap();
        tx.write_all(b"three\n").unwrap();
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"two\nthree\n");
        assert!(Instant::now() - start >= BATCH_DELAY);

        drop(tx);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_read_waits_for_data_that_comes_later() {
        let (mut reader, mut tx) = pair();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.write_all(b"late").unwrap();
        });
        let mut buf = [0u8; 4];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"late");
        writer.join().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn reads_that_fill_the_buffer_are_not_followed_by_a_pause() {
        let (mut reader, mut tx) = pair();
        tx.write_all(&[1u8; 300]).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 100];
        for _ in 0..3 {
            reader.read_exact(&mut buf).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_stream_is_read_without_pauses() {
        let (mut reader, mut tx) = pair();
        let writer = std::thread::spawn(move || tx.write_all(&vec![7u8; SMALL_READ * 4]));
        let start = Instant::now();
        let mut buf = vec![0u8; SMALL_READ];
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(Instant::now(), start);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len(), SMALL_READ * 3);
        writer.join().unwrap().unwrap();
    }
}
