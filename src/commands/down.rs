//! `jump down`: stop sessions by id, by owner, or by expiry.
//!
//! Stopping is idempotent — a session that is already gone is reported, not an error —
//! so `down` is safe in cleanup scripts. Other people's sessions are protected: they are
//! stopped only with `--all`, or by `--expired` once their TTL has passed.
//!
//! `--expired` (and `jump gc`) does not take the tags' word alone, since any caller sets
//! them: it also looks at every task of jump's task-definition family, however it was
//! started, and stops those whose expiry is missing or unreadable, or that ECS created
//! longer ago than any session may live. In a cluster made for jump (by `jump init` or
//! the Terraform example, as its `jump:managed-by` tag says) any other task, of any
//! family, is stopped too once ECS created it longer ago than that.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::json;

use super::choose::pick_session;
use super::{cluster, layers, short_owner};
use crate::aws::Clients;
use crate::cli::{DownArgs, GlobalArgs};
use crate::exit::{Exit, UsageError};
use crate::output::Output;
use crate::session::guard::stop_task;
use crate::session::keys::SessionDir;
use crate::session::record::{
    dedicated_cluster, list, list_remote, Listing, RemoteSession, SessionRecord,
};
use crate::session::SessionId;

pub async fn run(global: GlobalArgs, output: Output, args: DownArgs) -> anyhow::Result<Exit> {
    let mut wanted: Option<SessionId> = args.session.as_deref().map(str::parse).transpose()?;
    let local = match &wanted {
        Some(id) => SessionDir::open(id)?,
        None => None,
    };
    let record = local.as_ref().and_then(|dir| SessionRecord::load(dir).ok());
    let cluster = match (&record, &args.cluster.cluster) {
        (Some(record), None) => record.cluster.clone(),
        _ => cluster(&args.cluster)?,
    };
    let region = global
        .region
        .clone()
        .or_else(|| record.as_ref().map(|r| r.region.clone()));
    let clients = Clients::new(global.profile.as_deref(), region.as_deref()).await?;
    let me = clients.caller().await?;
    let now = SystemTime::now();

    // Task ARN -> session id (if tagged), for everything selected.
    let mut targets: BTreeMap<String, Option<SessionId>> = BTreeMap::new();
    let mut sessions = list_remote(&clients.ecs, &cluster).await?;
    if wanted.is_none() && !(args.all_mine || args.expired || args.all) {
        let instead = "jump down SESSION, or --all-mine, --expired or --all";
        wanted = Some(pick_session(&sessions, &me, output, instead, |_| true)?);
    }
    if args.expired {
        let family = layers(args.cluster.config.as_deref(), &[])?.family();
        for task in list(&clients.ecs, &cluster, Listing::Family(&family)).await? {
            if !sessions.iter().any(|s| s.task_arn == task.task_arn) {
                sessions.push(task);
            }
        }
        if dedicated_cluster(&clients.ecs, &cluster).await? {
            for task in list(&clients.ecs, &cluster, Listing::Cluster).await? {
                let known = sessions.iter().any(|s| s.task_arn == task.task_arn);
                if !known && task.is_too_old(now) {
                    targets.insert(task.task_arn, task.tags.session);
                }
            }
        }
    }
    // Anyone can put my session id on a task of theirs; that must not stop me stopping mine.
    let mine = |s: &RemoteSession| s.tags.belongs_to(&me);
    let named_mine =
        wanted.is_some() && sessions.iter().any(|s| s.tags.session == wanted && mine(s));
    for session in sessions {
        let id = session.tags.session.clone();
        let mine = mine(&session);
        let named = wanted.is_some() && id == wanted;
        if named && !mine && !args.all && named_mine {
            continue;
        }
        if named && !mine && !args.all {
            let owner = session
                .tags
                .owner
                .as_deref()
                .map_or("someone else", short_owner);
            return Err(UsageError(format!(
                "session {} belongs to {owner}; pass --all to stop it anyway",
                id.as_ref().map_or_else(String::new, |id| id.to_string())
            ))
            .into());
        }
        let selected = named
            || (args.all_mine && mine)
            || (args.expired && session.is_expired(now))
            || (args.all && wanted.is_none());
        if selected {
            targets.insert(session.task_arn, id);
        }
    }
    // A local record for a session ECS no longer lists: stopping it is a harmless no-op.
    if let (Some(id), Some(record)) = (&wanted, &record) {
        if !targets.values().any(|v| v.as_ref() == Some(id)) {
            targets.insert(record.task_arn.clone(), Some(id.clone()));
        }
    }

    let mut stopped = Vec::new();
    let mut first_error = None;
    for (task_arn, id) in &targets {
        match stop_task(&clients.ecs, &cluster, task_arn, "stopped by jump down").await {
            Ok(()) => {
                if let Some(dir) = id
                    .as_ref()
                    .and_then(|id| SessionDir::open(id).ok().flatten())
                {
                    dir.remove()?;
                }
                stopped.push((id.clone(), task_arn.clone()));
            }
            Err(e) => {
                output.note(&format!("jump: {e}"));
                first_error.get_or_insert(e);
            }
        }
    }
    if let (Some(_), Some(dir)) = (&wanted, &local) {
        dir.remove()?;
    }
    report(output, &stopped, wanted.as_ref());
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(Exit::Success),
    }
}

fn report(output: Output, stopped: &[(Option<SessionId>, String)], wanted: Option<&SessionId>) {
    let name = |id: &Option<SessionId>| {
        id.as_ref()
            .map_or_else(|| "-".to_string(), |id| id.to_string())
    };
    if output.json() {
        let items: Vec<_> = stopped
            .iter()
            .map(|(id, arn)| json!({ "session": id.as_ref().map(|id| id.to_string()), "task_arn": arn }))
            .collect();
        output.print_json(&json!({ "stopped": items }));
    } else if stopped.is_empty() {
        match wanted {
            Some(id) => output.note(&format!("session {id} is not running; nothing to stop")),
            None => output.note("no matching sessions; nothing to stop"),
        }
    } else {
        for (id, arn) in stopped {
            output.print(&format!("stopped {}  {arn}", name(id)));
        }
    }
}
