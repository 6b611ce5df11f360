//! `jump cp` over ECS Exec: files to and from a task with nothing but `sh` in it, no S3
//! bucket and no plugin.
//!
//! ECS Exec offers no file transfer, only a terminal session running one command, so
//! this is written by hand: a small `sh` script runs in the task (`script`), the bytes
//! travel as text a terminal leaves alone (`codec`), and the script and jump speak in
//! the exec wrapper's nonce-marked sequences (`wrapper::MarkScanner`). Every file is
//! checked end to end with POSIX `cksum` where the container has it; jump says how many
//! it could not check. (An ssh-mode session started on this machine is copied by scp
//! instead: `commands::cp` decides.)
//!
//! What the task sends is not trusted: each name must lie inside the copy's root, and
//! each file goes to a temporary file beside its destination, renamed into place only
//! once it is whole and checked, so an interrupted copy leaves nothing half-written.

mod codec;
mod script;

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::aws::Clients;
use crate::connect::exec;
use crate::connect::target::{ExecError, ExecTarget};
use crate::connect::wrapper::{nonce, MarkScanner, Piece};
use crate::exit::{Exit, ExitClass};
use crate::ssm::channel::{closed_for_inactivity, Channel, Event, Sender};
use crate::ssm::frame::PayloadType;

use codec::{announced, decoded_name, received_name, same_cksum, sendable, Cksum, Coding, Decoder};

/// One side of a copy, as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    Local(PathBuf),
    /// `SESSION:PATH`, or `:PATH` for the task `--task`/`--service` name (or a chosen
    /// session); an empty path is the remote working directory.
    Remote {
        session: Option<String>,
        path: String,
    },
}

impl Side {
    /// As scp reads it: remote when there is a colon before any slash.
    pub fn parse(arg: &str) -> Side {
        match arg.split_once(':') {
            Some((session, path)) if !session.contains('/') => Side::Remote {
                session: (!session.is_empty()).then(|| session.to_string()),
                path: if path.is_empty() {
                    ".".into()
                } else {
                    path.into()
                },
            },
            _ => Side::Local(PathBuf::from(arg)),
        }
    }
}

/// Why a copy failed; each knows its exit status.
#[derive(Debug, Error)]
pub enum CopyError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}: no such file or directory in the task")]
    RemoteMissing(String),
    #[error("{0} is a directory in the task: add -r to copy it and what it holds")]
    RemoteDirectory(String),
    #[error("{0} in the task is neither a regular file nor a directory")]
    RemoteSpecial(String),
    #[error("{0} in the task cannot be read")]
    RemoteUnreadable(String),
    #[error(
        "{0} exists in the task and is not a directory, so a directory cannot be copied onto it"
    )]
    RemoteNotDirectory(String),
    #[error(
        "cannot write {0} in the task (no such directory, no permission, a read-only or full \
         file system)"
    )]
    RemoteWrite(String),
    #[error("cannot write {path}: {error}")]
    LocalWrite {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0} is not a directory, so a directory cannot be copied onto it")]
    LocalNotDirectory(PathBuf),
    #[error(
        "the container has neither `base64` nor `od`, and copying from it needs one of them \
         (coreutils and busybox have both)"
    )]
    NoEncoder,
    #[error("{path} arrived altered: the task's cksum says {theirs}, jump's says {ours}")]
    Altered {
        path: String,
        theirs: String,
        ours: String,
    },
    #[error("the task sent {0:?} for a name outside the copy: nothing was written there")]
    UnsafeName(String),
    #[error("the task sent something other than file content for {0}")]
    Garbled(String),
    #[error("the copy ended before it was complete{0}")]
    Ended(String),
}

impl ExitClass for CopyError {
    fn exit_class(&self) -> Exit {
        match self {
            CopyError::Usage(_) => Exit::Usage,
            CopyError::NoEncoder
            | CopyError::Altered { .. }
            | CopyError::UnsafeName(_)
            | CopyError::Garbled(_)
            | CopyError::Ended(_) => Exit::Connect,
            // As cp and scp: the files were not copied.
            _ => Exit::Remote(1),
        }
    }
}

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub files: u64,
    pub directories: u64,
    pub bytes: u64,
    /// Files the task had no `cksum` to check.
    pub unverified: u64,
    /// What the task could not send (devices, links to directories, unreadable files).
    pub skipped: Vec<String>,
}

/// One thing to send, named relative to the copy's root (empty: the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Directory {
        name: Vec<u8>,
    },
    File {
        name: Vec<u8>,
        path: PathBuf,
        size: u64,
        executable: bool,
    },
}

/// What `source` sends: the file, or (`recursive`) the directory and everything below
/// it. Links are followed to files and not into directories. Fails before any AWS
/// call on what cannot be sent.
pub fn local_entries(source: &Path, recursive: bool) -> Result<Vec<Entry>, CopyError> {
    let usage = |why: String| CopyError::Usage(why);
    let meta = std::fs::metadata(source)
        .map_err(|e| usage(format!("cannot read {}: {e}", source.display())))?;
    if meta.is_dir() && !recursive {
        return Err(usage(format!(
            "{} is a directory: add -r to copy it and what it holds",
            source.display()
        )));
    }
    let mut entries = Vec::new();
    add_entry(source, Vec::new(), &meta, &mut entries)?;
    Ok(entries)
}

fn add_entry(
    path: &Path,
    name: Vec<u8>,
    meta: &std::fs::Metadata,
    entries: &mut Vec<Entry>,
) -> Result<(), CopyError> {
    let usage = |why: String| CopyError::Usage(why);
    if !sendable(&name) {
        return Err(usage(format!(
            "{} has a name ECS Exec's terminal cannot carry (control characters, or too long)",
            path.display()
        )));
    }
    if meta.is_file() {
        entries.push(Entry::File {
            name,
            path: path.to_path_buf(),
            size: meta.len(),
            executable: meta.permissions().mode() & 0o111 != 0,
        });
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(usage(format!(
            "{} is neither a regular file nor a directory",
            path.display()
        )));
    }
    entries.push(Entry::Directory { name: name.clone() });
    let listing = std::fs::read_dir(path)
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let mut children: Vec<_> = listing
        .collect::<Result<_, _>>()
        .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    children.sort_by_key(std::fs::DirEntry::file_name);
    for child in children {
        let child_path = child.path();
        let linked_dir = child.file_type().is_ok_and(|t| t.is_symlink()) && child_path.is_dir();
        if linked_dir {
            continue;
        }
        let meta = std::fs::metadata(&child_path)
            .map_err(|e| usage(format!("cannot read {}: {e}", child_path.display())))?;
        let mut child_name = name.clone();
        child_name.push(b'/');
        child_name.extend_from_slice(child.file_name().as_bytes());
        add_entry(&child_path, child_name, &meta, entries)?;
    }
    Ok(())
}

/// A path's own name, as the far side should call it: its last part, or none for a
/// path such as `.` or `/` that names a directory by where it is.
pub fn own_name(path: &[u8]) -> Option<&[u8]> {
    let last = path.split(|&b| b == b'/').rev().find(|p| !p.is_empty())?;
    (last != b"." && last != b"..").then_some(last)
}

/// Where a download lands: inside `dest` when it is a directory, else `dest` itself.
pub fn local_root(dest: &Path, source: &str) -> Result<PathBuf, CopyError> {
    if dest.is_dir() {
        return Ok(match own_name(source.as_bytes()) {
            Some(name) => dest.join(OsStr::from_bytes(name)),
            None => dest.to_path_buf(),
        });
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(CopyError::Usage(format!(
            "{} is not a directory here, so nothing can be copied into it",
            parent.display()
        )));
    }
    Ok(dest.to_path_buf())
}

/// A task's output as it comes: the script's marks, and everything else.
struct Remote {
    channel: Channel,
    scanner: MarkScanner,
    pieces: std::collections::VecDeque<Piece>,
    /// The last of what came outside the marks and the content, to explain a failure.
    stray: Vec<u8>,
}

const STRAY_KEPT: usize = 2048;

impl Remote {
    async fn open(
        clients: &Clients,
        target: &ExecTarget,
        command: &str,
        nonce: &str,
    ) -> anyhow::Result<Self> {
        Ok(Remote {
            channel: exec::open(clients, target, command).await?,
            scanner: MarkScanner::new(nonce),
            pieces: Default::default(),
            stray: Vec::new(),
        })
    }

    /// The next piece of output; the end of the session is an error, since every
    /// script ends by saying `done`.
    async fn next(&mut self) -> anyhow::Result<Piece> {
        loop {
            if let Some(piece) = self.pieces.pop_front() {
                return Ok(piece);
            }
            match self.channel.recv().await {
                Some(Event::Output(bytes)) => {
                    let mut pieces = Vec::new();
                    self.scanner.feed(&bytes, &mut pieces);
                    self.pieces.extend(pieces);
                }
                Some(Event::StdErr(bytes)) => self.keep(&bytes),
                Some(Event::Failed(err)) => return Err(ExecError::Channel(err.to_string()).into()),
                Some(Event::Closed(Some(reason))) if closed_for_inactivity(&reason) => {
                    return Err(ExecError::Idle(reason.trim().to_string()).into())
                }
                Some(Event::Closed(_)) | None => {
                    let rest = self.scanner.finish();
                    self.keep(&rest);
                    return Err(self.ended().into());
                }
                Some(_) => {}
            }
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.stray.extend_from_slice(bytes);
        let excess = self.stray.len().saturating_sub(STRAY_KEPT);
        self.stray.drain(..excess);
    }

    fn ended(&self) -> CopyError {
        let said = String::from_utf8_lossy(&self.stray);
        let said = said.trim();
        CopyError::Ended(if said.is_empty() {
            String::new()
        } else {
            format!("; the task said: {said}")
        })
    }

    async fn send(sender: &Sender, bytes: &[u8]) -> anyhow::Result<()> {
        sender
            .send(PayloadType::Output, bytes)
            .await
            .map_err(|e| anyhow::Error::from(ExecError::Channel(e.to_string())))
    }
}

/// How a task names a path in messages: `TASK-SIDE PATH` as the user wrote it.
fn shown(base: &str, name: &[u8]) -> String {
    format!("{base}{}", String::from_utf8_lossy(name))
}

/// Copies `entries` (from [`local_entries`] of a path named `name`) into `dest` in the
/// task; `bar`, if any, counts the bytes sent.
pub async fn upload(
    clients: &Clients,
    target: &ExecTarget,
    entries: Vec<Entry>,
    name: &[u8],
    dest: &str,
    bar: Option<ProgressBar>,
) -> anyhow::Result<Copied> {
    let name = String::from_utf8_lossy(name);
    if !sendable(dest.as_bytes()) || !sendable(name.as_bytes()) {
        return Err(CopyError::Usage(format!(
            "{dest:?} has characters ECS Exec's terminal cannot carry"
        ))
        .into());
    }
    let directory = matches!(entries.first(), Some(Entry::Directory { .. }));
    let nonce = nonce();
    let command = script::receive(&nonce, dest, &name, directory);
    let mut remote = Remote::open(clients, target, &command, &nonce).await?;
    let (ready_tx, ready_rx) = oneshot::channel();
    let (sums_tx, mut sums_rx) = mpsc::unbounded_channel();
    let names: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| match e {
            Entry::Directory { name } | Entry::File { name, .. } => name.clone(),
        })
        .collect();
    let sender = remote.channel.sender();
    let mut feeding = tokio::spawn(feed(sender, entries, ready_rx, sums_tx, bar));
    let where_ = |n: &[u8]| shown(dest, n);
    let mut copied = Copied::default();
    let mut ready = Some(ready_tx);
    let mut step = 0;
    let mut fed = false;
    let result: anyhow::Result<()> = async {
        loop {
            let piece = tokio::select! {
                piece = remote.next() => piece?,
                result = &mut feeding, if !fed => {
                    fed = true;
                    result??;
                    continue;
                }
            };
            let field = match piece {
                Piece::Bytes(bytes) => {
                    remote.keep(&bytes);
                    continue;
                }
                Piece::Mark(field) => field,
            };
            let (key, value) = field.split_once('=').unwrap_or((&field, ""));
            let current = names.get(step).map(|n| where_(n)).unwrap_or_default();
            match key {
                "ready" => {
                    let coding = Coding::named(value).ok_or_else(|| remote.ended())?;
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(coding);
                    }
                }
                "notdir" => return Err(CopyError::RemoteNotDirectory(dest.to_string()).into()),
                "made" => {
                    copied.directories += 1;
                    step += 1;
                }
                "wrote" => {
                    let Some((size, ours)) = sums_rx.recv().await else {
                        return Err(remote.ended().into());
                    };
                    if value.trim().is_empty() {
                        copied.unverified += 1;
                    } else if !same_cksum(value, &ours) {
                        return Err(CopyError::Altered {
                            path: current,
                            theirs: value.trim().to_string(),
                            ours,
                        }
                        .into());
                    }
                    copied.files += 1;
                    copied.bytes += size;
                    step += 1;
                }
                "fail" => return Err(CopyError::RemoteWrite(current).into()),
                "done" => return Ok(()),
                _ => {}
            }
        }
    }
    .await;
    feeding.abort();
    result?;
    remote.channel.close().await;
    Ok(copied)
}

/// Sends each entry once the script is ready, and each file's size and cksum to the
/// reader of the script's answers.
async fn feed(
    sender: Sender,
    entries: Vec<Entry>,
    ready: oneshot::Receiver<Coding>,
    sums: mpsc::UnboundedSender<(u64, String)>,
    bar: Option<ProgressBar>,
) -> anyhow::Result<()> {
    let Ok(coding) = ready.await else {
        return Ok(());
    };
    for entry in entries {
        match entry {
            Entry::Directory { name } => {
                Remote::send(&sender, &[b"d ", &name[..], b"\n"].concat()).await?;
            }
            Entry::File {
                name,
                path,
                executable,
                ..
            } => {
                let op = if executable { b"x " } else { b"f " };
                Remote::send(&sender, &[&op[..], &name[..], b"\n"].concat()).await?;
                let sum = send_content(&sender, &path, coding, bar.as_ref()).await?;
                let _ = sums.send(sum);
            }
        }
    }
    Remote::send(&sender, b"q\n").await
}

async fn send_content(
    sender: &Sender,
    path: &Path,
    coding: Coding,
    bar: Option<&ProgressBar>,
) -> anyhow::Result<(u64, String)> {
    let unreadable =
        |e: std::io::Error| CopyError::Usage(format!("cannot read {}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let mut sum = Cksum::default();
    let mut block = vec![0u8; coding.block()];
    let mut size = 0u64;
    loop {
        let mut filled = 0;
        while filled < block.len() {
            match file.read(&mut block[filled..]).await.map_err(unreadable)? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        let bytes = &block[..filled];
        sum.update(bytes);
        Remote::send(sender, &coding.encode(bytes)).await?;
        size += filled as u64;
        if let Some(bar) = bar {
            bar.inc(filled as u64);
        }
        if filled < block.len() {
            break;
        }
    }
    Remote::send(sender, coding.end_of_file()).await?;
    Ok((size, sum.finish()))
}

/// A file arriving from the task: decoded into a temporary file beside its place.
struct Incoming {
    place: PathBuf,
    shown: String,
    file: tempfile::NamedTempFile,
    decoder: Decoder,
    sum: Cksum,
    decoded: Vec<u8>,
}

impl Incoming {
    fn take(&mut self, text: &[u8], bar: Option<&ProgressBar>) -> Result<u64, CopyError> {
        self.decoded.clear();
        self.decoder
            .feed(text, &mut self.decoded)
            .map_err(|_| CopyError::Garbled(self.shown.clone()))?;
        self.sum.update(&self.decoded);
        self.file
            .write_all(&self.decoded)
            .map_err(|error| CopyError::LocalWrite {
                path: self.place.clone(),
                error,
            })?;
        if let Some(bar) = bar {
            bar.inc(self.decoded.len() as u64);
        }
        Ok(self.decoded.len() as u64)
    }
}

/// Session Manager ends a session after its idle timeout without input, however much
/// output flows (ECS Exec: 20 minutes, not adjustable), so a download types while it
/// reads: one erase character per this much output. On an empty line the terminal
/// discards it without echo, and nothing in the task reads it.
const KEEPALIVE_EVERY: usize = 1 << 20;
const KEEPALIVE: &[u8] = b"\x7f";

/// Where a name relative to the copy's root lands.
fn placed(root: &Path, relative: PathBuf) -> PathBuf {
    if relative.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(relative)
    }
}

/// Copies `source` from the task to `root` here (see [`local_root`]); `bar`, if any,
/// counts the bytes received against the sizes the task announces.
pub async fn download(
    clients: &Clients,
    target: &ExecTarget,
    source: &str,
    root: &Path,
    recursive: bool,
    bar: Option<ProgressBar>,
) -> anyhow::Result<Copied> {
    if !sendable(source.as_bytes()) {
        return Err(CopyError::Usage(format!(
            "{source:?} has characters ECS Exec's terminal cannot carry"
        ))
        .into());
    }
    let nonce = nonce();
    let mut remote = Remote::open(
        clients,
        target,
        &script::send(&nonce, source, recursive),
        &nonce,
    )
    .await?;
    let mut copied = Copied::default();
    let mut coding = Coding::Base64;
    let mut incoming: Option<Incoming> = None;
    let sender = remote.channel.sender();
    let mut unanswered = 0;
    let name_of = |value: &str, coding| {
        let name =
            decoded_name(value, coding).ok_or_else(|| CopyError::Garbled(source.to_string()))?;
        let relative = received_name(&name).map_err(|e| CopyError::UnsafeName(e.0))?;
        Ok::<_, CopyError>((shown(source, &name), placed(root, relative)))
    };
    loop {
        let field = match remote.next().await? {
            Piece::Bytes(bytes) => {
                match incoming.as_mut() {
                    Some(file) => copied.bytes += file.take(&bytes, bar.as_ref())?,
                    None => remote.keep(&bytes),
                }
                unanswered += bytes.len();
                if unanswered >= KEEPALIVE_EVERY {
                    unanswered = 0;
                    Remote::send(&sender, KEEPALIVE).await?;
                }
                continue;
            }
            Piece::Mark(field) => field,
        };
        let (key, value) = field.split_once('=').unwrap_or((&field, ""));
        match key {
            "ready" => coding = Coding::named(value).ok_or_else(|| remote.ended())?,
            "need" => return Err(CopyError::NoEncoder.into()),
            "missing" => return Err(CopyError::RemoteMissing(source.to_string()).into()),
            "isdir" => return Err(CopyError::RemoteDirectory(source.to_string()).into()),
            "special" => return Err(CopyError::RemoteSpecial(source.to_string()).into()),
            "dir" => {
                let (_, place) = name_of(value, coding)?;
                if place.exists() && !place.is_dir() {
                    return Err(CopyError::LocalNotDirectory(place).into());
                }
                std::fs::create_dir_all(&place).map_err(|error| CopyError::LocalWrite {
                    path: place.clone(),
                    error,
                })?;
                copied.directories += 1;
            }
            "file" => {
                let announced = announced(value, coding)
                    .ok_or_else(|| CopyError::Garbled(source.to_string()))?;
                let relative =
                    received_name(&announced.name).map_err(|e| CopyError::UnsafeName(e.0))?;
                let place = placed(root, relative);
                if place.is_dir() {
                    return Err(CopyError::LocalWrite {
                        path: place,
                        error: std::io::Error::other("a directory is in the way"),
                    }
                    .into());
                }
                if let (Some(bar), Some(size)) = (&bar, announced.size) {
                    bar.inc_length(size);
                }
                let mode = if announced.executable { 0o777 } else { 0o666 };
                let parent = place
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let file = tempfile::Builder::new()
                    .prefix(".jump-cp-")
                    .permissions(std::fs::Permissions::from_mode(mode))
                    .tempfile_in(parent)
                    .map_err(|error| CopyError::LocalWrite {
                        path: place.clone(),
                        error,
                    })?;
                incoming = Some(Incoming {
                    shown: shown(source, &announced.name),
                    place,
                    file,
                    decoder: Decoder::new(coding),
                    sum: Cksum::default(),
                    decoded: Vec::new(),
                });
            }
            "end" => {
                let Some(file) = incoming.take() else {
                    return Err(CopyError::Garbled(source.to_string()).into());
                };
                if !file.decoder.finished() {
                    return Err(CopyError::Garbled(file.shown).into());
                }
                let ours = file.sum.finish();
                if value.trim().is_empty() {
                    copied.unverified += 1;
                } else if !same_cksum(value, &ours) {
                    return Err(CopyError::Altered {
                        path: file.shown,
                        theirs: value.trim().to_string(),
                        ours,
                    }
                    .into());
                }
                file.file
                    .persist(&file.place)
                    .map_err(|e| CopyError::LocalWrite {
                        path: file.place.clone(),
                        error: e.error,
                    })?;
                copied.files += 1;
            }
            "skip" => {
                let (shown, place) = name_of(value, coding)?;
                if place == root {
                    return Err(CopyError::RemoteUnreadable(source.to_string()).into());
                }
                copied.skipped.push(shown);
            }
            "done" => break,
            _ => {}
        }
    }
    remote.channel.close().await;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_read_as_scp_reads_them() {
        let remote = |session: Option<&str>, path: &str| Side::Remote {
            session: session.map(str::to_string),
            path: path.to_string(),
        };
        assert_eq!(
            Side::parse("3f9c0a1b2c4d:/tmp/x"),
            remote(Some("3f9c0a1b2c4d"), "/tmp/x")
        );
        assert_eq!(Side::parse(":/tmp/x"), remote(None, "/tmp/x"));
        assert_eq!(
            Side::parse("3f9c0a1b2c4d:"),
            remote(Some("3f9c0a1b2c4d"), ".")
        );
        assert_eq!(Side::parse("./a:b"), Side::Local("./a:b".into()));
        assert_eq!(Side::parse("dump.sql"), Side::Local("dump.sql".into()));
        assert_eq!(Side::parse("/abs/a:b"), Side::Local("/abs/a:b".into()));
    }

    #[test]
    fn a_path_s_own_name_is_its_last_part() {
        assert_eq!(own_name(b"/var/log/app/"), Some(&b"app"[..]));
        assert_eq!(own_name(b"f.txt"), Some(&b"f.txt"[..]));
        assert_eq!(own_name(b"."), None);
        assert_eq!(own_name(b"/"), None);
        assert_eq!(own_name(b"a/.."), None);
    }

    #[test]
    fn a_local_tree_is_listed_parents_first_and_links_to_directories_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::write(root.join("a.txt"), "hi").unwrap();
        std::fs::write(root.join("b/c/run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(
            root.join("b/c/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink(root.join("b"), root.join("loop")).unwrap();
        let names: Vec<(String, bool)> = local_entries(&root, true)
            .unwrap()
            .into_iter()
            .map(|e| match e {
                Entry::Directory { name } => (String::from_utf8(name).unwrap(), false),
                Entry::File {
                    name, executable, ..
                } => (String::from_utf8(name).unwrap(), executable),
            })
            .collect();
        let expected = [
            ("", false),
            ("/a.txt", false),
            ("/b", false),
            ("/b/c", false),
            ("/b/c/run.sh", true),
        ];
        assert_eq!(names, expected.map(|(n, x)| (n.to_string(), x)));
        assert!(
            matches!(local_entries(&root, false), Err(CopyError::Usage(m)) if m.contains("add -r"))
        );
        assert!(matches!(
            local_entries(&root.join("nope"), false),
            Err(CopyError::Usage(_))
        ));
        std::fs::write(root.join("bad\nname"), "").unwrap();
        assert!(
            matches!(local_entries(&root, true), Err(CopyError::Usage(m)) if m.contains("cannot carry"))
        );
    }

    #[test]
    fn downloads_land_inside_a_directory_or_in_place_of_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path();
        assert_eq!(
            local_root(here, "/var/log/app.log").unwrap(),
            here.join("app.log")
        );
        assert_eq!(local_root(here, "/").unwrap(), here);
        assert_eq!(
            local_root(&here.join("new.log"), "/x").unwrap(),
            here.join("new.log")
        );
        assert!(local_root(&here.join("no/such/dir/f"), "/x").is_err());
    }
}
