//! Requests to Docker on kept-alive connections that the calling task drives
//! itself, for the calls every exec probe makes (create an exec, inspect it).
//!
//! bollard's requests go through hyper's pooled client, which runs each
//! connection in a task of its own, so each request is two hand-offs between
//! tasks (often a thread wake-up each), plus bollard's URL building and
//! parsing. At one `ExecSync` per probe period for every container with a
//! probe, that was a large share of the shim's CPU per probe. Here the task
//! that sends a request also reads the answer off the socket, and a socket
//! whose exchange ended cleanly waits in a short list for the next request.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

use super::hijack::{Endpoint, error_message, status_error};
use super::{DockerError, DockerResult};

/// Idle sockets kept at most: exec probes of one period rarely overlap more.
const MAX_IDLE: usize = 8;
/// An idle socket older than this is closed rather than reused, so a burst
/// does not hold Docker's connections for ever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type Socket = Either<UnixStream, TcpStream>;

/// Sockets to one engine, idle between requests.
pub(super) struct KeepAlive {
    endpoint: Endpoint,
    timeout: Duration,
    idle: Mutex<Vec<(Socket, Instant)>>,
}

impl KeepAlive {
    /// Requests to `endpoint`, each bounded by `timeout` until its whole
    /// answer is read.
    pub(super) fn new(endpoint: Endpoint, timeout: Duration) -> Self {
        Self {
            endpoint,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` and returns the body of a successful answer; an error
    /// status becomes the matching [`DockerError`] with Docker's message.
    pub(super) async fn send(&self, request: Request<Full<Bytes>>) -> DockerResult<Bytes> {
        let path = request.uri().path().to_string();
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(result) => result.map_err(|err| match err {
                DockerError::Transport(message) => {
                    DockerError::Transport(format!("{path}: {message}"))
                }
                other => other,
            }),
            Err(_) => Err(DockerError::Timeout(self.timeout)),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> DockerResult<Bytes> {
        let socket = match self.checkout() {
            Some(socket) => socket,
            None => self.connect().await?,
        };
        let http = |e: hyper::Error| DockerError::Transport(e.to_string());
        let (mut sender, mut connection) =
            http1::handshake(TokioIo::new(socket)).await.map_err(http)?;
        let mut ended = false;
        let answer = {
            let mut answer = pin!(async {
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            });
            // The connection is polled here, by this task, not by one of its
            // own: the answer wakes this task and no other.
            std::future::poll_fn(|cx| {
                if !ended && let Poll::Ready(result) = connection.poll_without_shutdown(cx) {
                    ended = true;
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "docker connection ended");
                    }
                }
                answer.as_mut().poll(cx)
            })
            .await
            .map_err(http)?
        };
        drop(sender);
        if !ended
            && let Ok(()) = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await
        {
            let parts = connection.into_parts();
            // Bytes Docker sent beyond the answer mean the socket is not at
            // a clean start: close it.
            if parts.read_buf.is_empty() {
                self.checkin(parts.io.into_inner());
            }
        }
        let (status, body) = answer;
        if status.is_success() {
            Ok(body)
        } else {
            Err(status_error(status, error_message(&body)))
        }
    }

    /// An idle socket that is still open and has nothing unread.
    fn checkout(&self) -> Option<Socket> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((socket, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && is_quiet(&socket) {
                return Some(socket);
            }
        }
        None
    }

    fn checkin(&self, socket: Socket) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
        if idle.len() < MAX_IDLE {
            idle.push((socket, Instant::now()));
        }
    }

    async fn connect(&self) -> DockerResult<Socket> {
        let transport =
            |e: std::io::Error| DockerError::Transport(format!("connect to docker: {e}"));
        Ok(match &self.endpoint {
            Endpoint::Unix(path) => {
                Either::Left(UnixStream::connect(path).await.map_err(transport)?)
            }
            Endpoint::Tcp(addr) => {
                Either::Right(TcpStream::connect(addr).await.map_err(transport)?)
            }
        })
    }
}

/// True when nothing waits to be read: not the end of the stream (Docker
/// closed the idle connection), not stray bytes.
fn is_quiet(socket: &Socket) -> bool {
    let mut byte = [0u8; 1];
    let read = match socket {
        Either::Left(s) => s.try_read(&mut byte),
        Either::Right(s) => s.try_read(&mut byte),
    };
    matches!(read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    /// A server that answers each request on a connection with `answers`
    /// in turn and counts the connections it accepted. It closes each
    /// connection a moment after its `close_after`th answer.
    fn serve(listener: UnixListener, answers: Vec<String>, close_after: usize) -> Arc<AtomicUsize> {
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let mut next = 0;
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                for _ in 0..close_after {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    if request.is_empty() {
                        break;
                    }
                    let answer = &answers[next % answers.len()];
                    next += 1;
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
                // Close only once the client has put the socket back.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        accepted
    }

    fn get(path: &str) -> Request<Full<Bytes>> {
        Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(Full::new(Bytes::new()))
            .expect("request")
    }

    fn answer(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn ok() -> String {
        answer("200 OK", "{\"Id\":\"x\"}\n")
    }

    #[tokio::test]
    async fn requests_in_turn_share_one_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let accepted = serve(UnixListener::bind(&path).expect("bind"), vec![ok()], 100);
        let client = KeepAlive::new(Endpoint::Unix(path), Duration::from_secs(5));
        for _ in 0..5 {
            let body = client.send(get("/exec/x/json")).await.expect("answer");
            assert_eq!(&body[..], b"{\"Id\":\"x\"}\n");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_docker_closed_is_replaced_before_the_request_is_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let accepted = serve(UnixListener::bind(&path).expect("bind"), vec![ok()], 1);
        let client = KeepAlive::new(Endpoint::Unix(path), Duration::from_secs(5));
        for _ in 0..3 {
            client.send(get("/exec/x/json")).await.expect("answer");
            // The server closes the idle socket meanwhile.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn error_statuses_carry_dockers_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let missing = answer("404 Not Found", "{\"message\":\"No such exec instance\"}");
        let accepted = serve(
            UnixListener::bind(&path).expect("bind"),
            vec![missing, ok()],
            100,
        );
        let client = KeepAlive::new(Endpoint::Unix(path), Duration::from_secs(5));
        match client.send(get("/exec/nope/json")).await {
            Err(DockerError::NotFound(message)) => assert_eq!(message, "No such exec instance"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        // An error answer leaves the connection usable.
        client.send(get("/exec/x/json")).await.expect("answer");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_silent_engine_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let held = tokio::spawn(async move { listener.accept().await.map(|(conn, _)| conn) });
        let client = KeepAlive::new(Endpoint::Unix(path), Duration::from_millis(100));
        assert!(matches!(
            client.send(get("/exec/x/json")).await,
            Err(DockerError::Timeout(_))
        ));
        drop(held);
    }
}
