//! The Docker operations' metrics, and a [`DockerApi`] that times every
//! call of the one it wraps and counts its failures, by operation.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerUpdateBody,
    EventMessage, ExecInspectResponse, ImageInspect, ImageSummary, SystemInfo, SystemVersion,
};
use futures_util::stream::BoxStream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::docker::{
    DockerApi, DockerError, DockerResult, ExecSpec, Filters, LogStream, ProcessStreams,
    RegistryAuth, TermSize,
};

/// Labels of a Docker operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DockerOperation {
    /// The operation, e.g. `inspect_container`.
    pub operation: String,
}

/// Labels of a failed Docker operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DockerFailure {
    /// The operation.
    pub operation: String,
    /// What kind of failure: `not_found`, `conflict`, `timeout` ...
    pub error: String,
}

/// Latency and failures of Docker calls, by operation.
pub struct DockerMetrics {
    seconds: Family<DockerOperation, Histogram>,
    errors: Family<DockerFailure, Counter>,
}

impl Default for DockerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl DockerMetrics {
    /// Empty metrics, not yet registered.
    pub fn new() -> Self {
        Self {
            seconds: Family::new_with_constructor(super::latency_histogram as fn() -> _),
            errors: Family::default(),
        }
    }

    /// Registers them in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "docker_operation_duration_seconds",
            "Time of a Docker Engine API call",
            self.seconds.clone(),
        );
        registry.register(
            "docker_operation_errors",
            "Failed Docker Engine API calls by kind of failure",
            self.errors.clone(),
        );
    }

    /// Records one Docker call; `error` names the kind of failure, if any.
    pub fn observe(&self, operation: &'static str, took: Duration, error: Option<&str>) {
        self.seconds
            .get_or_create(&DockerOperation {
                operation: operation.to_string(),
            })
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.errors
                .get_or_create(&DockerFailure {
                    operation: operation.to_string(),
                    error: error.to_string(),
                })
                .inc();
        }
    }
}

/// Docker with metrics.
pub struct Instrumented {
    inner: Arc<dyn DockerApi>,
    metrics: Arc<DockerMetrics>,
}

impl Instrumented {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn DockerApi>, metrics: Arc<DockerMetrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = DockerResult<T>>,
    ) -> DockerResult<T> {
        let started = Instant::now();
        let result = call.await;
        let error = result.as_ref().err().map(error_kind);
        self.metrics.observe(operation, started.elapsed(), error);
        result
    }
}

fn error_kind(err: &DockerError) -> &'static str {
    match err {
        DockerError::NotFound(_) => "not_found",
        DockerError::Conflict(_) => "conflict",
        DockerError::Unauthorized(_) => "unauthorized",
        DockerError::Timeout(_) => "timeout",
        DockerError::NoProgress(_) => "no_progress",
        DockerError::Api { .. } => "api",
        DockerError::Stream(_) => "stream",
        DockerError::Transport(_) => "transport",
    }
}

#[async_trait]
impl DockerApi for Instrumented {
    async fn ping(&self) -> DockerResult<()> {
        self.timed("ping", self.inner.ping()).await
    }
    async fn version(&self) -> DockerResult<SystemVersion> {
        self.timed("version", self.inner.version()).await
    }
    async fn info(&self) -> DockerResult<SystemInfo> {
        self.timed("info", self.inner.info()).await
    }
    fn events(
        &self,
        since: Option<i64>,
        actions: &[&str],
    ) -> BoxStream<'static, DockerResult<EventMessage>> {
        self.inner.events(since, actions)
    }
    async fn list_containers(&self, filters: Filters) -> DockerResult<Vec<ContainerSummary>> {
        self.timed("list_containers", self.inner.list_containers(filters))
            .await
    }
    async fn inspect_container(&self, id: &str) -> DockerResult<ContainerInspectResponse> {
        self.timed("inspect_container", self.inner.inspect_container(id))
            .await
    }
    async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> DockerResult<String> {
        self.timed("create_container", self.inner.create_container(name, body))
            .await
    }
    async fn start_container(&self, id: &str) -> DockerResult<()> {
        self.timed("start_container", self.inner.start_container(id))
            .await
    }
    async fn stop_container(&self, id: &str, grace: Duration) -> DockerResult<()> {
        self.timed("stop_container", self.inner.stop_container(id, grace))
            .await
    }
    async fn remove_container(&self, id: &str) -> DockerResult<()> {
        self.timed("remove_container", self.inner.remove_container(id))
            .await
    }
    async fn update_container(&self, id: &str, update: ContainerUpdateBody) -> DockerResult<()> {
        self.timed("update_container", self.inner.update_container(id, update))
            .await
    }
    async fn create_exec(&self, container_id: &str, spec: ExecSpec) -> DockerResult<String> {
        self.timed("create_exec", self.inner.create_exec(container_id, spec))
            .await
    }
    async fn start_exec(
        &self,
        exec_id: &str,
        tty: bool,
        console: Option<TermSize>,
    ) -> DockerResult<ProcessStreams> {
        self.timed("start_exec", self.inner.start_exec(exec_id, tty, console))
            .await
    }
    async fn resize_exec(&self, exec_id: &str, size: TermSize) -> DockerResult<()> {
        self.timed("resize_exec", self.inner.resize_exec(exec_id, size))
            .await
    }
    async fn attach(
        &self,
        container_id: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> DockerResult<ProcessStreams> {
        self.timed(
            "attach",
            self.inner.attach(container_id, stdin, stdout, stderr),
        )
        .await
    }
    async fn resize_container(&self, container_id: &str, size: TermSize) -> DockerResult<()> {
        self.timed(
            "resize_container",
            self.inner.resize_container(container_id, size),
        )
        .await
    }
    async fn container_logs(
        &self,
        container_id: &str,
        tty: bool,
        follow: bool,
        since: Option<(i64, u32)>,
    ) -> DockerResult<LogStream> {
        self.timed(
            "container_logs",
            self.inner.container_logs(container_id, tty, follow, since),
        )
        .await
    }
    async fn inspect_exec(&self, exec_id: &str) -> DockerResult<ExecInspectResponse> {
        self.timed("inspect_exec", self.inner.inspect_exec(exec_id))
            .await
    }
    async fn stat_path(&self, container_id: &str, path: &str) -> DockerResult<()> {
        self.timed("stat_path", self.inner.stat_path(container_id, path))
            .await
    }
    async fn list_images(&self) -> DockerResult<Vec<ImageSummary>> {
        self.timed("list_images", self.inner.list_images()).await
    }
    async fn inspect_image(&self, name: &str) -> DockerResult<ImageInspect> {
        self.timed("inspect_image", self.inner.inspect_image(name))
            .await
    }
    async fn pull_image(
        &self,
        repository: &str,
        tag: &str,
        auth: Option<RegistryAuth>,
    ) -> DockerResult<()> {
        self.timed("pull_image", self.inner.pull_image(repository, tag, auth))
            .await
    }
    async fn remove_image(&self, name: &str) -> DockerResult<()> {
        self.timed("remove_image", self.inner.remove_image(name))
            .await
    }
    async fn import_image(
        &self,
        rootfs_tar: Vec<u8>,
        repository: &str,
        tag: &str,
        changes: Vec<String>,
    ) -> DockerResult<()> {
        self.timed(
            "import_image",
            self.inner
                .import_image(rootfs_tar, repository, tag, changes),
        )
        .await
    }
}
