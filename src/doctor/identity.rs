//! Who is asking, and whether they may start and reach sessions.

use crate::arn::Account;
use crate::aws::Clients;
use crate::policy_sim::{denied, Context, Question};

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
        Account::from_caller(&self.arn, region).ok()
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
pub fn session_questions(
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
        on_task.push(Context::string("ecs:ResourceTag/jump:owner-id", owner));
        on_task.push(Context::string("aws:ResourceTag/jump:owner-id", owner));
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
    ]
}

/// The questions of starting a session: RunTask of jump's family tagged with the
/// caller's id, tagging on create, listing the cluster's tasks, passing the roles.
pub fn launch_questions(
    account: &Account,
    cluster: &str,
    family: &str,
    roles: &[&str],
    caller: &Caller,
) -> Vec<Question<'static>> {
    let tags = Context::list(
        "aws:TagKeys",
        &[
            "jump:owner",
            "jump:owner-id",
            "jump:session",
            "jump:expires",
        ],
    );
    let mut request = caller.context();
    request.extend([
        Context::string("ecs:cluster", &account.cluster(cluster)),
        Context::string("aws:RequestTag/jump:owner-id", &caller.user_id),
        tags,
    ]);
    let mut questions = vec![
        // Any revision stands for the family's latest: the user policy allows `family:*`.
        Question::new(&["ecs:RunTask"], account.task_definition(family, 1)).with_all(&request),
        Question::new(&["ecs:TagResource"], account.task(cluster, ANY_TASK))
            .with_all(&request)
            .with(Context::string("ecs:CreateAction", "RunTask")),
        Question::new(&["ecs:ListTasks"], "*").with_all(&request),
    ];
    for role in roles {
        questions.push(
            Question::new(&["iam:PassRole"], *role)
                .with_all(&caller.context())
                .with(Context::string(
                    "iam:PassedToService",
                    "ecs-tasks.amazonaws.com",
                )),
        );
    }
    questions
}
