//! The one question the shim asks containerd itself: in which directory a
//! snapshotter keeps its snapshots. With Docker's containerd image store the
//! image layers and the containers' writable layers live there, not under
//! Docker's data root, and Docker's API does not say where that is.
//!
//! containerd's introspection service lists its plugins with what each
//! exports; a snapshotter exports its directory as `root`. The messages are
//! declared here with only the fields read (protobuf skips the others), so
//! no containerd protos are vendored for one call.

use std::collections::HashMap;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Endpoint;

/// How long the whole exchange with containerd may take.
const TIMEOUT: Duration = Duration::from_secs(10);

const PLUGINS_METHOD: &str = "/containerd.services.introspection.v1.Introspection/Plugins";
const SNAPSHOTTER_TYPE: &str = "io.containerd.snapshotter.v1";

/// Why the snapshotter's directory could not be learned.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// containerd could not be reached or did not answer the call.
    #[error("containerd at {address}: {message}")]
    Call {
        /// The socket asked.
        address: String,
        /// What failed.
        message: String,
    },
    /// containerd answered but has no such snapshotter, or it exports no
    /// directory.
    #[error("containerd at {address} reports no directory for snapshotter {snapshotter}")]
    NoRoot {
        /// The socket asked.
        address: String,
        /// The snapshotter looked for.
        snapshotter: String,
    },
}

#[derive(Clone, PartialEq, prost::Message)]
struct PluginsRequest {
    #[prost(string, repeated, tag = "1")]
    filters: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PluginsResponse {
    #[prost(message, repeated, tag = "1")]
    plugins: Vec<Plugin>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Plugin {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(string, tag = "2")]
    id: String,
    #[prost(map = "string, string", tag = "5")]
    exports: HashMap<String, String>,
}

/// The directory snapshotter `snapshotter` of the containerd listening on
/// the Unix socket `address` keeps its snapshots in.
pub async fn snapshotter_root(address: &str, snapshotter: &str) -> Result<String, ContainerdError> {
    let call = |message: String| ContainerdError::Call {
        address: address.to_string(),
        message,
    };
    let plugins = tokio::time::timeout(TIMEOUT, list_snapshotters(address))
        .await
        .map_err(|_| call(format!("no answer within {TIMEOUT:?}")))?
        .map_err(call)?;
    root_of(&plugins, snapshotter).ok_or_else(|| ContainerdError::NoRoot {
        address: address.to_string(),
        snapshotter: snapshotter.to_string(),
    })
}

async fn list_snapshotters(address: &str) -> Result<Vec<Plugin>, String> {
    let socket = address
        .strip_prefix("unix://")
        .unwrap_or(address)
        .to_string();
    // The URI only names the HTTP/2 authority; the connector picks the socket.
    let channel = Endpoint::from_static("http://containerd")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| format!("connect: {e}"))?;
    let request = PluginsRequest {
        filters: vec![format!("type=={SNAPSHOTTER_TYPE}")],
    };
    let codec = tonic_prost::ProstCodec::<PluginsRequest, PluginsResponse>::default();
    let response = grpc
        .unary(
            tonic::Request::new(request),
            PathAndQuery::from_static(PLUGINS_METHOD),
            codec,
        )
        .await
        .map_err(|status| format!("list plugins: {}", status.message()))?;
    Ok(response.into_inner().plugins)
}

fn root_of(plugins: &[Plugin], snapshotter: &str) -> Option<String> {
    plugins
        .iter()
        .find(|p| p.r#type == SNAPSHOTTER_TYPE && p.id == snapshotter)
        .and_then(|p| p.exports.get("root"))
        .filter(|root| !root.is_empty())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn the_named_snapshotters_root_is_found_in_containerds_answer() {
        let plugin = |id: &str, root: Option<&str>| Plugin {
            r#type: SNAPSHOTTER_TYPE.into(),
            id: id.into(),
            exports: root
                .map(|r| HashMap::from([("root".to_string(), r.to_string())]))
                .unwrap_or_default(),
        };
        let answer = PluginsResponse {
            plugins: vec![
                plugin("native", Some("/c/io.containerd.snapshotter.v1.native")),
                plugin(
                    "overlayfs",
                    Some("/c/io.containerd.snapshotter.v1.overlayfs"),
                ),
                plugin("blockfile", None),
            ],
        };
        // Through the wire format, as containerd sends it.
        let decoded = PluginsResponse::decode(answer.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            root_of(&decoded.plugins, "overlayfs").as_deref(),
            Some("/c/io.containerd.snapshotter.v1.overlayfs")
        );
        assert_eq!(root_of(&decoded.plugins, "blockfile"), None);
        assert_eq!(root_of(&decoded.plugins, "zfs"), None);
    }
}
