//! A task's network interface: one home for reading the addresses and ids ECS reports in
//! the task's `ElasticNetworkInterface` attachment, and for asking EC2 about it.

use aws_sdk_ec2::types::NetworkInterface;
use aws_sdk_ecs::types::Task;

use crate::aws::ApiError;

/// The task's private IP from its ENI attachment, or else from its container.
pub fn private_ip(task: &Task) -> Option<String> {
    detail(task, "privateIPv4Address").or_else(|| {
        task.containers()
            .iter()
            .flat_map(|c| c.network_interfaces())
            .find_map(|n| n.private_ipv4_address())
            .map(str::to_string)
    })
}

fn detail(task: &Task, name: &str) -> Option<String> {
    task.attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some(name))
        .and_then(|d| d.value())
        .map(str::to_string)
}

/// The id of the task's network interface, once ECS has attached one.
pub fn interface_id(task: &Task) -> Option<String> {
    detail(task, "networkInterfaceId")
}

/// The subnet the task's interface is in.
pub fn subnet_id(task: &Task) -> Option<String> {
    detail(task, "subnetId")
}

/// EC2's description of the interface (its security groups, its public address).
pub async fn describe(
    ec2: &aws_sdk_ec2::Client,
    eni: &str,
) -> Result<Option<NetworkInterface>, ApiError> {
    let out = ec2
        .describe_network_interfaces()
        .network_interface_ids(eni)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ec2:DescribeNetworkInterfaces", e))?;
    Ok(out.network_interfaces().first().cloned())
}

/// The interface's public address, once EC2 has associated one.
pub async fn public_ip(ec2: &aws_sdk_ec2::Client, eni: &str) -> Result<Option<String>, ApiError> {
    let interface = describe(ec2, eni).await?;
    Ok(interface
        .as_ref()
        .and_then(|n| n.association())
        .and_then(|a| a.public_ip())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::{Attachment, Container, KeyValuePair, NetworkInterface};

    use super::*;

    fn detail(name: &str, value: &str) -> KeyValuePair {
        KeyValuePair::builder().name(name).value(value).build()
    }

    fn container_with_ip(ip: &str) -> Container {
        Container::builder()
            .network_interfaces(NetworkInterface::builder().private_ipv4_address(ip).build())
            .build()
    }

    #[test]
    fn private_ip_prefers_eni_attachment() {
        let task = Task::builder()
            .attachments(
                Attachment::builder()
                    .r#type("ElasticNetworkInterface")
                    .details(detail("networkInterfaceId", "eni-1"))
                    .details(detail("privateIPv4Address", "10.0.0.7"))
                    .build(),
            )
            .containers(container_with_ip("10.0.0.8"))
            .build();
        assert_eq!(private_ip(&task).as_deref(), Some("10.0.0.7"));
        assert_eq!(interface_id(&task).as_deref(), Some("eni-1"));
    }

    #[test]
    fn private_ip_falls_back_to_container() {
        let task = Task::builder()
            .containers(container_with_ip("10.0.0.8"))
            .build();
        assert_eq!(private_ip(&task).as_deref(), Some("10.0.0.8"));
        assert_eq!(private_ip(&Task::builder().build()), None);
    }
}
