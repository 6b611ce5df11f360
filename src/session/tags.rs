//! The tags jump puts on what it starts and creates, and reads back: one home for their
//! names and formats.
//!
//! A session's task carries its owner, the owner's IAM user id (which the user policy
//! makes unforgeable), the session id and its expiry, so any machine can find, list and
//! judge it; `startedBy` marks tasks jump started. Resources `jump init` (or the Terraform
//! example) made carry `jump:managed-by`. A warm pool's service and tasks carry its name;
//! a pool task becomes a session's when a claim adds the session's tags.

use std::time::SystemTime;

use aws_sdk_ecs::types::Tag;

use super::SessionId;
use crate::aws::Caller;

/// Marks tasks started by jump; `ListTasks` filters on it.
pub const STARTED_BY: &str = "jump";

pub const TAG_OWNER: &str = "jump:owner";
pub const TAG_OWNER_ID: &str = "jump:owner-id";
pub const TAG_SESSION: &str = "jump:session";
pub const TAG_EXPIRES: &str = "jump:expires";
pub const TAG_CONTENT_HASH: &str = "jump:content-hash";
/// A warm pool's name, on its service and (propagated by ECS) on each of its tasks.
pub const TAG_POOL: &str = "jump:pool";
/// How long a pool's tasks live (seconds), beside [`TAG_POOL`]: what a claim has left.
pub const TAG_POOL_TTL: &str = "jump:pool-ttl";
/// The mode of a pool's jumphosts (`exec` or `ssh`), beside [`TAG_POOL`]: a claim takes
/// only a task of its own session's mode.
pub const TAG_POOL_MODE: &str = "jump:pool-mode";
/// Who made a resource: `jump init` ([`MANAGED_BY`]) or the Terraform example.
pub const TAG_MANAGED_BY: &str = "jump:managed-by";
pub const MANAGED_BY: &str = "jump-init";
/// Clusters with one of these `jump:managed-by` values exist for jump's sessions alone.
pub const DEDICATED_BY: [&str; 2] = [MANAGED_BY, "terraform"];

/// One ECS tag.
pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// Tags that let `ls` and `down` find and judge a session's task from any machine.
pub fn session_tags(
    owner: &str,
    owner_id: &str,
    session: &SessionId,
    expires: SystemTime,
) -> Vec<(&'static str, String)> {
    vec![
        (TAG_OWNER, owner.to_string()),
        (TAG_OWNER_ID, owner_id.to_string()),
        (TAG_SESSION, session.to_string()),
        (
            TAG_EXPIRES,
            humantime::format_rfc3339_seconds(expires).to_string(),
        ),
    ]
}

/// The jump tags of one task, parsed leniently: a task with foreign or damaged tags is
/// still listed, just with less detail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTags {
    pub session: Option<SessionId>,
    pub owner: Option<String>,
    /// The owner's IAM user id, which the user policy makes unforgeable.
    pub owner_id: Option<String>,
    pub expires: Option<SystemTime>,
}

impl SessionTags {
    pub fn parse<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut parsed = SessionTags::default();
        for (key, value) in tags {
            match key {
                TAG_SESSION => parsed.session = value.parse().ok(),
                TAG_OWNER => parsed.owner = Some(value.to_string()),
                TAG_OWNER_ID => parsed.owner_id = Some(value.to_string()),
                TAG_EXPIRES => parsed.expires = humantime::parse_rfc3339_weak(value).ok(),
                _ => {}
            }
        }
        parsed
    }

    /// The jump tags of an ECS task as DescribeTasks (with its tags) reports it.
    pub fn of(task: &aws_sdk_ecs::types::Task) -> Self {
        Self::parse(
            task.tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value()?))),
        )
    }

    /// Whether `caller` started the session: its owner id says so (unforgeable under the
    /// user policy), or its owner ARN does.
    pub fn belongs_to(&self, caller: &Caller) -> bool {
        self.owner_id.as_deref() == Some(caller.user_id.as_str())
            || self.owner.as_deref() == Some(caller.arn.as_str())
    }

    /// True when the session's expiry has passed at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}
