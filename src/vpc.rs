//! What a subnet lets a task reach: the one reading of route tables and VPC endpoints.
//!
//! A Fargate task pulls its image and reaches Session Manager over the network of its
//! subnet. It gets out through a NAT gateway route, or through an internet gateway route
//! when it has a public IP (an internet gateway does nothing for a private address), or
//! not at all; then only interface VPC endpoints reach AWS services. Default-VPC subnets
//! route through an internet gateway only. `jump doctor` judges a configuration by this,
//! and `jump init` picks subnets and `public` by it.

use aws_sdk_ec2::types::{Filter, RouteState, RouteTable};

use crate::aws::ApiError;

/// How traffic to the internet leaves a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WayOut {
    /// A NAT gateway route: works for private addresses.
    Nat,
    /// An internet gateway route only: works for tasks with a public IP.
    InternetGateway,
    /// A default route to something else (a transit gateway, a NAT instance, a peering
    /// or a firewall): it may well reach the internet, but jump cannot tell from here.
    Elsewhere,
    /// No usable default route (VPC endpoints are the only way to AWS).
    None,
}

impl WayOut {
    pub fn of(table: Option<&RouteTable>) -> WayOut {
        let default_routes = table
            .into_iter()
            .flat_map(|t| t.routes())
            .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .filter(|r| r.state() != Some(&RouteState::Blackhole));
        let mut way = WayOut::None;
        for route in default_routes {
            if route.nat_gateway_id().is_some() {
                return WayOut::Nat;
            }
            way = match route.gateway_id() {
                Some(g) if g.starts_with("igw-") => WayOut::InternetGateway,
                Some("local") => way,
                _ if way == WayOut::None => WayOut::Elsewhere,
                _ => way,
            };
        }
        way
    }

    /// Whether a task with (or without) a public IP reaches the internet this way, as
    /// far as the route table tells ([`WayOut::Elsewhere`] is given the benefit of the
    /// doubt; callers say they could not tell).
    pub fn reaches_internet(self, public_ip: bool) -> bool {
        match self {
            WayOut::Nat | WayOut::Elsewhere => true,
            WayOut::InternetGateway => public_ip,
            WayOut::None => false,
        }
    }
}

pub fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// How `subnet` (of `vpc`) reaches the internet: its own route table, else the VPC's
/// main one.
pub async fn way_out(
    ec2: &aws_sdk_ec2::Client,
    subnet: &str,
    vpc: &str,
) -> Result<WayOut, ApiError> {
    for filters in [
        vec![filter("association.subnet-id", subnet)],
        vec![filter("vpc-id", vpc), filter("association.main", "true")],
    ] {
        let out = ec2
            .describe_route_tables()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ec2:DescribeRouteTables", e))?;
        if let Some(table) = out.route_tables().first() {
            return Ok(WayOut::of(Some(table)));
        }
    }
    Ok(WayOut::None)
}

/// The service names of the VPC's available endpoints (`com.amazonaws.<region>.<name>`).
pub async fn endpoints(ec2: &aws_sdk_ec2::Client, vpc: &str) -> Result<Vec<String>, ApiError> {
    let out = ec2
        .describe_vpc_endpoints()
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ec2:DescribeVpcEndpoints", e))?;
    Ok(out
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            e.state()
                .is_none_or(|s| s.as_str().eq_ignore_ascii_case("available"))
        })
        .filter_map(|e| e.service_name().map(str::to_string))
        .collect())
}

/// An endpoint's service name in `region`: `com.amazonaws.<region>.<name>`.
pub fn endpoint_service(region: &str, name: &str) -> String {
    format!("com.amazonaws.{region}.{name}")
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::Route;

    use super::*;

    fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable::builder().set_routes(Some(routes)).build()
    }

    #[test]
    fn internet_means_nat_or_gateway_with_public_ip() {
        let igw = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id("igw-1")
            .build();
        let nat = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .nat_gateway_id("nat-1")
            .build();
        let local = Route::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .build();
        let nat_subnet = WayOut::of(Some(&table(vec![local.clone(), nat])));
        assert_eq!(nat_subnet, WayOut::Nat);
        assert!(nat_subnet.reaches_internet(false));
        let igw_subnet = WayOut::of(Some(&table(vec![igw])));
        assert_eq!(igw_subnet, WayOut::InternetGateway);
        assert!(igw_subnet.reaches_internet(true));
        assert!(!igw_subnet.reaches_internet(false));
        let isolated = WayOut::of(Some(&table(vec![local.clone()])));
        assert_eq!(isolated, WayOut::None);
        assert!(!isolated.reaches_internet(true));
        assert_eq!(WayOut::of(None), WayOut::None);
        let dead_nat = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .nat_gateway_id("nat-2")
            .state(RouteState::Blackhole)
            .build();
        assert_eq!(WayOut::of(Some(&table(vec![dead_nat]))), WayOut::None);
        let transit = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .transit_gateway_id("tgw-1")
            .build();
        let hub = WayOut::of(Some(&table(vec![local, transit])));
        assert_eq!(hub, WayOut::Elsewhere);
        assert!(hub.reaches_internet(false));
    }
}
