//! The task role: the identity the exec agent inside the task uses to open its channels,
//! write session logs and decrypt the session key.

use crate::arn::Account;
use crate::aws::Clients;
use crate::connect::exec_access::CHANNEL_ACTIONS;
use crate::policy_sim::{denied, Question};

use super::cluster::ExecSettings;
use super::Check;

/// A stream name standing for "the streams the agent will create".
const ANY_STREAM: &str = "ecs-execute-command-0123456789abcdef";

/// Every permission the exec agent needs, given the cluster's settings, each asked on
/// the resource the agent's call touches.
pub async fn checks(clients: &Clients, role: &str, exec: &ExecSettings) -> Vec<Check> {
    let account = Account::from_caller(role, &clients.region).ok();
    let mut checks = vec![
        simulate(
            clients,
            ("task role", role),
            "task-role-channels",
            &[Question::new(&CHANNEL_ACTIONS, "*")],
            "open ECS Exec's control and data channels",
            "add templates/task-role-policy.json to the task role",
        )
        .await,
    ];
    if let (Some(group), Some(account)) = (&exec.log_group, &account) {
        let stream = account.log_stream(group, ANY_STREAM);
        checks.push(
            simulate(
                clients,
                ("task role", role),
                "task-role-logging",
                &[
                    Question::new(&["logs:DescribeLogGroups"], "*"),
                    Question::new(&["logs:CreateLogStream", "logs:PutLogEvents"], stream),
                ],
                "write session logs",
                "add templates/task-role-logging-policy.json to the task role",
            )
            .await,
        );
    }
    if let (Some(bucket), Some(account)) = (&exec.s3_bucket, &account) {
        let bucket_arn = format!("arn:{}:s3:::{bucket}", account.partition);
        let mut questions = vec![Question::new(
            &["s3:PutObject"],
            format!("{bucket_arn}/{ANY_STREAM}.log"),
        )];
        if exec.s3_encrypted {
            questions.push(Question::new(
                &["s3:GetEncryptionConfiguration"],
                bucket_arn,
            ));
        }
        checks.push(
            simulate(
                clients,
                ("task role", role),
                "task-role-s3-logging",
                &questions,
                &format!("upload session logs to s3://{bucket}"),
                "allow the task role s3:PutObject on the bucket's objects (and \
                 s3:GetEncryptionConfiguration on the bucket when encryption is required)",
            )
            .await,
        );
    }
    if let Some(key) = &exec.kms_key {
        let key_arn = key_arn(clients, key).await;
        checks.push(
            simulate(
                clients,
                ("task role", role),
                "task-role-kms",
                &[Question::new(&["kms:Decrypt"], key_arn)],
                "decrypt the session key",
                "add templates/task-role-kms-policy.json (kms:Decrypt on the cluster's key) to the task role",
            )
            .await,
        );
    }
    checks
}

/// What the execution role needs for jump's task definition: writing the awslogs stream.
pub async fn execution_checks(clients: &Clients, role: &str, log_group: &str) -> Option<Check> {
    let account = Account::from_caller(role, &clients.region).ok()?;
    let stream = account.log_stream(log_group, "jump/jumphost/0123456789abcdef");
    Some(
        simulate(
            clients,
            ("execution role", role),
            "execution-role-logs",
            &[Question::new(
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                stream,
            )],
            &format!("write the jumphosts' output to {log_group}"),
            "add templates/execution-role-policy.json to the execution role",
        )
        .await,
    )
}

/// IAM matches kms:Decrypt against the key's ARN, never an alias or a bare id.
async fn key_arn(clients: &Clients, key: &str) -> String {
    if key.starts_with("arn:") && key.contains(":key/") {
        return key.to_string();
    }
    match clients.kms.describe_key().key_id(key).send().await {
        Ok(out) => out
            .key_metadata()
            .and_then(|m| m.arn())
            .unwrap_or(key)
            .to_string(),
        Err(_) => key.to_string(),
    }
}

async fn simulate(
    clients: &Clients,
    (kind, role): (&str, &str),
    id: &'static str,
    questions: &[Question<'_>],
    purpose: &str,
    fix: &str,
) -> Check {
    let mut refused = Vec::new();
    for question in questions {
        match denied(&clients.iam, role, question).await {
            Ok(denied) => refused.extend(denied),
            Err(err) => {
                return Check::warn(
                    id,
                    format!("cannot simulate {kind} {role}: {err}"),
                    "allow iam:SimulatePrincipalPolicy on the role to have this checked",
                )
            }
        }
    }
    if refused.is_empty() {
        Check::pass(id, format!("{kind} {role} may {purpose}"))
    } else {
        Check::fail(
            id,
            format!(
                "{kind} {role} cannot {purpose}: denied {}",
                refused.join(", ")
            ),
            fix,
        )
    }
}
