//! Finding sessions again: a local record for the machine that started a session, and
//! the task's own tags for everyone else.
//!
//! The local record (`session.json` in the session directory) holds what `jump ssh`
//! needs to reconnect without asking AWS for anything but the task's state. The tags on
//! the task are the source of truth for `ls` and `down`, so those work from any machine,
//! including a CI runner that never saw the session start.

use std::time::SystemTime;

use aws_sdk_ecs::types::{ClusterField, DesiredStatus, Task, TaskField};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::pool;
use super::tags::{SessionTags, DEDICATED_BY, STARTED_BY, TAG_MANAGED_BY};
use super::wait::TaskFailed;
use super::SessionId;
use crate::aws::{describe_cluster, ApiError, Clients};
use crate::connect::target::ExecTarget;
use crate::plan::MAX_TTL;
use crate::session::keys::{KeyError, SessionDir};
use crate::task::eni::private_ip;

const RECORD_FILE: &str = "session.json";

/// DescribeTasks accepts at most this many tasks per call.
const DESCRIBE_BATCH: usize = 100;

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    Dir(#[from] KeyError),
    #[error("cannot read session record {path}: {message}")]
    Read { path: String, message: String },
    #[error("cannot encode session record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What this machine remembers about a session it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub task_arn: String,
    pub cluster: String,
    pub region: String,
    /// The address ssh connects to (public when the session was started with --public).
    pub ip: String,
    pub private_ip: String,
    pub public_ip: Option<String>,
    /// RFC 3339, UTC.
    pub expires: String,
    pub owner: String,
    pub login_user: String,
    /// `ssh` or `exec`: how to reconnect.
    #[serde(default = "ssh_mode")]
    pub mode: String,
    /// ssh mode: `network` or `ssm`, how ssh reaches sshd.
    #[serde(default = "over_the_network")]
    pub ssh_via: String,
}

fn ssh_mode() -> String {
    "ssh".to_string()
}

fn over_the_network() -> String {
    "network".to_string()
}

impl SessionRecord {
    /// The session's task, as ECS Exec and port sessions address it.
    pub fn exec_target(&self) -> ExecTarget {
        ExecTarget {
            cluster: self.cluster.clone(),
            task_arn: self.task_arn.clone(),
            container: None,
        }
    }

    pub fn save(&self, dir: &SessionDir) -> Result<(), RecordError> {
        let json = serde_json::to_vec_pretty(self)?;
        dir.write_private(RECORD_FILE, &json)?;
        Ok(())
    }

    pub fn load(dir: &SessionDir) -> Result<Self, RecordError> {
        let path = dir.path().join(RECORD_FILE);
        let read = |message: String| RecordError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| read(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| read(e.to_string()))
    }

    /// Session `id` as this machine started it (its directory and record), if it did.
    pub fn local(id: &SessionId) -> anyhow::Result<Option<(SessionDir, Self)>> {
        let Some(dir) = SessionDir::open(id)? else {
            return Ok(None);
        };
        let record = Self::load(&dir)?;
        Ok(Some((dir, record)))
    }
}

/// Which tasks a listing holds.
#[derive(Debug, Clone, Copy)]
pub enum Listing<'a> {
    /// Tasks started by jump (`startedBy`, which the caller sets).
    StartedByJump,
    /// Every task of a task-definition family, whoever started it and however tagged.
    Family(&'a str),
    /// Every task of a cluster, whatever its family and however it was started.
    Cluster,
    /// The tasks of one ECS service.
    Service(&'a str),
}

/// Whether the cluster was made for jump's sessions alone (by `jump init` or the
/// Terraform example), so that every task in it is a session or a stray.
pub async fn dedicated_cluster(ecs: &aws_sdk_ecs::Client, cluster: &str) -> Result<bool, ApiError> {
    let described = describe_cluster(ecs, cluster, &[ClusterField::Tags]).await?;
    Ok(described.iter().any(|c| {
        c.tags().iter().any(|t| {
            t.key() == Some(TAG_MANAGED_BY) && DEDICATED_BY.contains(&t.value().unwrap_or_default())
        })
    }))
}

/// A running jump task as seen through the ECS API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSession {
    pub task_arn: String,
    pub tags: SessionTags,
    pub created: Option<SystemTime>,
    pub private_ip: Option<String>,
    pub status: String,
}

impl RemoteSession {
    /// Whether `jump gc` stops it at `now`: its expiry tag has passed, is missing or does
    /// not parse, or ECS created it longer ago than any session may live. The tags are
    /// the caller's word; `createdAt` is ECS's.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.tags.expires.is_none() || self.tags.is_expired(now) || self.is_too_old(now)
    }

    /// Whether ECS created it longer ago than any session may live.
    pub fn is_too_old(&self, now: SystemTime) -> bool {
        self.created.is_some_and(|at| at + MAX_TTL <= now)
    }

    fn from_task(task: &Task) -> Option<Self> {
        let tags = SessionTags::of(task);
        Some(RemoteSession {
            task_arn: task.task_arn()?.to_string(),
            tags,
            created: task
                .created_at()
                .and_then(|t| SystemTime::try_from(*t).ok()),
            private_ip: private_ip(task),
            status: task.last_status().unwrap_or("UNKNOWN").to_string(),
        })
    }
}

/// Whose session a command may go to by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The caller's own only: what is typed or forwarded goes there.
    Mine,
    /// Anyone's, to read about (logs, doctor), as long as the id is not ambiguous.
    Anyones,
}

/// The task of a running session, found by its `jump:session` tag. That tag is the
/// caller's word, so anyone may put a colleague's session id on a task of their own;
/// the owner id tag cannot be forged under the user policy, and decides (see [`pick`]).
pub async fn session_task(
    clients: &Clients,
    cluster: &str,
    id: &SessionId,
    whose: Whose,
) -> anyhow::Result<String> {
    let me = clients.caller().await?.user_id;
    let claiming: Vec<RemoteSession> = list_remote(&clients.ecs, cluster)
        .await?
        .into_iter()
        .filter(|s| s.tags.session.as_ref() == Some(id))
        .collect();
    Ok(
        pick(claiming, &me, whose).map_err(|why| TaskFailed::Rejected {
            reason: format!("{why} (session {id} in cluster {cluster}; see `jump ls --all`)"),
        })?,
    )
}

/// Among the tasks claiming one session id: the caller's own, else (for reading only) the
/// one and only claimant. Never a guess between several.
fn pick(claiming: Vec<RemoteSession>, me: &str, whose: Whose) -> Result<String, String> {
    if let Some(mine) = claiming
        .iter()
        .find(|s| s.tags.owner_id.as_deref() == Some(me))
    {
        return Ok(mine.task_arn.clone());
    }
    let others: Vec<String> = claiming.iter().map(|s| s.task_arn.clone()).collect();
    match (whose, others.as_slice()) {
        (_, []) => Err("no running session with this id".to_string()),
        (Whose::Anyones, [only]) => Ok(only.clone()),
        (Whose::Mine, _) => Err(format!(
            "no running session of yours has this id; {} of someone else claims it, and \
             jump does not connect you to it (`--task ARN` does, if you mean it)",
            others.join(", ")
        )),
        (Whose::Anyones, _) => Err(format!(
            "{} tasks claim this id and none is yours: {}",
            others.len(),
            others.join(", ")
        )),
    }
}

/// All tasks in `cluster` started by jump that have not been asked to stop.
///
/// ECS takes `startedBy` only as the sole filter ("cannot specify startedBy with other
/// arguments"); it then lists tasks whose desired status is RUNNING, and the describe
/// step drops any that were asked to stop in between.
///
/// Sessions on claimed pool tasks are listed too: ECS started those (for the pool's
/// service), so they are found through the cluster's pool services, and kept once a
/// claim has tagged them with a session.
pub async fn list_remote(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
) -> Result<Vec<RemoteSession>, ApiError> {
    let mut sessions = list(ecs, cluster, Listing::StartedByJump).await?;
    for service in pool::services(ecs, cluster).await? {
        for task in list(ecs, cluster, Listing::Service(&service)).await? {
            let known = sessions.iter().any(|s| s.task_arn == task.task_arn);
            if task.tags.session.is_some() && !known {
                sessions.push(task);
            }
        }
    }
    sessions.sort_by_key(|s| s.created);
    Ok(sessions)
}

/// The running tasks of a listing, described with their tags, oldest first.
pub async fn list(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    listing: Listing<'_>,
) -> Result<Vec<RemoteSession>, ApiError> {
    let mut arns = Vec::new();
    let mut next = None;
    loop {
        let request = ecs.list_tasks().cluster(cluster).set_next_token(next);
        let request = match listing {
            Listing::StartedByJump => request.started_by(STARTED_BY),
            Listing::Family(family) => request.family(family),
            Listing::Cluster => request,
            Listing::Service(service) => request.service_name(service),
        };
        let page = request
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ecs:ListTasks", e))?;
        arns.extend(page.task_arns().iter().cloned());
        next = page.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    let mut sessions = Vec::new();
    for batch in arns.chunks(DESCRIBE_BATCH) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(batch.to_vec()))
            .include(TaskField::Tags)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ecs:DescribeTasks", e))?;
        sessions.extend(
            out.tasks()
                .iter()
                .filter(|t| t.desired_status() == Some(DesiredStatus::Running.as_str()))
                .filter_map(RemoteSession::from_task),
        );
    }
    sessions.sort_by_key(|s| s.created);
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_jump_tags() {
        let tags = SessionTags::parse([
            ("jump:session", "0123456789ab"),
            ("jump:owner", "arn:aws:sts::1:user/me"),
            ("jump:expires", "2030-01-02T03:04:05Z"),
            ("team", "infra"),
        ]);
        assert_eq!(tags.session.unwrap().as_str(), "0123456789ab");
        assert_eq!(tags.owner.as_deref(), Some("arn:aws:sts::1:user/me"));
        let expires = tags.expires.unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(expires).to_string(),
            "2030-01-02T03:04:05Z"
        );
    }

    #[test]
    fn a_session_id_leads_to_the_callers_own_task_or_nowhere() {
        let claim = |arn: &str, owner_id: &str| RemoteSession {
            task_arn: arn.into(),
            tags: SessionTags {
                owner_id: Some(owner_id.into()),
                ..SessionTags::default()
            },
            created: None,
            private_ip: None,
            status: "RUNNING".into(),
        };
        let forged = claim("arn:forged", "AIDAMALLORY");
        let mine = claim("arn:mine", "AIDAME");
        // A colleague's task carrying my session id never wins over mine, whatever the order.
        for whose in [Whose::Mine, Whose::Anyones] {
            let both = vec![forged.clone(), mine.clone()];
            assert_eq!(pick(both, "AIDAME", whose).unwrap(), "arn:mine");
        }
        // Only someone else's claim: not for typing into; for reading, if it is the only one.
        let err = pick(vec![forged.clone()], "AIDAME", Whose::Mine).unwrap_err();
        assert!(
            err.contains("arn:forged") && err.contains("--task ARN"),
            "{err}"
        );
        assert_eq!(
            pick(vec![forged.clone()], "AIDAME", Whose::Anyones).unwrap(),
            "arn:forged"
        );
        let two = vec![forged.clone(), claim("arn:other", "AIDAEVE")];
        assert!(pick(two, "AIDAME", Whose::Anyones)
            .unwrap_err()
            .contains("2 tasks claim this id"));
        assert!(pick(vec![], "AIDAME", Whose::Anyones)
            .unwrap_err()
            .contains("no running session"));
    }

    #[test]
    fn damaged_tags_are_dropped_not_fatal() {
        let tags = SessionTags::parse([("jump:session", "../x"), ("jump:expires", "tomorrow")]);
        assert_eq!(tags, SessionTags::default());
    }

    #[test]
    fn gc_judges_by_the_tag_and_by_what_ecs_says_about_age() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 24 * 3600);
        let session = |expires: Option<SystemTime>, age: Duration| RemoteSession {
            task_arn: "arn:task".into(),
            tags: SessionTags {
                expires,
                ..SessionTags::default()
            },
            created: Some(now - age),
            private_ip: None,
            status: "RUNNING".into(),
        };
        let hour = Duration::from_secs(3600);
        assert!(!session(Some(now + hour), hour).is_expired(now));
        assert!(session(Some(now - hour), hour).is_expired(now));
        // Missing or unreadable (parsed to none): expired, whatever else.
        assert!(session(None, Duration::ZERO).is_expired(now));
        // A far-future tag does not outlive the longest session ECS's createdAt allows.
        assert!(session(Some(now + 100 * hour), 25 * hour).is_expired(now));
        assert!(!session(Some(now + 100 * hour), 23 * hour).is_expired(now));
    }

    #[test]
    fn expiry() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let tags = SessionTags {
            expires: Some(at),
            ..SessionTags::default()
        };
        assert!(tags.is_expired(at));
        assert!(tags.is_expired(at + Duration::from_secs(1)));
        assert!(!tags.is_expired(at - Duration::from_secs(1)));
        assert!(!SessionTags::default().is_expired(at));
    }

    #[test]
    fn record_round_trips_through_json() {
        let record = SessionRecord {
            id: "0123456789ab".into(),
            task_arn: "arn:aws:ecs:r:1:task/c/abc".into(),
            cluster: "c".into(),
            region: "r".into(),
            ip: "10.0.0.5".into(),
            private_ip: "10.0.0.5".into(),
            public_ip: None,
            expires: "2030-01-02T03:04:05Z".into(),
            owner: "arn:me".into(),
            login_user: "jump".into(),
            mode: "ssh".into(),
            ssh_via: "ssm".into(),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<SessionRecord>(&json).unwrap(),
            record
        );
        // A record written before `ssh_via` existed reads as reached over the network.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().remove("ssh_via");
        let read: SessionRecord = serde_json::from_value(old).unwrap();
        assert_eq!(read.ssh_via, "network");
    }
}
