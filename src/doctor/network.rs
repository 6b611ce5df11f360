//! Can the task reach Session Manager? A route to the internet (a NAT gateway, or an
//! internet gateway plus a public IP), or interface VPC endpoints; and security-group
//! egress on 443 either way.

use aws_sdk_ec2::types::IpPermission;

use crate::aws::{ApiError, Clients};
use crate::vpc;

use super::Check;

/// Where a task runs, as far as networking goes.
pub struct Placement {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub public_ip: bool,
    /// Whether the task logs through awslogs (so it needs the logs endpoint too).
    pub uses_awslogs: bool,
    /// Whether sessions are KMS-encrypted (so the kms endpoint is needed too).
    pub uses_kms: bool,
}

pub async fn checks(clients: &Clients, placement: &Placement) -> Vec<Check> {
    match route(clients, placement).await {
        Ok(mut checks) => {
            checks.push(egress(clients, &placement.security_groups).await);
            checks
        }
        Err(err) => vec![Check::warn(
            "network-route",
            format!("cannot inspect the network: {err}"),
            "allow ec2:DescribeSubnets, ec2:DescribeRouteTables and ec2:DescribeVpcEndpoints",
        )],
    }
}

async fn route(clients: &Clients, placement: &Placement) -> Result<Vec<Check>, ApiError> {
    if placement.subnets.is_empty() {
        return Ok(vec![Check::fail(
            "network-route",
            "no subnets to check",
            "set `subnets` in jump.toml (or run `jump init`)",
        )]);
    }
    let subnets = clients
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(placement.subnets.clone()))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ec2:DescribeSubnets", e))?;
    let mut offline = Vec::new();
    let mut elsewhere = Vec::new();
    let mut vpc = None;
    for subnet in subnets.subnets() {
        let (id, vpc_id) = (
            subnet.subnet_id().unwrap_or("?"),
            subnet.vpc_id().unwrap_or("?"),
        );
        vpc = Some(vpc_id.to_string());
        let way = vpc::way_out(&clients.ec2, id, vpc_id).await?;
        if way == vpc::WayOut::Elsewhere {
            elsewhere.push(id.to_string());
        } else if !way.reaches_internet(placement.public_ip) {
            offline.push(id.to_string());
        }
    }
    let Some(vpc) = vpc else {
        return Ok(vec![Check::fail(
            "network-route",
            format!("subnets {} not found", placement.subnets.join(", ")),
            "fix `subnets` in jump.toml",
        )]);
    };
    if offline.is_empty() && !elsewhere.is_empty() {
        return Ok(vec![Check::warn(
            "network-route",
            format!(
                "subnets {} route 0.0.0.0/0 to something other than a NAT or internet gateway \
                 (a transit gateway, a NAT instance, a firewall): jump cannot tell whether that \
                 reaches Session Manager",
                elsewhere.join(", ")
            ),
            "make sure it reaches the internet on 443, or add an ssmmessages VPC endpoint",
        )]);
    }
    if offline.is_empty() {
        return Ok(vec![Check::pass(
            "network-route",
            "every subnet routes to the internet (Session Manager is reachable)",
        )]);
    }
    let endpoints = vpc::endpoints(&clients.ec2, &vpc).await?;
    let service = |name: &str| vpc::endpoint_service(&clients.region, name);
    let has = |name: &str| endpoints.contains(&service(name));
    let mut checks = Vec::new();
    if has("ssmmessages") {
        checks.push(Check::pass(
            "network-route",
            format!(
                "subnets {} have no internet route, but VPC {vpc} has an ssmmessages endpoint",
                offline.join(", ")
            ),
        ));
    } else {
        checks.push(Check::fail(
            "network-route",
            format!(
                "subnets {} have no route to the internet ({}) and VPC {vpc} has no {} endpoint: the exec agent cannot reach Session Manager",
                offline.join(", "),
                if placement.public_ip { "no internet or NAT gateway route" } else { "no NAT gateway route, and without a public IP an internet gateway does not help" },
                service("ssmmessages")
            ),
            format!("create an interface endpoint for {} with private DNS in VPC {vpc}, or route the subnets through a NAT gateway", service("ssmmessages")),
        ));
    }
    let mut missing: Vec<String> = Vec::new();
    if placement.uses_awslogs && !has("logs") {
        missing.push(service("logs"));
    }
    if placement.uses_kms && !has("kms") {
        missing.push(service("kms"));
    }
    for name in ["ecr.api", "ecr.dkr", "s3"] {
        if !has(name) {
            missing.push(service(name));
        }
    }
    checks.push(if missing.is_empty() {
        Check::pass("vpc-endpoints", format!("VPC {vpc} has endpoints for logs and image pulls"))
    } else {
        Check::warn(
            "vpc-endpoints",
            format!("without internet access, VPC {vpc} also lacks {}", missing.join(", ")),
            "add those endpoints: logs for CloudWatch logging, kms for encrypted sessions, ecr.api, ecr.dkr and the s3 gateway for ECR images (s3 also for session logs in S3)",
        )
    });
    Ok(checks)
}

async fn egress(clients: &Clients, groups: &[String]) -> Check {
    if groups.is_empty() {
        return Check::fail(
            "egress-443",
            "no security groups to check",
            "set `security_groups` in jump.toml",
        );
    }
    let described = clients
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(groups.to_vec()))
        .send()
        .await;
    let out = match described {
        Ok(out) => out,
        Err(err) => {
            return Check::warn(
                "egress-443",
                format!(
                    "cannot read security groups: {}",
                    ApiError::from_sdk("ec2:DescribeSecurityGroups", err)
                ),
                "check the ids and allow ec2:DescribeSecurityGroups",
            )
        }
    };
    if out
        .security_groups()
        .iter()
        .any(|g| g.ip_permissions_egress().iter().any(allows_443))
    {
        Check::pass(
            "egress-443",
            format!("security groups {} allow outbound HTTPS", groups.join(", ")),
        )
    } else {
        Check::fail(
            "egress-443",
            format!("security groups {} allow no outbound traffic on TCP 443: the exec agent cannot reach Session Manager", groups.join(", ")),
            "add an egress rule for TCP 443 (to 0.0.0.0/0, or to the VPC endpoints' security group)",
        )
    }
}

fn allows_443(rule: &IpPermission) -> bool {
    let protocol = rule.ip_protocol().unwrap_or_default();
    let port_ok = match (rule.from_port(), rule.to_port()) {
        (Some(from), Some(to)) => from <= 443 && 443 <= to || from == -1,
        _ => true,
    };
    (protocol == "-1" || (protocol == "tcp" && port_ok))
        && (!rule.ip_ranges().is_empty()
            || !rule.ipv6_ranges().is_empty()
            || !rule.prefix_list_ids().is_empty()
            || !rule.user_id_group_pairs().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::IpRange;

    #[test]
    fn egress_rules_that_cover_443() {
        let anywhere = IpRange::builder().cidr_ip("0.0.0.0/0").build();
        let rule = |protocol: &str, from: i32, to: i32| {
            IpPermission::builder()
                .ip_protocol(protocol)
                .from_port(from)
                .to_port(to)
                .ip_ranges(anywhere.clone())
                .build()
        };
        assert!(allows_443(&rule("-1", -1, -1)));
        assert!(allows_443(&rule("tcp", 443, 443)));
        assert!(allows_443(&rule("tcp", 0, 65535)));
        assert!(!allows_443(&rule("tcp", 22, 22)));
        assert!(!allows_443(&rule("udp", 443, 443)));
        let nowhere = IpPermission::builder().ip_protocol("-1").build();
        assert!(!allows_443(&nowhere));
    }
}
