//! The CRI v1 wire types: messages, enums, service traits, clients and
//! servers generated from `proto/runtime/v1/api.proto` (package
//! `runtime.v1`), and the size limit of their messages on the wire.
//!
//! This is the leaf every layer may import: the domain modules build these
//! messages and the front end in [`crate::api`] serves them, so neither has
//! to import the other for the types.

#![allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]

tonic::include_proto!("runtime.v1");

/// Largest gRPC message accepted or sent, as the kubelet's own limit.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
