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
//! | 255     | an interactive ECS Exec session ended with the escape `~.`       |
//! | 129/130/143 | ended by SIGHUP / SIGINT / SIGTERM (128 + signal number)     |
//!
//! Errors travel as `anyhow::Error`. Each error type that decides the code says which in
//! its own module ([`ExitClass`], usually through [`exit_class!`]); the first such error
//! in the chain decides, so context added on the way up never changes it. This module
//! knows none of them: the command layer lists the types it recognises
//! (`commands::EXIT_CLASSES`).

use std::error::Error;

use thiserror::Error;

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

    /// The class of the first error in `err`'s chain that one of `classes` recognises;
    /// an error nobody recognises is a bug.
    pub fn for_error(err: &anyhow::Error, classes: &[Recognise]) -> Exit {
        err.chain()
            .find_map(|cause| classes.iter().find_map(|recognise| recognise(cause)))
            .unwrap_or(Exit::Internal)
    }
}

/// An error that knows how `jump` exits when it ends a command.
pub trait ExitClass: Error + 'static {
    fn exit_class(&self) -> Exit;
}

/// Declares the exit class of error types, beside their definitions:
/// `exit_class!(Connect: BadHostKey);`.
macro_rules! exit_class {
    ($class:ident: $($error:ty),+) => {
        $(impl $crate::exit::ExitClass for $error {
            fn exit_class(&self) -> $crate::exit::Exit {
                $crate::exit::Exit::$class
            }
        })+
    };
}
pub(crate) use exit_class;

/// Recognises one error type in a chain: see [`class_of`].
pub type Recognise = fn(&(dyn Error + 'static)) -> Option<Exit>;

/// The exit class of `cause` if it is an `E`.
pub fn class_of<E: ExitClass>(cause: &(dyn Error + 'static)) -> Option<Exit> {
    cause.downcast_ref::<E>().map(ExitClass::exit_class)
}

/// A request that cannot be carried out as asked; the message says what to do instead.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

exit_class!(Usage: UsageError);

#[cfg(test)]
mod tests {
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
    fn the_first_recognised_error_in_the_chain_decides() {
        let classes: [Recognise; 1] = [class_of::<UsageError>];
        let err = anyhow::Error::from(UsageError("no".into())).context("while stopping");
        assert_eq!(Exit::for_error(&err, &classes), Exit::Usage);
        assert_eq!(
            Exit::for_error(&anyhow::anyhow!("boom"), &classes),
            Exit::Internal
        );
        assert_eq!(Exit::for_error(&err, &[]), Exit::Internal);
    }
}
