//! Where init puts jumphosts: subnets with a way out, and whether they need a public IP.
//!
//! A jumphost must pull its image and reach Session Manager. In a subnet routed through
//! a NAT gateway a private address is enough; in one routed only through an internet
//! gateway (every default-VPC subnet) the task needs a public IP, which is safe for
//! init's jumphosts: exec mode runs no server, and init's security group lets nothing
//! in. A subnet with no way out works only through VPC endpoints: `ssmmessages` for the
//! agent, `logs` for awslogs, and `ecr.api`, `ecr.dkr` and `s3` for an image from the
//! region's ECR (a public image cannot be pulled there at all). A default route to
//! something else (a transit gateway, a NAT instance) is taken to lead out, with a note.
//! RunTask takes at most 16 subnets, so a larger VPC gets 16, spread over its zones.

use std::collections::BTreeMap;

use crate::arn::EcrRepository;
use crate::aws::ApiError;
use crate::exit::UsageError;
use crate::plan::MAX_SUBNETS;
use crate::vpc::{self, WayOut};

/// A subnet init could use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub zone: String,
    pub way: WayOut,
}

/// The subnets init writes to jump.toml, and what it says about them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    pub subnets: Vec<String>,
    pub public: bool,
    pub notes: Vec<String>,
}

/// Whether a subnet without a way out would still work: what the VPC's endpoints and
/// the image allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// Every endpoint a jumphost needs, and an image from the region's ECR.
    Suffice,
    /// What is missing, said the way the refusal says it.
    Lack(String),
}

/// Decides the network from the candidates. `explicit`: the user named the subnets, so
/// all of them are used (or init refuses); otherwise init picks.
pub fn choose(
    candidates: &[Candidate],
    explicit: bool,
    vpc: &str,
    endpoints: &Endpoints,
) -> Result<Network, UsageError> {
    let endpoints_suffice = *endpoints == Endpoints::Suffice;
    let stranded: Vec<&str> = candidates
        .iter()
        .filter(|c| c.way == WayOut::None && !endpoints_suffice)
        .map(|c| c.id.as_str())
        .collect();
    let lack = match endpoints {
        Endpoints::Lack(what) => what.as_str(),
        Endpoints::Suffice => "",
    };
    let no_way = |ids: &[&str]| {
        format!(
            "{} {} no route out of VPC {vpc} (no NAT gateway or internet gateway route), and {lack}: \
             a jumphost there could neither pull its image nor be reached through ECS Exec",
            if ids.len() == 1 { "subnet" } else { "subnets" },
            ids.join(", ") + if ids.len() == 1 { " has" } else { " have" },
        )
    };
    if explicit {
        if !stranded.is_empty() {
            return Err(UsageError(format!(
                "{}; route them through a NAT gateway, add VPC endpoints, or give --subnets \
                 that have a way out",
                no_way(&stranded)
            )));
        }
        let public = candidates.iter().any(|c| c.way == WayOut::InternetGateway);
        let mut notes = Vec::new();
        if public {
            notes.push(public_note(candidates, WayOut::InternetGateway));
        }
        notes.extend(elsewhere_note(candidates));
        return Ok(Network {
            subnets: candidates.iter().map(|c| c.id.clone()).collect(),
            public,
            notes,
        });
    }
    let of =
        |way: WayOut| -> Vec<&Candidate> { candidates.iter().filter(|c| c.way == way).collect() };
    let private = |way: WayOut| matches!(way, WayOut::Nat | WayOut::Elsewhere);
    let routed: Vec<&Candidate> = candidates.iter().filter(|c| private(c.way)).collect();
    let (chosen, public) = match (routed, of(WayOut::InternetGateway)) {
        (routed, _) if !routed.is_empty() => (routed, false),
        (_, igw) if !igw.is_empty() => (igw, true),
        _ if endpoints_suffice => (of(WayOut::None), false),
        _ => {
            let all: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
            return Err(UsageError(format!(
                "{}; route a subnet through a NAT gateway or add VPC endpoints, or choose \
                 another VPC with --vpc",
                no_way(&all)
            )));
        }
    };
    let mut notes = Vec::new();
    if public {
        notes.push(public_note(candidates, WayOut::InternetGateway));
    }
    let chosen_ones: Vec<Candidate> = chosen.iter().map(|c| (*c).clone()).collect();
    notes.extend(elsewhere_note(&chosen_ones));
    let left_out = candidates.len() - chosen.len();
    if left_out > 0 {
        notes.push(format!(
            "left out {left_out} subnet(s) of {vpc} that {}",
            if public {
                "have no way out"
            } else {
                "have no NAT gateway route (they would need a public IP)"
            }
        ));
    }
    let spread = spread(&chosen, MAX_SUBNETS);
    if spread.len() < chosen.len() {
        notes.push(format!(
            "{vpc} has {} usable subnets; jump.toml gets {MAX_SUBNETS} of them, spread over \
             their availability zones (RunTask takes at most {MAX_SUBNETS}); pass --subnets to \
             choose",
            chosen.len()
        ));
    }
    Ok(Network {
        subnets: spread,
        public,
        notes,
    })
}

fn public_note(candidates: &[Candidate], way: WayOut) -> String {
    let ids: Vec<&str> = candidates
        .iter()
        .filter(|c| c.way == way)
        .map(|c| c.id.as_str())
        .collect();
    format!(
        "{} route out only through an internet gateway, so jumphosts get a public IP \
         (public = true): safe here, since exec mode runs no server and init's security group \
         lets nothing in",
        ids.join(", ")
    )
}

fn elsewhere_note(candidates: &[Candidate]) -> Option<String> {
    let ids: Vec<&str> = candidates
        .iter()
        .filter(|c| c.way == WayOut::Elsewhere)
        .map(|c| c.id.as_str())
        .collect();
    (!ids.is_empty()).then(|| {
        format!(
            "{} route 0.0.0.0/0 to something other than a NAT or internet gateway (a transit \
             gateway, a NAT instance): init takes it to reach the internet; `jump doctor` \
             cannot tell either",
            ids.join(", ")
        )
    })
}

/// At most `max` subnets, taken round-robin over their zones, sorted by id.
fn spread(chosen: &[&Candidate], max: usize) -> Vec<String> {
    let mut by_zone: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in chosen {
        by_zone
            .entry(c.zone.as_str())
            .or_default()
            .push(c.id.as_str());
    }
    by_zone.values_mut().for_each(|ids| ids.sort());
    let mut picked = Vec::new();
    let mut round = 0;
    while picked.len() < max.min(chosen.len()) {
        for ids in by_zone.values() {
            if let Some(id) = ids.get(round) {
                if picked.len() < max {
                    picked.push(id.to_string());
                }
            }
        }
        round += 1;
    }
    picked.sort();
    picked
}

/// The candidates: `subnets` if given (checked to be in `vpc`), else every subnet of
/// `vpc`, each with its way out.
pub async fn candidates(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    subnets: Option<&[String]>,
) -> anyhow::Result<Vec<Candidate>> {
    let mut found = Vec::new();
    let mut token = None;
    loop {
        let request = match subnets {
            Some(ids) => ec2.describe_subnets().set_subnet_ids(Some(ids.to_vec())),
            None => ec2.describe_subnets().filters(vpc::filter("vpc-id", vpc)),
        };
        let out = request
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ec2:DescribeSubnets", e))?;
        for subnet in out.subnets() {
            let id = subnet.subnet_id().unwrap_or_default();
            let other = subnet.vpc_id().unwrap_or_default();
            if other != vpc {
                return Err(UsageError(format!(
                    "subnet {id} is in {other}, not in {vpc}: give --subnets of {vpc}, or --vpc {other}"
                ))
                .into());
            }
            found.push(Candidate {
                id: id.to_string(),
                zone: subnet.availability_zone().unwrap_or_default().to_string(),
                way: vpc::way_out(ec2, id, vpc).await?,
            });
        }
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => break,
        }
    }
    if found.is_empty() {
        return Err(UsageError(format!(
            "VPC {vpc} has no subnets: create one, or choose another VPC with --vpc"
        ))
        .into());
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// Whether `vpc`'s endpoints (and `image`) would carry a jumphost in a subnet without a
/// way out.
pub async fn endpoints(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    region: &str,
    image: &str,
) -> Result<Endpoints, ApiError> {
    let have = vpc::endpoints(ec2, vpc).await?;
    Ok(judge_endpoints(&have, region, image))
}

fn judge_endpoints(have: &[String], region: &str, image: &str) -> Endpoints {
    let missing: Vec<String> = ["ssmmessages", "logs", "ecr.api", "ecr.dkr", "s3"]
        .iter()
        .map(|name| vpc::endpoint_service(region, name))
        .filter(|service| !have.contains(service))
        .collect();
    let from_ecr = EcrRepository::of_image(image).is_some_and(|repo| repo.region == region);
    match (missing.is_empty(), from_ecr) {
        (true, true) => Endpoints::Suffice,
        (true, false) => Endpoints::Lack(format!(
            "the image {image} is not in this region's ECR, which is all VPC endpoints can reach"
        )),
        (false, _) => Endpoints::Lack(format!("the VPC has no {} endpoint", missing.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Endpoints {
        Endpoints::Lack("the VPC has no ssmmessages endpoint".into())
    }

    #[test]
    fn endpoints_carry_a_jumphost_only_with_all_five_and_an_image_from_the_region_s_ecr() {
        let region = "eu-west-1";
        let all: Vec<String> = ["ssmmessages", "logs", "ecr.api", "ecr.dkr", "s3"]
            .iter()
            .map(|n| vpc::endpoint_service(region, n))
            .collect();
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumphost:1";
        assert_eq!(judge_endpoints(&all, region, ecr), Endpoints::Suffice);
        let public = judge_endpoints(&all, region, "public.ecr.aws/amazonlinux/amazonlinux:2023");
        assert!(
            matches!(public, Endpoints::Lack(ref why) if why.contains("not in this region's ECR"))
        );
        let without_logs = judge_endpoints(&all[..1], region, ecr);
        assert!(matches!(without_logs, Endpoints::Lack(ref why) if why.contains("logs")));
    }

    #[test]
    fn a_route_to_a_transit_gateway_counts_as_a_way_out_with_a_note() {
        let hub = [subnet("subnet-a", "a", WayOut::Elsewhere)];
        let chosen = choose(&hub, false, "vpc-1", &none()).unwrap();
        assert_eq!(chosen.subnets, ["subnet-a"]);
        assert!(!chosen.public);
        assert!(
            chosen.notes.iter().any(|n| n.contains("transit")),
            "{:?}",
            chosen.notes
        );
    }

    fn subnet(id: &str, zone: &str, way: WayOut) -> Candidate {
        Candidate {
            id: id.into(),
            zone: zone.into(),
            way,
        }
    }

    #[test]
    fn a_default_vpc_gets_public_ips_because_its_only_way_out_is_an_internet_gateway() {
        let igw = [
            subnet("subnet-a", "a", WayOut::InternetGateway),
            subnet("subnet-b", "b", WayOut::InternetGateway),
        ];
        let chosen = choose(&igw, false, "vpc-1", &none()).unwrap();
        assert_eq!(chosen.subnets, ["subnet-a", "subnet-b"]);
        assert!(chosen.public);
        assert!(
            chosen.notes[0].contains("public = true"),
            "{:?}",
            chosen.notes
        );
    }

    #[test]
    fn nat_subnets_are_preferred_and_stay_private() {
        let mixed = [
            subnet("subnet-a", "a", WayOut::InternetGateway),
            subnet("subnet-b", "a", WayOut::Nat),
            subnet("subnet-c", "b", WayOut::None),
        ];
        let chosen = choose(&mixed, false, "vpc-1", &none()).unwrap();
        assert_eq!(chosen.subnets, ["subnet-b"]);
        assert!(!chosen.public);
        assert!(chosen.notes.iter().any(|n| n.contains("left out 2")));
    }

    #[test]
    fn no_way_out_is_refused_with_the_reason_unless_an_endpoint_reaches_session_manager() {
        let isolated = [subnet("subnet-a", "a", WayOut::None)];
        let err = choose(&isolated, false, "vpc-1", &none()).unwrap_err().0;
        assert!(err.contains("no route out") && err.contains("NAT"), "{err}");
        let err = choose(&isolated, true, "vpc-1", &none()).unwrap_err().0;
        assert!(err.contains("subnet-a has no route out"), "{err}");
        let via_endpoint = choose(&isolated, false, "vpc-1", &Endpoints::Suffice).unwrap();
        assert_eq!(via_endpoint.subnets, ["subnet-a"]);
        assert!(!via_endpoint.public);
    }

    #[test]
    fn named_subnets_are_all_used_and_public_if_any_needs_it() {
        let named = [
            subnet("subnet-a", "a", WayOut::Nat),
            subnet("subnet-b", "b", WayOut::InternetGateway),
        ];
        let chosen = choose(&named, true, "vpc-1", &none()).unwrap();
        assert_eq!(chosen.subnets, ["subnet-a", "subnet-b"]);
        assert!(chosen.public);
    }

    #[test]
    fn at_most_sixteen_subnets_spread_over_zones() {
        let many: Vec<Candidate> = (0..30)
            .map(|i| {
                subnet(
                    &format!("subnet-{i:02}"),
                    if i < 25 { "a" } else { "b" },
                    WayOut::Nat,
                )
            })
            .collect();
        let chosen = choose(&many, false, "vpc-1", &none()).unwrap();
        assert_eq!(chosen.subnets.len(), MAX_SUBNETS);
        let in_b = chosen
            .subnets
            .iter()
            .filter(|s| s.as_str() >= "subnet-25")
            .count();
        assert_eq!(
            in_b, 5,
            "every subnet of the smaller zone is kept: {:?}",
            chosen.subnets
        );
        assert!(chosen.notes.iter().any(|n| n.contains("16 of them")));
    }
}
