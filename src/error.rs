//! The shim's error type and the one place where errors become gRPC statuses.

use tonic::{Code, Status};

use crate::docker::DockerError;

/// An error from a CRI handler, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The object the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// What the request would create exists already (a name held by a
    /// running sandbox or container).
    #[error("{0}")]
    AlreadyExists(String),
    /// The object exists but is not in a state that allows the call.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The call or option is not supported by this runtime.
    #[error("{0}")]
    Unimplemented(String),
    /// The operation did not finish within the time the caller allowed.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A Docker call failed; `context` says what the shim was doing.
    #[error("{context}: {source}")]
    Docker {
        /// What failed, naming the object (e.g. "start container 3f2a...").
        context: String,
        /// Docker's error.
        #[source]
        source: DockerError,
    },
    /// Anything else: a bug or an unexpected state.
    #[error("{0}")]
    Internal(String),
}

/// Result of a CRI handler.
pub type Result<T> = std::result::Result<T, Error>;

/// Adds what was being done to a Docker error.
pub trait DockerContext<T> {
    /// Wraps the error with `context`, built only on failure.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DockerContext<T> for std::result::Result<T, DockerError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Docker {
            context: context(),
            source,
        })
    }
}

impl Error {
    /// The gRPC code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Internal(_) => Code::Internal,
            Error::Docker { source, .. } => match source {
                DockerError::NotFound(_) => Code::NotFound,
                DockerError::Conflict(_) => Code::FailedPrecondition,
                DockerError::Unauthorized(_) => Code::Unauthenticated,
                DockerError::Timeout(_) | DockerError::NoProgress(_) => Code::DeadlineExceeded,
                DockerError::Transport(_) => Code::Unavailable,
                DockerError::Api { status, .. } if *status == 400 => Code::InvalidArgument,
                DockerError::Api { .. } | DockerError::Stream(_) => Code::Unknown,
            },
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_failures_keep_their_meaning_on_the_wire() {
        let err: Result<()> = Err(DockerError::NotFound("No such container: abc".into()))
            .context(|| "inspect abc".into());
        let status = Status::from(err.unwrap_err());
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.message(),
            "inspect abc: not found: No such container: abc"
        );

        let unsupported = Status::from(Error::Unimplemented("no".into()));
        assert_eq!(unsupported.code(), Code::Unimplemented);
        let timeout: Result<()> =
            Err(DockerError::Timeout(std::time::Duration::from_secs(1))).context(|| "stop".into());
        assert_eq!(
            Status::from(timeout.unwrap_err()).code(),
            Code::DeadlineExceeded
        );
    }
}
