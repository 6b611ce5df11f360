//! Carrying out a plan, change by change, in the order it lists them.
//!
//! Every create tags what it makes as init's, in the same call (CreateRole, CreateCluster,
//! CreateLogGroup and CreateSecurityGroup all take tags), so nothing init made can ever be
//! mistaken for someone else's, even when a run stops halfway. Deleting something that is
//! already gone counts as done, so `--destroy` can be repeated after a partial run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_ec2::types::{ResourceType, TagSpecification};
use aws_sdk_ecs::types::{
    ClusterConfiguration, ExecuteCommandConfiguration, ExecuteCommandLogConfiguration,
    ExecuteCommandLogging,
};

use super::change::{Op, Plan, ScheduleSpec};
use super::desired::{ExecSettings, ALERT_TARGET};
use super::survey::{rule_targets, schedule_description};
use super::{is_missing, MANAGED_BY, TAG_INIT_NAME, TAG_MANAGED_BY};
use crate::aws::{ApiError, Clients};
use crate::output::Progress;
use crate::session::provision::{ensure_task_definition, reaper_task_definition};
use crate::session::tags::tag;

const SECURITY_GROUP_DESCRIPTION: &str = "jump jumphosts: no inbound";
const ALERT_RULE_DESCRIPTION: &str =
    "jump: every ECS Exec session in jump's cluster, to the alert topic";

/// How long the network interfaces of stopped tasks may keep a security group in use.
const SECURITY_GROUP_RELEASE: Duration = Duration::from_secs(180);
const RELEASE_POLL: Duration = Duration::from_secs(10);

/// What applying learns that later changes need: what AWS named the things it created.
#[derive(Debug, Default)]
struct Learned {
    role_arns: BTreeMap<String, String>,
    security_group: Option<String>,
}

/// Applies every change of `plan`, tagging what it creates with `init_name`.
pub async fn apply(
    clients: &Clients,
    plan: &Plan,
    init_name: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut learned = Learned::default();
    let total = plan.changes.len();
    for (done, change) in plan.changes.iter().enumerate() {
        progress.stage(&change.to_string());
        run(clients, &change.op, init_name, &mut learned, progress)
            .await
            .with_context(|| {
                format!(
                    "stopped after {done} of {total} changes (running the same command again \
                     continues from there)"
                )
            })?;
    }
    Ok(())
}

async fn run(
    clients: &Clients,
    op: &Op,
    init_name: &str,
    learned: &mut Learned,
    progress: &Progress,
) -> anyhow::Result<()> {
    match op {
        Op::CreateLogGroup {
            name,
            retention_days,
        } => {
            clients
                .logs
                .create_log_group()
                .log_group_name(name)
                .tags(TAG_MANAGED_BY, MANAGED_BY)
                .tags(TAG_INIT_NAME, init_name)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("logs:CreateLogGroup", e))?;
            put_retention(&clients.logs, name, *retention_days).await?;
        }
        Op::PutRetention {
            name,
            retention_days,
        } => put_retention(&clients.logs, name, *retention_days).await?,
        Op::DeleteLogGroup { name } => {
            let result = clients
                .logs
                .delete_log_group()
                .log_group_name(name)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("logs:DeleteLogGroup", e));
            done_unless_failed(result)?;
        }
        Op::CreateRole {
            name,
            description,
            trust,
        } => {
            let out = clients
                .iam
                .create_role()
                .role_name(name)
                .assume_role_policy_document(trust)
                .description(*description)
                .tags(iam_tag(TAG_MANAGED_BY, MANAGED_BY)?)
                .tags(iam_tag(TAG_INIT_NAME, init_name)?)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("iam:CreateRole", e))?;
            let arn = out
                .role()
                .map(|r| r.arn().to_string())
                .context("iam:CreateRole returned no role")?;
            learned.role_arns.insert(name.clone(), arn);
        }
        Op::PutTrust { role, trust } => {
            clients
                .iam
                .update_assume_role_policy()
                .role_name(role)
                .policy_document(trust)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("iam:UpdateAssumeRolePolicy", e))?;
        }
        Op::PutPolicy {
            role,
            policy,
            document,
        } => {
            clients
                .iam
                .put_role_policy()
                .role_name(role)
                .policy_name(*policy)
                .policy_document(document)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("iam:PutRolePolicy", e))?;
        }
        Op::DeletePolicy { role, policy } => {
            let result = clients
                .iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(policy)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("iam:DeleteRolePolicy", e));
            done_unless_failed(result)?;
        }
        Op::DeleteRole { name } => {
            let result = clients
                .iam
                .delete_role()
                .role_name(name)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("iam:DeleteRole", e));
            done_unless_failed(result)?;
        }
        Op::CreateCluster { name, exec } => {
            let mut request = clients
                .ecs
                .create_cluster()
                .cluster_name(name)
                .tags(tag(TAG_MANAGED_BY, MANAGED_BY))
                .tags(tag(TAG_INIT_NAME, init_name));
            if !exec.is_default() {
                request = request.configuration(configuration(exec));
            }
            request
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("ecs:CreateCluster", e))?;
        }
        Op::SetClusterExec { name, exec } => {
            clients
                .ecs
                .update_cluster()
                .cluster(name)
                .configuration(configuration(exec))
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("ecs:UpdateCluster", e))?;
        }
        Op::DeleteCluster { name } => {
            let result = clients
                .ecs
                .delete_cluster()
                .cluster(name)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("ecs:DeleteCluster", e));
            done_unless_failed(result)?;
        }
        Op::CreateSecurityGroup { name, vpc } => {
            let tags = TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(ec2_tag(TAG_MANAGED_BY, MANAGED_BY))
                .tags(ec2_tag(TAG_INIT_NAME, init_name))
                .tags(ec2_tag("Name", name))
                .build();
            let out = clients
                .ec2
                .create_security_group()
                .group_name(name)
                .description(SECURITY_GROUP_DESCRIPTION)
                .vpc_id(vpc)
                .tag_specifications(tags)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("ec2:CreateSecurityGroup", e))?;
            let id = out
                .group_id()
                .context("ec2:CreateSecurityGroup returned no group id")?;
            learned.security_group = Some(id.to_string());
        }
        Op::DeleteSecurityGroup { id } => delete_security_group(&clients.ec2, id, progress).await?,
        Op::WriteConfig { path, values } => {
            let mut values = values.clone();
            for role in [&mut values.execution_role, &mut values.task_role] {
                if let Some(arn) = learned.role_arns.get(&role.name) {
                    role.arn = arn.clone();
                }
            }
            if learned.security_group.is_some() {
                values.security_group = learned.security_group.clone();
            }
            anyhow::ensure!(
                values.security_group.is_some(),
                "no security group id to write into {}",
                path.display()
            );
            std::fs::write(path, values.render())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Op::PutAlertRule {
            name,
            pattern,
            topic,
        } => put_alert_rule(&clients.events, name, pattern, topic, init_name).await?,
        Op::DeleteAlertRule { name, targets } => {
            if !targets.is_empty() {
                let result = clients
                    .events
                    .remove_targets()
                    .rule(name)
                    .set_ids(Some(targets.clone()))
                    .send()
                    .await
                    .map_err(|e| ApiError::from_sdk("events:RemoveTargets", e));
                done_unless_failed(result)?;
            }
            let result = clients
                .events
                .delete_rule()
                .name(name)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("events:DeleteRule", e));
            done_unless_failed(result)?;
        }
        Op::RegisterReaper { task } => {
            let definition = reaper_task_definition(task)?;
            ensure_task_definition(&clients.ecs, &definition).await?;
        }
        Op::PutSchedule(spec) => {
            let mut spec = (**spec).clone();
            if spec.security_group.is_none() {
                spec.security_group = learned.security_group.clone();
            }
            put_schedule(&clients.scheduler, &spec, init_name).await?;
        }
        Op::DeleteSchedule { name } => {
            let result = clients
                .scheduler
                .delete_schedule()
                .name(name)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("scheduler:DeleteSchedule", e));
            done_unless_failed(result)?;
        }
        Op::RemoveConfig { path } => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", path.display()));
            }
            _ => {}
        },
    }
    Ok(())
}

/// The reaper's schedule, made or brought to `spec`: every `expression`, one Fargate task
/// of the reaper's latest revision, where jumphosts run.
async fn put_schedule(
    scheduler: &aws_sdk_scheduler::Client,
    spec: &ScheduleSpec,
    init_name: &str,
) -> anyhow::Result<()> {
    use aws_sdk_scheduler::types::{
        AssignPublicIp, AwsVpcConfiguration, EcsParameters, FlexibleTimeWindow,
        FlexibleTimeWindowMode, LaunchType, NetworkConfiguration, Target,
    };
    let group = spec
        .security_group
        .clone()
        .context("no security group id for the reaper's schedule")?;
    let network = AwsVpcConfiguration::builder()
        .set_subnets(Some(spec.subnets.clone()))
        .security_groups(group)
        .assign_public_ip(if spec.public {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()?;
    let ecs = EcsParameters::builder()
        .task_definition_arn(&spec.task_definition)
        .task_count(1)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(network)
                .build(),
        )
        .build()?;
    let target = Target::builder()
        .arn(&spec.cluster)
        .role_arn(&spec.role)
        .ecs_parameters(ecs)
        .build()?;
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()?;
    let description = schedule_description(init_name);
    // Create and update take the same fields, in builders of different types.
    macro_rules! send {
        ($request:expr, $action:literal) => {
            $request
                .name(&spec.name)
                .description(description)
                .schedule_expression(&spec.expression)
                .flexible_time_window(window)
                .target(target)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| ApiError::from_sdk($action, e))
        };
    }
    if spec.exists {
        send!(scheduler.update_schedule(), "scheduler:UpdateSchedule")?;
    } else {
        send!(scheduler.create_schedule(), "scheduler:CreateSchedule")?;
    }
    Ok(())
}

/// The alert rule with exactly init's pattern, and the topic as its only target (any
/// other target on a rule init made is removed).
async fn put_alert_rule(
    events: &aws_sdk_eventbridge::Client,
    name: &str,
    pattern: &str,
    topic: &str,
    init_name: &str,
) -> anyhow::Result<()> {
    let tag = |key: &str, value: &str| {
        aws_sdk_eventbridge::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| anyhow::anyhow!("an EventBridge tag: {e}"))
    };
    events
        .put_rule()
        .name(name)
        .description(ALERT_RULE_DESCRIPTION)
        .event_pattern(pattern)
        .state(aws_sdk_eventbridge::types::RuleState::Enabled)
        .tags(tag(TAG_MANAGED_BY, MANAGED_BY)?)
        .tags(tag(TAG_INIT_NAME, init_name)?)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("events:PutRule", e))?;
    let others: Vec<String> = rule_targets(events, name)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id != ALERT_TARGET)
        .collect();
    if !others.is_empty() {
        events
            .remove_targets()
            .rule(name)
            .set_ids(Some(others))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("events:RemoveTargets", e))?;
    }
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id(ALERT_TARGET)
        .arn(topic)
        .build()
        .map_err(|e| anyhow::anyhow!("an EventBridge target: {e}"))?;
    let out = events
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("events:PutTargets", e))?;
    if let Some(failed) = out.failed_entries().first() {
        anyhow::bail!(
            "events:PutTargets did not add {topic}: {} {}",
            failed.error_code().unwrap_or_default(),
            failed.error_message().unwrap_or_default()
        );
    }
    Ok(())
}

/// A delete whose target is already gone has done its job.
fn done_unless_failed<T>(result: Result<T, ApiError>) -> Result<(), ApiError> {
    match result {
        Err(err) if !is_missing(&err) => Err(err),
        _ => Ok(()),
    }
}

async fn put_retention(
    logs: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
    days: i32,
) -> Result<(), ApiError> {
    logs.put_retention_policy()
        .log_group_name(name)
        .retention_in_days(days)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("logs:PutRetentionPolicy", e))?;
    Ok(())
}

/// The network interfaces of tasks that just stopped hold on to the group for a while
/// (DependencyViolation); waiting a little is kinder than failing the whole destroy.
async fn delete_security_group(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    progress: &Progress,
) -> Result<(), ApiError> {
    let deadline = Instant::now() + SECURITY_GROUP_RELEASE;
    loop {
        let result = ec2
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ec2:DeleteSecurityGroup", e));
        match result {
            Err(err)
                if err.code.as_deref() == Some("DependencyViolation")
                    && Instant::now() < deadline =>
            {
                progress.stage(&format!(
                    "waiting for the network interfaces of stopped tasks to release {id}"
                ));
                tokio::time::sleep(RELEASE_POLL).await;
            }
            other => return done_unless_failed(other),
        }
    }
}

/// ECS Exec settings as ECS takes them; the defaults are written out explicitly so that
/// updating a cluster back to them clears what was set before.
fn configuration(exec: &ExecSettings) -> ClusterConfiguration {
    let command = ExecuteCommandConfiguration::builder().set_kms_key_id(exec.kms_key.clone());
    let command = match &exec.log_group {
        Some(group) => command
            .logging(ExecuteCommandLogging::Override)
            .log_configuration(
                ExecuteCommandLogConfiguration::builder()
                    .cloud_watch_log_group_name(group)
                    .cloud_watch_encryption_enabled(false)
                    .build(),
            ),
        None => command.logging(ExecuteCommandLogging::Default),
    };
    ClusterConfiguration::builder()
        .execute_command_configuration(command.build())
        .build()
}

fn iam_tag(key: &str, value: &str) -> anyhow::Result<aws_sdk_iam::types::Tag> {
    Ok(aws_sdk_iam::types::Tag::builder()
        .key(key)
        .value(value)
        .build()?)
}

fn ec2_tag(key: &str, value: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_settings_become_the_cluster_configuration() {
        let exec = ExecSettings {
            log_group: Some("/jump/exec".into()),
            kms_key: Some("arn:k".into()),
        };
        let config = configuration(&exec);
        let command = config.execute_command_configuration().unwrap();
        assert_eq!(command.kms_key_id(), Some("arn:k"));
        assert_eq!(command.logging(), Some(&ExecuteCommandLogging::Override));
        let log = command.log_configuration().unwrap();
        assert_eq!(log.cloud_watch_log_group_name(), Some("/jump/exec"));
        assert!(!log.cloud_watch_encryption_enabled());

        let config = configuration(&ExecSettings::default());
        let command = config.execute_command_configuration().unwrap();
        assert_eq!(command.kms_key_id(), None);
        assert_eq!(command.logging(), Some(&ExecuteCommandLogging::Default));
        assert!(command.log_configuration().is_none());
    }

    #[test]
    fn deleting_what_is_gone_is_done() {
        let err = |code: &str| ApiError {
            operation: "iam:DeleteRole",
            code: Some(code.to_string()),
            message: "x".into(),
            transient: false,
        };
        assert!(done_unless_failed::<()>(Err(err("NoSuchEntity"))).is_ok());
        assert!(done_unless_failed::<()>(Err(err("ResourceNotFoundException"))).is_ok());
        assert!(done_unless_failed::<()>(Err(err("DeleteConflict"))).is_err());
        assert!(done_unless_failed(Ok(1)).is_ok());
    }
}
