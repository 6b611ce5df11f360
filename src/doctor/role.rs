//! The task role: the identity the exec agent inside the task uses to open its channels,
//! write session logs and decrypt the session key.

use crate::aws::Clients;
use crate::connect::exec_access::{denied_actions, CHANNEL_ACTIONS};

use super::cluster::ExecSettings;
use super::Check;

const LOG_ACTIONS: [&str; 3] = [
    "logs:DescribeLogGroups",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
];

/// Every permission the exec agent needs, given the cluster's settings.
pub async fn checks(clients: &Clients, role: &str, exec: &ExecSettings) -> Vec<Check> {
    let mut checks = vec![
        simulate(
            clients,
            role,
            "task-role-channels",
            &CHANNEL_ACTIONS,
            "open ECS Exec's control and data channels",
            "add templates/task-role-policy.json to the task role",
        )
        .await,
    ];
    if exec.log_group.is_some() {
        checks.push(
            simulate(
                clients,
                role,
                "task-role-logging",
                &LOG_ACTIONS,
                "write session logs",
                "add templates/task-role-logging-policy.json to the task role",
            )
            .await,
        );
    }
    if let Some(bucket) = &exec.s3_bucket {
        let mut actions = vec!["s3:PutObject"];
        if exec.s3_encrypted {
            actions.push("s3:GetEncryptionConfiguration");
        }
        checks.push(
            simulate(
                clients,
                role,
                "task-role-s3-logging",
                &actions,
                &format!("upload session logs to s3://{bucket}"),
                "allow the task role s3:PutObject on the bucket's objects (and \
                 s3:GetEncryptionConfiguration on the bucket when encryption is required)",
            )
            .await,
        );
    }
    if exec.kms_key.is_some() {
        checks.push(
            simulate(
                clients,
                role,
                "task-role-kms",
                &["kms:Decrypt"],
                "decrypt the session key",
                "add templates/task-role-kms-policy.json (kms:Decrypt on the cluster's key) to the task role",
            )
            .await,
        );
    }
    checks
}

async fn simulate(
    clients: &Clients,
    role: &str,
    id: &'static str,
    actions: &[&str],
    purpose: &str,
    fix: &str,
) -> Check {
    match denied_actions(&clients.iam, role, actions, None).await {
        Ok(denied) if denied.is_empty() => {
            Check::pass(id, format!("task role {role} may {purpose}"))
        }
        Ok(denied) => Check::fail(
            id,
            format!(
                "task role {role} cannot {purpose}: denied {}",
                denied.join(", ")
            ),
            fix,
        ),
        Err(err) => Check::warn(
            id,
            format!("cannot simulate task role {role}: {err}"),
            "allow iam:SimulatePrincipalPolicy on the task role to have this checked",
        ),
    }
}
