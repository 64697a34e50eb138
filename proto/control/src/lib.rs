//! The mediatord control API, package `mediator.control.v1`: the messages and the tonic
//! client and server generated from `proto/control.proto`, shared by the daemon and
//! mediatorctl. The API travels over a Unix socket only; access is checked by the daemon from
//! the caller's credentials.

#![allow(clippy::all, missing_docs)]

/// Generated code for `mediator.control.v1`.
pub mod v1 {
    tonic::include_proto!("mediator.control.v1");
}

pub use v1::control_client::ControlClient;
pub use v1::control_server::{Control, ControlServer};
