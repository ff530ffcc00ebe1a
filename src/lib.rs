//! dockershim: a Kubernetes CRI v1 runtime that runs pods on Docker Engine.
//!
//! The kubelet (or `crictl`) speaks CRI over gRPC on a Unix socket; each call
//! becomes Docker Engine API requests. A pod is a *sandbox*: a pause
//! container holding the pod's network and IPC (and, when shared, PID)
//! namespaces, which the pod's containers join. Docker is the source of
//! truth: every object carries dockershim-compatible names and labels, so the
//! shim keeps no state of its own about pods and survives restarts.
//!
//! # Layout
//!
//! - [`server`]: start-up, the CRI socket, graceful shutdown.
//! - [`config`]: command-line flags (cri-dockerd's names).
//! - [`config_file`]: the configuration file and its drop-ins, layered under
//!   the environment and the flags.
//! - [`logging`]: the shim's own log (format, colour only on a terminal).
//! - [`build_info`]: the version, git commit and build date of the binary.
//! - [`api`]: the CRI v1 wire types (generated), imported by every layer.
//! - [`checkpoint`]: cri-dockerd's sandbox checkpoint files, for a rollback.
//! - [`cri`]: the gRPC services, thin adapters over the domain modules.
//! - [`info`]: `Version`, `Status`, `RuntimeConfig`.
//! - [`sandbox`]: pod sandboxes (pause containers).
//! - [`container`]: application containers and `ExecSync`.
//! - [`exec_output`]: `ExecSync` output under its per-call and node-wide
//!   memory bounds.
//! - [`image`]: images, registry auth, the built-in pause image.
//! - [`logs`]: the containers' CRI log files.
//! - [`network`]: pod networking: Docker's bridge or CNI plugins.
//! - [`metrics`]: Prometheus metrics of RPCs and Docker calls, `/metrics`.
//! - [`naming`]: Docker names and labels for pods and containers.
//! - [`docker`]: the narrow Docker interface and its bollard adapter.
//! - [`streaming`]: the exec/attach/port-forward server (SPDY/3.1, WebSocket).
//! - [`stats`]: container and pod statistics from cgroups and `/proc`.
//! - [`view`]: the live view of Docker's containers, kept by its events.
//! - [`shim`]: the state shared by handlers (`Shim`).
//! - [`host`]: facts about Docker learned at start (cgroup driver, API version).
//! - [`security`]: a security context in Docker's terms, for pods and containers.
//! - [`self_cgroup`]: `--runtime-cgroups`, the shim's own cgroup.
//! - [`events`]: `GetContainerEvents` from the live view's changes.
//! - [`error`]: the error type and its mapping to gRPC codes.
//!
//! Imports run one way: the front end (`server`, `cri`) over the
//! orchestration (`sandbox`, `container`, ...) over the shared state
//! (`shim`), the parts it holds (`image`, `stats`, `network`), the live
//! view, facts and translations, `docker` and `error`, and the wire types in
//! `api` at the bottom (docs/architecture.md draws it).

pub mod api;
pub mod build_info;
pub mod checkpoint;
pub mod cli_docs;
pub mod config;
pub mod config_file;
pub mod container;
pub mod containerd;
pub mod cri;
pub mod docker;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec_output;
pub mod host;
pub mod image;
pub mod info;
pub mod logging;
pub mod logs;
pub mod metrics;
pub mod naming;
pub mod network;

pub mod sandbox;
pub mod security;
pub mod self_cgroup;
pub mod server;
pub mod shim;
pub mod stats;
pub mod streaming;
#[cfg(test)]
pub(crate) mod testing;
pub mod view;
