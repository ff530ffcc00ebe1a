//! Keep-alive connections to the Docker Engine for bollard's requests.
//!
//! bollard's own Unix transport turns connection pooling off, so every call
//! paid for a new connection on both sides (socket, connect, an accept and a
//! goroutine in dockerd, close). An exec probe makes three such calls; at
//! steady state that was most of the shim's CPU per probe. This transport
//! keeps idle connections for reuse instead. Hijacked exec/attach streams and
//! followed logs do not come from here (see [`super::hijack`]): they hold
//! their connection for as long as they run.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker};
use futures_util::future::BoxFuture;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::hijack::{self, Endpoint, RawStream};
use super::{DockerError, DockerResult};

/// Idle connections are closed after this long. Docker keeps them open
/// indefinitely; the bound only returns file descriptors after a burst.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept at most: enough for the concurrent inspects of a
/// burst of events, few enough to stay out of Docker's way.
const MAX_IDLE: usize = 16;

/// A bollard client whose requests reuse pooled connections to `endpoint`.
/// `timeout` (seconds) bounds each request until its response headers.
pub fn connect(
    endpoint: &Endpoint,
    timeout: u64,
    version: &bollard::ClientVersion,
) -> DockerResult<Docker> {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE)
        .build(Connector(endpoint.clone()));
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = client.clone();
            Box::pin(async move {
                client
                    .request(request)
                    .await
                    .map_err(|e| bollard::errors::Error::HyperLegacyError { err: e })
            }) as BoxFuture<'static, _>
        },
        // Only the URI's path matters: the connector knows where Docker is.
        Some("http://docker"),
        timeout,
        version,
    )
    .map_err(|e| DockerError::Transport(format!("docker client: {e}")))
}

/// Opens connections to the engine, whatever the request's URI says.
#[derive(Clone)]
struct Connector(Endpoint);

impl tower::Service<Uri> for Connector {
    type Response = Conn;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, std::io::Result<Conn>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let endpoint = self.0.clone();
        Box::pin(async move {
            hijack::connect(&endpoint)
                .await
                .map(|stream| Conn(TokioIo::new(stream)))
                .map_err(std::io::Error::other)
        })
    }
}

/// One connection to the engine, as hyper's client pool wants it.
struct Conn(TokioIo<Box<dyn RawStream>>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
