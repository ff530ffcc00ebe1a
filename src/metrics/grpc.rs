//! The CRI RPCs' metrics, and the tower layer around the CRI services that
//! counts each RPC by its gRPC status code and times it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::codegen::http;
use tower::{Layer, Service};

/// Labels of an RPC's request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcCode {
    /// Service and method, e.g. `RuntimeService/ListContainers`.
    pub method: String,
    /// The gRPC status code's name, e.g. `OK`, `NotFound`.
    pub code: String,
}

/// Labels of an RPC's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcMethod {
    /// Service and method.
    pub method: String,
}

/// Requests by method and code, and their latency.
pub struct RpcMetrics {
    requests: Family<RpcCode, Counter>,
    seconds: Family<RpcMethod, Histogram>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcMetrics {
    /// Empty metrics, not yet registered.
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(super::latency_histogram as fn() -> _),
        }
    }

    /// Registers them in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "grpc_requests",
            "CRI requests by method and gRPC status code",
            self.requests.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "Time to answer a CRI request (to its first response for streams)",
            self.seconds.clone(),
        );
    }

    /// Records one answered RPC.
    pub fn observe(&self, method: &str, code: tonic::Code, took: std::time::Duration) {
        self.requests
            .get_or_create(&RpcCode {
                method: method.to_string(),
                code: format!("{code:?}"),
            })
            .inc();
        self.seconds
            .get_or_create(&RpcMethod {
                method: method.to_string(),
            })
            .observe(took.as_secs_f64());
    }
}

/// Wraps a service with RPC metrics.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    metrics: Arc<RpcMetrics>,
}

impl RpcMetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: Arc<RpcMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Recorded {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RpcMetricsLayer`] makes.
#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

impl<S, B, RB> Service<http::Request<B>> for Recorded<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_name(req.uri().path());
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let answer = answer.await;
            let code = match &answer {
                Ok(response) => status_code(response.headers()),
                Err(_) => tonic::Code::Unknown,
            };
            metrics.observe(method, code, started.elapsed());
            answer
        })
    }
}

/// The `method` label of every RPC the shim serves, as
/// `<service>/<rpc>`; a test checks it against the served proto.
const METHODS: &[&str] = &[
    "RuntimeService/Version",
    "RuntimeService/RunPodSandbox",
    "RuntimeService/StopPodSandbox",
    "RuntimeService/RemovePodSandbox",
    "RuntimeService/PodSandboxStatus",
    "RuntimeService/ListPodSandbox",
    "RuntimeService/StreamPodSandboxes",
    "RuntimeService/CreateContainer",
    "RuntimeService/StartContainer",
    "RuntimeService/StopContainer",
    "RuntimeService/RemoveContainer",
    "RuntimeService/ListContainers",
    "RuntimeService/StreamContainers",
    "RuntimeService/ContainerStatus",
    "RuntimeService/UpdateContainerResources",
    "RuntimeService/ReopenContainerLog",
    "RuntimeService/ExecSync",
    "RuntimeService/Exec",
    "RuntimeService/Attach",
    "RuntimeService/PortForward",
    "RuntimeService/ContainerStats",
    "RuntimeService/ListContainerStats",
    "RuntimeService/StreamContainerStats",
    "RuntimeService/PodSandboxStats",
    "RuntimeService/ListPodSandboxStats",
    "RuntimeService/StreamPodSandboxStats",
    "RuntimeService/UpdateRuntimeConfig",
    "RuntimeService/Status",
    "RuntimeService/CheckpointContainer",
    "RuntimeService/CheckpointPod",
    "RuntimeService/RestorePod",
    "RuntimeService/GetContainerEvents",
    "RuntimeService/ListMetricDescriptors",
    "RuntimeService/ListPodSandboxMetrics",
    "RuntimeService/StreamPodSandboxMetrics",
    "RuntimeService/RuntimeConfig",
    "RuntimeService/UpdatePodSandboxResources",
    "ImageService/ListImages",
    "ImageService/StreamImages",
    "ImageService/ImageStatus",
    "ImageService/PullImage",
    "ImageService/RemoveImage",
    "ImageService/ImageFsInfo",
];

/// The `method` label of any other request path: the label's values are
/// bounded whatever paths clients send.
const OTHER_METHOD: &str = "other";

/// `/runtime.v1.RuntimeService/ListContainers` as
/// `RuntimeService/ListContainers`; any path that is not a CRI RPC as
/// [`OTHER_METHOD`].
fn method_name(path: &str) -> &'static str {
    path.strip_prefix("/runtime.v1.")
        .and_then(|method| METHODS.iter().find(|known| **known == method))
        .copied()
        .unwrap_or(OTHER_METHOD)
}

/// An error is reported in the response headers ("trailers only"); a
/// successful answer carries its status in the trailers, after the body.
fn status_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_named_by_service_and_rpc() {
        assert_eq!(
            method_name("/runtime.v1.RuntimeService/ListContainers"),
            "RuntimeService/ListContainers"
        );
        assert_eq!(
            method_name("/runtime.v1.ImageService/PullImage"),
            "ImageService/PullImage"
        );
    }

    #[test]
    fn paths_that_are_not_cri_rpcs_share_one_label() {
        for path in [
            "/odd",
            "",
            "/runtime.v1.RuntimeService/NoSuchRpc",
            "/runtime.v1alpha2.RuntimeService/Version",
            "/grpc.health.v1.Health/Check",
            "/runtime.v1.RuntimeService/Version/extra",
        ] {
            assert_eq!(method_name(path), OTHER_METHOD, "{path}");
        }
    }

    #[test]
    fn every_served_rpc_has_its_own_label() {
        let proto = include_str!("../../proto/runtime/v1/api.proto");
        let mut service = "";
        let mut rpcs = 0;
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.trim_end_matches('{').trim();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let rpc = rest.split('(').next().unwrap_or_default();
                let path = format!("/runtime.v1.{service}/{rpc}");
                assert_eq!(method_name(&path), &path["/runtime.v1.".len()..]);
                rpcs += 1;
            }
        }
        assert_eq!(rpcs, METHODS.len());
    }

    #[test]
    fn codes_come_from_the_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), tonic::Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_code(&headers), tonic::Code::NotFound);
    }
}
