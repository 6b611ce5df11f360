//! `jump cp SOURCE DEST`: files to or from a session's task, a service's, or any
//! exec-enabled task.
//!
//! An ssh-mode session started on this machine is copied by scp with the session's key
//! and pinned host key; everything else goes over ECS Exec (`connect::copy`). Local
//! paths are checked before any AWS call.

use std::os::unix::ffi::OsStrExt;

use super::choose::exec_target;
use super::cluster;
use super::ssh::{local_ssh_record, reachable};
use crate::aws::Clients;
use crate::cli::{CpArgs, GlobalArgs};
use crate::connect::copy::{self, own_name, Copied, CopyError, Side};
use crate::connect::ssh::{self, ScpCopy};
use crate::exit::Exit;
use crate::output::Output;
use crate::session::SessionId;
use crate::signals::ChildPid;

/// Which way: what goes up, or where what comes down lands.
enum Plan {
    Upload(Vec<copy::Entry>),
    Download(std::path::PathBuf),
}

enum Direction {
    Upload,
    Download,
}

pub async fn run(
    global: GlobalArgs,
    output: Output,
    child: ChildPid,
    args: CpArgs,
) -> anyhow::Result<Exit> {
    let usage = |why: &str| CopyError::Usage(why.to_string());
    let (direction, local, session, path) = match (Side::parse(&args.source), Side::parse(&args.dest)) {
        (Side::Local(local), Side::Remote { session, path }) => (Direction::Upload, local, session, path),
        (Side::Remote { session, path }, Side::Local(local)) => (Direction::Download, local, session, path),
        (Side::Local(_), Side::Local(_)) => {
            return Err(usage(
                "one side must be in the task: SESSION:PATH, or :PATH with --task or --service",
            )
            .into())
        }
        (Side::Remote { .. }, Side::Remote { .. }) => {
            return Err(usage(
                "both sides are in tasks; jump copies between this machine and one task (copy here first)",
            )
            .into())
        }
    };
    let elsewhere = args.target.task.is_some() || args.target.service.is_some();
    if session.is_some() && elsewhere {
        return Err(
            usage("name the task once: SESSION:PATH, or :PATH with --task or --service").into(),
        );
    }
    let session: Option<SessionId> = session.as_deref().map(str::parse).transpose()?;
    // What can be known here is checked before any AWS call.
    let plan = match direction {
        Direction::Upload => Plan::Upload(copy::local_entries(&local, args.recursive)?),
        Direction::Download => Plan::Download(copy::local_root(&local, &path)?),
    };
    let local_text = local.display().to_string();

    if let Some((dir, record)) = session.as_ref().and_then(local_ssh_record) {
        let target = reachable(&global, output, &dir, &record).await?;
        let copy = match plan {
            Plan::Upload(_) => ScpCopy::Upload {
                local: local_text,
                remote: path,
            },
            Plan::Download(_) => ScpCopy::Download {
                remote: path,
                local: local_text,
            },
        };
        let code = ssh::scp(&target, &copy, args.recursive, output.json(), &child).await?;
        if code == 0 && output.json() {
            output.print_json(&serde_json::json!({ "via": "scp", "session": record.id }));
        }
        return Ok(Exit::Remote(code));
    }

    let cluster = cluster(&args.cluster)?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    let target = exec_target(&clients, cluster, output, session, args.target, "jump cp").await?;
    if !output.json() {
        output.note(&format!("jump: ECS Exec into {}", target.task_arn));
    }
    let copied = match plan {
        Plan::Upload(entries) => {
            let total = entries
                .iter()
                .map(|e| match e {
                    copy::Entry::File { size, .. } => *size,
                    copy::Entry::Directory { .. } => 0,
                })
                .sum();
            let name = own_name(local.as_os_str().as_bytes())
                .unwrap_or(b".")
                .to_vec();
            let bar = output.transfer(total);
            let copied = copy::upload(&clients, &target, entries, &name, &path, bar.clone()).await;
            finish(bar);
            copied?
        }
        Plan::Download(root) => {
            let bar = output.transfer(0);
            let copied =
                copy::download(&clients, &target, &path, &root, args.recursive, bar.clone()).await;
            finish(bar);
            copied?
        }
    };
    report(output, &copied, &target.task_arn);
    Ok(Exit::Success)
}

fn finish(bar: Option<indicatif::ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// What was copied: a line on stderr, or JSON on stdout.
fn report(output: Output, copied: &Copied, task_arn: &str) {
    if output.json() {
        output.print_json(&serde_json::json!({
            "via": "exec",
            "task_arn": task_arn,
            "files": copied.files,
            "directories": copied.directories,
            "bytes": copied.bytes,
            "unverified": copied.unverified,
            "skipped": copied.skipped,
        }));
        return;
    }
    let checked = match copied.unverified {
        0 => "each checked with cksum".to_string(),
        n if n == copied.files => "not checked: the container has no cksum".to_string(),
        n => format!("{n} not checked: the container has no cksum"),
    };
    output.note(&format!(
        "jump: copied {} file(s), {} byte(s) ({checked})",
        copied.files, copied.bytes
    ));
    for skipped in &copied.skipped {
        output.note(&format!(
            "jump: skipped {skipped} (not a regular file, a link to a directory, or unreadable)"
        ));
    }
}
