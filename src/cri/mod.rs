//! The CRI v1 gRPC front end.
//!
//! [`runtime`] and [`image`] implement the two services as thin adapters:
//! they log, hand the request to the domain modules and map errors to gRPC
//! statuses through [`crate::error`].

pub mod image;
pub mod relist;
pub mod runtime;
pub mod wire_status;

// The wire types live in `crate::api`, below every layer. They stay
// reachable under their old paths (`dockershim::cri::PodSandbox`,
// `dockershim::cri::v1::...`) for the integration tests and other users of
// the library.
pub use crate::api as v1;
pub use crate::api::*;

use crate::error::Error;

/// Runs a handler's result through the one error mapping, logging failures
/// with the RPC's name.
pub(crate) fn respond<T>(
    rpc: &'static str,
    result: crate::error::Result<T>,
) -> Result<tonic::Response<T>, tonic::Status> {
    match result {
        Ok(reply) => Ok(tonic::Response::new(reply)),
        Err(err) => {
            match &err {
                Error::NotFound(_) | Error::Unimplemented(_) => {
                    tracing::debug!(rpc, error = %err, "request failed")
                }
                _ => tracing::warn!(rpc, error = %err, "request failed"),
            }
            Err(err.into())
        }
    }
}

/// Items per message of the list streams (`StreamContainers` ...): small
/// enough to stay far below gRPC's message limit on nodes with many pods.
pub(crate) const PAGE_SIZE: usize = 100;

/// A list served as a stream of pages of [`PAGE_SIZE`] items.
pub(crate) fn paged<T, R>(items: Vec<T>, page: fn(Vec<T>) -> R) -> tonic::codegen::BoxStream<R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let mut items = items.into_iter().peekable();
    let mut pages = Vec::new();
    while items.peek().is_some() {
        pages.push(Ok(page(items.by_ref().take(PAGE_SIZE).collect())));
    }
    Box::pin(tokio_stream::iter(pages))
}

/// The answer to an RPC this shim does not serve: `UNIMPLEMENTED` with
/// gRPC's own wording for a method a server lacks. Clients tell "not
/// implemented" from a failure by that text (the kubelet's node e2e suite
/// skips the CheckpointContainer specs on it, and fails them on any other
/// message), so the reason goes to the shim's log instead.
pub(crate) fn unsupported<T>(
    rpc: &'static str,
    why: &str,
) -> Result<tonic::Response<T>, tonic::Status> {
    tracing::info!(rpc, reason = why, "call not served by dockershim");
    respond(
        rpc,
        Err(Error::Unimplemented(format!(
            "method {rpc} not implemented"
        ))),
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Our proto must match upstream CRI v1 on the wire: the same file once
    /// comments (source info) and the file name are set aside. Upstream's
    /// file is kept in the repository (`proto/upstream/`); another one can
    /// be checked with `DOCKERSHIM_UPSTREAM_CRI_PROTO`.
    #[test]
    fn the_proto_is_wire_identical_to_upstream_cri_v1() {
        let upstream = std::env::var_os("DOCKERSHIM_UPSTREAM_CRI_PROTO")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto/upstream/cri-api-v1.proto")
            });
        assert!(
            upstream.exists(),
            "upstream CRI proto not found at {}: set DOCKERSHIM_UPSTREAM_CRI_PROTO",
            upstream.display()
        );
        let dir = upstream.parent().unwrap();
        let name = upstream.file_name().unwrap();
        let normalise = |mut set: prost_types::FileDescriptorSet| {
            let mut file = set.file.remove(0);
            file.name = None;
            file.source_code_info = None;
            file
        };
        let theirs = normalise(protox::compile([name], [dir]).unwrap());
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
        let ours = normalise(protox::compile(["runtime/v1/api.proto"], [root]).unwrap());
        assert_eq!(ours.service, theirs.service, "services differ");
        assert_eq!(ours.message_type, theirs.message_type, "messages differ");
        assert_eq!(ours.enum_type, theirs.enum_type, "enums differ");
        assert_eq!(ours, theirs);
    }
}
