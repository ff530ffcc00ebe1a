//! The streaming server behind `Exec`, `Attach` and `PortForward`.
//!
//! The CRI calls validate a request, park it under a single-use token
//! ([`tokens`]) and return `http://<addr>/{exec,attach,portforward}/<token>`.
//! The client (the kubelet, crictl) connects there and upgrades the HTTP/1.1
//! connection to SPDY/3.1 ([`spdy`]) or WebSocket; [`remotecommand`] and
//! [`portforward`] speak the Kubernetes protocols over them and [`bridge`]
//! connects exec and attach sessions to Docker.

pub mod admission;
pub mod bridge;
pub mod netns;
pub mod portforward;
pub mod remotecommand;
pub mod server;
pub mod session;
pub mod spdy;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;

use crate::api::{AttachRequest, ExecRequest, PortForwardRequest};
use crate::error::{Error, Result};
use crate::shim::Shim;
use crate::{container, sandbox};
use tokens::{Pending, Tokens};

/// Settings of the streaming server.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Most sessions open at once.
    pub max_sessions: usize,
    /// A session with no traffic for this long is closed; zero means never
    /// (as the kubelet reads its own idle timeout).
    pub idle_timeout: Duration,
}

/// The idle timeout to apply: none for zero.
pub fn idle_limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// The running streaming server: issues URLs and serves them.
pub struct Streaming {
    tokens: Tokens,
    base_url: String,
    /// The node's and each pod's session limits.
    admission: admission::Admission,
}

impl Streaming {
    /// Binds the server and starts serving in the background.
    pub async fn start(shim: Arc<Shim>, config: StreamingConfig) -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        // The per-pod limit is read here rather than carried in
        // StreamingConfig, whose construction belongs to the CRI server.
        let per_pod = shim.config.streaming_max_sessions_per_pod;
        let streaming = Arc::new(Self {
            tokens: Tokens::default(),
            base_url: format!("http://{addr}"),
            admission: admission::Admission::new(config.max_sessions, per_pod),
        });
        tokio::spawn(server::serve(listener, streaming.clone(), shim, config));
        tracing::info!(%addr, "streaming server listening");
        Ok(streaming)
    }

    /// Registers the streaming server's metrics in `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.admission.register_metrics(registry);
    }

    fn url(&self, kind: &str, request: Pending, pod: String) -> Result<String> {
        let token = self
            .tokens
            .insert(request, pod)
            .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }

    /// The request behind `token` and the pod (sandbox id) it is for.
    pub(crate) fn take(&self, token: &str) -> Option<(Pending, String)> {
        self.tokens.take(token)
    }

    /// `Exec`: checks the request and returns the URL to stream it.
    pub async fn exec(&self, shim: &Shim, mut req: ExecRequest) -> Result<String> {
        if req.cmd.is_empty() {
            return Err(Error::InvalidArgument("exec command is required".into()));
        }
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        let (id, inspected) =
            container::inspect_running(&shim.containers(), &req.container_id).await?;
        let pod = pod_of(&id, &inspected);
        req.container_id = id;
        self.url("exec", Pending::Exec(req), pod)
    }

    /// `Attach`: checks the request and returns the URL to stream it.
    pub async fn attach(&self, shim: &Shim, mut req: AttachRequest) -> Result<String> {
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        let (id, inspected) =
            container::inspect_running(&shim.containers(), &req.container_id).await?;
        let pod = pod_of(&id, &inspected);
        req.container_id = id;
        self.url("attach", Pending::Attach(req), pod)
    }

    /// `PortForward`: checks the request and returns the URL to stream it.
    pub async fn port_forward(&self, shim: &Shim, mut req: PortForwardRequest) -> Result<String> {
        if let Some(port) = req.port.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(Error::InvalidArgument(format!(
                "port {port} is out of range 1-65535"
            )));
        }
        let inspected = sandbox::inspect(&shim.sandboxes(), &req.pod_sandbox_id)
            .await?
            .inspected;
        if !crate::host::is_running(&inspected) {
            return Err(Error::FailedPrecondition(format!(
                "pod sandbox {} is not running",
                req.pod_sandbox_id
            )));
        }
        req.pod_sandbox_id = inspected.id.clone().unwrap_or_default();
        let pod = req.pod_sandbox_id.clone();
        self.url("portforward", Pending::PortForward(req), pod)
    }
}

/// The pod a container belongs to, for the per-pod session limit: its
/// sandbox's id, or the container's own when it has no sandbox label (a
/// container the shim did not create counts as a pod of its own).
fn pod_of(container_id: &str, inspected: &ContainerInspectResponse) -> String {
    inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|labels| labels.get(crate::naming::SANDBOX_ID_LABEL))
        .filter(|id| !id.is_empty())
        .cloned()
        .unwrap_or_else(|| container_id.to_string())
}

/// The CRI's rules for a session's streams.
fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<()> {
    if tty && stderr {
        return Err(Error::InvalidArgument(
            "tty and stderr cannot both be set: a terminal merges stderr into stdout".into(),
        ));
    }
    if !(stdin || stdout || stderr) {
        return Err(Error::InvalidArgument(
            "at least one of stdin, stdout and stderr must be set".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random-input robustness of every decoder that reads client bytes:
    /// none may panic (Docker's framing has its own test in `docker`).
    /// `DOCKERSHIM_FUZZ_ITERATIONS` raises the count for a longer run
    /// (docs/streaming.md).
    #[test]
    fn decoders_survive_random_input() {
        let iterations: u64 = std::env::var("DOCKERSHIM_FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..iterations {
            let len = (next() % 512) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Often start from something plausible so decoders get past the
            // first checks.
            match next() % 4 {
                0 if data.len() >= 4 => data[..4].copy_from_slice(&[0x80, 0x03, 0x00, 0x01]),
                1 if !data.is_empty() => data[0] = 1,
                _ => {}
            }
            spdy::fuzz_decode(&data);
            for base64 in [false, true] {
                let text = String::from_utf8_lossy(&data).into_owned();
                let _ = remotecommand::ws_decode(
                    base64,
                    tokio_tungstenite::tungstenite::Message::Binary(data.clone().into()),
                );
                let _ = remotecommand::ws_decode(
                    base64,
                    tokio_tungstenite::tungstenite::Message::Text(text.into()),
                );
            }
            session::ResizeDecoder::default().push(&data);
        }
    }

    #[test]
    fn stream_combinations_follow_the_cri() {
        assert!(check_streams(true, true, true, false).is_ok());
        assert!(matches!(
            check_streams(true, false, true, true),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            check_streams(false, false, false, false),
            Err(Error::InvalidArgument(_))
        ));
        assert!(check_streams(false, true, false, false).is_ok());
    }
}
