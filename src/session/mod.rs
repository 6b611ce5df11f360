//! A session, from its launch to its teardown, and finding sessions again later.
//!
//! The layout follows the lifecycle: `source` (where the task comes from: jump's own
//! task definition, `provision`, or a service's) → `launch` (the one RunTask) → `wait`
//! (until it runs, or why not) → `hostkey` (ssh mode) → connect (`crate::connect`) →
//! `guard` (teardown). `lifecycle` runs those steps for every command that starts a
//! task. `record` finds sessions again (locally by record, remotely by `tags`), and
//! `keys` is the local session directory. What ECS reports about a task, whoever started
//! it, is `crate::task`'s.

pub mod guard;
pub mod hostkey;
pub mod keys;
pub mod launch;
pub mod lifecycle;
pub mod pool;
pub mod provision;
pub mod record;
mod reuse;
pub mod source;
pub mod tags;
pub mod wait;

use std::fmt;
use std::str::FromStr;

use ssh_key::rand_core::{OsRng, RngCore};
use thiserror::Error;

/// Number of hex digits in a session id.
const ID_LEN: usize = 12;

/// A session id: 12 lowercase hex digits. It names the local session directory and the
/// `jump:session` tag, so parsing it strictly also keeps user input out of paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

/// A string that is not a session id.
#[derive(Debug, Error)]
#[error(
    "`{0}` is not a session id (12 lowercase hex digits, as printed by `jump up` and `jump ls`)"
)]
pub struct BadSessionId(pub String);

impl SessionId {
    /// A fresh random id from the operating system's generator.
    pub fn random() -> Self {
        let bits = OsRng.next_u64() & ((1 << (4 * ID_LEN)) - 1);
        SessionId(format!("{bits:0width$x}", width = ID_LEN))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SessionId {
    type Err = BadSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(SessionId(s.to_string()))
        } else {
            Err(BadSessionId(s.to_string()))
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::exit::exit_class!(Usage: BadSessionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back() {
        for _ in 0..100 {
            let id = SessionId::random();
            assert_eq!(id.as_str().len(), 12);
            assert_eq!(id.as_str().parse::<SessionId>().unwrap(), id);
        }
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "0123456789a",
            "0123456789abc",
            "0123456789AB",
            "../../etc/pa",
            "0123456789ag",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad}");
        }
        assert!("0123456789ab".parse::<SessionId>().is_ok());
    }
}
