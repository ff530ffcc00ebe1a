//! TCP connections into a pod's network namespace, bounded and without a
//! thread per connection.
//!
//! A socket belongs to the network namespace it was created in, whichever
//! thread connects it later. So one long-lived worker thread enters a pod's
//! namespace (`setns` on `/proc/<pid>/ns/net`) only to create the sockets
//! and hands them back; the connect itself runs on tokio. The worker does
//! nothing else, so the namespace it was last moved into never leaks into
//! other work (a tokio blocking-pool thread would carry it into whatever task
//! the pool gives it next). At most [`MAX_DIALS`] connects are in flight;
//! more wait for a slot, for at most [`DIAL_TIMEOUT`].

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most connects into pods in flight at once, over the whole shim.
pub const MAX_DIALS: usize = 64;

/// How long a connect may take, and how long one may wait for a slot.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Sockets created in a pod's network namespace, not yet connected.
pub struct Sockets {
    /// For `127.0.0.1`.
    pub v4: TcpSocket,
    /// For `[::1]`, when the namespace has IPv6.
    pub v6: Option<TcpSocket>,
}

/// Creates the sockets of a dial into the namespace of a process.
pub type Opener = fn(i64) -> io::Result<Sockets>;

type Request = (i64, oneshot::Sender<io::Result<Sockets>>);

/// Connects to ports on the loopback of pods' network namespaces.
pub struct Dialer {
    slots: Arc<Semaphore>,
    requests: mpsc::Sender<Request>,
}

impl Dialer {
    /// Starts the worker thread that runs `opener`; at most `max` dials at once.
    pub fn new(max: usize, opener: Opener) -> io::Result<Self> {
        let max = max.max(1);
        let (requests, mut rx) = mpsc::channel::<Request>(max);
        std::thread::Builder::new()
            .name("netns-sockets".into())
            .spawn(move || {
                while let Some((pid, reply)) = rx.blocking_recv() {
                    let _ = reply.send(opener(pid));
                }
            })?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(max)),
            requests,
        })
    }

    /// Connects to `port` on the loopback of the namespace of `pid`:
    /// `127.0.0.1` first, then `[::1]`.
    pub async fn dial(&self, pid: i64, port: u16) -> io::Result<TcpStream> {
        let _slot = tokio::time::timeout(DIAL_TIMEOUT, self.slots.acquire())
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("more than {MAX_DIALS} connects into pods are in flight"),
                )
            })?
            .map_err(|_| worker_gone())?;
        let (reply, sockets) = oneshot::channel();
        self.requests
            .send((pid, reply))
            .await
            .map_err(|_| worker_gone())?;
        let sockets = sockets.await.map_err(|_| worker_gone())??;
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match connect(sockets.v4, v4).await {
            Ok(stream) => Ok(stream),
            Err(v4_err) => match sockets.v6 {
                Some(socket) => connect(socket, SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
                    .await
                    .map_err(|v6_err| io::Error::new(v6_err.kind(), format!("{v4_err}; {v6_err}"))),
                None => Err(v4_err),
            },
        }
    }

    #[cfg(test)]
    fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("the network namespace worker thread is gone")
}

async fn connect(socket: TcpSocket, addr: SocketAddr) -> io::Result<TcpStream> {
    match tokio::time::timeout(DIAL_TIMEOUT, socket.connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(io::Error::new(
            err.kind(),
            format!("connect to {addr}: {err}"),
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {addr} timed out after {DIAL_TIMEOUT:?}"),
        )),
    }
}

/// Moves the calling thread into the network namespace of `pid` and
/// creates the sockets there. Only the worker thread may call it.
fn open_in_netns(pid: i64) -> io::Result<Sockets> {
    let path = format!("/proc/{pid}/ns/net");
    let context =
        |what: &str, err: io::Error| io::Error::new(err.kind(), format!("{what} {path}: {err}"));
    let netns = File::open(&path).map_err(|e| context("open", e))?;
    rustix::thread::move_into_link_name_space(
        netns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| context("enter", e.into()))?;
    Ok(Sockets {
        v4: TcpSocket::new_v4()?,
        v6: TcpSocket::new_v6().ok(),
    })
}

/// The shim's dialer, started on first use.
fn dialer() -> io::Result<&'static Dialer> {
    static DIALER: OnceLock<Result<Dialer, String>> = OnceLock::new();
    DIALER
        .get_or_init(|| Dialer::new(MAX_DIALS, open_in_netns).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the network namespace worker: {e}")))
}

/// Connects to `port` on the loopback of the network namespace of `pid`
/// (the pod's pause process), IPv4 first, then IPv6.
pub async fn dial_in_netns(pid: i64, port: u16) -> io::Result<TcpStream> {
    dialer()?.dial(pid, port).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Sockets in the test's own namespace: no root needed.
    fn open_here(_pid: i64) -> io::Result<Sockets> {
        Ok(Sockets {
            v4: TcpSocket::new_v4()?,
            v6: None,
        })
    }

    /// Dials of `connects_in_flight_are_bounded` that got their sockets.
    static OPENED: AtomicUsize = AtomicUsize::new(0);

    fn open_here_counted(pid: i64) -> io::Result<Sockets> {
        OPENED.fetch_add(1, Ordering::SeqCst);
        open_here(pid)
    }

    /// Issue 21: every connect took an OS thread blocked for up to 10 s,
    /// with no limit on how many.
    #[tokio::test]
    async fn connects_in_flight_are_bounded() {
        // A listener whose backlog is full: further SYNs are dropped, so
        // connects to it stay in flight.
        let listener = TcpSocket::new_v4().unwrap();
        listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = listener.listen(0).unwrap();
        let port = listener.local_addr().unwrap().port();
        let _queued = TcpStream::connect(("127.0.0.1", port)).await.unwrap();

        let dialer = Arc::new(Dialer::new(2, open_here_counted).unwrap());
        let dials: Vec<_> = (0..3)
            .map(|_| {
                let dialer = dialer.clone();
                tokio::spawn(async move { dialer.dial(0, port).await })
            })
            .collect();
        for _ in 0..200 {
            if OPENED.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Time for a third dial to get past the bound, were there none.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(OPENED.load(Ordering::SeqCst), 2);
        assert_eq!(dialer.free_slots(), 0);
        for dial in &dials {
            dial.abort();
        }
        for dial in dials {
            let _ = dial.await;
        }
        assert_eq!(
            dialer.free_slots(),
            2,
            "aborted dials give their slots back"
        );
    }

    #[tokio::test]
    async fn a_dial_connects_to_a_listening_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dialer = Dialer::new(1, open_here).unwrap();
        let (dialed, accepted) = tokio::join!(dialer.dial(0, port), listener.accept());
        assert_eq!(
            dialed.unwrap().peer_addr().unwrap(),
            accepted.unwrap().0.local_addr().unwrap()
        );
        assert_eq!(dialer.free_slots(), 1);
    }
}
