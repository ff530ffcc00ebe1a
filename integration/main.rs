//! Integration tests: the real shim binary, driven over its gRPC socket,
//! against the real Docker daemon. Each test asserts on what Docker actually
//! did (`docker inspect`) as well as on the CRI answers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

mod abuse;
mod abuse_logs;
mod cdi;
mod containers;
mod docker_restart;
mod errors;
mod grpc_clients;
mod images;
mod lifecycle;
mod log_drivers;
mod logs;
mod network;
mod runtime_info;
mod sandboxes;
mod security;
mod stats_pressure;
mod streaming;
mod view;
