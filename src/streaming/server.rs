//! The HTTP side of the streaming server: routes `/exec|attach|portforward/
//! <token>`, negotiates SPDY/3.1 or WebSocket and the Kubernetes protocol
//! version, answers `101 Switching Protocols` and runs the session on the
//! upgraded connection. At most `max_sessions` sessions run at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderMap, HeaderValue, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::admission::SessionPermit;
use super::remotecommand::{self, WsProtocol};
use super::session::{Activity, RemoteCommandVersion, Wanted};
use super::spdy::{self, Connection};
use super::tokens::Pending;
use super::{Streaming, StreamingConfig, bridge, portforward};
use crate::shim::Shim;

/// The port-forward protocol over SPDY.
const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

#[derive(Clone)]
struct Ctx {
    streaming: Arc<Streaming>,
    shim: Arc<Shim>,
    /// None: sessions are never closed for idleness.
    idle_timeout: Option<Duration>,
}

type Reply = Response<Full<Bytes>>;

/// Accepts connections until the process ends.
pub async fn serve(
    listener: TcpListener,
    streaming: Arc<Streaming>,
    shim: Arc<Shim>,
    config: StreamingConfig,
) {
    let ctx = Ctx {
        streaming,
        shim,
        idle_timeout: super::idle_limit(config.idle_timeout),
    };
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "streaming server cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Interactive sessions write a few bytes at a time; Nagle's
        // algorithm would hold each echo back until the previous one is
        // acknowledged. (Go's servers, the kubelet's and containerd's
        // included, set TCP_NODELAY on every connection.)
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(ctx, req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "streaming connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, message: impl Into<String>) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(message.into())));
    *response.status_mut() = status;
    response
}

/// All values of a header, split at commas.
fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn wants_upgrade_to(headers: &HeaderMap, protocol: &str) -> bool {
    let connection_upgrade = header_list(headers, CONNECTION.as_str())
        .iter()
        .any(|v| v.eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        && headers
            .get(UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(protocol))
}

async fn handle(ctx: Ctx, req: Request<Incoming>) -> Reply {
    if req.method() != Method::GET && req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
    }
    let mut parts = req.uri().path().trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (pending, pod) = match ctx.streaming.take(token) {
        Some((p, pod))
            if matches!(
                (kind, &p),
                ("exec", Pending::Exec(_))
                    | ("attach", Pending::Attach(_))
                    | ("portforward", Pending::PortForward(_))
            ) =>
        {
            (p, pod)
        }
        _ => return reply(StatusCode::NOT_FOUND, "unknown or expired streaming token"),
    };
    let permit = match ctx.streaming.admission.admit(&pod) {
        Ok(permit) => permit,
        Err(refused) => return reply(StatusCode::SERVICE_UNAVAILABLE, refused.to_string()),
    };
    let headers = req.headers().clone();
    if wants_upgrade_to(&headers, "websocket") {
        upgrade_websocket(ctx, req, pending, permit, &headers)
    } else if wants_upgrade_to(&headers, "SPDY/3.1") {
        upgrade_spdy(ctx, req, pending, permit, &headers)
    } else {
        reply(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        )
    }
}

fn switching(headers: &[(&str, String)]) -> Reply {
    let mut response = reply(StatusCode::SWITCHING_PROTOCOLS, "");
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value)
            && let Ok(name) = hyper::header::HeaderName::from_bytes(name.as_bytes())
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn upgrade_spdy(
    ctx: Ctx,
    req: Request<Incoming>,
    pending: Pending,
    permit: SessionPermit,
    headers: &HeaderMap,
) -> Reply {
    let offered = header_list(headers, "x-stream-protocol-version");
    if offered.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "X-Stream-Protocol-Version is required",
        );
    }
    let supported: Vec<&str> = match pending {
        Pending::PortForward(_) => vec![PORT_FORWARD_PROTOCOL],
        _ => RemoteCommandVersion::SPDY
            .iter()
            .map(|(name, _)| *name)
            .collect(),
    };
    let Some(chosen) = offered
        .iter()
        .find(|o| supported.contains(&o.as_str()))
        .cloned()
    else {
        let mut response = reply(
            StatusCode::FORBIDDEN,
            format!("none of the offered protocols {offered:?} is supported"),
        );
        for name in supported {
            response.headers_mut().append(
                "x-accepted-stream-protocol-versions",
                HeaderValue::from_static(name),
            );
        }
        return response;
    };
    let upgrade = hyper::upgrade::on(req);
    let response = switching(&[
        ("connection", "Upgrade".into()),
        ("upgrade", "SPDY/3.1".into()),
        ("x-stream-protocol-version", chosen.clone()),
    ]);
    tokio::spawn(async move {
        let _permit = permit;
        let io = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(err) => return tracing::debug!(error = %err, "SPDY upgrade failed"),
        };
        let config = spdy::Config {
            idle_timeout: ctx.idle_timeout,
            ..Default::default()
        };
        let conn = Connection::server(io, config);
        let version = RemoteCommandVersion::SPDY
            .iter()
            .find(|(name, _)| *name == chosen)
            .map_or(RemoteCommandVersion::V1, |(_, v)| *v);
        run_spdy(ctx, conn, version, pending).await;
    });
    response
}

async fn run_spdy(ctx: Ctx, conn: Connection, version: RemoteCommandVersion, pending: Pending) {
    let shim = ctx.shim.as_ref();
    match pending {
        Pending::Exec(req) => {
            let wanted = wanted(
                req.stdin,
                req.stdout,
                req.stderr,
                req.tty && version.has_resize(),
            );
            remotecommand::serve_spdy(conn, version, wanted, &req.cmd, |io| {
                bridge::exec(shim.docker.as_ref(), &req, io)
            })
            .await;
        }
        Pending::Attach(req) => {
            let wanted = wanted(
                req.stdin,
                req.stdout,
                req.stderr,
                req.tty && version.has_resize(),
            );
            remotecommand::serve_spdy(conn, version, wanted, &[], |io| {
                bridge::attach(shim.docker.as_ref(), &req, io)
            })
            .await;
        }
        Pending::PortForward(req) => {
            let Some(pid) = sandbox_pid(shim, &req.pod_sandbox_id).await else {
                conn.close().await;
                return;
            };
            let ports = req
                .port
                .iter()
                .filter_map(|p| u16::try_from(*p).ok())
                .collect();
            portforward::serve_spdy(conn, pid, req.pod_sandbox_id.clone(), ports).await;
        }
    }
}

fn wanted(stdin: bool, stdout: bool, stderr: bool, resize: bool) -> Wanted {
    Wanted {
        stdin,
        stdout,
        stderr,
        resize,
    }
}

/// The pause process of a running sandbox, whose network namespace is the pod's.
async fn sandbox_pid(shim: &Shim, sandbox_id: &str) -> Option<i64> {
    match shim.docker.inspect_container(sandbox_id).await {
        Ok(inspected) => inspected.state.and_then(|s| s.pid).filter(|pid| *pid > 0),
        Err(err) => {
            tracing::warn!(sandbox = sandbox_id, error = %err, "port-forward: cannot inspect the sandbox");
            None
        }
    }
}

fn upgrade_websocket(
    ctx: Ctx,
    req: Request<Incoming>,
    pending: Pending,
    permit: SessionPermit,
    headers: &HeaderMap,
) -> Reply {
    let Some(key) = headers.get("sec-websocket-key") else {
        return reply(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is required");
    };
    let accept = derive_accept_key(key.as_bytes());
    let offered = header_list(headers, "sec-websocket-protocol");
    if let Pending::PortForward(request) = pending {
        return upgrade_ws_port_forward(ctx, req, request, permit, accept, &offered);
    }
    let Some(protocol) = remotecommand::negotiate_ws(&offered) else {
        return reply(
            StatusCode::BAD_REQUEST,
            format!("none of the offered protocols {offered:?} is supported"),
        );
    };
    accept_websocket(req, permit, accept, protocol.name, move |ws| {
        run_websocket(ctx, ws, protocol, pending)
    })
}

/// Answers `101` with the chosen subprotocol and runs `session` on the
/// WebSocket once the connection is upgraded, holding the session permit.
fn accept_websocket<F, Fut>(
    req: Request<Incoming>,
    permit: SessionPermit,
    accept: String,
    protocol: &str,
    session: F,
) -> Reply
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut response_headers = vec![
        ("connection", "Upgrade".to_string()),
        ("upgrade", "websocket".to_string()),
        ("sec-websocket-accept", accept),
    ];
    if !protocol.is_empty() {
        response_headers.push(("sec-websocket-protocol", protocol.to_string()));
    }
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let _permit = permit;
        let io = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(err) => return tracing::debug!(error = %err, "WebSocket upgrade failed"),
        };
        let config = remotecommand::ws_config();
        session(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await).await;
    });
    switching(&response_headers)
}

/// How a WebSocket port-forward session speaks.
enum WsPortForward {
    /// SPDY tunnelled in binary messages.
    Tunnel,
    /// The channel protocol; `true` for base64 text frames.
    Channels(bool),
}

fn upgrade_ws_port_forward(
    ctx: Ctx,
    req: Request<Incoming>,
    request: crate::api::PortForwardRequest,
    permit: SessionPermit,
    accept: String,
    offered: &[String],
) -> Reply {
    let choice = if offered.is_empty() {
        Some(("", WsPortForward::Channels(false)))
    } else {
        offered.iter().find_map(|o| {
            if o == portforward::WS_SPDY_TUNNEL {
                return Some((portforward::WS_SPDY_TUNNEL, WsPortForward::Tunnel));
            }
            portforward::WS_CHANNEL_PROTOCOLS
                .iter()
                .find(|(name, _)| !name.is_empty() && *name == o.as_str())
                .map(|(name, base64)| (*name, WsPortForward::Channels(*base64)))
        })
    };
    let Some((name, mode)) = choice else {
        return reply(
            StatusCode::BAD_REQUEST,
            format!("none of the offered protocols {offered:?} is supported"),
        );
    };
    let requested: Vec<u16> = request
        .port
        .iter()
        .filter_map(|p| u16::try_from(*p).ok())
        .collect();
    let ports = match portforward::ws_ports(req.uri().query().unwrap_or_default(), &requested) {
        Ok(ports) => ports,
        Err(err @ portforward::WsPortsError::NotRequested(_)) => {
            return reply(StatusCode::FORBIDDEN, err.to_string());
        }
        Err(err) => return reply(StatusCode::BAD_REQUEST, err.to_string()),
    };
    if matches!(mode, WsPortForward::Channels(_)) && ports.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "at least one port must be specified",
        );
    }
    // Each port takes two channels, and the protocol numbers only so many.
    if let WsPortForward::Channels(base64) = mode
        && ports.len() > portforward::max_ws_ports(base64)
    {
        return reply(
            StatusCode::BAD_REQUEST,
            format!(
                "at most {} ports can be forwarded in one session of this protocol",
                portforward::max_ws_ports(base64)
            ),
        );
    }
    accept_websocket(req, permit, accept, name, move |ws| async move {
        let shim = ctx.shim.as_ref();
        let Some(pid) = sandbox_pid(shim, &request.pod_sandbox_id).await else {
            return;
        };
        let pod = request.pod_sandbox_id.clone();
        match mode {
            WsPortForward::Tunnel => {
                let config = spdy::Config {
                    idle_timeout: ctx.idle_timeout,
                    ..Default::default()
                };
                let conn = Connection::server(portforward::ws_byte_stream(ws), config);
                portforward::serve_spdy(conn, pid, pod, ports).await;
            }
            WsPortForward::Channels(base64) => {
                let activity = Activity::default();
                let idle = ctx.idle_timeout;
                tokio::select! {
                    () = portforward::serve_ws_channels(ws, base64, pid, pod, ports, activity.clone()) => {}
                    () = activity.idle_for(idle) => {
                        tracing::info!(?idle, "closing an idle port-forward session");
                    }
                }
            }
        }
    })
}

async fn run_websocket<S>(ctx: Ctx, ws: WebSocketStream<S>, protocol: WsProtocol, pending: Pending)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shim = ctx.shim.as_ref();
    match pending {
        Pending::Exec(req) => {
            let wanted = wanted(req.stdin, req.stdout, req.stderr, req.tty);
            let idle = ctx.idle_timeout;
            remotecommand::serve_ws(ws, protocol, wanted, &req.cmd, idle, |io| {
                bridge::exec(shim.docker.as_ref(), &req, io)
            })
            .await;
        }
        Pending::Attach(req) => {
            let wanted = wanted(req.stdin, req.stdout, req.stderr, req.tty);
            let idle = ctx.idle_timeout;
            remotecommand::serve_ws(ws, protocol, wanted, &[], idle, |io| {
                bridge::attach(shim.docker.as_ref(), &req, io)
            })
            .await;
        }
        // Port-forward sessions are routed before this point.
        Pending::PortForward(_) => {}
    }
}
