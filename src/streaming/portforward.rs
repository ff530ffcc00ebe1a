//! Port forwarding into a pod. Over SPDY (also tunnelled in a WebSocket),
//! each forwarded connection is a pair of streams (data and error) tagged
//! with the port and a request id; over the WebSocket channel protocol each
//! port has a data and an error channel. The shim connects to the port
//! inside the pod's network namespace itself, with no `nsenter` or `socat`
//! on the host.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::netns::dial_in_netns;
use super::remotecommand::{MAX_BASE64_CHANNEL, ws_decode, ws_frame};
use super::session::Activity;
use super::spdy::{Connection, RstStatus, Stream};

/// Bytes read at a time on each side of a forwarded connection.
const COPY_BUF: usize = 64 * 1024;

/// Most forwarded connections of one session waiting for their second
/// stream; a stream that would start another is refused. Clients open the
/// error stream and the data stream of a connection back to back.
pub const MAX_UNPAIRED: usize = 64;

/// How often half-open pairs are checked for a reset half.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A forwarded connection waiting for its second stream.
#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

impl Pair {
    /// False once a half was reset (or the connection ended): the pair can
    /// never be completed, and what it holds is freed by dropping it.
    fn is_live(&self) -> bool {
        [&self.error, &self.data]
            .into_iter()
            .flatten()
            .all(Stream::is_live)
    }
}

/// Serves a SPDY port-forward connection for the pod whose pause process is
/// `pid`, limited to `allowed` ports when the request named any.
pub async fn serve_spdy(conn: Connection, pid: i64, pod: String, allowed: Vec<u16>) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        let stream = tokio::select! {
            stream = conn.accept() => stream,
            _ = sweep.tick() => {
                pending.retain(|_, pair| pair.is_live());
                continue;
            }
        };
        let Some(stream) = stream else {
            break;
        };
        pending.retain(|_, pair| pair.is_live());
        let headers = stream.headers();
        let kind = headers.get("streamtype").unwrap_or_default().to_string();
        let port = headers
            .get("port")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0);
        let Some(port) = port else {
            tracing::debug!(?kind, "port-forward stream without a valid port");
            let _ = stream.reset(RstStatus::ProtocolError).await;
            continue;
        };
        if !allowed.is_empty() && !allowed.contains(&port) {
            tracing::debug!(port, "port-forward to a port the request did not name");
            let _ = stream.reset(RstStatus::RefusedStream).await;
            continue;
        }
        // Old clients send no request id: pair by stream ids instead (the
        // data stream follows its error stream).
        let request = match headers.get("requestid") {
            Some(id) => id.to_string(),
            None if kind == "data" => (stream.id().saturating_sub(2)).to_string(),
            None => stream.id().to_string(),
        };
        if !pending.contains_key(&request) && pending.len() >= MAX_UNPAIRED {
            tracing::debug!(
                port,
                limit = MAX_UNPAIRED,
                "refusing a port-forward stream: too many connections wait for their second stream"
            );
            let _ = stream.reset(RstStatus::RefusedStream).await;
            continue;
        }
        let pair = pending.entry(request.clone()).or_default();
        let slot = match kind.as_str() {
            "error" => &mut pair.error,
            "data" => &mut pair.data,
            _ => {
                let _ = stream.reset(RstStatus::ProtocolError).await;
                if pair.error.is_none() && pair.data.is_none() {
                    pending.remove(&request);
                }
                continue;
            }
        };
        if slot.is_some() {
            // A second stream of the same kind for one request: refuse it
            // rather than silently dropping (and resetting) the first.
            let _ = stream.reset(RstStatus::ProtocolError).await;
            continue;
        }
        *slot = Some(stream);
        if pair.error.is_some()
            && pair.data.is_some()
            && let Some(Pair {
                error: Some(error),
                data: Some(data),
            }) = pending.remove(&request)
        {
            tokio::spawn(forward(error, data, pid, port, pod.clone()));
        }
    }
}

async fn forward(error: Stream, data: Stream, pid: i64, port: u16, pod: String) {
    match dial_in_netns(pid, port).await {
        Ok(mut tcp) => {
            let mut io = data.into_io();
            // tokio's default 8 KiB buffers cut a bulk transfer into eight
            // times as many SPDY frames, writes and wake-ups as 64 KiB.
            if let Err(err) =
                tokio::io::copy_bidirectional_with_sizes(&mut io, &mut tcp, COPY_BUF, COPY_BUF)
                    .await
            {
                tracing::debug!(port, error = %err, "port-forward connection ended with an error");
            }
        }
        Err(err) => {
            let message = serde_json::json!({
                "closeConnection": false,
                "message": format!("error forwarding port {port} to pod {pod}: {err}"),
            });
            let _ = error.send(Bytes::from(message.to_string())).await;
            let _ = data.close().await;
        }
    }
    let _ = error.close().await;
}

/// WebSocket subprotocol that tunnels the SPDY port-forward protocol
/// (newer kubectl and crictl): binary messages carry the raw SPDY bytes.
pub const WS_SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// WebSocket port-forward channel protocols: (name, base64).
pub const WS_CHANNEL_PROTOCOLS: [(&str, bool); 3] = [
    ("v4.channel.k8s.io", false),
    ("v4.base64.channel.k8s.io", true),
    ("", false),
];

/// Turns a WebSocket carrying a byte stream in binary messages into an
/// `AsyncRead + AsyncWrite`, for the SPDY tunnel.
pub fn ws_byte_stream<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut sink, mut stream) = ws.split();
    let (mut from_pipe, mut to_pipe) = tokio::io::split(theirs);
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(data) if to_pipe.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = to_pipe.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            match from_pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    ours
}

/// Why the ports of a WebSocket port-forward session were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsPortsError {
    /// A `port` query value is not a port number.
    #[error("invalid port {0:?} in the query")]
    Invalid(String),
    /// The query names a port the `PortForward` request did not.
    #[error("port {0} was not named by the PortForward request")]
    NotRequested(u16),
}

/// The ports of a WebSocket channel session. The client names them in the
/// query (`port=80&port=443`, or comma-separated), and each must be one the
/// `PortForward` request named, since the token stands for that request;
/// without a query, the request's ports. A request that named no ports
/// allows any, as over SPDY.
pub fn ws_ports(query: &str, requested: &[u16]) -> Result<Vec<u16>, WsPortsError> {
    let mut ports = Vec::new();
    let values = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("port="))
        .flat_map(|v| v.split(','));
    for value in values {
        let port = value
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| WsPortsError::Invalid(value.to_string()))?;
        if !requested.is_empty() && !requested.contains(&port) {
            return Err(WsPortsError::NotRequested(port));
        }
        ports.push(port);
    }
    if ports.is_empty() {
        ports = requested.to_vec();
    }
    Ok(ports)
}

/// Most ports one session of a WebSocket channel protocol can forward:
/// each takes two channels, numbered from 0 in one byte, or as the ASCII
/// characters from `'0'` in the base64 protocol.
pub fn max_ws_ports(base64: bool) -> usize {
    let channels = if base64 {
        usize::from(MAX_BASE64_CHANNEL) + 1
    } else {
        usize::from(u8::MAX) + 1
    };
    channels / 2
}

/// Serves the WebSocket channel protocol: for the i-th port, channel 2i
/// carries data and 2i+1 errors, and each channel's first message is the
/// port, little-endian. One connection to each port per session; ports past
/// [`max_ws_ports`] (refused at the upgrade) are ignored.
pub async fn serve_ws_channels<S>(
    ws: WebSocketStream<S>,
    base64: bool,
    pid: i64,
    pod: String,
    ports: Vec<u16>,
    activity: Activity,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(64);
    let mut to_port: Vec<tokio::sync::mpsc::Sender<Bytes>> = Vec::new();
    for (i, port) in ports.iter().copied().enumerate().take(max_ws_ports(base64)) {
        let data = u8::try_from(2 * i).unwrap_or(u8::MAX);
        let error = data.saturating_add(1);
        for channel in [data, error] {
            if let Some(frame) = ws_frame(base64, channel, &port.to_le_bytes()) {
                let _ = out_tx.send(frame).await;
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        to_port.push(tx);
        let out = out_tx.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            let tcp = match dial_in_netns(pid, port).await {
                Ok(tcp) => tcp,
                Err(err) => {
                    let message = format!("error forwarding port {port} to pod {pod}: {err}");
                    if let Some(frame) = ws_frame(base64, error, message.as_bytes()) {
                        let _ = out.send(frame).await;
                    }
                    return;
                }
            };
            let (mut read, mut write) = tcp.into_split();
            let upstream = async {
                while let Some(chunk) = rx.recv().await {
                    if write.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                let _ = write.shutdown().await;
            };
            let downstream = async {
                let mut buf = vec![0u8; COPY_BUF];
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let Some(frame) = ws_frame(base64, data, &buf[..n]) else {
                                break;
                            };
                            if out.send(frame).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            };
            tokio::join!(upstream, downstream);
        });
    }
    drop(out_tx);
    let sent = activity.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            sent.touch();
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(message)) = stream.next().await {
        activity.touch();
        if matches!(message, Message::Close(_)) {
            break;
        }
        let Some((channel, payload)) = ws_decode(base64, message) else {
            continue;
        };
        // Only even (data) channels carry client bytes.
        let index = usize::from(channel / 2);
        if channel % 2 == 0
            && !payload.is_empty()
            && let Some(tx) = to_port.get(index)
        {
            let _ = tx.send(Bytes::from(payload)).await;
        }
    }
    drop(to_port);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::spdy::{self, HeaderBlock, SpdyError};

    const T: Duration = Duration::from_secs(10);

    fn headers(kind: &str, request: &str) -> HeaderBlock {
        [("streamtype", kind), ("port", "80"), ("requestid", request)]
            .into_iter()
            .collect()
    }

    /// Issue 21: the query's ports were served whatever the request named.
    #[test]
    fn websocket_sessions_get_only_the_requested_ports() {
        assert_eq!(ws_ports("port=8080", &[8080, 9090]), Ok(vec![8080]));
        assert_eq!(
            ws_ports("port=9090,8080", &[8080, 9090]),
            Ok(vec![9090, 8080])
        );
        assert_eq!(ws_ports("", &[8080]), Ok(vec![8080]));
        assert_eq!(
            ws_ports("port=8080&port=22", &[8080]),
            Err(WsPortsError::NotRequested(22))
        );
        assert_eq!(
            ws_ports("port=http", &[8080]),
            Err(WsPortsError::Invalid("http".into()))
        );
        assert_eq!(
            ws_ports("port=0", &[]),
            Err(WsPortsError::Invalid("0".into()))
        );
        assert_eq!(ws_ports("port=22", &[]), Ok(vec![22]));
    }

    /// Issue 21: streams waiting for their partner were kept for the whole
    /// session, however many, even after the client reset them.
    #[tokio::test]
    async fn unpaired_streams_are_capped_and_freed_on_reset() {
        let (a, b) = tokio::io::duplex(256 * 1024);
        let server = Connection::server(a, spdy::Config::default());
        let client = Connection::client(b, spdy::Config::default());
        // No such process: a completed pair is answered on its error stream.
        let served = tokio::spawn(serve_spdy(server, i64::MAX, "pod".into(), vec![80]));
        let mut waiting = Vec::new();
        for i in 0..MAX_UNPAIRED {
            waiting.push(client.open(headers("error", &i.to_string())).await.unwrap());
        }
        let mut refused = client.open(headers("error", "extra")).await.unwrap();
        let err = tokio::time::timeout(T, refused.recv()).await.unwrap();
        assert!(
            matches!(
                err,
                Err(SpdyError::StreamReset {
                    status: RstStatus::RefusedStream,
                    ..
                })
            ),
            "{err:?}"
        );
        // The client gives up on one connection: its slot is free again,
        // and a whole pair gets through to the dial.
        waiting[0].reset(RstStatus::Cancel).await.unwrap();
        let mut error = client.open(headers("error", "next")).await.unwrap();
        let _data = client.open(headers("data", "next")).await.unwrap();
        let message = tokio::time::timeout(T, error.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let message = String::from_utf8_lossy(&message);
        assert!(message.contains("error forwarding port 80"), "{message}");
        client.close().await;
        tokio::time::timeout(T, served).await.unwrap().unwrap();
    }

    /// Both channels of every port a session may forward can be sent, so
    /// no port shares or loses a channel (see
    /// `remotecommand::tests::every_channel_round_trips_or_is_refused`).
    #[test]
    fn every_port_of_a_session_has_its_channels() {
        assert_eq!((max_ws_ports(false), max_ws_ports(true)), (128, 40));
        for base64 in [false, true] {
            for i in 0..max_ws_ports(base64) {
                for channel in [2 * i, 2 * i + 1] {
                    let channel = u8::try_from(channel).unwrap();
                    let frame = ws_frame(base64, channel, b"x").unwrap();
                    assert_eq!(ws_decode(base64, frame), Some((channel, b"x".to_vec())));
                }
            }
        }
    }
}
