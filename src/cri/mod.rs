//! The CRI v1 gRPC front end.
//!
//! `v1` is the code generated from `proto/runtime/v1/api.proto`; its message
//! types are re-exported here so the rest of the shim writes `cri::PodSandbox`.
//! [`runtime`] and [`image`] implement the two services as thin adapters:
//! they log, hand the request to the domain modules and map errors to gRPC
//! statuses through [`crate::error`].

pub mod image;
pub mod runtime;

/// Generated CRI v1 messages, services, clients and servers.
#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

pub use v1::*;

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

/// The answer to an RPC this shim does not serve.
pub(crate) fn unsupported<T>(
    rpc: &'static str,
    why: &str,
) -> Result<tonic::Response<T>, tonic::Status> {
    respond(
        rpc,
        Err(Error::Unimplemented(format!(
            "{rpc} is not supported by dockershim: {why}"
        ))),
    )
}
