//! The one narrow interface between the shim and the Docker Engine.
//!
//! Everything the CRI handlers need from Docker goes through [`DockerApi`], so
//! the translation logic can be unit-tested against a fake and the bollard
//! details (version negotiation, per-call timeouts, error shapes) live in one
//! adapter, [`client::BollardDocker`]. The request and response types are
//! bollard's Engine API models: plain data, easy to build in a test. The
//! streams of exec, attach and logs come typed ([`ProcessStreams`],
//! [`LogStream`]): how Docker frames them, with or without a TTY, is known
//! only in here.

mod batched;
pub mod client;
#[cfg(test)]
pub mod fake;
pub mod hijack;
pub mod log_stream;
pub mod multiplex;
mod pool;
pub mod streams;
pub mod tty_log;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerUpdateBody,
    EventMessage, ExecInspectResponse, ImageInspect, ImageSummary, SystemInfo, SystemVersion,
};
use futures_util::stream::BoxStream;

/// Label filters and other list filters, as the Engine API takes them.
pub type Filters = HashMap<String, Vec<String>>;

/// What a Docker call can fail with, in the cases callers must tell apart.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The object does not exist (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request conflicts with the object's state or name (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The registry refused our credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Docker did not answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A pull's progress stream stayed silent too long
    /// (`--image-pull-progress-deadline`); the pull was cancelled.
    #[error("cancelled: no pull progress for {0:?}")]
    NoProgress(Duration),
    /// Docker answered with another error status.
    #[error("docker answered {status}: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// Docker's error message.
        message: String,
    },
    /// An error reported inside a streamed response (e.g. a failed pull).
    #[error("{0}")]
    Stream(String),
    /// Docker could not be reached or its answer could not be read.
    #[error("docker connection: {0}")]
    Transport(String),
}

impl DockerError {
    /// True when the object the call named does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerError::NotFound(_))
    }
}

/// Result of a Docker call.
pub type DockerResult<T> = Result<T, DockerError>;

pub use log_stream::{LOG_MESSAGE_MAX, LogMessage, LogStream};
pub use streams::{Frame, OutputStream, ProcessStreams, StdinWriter};

/// A process to run in a container with `docker exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Attach the process's stdin.
    pub stdin: bool,
    /// Attach its stdout.
    pub stdout: bool,
    /// Attach its stderr.
    pub stderr: bool,
    /// Give it a terminal.
    pub tty: bool,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct TermSize {
    /// Columns.
    #[serde(alias = "width")]
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(alias = "height")]
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Credentials sent to Docker for a registry (the `X-Registry-Auth` header).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Registry host the credentials are for.
    pub server_address: Option<String>,
    /// Identity (refresh) token.
    pub identity_token: Option<String>,
    /// Registry (bearer) token.
    pub registry_token: Option<String>,
}

/// The Docker Engine operations the shim uses.
#[async_trait]
pub trait DockerApi: Send + Sync + 'static {
    /// `GET /_ping`.
    async fn ping(&self) -> DockerResult<()>;
    /// `GET /version`.
    async fn version(&self) -> DockerResult<SystemVersion>;
    /// `GET /info`.
    async fn info(&self) -> DockerResult<SystemInfo>;

    /// `GET /events` for containers and images, from `since` (Unix
    /// seconds) when given, then live until the connection ends. Only
    /// events whose action is in `actions` are sent (Docker filters them).
    fn events(
        &self,
        since: Option<i64>,
        actions: &[&str],
    ) -> BoxStream<'static, DockerResult<EventMessage>>;

    /// `GET /containers/json?all=1` with filters.
    async fn list_containers(&self, filters: Filters) -> DockerResult<Vec<ContainerSummary>>;
    /// `GET /containers/{id}/json`.
    async fn inspect_container(&self, id: &str) -> DockerResult<ContainerInspectResponse>;
    /// `POST /containers/create?name=`; returns the new container's id.
    async fn create_container(&self, name: &str, body: ContainerCreateBody)
    -> DockerResult<String>;
    /// `POST /containers/{id}/start`; starting a running container succeeds.
    async fn start_container(&self, id: &str) -> DockerResult<()>;
    /// `POST /containers/{id}/stop?t=`; stopping a stopped container succeeds.
    async fn stop_container(&self, id: &str, grace: Duration) -> DockerResult<()>;
    /// `DELETE /containers/{id}?force=1&v=1`.
    async fn remove_container(&self, id: &str) -> DockerResult<()>;
    /// `POST /containers/{id}/update`.
    async fn update_container(&self, id: &str, update: ContainerUpdateBody) -> DockerResult<()>;

    /// `POST /containers/{id}/exec`; returns the exec id.
    async fn create_exec(&self, container_id: &str, spec: ExecSpec) -> DockerResult<String>;
    /// `POST /exec/{id}/start`, hijacked: the process's output and stdin.
    /// `tty` is the exec's own setting. `console` sets the TTY size from the
    /// first byte where the engine supports it (API 1.42+).
    async fn start_exec(
        &self,
        exec_id: &str,
        tty: bool,
        console: Option<TermSize>,
    ) -> DockerResult<ProcessStreams>;
    /// `POST /exec/{id}/resize`.
    async fn resize_exec(&self, exec_id: &str, size: TermSize) -> DockerResult<()>;
    /// `POST /containers/{id}/attach?stream=1`, hijacked: the container's
    /// output and stdin, with or without a TTY as the container was created.
    async fn attach(
        &self,
        container_id: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> DockerResult<ProcessStreams>;
    /// `POST /containers/{id}/resize`.
    async fn resize_container(&self, container_id: &str, size: TermSize) -> DockerResult<()>;
    /// `GET /containers/{id}/logs?stdout=1&stderr=1&timestamps=1`, following
    /// new output when `follow` (until the container stops), from `since`
    /// (Unix seconds and nanoseconds, inclusive) when given: the container's
    /// timestamped messages. `tty` is whether the container has a TTY.
    async fn container_logs(
        &self,
        container_id: &str,
        tty: bool,
        follow: bool,
        since: Option<(i64, u32)>,
    ) -> DockerResult<LogStream>;
    /// `GET /exec/{id}/json`.
    async fn inspect_exec(&self, exec_id: &str) -> DockerResult<ExecInspectResponse>;
    /// `HEAD /containers/{id}/archive?path=`: succeeds when `path` exists in
    /// the container's filesystem, `NotFound` when it does not.
    async fn stat_path(&self, container_id: &str, path: &str) -> DockerResult<()>;

    /// `GET /images/json`.
    async fn list_images(&self) -> DockerResult<Vec<ImageSummary>>;
    /// `GET /images/{name}/json`.
    async fn inspect_image(&self, name: &str) -> DockerResult<ImageInspect>;
    /// `POST /images/create?fromImage=&tag=`, waiting for the pull to end.
    async fn pull_image(
        &self,
        repository: &str,
        tag: &str,
        auth: Option<RegistryAuth>,
    ) -> DockerResult<()>;
    /// `DELETE /images/{name}`.
    async fn remove_image(&self, name: &str) -> DockerResult<()>;
    /// `POST /images/create?fromSrc=-` (`docker import`) of a root filesystem
    /// tarball, tagged `repository:tag`, with Dockerfile-style `changes`.
    async fn import_image(
        &self,
        rootfs_tar: Vec<u8>,
        repository: &str,
        tag: &str,
        changes: Vec<String>,
    ) -> DockerResult<()>;
}

/// Parses a Docker timestamp (RFC 3339 with nanoseconds) into Unix
/// nanoseconds; Docker's zero time ("0001-01-01T00:00:00Z") and anything
/// unreadable is 0, which the CRI reads as "not set".
pub fn timestamp_nanos(value: Option<&str>) -> i64 {
    value
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .filter(|t| t.timestamp() > 0)
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

/// Now, in Unix nanoseconds, as the CRI's timestamps are.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_timestamps_become_unix_nanoseconds() {
        assert_eq!(
            timestamp_nanos(Some("2026-11-26T21:35:40.292383669Z")),
            1_795_728_940_292_383_669
        );
        assert_eq!(timestamp_nanos(Some("0001-01-01T00:00:00Z")), 0);
        assert_eq!(timestamp_nanos(Some("garbage")), 0);
        assert_eq!(timestamp_nanos(None), 0);
    }
}
