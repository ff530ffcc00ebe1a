//! `RuntimeService`: each RPC validates nothing itself and holds no Docker
//! types; it hands the request to the domain module that owns it.

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::v1::runtime_service_server::RuntimeService;
use super::v1::*;
use super::{respond, unsupported};
use crate::runtime::Runtime;
use crate::streaming::Streaming;
use crate::{container, info, sandbox};

type Reply<T> = Result<Response<T>, Status>;

const NO_STATS: &str =
    "container and pod statistics are not available yet; the kubelet falls back to cAdvisor";
const NO_EVENTS: &str = "container events are not available yet; use the generic PLEG";
const NO_LIST_STREAMS: &str = "use the unary list call";
const NO_CHECKPOINT: &str = "Docker's checkpoint support is experimental and not used";

/// The CRI runtime service over Docker.
#[derive(Clone)]
pub struct RuntimeServiceImpl {
    rt: Arc<Runtime>,
    streaming: Arc<Streaming>,
}

impl RuntimeServiceImpl {
    /// Serves with the shared runtime state and the streaming server.
    pub fn new(rt: Arc<Runtime>, streaming: Arc<Streaming>) -> Self {
        Self { rt, streaming }
    }
}

#[tonic::async_trait]
impl RuntimeService for RuntimeServiceImpl {
    async fn version(&self, _: Request<VersionRequest>) -> Reply<VersionResponse> {
        respond("Version", info::version(&self.rt).await)
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<RunPodSandboxRequest>,
    ) -> Reply<RunPodSandboxResponse> {
        let result = sandbox::run(&self.rt, req.into_inner()).await;
        respond(
            "RunPodSandbox",
            result.map(|pod_sandbox_id| RunPodSandboxResponse { pod_sandbox_id }),
        )
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<StopPodSandboxRequest>,
    ) -> Reply<StopPodSandboxResponse> {
        let result = sandbox::stop(&self.rt, &req.into_inner().pod_sandbox_id).await;
        respond("StopPodSandbox", result.map(|()| StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<RemovePodSandboxRequest>,
    ) -> Reply<RemovePodSandboxResponse> {
        let result = sandbox::remove(&self.rt, &req.into_inner().pod_sandbox_id).await;
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
            sandbox::status(&self.rt, &req.pod_sandbox_id, req.verbose).await,
        )
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<ListPodSandboxRequest>,
    ) -> Reply<ListPodSandboxResponse> {
        let result = sandbox::list(&self.rt, req.into_inner().filter).await;
        respond(
            "ListPodSandbox",
            result.map(|items| ListPodSandboxResponse { items }),
        )
    }

    async fn stream_pod_sandboxes(
        &self,
        _: Request<StreamPodSandboxesRequest>,
    ) -> Reply<BoxStream<StreamPodSandboxesResponse>> {
        unsupported("StreamPodSandboxes", NO_LIST_STREAMS)
    }

    async fn create_container(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Reply<CreateContainerResponse> {
        let result = container::create(&self.rt, req.into_inner()).await;
        respond(
            "CreateContainer",
            result.map(|container_id| CreateContainerResponse { container_id }),
        )
    }

    async fn start_container(
        &self,
        req: Request<StartContainerRequest>,
    ) -> Reply<StartContainerResponse> {
        let result = container::start(&self.rt, &req.into_inner().container_id).await;
        respond("StartContainer", result.map(|()| StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        req: Request<StopContainerRequest>,
    ) -> Reply<StopContainerResponse> {
        let req = req.into_inner();
        let result = container::stop(&self.rt, &req.container_id, req.timeout).await;
        respond("StopContainer", result.map(|()| StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<RemoveContainerRequest>,
    ) -> Reply<RemoveContainerResponse> {
        let result = container::remove(&self.rt, &req.into_inner().container_id).await;
        respond(
            "RemoveContainer",
            result.map(|()| RemoveContainerResponse {}),
        )
    }

    async fn list_containers(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Reply<ListContainersResponse> {
        let result = container::list(&self.rt, req.into_inner().filter).await;
        respond(
            "ListContainers",
            result.map(|containers| ListContainersResponse { containers }),
        )
    }

    async fn stream_containers(
        &self,
        _: Request<StreamContainersRequest>,
    ) -> Reply<BoxStream<StreamContainersResponse>> {
        unsupported("StreamContainers", NO_LIST_STREAMS)
    }

    async fn container_status(
        &self,
        req: Request<ContainerStatusRequest>,
    ) -> Reply<ContainerStatusResponse> {
        let req = req.into_inner();
        respond(
            "ContainerStatus",
            container::container_status(&self.rt, &req.container_id, req.verbose).await,
        )
    }

    async fn update_container_resources(
        &self,
        req: Request<UpdateContainerResourcesRequest>,
    ) -> Reply<UpdateContainerResourcesResponse> {
        let req = req.into_inner();
        let result = container::update_resources(&self.rt, &req.container_id, req.linux).await;
        respond(
            "UpdateContainerResources",
            result.map(|()| UpdateContainerResourcesResponse {}),
        )
    }

    async fn reopen_container_log(
        &self,
        req: Request<ReopenContainerLogRequest>,
    ) -> Reply<ReopenContainerLogResponse> {
        let result = container::reopen_log(&self.rt, &req.into_inner().container_id).await;
        respond(
            "ReopenContainerLog",
            result.map(|()| ReopenContainerLogResponse {}),
        )
    }

    async fn exec_sync(&self, req: Request<ExecSyncRequest>) -> Reply<ExecSyncResponse> {
        respond(
            "ExecSync",
            container::exec_sync(&self.rt, req.into_inner()).await,
        )
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Reply<ExecResponse> {
        let result = self.streaming.exec(&self.rt, req.into_inner()).await;
        respond("Exec", result.map(|url| ExecResponse { url }))
    }

    async fn attach(&self, req: Request<AttachRequest>) -> Reply<AttachResponse> {
        let result = self.streaming.attach(&self.rt, req.into_inner()).await;
        respond("Attach", result.map(|url| AttachResponse { url }))
    }

    async fn port_forward(&self, req: Request<PortForwardRequest>) -> Reply<PortForwardResponse> {
        let result = self
            .streaming
            .port_forward(&self.rt, req.into_inner())
            .await;
        respond("PortForward", result.map(|url| PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        _: Request<ContainerStatsRequest>,
    ) -> Reply<ContainerStatsResponse> {
        unsupported("ContainerStats", NO_STATS)
    }

    async fn list_container_stats(
        &self,
        _: Request<ListContainerStatsRequest>,
    ) -> Reply<ListContainerStatsResponse> {
        unsupported("ListContainerStats", NO_STATS)
    }

    async fn stream_container_stats(
        &self,
        _: Request<StreamContainerStatsRequest>,
    ) -> Reply<BoxStream<StreamContainerStatsResponse>> {
        unsupported("StreamContainerStats", NO_STATS)
    }

    async fn pod_sandbox_stats(
        &self,
        _: Request<PodSandboxStatsRequest>,
    ) -> Reply<PodSandboxStatsResponse> {
        unsupported("PodSandboxStats", NO_STATS)
    }

    async fn list_pod_sandbox_stats(
        &self,
        _: Request<ListPodSandboxStatsRequest>,
    ) -> Reply<ListPodSandboxStatsResponse> {
        unsupported("ListPodSandboxStats", NO_STATS)
    }

    async fn stream_pod_sandbox_stats(
        &self,
        _: Request<StreamPodSandboxStatsRequest>,
    ) -> Reply<BoxStream<StreamPodSandboxStatsResponse>> {
        unsupported("StreamPodSandboxStats", NO_STATS)
    }

    async fn update_runtime_config(
        &self,
        req: Request<UpdateRuntimeConfigRequest>,
    ) -> Reply<UpdateRuntimeConfigResponse> {
        // With Docker's own networking the pod CIDR is Docker's business;
        // the value is logged so an operator can see what the kubelet sent.
        let pod_cidr = req
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        tracing::info!(%pod_cidr, "runtime config update (unused with Docker networking)");
        Ok(Response::new(UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Reply<StatusResponse> {
        Ok(Response::new(
            info::status(&self.rt, req.into_inner().verbose).await,
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
        unsupported("GetContainerEvents", NO_EVENTS)
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<ListMetricDescriptorsRequest>,
    ) -> Reply<ListMetricDescriptorsResponse> {
        unsupported("ListMetricDescriptors", NO_STATS)
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<ListPodSandboxMetricsRequest>,
    ) -> Reply<ListPodSandboxMetricsResponse> {
        unsupported("ListPodSandboxMetrics", NO_STATS)
    }

    async fn stream_pod_sandbox_metrics(
        &self,
        _: Request<StreamPodSandboxMetricsRequest>,
    ) -> Reply<BoxStream<StreamPodSandboxMetricsResponse>> {
        unsupported("StreamPodSandboxMetrics", NO_STATS)
    }

    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Reply<RuntimeConfigResponse> {
        Ok(Response::new(info::runtime_config(&self.rt)))
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
