//! `RuntimeService`: each RPC validates nothing itself and holds no Docker
//! types; it hands the request to the domain module that owns it.

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::{paged, respond, unsupported};
use crate::api::runtime_service_server::RuntimeService;
use crate::api::*;
use crate::shim::Shim;
use crate::stats::Stats;
use crate::streaming::Streaming;
use crate::{container, info, sandbox, stats};

type Reply<T> = Result<Response<T>, Status>;

/// Runs a stats reader on a blocking thread: it reads many kernel files,
/// which must not hold up the async runtime's workers.
async fn on_blocking_thread<A, T>(
    shim: &Arc<Shim>,
    arg: A,
    read: fn(&Stats, A) -> T,
) -> Result<T, Status>
where
    A: Send + 'static,
    T: Send + 'static,
{
    let shim = shim.clone();
    tokio::task::spawn_blocking(move || read(&shim.stats, arg))
        .await
        .map_err(|e| Status::internal(format!("stats reader failed: {e}")))
}

const NO_CHECKPOINT: &str = "Docker's checkpoint support is experimental and not used";

/// The CRI runtime service over Docker.
#[derive(Clone)]
pub struct RuntimeServiceImpl {
    shim: Arc<Shim>,
    streaming: Arc<Streaming>,
}

impl RuntimeServiceImpl {
    /// Serves with the shim's shared state and the streaming server.
    pub fn new(shim: Arc<Shim>, streaming: Arc<Streaming>) -> Self {
        Self { shim, streaming }
    }
}

#[tonic::async_trait]
impl RuntimeService for RuntimeServiceImpl {
    async fn version(&self, _: Request<VersionRequest>) -> Reply<VersionResponse> {
        respond("Version", info::version(&self.shim).await)
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<RunPodSandboxRequest>,
    ) -> Reply<RunPodSandboxResponse> {
        let result = sandbox::run(&self.shim.sandboxes(), req.into_inner()).await;
        respond(
            "RunPodSandbox",
            result.map(|pod_sandbox_id| RunPodSandboxResponse { pod_sandbox_id }),
        )
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<StopPodSandboxRequest>,
    ) -> Reply<StopPodSandboxResponse> {
        let result = sandbox::stop(&self.shim.sandboxes(), &req.into_inner().pod_sandbox_id).await;
        respond("StopPodSandbox", result.map(|()| StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<RemovePodSandboxRequest>,
    ) -> Reply<RemovePodSandboxResponse> {
        let result =
            sandbox::remove(&self.shim.sandboxes(), &req.into_inner().pod_sandbox_id).await;
        respond(
            "RemovePodSandbox",
            result.map(|()| RemovePodSandboxResponse {}),
        )
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<PodSandboxStatusRequest>,
    ) -> Reply<PodSandboxStatusResponse> {
        let req = req.into_inner();
        respond(
            "PodSandboxStatus",
            sandbox::status(&self.shim.sandboxes(), &req.pod_sandbox_id, req.verbose).await,
        )
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<ListPodSandboxRequest>,
    ) -> Reply<ListPodSandboxResponse> {
        let items = sandbox::list(&self.shim.sandboxes(), req.into_inner().filter);
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    async fn stream_pod_sandboxes(
        &self,
        req: Request<StreamPodSandboxesRequest>,
    ) -> Reply<BoxStream<StreamPodSandboxesResponse>> {
        let items = sandbox::list(&self.shim.sandboxes(), req.into_inner().filter);
        Ok(Response::new(paged(items, |pod_sandboxes| {
            StreamPodSandboxesResponse { pod_sandboxes }
        })))
    }

    async fn create_container(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Reply<CreateContainerResponse> {
        let result = container::create(&self.shim.containers(), req.into_inner()).await;
        respond(
            "CreateContainer",
            result.map(|container_id| CreateContainerResponse { container_id }),
        )
    }

    async fn start_container(
        &self,
        req: Request<StartContainerRequest>,
    ) -> Reply<StartContainerResponse> {
        let result =
            container::start(&self.shim.containers(), &req.into_inner().container_id).await;
        respond("StartContainer", result.map(|()| StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        req: Request<StopContainerRequest>,
    ) -> Reply<StopContainerResponse> {
        let req = req.into_inner();
        let result = container::stop(&self.shim.containers(), &req.container_id, req.timeout).await;
        respond("StopContainer", result.map(|()| StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<RemoveContainerRequest>,
    ) -> Reply<RemoveContainerResponse> {
        let result =
            container::remove(&self.shim.containers(), &req.into_inner().container_id).await;
        respond(
            "RemoveContainer",
            result.map(|()| RemoveContainerResponse {}),
        )
    }

    async fn list_containers(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Reply<ListContainersResponse> {
        let containers = container::list(&self.shim.containers(), req.into_inner().filter);
        Ok(Response::new(ListContainersResponse { containers }))
    }

    async fn stream_containers(
        &self,
        req: Request<StreamContainersRequest>,
    ) -> Reply<BoxStream<StreamContainersResponse>> {
        let containers = container::list(&self.shim.containers(), req.into_inner().filter);
        Ok(Response::new(paged(containers, |containers| {
            StreamContainersResponse { containers }
        })))
    }

    async fn container_status(
        &self,
        req: Request<ContainerStatusRequest>,
    ) -> Reply<ContainerStatusResponse> {
        let req = req.into_inner();
        respond(
            "ContainerStatus",
            container::container_status(&self.shim.containers(), &req.container_id, req.verbose)
                .await,
        )
    }

    async fn update_container_resources(
        &self,
        req: Request<UpdateContainerResourcesRequest>,
    ) -> Reply<UpdateContainerResourcesResponse> {
        let req = req.into_inner();
        let result =
            container::update_resources(&self.shim.containers(), &req.container_id, req.linux)
                .await;
        respond(
            "UpdateContainerResources",
            result.map(|()| UpdateContainerResourcesResponse {}),
        )
    }

    async fn reopen_container_log(
        &self,
        req: Request<ReopenContainerLogRequest>,
    ) -> Reply<ReopenContainerLogResponse> {
        let result =
            container::reopen_log(&self.shim.containers(), &req.into_inner().container_id).await;
        respond(
            "ReopenContainerLog",
            result.map(|()| ReopenContainerLogResponse {}),
        )
    }

    async fn exec_sync(&self, req: Request<ExecSyncRequest>) -> Reply<ExecSyncResponse> {
        respond(
            "ExecSync",
            container::exec_sync(&self.shim.containers(), req.into_inner()).await,
        )
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Reply<ExecResponse> {
        let result = self.streaming.exec(&self.shim, req.into_inner()).await;
        respond("Exec", result.map(|url| ExecResponse { url }))
    }

    async fn attach(&self, req: Request<AttachRequest>) -> Reply<AttachResponse> {
        let result = self.streaming.attach(&self.shim, req.into_inner()).await;
        respond("Attach", result.map(|url| AttachResponse { url }))
    }

    async fn port_forward(&self, req: Request<PortForwardRequest>) -> Reply<PortForwardResponse> {
        let result = self
            .streaming
            .port_forward(&self.shim, req.into_inner())
            .await;
        respond("PortForward", result.map(|url| PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        req: Request<ContainerStatsRequest>,
    ) -> Reply<ContainerStatsResponse> {
        let result = stats::container_stats(&self.shim.stats, &req.into_inner().container_id).await;
        respond(
            "ContainerStats",
            result.map(|stats| ContainerStatsResponse { stats: Some(stats) }),
        )
    }

    async fn list_container_stats(
        &self,
        req: Request<ListContainerStatsRequest>,
    ) -> Reply<ListContainerStatsResponse> {
        let stats = on_blocking_thread(
            &self.shim,
            req.into_inner().filter,
            stats::list_container_stats,
        )
        .await?;
        Ok(Response::new(ListContainerStatsResponse { stats }))
    }

    async fn stream_container_stats(
        &self,
        req: Request<StreamContainerStatsRequest>,
    ) -> Reply<BoxStream<StreamContainerStatsResponse>> {
        let stats = on_blocking_thread(
            &self.shim,
            req.into_inner().filter,
            stats::list_container_stats,
        )
        .await?;
        Ok(Response::new(paged(stats, |container_stats| {
            StreamContainerStatsResponse { container_stats }
        })))
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<PodSandboxStatsRequest>,
    ) -> Reply<PodSandboxStatsResponse> {
        let result =
            stats::pod_sandbox_stats(&self.shim.stats, &req.into_inner().pod_sandbox_id).await;
        respond(
            "PodSandboxStats",
            result.map(|stats| PodSandboxStatsResponse { stats: Some(stats) }),
        )
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<ListPodSandboxStatsRequest>,
    ) -> Reply<ListPodSandboxStatsResponse> {
        let stats = on_blocking_thread(
            &self.shim,
            req.into_inner().filter,
            stats::list_pod_sandbox_stats,
        )
        .await?;
        Ok(Response::new(ListPodSandboxStatsResponse { stats }))
    }

    async fn stream_pod_sandbox_stats(
        &self,
        req: Request<StreamPodSandboxStatsRequest>,
    ) -> Reply<BoxStream<StreamPodSandboxStatsResponse>> {
        let stats = on_blocking_thread(
            &self.shim,
            req.into_inner().filter,
            stats::list_pod_sandbox_stats,
        )
        .await?;
        Ok(Response::new(paged(stats, |pod_sandbox_stats| {
            StreamPodSandboxStatsResponse { pod_sandbox_stats }
        })))
    }

    async fn update_runtime_config(
        &self,
        req: Request<UpdateRuntimeConfigRequest>,
    ) -> Reply<UpdateRuntimeConfigResponse> {
        // With Docker's own networking the pod CIDR is Docker's business;
        // CNI plugins get it as `ipRanges`.
        let pod_cidr = req
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        self.shim.network.set_pod_cidr(&pod_cidr);
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Reply<StatusResponse> {
        Ok(Response::new(
            info::status(&self.shim, req.into_inner().verbose).await,
        ))
    }

    async fn checkpoint_container(
        &self,
        _: Request<CheckpointContainerRequest>,
    ) -> Reply<CheckpointContainerResponse> {
        unsupported("CheckpointContainer", NO_CHECKPOINT)
    }

    async fn checkpoint_pod(
        &self,
        _: Request<CheckpointPodRequest>,
    ) -> Reply<CheckpointPodResponse> {
        unsupported("CheckpointPod", NO_CHECKPOINT)
    }

    async fn restore_pod(&self, _: Request<RestorePodRequest>) -> Reply<RestorePodResponse> {
        unsupported("RestorePod", NO_CHECKPOINT)
    }

    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> Reply<BoxStream<ContainerEventResponse>> {
        Ok(Response::new(crate::events::subscribe(self.shim.clone())))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<ListMetricDescriptorsRequest>,
    ) -> Reply<ListMetricDescriptorsResponse> {
        Ok(Response::new(ListMetricDescriptorsResponse {
            descriptors: stats::metric_descriptors(),
        }))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<ListPodSandboxMetricsRequest>,
    ) -> Reply<ListPodSandboxMetricsResponse> {
        let pod_metrics = on_blocking_thread(&self.shim, (), |stats, ()| {
            stats::pod_sandbox_metrics(stats)
        })
        .await?;
        Ok(Response::new(ListPodSandboxMetricsResponse { pod_metrics }))
    }

    async fn stream_pod_sandbox_metrics(
        &self,
        _: Request<StreamPodSandboxMetricsRequest>,
    ) -> Reply<BoxStream<StreamPodSandboxMetricsResponse>> {
        let metrics = on_blocking_thread(&self.shim, (), |stats, ()| {
            stats::pod_sandbox_metrics(stats)
        })
        .await?;
        Ok(Response::new(paged(metrics, |pod_sandbox_metrics| {
            StreamPodSandboxMetricsResponse {
                pod_sandbox_metrics,
            }
        })))
    }

    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Reply<RuntimeConfigResponse> {
        Ok(Response::new(info::runtime_config(&self.shim)))
    }

    async fn update_pod_sandbox_resources(
        &self,
        _: Request<UpdatePodSandboxResourcesRequest>,
    ) -> Reply<UpdatePodSandboxResourcesResponse> {
        unsupported(
            "UpdatePodSandboxResources",
            "pod-level cgroups are managed by the kubelet; the pause container has no limits to update",
        )
    }
}
