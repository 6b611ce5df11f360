//! Who is asking, and whether they may start and reach sessions.

use crate::arn::Account;
use crate::aws::Clients;
use crate::plan::Plan;
use crate::policy_sim::{denied, Context, Question};
use crate::session::tags::{TAG_CONTENT_HASH, TAG_EXPIRES, TAG_OWNER, TAG_OWNER_ID, TAG_SESSION};
use crate::task::awslogs::AwsLogs;

use super::Check;

/// The caller as STS sees it.
pub struct Caller {
    pub arn: String,
    /// What IAM's `${aws:userid}` is for this caller.
    pub user_id: String,
}

impl Caller {
    /// The context every simulation of the caller carries: the policy variables its
    /// requests resolve (the user policy limits people to tasks tagged with their id).
    pub fn context(&self) -> Vec<Context> {
        vec![Context::string("aws:userid", &self.user_id)]
    }

    pub fn account(&self, region: &str) -> Option<Account> {
        Account::from_arn(&self.arn, region).ok()
    }
}

/// Credentials resolve and STS answers: everything else depends on it.
pub async fn credentials(clients: &Clients) -> (Check, Option<Caller>) {
    match clients.sts.get_caller_identity().send().await {
        Ok(identity) => {
            let arn = identity.arn().unwrap_or("unknown").to_string();
            let user_id = identity.user_id().unwrap_or_default().to_string();
            let check = Check::pass(
                "credentials",
                format!("signed in as {arn} in {}", clients.region),
            );
            (check, Some(Caller { arn, user_id }))
        }
        Err(err) => {
            let err = crate::aws::ApiError::from_sdk("sts:GetCallerIdentity", err);
            (
                Check::fail(
                    "credentials",
                    format!("no working AWS credentials: {err}"),
                    "sign in (aws sso login, or AWS_PROFILE / --profile) and check the region",
                ),
                None,
            )
        }
    }
}

/// Role session names that tools give every session unless told otherwise. Sessions are
/// owned by `${aws:userid}`, which for an assumed role is the role's id and the session
/// name: everyone using the role under one of these names is one owner to jump and to
/// the user policy, and can stop or enter each other's sessions.
const GENERIC_SESSION_NAMES: &[&str] = &[
    "GitHubActions", // aws-actions/configure-aws-credentials
    "AWSCLI-Session",
    "default",
    "session",
    "jump",
    "ci",
    "deploy",
    "terraform",
];

/// WARN when the caller is an assumed-role session whose name many callers share.
pub fn owner_identity(caller: &Caller) -> Check {
    let session = caller
        .arn
        .split_once(":assumed-role/")
        .and_then(|(_, rest)| rest.split_once('/'));
    match session {
        Some((role, name))
            if GENERIC_SESSION_NAMES
                .iter()
                .any(|g| g.eq_ignore_ascii_case(name)) =>
        {
            Check::warn(
                "owner-identity",
                format!(
                    "you are role {role} under the session name {name}, which other users of \
                     the role get too: jump (and the user policy) cannot tell your sessions \
                     from theirs"
                ),
                "give every person and every CI run its own role session name (GitHub Actions: \
                 role-session-name: jump-${{ github.run_id }}-${{ github.run_attempt }}; \
                 aws sts assume-role --role-session-name; IAM Identity Center does it for you)",
            )
        }
        _ => Check::pass(
            "owner-identity",
            format!("sessions are owned by {}", caller.user_id),
        ),
    }
}

/// The IAM principal the policy simulator understands: an assumed-role session becomes
/// its role (whose path we cannot know from the session ARN; IAM's GetRole fills it in).
pub async fn principal(clients: &Clients, caller: &Caller) -> String {
    let Some(rest) = caller.arn.split_once(":assumed-role/").map(|(_, r)| r) else {
        return caller.arn.replacen(":sts::", ":iam::", 1);
    };
    let role = rest.split('/').next().unwrap_or(rest);
    match clients.iam.get_role().role_name(role).send().await {
        Ok(out) => out.role().map(|r| r.arn().to_string()).unwrap_or_default(),
        Err(_) => {
            let prefix = caller
                .arn
                .split(":assumed-role/")
                .next()
                .unwrap_or_default();
            format!("{}:role/{role}", prefix.replacen(":sts::", ":iam::", 1))
        }
    }
}

/// The caller may make these calls: one check for all of them, naming what is denied
/// and on which resource.
pub async fn may(clients: &Clients, principal: &str, questions: &[Question<'_>]) -> Check {
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for question in questions {
        match denied(&clients.iam, principal, question).await {
            Ok(denied) => {
                for action in question.actions {
                    if !denied.iter().any(|d| d == action) && !allowed.contains(action) {
                        allowed.push(*action);
                    }
                }
                if !denied.is_empty() {
                    refused.push(format!("{} on {}", denied.join(", "), question.resource));
                }
            }
            Err(err) => {
                return Check::warn(
                    "caller-permissions",
                    format!("cannot simulate your permissions: {err}"),
                    "allow iam:SimulatePrincipalPolicy on yourself to have this checked",
                )
            }
        }
    }
    if refused.is_empty() {
        Check::pass(
            "caller-permissions",
            format!("{principal} may {}", allowed.join(", ")),
        )
    } else {
        Check::fail(
            "caller-permissions",
            format!("{principal} is not allowed {}", refused.join("; ")),
            "grant them (templates/user-policy.json is the least-privilege policy for jump users)",
        )
    }
}

/// A task id standing for "a task jump would start": questions about tasks not yet
/// started name one.
const ANY_TASK: &str = "0123456789abcdef0123456789abcdef";

/// The questions of everything a session in `cluster` asks on one task: describe, stop,
/// exec and port sessions, each with the owner tag the task carries (`owner_id`).
fn session_questions(
    account: &Account,
    cluster: &str,
    task_arn: Option<&str>,
    owner_id: Option<&str>,
    caller: &Caller,
) -> Vec<Question<'static>> {
    let task = task_arn.map_or_else(|| account.task(cluster, ANY_TASK), str::to_string);
    let mut on_task = caller.context();
    on_task.push(Context::string("ecs:cluster", &account.cluster(cluster)));
    if let Some(owner) = owner_id {
        on_task.push(Context::string(
            &format!("ecs:ResourceTag/{TAG_OWNER_ID}"),
            owner,
        ));
        on_task.push(Context::string(
            &format!("aws:ResourceTag/{TAG_OWNER_ID}"),
            owner,
        ));
    }
    let document = account.aws_document("AWS-StartPortForwardingSessionToRemoteHost");
    vec![
        Question::new(
            &[
                "ecs:DescribeTasks",
                "ecs:StopTask",
                "ecs:ExecuteCommand",
                "ssm:StartSession",
            ],
            task,
        )
        .with_all(&on_task),
        Question::new(&["ecs:ExecuteCommand"], account.cluster(cluster))
            .with_all(&caller.context()),
        Question::new(&["ssm:StartSession"], document).with_all(&caller.context()),
        // A session ECS Exec opened for the caller is named after them: resuming it when
        // its connection drops, and ending it, are allowed on that name alone.
        Question::new(
            &["ssm:ResumeSession", "ssm:TerminateSession"],
            account.session(&format!("{}-{ANY_TASK}", caller.user_id)),
        )
        .with_all(&caller.context())
        .with(Context::string(
            "ssm:resourceTag/aws:ssmmessages:session-id",
            &caller.user_id,
        )),
    ]
}

/// The questions of starting a session: registering and describing jump's family,
/// RunTask of it tagged with the caller's id, tagging on create, listing the cluster's
/// tasks, passing the roles, reading the host key from the log stream, the data channel.
fn launch_questions(account: &Account, plan: &Plan, caller: &Caller) -> Vec<Question<'static>> {
    let tags = Context::list(
        "aws:TagKeys",
        &[TAG_OWNER, TAG_OWNER_ID, TAG_SESSION, TAG_EXPIRES],
    );
    let mut request = caller.context();
    request.extend([
        Context::string("ecs:cluster", &account.cluster(&plan.cluster)),
        Context::string(&format!("aws:RequestTag/{TAG_OWNER_ID}"), &caller.user_id),
        tags,
    ]);
    // Any revision stands for the family's latest: the user policy allows `family:*`.
    let definition = account.task_definition(&plan.family, 1);
    let logs = AwsLogs::jumphost(&plan.log_group);
    let stream = account.log_stream(
        &logs.group,
        &logs
            .stream(&plan.container_name, ANY_TASK)
            .unwrap_or_default(),
    );
    let mut questions = vec![
        Question::new(&["ecs:DescribeTaskDefinition"], "*").with_all(&caller.context()),
        Question::new(&["ecs:RegisterTaskDefinition"], definition.clone())
            .with_all(&caller.context()),
        Question::new(&["ecs:TagResource"], definition.clone())
            .with_all(&caller.context())
            .with(Context::list("aws:TagKeys", &[TAG_CONTENT_HASH]))
            .with(Context::string(
                "ecs:CreateAction",
                "RegisterTaskDefinition",
            )),
        Question::new(&["ecs:RunTask"], definition).with_all(&request),
        Question::new(&["ecs:TagResource"], account.task(&plan.cluster, ANY_TASK))
            .with_all(&request)
            .with(Context::string("ecs:CreateAction", "RunTask")),
        Question::new(&["ecs:ListTasks"], "*").with_all(&request),
        Question::new(&["logs:GetLogEvents"], stream).with_all(&caller.context()),
        Question::new(&["ssmmessages:OpenDataChannel"], "*").with_all(&caller.context()),
    ];
    let roles = [
        Some(plan.execution_role.as_str()),
        plan.task_role.as_deref(),
    ];
    for role in roles.into_iter().flatten() {
        questions.push(
            Question::new(&["iam:PassRole"], role)
                .with_all(&caller.context())
                .with(Context::string(
                    "iam:PassedToService",
                    "ecs-tasks.amazonaws.com",
                )),
        );
    }
    questions.extend(session_questions(
        account,
        &plan.cluster,
        None,
        Some(&caller.user_id),
        caller,
    ));
    questions
}

/// The caller may start and use sessions as `plan` describes (one check), or WARN when
/// the caller's account cannot be read from its ARN.
pub async fn may_use(clients: &Clients, principal: &str, plan: &Plan, caller: &Caller) -> Check {
    match caller.account(&clients.region) {
        Some(account) => {
            may(
                clients,
                principal,
                &launch_questions(&account, plan, caller),
            )
            .await
        }
        None => cannot_tell(caller),
    }
}

/// The caller may reach this running task (one check).
pub async fn may_reach(
    clients: &Clients,
    principal: &str,
    cluster: &str,
    task: &aws_sdk_ecs::types::Task,
    caller: &Caller,
) -> Check {
    let Some(account) = caller.account(&clients.region) else {
        return cannot_tell(caller);
    };
    let owner = task
        .tags()
        .iter()
        .find(|t| t.key() == Some(TAG_OWNER_ID))
        .and_then(|t| t.value());
    let questions = session_questions(&account, cluster, task.task_arn(), owner, caller);
    may(clients, principal, &questions).await
}

fn cannot_tell(caller: &Caller) -> Check {
    Check::warn(
        "caller-permissions",
        format!(
            "cannot tell the account of {}, so your permissions were not checked",
            caller.arn
        ),
        "report this: STS returned a caller ARN jump cannot read",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(arn: &str) -> Caller {
        Caller {
            arn: arn.to_string(),
            user_id: "AROAEXAMPLE:x".to_string(),
        }
    }

    #[test]
    fn a_session_name_every_run_shares_is_a_warning() {
        let shared = owner_identity(&caller("arn:aws:sts::1:assumed-role/ci-jump/GitHubActions"));
        assert_eq!(shared.status, super::super::Status::Warn);
        assert!(shared
            .summary
            .contains("role ci-jump under the session name GitHubActions"));
        assert!(shared.fix.unwrap().contains("jump-${{ github.run_id }}"));
        for unique in [
            "arn:aws:sts::1:assumed-role/ci-jump/jump-8123456789-1",
            "arn:aws:sts::1:assumed-role/AWSReservedSSO_Dev_0a1b/alice@example.com",
            "arn:aws:iam::1:user/alice",
        ] {
            assert_eq!(
                owner_identity(&caller(unique)).status,
                super::super::Status::Pass,
                "{unique}"
            );
        }
    }
}
