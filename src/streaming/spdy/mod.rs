//! SPDY/3.1 as used by Kubernetes streaming (exec, attach, port-forward via
//! moby/spdystream): the wire format in [`frame`] (header compression in its
//! `compress` submodule) and a multiplexed connection, in server or client
//! role, in [`conn`] (the reading and writing task in its `driver`
//! submodule).
//!
//! Typical server use, after answering the HTTP upgrade with
//! `101 Switching Protocols`: `Connection::server(io, Config::default())`,
//! then `accept()` each stream the client opens (SYN_REPLY is already sent)
//! and route it by its `streamtype` header.

pub mod conn;
pub mod frame;
#[doc(hidden)]
pub mod fuzz;

pub use conn::{CloseReason, Config, Connection, Role, Stream, StreamIo, StreamSender};
pub use frame::{Frame, FrameLimits, GoAwayStatus, HeaderBlock, RstStatus, SpdyCodec, SpdyError};
#[doc(hidden)]
pub use fuzz::fuzz_decode;
