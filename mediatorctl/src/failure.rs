//! How mediatorctl fails: every error has a kind, the kind gives the exit status (documented
//! in the man page), and under `--output json` (or `--json`) the error is printed as JSON on
//! stdout so that a script reading stdout sees it too. `health` has its own verdict codes (see
//! `crate::health`), which agree with these where they overlap (3: not running).

use serde_json::json;

/// What went wrong, as a script would branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else (exit 1): a database error, a cancelled confirmation, an I/O error.
    Failed,
    /// Bad arguments or a refused request (exit 2), as for clap's own usage errors.
    Invalid,
    /// No daemon answers on the socket (exit 3).
    NotRunning,
    /// The caller may not use the socket (exit 5).
    Denied,
    /// No such chat, member, message, block or session (exit 6).
    NotFound,
    /// The protocol's rules refuse the action, e.g. removing a chat's owner (exit 7).
    Refused,
}

impl Kind {
    /// The exit status.
    pub fn code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Invalid => 2,
            Kind::NotRunning => 3,
            Kind::Denied => 5,
            Kind::NotFound => 6,
            Kind::Refused => 7,
        }
    }

    /// The kind's name in JSON errors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Failed => "failed",
            Kind::Invalid => "invalid",
            Kind::NotRunning => "not_running",
            Kind::Denied => "permission_denied",
            Kind::NotFound => "not_found",
            Kind::Refused => "refused",
        }
    }

    /// The kind of a failed control call.
    pub fn of_status(code: tonic::Code) -> Kind {
        use tonic::Code as C;
        match code {
            C::InvalidArgument | C::OutOfRange => Kind::Invalid,
            C::Unavailable => Kind::NotRunning,
            C::PermissionDenied | C::Unauthenticated => Kind::Denied,
            C::NotFound => Kind::NotFound,
            C::FailedPrecondition | C::AlreadyExists => Kind::Refused,
            _ => Kind::Failed,
        }
    }
}

/// An error with its kind (carried inside `anyhow::Error`).
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error of `kind`.
pub fn fail(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
    })
}

/// The kind of any error: the first [`Failure`] in its chain, else [`Kind::Failed`].
pub fn kind_of(e: &anyhow::Error) -> Kind {
    e.chain()
        .find_map(|c| c.downcast_ref::<Failure>())
        .map_or(Kind::Failed, |f| f.kind)
}

/// Prints `e` (one line on stderr, or JSON on stdout with `json`) and returns the exit
/// status.
pub fn report(e: &anyhow::Error, json: bool) -> i32 {
    let kind = kind_of(e);
    let message = format!("{e:#}");
    if json {
        let body =
            json!({ "error": { "kind": kind.name(), "exit": kind.code(), "message": message } });
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        eprintln!("mediatorctl: {message}");
    }
    kind.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kinds_survive_context_and_map_to_codes() {
        let e = Err::<(), _>(fail(Kind::NotFound, "no chat 7"))
            .context("showing a chat")
            .unwrap_err();
        assert_eq!(kind_of(&e), Kind::NotFound);
        assert_eq!(kind_of(&anyhow::anyhow!("plain")), Kind::Failed);
        assert_eq!(Kind::of_status(tonic::Code::NotFound).code(), 6);
        assert_eq!(Kind::of_status(tonic::Code::FailedPrecondition).code(), 7);
        assert_eq!(Kind::of_status(tonic::Code::Internal).code(), 1);
        assert_eq!(Kind::of_status(tonic::Code::InvalidArgument).code(), 2);
        assert_eq!(Kind::of_status(tonic::Code::PermissionDenied).code(), 5);
    }
}
