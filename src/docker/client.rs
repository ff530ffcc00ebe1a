//! [`DockerApi`] over bollard: connection, API version negotiation, per-call
//! timeouts and the mapping of bollard's errors onto [`DockerError`].

use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::exec::{CreateExecOptions, ResizeExecOptions};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerUpdateBody,
    EventMessage, ExecInspectResponse, ImageInspect, ImageSummary, SystemInfo, SystemVersion,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, CreateImageOptions, EventsOptions,
    InspectContainerOptions, ListContainersOptions, ListImagesOptions, RemoveContainerOptions,
    RemoveImageOptions, ResizeContainerTTYOptions, StopContainerOptions,
};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use super::hijack::{self, Endpoint};
use super::{
    DockerApi, DockerError, DockerResult, ExecSpec, Filters, LogStream, ProcessStreams,
    RegistryAuth, TermSize,
};

/// The oldest Engine API the shim supports (Docker 20.10).
pub const MIN_API_VERSION: (usize, usize) = (1, 41);

/// Timeout for calls that return promptly (everything but stop and streams).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Bounds on Docker requests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Each request that answers promptly.
    pub request: Duration,
    /// Longest silence of a pull's progress stream outside extraction;
    /// zero never cancels.
    pub pull_progress: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request: DEFAULT_TIMEOUT,
            pull_progress: Duration::from_secs(60),
        }
    }
}

/// A Docker Engine reached through bollard.
#[derive(Clone)]
pub struct BollardDocker {
    docker: Docker,
    endpoint: Endpoint,
    api_version: String,
    timeouts: Timeouts,
}

impl BollardDocker {
    /// Connects to `endpoint` (`unix:///path`, `tcp://host:port` or
    /// `http://host:port`), negotiates the API version and refuses engines
    /// older than [`MIN_API_VERSION`].
    pub async fn connect(endpoint: &str, timeouts: Timeouts) -> DockerResult<Self> {
        let timeout = timeouts.request.as_secs().max(1);
        let version = bollard::API_DEFAULT_VERSION;
        let parsed = Endpoint::parse(endpoint).ok_or_else(|| {
            DockerError::Transport(format!(
                "unsupported docker endpoint {endpoint:?}: use unix:///path or tcp://host:port"
            ))
        })?;
        let docker = super::pool::connect(&parsed, timeout, version)
            .map_err(|e| DockerError::Transport(format!("{endpoint}: {e}")))?;

        // negotiate_version consumes the client: negotiate before any clone.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| DockerError::Transport(format!("{endpoint}: {e}")))?;
        let negotiated = docker.client_version();
        let api = (negotiated.major_version, negotiated.minor_version);
        if api < MIN_API_VERSION {
            return Err(DockerError::Transport(format!(
                "docker at {endpoint} speaks API {}.{}, older than the {}.{} this shim needs (Docker 20.10)",
                api.0, api.1, MIN_API_VERSION.0, MIN_API_VERSION.1
            )));
        }
        Ok(Self {
            docker,
            endpoint: parsed,
            api_version: format!("{}.{}", api.0, api.1),
            timeouts,
        })
    }

    /// The API version negotiated with the engine, e.g. `1.41`.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The undecoded body of [`DockerApi::container_logs`]: Docker's own
    /// framing, as it comes (for the log benchmark's baseline).
    pub async fn container_logs_body(
        &self,
        container_id: &str,
        follow: bool,
        since: Option<(i64, u32)>,
    ) -> DockerResult<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
        let mut path = format!(
            "/containers/{container_id}/logs?stdout=1&stderr=1&timestamps=1&follow={}",
            u8::from(follow)
        );
        if let Some((secs, nanos)) = since {
            path.push_str(&format!("&since={secs}.{nanos:09}"));
        }
        hijack::get_body(&self.endpoint, &path).await
    }
}

/// Maps a bollard error to the cases the shim tells apart.
fn map_err(err: bollard::errors::Error) -> DockerError {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => DockerError::NotFound(message),
            // Docker 20.10 answers 500 when two removals of one image race.
            500 if message.contains("unrecognized image ID") => DockerError::NotFound(message),
            409 => DockerError::Conflict(message),
            401 => DockerError::Unauthorized(message),
            _ if is_auth_failure(&message) => DockerError::Unauthorized(message),
            _ => DockerError::Api {
                status: status_code,
                message,
            },
        },
        E::DockerStreamError { error } if is_auth_failure(&error) => {
            DockerError::Unauthorized(error)
        }
        E::DockerStreamError { error } if is_missing_manifest(&error) => {
            DockerError::NotFound(error)
        }
        E::DockerStreamError { error } => DockerError::Stream(error),
        E::RequestTimeoutError => DockerError::Timeout(DEFAULT_TIMEOUT),
        other => DockerError::Transport(other.to_string()),
    }
}

fn is_auth_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("unauthorized")
        || m.contains("authentication required")
        || m.contains("no basic auth credentials")
}

fn is_missing_manifest(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("manifest unknown") || m.contains("not found")
}

#[async_trait]
impl DockerApi for BollardDocker {
    async fn ping(&self) -> DockerResult<()> {
        self.docker.ping().await.map(|_| ()).map_err(map_err)
    }

    async fn version(&self) -> DockerResult<SystemVersion> {
        self.docker.version().await.map_err(map_err)
    }

    async fn info(&self) -> DockerResult<SystemInfo> {
        self.docker.info().await.map_err(map_err)
    }

    fn events(
        &self,
        since: Option<i64>,
        actions: &[&str],
    ) -> BoxStream<'static, DockerResult<EventMessage>> {
        let options = EventsOptions {
            since: since.map(|s| s.to_string()),
            until: None,
            filters: Some(Filters::from([
                (
                    "type".to_string(),
                    vec!["container".to_string(), "image".to_string()],
                ),
                (
                    "event".to_string(),
                    actions.iter().map(|a| a.to_string()).collect(),
                ),
            ])),
        };
        self.docker.events(Some(options)).map_err(map_err).boxed()
    }

    async fn list_containers(&self, filters: Filters) -> DockerResult<Vec<ContainerSummary>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(map_err)
    }

    async fn inspect_container(&self, id: &str) -> DockerResult<ContainerInspectResponse> {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(map_err)
    }

    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> DockerResult<String> {
        let options = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(map_err)?;
        for warning in created.warnings {
            tracing::warn!(container = name, %warning, "docker warned on create");
        }
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> DockerResult<()> {
        self.docker.start_container(id, None).await.map_err(map_err)
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> DockerResult<()> {
        let grace_secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptions {
            t: Some(grace_secs),
            ..Default::default()
        };
        // Docker answers only once the container has stopped, so the request
        // must be allowed the whole grace period and the kill after it.
        let timeout = grace + Duration::from_secs(60);
        self.docker
            .clone()
            .with_timeout(timeout)
            .stop_container(id, Some(options))
            .await
            .map_err(|e| match map_err(e) {
                DockerError::Timeout(_) => DockerError::Timeout(timeout),
                other => other,
            })
    }

    async fn remove_container(&self, id: &str) -> DockerResult<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // Another caller is removing it: removal is idempotent, and the
            // container is going.
            Err(err) => match map_err(err) {
                DockerError::Conflict(message) if message.contains("already in progress") => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn stat_path(&self, container_id: &str, path: &str) -> DockerResult<()> {
        let options = ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        self.docker
            .get_container_archive_info(container_id, Some(options))
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn update_container(&self, id: &str, update: ContainerUpdateBody) -> DockerResult<()> {
        self.docker
            .update_container(id, update)
            .await
            .map_err(map_err)
    }

    async fn create_exec(&self, container_id: &str, spec: ExecSpec) -> DockerResult<String> {
        let options = CreateExecOptions::<String> {
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(spec.stdout),
            attach_stderr: Some(spec.stderr),
            tty: Some(spec.tty),
            cmd: Some(spec.cmd),
            ..Default::default()
        };
        self.docker
            .create_exec(container_id, options)
            .await
            .map(|created| created.id)
            .map_err(map_err)
    }

    async fn start_exec(
        &self,
        exec_id: &str,
        tty: bool,
        console: Option<TermSize>,
    ) -> DockerResult<ProcessStreams> {
        let mut body = serde_json::json!({ "Detach": false, "Tty": tty });
        if let Some(size) = console {
            body["ConsoleSize"] = serde_json::json!([size.height, size.width]);
        }
        let raw =
            hijack::post_upgrade(&self.endpoint, &format!("/exec/{exec_id}/start"), body).await?;
        Ok(ProcessStreams::new(raw, tty))
    }

    async fn resize_exec(&self, exec_id: &str, size: TermSize) -> DockerResult<()> {
        let options = ResizeExecOptions {
            height: size.height,
            width: size.width,
        };
        self.docker
            .resize_exec(exec_id, options)
            .await
            .map_err(map_err)
    }

    async fn attach(
        &self,
        container_id: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> DockerResult<ProcessStreams> {
        // Docker multiplexes the streams unless the container has a TTY.
        let tty = self
            .inspect_container(container_id)
            .await?
            .config
            .and_then(|c| c.tty)
            .unwrap_or(false);
        let path = format!(
            "/containers/{container_id}/attach?stream=1&stdin={}&stdout={}&stderr={}",
            u8::from(stdin),
            u8::from(stdout),
            u8::from(stderr)
        );
        let raw = hijack::post_upgrade(&self.endpoint, &path, serde_json::json!({})).await?;
        Ok(ProcessStreams::new(raw, tty))
    }

    async fn container_logs(
        &self,
        container_id: &str,
        tty: bool,
        follow: bool,
        since: Option<(i64, u32)>,
    ) -> DockerResult<LogStream> {
        let body = self
            .container_logs_body(container_id, follow, since)
            .await?;
        Ok(LogStream::new(body, tty))
    }

    async fn resize_container(&self, container_id: &str, size: TermSize) -> DockerResult<()> {
        let options = ResizeContainerTTYOptions {
            h: i32::from(size.height),
            w: i32::from(size.width),
        };
        self.docker
            .resize_container_tty(container_id, options)
            .await
            .map_err(map_err)
    }

    async fn inspect_exec(&self, exec_id: &str) -> DockerResult<ExecInspectResponse> {
        self.docker.inspect_exec(exec_id).await.map_err(map_err)
    }

    async fn list_images(&self) -> DockerResult<Vec<ImageSummary>> {
        // Engines before API 1.42 ignore shared-size and report -1.
        let options = ListImagesOptions {
            all: false,
            shared_size: true,
            ..Default::default()
        };
        self.docker
            .list_images(Some(options))
            .await
            .map_err(map_err)
    }

    async fn inspect_image(&self, name: &str) -> DockerResult<ImageInspect> {
        self.docker.inspect_image(name).await.map_err(map_err)
    }

    async fn pull_image(
        &self,
        repository: &str,
        tag: &str,
        auth: Option<RegistryAuth>,
    ) -> DockerResult<()> {
        let options = CreateImageOptions {
            from_image: Some(repository.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let credentials = auth.map(|a| DockerCredentials {
            username: a.username,
            password: a.password,
            serveraddress: a.server_address,
            identitytoken: a.identity_token,
            registrytoken: a.registry_token,
            ..Default::default()
        });
        let mut progress = self.docker.create_image(Some(options), None, credentials);
        let deadline = self.timeouts.pull_progress;
        let mut extracting = false;
        loop {
            // A registry that stops sending bytes leaves the stream silent;
            // extracting a large layer legitimately does too.
            let next = if deadline.is_zero() || extracting {
                progress.next().await
            } else {
                match tokio::time::timeout(deadline, progress.next()).await {
                    Ok(next) => next,
                    Err(_) => return Err(DockerError::NoProgress(deadline)),
                }
            };
            match next {
                None => return Ok(()),
                Some(Err(err)) => return Err(map_err(err)),
                Some(Ok(info)) => extracting = info.status.as_deref() == Some("Extracting"),
            }
        }
    }

    async fn remove_image(&self, name: &str) -> DockerResult<()> {
        self.docker
            .remove_image(name, None::<RemoveImageOptions>, None)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn import_image(
        &self,
        rootfs_tar: Vec<u8>,
        repository: &str,
        tag: &str,
        changes: Vec<String>,
    ) -> DockerResult<()> {
        let options = CreateImageOptions {
            from_src: Some("-".to_string()),
            repo: Some(repository.to_string()),
            tag: Some(tag.to_string()),
            changes,
            ..Default::default()
        };
        let body = bollard::body_full(rootfs_tar.into());
        self.docker
            .create_image(Some(options), Some(body), None)
            .map_err(map_err)
            .try_for_each(|_| async { Ok(()) })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_errors_map_to_the_cases_callers_tell_apart() {
        let server = |status_code: u16, message: &str| {
            map_err(bollard::errors::Error::DockerResponseServerError {
                status_code,
                message: message.to_string(),
            })
        };
        assert!(matches!(
            server(404, "No such container: x"),
            DockerError::NotFound(_)
        ));
        assert!(matches!(
            server(500, "unrecognized image ID sha256:0123"),
            DockerError::NotFound(_)
        ));
        assert!(matches!(
            server(409, "name in use"),
            DockerError::Conflict(_)
        ));
        assert!(matches!(
            server(
                500,
                "Head \"https://r/v2/x/manifests/1\": unauthorized: authentication required"
            ),
            DockerError::Unauthorized(_)
        ));
        assert!(matches!(
            server(500, "boom"),
            DockerError::Api { status: 500, .. }
        ));
        let stream = |error: &str| {
            map_err(bollard::errors::Error::DockerStreamError {
                error: error.to_string(),
            })
        };
        assert!(matches!(
            stream("manifest unknown"),
            DockerError::NotFound(_)
        ));
        assert!(matches!(stream("no space left"), DockerError::Stream(_)));
        assert!(matches!(
            map_err(bollard::errors::Error::RequestTimeoutError),
            DockerError::Timeout(_)
        ));
    }
}
