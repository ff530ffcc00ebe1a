//! Port forwarding into a pod: each forwarded connection is a pair of SPDY
//! streams (data and error) tagged with the port and a request id; the shim
//! connects to the port inside the pod's network namespace itself, with no
//! `nsenter` or `socat` on the host.

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::spdy::{Connection, RstStatus, Stream};

/// How long connecting to the pod's port may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `port` on the loopback of the network namespace of `pid`
/// (the pod's pause process), IPv4 first, then IPv6.
pub async fn dial_in_netns(pid: i64, port: u16) -> std::io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // setns changes only the calling thread's namespace: a short-lived OS
    // thread joins the pod's namespace, connects and hands the socket back;
    // the socket stays in the pod's namespace after the thread ends.
    std::thread::Builder::new()
        .name("netns-dial".into())
        .spawn(move || {
            let result = (|| {
                let netns = File::open(format!("/proc/{pid}/ns/net"))?;
                rustix::thread::move_into_link_name_space(
                    netns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                let stream = std::net::TcpStream::connect_timeout(&v4, DIAL_TIMEOUT)
                    .or_else(|_| std::net::TcpStream::connect_timeout(&v6, DIAL_TIMEOUT))?;
                stream.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(stream)
            })();
            let _ = tx.send(result);
        })?;
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("the namespace dial thread died"))??;
    TcpStream::from_std(stream)
}

/// A forwarded connection waiting for its second stream.
#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

/// Serves a SPDY port-forward connection for the pod whose pause process is
/// `pid`, limited to `allowed` ports when the request named any.
pub async fn serve_spdy(conn: Connection, pid: i64, pod: String, allowed: Vec<u16>) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = conn.accept().await {
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
        let pair = pending.entry(request.clone()).or_default();
        match kind.as_str() {
            "error" => pair.error = Some(stream),
            "data" => pair.data = Some(stream),
            _ => {
                let _ = stream.reset(RstStatus::ProtocolError).await;
                continue;
            }
        }
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
            if let Err(err) = tokio::io::copy_bidirectional(&mut io, &mut tcp).await {
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
