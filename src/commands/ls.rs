//! `jump ls`: running sessions, found by their tags so it works from any machine.

use std::time::SystemTime;

use serde_json::json;

use super::{cluster, short_owner};
use crate::aws::Clients;
use crate::cli::{GlobalArgs, LsArgs};
use crate::exit::Exit;
use crate::output::{short_duration, table, Output};
use crate::session::record::{list_remote, RemoteSession};

pub async fn run(global: GlobalArgs, output: Output, args: LsArgs) -> anyhow::Result<Exit> {
    let cluster = cluster(&args.cluster)?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    let me = clients.caller_arn().await?;
    let sessions: Vec<RemoteSession> = list_remote(&clients.ecs, &cluster)
        .await?
        .into_iter()
        .filter(|s| args.all || s.tags.owner.as_deref() == Some(me.as_str()))
        .collect();
    let now = SystemTime::now();
    if output.json() {
        let items: Vec<_> = sessions.iter().map(|s| to_json(s, now)).collect();
        output.print_json(&serde_json::Value::Array(items));
    } else if sessions.is_empty() {
        let hint = if args.all {
            ""
        } else {
            " (yours; --all shows everyone's)"
        };
        output.note(&format!("no running sessions in {cluster}{hint}"));
    } else {
        let rows: Vec<Vec<String>> = sessions.iter().map(|s| row(s, now)).collect();
        output.print(&table(
            &["SESSION", "OWNER", "AGE", "LEFT", "IP", "STATUS"],
            &rows,
        ));
    }
    Ok(Exit::Success)
}

fn age(session: &RemoteSession, now: SystemTime) -> Option<u64> {
    session
        .created
        .and_then(|c| now.duration_since(c).ok())
        .map(|d| d.as_secs())
}

fn left(session: &RemoteSession, now: SystemTime) -> Option<u64> {
    session
        .tags
        .expires
        .map(|e| e.duration_since(now).map(|d| d.as_secs()).unwrap_or(0))
}

/// A session as a row of `jump ls` (and as a line of the session picker).
pub(super) fn row(session: &RemoteSession, now: SystemTime) -> Vec<String> {
    let secs = |s: Option<u64>| {
        s.map(|s| short_duration(std::time::Duration::from_secs(s)))
            .unwrap_or_else(|| "-".into())
    };
    vec![
        session
            .tags
            .session
            .as_ref()
            .map_or_else(|| "-".to_string(), |id| id.to_string()),
        session
            .tags
            .owner
            .as_deref()
            .map_or("-", short_owner)
            .to_string(),
        secs(age(session, now)),
        match left(session, now) {
            Some(0) => "expired".to_string(),
            other => secs(other),
        },
        session.private_ip.clone().unwrap_or_else(|| "-".into()),
        session.status.clone(),
    ]
}

fn to_json(session: &RemoteSession, now: SystemTime) -> serde_json::Value {
    let time = |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    json!({
        "session": session.tags.session.as_ref().map(|id| id.to_string()),
        "owner": session.tags.owner,
        "task_arn": session.task_arn,
        "created": time(session.created),
        "age_seconds": age(session, now),
        "expires": time(session.tags.expires),
        "time_left_seconds": left(session, now),
        "ip": session.private_ip,
        "status": session.status,
    })
}
