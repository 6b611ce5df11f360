//! Who is asking, and whether they may start and reach sessions.

use crate::aws::Clients;
use crate::connect::exec_access::denied_actions;

use super::Check;

/// The caller as STS sees it.
pub struct Caller {
    pub arn: String,
}

/// Credentials resolve and STS answers: everything else depends on it.
pub async fn credentials(clients: &Clients) -> (Check, Option<Caller>) {
    match clients.sts.get_caller_identity().send().await {
        Ok(identity) => {
            let arn = identity.arn().unwrap_or("unknown").to_string();
            let check = Check::pass(
                "credentials",
                format!("signed in as {arn} in {}", clients.region),
            );
            (check, Some(Caller { arn }))
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

/// The caller may call `actions` on `resource` ("*" when no task is known yet).
pub async fn may(clients: &Clients, principal: &str, actions: &[&str], resource: &str) -> Check {
    match denied_actions(&clients.iam, principal, actions, Some(resource)).await {
        Ok(denied) if denied.is_empty() => Check::pass(
            "caller-permissions",
            format!("{principal} may {}", actions.join(", ")),
        ),
        Ok(denied) => Check::fail(
            "caller-permissions",
            format!(
                "{principal} is not allowed {} on {resource}",
                denied.join(", ")
            ),
            "grant them (templates/user-policy.json is the least-privilege policy for jump users)",
        ),
        Err(err) => Check::warn(
            "caller-permissions",
            format!("cannot simulate your permissions: {err}"),
            "allow iam:SimulatePrincipalPolicy on yourself to have this checked",
        ),
    }
}
