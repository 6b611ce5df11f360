//! Log groups that must exist: the task's awslogs group, the cluster's session log.

use crate::aws::Clients;

use super::Check;

/// `group` exists. `what` says what it is for; `created_on_demand` softens a missing
/// group to a warning when the task definition lets ECS create it.
pub async fn group(
    clients: &Clients,
    id: &'static str,
    group: &str,
    what: &str,
    created_on_demand: bool,
) -> Check {
    let found = clients
        .logs
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await;
    match found {
        Ok(out)
            if out
                .log_groups()
                .iter()
                .any(|g| g.log_group_name() == Some(group)) =>
        {
            Check::pass(id, format!("log group {group} ({what}) exists"))
        }
        Ok(_) if created_on_demand => Check::warn(
            id,
            format!("log group {group} ({what}) does not exist yet; ECS will create it"),
            "create it with a retention period (`jump init` does) so logs do not pile up forever",
        ),
        Ok(_) => Check::fail(
            id,
            format!("log group {group} ({what}) does not exist"),
            format!(
                "create it: aws logs create-log-group --log-group-name {group} (or `jump init`)"
            ),
        ),
        Err(err) => Check::warn(
            id,
            format!(
                "cannot look up log group {group}: {}",
                crate::aws::ApiError::from_sdk("logs:DescribeLogGroups", err)
            ),
            "allow logs:DescribeLogGroups to have this checked",
        ),
    }
}
