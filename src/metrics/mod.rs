//! The shim's Prometheus endpoint (off unless `--metrics-bind-addr` is
//! given): one registry under the `dockershim` prefix, served on
//! `GET /metrics`.
//!
//! Each metric is registered by the code that owns it, so a new metric is a
//! change to one file:
//! - per CRI RPC, requests by gRPC code and latency: [`grpc::RpcMetrics`];
//! - per Docker operation, latency and errors: [`docker::DockerMetrics`];
//! - resyncs of the live view: `View::register_metrics`;
//! - streaming sessions open: `Streaming::register_metrics`;
//! - what the binary was built from (`dockershim_build_info`, always 1):
//!   here, in [`registry`].
//!
//! The composition root (`server.rs`) builds the registry and has each
//! owner register in it before serving.

pub mod docker;
pub mod grpc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// The latency buckets every histogram of the shim uses: 0.1 ms to about
/// 3.3 s.
pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// A registry under the `dockershim` prefix holding the build-info gauge;
/// the owners of the other metrics register theirs in it.
pub fn registry() -> Registry {
    let mut registry = Registry::with_prefix("dockershim");
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
        "build_info",
        "The version, git commit and compiler of the running shim; always 1",
        build_info,
    );
    registry
}

/// The OpenMetrics text of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(err) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(error = %err, "cannot encode metrics");
    }
    text
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
pub async fn serve(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "metrics server cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let reply = answer(&req, &registry);
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

fn answer<B>(req: &Request<B>, registry: &Registry) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                render(registry),
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
        let mut registry = registry();
        let rpc = grpc::RpcMetrics::new();
        let docker = docker::DockerMetrics::new();
        rpc.register(&mut registry);
        docker.register(&mut registry);
        rpc.observe(
            "RuntimeService/ListContainers",
            tonic::Code::Ok,
            Duration::from_millis(2),
        );
        rpc.observe(
            "RuntimeService/ContainerStatus",
            tonic::Code::NotFound,
            Duration::from_millis(1),
        );
        docker.observe(
            "inspect_container",
            Duration::from_millis(3),
            Some("not_found"),
        );
        let text = render(&registry);
        for wanted in [
            r#"dockershim_grpc_requests_total{method="RuntimeService/ListContainers",code="Ok"} 1"#,
            r#"dockershim_grpc_requests_total{method="RuntimeService/ContainerStatus",code="NotFound"} 1"#,
            r#"dockershim_grpc_request_duration_seconds_count{method="RuntimeService/ListContainers"} 1"#,
            r#"dockershim_docker_operation_duration_seconds_count{operation="inspect_container"} 1"#,
            r#"dockershim_docker_operation_errors_total{operation="inspect_container",error="not_found"} 1"#,
            "# EOF",
        ] {
            assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
        }
    }

    #[test]
    fn build_info_is_one_with_version_commit_and_compiler() {
        let text = render(&registry());
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
        let registry = registry();
        let get = |path: &str| {
            let req = Request::get(path).body(()).unwrap();
            answer(&req, &registry).status()
        };
        assert_eq!(get("/metrics"), StatusCode::OK);
        assert_eq!(get("/"), StatusCode::NOT_FOUND);
    }
}
