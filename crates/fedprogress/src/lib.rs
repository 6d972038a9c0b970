//! The terminal view of a fleet's job (`kubectl fedprogress`): the job as a tree of subjobs
//! with phases, durations and reasons, once or live until it ends.
//!
//! Two sources, one view: the controller's HTTP progress route (`http_source`: `--server`, its
//! event stream for `--watch`) or the FederationEnablement itself, read and watched through the
//! user's kubeconfig ([`kubernetes_source`]). Both become a [`model::JobView`], which [`render`]
//! turns into lines as of an injected `now`; `live` draws it with progress bars on a terminal,
//! or prints it again at each change when stdout is a pipe or a log.

mod cli;
mod http_source;
pub mod kubernetes_source;
mod live;
pub mod model;
pub mod render;
mod sse;

use std::path::PathBuf;
use std::process::ExitCode;

pub use cli::{EXIT_CODES_HELP, ProgressArgs, Token, run};

/// Exit code: the job succeeded.
pub const EXIT_SUCCEEDED: u8 = 0;
/// Exit code: the job failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the view could not be shown (bad input, not found, unreachable, refused, deleted).
pub const EXIT_ERROR: u8 = 2;
/// Exit code of a one-shot view of a job that has not ended yet.
pub const EXIT_IN_PROGRESS: u8 = 3;
/// Exit code after Ctrl-C, as a shell reports a SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Where the job stands when the view ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Pending, Running, or being deleted (one-shot only: a watch waits for the end).
    InProgress,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Succeeded => EXIT_SUCCEEDED,
            Outcome::Failed => EXIT_FAILED,
            Outcome::InProgress => EXIT_IN_PROGRESS,
        })
    }
}

/// Why the view could not be shown. None of them carries the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{0:?} is not a cluster group id: it must be 1-64 characters of lower-case letters, digits and '-'"
    )]
    InvalidFleet(String),
    #[error("--server: {0}")]
    InvalidServer(String),
    #[error("--token: {0}")]
    InvalidToken(&'static str),
    #[error("--certificate-authority {path}: {reason}")]
    CertificateAuthority { path: PathBuf, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}: {message} ({code})")]
    Refused {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer: {detail}")]
    BadAnswer { detail: String },
    #[error("lost the event stream from {url} and could not get it back: {reason}")]
    ConnectionLost { url: String, reason: String },
    #[error("no cluster to read from (set KUBECONFIG, or use --server): {0}")]
    NoCluster(String),
    #[error("listing FederationEnablements in {scope}: {source}")]
    List {
        scope: String,
        #[source]
        source: kube::Error,
    },
    #[error("no FederationEnablement has spec.clusterGroupID {fleet:?}; searched {searched}")]
    NotFound { fleet: String, searched: String },
    #[error("watching {enablement}: {reason}")]
    Watch { enablement: String, reason: String },
    #[error("{enablement} was deleted while it was being watched")]
    Deleted { enablement: String },
    #[error("interrupted")]
    Interrupted,
    #[error("writing the view: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_ERROR,
        })
    }
}
