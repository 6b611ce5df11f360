//! Exit codes, and the mapping from errors to them.
//!
//! | code    | meaning                                                          |
//! |---------|------------------------------------------------------------------|
//! | 0       | success                                                          |
//! | 1       | `doctor`: at least one check FAILed                              |
//! | *n*     | `up -- CMD` / `ssh SESSION -- CMD`: the remote command's status  |
//! | 2       | usage or configuration error (raised before any AWS call)        |
//! | 69      | AWS API error                                                    |
//! | 70      | internal error (a bug, or a panic)                               |
//! | 75      | the task failed to start or stopped unexpectedly                 |
//! | 76      | could not connect (host key missing or invalid, ssh failed)      |
//! | 129/130/143 | ended by SIGHUP / SIGINT / SIGTERM (128 + signal number)     |
//!
//! Errors travel as `anyhow::Error`; the first recognised type in the chain decides
//! the code, so context added on the way up never changes it.

use thiserror::Error;

use crate::aws::{ApiError, NoRegion};
use crate::connect::exec::ExecError;
use crate::connect::exec_access::AccessError;
use crate::connect::forward::ForwardError;
use crate::connect::plugin::PluginError;
use crate::connect::ssh::ConnectError;
use crate::keys::{BadHostKey, UnsafeStateDir};
use crate::plan::PlanError;
use crate::session::hostkey::HostKeyError;
use crate::session::wait::TaskFailed;
use crate::session::BadSessionId;
use crate::signals::Signal;

/// How `jump` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The remote command's exit status, passed through.
    Remote(i32),
    Usage,
    Aws,
    Internal,
    TaskFailed,
    Connect,
    /// `jump doctor` found at least one FAIL.
    ChecksFailed,
    Signalled(Signal),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::ChecksFailed => 1,
            Exit::Remote(code) => u8::try_from(code.clamp(0, 255)).unwrap_or(1),
            Exit::Usage => 2,
            Exit::Aws => 69,
            Exit::Internal => 70,
            Exit::TaskFailed => 75,
            Exit::Connect => 76,
            Exit::Signalled(signal) => u8::try_from(128 + signal.number()).unwrap_or(1),
        }
    }

    /// Classifies an error by the first recognised type in its chain.
    pub fn for_error(err: &anyhow::Error) -> Exit {
        err.chain()
            .find_map(|cause| {
                if cause.is::<PlanError>()
                    || cause.is::<UsageError>()
                    || cause.is::<NoRegion>()
                    || cause.is::<BadSessionId>()
                    || cause.is::<UnsafeStateDir>()
                {
                    Some(Exit::Usage)
                } else if cause.is::<ApiError>() {
                    Some(Exit::Aws)
                } else if cause.is::<TaskFailed>() {
                    Some(Exit::TaskFailed)
                } else if cause.is::<HostKeyError>()
                    || cause.is::<BadHostKey>()
                    || cause.is::<ConnectError>()
                    || cause.is::<ExecError>()
                    || cause.is::<AccessError>()
                    || cause.is::<ForwardError>()
                    || cause.is::<PluginError>()
                {
                    Some(Exit::Connect)
                } else {
                    None
                }
            })
            .unwrap_or(Exit::Internal)
    }
}

/// A request that cannot be carried out as asked; the message says what to do instead.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn codes() {
        assert_eq!(Exit::Success.code(), 0);
        assert_eq!(Exit::Remote(3).code(), 3);
        assert_eq!(Exit::Remote(300).code(), 255);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::Aws.code(), 69);
        assert_eq!(Exit::Internal.code(), 70);
        assert_eq!(Exit::TaskFailed.code(), 75);
        assert_eq!(Exit::Connect.code(), 76);
        assert_eq!(Exit::Signalled(Signal::Interrupt).code(), 130);
        assert_eq!(Exit::Signalled(Signal::Terminate).code(), 143);
        assert_eq!(Exit::Signalled(Signal::Hangup).code(), 129);
    }

    #[test]
    fn classification_sees_through_context() {
        let err = anyhow::Error::from(UsageError("no".into())).context("while stopping");
        assert_eq!(Exit::for_error(&err), Exit::Usage);
        let err: anyhow::Error = Err::<(), _>(TaskFailed::Rejected { reason: "x".into() })
            .context("starting")
            .unwrap_err();
        assert_eq!(Exit::for_error(&err), Exit::TaskFailed);
        assert_eq!(Exit::for_error(&anyhow::anyhow!("boom")), Exit::Internal);
    }
}
