//! Where the awslogs driver writes a container's output: one home for its options and
//! its stream names.
//!
//! With `awslogs-stream-prefix` the stream of a task's container is
//! `<prefix>/<container>/<task id>`, which anyone who knows the task can name; without
//! one it is named after the container's runtime id, which nothing jump reads gives, so
//! such a stream cannot be found by task.

use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};

use super::task_id;

/// The stream prefix of jump's own task definition.
pub const LOG_STREAM_PREFIX: &str = "jump";

/// A container's awslogs destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsLogs {
    pub group: String,
    pub prefix: Option<String>,
    /// `awslogs-create-group`: the driver creates the group when it is missing.
    pub create_group: bool,
}

impl AwsLogs {
    /// Where jump's own task definition sends a jumphost's output.
    pub fn jumphost(group: &str) -> AwsLogs {
        AwsLogs {
            group: group.to_string(),
            prefix: Some(LOG_STREAM_PREFIX.to_string()),
            create_group: true,
        }
    }

    /// The container's destination, if it logs through awslogs to a group.
    pub fn of_container(container: &ContainerDefinition) -> Option<AwsLogs> {
        let config = container.log_configuration()?;
        if config.log_driver().as_str() != "awslogs" {
            return None;
        }
        let options = config.options()?;
        Some(AwsLogs {
            group: options.get("awslogs-group")?.clone(),
            prefix: options.get("awslogs-stream-prefix").cloned(),
            create_group: options.get("awslogs-create-group").map(String::as_str) == Some("true"),
        })
    }

    /// The first container of the definition that logs through awslogs, and where.
    pub fn of_task_definition(
        definition: &TaskDefinition,
    ) -> Option<(&ContainerDefinition, AwsLogs)> {
        definition
            .container_definitions()
            .iter()
            .find_map(|c| Some((c, AwsLogs::of_container(c)?)))
    }

    /// The stream `container` of the task writes to; none without a stream prefix.
    pub fn stream(&self, container: &str, task_arn: &str) -> Option<String> {
        let prefix = self.prefix.as_deref()?;
        Some(format!("{prefix}/{container}/{}", task_id(task_arn)))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::{LogConfiguration, LogDriver};

    use super::*;

    #[test]
    fn streams_follow_awslogs_naming() {
        let task = "arn:aws:ecs:r:1:task/c/0123abcd";
        assert_eq!(
            AwsLogs::jumphost("/jump/sessions")
                .stream("jumphost", task)
                .as_deref(),
            Some("jump/jumphost/0123abcd")
        );
        let unprefixed = AwsLogs {
            prefix: None,
            ..AwsLogs::jumphost("/g")
        };
        assert_eq!(unprefixed.stream("jumphost", task), None);
    }

    #[test]
    fn a_container_s_options_name_its_destination() {
        let logs = |driver: LogDriver, options: &[(&str, &str)]| {
            let mut config = LogConfiguration::builder().log_driver(driver);
            for (k, v) in options {
                config = config.options(*k, *v);
            }
            let container = ContainerDefinition::builder()
                .name("app")
                .log_configuration(config.build().unwrap())
                .build();
            AwsLogs::of_container(&container)
        };
        let found = logs(
            LogDriver::Awslogs,
            &[("awslogs-group", "/app"), ("awslogs-stream-prefix", "web")],
        )
        .expect("awslogs with a group");
        assert_eq!(found.group, "/app");
        assert_eq!(found.prefix.as_deref(), Some("web"));
        assert!(!found.create_group);
        assert_eq!(
            logs(LogDriver::Awslogs, &[("awslogs-stream-prefix", "web")]),
            None
        );
        assert_eq!(logs(LogDriver::Splunk, &[("awslogs-group", "/app")]), None);
    }
}
