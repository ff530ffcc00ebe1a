//! The shim's own Prometheus metrics and the `/metrics` endpoint that
//! serves them (off unless `--metrics-bind-addr` is given).
//!
//! - per CRI RPC: requests by gRPC code, and latency ([`grpc`]);
//! - per Docker operation: latency and errors ([`docker`]);
//! - resyncs of the live view after Docker's event stream was lost;
//! - streaming sessions open;
//! - what the binary was built from (`dockershim_build_info`, always 1).

pub mod docker;
pub mod grpc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::view::View;

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

/// Labels of the build-info gauge: which build a node runs, for queries
/// that join it to other series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate's version.
    pub version: String,
    /// The git commit (short hash, `-dirty`), or `unknown`.
    pub commit: String,
    /// The compiler's version number.
    pub rustc: String,
}

/// Every metric the shim keeps.
pub struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcCode, Counter>,
    rpc_seconds: Family<RpcMethod, Histogram>,
    docker_seconds: Family<DockerOperation, Histogram>,
    docker_errors: Family<DockerFailure, Counter>,
    view_resyncs: Counter,
    streaming_sessions: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `dockershim` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dockershim");
        let rpc_requests = Family::<RpcCode, Counter>::default();
        let rpc_seconds =
            Family::<RpcMethod, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let docker_seconds = Family::<DockerOperation, Histogram>::new_with_constructor(
            latency_histogram as fn() -> _,
        );
        let docker_errors = Family::<DockerFailure, Counter>::default();
        let view_resyncs = Counter::default();
        let streaming_sessions = Gauge::default();
        // Set once here and never changed, so only the registry holds it.
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: crate::build_info::VERSION.to_string(),
                commit: crate::build_info::COMMIT.to_string(),
                rustc: crate::build_info::rustc_release().to_string(),
            })
            .set(1);
        registry.register(
            "grpc_requests",
            "CRI requests by method and gRPC status code",
            rpc_requests.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "Time to answer a CRI request (to its first response for streams)",
            rpc_seconds.clone(),
        );
        registry.register(
            "docker_operation_duration_seconds",
            "Time of a Docker Engine API call",
            docker_seconds.clone(),
        );
        registry.register(
            "docker_operation_errors",
            "Failed Docker Engine API calls by kind of failure",
            docker_errors.clone(),
        );
        registry.register(
            "view_resyncs",
            "Rebuilds of the live view from a full container list (start, and each loss of Docker's event stream)",
            view_resyncs.clone(),
        );
        registry.register(
            "streaming_sessions",
            "Exec, attach and port-forward sessions open",
            streaming_sessions.clone(),
        );
        registry.register(
            "build_info",
            "The version, git commit and compiler of the running shim; always 1",
            build_info,
        );
        Self {
            registry,
            rpc_requests,
            rpc_seconds,
            docker_seconds,
            docker_errors,
            view_resyncs,
            streaming_sessions,
        }
    }

    /// Records one answered RPC.
    pub fn observe_rpc(&self, method: &str, code: tonic::Code, took: Duration) {
        self.rpc_requests
            .get_or_create(&RpcCode {
                method: method.to_string(),
                code: format!("{code:?}"),
            })
            .inc();
        self.rpc_seconds
            .get_or_create(&RpcMethod {
                method: method.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one Docker call; `error` names the kind of failure, if any.
    pub fn observe_docker(&self, operation: &'static str, took: Duration, error: Option<&str>) {
        self.docker_seconds
            .get_or_create(&DockerOperation {
                operation: operation.to_string(),
            })
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.docker_errors
                .get_or_create(&DockerFailure {
                    operation: operation.to_string(),
                    error: error.to_string(),
                })
                .inc();
        }
    }

    /// The OpenMetrics text of every metric, with the values that live
    /// elsewhere brought up to date first.
    pub fn render(&self, view_resyncs: u64, streaming_sessions: usize) -> String {
        let seen = self.view_resyncs.get();
        self.view_resyncs.inc_by(view_resyncs.saturating_sub(seen));
        self.streaming_sessions
            .set(i64::try_from(streaming_sessions).unwrap_or(i64::MAX));
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        text
    }
}

/// The address to serve metrics on: a bare port (`9102` or `:9102`) means
/// loopback.
pub fn parse_bind_addr(value: &str) -> Result<SocketAddr, String> {
    let port_only = value.strip_prefix(':').unwrap_or(value);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value.parse().map_err(|_| {
        format!("--metrics-bind-addr {value:?}: use host:port, or a port for loopback")
    })
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    view: Arc<View>,
    sessions: impl Fn() -> usize + Send + Sync + Clone + 'static,
) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "metrics server cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, view, sessions) = (metrics.clone(), view.clone(), sessions.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let reply = answer(&req, &metrics, view.resyncs(), sessions());
                async move { Ok::<_, std::convert::Infallible>(reply) }
            });
            let io = hyper_util::rt::TokioIo::new(tcp);
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %err, "metrics connection ended");
            }
        });
    }
}

fn answer<B>(
    req: &Request<B>,
    metrics: &Metrics,
    resyncs: u64,
    sessions: usize,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.render(resyncs, sessions),
            )
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "only GET /metrics is served here\n".to_string(),
            )
        };
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        reply
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_text_carries_every_family_with_labels() {
        let metrics = Metrics::new();
        metrics.observe_rpc(
            "RuntimeService/ListContainers",
            tonic::Code::Ok,
            Duration::from_millis(2),
        );
        metrics.observe_rpc(
            "RuntimeService/ContainerStatus",
            tonic::Code::NotFound,
            Duration::from_millis(1),
        );
        metrics.observe_docker(
            "inspect_container",
            Duration::from_millis(3),
            Some("not_found"),
        );
        let text = metrics.render(3, 2);
        for wanted in [
            r#"dockershim_grpc_requests_total{method="RuntimeService/ListContainers",code="Ok"} 1"#,
            r#"dockershim_grpc_requests_total{method="RuntimeService/ContainerStatus",code="NotFound"} 1"#,
            r#"dockershim_grpc_request_duration_seconds_count{method="RuntimeService/ListContainers"} 1"#,
            r#"dockershim_docker_operation_duration_seconds_count{operation="inspect_container"} 1"#,
            r#"dockershim_docker_operation_errors_total{operation="inspect_container",error="not_found"} 1"#,
            "dockershim_view_resyncs_total 3",
            "dockershim_streaming_sessions 2",
            "# EOF",
        ] {
            assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
        }
        // A later render only adds what happened since.
        assert!(
            metrics
                .render(4, 0)
                .contains("dockershim_view_resyncs_total 4")
        );
    }

    #[test]
    fn build_info_is_one_with_version_commit_and_compiler() {
        let text = Metrics::new().render(0, 0);
        let wanted = format!(
            r#"dockershim_build_info{{version="{}",commit="{}",rustc="{}"}} 1"#,
            crate::build_info::VERSION,
            crate::build_info::COMMIT,
            crate::build_info::rustc_release(),
        );
        assert!(text.contains(&wanted), "missing {wanted:?} in:\n{text}");
        assert!(
            text.contains("# TYPE dockershim_build_info gauge"),
            "{text}"
        );
    }

    #[test]
    fn bind_addresses_default_to_loopback() {
        assert_eq!(
            parse_bind_addr("9102"),
            Ok("127.0.0.1:9102".parse().unwrap())
        );
        assert_eq!(
            parse_bind_addr(":9102"),
            Ok("127.0.0.1:9102".parse().unwrap())
        );
        assert_eq!(
            parse_bind_addr("0.0.0.0:9102"),
            Ok("0.0.0.0:9102".parse().unwrap())
        );
        assert!(parse_bind_addr("nowhere").is_err());
    }

    #[test]
    fn only_metrics_is_served() {
        let metrics = Metrics::new();
        let get = |path: &str| {
            let req = Request::get(path).body(()).unwrap();
            answer(&req, &metrics, 0, 0).status()
        };
        assert_eq!(get("/metrics"), StatusCode::OK);
        assert_eq!(get("/"), StatusCode::NOT_FOUND);
    }
}
