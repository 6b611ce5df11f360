//! What ECS reports about a task, whoever started it: its id, its addresses (`eni`), where
//! its output goes (`awslogs`), its exec agent, and which of a service's tasks is current.
//! Sessions, connections and the doctor all read tasks through here.

pub mod awslogs;
pub mod eni;

use aws_sdk_ecs::types::{Container, DesiredStatus, Task, TaskField};

use crate::aws::ApiError;

/// The last path segment of a task ARN (`arn:aws:ecs:…:task/cluster/<id>`), which is also
/// the last segment of its awslogs stream name.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// Whether the task's ExecuteCommandAgent is up (ECS Exec refuses sessions before), in
/// `container` if named, else in any container.
pub fn exec_agent_running(task: &Task, container: Option<&str>) -> bool {
    task.containers()
        .iter()
        .filter(|c| container.is_none_or(|name| c.name() == Some(name)))
        .any(|c| exec_agent_status(c) == Some("RUNNING"))
}

/// The last status ECS reports for a container's ExecuteCommandAgent, if it has one.
pub fn exec_agent_status(container: &Container) -> Option<&str> {
    container
        .managed_agents()
        .iter()
        .find(|a| a.name().map(|n| n.as_str()) == Some("ExecuteCommandAgent"))
        .and_then(|a| a.last_status())
}

/// The names of the cluster's services, every page of them.
pub async fn service_names(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::new();
    let mut pages = ecs.list_services().cluster(cluster).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ApiError::from_sdk("ecs:ListServices", e))?;
        names.extend(
            page.service_arns()
                .iter()
                .filter_map(|arn| arn.rsplit('/').next())
                .map(str::to_string),
        );
    }
    Ok(names)
}

/// The running tasks of an ECS service (the first 100: DescribeTasks' limit), with their
/// tags, for `exec --service`, `doctor --service` and a warm pool's claims.
pub async fn service_tasks(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> Result<Vec<Task>, ApiError> {
    let arns = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Running)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:ListTasks", e))?
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns.into_iter().take(100).collect()))
        .include(TaskField::Tags)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeTasks", e))?;
    Ok(out.tasks().to_vec())
}

/// Every running task of the cluster (every page of ListTasks, described 100 at a time),
/// for choosing one from a list.
pub async fn running_tasks(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
) -> Result<Vec<Task>, ApiError> {
    let mut arns = Vec::new();
    let mut pages = ecs
        .list_tasks()
        .cluster(cluster)
        .desired_status(DesiredStatus::Running)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ApiError::from_sdk("ecs:ListTasks", e))?;
        arns.extend(page.task_arns().iter().cloned());
    }
    let mut tasks = Vec::new();
    for batch in arns.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ecs:DescribeTasks", e))?;
        tasks.extend(out.tasks().iter().cloned());
    }
    Ok(tasks)
}

/// The most recently started task: the one the latest deployment runs.
pub fn newest<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Option<&'a Task> {
    tasks
        .into_iter()
        .max_by_key(|t| t.started_at().map(|d| (d.secs(), d.subsec_nanos())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_is_last_segment() {
        assert_eq!(
            task_id("arn:aws:ecs:eu-west-1:1:task/c/0123abcd"),
            "0123abcd"
        );
        assert_eq!(task_id("plain"), "plain");
    }
}
