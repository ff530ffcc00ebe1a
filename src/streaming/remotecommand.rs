//! The remote-command protocol (exec and attach) over SPDY and over
//! WebSocket: how each transport carries stdin, stdout, stderr, the error
//! stream and terminal sizes, bridged to a [`SessionIo`].

use std::future::Future;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::session::{
    Activity, ClientSide, Outcome, RemoteCommandVersion, ResizeDecoder, SessionIo, Wanted,
    channels, send_stdin,
};
use super::spdy::{Connection, Stream};

/// How long a SPDY client has to open all the streams of a session.
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5's close signal: `[255, channel]` half-closes that channel.
const CLOSE: u8 = 255;

/// A WebSocket subprotocol for remote commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsProtocol {
    /// Its name, echoed in the handshake (empty when the client named none).
    pub name: &'static str,
    /// Protocol version.
    pub version: RemoteCommandVersion,
    /// Text frames with base64 payloads instead of binary frames.
    pub base64: bool,
}

/// Remote-command WebSocket subprotocols, most preferred first.
pub const WS_PROTOCOLS: [WsProtocol; 5] = [
    WsProtocol {
        name: "v5.channel.k8s.io",
        version: RemoteCommandVersion::V5,
        base64: false,
    },
    WsProtocol {
        name: "v4.channel.k8s.io",
        version: RemoteCommandVersion::V4,
        base64: false,
    },
    WsProtocol {
        name: "v4.base64.channel.k8s.io",
        version: RemoteCommandVersion::V4,
        base64: true,
    },
    WsProtocol {
        name: "channel.k8s.io",
        version: RemoteCommandVersion::V1,
        base64: false,
    },
    WsProtocol {
        name: "base64.channel.k8s.io",
        version: RemoteCommandVersion::V1,
        base64: true,
    },
];

/// Picks the first protocol the client offers that the server speaks; a
/// client that offers none gets plain `channel.k8s.io`.
pub fn negotiate_ws(offered: &[String]) -> Option<WsProtocol> {
    if offered.is_empty() {
        return Some(WsProtocol {
            name: "",
            ..WS_PROTOCOLS[3]
        });
    }
    offered
        .iter()
        .find_map(|o| WS_PROTOCOLS.iter().find(|p| p.name == o.as_str()).copied())
}

/// Largest WebSocket message, and frame, a client may send. Clients write
/// stdin and forwarded bytes in pieces of 32 KiB (Go's `io.Copy` buffer),
/// 43 KiB as base64; tungstenite's defaults (64 MiB messages of 16 MiB
/// frames) would let every message of every session take that much.
pub const WS_MAX_MESSAGE: usize = 1024 * 1024;

/// The WebSocket settings of every streaming session.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE))
}

/// Receives from an optional channel; `None` at once when there is none.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

/// Highest channel of the base64 protocols: the channel travels as the
/// character `'0' + channel`, and a text message's first byte is that
/// character only while it is ASCII.
pub const MAX_BASE64_CHANNEL: u8 = 0x7F - b'0';

/// Encodes a channel frame: binary `[channel, payload...]`, or text
/// `'0'+channel` followed by base64 for the base64 protocols. `None` for a
/// channel above [`MAX_BASE64_CHANNEL`] in the base64 protocols, which
/// cannot be told apart from another channel on the wire.
pub fn ws_frame(base64: bool, channel: u8, payload: &[u8]) -> Option<Message> {
    if base64 {
        if channel > MAX_BASE64_CHANNEL {
            return None;
        }
        let text = format!(
            "{}{}",
            char::from(b'0' + channel),
            base64::engine::general_purpose::STANDARD.encode(payload)
        );
        Some(Message::Text(text.into()))
    } else {
        let mut data = Vec::with_capacity(payload.len() + 1);
        data.push(channel);
        data.extend_from_slice(payload);
        Some(Message::Binary(data.into()))
    }
}

/// Decodes a client frame into (channel, payload).
pub fn ws_decode(base64: bool, message: Message) -> Option<(u8, Vec<u8>)> {
    match message {
        Message::Binary(data) if !base64 => {
            let (&channel, payload) = data.split_first()?;
            Some((channel, payload.to_vec()))
        }
        Message::Text(text) if base64 => {
            // Bytes, not a str slice: the first character may not be ASCII.
            let (first, encoded) = text.as_bytes().split_first()?;
            let channel = first.checked_sub(b'0')?;
            let payload = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            Some((channel, payload))
        }
        _ => None,
    }
}

/// Serves one exec or attach session over a WebSocket.
pub async fn serve_ws<S, F, Fut>(
    ws: WebSocketStream<S>,
    protocol: WsProtocol,
    wanted: Wanted,
    cmd: &[String],
    idle_timeout: Option<Duration>,
    run: F,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(SessionIo) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (client, io) = channels(wanted);
    let ClientSide {
        stdin,
        mut stdout,
        mut stderr,
        resize,
        client_gone,
    } = client;
    let (mut sink, mut stream) = ws.split();

    // The ready signal: an empty frame on the lowest channel the client reads.
    let ready = if wanted.stdout {
        STDOUT
    } else if wanted.stderr {
        STDERR
    } else {
        ERROR
    };
    let mut alive = match ws_frame(protocol.base64, ready, &[]) {
        Some(frame) => sink.send(frame).await.is_ok(),
        None => false,
    };

    let activity = Activity::default();
    let gone = client_gone.clone();
    let seen = activity.clone();
    let reader = tokio::spawn(async move {
        let mut stdin = stdin;
        let mut decoder = ResizeDecoder::default();
        while let Some(Ok(message)) = stream.next().await {
            seen.touch();
            if matches!(message, Message::Close(_)) {
                break;
            }
            let Some((channel, payload)) = ws_decode(protocol.base64, message) else {
                continue;
            };
            match channel {
                STDIN if !payload.is_empty() => {
                    if let Some(tx) = &stdin
                        && send_stdin(tx, Bytes::from(payload)).await.is_err()
                    {
                        stdin = None;
                    }
                }
                RESIZE => {
                    if let Some(tx) = &resize {
                        for size in decoder.push(&payload) {
                            let _ = tx.send(size).await;
                        }
                    }
                }
                CLOSE
                    if protocol.version >= RemoteCommandVersion::V5
                        && payload.first() == Some(&STDIN) =>
                {
                    stdin = None;
                }
                _ => {}
            }
        }
        gone.cancel();
    });

    let writer = async {
        loop {
            let (channel, chunk) = tokio::select! {
                Some(chunk) = recv_opt(&mut stdout) => (STDOUT, chunk),
                Some(chunk) = recv_opt(&mut stderr) => (STDERR, chunk),
                else => break,
            };
            activity.touch();
            // Once the client is gone, output is drained and dropped so the
            // bridge never blocks.
            if alive
                && let Some(frame) = ws_frame(protocol.base64, channel, &chunk)
                && sink.send(frame).await.is_err()
            {
                alive = false;
            }
        }
    };
    let idle = async {
        activity.idle_for(idle_timeout).await;
        tracing::info!(?idle_timeout, "closing an idle streaming session");
        client_gone.cancel();
    };
    let (outcome, ()) = tokio::select! {
        done = async { tokio::join!(run(io), writer) } => done,
        () = idle => (Outcome::Failed("the session was idle too long".into()), ()),
    };

    if alive {
        if let Some(status) = protocol.version.status_payload(&outcome, cmd)
            && let Some(frame) = ws_frame(protocol.base64, ERROR, &status)
        {
            let _ = sink.send(frame).await;
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
    }
    // Give the client a moment to answer the close, then stop reading.
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
}

/// The streams of a SPDY remote-command session, by type.
#[derive(Default)]
struct SpdyStreams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl SpdyStreams {
    fn complete(&self, wanted: Wanted) -> bool {
        self.error.is_some()
            && (!wanted.stdin || self.stdin.is_some())
            && (!wanted.stdout || self.stdout.is_some())
            && (!wanted.stderr || self.stderr.is_some())
            && (!wanted.resize || self.resize.is_some())
    }
}

/// Serves one exec or attach session over a SPDY connection.
pub async fn serve_spdy<F, Fut>(
    conn: Connection,
    version: RemoteCommandVersion,
    wanted: Wanted,
    cmd: &[String],
    run: F,
) where
    F: FnOnce(SessionIo) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut streams = SpdyStreams::default();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while !streams.complete(wanted) {
        let stream = match tokio::time::timeout_at(deadline, conn.accept()).await {
            Ok(Some(stream)) => stream,
            Ok(None) => return,
            Err(_) => {
                tracing::warn!(
                    "client did not open its streams within {STREAM_CREATION_TIMEOUT:?}"
                );
                conn.close().await;
                return;
            }
        };
        let kind = stream
            .headers()
            .get("streamtype")
            .unwrap_or_default()
            .to_string();
        let slot = match kind.as_str() {
            "error" => &mut streams.error,
            "stdin" => &mut streams.stdin,
            "stdout" => &mut streams.stdout,
            "stderr" => &mut streams.stderr,
            "resize" => &mut streams.resize,
            other => {
                tracing::debug!(streamtype = other, "ignoring a stream of unknown type");
                continue;
            }
        };
        *slot = Some(stream);
    }

    let (client, io) = channels(wanted);
    let ClientSide {
        stdin,
        mut stdout,
        mut stderr,
        resize,
        client_gone,
    } = client;
    let gone = client_gone.clone();
    let watcher = conn.clone();
    let watch = tokio::spawn(async move {
        watcher.closed().await;
        gone.cancel();
    });
    let mut readers = Vec::new();
    if let (Some(mut stream), Some(tx)) = (streams.stdin.take(), stdin) {
        readers.push(tokio::spawn(async move {
            while let Ok(Some(chunk)) = stream.recv().await {
                if send_stdin(&tx, chunk).await.is_err() {
                    break;
                }
            }
            // Dropping `tx` is the process's EOF.
        }));
    }
    if let (Some(mut stream), Some(tx)) = (streams.resize.take(), resize) {
        readers.push(tokio::spawn(async move {
            let mut decoder = ResizeDecoder::default();
            while let Ok(Some(chunk)) = stream.recv().await {
                for size in decoder.push(&chunk) {
                    let _ = tx.send(size).await;
                }
            }
        }));
    }

    let out = streams.stdout.as_ref().map(Stream::sender);
    let err = streams.stderr.as_ref().map(Stream::sender);
    let writer = async {
        let mut alive = true;
        loop {
            let (target, chunk) = tokio::select! {
                Some(chunk) = recv_opt(&mut stdout) => (&out, chunk),
                Some(chunk) = recv_opt(&mut stderr) => (&err, chunk),
                else => break,
            };
            if let Some(sender) = target
                && alive
                && sender.send(chunk).await.is_err()
            {
                alive = false;
            }
        }
    };
    let (outcome, ()) = tokio::join!(run(io), writer);

    for sender in [&out, &err].into_iter().flatten() {
        let _ = sender.close().await;
    }
    if let Some(error) = streams.error.take() {
        if let Some(status) = version.status_payload(&outcome, cmd) {
            let _ = error.send(Bytes::from(status)).await;
        }
        let _ = error.close().await;
    }
    for task in readers {
        task.abort();
    }
    watch.abort();
    conn.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_protocols_follow_the_clients_preference() {
        let offer =
            |list: &[&str]| negotiate_ws(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            offer(&["v5.channel.k8s.io", "v4.channel.k8s.io"])
                .unwrap()
                .version,
            RemoteCommandVersion::V5
        );
        assert!(offer(&["v4.base64.channel.k8s.io"]).unwrap().base64);
        assert_eq!(
            offer(&["bogus", "channel.k8s.io"]).unwrap().name,
            "channel.k8s.io"
        );
        assert_eq!(offer(&[]).unwrap().name, "");
        assert_eq!(offer(&["bogus"]), None);
    }

    /// Issue 21: a client's 16 MiB stdin messages were read whole, 18 of
    /// them before sends blocked.
    #[tokio::test]
    async fn websocket_messages_above_the_limit_are_refused() {
        use tokio_tungstenite::tungstenite::protocol::Role;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut server = WebSocketStream::from_raw_socket(a, Role::Server, Some(ws_config())).await;
        let client_config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let mut client =
            WebSocketStream::from_raw_socket(b, Role::Client, Some(client_config)).await;
        let sender = tokio::spawn(async move {
            for len in [WS_MAX_MESSAGE, WS_MAX_MESSAGE + 1] {
                if client
                    .send(Message::Binary(vec![0u8; len].into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            client
        });
        let first = server.next().await.unwrap().unwrap();
        assert_eq!(first.len(), WS_MAX_MESSAGE);
        let second = server.next().await.unwrap();
        assert!(
            matches!(
                second,
                Err(tokio_tungstenite::tungstenite::Error::Capacity(_))
            ),
            "{second:?}"
        );
        drop(server);
        let _ = sender.await;
    }

    #[test]
    fn websocket_frames_round_trip_in_both_encodings() {
        for protocol in WS_PROTOCOLS {
            let frame = ws_frame(protocol.base64, STDERR, b"\x00\xffdata").unwrap();
            assert_eq!(
                ws_decode(protocol.base64, frame),
                Some((STDERR, b"\x00\xffdata".to_vec()))
            );
        }
        assert_eq!(ws_decode(false, Message::Binary(Bytes::new())), None);
        assert_eq!(ws_decode(false, Message::Text("1abc".into())), None);
        assert_eq!(ws_decode(true, Message::Text("0!!!".into())), None);
        // Found by the random-input test: a multi-byte first character.
        assert_eq!(ws_decode(true, Message::Text("é".into())), None);
    }

    /// Found by the `ws_channel` fuzz target: in the base64 protocols the
    /// channel travels as the character `'0' + channel`, which overflowed
    /// past channel 207 and was not ASCII (so decoded as another channel)
    /// from 80 on; port-forward numbers channels 2i and 2i+1 per port.
    #[test]
    fn every_channel_round_trips_or_is_refused() {
        for base64 in [false, true] {
            for channel in 0..=u8::MAX {
                let Some(frame) = ws_frame(base64, channel, b"\x00data") else {
                    assert!(base64 && channel > MAX_BASE64_CHANNEL, "channel {channel}");
                    continue;
                };
                assert_eq!(
                    ws_decode(base64, frame),
                    Some((channel, b"\x00data".to_vec())),
                    "channel {channel}, base64 {base64}"
                );
            }
        }
    }
}
