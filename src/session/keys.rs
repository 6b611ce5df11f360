//! Per-session key material on the local machine.
//!
//! Each session gets its own ed25519 keypair and its own private directory: the private
//! key never leaves this machine and is deleted with the directory at teardown. The
//! jumphost's host key is pinned, never trusted on first use: the task prints it to its
//! log stream (a path authenticated by IAM), and we write it into a per-session
//! `known_hosts` that `ssh` is told to use exclusively.
//!
//! Where session directories live, in order of preference:
//! `$JUMP_STATE_DIR/<session>` (for tests and unusual setups), then
//! `$XDG_RUNTIME_DIR/jump/<session>` (tmpfs, private to the user, cleared at logout), then
//! `~/.local/state/jump/sessions/<session>`.
//!
//! The session directory holds a private key, so jump refuses a state root or a session
//! directory that another user could have prepared: a symlink, one owned by someone
//! else, or one that group or others may write (they could swap the key or
//! `known_hosts` in it, or read what lands there).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};
use thiserror::Error;

use crate::session::SessionId;

/// The marker the jumphost prints before its host public key.
pub const HOST_KEY_MARKER: &str = "jump-host-key:";

const PRIVATE_KEY_FILE: &str = "id_ed25519";
const KNOWN_HOSTS_FILE: &str = "known_hosts";

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key handling failed: {0}")]
    Key(#[from] ssh_key::Error),
    #[error("cannot find a place for session state: set JUMP_STATE_DIR, XDG_RUNTIME_DIR or HOME")]
    NoStateDir,
}

/// A state directory another user could have prepared or may tamper with. Exit code 2.
#[derive(Debug, Error)]
#[error(
    "refusing the session state directory {}: {why}; it must be a real directory that you \
     own and no one else can write (chmod 700 it, or set JUMP_STATE_DIR to one)",
    path.display()
)]
pub struct UnsafeStateDir {
    pub path: PathBuf,
    pub why: String,
}

/// Refuses PATH unless it is a directory (not a symlink) owned by this user, without
/// group or other write permission.
fn check_private(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(io("cannot read", path))?;
    let unsafe_because = |why: String| UnsafeStateDir {
        path: path.to_path_buf(),
        why,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_because("it is a symbolic link".into()).into());
    }
    if !meta.is_dir() {
        return Err(unsafe_because("it is not a directory".into()).into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(unsafe_because(format!(
            "it is owned by uid {}, not by you (uid {me})",
            meta.uid()
        ))
        .into());
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_because(format!(
            "its mode {:o} lets group or others write it",
            meta.mode() & 0o7777
        ))
        .into());
    }
    Ok(())
}

/// The jumphost printed a `jump-host-key:` line that is not a usable ed25519 key.
#[derive(Debug, Error)]
#[error("the jumphost logged an invalid host key ({reason}): {line}")]
pub struct BadHostKey {
    pub line: String,
    pub reason: String,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding all session directories, chosen from the environment `env`.
pub fn state_root(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf, KeyError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("JUMP_STATE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        return Ok(dir.join("jump"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".local/state/jump/sessions"));
    }
    Err(KeyError::NoStateDir)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A private (0700) directory for one session: key, known_hosts, record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDir {
    path: PathBuf,
}

impl SessionDir {
    /// Creates the directory; fails if it already exists, so two sessions never share one.
    pub fn create(id: &SessionId) -> anyhow::Result<Self> {
        let root = state_root(process_env)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(io("cannot create", &root))?;
        check_private(&root)?;
        let path = root.join(id.as_str());
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io("cannot create", &path))?;
        Ok(SessionDir { path })
    }

    /// The directory of an existing session, if this machine has it.
    pub fn open(id: &SessionId) -> anyhow::Result<Option<Self>> {
        let root = state_root(process_env)?;
        let path = root.join(id.as_str());
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        check_private(&root)?;
        check_private(&path)?;
        Ok(Some(SessionDir { path }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn private_key_path(&self) -> PathBuf {
        self.path.join(PRIVATE_KEY_FILE)
    }

    pub fn known_hosts_path(&self) -> PathBuf {
        self.path.join(KNOWN_HOSTS_FILE)
    }

    /// Writes a new file readable by the owner only; never overwrites.
    pub fn write_private(&self, name: &str, contents: &[u8]) -> Result<PathBuf, KeyError> {
        let path = self.path.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("cannot create", &path))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(io("cannot write", &path))?;
        Ok(path)
    }

    /// Generates the session keypair, stores the private half, returns the public half as
    /// an `authorized_keys` line.
    pub fn generate_keypair(&self, id: &SessionId) -> Result<String, KeyError> {
        let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)?;
        key.set_comment(format!("jump-{id}"));
        let pem = key.to_openssh(LineEnding::LF)?;
        self.write_private(PRIVATE_KEY_FILE, pem.as_bytes())?;
        Ok(key.public_key().to_openssh()?)
    }

    /// Pins `key` as the only acceptable host key for `host`.
    pub fn write_known_hosts(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<PathBuf, KeyError> {
        let line = known_hosts_line(host, port, key)?;
        self.write_private(KNOWN_HOSTS_FILE, format!("{line}\n").as_bytes())
    }

    /// Deletes the directory and everything in it; a missing directory is not an error.
    pub fn remove(&self) -> Result<(), KeyError> {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("cannot remove", &self.path)(e))
            }
            _ => Ok(()),
        }
    }
}

/// The name a session's host key is pinned under (ssh's `HostKeyAlias`): the session's,
/// not the task's address, which a later task may get.
pub fn host_key_alias(id: &SessionId) -> String {
    format!("jump-{id}")
}

/// One `known_hosts` line; OpenSSH writes non-default ports as `[host]:port`.
pub fn known_hosts_line(host: &str, port: u16, key: &PublicKey) -> Result<String, KeyError> {
    let bare = PublicKey::new(key.key_data().clone(), "");
    let pattern = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    Ok(format!("{pattern} {}", bare.to_openssh()?))
}

/// Recognises the jumphost's `jump-host-key: ssh-ed25519 AAAA…` log line.
///
/// `None` for any other line; an error when the marker is there but the key is not a
/// valid ed25519 public key (treated as a connection failure, never skipped).
pub fn parse_host_key_line(line: &str) -> Option<Result<PublicKey, BadHostKey>> {
    let rest = line.trim().strip_prefix(HOST_KEY_MARKER)?.trim();
    let bad = |reason: String| BadHostKey {
        line: line.trim().to_string(),
        reason,
    };
    Some(match PublicKey::from_openssh(rest) {
        Ok(key) if key.algorithm() == Algorithm::Ed25519 => Ok(key),
        Ok(key) => Err(bad(format!(
            "expected ssh-ed25519, got {}",
            key.algorithm()
        ))),
        Err(e) => Err(bad(e.to_string())),
    })
}

crate::exit::exit_class!(Usage: UnsafeStateDir);

crate::exit::exit_class!(Connect: BadHostKey);

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFtWfdZ6AB1ooF6+Uyzyjql8YFSaEJNZf80P/Usmr4+N";

    #[test]
    fn parses_host_key_line() {
        let key = parse_host_key_line(&format!("jump-host-key: {KEY}\n"))
            .unwrap()
            .unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        assert_eq!(key.to_openssh().unwrap(), KEY);
    }

    #[test]
    fn ignores_other_lines() {
        assert!(parse_host_key_line("Server listening on 0.0.0.0 port 22.").is_none());
        assert!(parse_host_key_line(&format!("note: {KEY}")).is_none());
    }

    #[test]
    fn rejects_bad_keys_after_marker() {
        assert!(
            parse_host_key_line("jump-host-key: ssh-ed25519 AAAAnotbase64!")
                .unwrap()
                .is_err()
        );
        assert!(parse_host_key_line("jump-host-key:").unwrap().is_err());
        let rsa = "jump-host-key: ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDDHr/jh2Jy4yALcK4JyWbVkPRaWmhck3IgCoeOO3z1e2dBowLh64QAM+Qb72pxekALga2oi4GvT+TlWNhzPH4V4HFnYQH2jW5Q1kNtPs4RQSaMhgE7rCtXtHyhS7AoHzO5yzGQBpxR8mdhkTQ6xA7gbZoKEDcsj1WSzLN4rhlWRqfkAxIEsQ==";
        assert!(parse_host_key_line(rsa).unwrap().is_err());
    }

    #[test]
    fn known_hosts_lines() {
        let key = PublicKey::from_openssh(&format!("{KEY} some-comment")).unwrap();
        assert_eq!(
            known_hosts_line("10.0.1.5", 22, &key).unwrap(),
            format!("10.0.1.5 {KEY}")
        );
        assert_eq!(
            known_hosts_line("10.0.1.5", 2222, &key).unwrap(),
            format!("[10.0.1.5]:2222 {KEY}")
        );
    }

    #[test]
    fn state_root_preference() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let all = env(&[
            ("JUMP_STATE_DIR", "/s"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("HOME", "/h"),
        ]);
        assert_eq!(state_root(all).unwrap(), PathBuf::from("/s"));
        let xdg = env(&[
            ("JUMP_STATE_DIR", ""),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("HOME", "/h"),
        ]);
        assert_eq!(state_root(xdg).unwrap(), PathBuf::from("/run/user/1/jump"));
        let home = env(&[("HOME", "/h")]);
        assert_eq!(
            state_root(home).unwrap(),
            PathBuf::from("/h/.local/state/jump/sessions")
        );
        assert!(state_root(env(&[])).is_err());
    }
}
