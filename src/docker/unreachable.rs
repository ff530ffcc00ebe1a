//! A [`DockerApi`] for unit tests of logic that must not call Docker:
//! every method panics.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ImageInspect};

use super::{DockerApi, DockerResult};

/// A Docker that must never be called.
pub struct Unreachable;

#[async_trait::async_trait]
impl DockerApi for Unreachable {
    async fn ping(&self) -> DockerResult<()> {
        unreachable!()
    }
    async fn version(&self) -> DockerResult<bollard::models::SystemVersion> {
        unreachable!()
    }
    async fn info(&self) -> DockerResult<bollard::models::SystemInfo> {
        unreachable!()
    }
    fn events(
        &self,
        _: Option<i64>,
    ) -> futures_util::stream::BoxStream<'static, DockerResult<bollard::models::EventMessage>> {
        unreachable!()
    }
    async fn list_containers(
        &self,
        _: super::Filters,
    ) -> DockerResult<Vec<bollard::models::ContainerSummary>> {
        unreachable!()
    }
    async fn inspect_container(&self, _: &str) -> DockerResult<ContainerInspectResponse> {
        unreachable!()
    }
    async fn create_container(
        &self,
        _: &str,
        _: bollard::models::ContainerCreateBody,
    ) -> DockerResult<String> {
        unreachable!()
    }
    async fn start_container(&self, _: &str) -> DockerResult<()> {
        unreachable!()
    }
    async fn stop_container(&self, _: &str, _: Duration) -> DockerResult<()> {
        unreachable!()
    }
    async fn remove_container(&self, _: &str) -> DockerResult<()> {
        unreachable!()
    }
    async fn update_container(
        &self,
        _: &str,
        _: bollard::models::ContainerUpdateBody,
    ) -> DockerResult<()> {
        unreachable!()
    }
    async fn create_exec(&self, _: &str, _: super::ExecSpec) -> DockerResult<String> {
        unreachable!()
    }
    async fn start_exec(
        &self,
        _: &str,
        _: bool,
        _: Option<super::TermSize>,
    ) -> DockerResult<Box<dyn super::RawStream>> {
        unreachable!()
    }
    async fn resize_exec(&self, _: &str, _: super::TermSize) -> DockerResult<()> {
        unreachable!()
    }
    async fn attach(
        &self,
        _: &str,
        _: bool,
        _: bool,
        _: bool,
    ) -> DockerResult<Box<dyn super::RawStream>> {
        unreachable!()
    }
    async fn resize_container(&self, _: &str, _: super::TermSize) -> DockerResult<()> {
        unreachable!()
    }
    async fn container_logs(
        &self,
        _: &str,
        _: bool,
        _: Option<(i64, u32)>,
    ) -> DockerResult<Box<dyn tokio::io::AsyncRead + Send + Unpin>> {
        unreachable!()
    }
    async fn inspect_exec(&self, _: &str) -> DockerResult<bollard::models::ExecInspectResponse> {
        unreachable!()
    }
    async fn list_images(&self) -> DockerResult<Vec<bollard::models::ImageSummary>> {
        unreachable!()
    }
    async fn inspect_image(&self, _: &str) -> DockerResult<ImageInspect> {
        unreachable!()
    }
    async fn pull_image(
        &self,
        _: &str,
        _: &str,
        _: Option<super::RegistryAuth>,
    ) -> DockerResult<()> {
        unreachable!()
    }
    async fn remove_image(&self, _: &str) -> DockerResult<()> {
        unreachable!()
    }
    async fn import_image(&self, _: Vec<u8>, _: &str, _: &str, _: Vec<String>) -> DockerResult<()> {
        unreachable!()
    }
}
