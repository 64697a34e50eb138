//! The mediatord control API, package `mediator.control.v1`: the messages and the tonic
//! client and server generated from `proto/control.proto`, shared by the daemon and
//! mediatorctl. The API travels over a Unix socket only; access is checked by the daemon from
//! the caller's credentials.

#![allow(clippy::all, missing_docs)]

/// Generated code for `mediator.control.v1`.
pub mod v1 {
    tonic::include_proto!("mediator.control.v1");
}

/// Where the daemon and mediatorctl look by default, and the environment variable both read
/// for the control socket: written once here so that the two binaries cannot disagree.
pub mod defaults {
    use std::path::PathBuf;

    /// The data directory of the quick-start daemon (relative to its working directory).
    pub const DATA_DIR: &str = "mediator-data";
    /// The control socket's file name inside the data directory when no path is configured.
    pub const SOCKET_FILE: &str = "control.sock";
    /// The control socket of the packaged daemon (`/etc/mediatord/mediatord.toml`).
    pub const PACKAGED_SOCKET: &str = "/run/mediatord/control.sock";
    /// The environment variable naming the control socket, for mediatord and mediatorctl.
    pub const SOCKET_ENV: &str = "MEDIATORD_CONTROL_SOCKET";

    /// The quick-start daemon's control socket: [`SOCKET_FILE`] in [`DATA_DIR`].
    pub fn quick_start_socket() -> PathBuf {
        PathBuf::from(DATA_DIR).join(SOCKET_FILE)
    }
}

pub mod units;

pub use v1::control_client::ControlClient;
pub use v1::control_server::{Control, ControlServer};
