//! Start-up and serving: connect to Docker, open the CRI socket, serve both
//! CRI services until SIGTERM or SIGINT, then clean up.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::api::image_service_server::ImageServiceServer;
use crate::api::runtime_service_server::RuntimeServiceServer;
use crate::config::{Config, Listen};
use crate::cri::image::ImageServiceImpl;
use crate::cri::runtime::RuntimeServiceImpl;
use crate::docker::client::{BollardDocker, Timeouts};
use crate::docker::{DockerApi, DockerError};
use crate::shim::Shim;
use crate::streaming::{Streaming, StreamingConfig};

pub use crate::api::MAX_MESSAGE_SIZE;

/// How long in-flight calls may run on after SIGTERM.
/// RPCs one connection may have in progress at once; more wait for a
/// slot. The kubelet sends everything over one connection: a node at its
/// pod limit (110) with three exec probes each and its status, stats and
/// PLEG calls stays far below this. Memory is bounded separately per call
/// kind (ExecSync output, image pulls); this bounds the tasks.
pub const MAX_RPCS_PER_CONNECTION: usize = 1024;

const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the shim could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A flag is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Docker is unreachable or too old.
    #[error("cannot use Docker at {endpoint}: {source}")]
    Docker {
        /// The Docker endpoint tried.
        endpoint: String,
        /// What went wrong.
        #[source]
        source: DockerError,
    },
    /// Gathering facts about Docker failed.
    #[error("cannot start: {0}")]
    Shim(#[from] crate::error::Error),
    /// The socket or state directory could not be set up.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the shim was doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The streaming server could not listen.
    #[error("streaming server on {addr}: {source}")]
    Streaming {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The metrics server could not listen.
    #[error("metrics server on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The gRPC server task panicked or was cancelled.
    #[error("gRPC server stopped unexpectedly: {0}")]
    Crashed(String),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ServeError + 'a {
    move |source| ServeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the shim until a termination signal arrives.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let listen = config.listen().map_err(ServeError::Config)?;
    let docker_err = |source| ServeError::Docker {
        endpoint: config.docker_endpoint.clone(),
        source,
    };
    if !config.runtime_cgroups.is_empty() {
        let joined =
            crate::self_cgroup::join(&config.runtime_cgroups).map_err(|source| ServeError::Io {
                what: "join --runtime-cgroups",
                path: config.runtime_cgroups.clone().into(),
                source,
            })?;
        tracing::info!(cgroups = ?joined, "moved into the runtime cgroup");
    }
    if config.ipv6_dual_stack {
        tracing::info!(
            "--ipv6-dual-stack: pods always report their IPv4 and IPv6 addresses; nothing to change"
        );
    }
    let timeouts = Timeouts {
        request: Some(config.runtime_request_timeout)
            .filter(|t| !t.is_zero())
            .unwrap_or(Timeouts::default().request),
        pull_progress: config.image_pull_progress_deadline,
    };
    let docker = BollardDocker::connect(&config.docker_endpoint, timeouts)
        .await
        .map_err(docker_err)?;
    docker.ping().await.map_err(docker_err)?;
    let api_version = docker.api_version().to_string();
    tracing::info!(endpoint = %config.docker_endpoint, api = %api_version, "connected to Docker");

    std::fs::create_dir_all(&config.root_directory)
        .map_err(io_err("create state directory", &config.root_directory))?;
    let endpoint = config.docker_endpoint.clone();
    let metrics_addr = config
        .metrics_bind_addr
        .as_deref()
        .map(crate::metrics::parse_bind_addr)
        .transpose()
        .map_err(ServeError::Config)?;
    let rpc_metrics = metrics_addr.map(|_| Arc::new(crate::metrics::grpc::RpcMetrics::new()));
    let docker_metrics =
        metrics_addr.map(|_| Arc::new(crate::metrics::docker::DockerMetrics::new()));
    let docker: Arc<dyn crate::docker::DockerApi> = match &docker_metrics {
        Some(metrics) => Arc::new(crate::metrics::docker::Instrumented::new(
            Arc::new(docker),
            metrics.clone(),
        )),
        None => Arc::new(docker),
    };
    let shim = Arc::new(Shim::new(config, docker, api_version).await?);
    crate::view::watch::start(shim.view.clone())
        .await
        .map_err(|source| ServeError::Docker { endpoint, source })?;
    tracing::info!(
        docker = %shim.host.docker_version,
        cgroup_driver = ?shim.host.cgroup_driver,
        cdi = shim.host.features.cdi().state(),
        cdi_spec_dirs = ?shim.host.features.cdi().spec_dirs(),
        pause_image = %shim.pause.configured(),
        "runtime ready"
    );

    // Containers that ran while no shim did: catch their log files up.
    let resuming = shim.clone();
    let started = chrono::Utc::now();
    tokio::spawn(async move { resuming.logs.resume(started).await });
    let reclaiming = shim.clone();
    tokio::spawn(async move {
        crate::sandbox::reclaim_orphaned_networks(&reclaiming.sandboxes()).await
    });

    let streaming_config = StreamingConfig {
        bind: shim.config.streaming_bind_addr,
        max_sessions: shim.config.streaming_max_sessions,
        idle_timeout: std::time::Duration::from_secs(shim.config.streaming_idle_timeout),
    };
    let streaming = Streaming::start(shim.clone(), streaming_config)
        .await
        .map_err(|source| ServeError::Streaming {
            addr: shim.config.streaming_bind_addr,
            source,
        })?;

    if let Some(addr) = metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Metrics { addr, source })?;
        tracing::info!(%addr, "serving metrics");
        let mut registry = crate::metrics::registry();
        if let Some(metrics) = &rpc_metrics {
            metrics.register(&mut registry);
        }
        if let Some(metrics) = &docker_metrics {
            metrics.register(&mut registry);
        }
        shim.view.register_metrics(&mut registry);
        streaming.register_metrics(&mut registry);
        tokio::spawn(crate::metrics::serve(listener, Arc::new(registry)));
    }

    let (listener, socket_path) = open_listener(&listen)?;
    let runtime_service =
        RuntimeServiceServer::new(RuntimeServiceImpl::new(shim.clone(), streaming))
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let image_service = ImageServiceServer::new(ImageServiceImpl::new(shim.clone()))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);

    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %err, "no systemd notification socket");
    }
    tracing::info!(endpoint = ?listen, "serving CRI v1");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let layer =
        tower::util::option_layer(rpc_metrics.map(crate::metrics::grpc::RpcMetricsLayer::new));
    let relist = crate::cri::relist::RelistLayer::new(shim.clone());
    let mut server = tokio::spawn(
        Server::builder()
            .concurrency_limit_per_connection(MAX_RPCS_PER_CONNECTION)
            .layer(layer)
            .layer(tower::util::MapResponseLayer::new(
                crate::cri::wire_status::client_error_codes,
            ))
            .layer(crate::cri::wire_status::DeadlineLayer)
            .layer(relist)
            .add_service(runtime_service)
            .add_service(image_service)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );
    let ended = tokio::select! {
        ended = &mut server => Some(ended),
        () = shutdown_signal() => {
            let _ = stop_tx.send(());
            // In-flight calls get a moment to finish; a client that keeps its
            // connection open must not keep the shim from exiting.
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(ended) => Some(ended),
                Err(_) => {
                    tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open; exiting anyway");
                    None
                }
            }
        }
    };
    let served = match ended {
        Some(Ok(result)) => result.map_err(ServeError::Serve),
        Some(Err(join)) => Err(ServeError::Crashed(join.to_string())),
        None => Ok(()),
    };
    if let Some(path) = socket_path
        && let Err(err) = std::fs::remove_file(&path)
    {
        tracing::warn!(path = %path.display(), error = %err, "cannot remove the socket");
    }
    tracing::info!("stopped");
    served
}

/// Opens the CRI socket. A socket the shim creates itself is returned with
/// its path, so it can be removed on shutdown.
fn open_listener(listen: &Listen) -> Result<(UnixListener, Option<PathBuf>), ServeError> {
    match listen {
        Listen::Systemd => {
            let fd_path = Path::new("LISTEN_FDS");
            let std_listener = listenfd::ListenFd::from_env()
                .take_unix_listener(0)
                .map_err(io_err("take the systemd socket", fd_path))?
                .ok_or_else(|| {
                    ServeError::Config(
                        "fd:// given but systemd passed no socket (LISTEN_FDS)".into(),
                    )
                })?;
            std_listener
                .set_nonblocking(true)
                .map_err(io_err("configure the systemd socket", fd_path))?;
            let listener = UnixListener::from_std(std_listener)
                .map_err(io_err("use the systemd socket", fd_path))?;
            Ok((listener, None))
        }
        Listen::Unix(path) => {
            remove_stale_socket(path)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err("create socket directory", dir))?;
            }
            let listener = UnixListener::bind(path).map_err(io_err("bind", path))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .map_err(io_err("set permissions of", path))?;
            Ok((listener, Some(path.clone())))
        }
    }
}

/// Removes a socket left by an earlier run; refuses to remove anything that
/// is not a socket, and a socket another process still serves (a second
/// shim must not silently take the kubelet's endpoint from the first).
fn remove_stale_socket(path: &Path) -> Result<(), ServeError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => Err(ServeError::Config(format!(
                    "{} is served by another process (another dockershim?); refusing to take it over",
                    path.display()
                ))),
                // Nobody listens: the file is what an earlier run left.
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(io_err("remove stale socket", path))
                }
                Err(err) => Err(io_err("check whether a process serves", path)(err)),
            }
        }
        Ok(_) => Err(ServeError::Config(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_err("inspect", path)(err)),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dockershim.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let refused = remove_stale_socket(&path);
        assert!(
            matches!(&refused, Err(ServeError::Config(msg)) if msg.contains("another process")),
            "{refused:?}"
        );
        assert!(path.exists(), "the live socket is left alone");
        // Closing the listener leaves its file behind, as a killed shim does.
        drop(live);
        assert!(path.exists());
        remove_stale_socket(&path).expect("a stale socket is removed");
        assert!(!path.exists());
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dockershim.sock");
        std::fs::write(&path, b"").expect("write");
        assert!(remove_stale_socket(&path).is_err());
        assert!(path.exists());
    }
}
