//! Connections the shim makes to Docker itself: hijacked ones for exec and
//! attach, and streamed response bodies for followed logs.
//!
//! Docker answers `POST /exec/{id}/start` and `POST /containers/{id}/attach`
//! by upgrading the HTTP connection to a raw byte stream. The shim does that
//! upgrade itself instead of using bollard's decoder, which guesses from the
//! first byte of each read whether output is multiplexed and so corrupts TTY
//! output that starts with 0x00-0x02. What the bytes mean is decoded by
//! [`super::streams`] and [`super::log_stream`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::batched::{Batched, Socket};
use super::{DockerError, DockerResult};

/// A hijacked connection: raw bytes both ways.
pub trait RawStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> RawStream for T {}

/// Where the Docker Engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// `host:port` over plain TCP.
    Tcp(String),
}

impl Endpoint {
    /// Parses `unix:///path`, `tcp://host:port` or `http://host:port`.
    pub fn parse(endpoint: &str) -> Option<Self> {
        if let Some(path) = endpoint.strip_prefix("unix://") {
            return Some(Endpoint::Unix(PathBuf::from(path)));
        }
        let hostport = endpoint
            .strip_prefix("tcp://")
            .or_else(|| endpoint.strip_prefix("http://"))?;
        Some(Endpoint::Tcp(hostport.trim_end_matches('/').to_string()))
    }
}

/// Opens a connection to the engine, for a request the shim sends itself
/// (and for the pooled connections of [`super::pool`]).
pub(super) async fn connect(endpoint: &Endpoint) -> DockerResult<Box<dyn RawStream>> {
    let transport = |e: std::io::Error| DockerError::Transport(format!("connect to docker: {e}"));
    Ok(match endpoint {
        Endpoint::Unix(socket) => Box::new(UnixStream::connect(socket).await.map_err(transport)?),
        Endpoint::Tcp(addr) => Box::new(TcpStream::connect(addr).await.map_err(transport)?),
    })
}

/// Opens a connection to the engine and takes it out of the runtime's
/// poller, for [`Batched`].
async fn connect_unregistered(endpoint: &Endpoint) -> DockerResult<Socket> {
    let transport = |e: std::io::Error| DockerError::Transport(format!("connect to docker: {e}"));
    Ok(match endpoint {
        Endpoint::Unix(socket) => Socket::Unix(
            UnixStream::connect(socket)
                .await
                .and_then(UnixStream::into_std)
                .map_err(transport)?,
        ),
        Endpoint::Tcp(addr) => Socket::Tcp(
            TcpStream::connect(addr)
                .await
                .and_then(TcpStream::into_std)
                .map_err(transport)?,
        ),
    })
}

/// Sends one request on `stream`, a new connection; `upgrades` keeps the
/// connection usable after a `101 Switching Protocols`. Error statuses
/// become errors.
async fn send(
    stream: Box<dyn RawStream>,
    request: Request<Full<Bytes>>,
    upgrades: bool,
) -> DockerResult<hyper::Response<hyper::body::Incoming>> {
    let path = request.uri().path().to_string();
    let http = |e: hyper::Error| DockerError::Transport(format!("{path}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    tokio::spawn(async move {
        let ended = if upgrades {
            connection.with_upgrades().await
        } else {
            connection.await
        };
        if let Err(err) = ended {
            tracing::debug!(error = %err, "docker connection ended");
        }
    });
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(response);
    }
    Err(status_error(status, read_error(response.into_body()).await))
}

fn status_error(status: StatusCode, message: String) -> DockerError {
    match status {
        StatusCode::NOT_FOUND => DockerError::NotFound(message),
        StatusCode::CONFLICT => DockerError::Conflict(message),
        _ => DockerError::Api {
            status: status.as_u16(),
            message,
        },
    }
}

/// Sends `GET path` and returns the response body as a byte stream, for
/// long-running streamed answers such as followed logs.
///
/// Two things keep a busy stream cheap. The connection is read in batches
/// (the private `batched` module): bytes arrive up to 20 ms later than they
/// could, many messages per read. And the connection is driven by the
/// reader's own polls rather than by a task of its own, so handing each message
/// from the HTTP decoder to the reader is not a wake-up of another task
/// (often on another thread).
pub async fn get_body(
    endpoint: &Endpoint,
    path: &str,
) -> DockerResult<Box<dyn AsyncRead + Send + Unpin>> {
    use futures_util::TryStreamExt;
    use http_body_util::BodyExt;
    let http = |e: hyper::Error| DockerError::Transport(format!("{path}: {e}"));
    let request = Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(Full::new(Bytes::new()))
        .map_err(|e| DockerError::Transport(format!("{path}: {e}")))?;
    let stream: Box<dyn RawStream> = Box::new(Batched::new(connect_unregistered(endpoint).await?));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let mut connection = Some(Box::pin(connection));
    let response = {
        let mut response = std::pin::pin!(sender.send_request(request));
        std::future::poll_fn(|cx| {
            poll_connection(&mut connection, cx);
            response.as_mut().poll(cx)
        })
        .await
        .map_err(http)?
    };
    let status = response.status();
    if !status.is_success() {
        if let Some(connection) = connection {
            tokio::spawn(connection);
        }
        return Err(status_error(status, read_error(response.into_body()).await));
    }
    let chunks = response
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    Ok(Box::new(InTaskBody {
        _sender: sender,
        connection,
        body: tokio_util::io::StreamReader::new(Box::pin(chunks)),
    }))
}

type BodyConnection =
    hyper::client::conn::http1::Connection<TokioIo<Box<dyn RawStream>>, Full<Bytes>>;

/// A response body whose connection is polled by whoever reads the body.
struct InTaskBody<S> {
    /// Dropping it would end the connection once the response is done;
    /// kept so that only the body's end does.
    _sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    connection: Option<Pin<Box<BodyConnection>>>,
    body: tokio_util::io::StreamReader<S, Bytes>,
}

/// Lets the connection read and decode what has arrived; forgets it once
/// it has ended (the body then sees the end, or the error).
fn poll_connection(connection: &mut Option<Pin<Box<BodyConnection>>>, cx: &mut Context<'_>) {
    if let Some(conn) = connection.as_mut()
        && let Poll::Ready(ended) = conn.as_mut().poll(cx)
    {
        if let Err(err) = ended {
            tracing::debug!(error = %err, "docker connection ended");
        }
        *connection = None;
    }
}

impl<S> AsyncRead for InTaskBody<S>
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        poll_connection(&mut this.connection, cx);
        Pin::new(&mut this.body).poll_read(cx, buf)
    }
}

/// Sends `POST path` with a JSON body asking for a raw stream and returns the
/// upgraded connection.
pub async fn post_upgrade(
    endpoint: &Endpoint,
    path: &str,
    body: serde_json::Value,
) -> DockerResult<Box<dyn RawStream>> {
    let request = Request::post(path)
        .header(hyper::header::HOST, "docker")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "tcp")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| DockerError::Transport(format!("{path}: {e}")))?;
    let mut response = send(connect(endpoint).await?, request, true).await?;
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| DockerError::Transport(format!("{path}: {e}")))?;
    Ok(Box::new(TokioIo::new(upgraded)))
}

async fn read_error(body: hyper::body::Incoming) -> String {
    use http_body_util::BodyExt;
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return err.to_string(),
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock"),
            Some(Endpoint::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375"),
            Some(Endpoint::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(Endpoint::parse("ssh://x"), None);
    }
}
