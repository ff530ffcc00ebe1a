//! The one narrow interface between the shim and the Docker Engine.
//!
//! Everything the CRI handlers need from Docker goes through [`DockerApi`], so
//! the translation logic can be unit-tested against a fake and the bollard
//! details (version negotiation, per-call timeouts, error shapes) live in one
//! adapter, [`client::BollardDocker`]. The request and response types are
//! bollard's Engine API models: plain data, easy to build in a test.

pub mod client;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerUpdateBody,
    ExecInspectResponse, ImageInspect, ImageSummary, SystemInfo, SystemVersion,
};

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

/// Output of a finished (or abandoned) non-interactive exec.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Bytes the process wrote to stdout, up to the cap.
    pub stdout: Vec<u8>,
    /// Bytes the process wrote to stderr, up to the cap.
    pub stderr: Vec<u8>,
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

    /// Runs a command in a running container without a TTY and collects its
    /// output, keeping at most `cap` bytes of each stream; returns the exec id
    /// with the output once the process closes its streams.
    async fn exec_collect(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        cap: usize,
        started: tokio::sync::oneshot::Sender<String>,
    ) -> DockerResult<ExecOutput>;
    /// `GET /exec/{id}/json`.
    async fn inspect_exec(&self, exec_id: &str) -> DockerResult<ExecInspectResponse>;

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
