//! A running task and its definition: what ECS Exec needs from both.

use aws_sdk_ecs::types::{ContainerDefinition, LaunchType, PidMode, Task, TaskDefinition};

use crate::task::exec_agent_status;

use super::Check;

/// Environment variables that make the exec agent use static keys instead of the role.
const CREDENTIAL_VARIABLES: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Checks of the task as it runs. `container` narrows the agent check to one container.
pub fn running(task: &Task, container: Option<&str>) -> Vec<Check> {
    vec![platform(task), exec_enabled(task), agent(task, container)]
}

fn platform(task: &Task) -> Check {
    if task.launch_type() == Some(&LaunchType::Ec2) {
        return Check::warn(
            "platform-version",
            "EC2 launch type: ECS Exec needs ECS agent 1.50.2 or later on the container instance",
            "check the agent version of the instance the task runs on",
        );
    }
    let version = task.platform_version().unwrap_or("unknown");
    match parse_version(version) {
        Some(v) if v >= (1, 4, 0) => {
            Check::pass("platform-version", format!("Fargate platform {version}"))
        }
        _ => Check::fail(
            "platform-version",
            format!("Fargate platform {version}; ECS Exec needs 1.4.0 or later"),
            "run the task (or update the service) with platform version LATEST or 1.4.0",
        ),
    }
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn exec_enabled(task: &Task) -> Check {
    if task.enable_execute_command() {
        Check::pass("exec-enabled", "the task was started with ECS Exec enabled")
    } else {
        Check::fail(
            "exec-enabled",
            "the task was started without enableExecuteCommand; ECS Exec cannot be switched on later",
            "start a new task with --enable-execute-command (for a service: aws ecs update-service \
             --enable-execute-command --force-new-deployment)",
        )
    }
}

fn agent(task: &Task, container: Option<&str>) -> Check {
    let statuses: Vec<(String, String)> = task
        .containers()
        .iter()
        .filter(|c| container.is_none_or(|name| c.name() == Some(name)))
        .map(|c| {
            let status = exec_agent_status(c).unwrap_or("absent");
            (c.name().unwrap_or("?").to_string(), status.to_string())
        })
        .collect();
    let listed = statuses
        .iter()
        .map(|(name, status)| format!("{name}: {status}"))
        .collect::<Vec<_>>()
        .join(", ");
    if statuses.is_empty() {
        return Check::fail(
            "exec-agent",
            format!("no container {} in the task", container.unwrap_or("")),
            "name one of the task's containers with --container",
        );
    }
    if statuses.iter().all(|(_, s)| s == "RUNNING") {
        Check::pass("exec-agent", format!("ExecuteCommandAgent {listed}"))
    } else {
        Check::fail(
            "exec-agent",
            format!("ExecuteCommandAgent not running ({listed})"),
            "an agent that is PENDING needs a moment; STOPPED or absent means it could not \
             start (task role channels, network route, read-only root filesystem): fix what \
             the other checks report and start a new task",
        )
    }
}

/// Checks of the task definition (and of the task's environment overrides).
pub fn definition(task: Option<&Task>, definition: &TaskDefinition) -> Vec<Check> {
    let containers = definition.container_definitions();
    vec![
        init_process(containers),
        readonly_root(containers),
        pid_mode(definition.pid_mode()),
        credentials_in_environment(task, containers),
    ]
}

fn names(containers: &[&ContainerDefinition]) -> String {
    containers
        .iter()
        .map(|c| c.name().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn init_process(containers: &[ContainerDefinition]) -> Check {
    let without: Vec<&ContainerDefinition> = containers
        .iter()
        .filter(|c| {
            !c.linux_parameters()
                .and_then(|l| l.init_process_enabled())
                .unwrap_or(false)
        })
        .collect();
    if without.is_empty() {
        Check::pass("init-process", "initProcessEnabled in every container")
    } else {
        Check::warn(
            "init-process",
            format!("initProcessEnabled is off in {}", names(&without)),
            "set linuxParameters.initProcessEnabled = true so finished exec sessions leave no \
             zombie processes behind",
        )
    }
}

fn readonly_root(containers: &[ContainerDefinition]) -> Check {
    let readonly: Vec<&ContainerDefinition> = containers
        .iter()
        .filter(|c| c.readonly_root_filesystem() == Some(true))
        .collect();
    if readonly.is_empty() {
        Check::pass(
            "readonly-root",
            "no container has a read-only root filesystem",
        )
    } else {
        Check::fail(
            "readonly-root",
            format!(
                "read-only root filesystem in {}: the exec agent cannot start there",
                names(&readonly)
            ),
            "set readonlyRootFilesystem = false, or mount writable volumes at /managed-agents, \
             /var/lib/amazon/ssm and /var/log/amazon/ssm",
        )
    }
}

fn pid_mode(mode: Option<&PidMode>) -> Check {
    match mode {
        None => Check::pass("pid-mode", "containers have their own process namespaces"),
        Some(PidMode::Host) => Check::fail(
            "pid-mode",
            "pidMode host: not supported on Fargate, and exec sessions would see the host's processes",
            "remove pidMode from the task definition",
        ),
        Some(other) => Check::warn(
            "pid-mode",
            format!("pidMode {}: containers share one process namespace, so an exec session in one container can see and signal the others' processes", other.as_str()),
            "remove pidMode unless a sidecar needs it",
        ),
    }
}

fn credentials_in_environment(task: Option<&Task>, containers: &[ContainerDefinition]) -> Check {
    let mut found: Vec<String> = containers
        .iter()
        .flat_map(|c| {
            c.environment()
                .iter()
                .filter_map(|kv| kv.name())
                .filter(|n| CREDENTIAL_VARIABLES.contains(n))
                .map(move |n| format!("{} in {}", n, c.name().unwrap_or("?")))
        })
        .collect();
    let overrides = task
        .and_then(|t| t.overrides())
        .map(|o| o.container_overrides())
        .unwrap_or_default();
    for over in overrides {
        for kv in over.environment() {
            if let Some(name) = kv.name().filter(|n| CREDENTIAL_VARIABLES.contains(n)) {
                found.push(format!(
                    "{name} in {} (override)",
                    over.name().unwrap_or("?")
                ));
            }
        }
    }
    if found.is_empty() {
        Check::pass(
            "container-credentials",
            "no AWS credentials in the container environment",
        )
    } else {
        Check::fail(
            "container-credentials",
            format!("AWS credentials baked into the environment ({}): the exec agent uses them instead of the task role", found.join(", ")),
            "remove them; give the task role the permissions instead (and rotate the keys)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn platform_versions_compare_numerically() {
        assert_eq!(parse_version("1.4.0"), Some((1, 4, 0)));
        assert_eq!(parse_version("1.10"), Some((1, 10, 0)));
        assert!(parse_version("1.10.0").unwrap() >= (1, 4, 0));
        assert!(parse_version("1.3.0").unwrap() < (1, 4, 0));
        assert_eq!(parse_version("LATEST"), None);
    }

    #[test]
    fn pid_mode_host_fails_task_warns_none_passes() {
        assert_eq!(pid_mode(Some(&PidMode::Host)).status, Status::Fail);
        assert_eq!(pid_mode(Some(&PidMode::Task)).status, Status::Warn);
        assert_eq!(pid_mode(None).status, Status::Pass);
    }
}
