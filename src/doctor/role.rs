//! The task role: the identity the exec agent inside the task uses to open its channels,
//! write session logs and decrypt the session key; and the execution role, which ECS uses
//! to pull the image and write the container's log stream.

use crate::arn::{key_arn, Account, EcrRepository};
use crate::aws::Clients;
use crate::connect::exec_access::CHANNEL_ACTIONS;
use crate::policy_sim::{denied, Question};
use crate::task::awslogs::AwsLogs;

use super::cluster::ExecSettings;
use super::Check;

/// A stream name standing for "the streams the agent will create".
const ANY_STREAM: &str = "ecs-execute-command-0123456789abcdef";
/// A task id standing for "any task jump starts".
const ANY_TASK_ID: &str = "0123456789abcdef0123456789abcdef";

/// Every permission the exec agent needs, given the cluster's settings, each asked on
/// the resource the agent's call touches.
pub async fn checks(clients: &Clients, role: &str, exec: &ExecSettings) -> Vec<Check> {
    let account = Account::from_arn(role, &clients.region).ok();
    let mut checks = Vec::new();
    if account.is_none() && (exec.log_group.is_some() || exec.s3_bucket.is_some()) {
        checks.push(unreadable(role, "task-role-logging"));
    }
    checks.extend([simulate(
        clients,
        ("task role", role),
        "task-role-channels",
        &[Question::new(&CHANNEL_ACTIONS, "*")],
        "open ECS Exec's control and data channels",
        "add templates/task-role-policy.json to the task role",
    )
    .await]);
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
        let prefix = exec
            .s3_prefix
            .as_deref()
            .map_or(String::new(), |p| format!("{p}/"));
        let mut questions = vec![Question::new(
            &["s3:PutObject"],
            format!("{bucket_arn}/{prefix}{ANY_STREAM}.log"),
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
        let key_arn = key_arn(&clients.kms, key)
            .await
            .unwrap_or_else(|_| key.clone());
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

/// What the execution role needs for jump's task definition: creating the log group if
/// it is missing (`awslogs-create-group`) and writing the container's stream.
pub async fn execution_checks(
    clients: &Clients,
    role: &str,
    log_group: &str,
    container: &str,
) -> Check {
    let Ok(account) = Account::from_arn(role, &clients.region) else {
        return unreadable(role, "execution-role-logs");
    };
    let task = format!("task/c/{ANY_TASK_ID}");
    let stream = account.log_stream(
        log_group,
        &AwsLogs::jumphost(log_group)
            .stream(container, &task)
            .unwrap_or_default(),
    );
    simulate(
        clients,
        ("execution role", role),
        "execution-role-logs",
        &[
            Question::new(&["logs:CreateLogGroup"], account.log_group(log_group)),
            Question::new(&["logs:CreateLogStream", "logs:PutLogEvents"], stream),
        ],
        &format!("write the jumphosts' output to {log_group}"),
        "add templates/execution-role-policy.json to the execution role",
    )
    .await
}

/// What the execution role needs to pull a private ECR image: the registry token, then the
/// manifest and layers of that one repository. Other registries need nothing from IAM.
pub async fn pull_check(clients: &Clients, role: &str, image: &str) -> Option<Check> {
    let repository = EcrRepository::of_image(image)?;
    let arn = repository.arn();
    Some(
        simulate(
            clients,
            ("execution role", role),
            "execution-role-ecr",
            &[
                Question::new(&["ecr:GetAuthorizationToken"], "*"),
                Question::new(&["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], arn),
            ],
            &format!("pull {image}"),
            &format!(
                "run `jump init` for this image, or add templates/execution-role-ecr-policy.json \
                 (for the repository {}) to the execution role",
                repository.name
            ),
        )
        .await,
    )
}

/// A role ARN the account cannot be read from: its resource-scoped checks cannot be asked.
fn unreadable(role: &str, id: &'static str) -> Check {
    Check::warn(
        id,
        format!(
            "cannot tell the account of {role}, so its permissions on resources were not checked"
        ),
        "give the role as a full ARN (arn:aws:iam::ACCOUNT:role/NAME)",
    )
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
