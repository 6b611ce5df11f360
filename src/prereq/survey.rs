//! What exists now, looked up by the names init uses, and whether init made it.
//!
//! "Made by init" is decided by tags alone (`jump:managed-by = jump-init` and
//! `jump:init-name = <name>`): a resource with the right name but without them belongs to
//! someone else. Init may use it, but never changes or deletes it.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ecs::types::{
    ClusterField, DesiredStatus, ExecuteCommandConfiguration, ExecuteCommandLogging,
};
use serde_json::Value;

use super::desired::{ExecSettings, Names};
use super::policy::parse_document;
use super::{is_missing, MANAGED_BY, TAG_INIT_NAME, TAG_MANAGED_BY};
use crate::aws::{describe_cluster, ApiError, Clients};
use crate::session::tags::TAG_CONTENT_HASH;
use crate::vpc::filter;

/// Everything init looked at, as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Survey {
    pub cluster: Option<ClusterState>,
    /// By role name; only roles that exist.
    pub roles: BTreeMap<String, RoleState>,
    /// By log group name; only groups that exist.
    pub log_groups: BTreeMap<String, LogGroupState>,
    /// Security groups with init's name (in the VPC, when one was given).
    pub security_groups: Vec<SecurityGroupState>,
    /// The ExecuteCommand alert rule, if one has init's name.
    pub alert_rule: Option<RuleState>,
    /// The `jump:content-hash` of the reaper family's latest revision, if it has one.
    pub reaper_definition: Option<String>,
    /// The reaper's schedule, if one has init's name.
    pub reaper_schedule: Option<ScheduleState>,
    /// The config file's text.
    pub config: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleState {
    pub managed: bool,
    pub pattern: Option<Value>,
    /// Its targets: (id, ARN).
    pub targets: Vec<(String, String)>,
}

/// A schedule as Scheduler holds it. Schedules take no tags, so init marks its own with
/// their description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    pub managed: bool,
    pub expression: String,
    pub role: String,
    pub task_definition: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    pub managed: bool,
    pub exec: ExecSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleState {
    pub arn: String,
    pub managed: bool,
    pub trust: Option<Value>,
    /// Every inline policy of the role, by name, with its document.
    pub policies: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupState {
    pub managed: bool,
    /// `None`: the group's events never expire.
    pub retention_days: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupState {
    pub id: String,
    pub vpc: String,
    pub managed: bool,
    pub inbound_rules: usize,
}

impl Survey {
    /// Looks up every resource `names` stands for; the security group only in `vpc`
    /// when one is given. `config` is the config file's text, read with the flags.
    pub async fn take(
        clients: &Clients,
        names: &Names,
        vpc: Option<&str>,
        config: Option<String>,
    ) -> anyhow::Result<Survey> {
        let mut roles = BTreeMap::new();
        for name in [
            &names.execution_role,
            &names.task_role,
            &names.reaper_role,
            &names.reaper_scheduler_role,
        ] {
            if let Some(state) = role(&clients.iam, name, &names.init_name).await? {
                roles.insert(name.clone(), state);
            }
        }
        let mut log_groups = BTreeMap::new();
        for name in [&names.log_group, &names.exec_log_group] {
            if let Some(state) = log_group(&clients.logs, name, &names.init_name).await? {
                log_groups.insert(name.clone(), state);
            }
        }
        Ok(Survey {
            cluster: cluster(&clients.ecs, &names.cluster, &names.init_name).await?,
            roles,
            log_groups,
            security_groups: security_groups(
                &clients.ec2,
                &names.security_group,
                vpc,
                &names.init_name,
            )
            .await?,
            alert_rule: alert_rule(&clients.events, &names.alert_rule, &names.init_name).await?,
            reaper_definition: content_hash(&clients.ecs, &names.reaper_family).await?,
            reaper_schedule: schedule(&clients.scheduler, &names.reaper_schedule, &names.init_name)
                .await?,
            config,
        })
    }
}

/// A rule's targets, as (id, ARN).
pub async fn rule_targets(
    events: &aws_sdk_eventbridge::Client,
    rule: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    Ok(events
        .list_targets_by_rule()
        .rule(rule)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("events:ListTargetsByRule", e))?
        .targets()
        .iter()
        .map(|t| (t.id().to_string(), t.arn().to_string()))
        .collect())
}

async fn alert_rule(
    events: &aws_sdk_eventbridge::Client,
    name: &str,
    init_name: &str,
) -> anyhow::Result<Option<RuleState>> {
    let described = match events.describe_rule().name(name).send().await {
        Ok(out) => out,
        Err(e) => {
            let err = ApiError::from_sdk("events:DescribeRule", e);
            if is_missing(&err) {
                return Ok(None);
            }
            return Err(err.into());
        }
    };
    let tags = match described.arn() {
        Some(arn) => events
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("events:ListTagsForResource", e))?
            .tags()
            .to_vec(),
        None => Vec::new(),
    };
    let targets = rule_targets(events, name).await?;
    Ok(Some(RuleState {
        managed: is_managed(tags.iter().map(|t| (t.key(), t.value())), init_name),
        pattern: described
            .event_pattern()
            .and_then(|p| serde_json::from_str(p).ok()),
        targets,
    }))
}

/// The description init gives the schedules it makes (Scheduler has no tags for them).
pub fn schedule_description(init_name: &str) -> String {
    format!("jump-init {init_name}: runs jump gc in the cluster")
}

async fn schedule(
    scheduler: &aws_sdk_scheduler::Client,
    name: &str,
    init_name: &str,
) -> anyhow::Result<Option<ScheduleState>> {
    let out = match scheduler.get_schedule().name(name).send().await {
        Ok(out) => out,
        Err(e) => {
            let err = ApiError::from_sdk("scheduler:GetSchedule", e);
            if is_missing(&err) {
                return Ok(None);
            }
            return Err(err.into());
        }
    };
    let target = out.target();
    let ecs = target.and_then(|t| t.ecs_parameters());
    let network = ecs
        .and_then(|e| e.network_configuration())
        .and_then(|n| n.awsvpc_configuration());
    Ok(Some(ScheduleState {
        managed: out.description() == Some(schedule_description(init_name).as_str()),
        expression: out.schedule_expression().unwrap_or_default().to_string(),
        role: target.map(|t| t.role_arn().to_string()).unwrap_or_default(),
        task_definition: ecs
            .map(|e| e.task_definition_arn().to_string())
            .unwrap_or_default(),
        subnets: network.map(|n| n.subnets().to_vec()).unwrap_or_default(),
        security_groups: network
            .map(|n| n.security_groups().to_vec())
            .unwrap_or_default(),
    }))
}

/// The content hash jump tagged the family's latest revision with, if any.
async fn content_hash(ecs: &aws_sdk_ecs::Client, family: &str) -> anyhow::Result<Option<String>> {
    let out = ecs
        .describe_task_definition()
        .task_definition(family)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await;
    match out {
        Ok(out) => Ok(out
            .tags()
            .iter()
            .find(|t| t.key() == Some(TAG_CONTENT_HASH))
            .and_then(|t| t.value())
            .map(str::to_string)),
        Err(e) => {
            let err = ApiError::from_sdk("ecs:DescribeTaskDefinition", e);
            // A family never registered is a client error to ECS.
            if err.code.as_deref() == Some("ClientException") || is_missing(&err) {
                return Ok(None);
            }
            Err(err.into())
        }
    }
}

/// True when the tags say init made the resource, for this `--name`.
pub fn is_managed<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, init_name: &str) -> bool {
    let (mut by_init, mut this_name) = (false, false);
    for (key, value) in tags {
        by_init |= key == TAG_MANAGED_BY && value == MANAGED_BY;
        this_name |= key == TAG_INIT_NAME && value == init_name;
    }
    by_init && this_name
}

async fn cluster(
    ecs: &aws_sdk_ecs::Client,
    name: &str,
    init_name: &str,
) -> anyhow::Result<Option<ClusterState>> {
    let described = describe_cluster(
        ecs,
        name,
        &[ClusterField::Tags, ClusterField::Configurations],
    )
    .await?;
    // A deleted cluster stays visible as INACTIVE for a while; it is gone all the same.
    let Some(cluster) = described.filter(|c| c.status() != Some("INACTIVE")) else {
        return Ok(None);
    };
    let tags = cluster
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
    let exec = cluster
        .configuration()
        .and_then(|c| c.execute_command_configuration())
        .map(exec_settings)
        .unwrap_or_default();
    Ok(Some(ClusterState {
        managed: is_managed(tags, init_name),
        exec,
    }))
}

fn exec_settings(config: &ExecuteCommandConfiguration) -> ExecSettings {
    let log_group = match config.logging() {
        Some(ExecuteCommandLogging::Override) => config
            .log_configuration()
            .and_then(|l| l.cloud_watch_log_group_name())
            .map(str::to_string),
        _ => None,
    };
    ExecSettings {
        log_group,
        kms_key: config
            .kms_key_id()
            .filter(|k| !k.is_empty())
            .map(str::to_string),
    }
}

/// Tasks that are running or about to: a cluster with any is not init's to delete.
pub async fn running_tasks(ecs: &aws_sdk_ecs::Client, cluster: &str) -> anyhow::Result<usize> {
    let out = ecs
        .list_tasks()
        .cluster(cluster)
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:ListTasks", e))?;
    Ok(out.task_arns().len())
}

async fn role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    init_name: &str,
) -> anyhow::Result<Option<RoleState>> {
    let out = match iam.get_role().role_name(name).send().await {
        Ok(out) => out,
        Err(e) => {
            let err = ApiError::from_sdk("iam:GetRole", e);
            return if is_missing(&err) {
                Ok(None)
            } else {
                Err(err.into())
            };
        }
    };
    let Some(role) = out.role() else {
        return Ok(None);
    };
    let tags = iam
        .list_role_tags()
        .role_name(name)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("iam:ListRoleTags", e))?;
    let managed = is_managed(tags.tags().iter().map(|t| (t.key(), t.value())), init_name);
    let mut policies = BTreeMap::new();
    for policy in inline_policy_names(iam, name).await? {
        let out = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(&policy)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("iam:GetRolePolicy", e))?;
        policies.insert(policy, parse_document(out.policy_document()));
    }
    Ok(Some(RoleState {
        arn: role.arn().to_string(),
        managed,
        trust: role.assume_role_policy_document().map(parse_document),
        policies,
    }))
}

async fn inline_policy_names(iam: &aws_sdk_iam::Client, role: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let out = iam
            .list_role_policies()
            .role_name(role)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("iam:ListRolePolicies", e))?;
        names.extend(out.policy_names().iter().cloned());
        match out.marker() {
            Some(next) if out.is_truncated() => marker = Some(next.to_string()),
            _ => return Ok(names),
        }
    }
}

async fn log_group(
    logs: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
    init_name: &str,
) -> anyhow::Result<Option<LogGroupState>> {
    let mut token = None;
    loop {
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("logs:DescribeLogGroups", e))?;
        let found = out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name));
        if let Some(group) = found {
            // `arn` ends in `:*` (the group's streams); tags belong to the group itself.
            let arn = group
                .log_group_arn()
                .or(group.arn())
                .map(|a| a.trim_end_matches(":*").to_string());
            let tags = match arn {
                Some(arn) => logs
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .send()
                    .await
                    .map_err(|e| ApiError::from_sdk("logs:ListTagsForResource", e))?
                    .tags()
                    .cloned()
                    .unwrap_or_default(),
                None => HashMap::new(),
            };
            let tags = tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            return Ok(Some(LogGroupState {
                managed: is_managed(tags, init_name),
                retention_days: group.retention_in_days(),
            }));
        }
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(None),
        }
    }
}

async fn security_groups(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    vpc: Option<&str>,
    init_name: &str,
) -> anyhow::Result<Vec<SecurityGroupState>> {
    let mut request = ec2
        .describe_security_groups()
        .filters(filter("group-name", name));
    if let Some(vpc) = vpc {
        request = request.filters(filter("vpc-id", vpc));
    }
    let out = request
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ec2:DescribeSecurityGroups", e))?;
    Ok(out
        .security_groups()
        .iter()
        .filter_map(|group| {
            let tags = group
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
            Some(SecurityGroupState {
                id: group.group_id()?.to_string(),
                vpc: group.vpc_id().unwrap_or_default().to_string(),
                managed: is_managed(tags, init_name),
                inbound_rules: group.ip_permissions().len(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tags_are_needed_to_count_as_init_made() {
        let both = [(TAG_MANAGED_BY, MANAGED_BY), (TAG_INIT_NAME, "jump")];
        assert!(is_managed(both, "jump"));
        assert!(!is_managed(both, "other"));
        assert!(!is_managed([(TAG_INIT_NAME, "jump")], "jump"));
        assert!(!is_managed(
            [(TAG_MANAGED_BY, "terraform"), (TAG_INIT_NAME, "jump")],
            "jump"
        ));
        assert!(!is_managed(Vec::<(&str, &str)>::new(), "jump"));
    }
}
