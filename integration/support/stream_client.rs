//! Test clients for the streaming server: SPDY/3.1 (with the shim's own
//! SPDY module in client role) and WebSocket (tokio-tungstenite), speaking
//! the Kubernetes remote-command and port-forward protocols the way
//! client-go does.

use bytes::Bytes;
use dockershim::streaming::spdy::{self, Connection, HeaderBlock, Stream};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Sends the upgrade request and returns the HTTP status, the negotiated
/// protocol header and, on 101, the upgraded connection.
pub async fn spdy_upgrade(
    url: &str,
    protocols: &[&str],
) -> (StatusCode, Option<String>, Option<Connection>) {
    let uri: hyper::Uri = url.parse().unwrap();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut request = Request::post(uri.path())
        .header("host", uri.authority().unwrap().as_str())
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1");
    for protocol in protocols {
        request = request.header("x-stream-protocol-version", *protocol);
    }
    let mut response = sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let chosen = response
        .headers()
        .get("x-stream-protocol-version")
        .map(|v| v.to_str().unwrap().to_string());
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return (status, chosen, None);
    }
    let upgraded = hyper::upgrade::on(&mut response).await.unwrap();
    let conn = Connection::client(TokioIo::new(upgraded), spdy::Config::default());
    (status, chosen, Some(conn))
}

/// Opens a stream with the given headers.
pub async fn open(conn: &Connection, headers: &[(&str, &str)]) -> Stream {
    let block: HeaderBlock = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
    conn.open(block).await.unwrap()
}

/// Reads a stream to its end.
pub async fn read_all(stream: &mut Stream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = stream.recv().await {
        out.extend_from_slice(&chunk);
    }
    out
}

/// What a remote command returned.
#[derive(Debug, Default)]
pub struct Finished {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub error: Vec<u8>,
}

impl Finished {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn error_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.error).unwrap_or_else(|e| {
            panic!(
                "error stream {:?}: {e}",
                String::from_utf8_lossy(&self.error)
            )
        })
    }
}

/// A SPDY remote-command session's streams.
pub struct SpdySession {
    pub conn: Connection,
    pub error: Stream,
    pub stdin: Option<Stream>,
    pub stdout: Option<Stream>,
    pub stderr: Option<Stream>,
    pub resize: Option<Stream>,
}

impl SpdySession {
    /// Connects with `protocol` and opens the streams client-go opens.
    pub async fn open(
        url: &str,
        protocol: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        resize: bool,
    ) -> Self {
        let (status, chosen, conn) = spdy_upgrade(url, &[protocol]).await;
        assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(chosen.as_deref(), Some(protocol));
        let conn = conn.unwrap();
        let error = open(&conn, &[("streamtype", "error")]).await;
        let mut session = SpdySession {
            error,
            stdin: None,
            stdout: None,
            stderr: None,
            resize: None,
            conn,
        };
        if stdin {
            session.stdin = Some(open(&session.conn, &[("streamtype", "stdin")]).await);
        }
        if stdout {
            session.stdout = Some(open(&session.conn, &[("streamtype", "stdout")]).await);
        }
        if stderr {
            session.stderr = Some(open(&session.conn, &[("streamtype", "stderr")]).await);
        }
        if resize {
            session.resize = Some(open(&session.conn, &[("streamtype", "resize")]).await);
        }
        session
    }

    pub async fn resize(&self, width: u16, height: u16) {
        let message = format!("{{\"Width\":{width},\"Height\":{height}}}\n");
        self.resize
            .as_ref()
            .unwrap()
            .send(Bytes::from(message))
            .await
            .unwrap();
    }

    pub async fn write_stdin(&self, data: &[u8]) {
        self.stdin
            .as_ref()
            .unwrap()
            .send(Bytes::copy_from_slice(data))
            .await
            .unwrap();
    }

    pub async fn close_stdin(&self) {
        self.stdin.as_ref().unwrap().close().await.unwrap();
    }

    /// Reads stdout, stderr and the error stream to their ends.
    pub async fn finish(mut self) -> Finished {
        let stdout = async {
            match self.stdout.as_mut() {
                Some(s) => read_all(s).await,
                None => Vec::new(),
            }
        };
        let stderr = async {
            match self.stderr.as_mut() {
                Some(s) => read_all(s).await,
                None => Vec::new(),
            }
        };
        let (stdout, stderr) = tokio::join!(stdout, stderr);
        let error = read_all(&mut self.error).await;
        Finished {
            stdout,
            stderr,
            error,
        }
    }
}

/// A WebSocket remote-command client.
pub struct WsSession {
    pub protocol: String,
    pub socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsSession {
    pub async fn connect(url: &str, offered: &str) -> Self {
        let ws_url = url.replacen("http://", "ws://", 1);
        let mut request = ws_url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", offered.parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        WsSession { protocol, socket }
    }

    fn base64(&self) -> bool {
        self.protocol.contains("base64")
    }

    pub async fn send(&mut self, channel: u8, payload: &[u8]) {
        use base64::Engine;
        let message = if self.base64() {
            Message::Text(
                format!(
                    "{}{}",
                    channel,
                    base64::engine::general_purpose::STANDARD.encode(payload)
                )
                .into(),
            )
        } else {
            let mut data = vec![channel];
            data.extend_from_slice(payload);
            Message::Binary(data.into())
        };
        self.socket.send(message).await.unwrap();
    }

    /// Reads frames until the server closes; returns stdout, stderr, error.
    pub async fn finish(mut self) -> Finished {
        use base64::Engine;
        let mut finished = Finished::default();
        while let Some(Ok(message)) = self.socket.next().await {
            let (channel, payload) = match message {
                Message::Binary(data) if !data.is_empty() => (data[0], data[1..].to_vec()),
                Message::Text(text) if !text.is_empty() => {
                    let text = text.as_str();
                    (
                        text.as_bytes()[0] - b'0',
                        base64::engine::general_purpose::STANDARD
                            .decode(&text[1..])
                            .unwrap(),
                    )
                }
                Message::Close(_) => break,
                _ => continue,
            };
            match channel {
                1 => finished.stdout.extend(payload),
                2 => finished.stderr.extend(payload),
                3 => finished.error.extend(payload),
                _ => {}
            }
        }
        finished
    }
}
