//! `jump forward TARGET… -- CMD`: a local client run once the forwards listen, with their
//! addresses filled in, whose exit status ends the forward and becomes jump's. A database
//! console through a fresh jumphost is then one command (`jump forward db -- psql -h {host}
//! -p {port} -U app`), torn down when the console exits.
//!
//! `{host}` and `{port}` in the words stand for the first target's local address; every
//! target's is also in the command's environment as `JUMP_FORWARD_<NAME>_HOST` and
//! `_PORT`, NAME being the target's `[forwards]` name (upper-cased, other characters `_`)
//! or its position on the command line (1, 2, …). The command owns the terminal's signals
//! while it runs (see [`ChildPid::owning_signals`]).

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;

use thiserror::Error;

use crate::signals::ChildPid;

/// The local command and what it needs to know.
#[derive(Debug, Clone)]
pub struct LocalCommand {
    pub words: Vec<String>,
    /// Each target's NAME in the environment, in target order.
    pub names: Vec<String>,
    pub child: ChildPid,
}

/// The command could not be run. Exit code 2: it names a program that is not there.
#[derive(Debug, Error)]
#[error("cannot run `{program}`: {why}")]
pub struct CommandError {
    pub program: String,
    pub why: String,
}

crate::exit::exit_class!(Usage: CommandError);

impl LocalCommand {
    /// Refuses a program that cannot be found, before anything is started for it.
    pub fn check(&self) -> Result<(), CommandError> {
        let program = self.words.first().map(String::as_str).unwrap_or_default();
        if on_path(program) {
            return Ok(());
        }
        Err(CommandError {
            program: program.to_string(),
            why: "not found (not an executable file, nor on PATH)".into(),
        })
    }

    /// Runs the command against the forwards listening at `local` (in target order) and
    /// returns its exit status (128 + the signal's number if a signal ended it).
    pub async fn run(&self, local: &[SocketAddr]) -> anyhow::Result<i32> {
        let words = fill(&self.words, local[0]);
        let mut command = tokio::process::Command::new(&words[0]);
        command.args(&words[1..]).kill_on_drop(true);
        for (name, address) in self.names.iter().zip(local) {
            command
                .env(
                    format!("JUMP_FORWARD_{name}_HOST"),
                    address.ip().to_string(),
                )
                .env(
                    format!("JUMP_FORWARD_{name}_PORT"),
                    address.port().to_string(),
                );
        }
        let foreground = Foreground::new(&self.child);
        let mut child = command.spawn().map_err(|e| CommandError {
            program: words[0].clone(),
            why: e.to_string(),
        })?;
        self.child.owning_signals(child.id());
        let status = child.wait().await;
        drop(foreground);
        let status = status?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

/// The command's hold on the terminal's signals, from before it is spawned until it has
/// exited or the forward gave up on it (the future dropped), whichever comes first.
struct Foreground<'a>(&'a ChildPid);

impl<'a> Foreground<'a> {
    fn new(child: &'a ChildPid) -> Self {
        child.owning_signals(None);
        Foreground(child)
    }
}

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

/// The environment name of a target: its `[forwards]` name, or its position.
pub fn env_name(named: Option<&str>, position: usize) -> String {
    match named {
        Some(name) => name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect(),
        None => (position + 1).to_string(),
    }
}

/// `words` with `{host}` and `{port}` replaced by `local`'s.
fn fill(words: &[String], local: SocketAddr) -> Vec<String> {
    let (host, port) = (local.ip().to_string(), local.port().to_string());
    words
        .iter()
        .map(|word| word.replace("{host}", &host).replace("{port}", &port))
        .collect()
}

/// Whether `program` names an executable file, directly (with a `/`) or on PATH.
fn on_path(program: &str) -> bool {
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return false;
    }
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| executable(&dir.join(program)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_the_first_target_s_address() {
        let words: Vec<String> = [
            "psql",
            "-h",
            "{host}",
            "-p",
            "{port}",
            "postgres://{host}:{port}/app",
        ]
        .iter()
        .map(|w| w.to_string())
        .collect();
        let filled = fill(&words, "127.0.0.1:15432".parse().unwrap());
        assert_eq!(
            filled,
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                "15432",
                "postgres://127.0.0.1:15432/app"
            ]
        );
    }

    #[test]
    fn environment_names_come_from_the_forwards_table_or_the_position() {
        assert_eq!(env_name(Some("orders-db"), 0), "ORDERS_DB");
        assert_eq!(env_name(Some("repl"), 3), "REPL");
        assert_eq!(env_name(None, 1), "2");
    }

    #[test]
    fn a_program_is_found_on_path_or_by_its_path() {
        assert!(on_path("sh"));
        assert!(on_path("/bin/sh"));
        assert!(!on_path("no-such-program-jump-test"));
        let dir = tempfile::TempDir::new().unwrap();
        let plain = dir.path().join("notes.txt");
        std::fs::write(&plain, "not a program").unwrap();
        assert!(!on_path(plain.to_str().unwrap()));
        assert!(!on_path(""));
    }
}
