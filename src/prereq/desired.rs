//! What should exist once `jump init` has run: names, documents and settings, decided
//! from the flags and from the few facts only AWS knows (partition and account, the
//! default VPC and its subnets, the ARN behind a KMS alias).
//!
//! Everything else in init is a comparison against this, so it is plain data, built by
//! a pure function that the unit tests can call without AWS.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::vpc::filter;
use serde_json::Value;

use super::input::Input;
use super::network::{self, Network};
use super::policy::{self, Template, TemplateError};
use crate::arn::{key_arn, Account, EcrRepository};
use crate::aws::{ApiError, Clients};
use crate::exit::UsageError;

/// Inline policy names init manages (and only these: other inline policies are left alone).
pub const EXECUTION_POLICY: &str = "jump-execution";
pub const ECR_POLICY: &str = "jump-ecr-pull";
pub const EXEC_POLICY: &str = "jump-ecs-exec";
pub const LOGGING_POLICY: &str = "jump-session-logging";
pub const KMS_POLICY: &str = "jump-session-kms";
pub const REAPER_POLICY: &str = "jump-reaper";
pub const REAPER_SCHEDULER_POLICY: &str = "jump-reaper-run";

const EXECUTION_ROLE_DESCRIPTION: &str =
    "jump: lets ECS pull the jumphost image and write its log stream";
const TASK_ROLE_DESCRIPTION: &str = "jump: the jumphost's own identity; ECS Exec channels only";
const REAPER_ROLE_DESCRIPTION: &str =
    "jump: the scheduled reaper's identity; lists, describes and stops the cluster's tasks only";
const REAPER_SCHEDULER_DESCRIPTION: &str =
    "jump: lets EventBridge Scheduler start the reaper task in the cluster, nothing else";

/// The names of everything init manages for one `--name`; `--destroy` needs no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub init_name: String,
    pub cluster: String,
    pub execution_role: String,
    pub task_role: String,
    /// The jumphosts' output.
    pub log_group: String,
    /// ECS Exec transcripts (with `--session-logging`), apart from `log_group` because
    /// every jump user may read that one, and transcripts hold everything typed.
    pub exec_log_group: String,
    pub security_group: String,
    /// The EventBridge rule that alerts on ECS Exec sessions (`--alerts`).
    pub alert_rule: String,
    /// The reaper task's role, the role its schedule starts it with, its task-definition
    /// family and the schedule (`--reaper`).
    pub reaper_role: String,
    pub reaper_scheduler_role: String,
    pub reaper_family: String,
    pub reaper_schedule: String,
}

impl Names {
    pub fn new(input: &Input) -> Names {
        let name = &input.name;
        Names {
            init_name: name.clone(),
            cluster: input.cluster.clone(),
            execution_role: format!("{name}-task-execution"),
            task_role: format!("{name}-task"),
            log_group: format!("/{name}/sessions"),
            exec_log_group: format!("/{name}/exec"),
            security_group: format!("{name}-jumphost"),
            alert_rule: format!("{name}-exec-alert"),
            reaper_role: format!("{name}-reaper"),
            reaper_scheduler_role: format!("{name}-reaper-runs"),
            reaper_family: format!("{name}-reaper"),
            reaper_schedule: format!("{name}-reaper"),
        }
    }
}

/// The ECS Exec settings of a cluster that init manages. Neither set means ECS's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSettings {
    /// Transcripts go to this log group (`logging = OVERRIDE`).
    pub log_group: Option<String>,
    /// Sessions are encrypted with this KMS key.
    pub kms_key: Option<String>,
}

impl ExecSettings {
    pub fn is_default(&self) -> bool {
        self.log_group.is_none() && self.kms_key.is_none()
    }
}

impl fmt::Display for ExecSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            self.log_group
                .as_ref()
                .map(|g| format!("transcripts to {g}")),
            self.kms_key.as_ref().map(|k| format!("encrypted with {k}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            write!(f, "ECS defaults")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

/// A role as init wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpec {
    pub name: String,
    pub description: &'static str,
    /// Who may assume it, for the plan (`ECS tasks`), and the template its trust is from.
    pub assumed_by: &'static str,
    pub trust_file: &'static str,
    pub trust: Value,
    /// Every inline policy init manages on this role, wanted or not with these flags.
    pub policies: Vec<PolicySpec>,
}

/// One inline policy init manages.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub name: &'static str,
    /// The template under `templates/` it comes from.
    pub file: &'static str,
    /// `None`: it must not exist (e.g. the logging policy without `--session-logging`).
    pub document: Option<Value>,
}

impl PolicySpec {
    fn new(
        name: &'static str,
        template: Template,
        wanted: bool,
        values: &BTreeMap<&str, String>,
    ) -> Result<PolicySpec, TemplateError> {
        Ok(PolicySpec {
            name,
            file: template.file,
            document: if wanted {
                Some(template.render(values)?)
            } else {
                None
            },
        })
    }
}

/// Everything init should leave in place.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub names: Names,
    pub account: Account,
    pub vpc: String,
    pub network: Network,
    pub retention_days: i32,
    pub session_logging: bool,
    pub exec: ExecSettings,
    pub execution_role: RoleSpec,
    pub task_role: RoleSpec,
    pub image: String,
    pub alerts: Option<AlertSpec>,
    pub reaper: Option<ReaperSpec>,
    pub config: PathBuf,
}

/// The scheduled reaper (`--reaper`): a Fargate task running `jump gc` in the cluster,
/// started by an EventBridge Scheduler schedule at a fixed rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaperSpec {
    pub every: std::time::Duration,
    pub image: String,
    /// May list, describe and stop the cluster's tasks, and nothing else.
    pub task_role: RoleSpec,
    /// Assumed by Scheduler: may start the reaper's task definition in the cluster and
    /// pass it its two roles.
    pub scheduler_role: RoleSpec,
}

impl ReaperSpec {
    /// EventBridge Scheduler's expression for `every` (whole minutes, checked by input).
    pub fn expression(&self) -> String {
        match self.every.as_secs() / 60 {
            1 => "rate(1 minute)".to_string(),
            minutes => format!("rate({minutes} minutes)"),
        }
    }
}

/// The ExecuteCommand alert: an EventBridge rule on CloudTrail's record of every ECS Exec
/// session in the cluster, with the SNS topic as its one target.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSpec {
    pub topic: String,
    pub pattern: Value,
}

/// The target id init gives the topic on its rule.
pub const ALERT_TARGET: &str = "jump-alerts";

impl AlertSpec {
    pub fn new(topic: &str, cluster: &str) -> AlertSpec {
        // Callers name the cluster by name or by ARN; a suffix match takes the ARN.
        let pattern = serde_json::json!({
            "source": ["aws.ecs"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": ["ecs.amazonaws.com"],
                "eventName": ["ExecuteCommand"],
                "requestParameters": {
                    "cluster": [cluster, { "suffix": format!(":cluster/{cluster}") }],
                },
            },
        });
        AlertSpec {
            topic: topic.to_string(),
            pattern,
        }
    }
}

impl Desired {
    pub fn new(
        input: &Input,
        account: Account,
        vpc: String,
        network: Network,
        kms_key_arn: Option<String>,
    ) -> Result<Desired, TemplateError> {
        let names = Names::new(input);
        let mut values = BTreeMap::from([
            ("partition", account.partition.clone()),
            ("region", account.region.clone()),
            ("account", account.account.clone()),
            ("log_group", names.log_group.clone()),
            ("exec_log_group", names.exec_log_group.clone()),
        ]);
        if let Some(arn) = &kms_key_arn {
            values.insert("kms_key_arn", arn.clone());
        }
        // Only a private ECR image needs a pull grant, and only on its own repository.
        let repository = EcrRepository::of_image(&input.image);
        if let Some(repository) = &repository {
            values.insert("ecr_repository", repository.arn());
        }
        let trust = policy::TRUST.render(&values)?;
        let execution_role = RoleSpec {
            name: names.execution_role.clone(),
            description: EXECUTION_ROLE_DESCRIPTION,
            assumed_by: "ECS tasks",
            trust_file: policy::TRUST.file,
            trust: trust.clone(),
            policies: vec![
                PolicySpec::new(EXECUTION_POLICY, policy::EXECUTION, true, &values)?,
                PolicySpec::new(
                    ECR_POLICY,
                    policy::EXECUTION_ECR,
                    repository.is_some(),
                    &values,
                )?,
            ],
        };
        let task_role = RoleSpec {
            name: names.task_role.clone(),
            description: TASK_ROLE_DESCRIPTION,
            assumed_by: "ECS tasks",
            trust_file: policy::TRUST.file,
            trust,
            policies: vec![
                PolicySpec::new(EXEC_POLICY, policy::TASK, true, &values)?,
                PolicySpec::new(
                    LOGGING_POLICY,
                    policy::TASK_LOGGING,
                    input.session_logging,
                    &values,
                )?,
                PolicySpec::new(KMS_POLICY, policy::TASK_KMS, kms_key_arn.is_some(), &values)?,
            ],
        };
        let exec = ExecSettings {
            log_group: input.session_logging.then(|| names.exec_log_group.clone()),
            kms_key: kms_key_arn,
        };
        let reaper = match &input.reaper {
            Some(reaper) => {
                values.insert("cluster", names.cluster.clone());
                values.insert("reaper_family", names.reaper_family.clone());
                values.insert("reaper_role", account.role_arn(&names.reaper_role));
                values.insert("execution_role", account.role_arn(&names.execution_role));
                Some(ReaperSpec {
                    every: reaper.every,
                    image: reaper.image.clone(),
                    task_role: RoleSpec {
                        name: names.reaper_role.clone(),
                        description: REAPER_ROLE_DESCRIPTION,
                        assumed_by: "ECS tasks",
                        trust_file: policy::TRUST.file,
                        trust: task_role.trust.clone(),
                        policies: vec![PolicySpec::new(
                            REAPER_POLICY,
                            policy::REAPER_TASK,
                            true,
                            &values,
                        )?],
                    },
                    scheduler_role: RoleSpec {
                        name: names.reaper_scheduler_role.clone(),
                        description: REAPER_SCHEDULER_DESCRIPTION,
                        assumed_by: "EventBridge Scheduler",
                        trust_file: policy::SCHEDULER_TRUST.file,
                        trust: policy::SCHEDULER_TRUST.render(&values)?,
                        policies: vec![PolicySpec::new(
                            REAPER_SCHEDULER_POLICY,
                            policy::REAPER_SCHEDULER,
                            true,
                            &values,
                        )?],
                    },
                })
            }
            None => None,
        };
        Ok(Desired {
            names,
            account,
            vpc,
            network,
            retention_days: input.retention_days,
            session_logging: input.session_logging,
            exec,
            execution_role,
            task_role,
            image: input.image.clone(),
            alerts: input
                .alerts
                .as_deref()
                .map(|topic| AlertSpec::new(topic, &input.cluster)),
            reaper,
            config: input.config.clone(),
        })
    }
}

/// Looks up what only AWS knows and builds the [`Desired`] state.
pub async fn resolve(clients: &Clients, input: &Input) -> anyhow::Result<Desired> {
    if let Some(topic) = &input.alerts {
        // EventBridge delivers to a topic of the rule's own region only.
        let region = topic.split(':').nth(3).unwrap_or_default();
        if region != clients.region {
            return Err(UsageError(format!(
                "--alerts names a topic in {region}, but init works in {}: give a topic of \
                 that region (or --region {region})",
                clients.region
            ))
            .into());
        }
    }
    let account = Account::from_arn(&clients.caller_arn().await?, &clients.region)?;
    let kms_key_arn = match &input.kms_key {
        Some(key) => Some(key_arn(&clients.kms, key).await?),
        None => None,
    };
    let vpc = match &input.vpc {
        Some(vpc) => {
            check_vpc(&clients.ec2, vpc).await?;
            vpc.clone()
        }
        None => default_vpc(&clients.ec2, &clients.region).await?,
    };
    let candidates = network::candidates(&clients.ec2, &vpc, input.subnets.as_deref()).await?;
    let endpoints = network::endpoints(&clients.ec2, &vpc, &clients.region, &input.image).await?;
    let network = network::choose(&candidates, input.subnets.is_some(), &vpc, &endpoints)?;
    Ok(Desired::new(input, account, vpc, network, kms_key_arn)?)
}

async fn check_vpc(ec2: &aws_sdk_ec2::Client, vpc: &str) -> anyhow::Result<()> {
    let out = ec2
        .describe_vpcs()
        .vpc_ids(vpc)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ec2:DescribeVpcs", e))?;
    if out.vpcs().is_empty() {
        return Err(UsageError(format!("--vpc {vpc}: there is no such VPC")).into());
    }
    Ok(())
}

async fn default_vpc(ec2: &aws_sdk_ec2::Client, region: &str) -> anyhow::Result<String> {
    let out = ec2
        .describe_vpcs()
        .filters(filter("isDefault", "true"))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ec2:DescribeVpcs", e))?;
    out.vpcs()
        .iter()
        .find_map(|v| v.vpc_id())
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow::Error::from(UsageError(format!(
                "there is no default VPC in {region}: pass --vpc vpc-… (and --subnets to choose \
                 its subnets)"
            )))
        })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn input(extra: impl FnOnce(&mut Input)) -> Input {
        let mut input = Input {
            name: "jump".into(),
            cluster: "jump".into(),
            vpc: None,
            subnets: None,
            retention_days: 30,
            session_logging: false,
            kms_key: None,
            image: "img".into(),
            alerts: None,
            reaper: None,
            config: PathBuf::from("jump.toml"),
            existing_config: None,
        };
        extra(&mut input);
        input
    }

    pub fn account() -> Account {
        Account::from_arn("arn:aws:sts::123456789012:user/moto", "eu-west-1").unwrap()
    }

    pub fn desired(extra: impl FnOnce(&mut Input), kms: Option<&str>) -> Desired {
        Desired::new(
            &input(extra),
            account(),
            "vpc-0a".into(),
            Network {
                subnets: vec!["subnet-0a".into(), "subnet-0b".into()],
                public: false,
                notes: Vec::new(),
            },
            kms.map(str::to_string),
        )
        .unwrap()
    }

    #[test]
    fn only_a_private_ecr_image_gets_a_pull_grant_and_only_on_its_repository() {
        let pulls = |image: &str| -> Option<Value> {
            let d = desired(|i| i.image = image.into(), None);
            let ecr = d
                .execution_role
                .policies
                .iter()
                .find(|p| p.name == ECR_POLICY);
            ecr.expect("the ECR policy is always considered")
                .document
                .clone()
        };
        assert_eq!(pulls("public.ecr.aws/amazonlinux/amazonlinux:2023"), None);
        assert_eq!(pulls("debian:bookworm-slim"), None);
        let document = pulls("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/jumphost:7")
            .expect("a grant for an ECR image");
        let statements = document["Statement"].as_array().unwrap();
        assert_eq!(statements[0]["Action"], "ecr:GetAuthorizationToken");
        assert_eq!(
            statements[1]["Resource"],
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/jumphost"
        );
        let base = desired(|_| {}, None);
        let text = base.execution_role.policies[0]
            .document
            .as_ref()
            .unwrap()
            .to_string();
        assert!(!text.contains("ecr:"), "{text}");
    }

    #[test]
    fn names_follow_the_prefix() {
        let names = Names::new(&input(|i| i.name = "ops".into()));
        assert_eq!(names.execution_role, "ops-task-execution");
        assert_eq!(names.task_role, "ops-task");
        assert_eq!(names.log_group, "/ops/sessions");
        assert_eq!(names.exec_log_group, "/ops/exec");
        assert_eq!(names.security_group, "ops-jumphost");
        assert_eq!(names.cluster, "jump");
    }

    #[test]
    fn flags_decide_the_task_role_policies_and_exec_settings() {
        let plain = desired(|_| {}, None);
        let wanted = |d: &Desired| -> Vec<&'static str> {
            d.task_role
                .policies
                .iter()
                .filter(|p| p.document.is_some())
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(wanted(&plain), vec![EXEC_POLICY]);
        assert!(plain.exec.is_default());
        assert_eq!(plain.execution_role.policies[0].name, EXECUTION_POLICY);
        let expected_task: Value =
            serde_json::from_str(include_str!("../../templates/task-role-policy.json")).unwrap();
        assert_eq!(
            plain.task_role.policies[0].document.as_ref(),
            Some(&expected_task)
        );

        let key = "arn:aws:kms:eu-west-1:123456789012:key/k";
        let full = desired(|i| i.session_logging = true, Some(key));
        assert_eq!(wanted(&full), vec![EXEC_POLICY, LOGGING_POLICY, KMS_POLICY]);
        assert_eq!(full.exec.log_group.as_deref(), Some("/jump/exec"));
        assert_eq!(full.exec.kms_key.as_deref(), Some(key));
        assert_eq!(
            full.exec.to_string(),
            format!("transcripts to /jump/exec, encrypted with {key}")
        );
        assert_eq!(plain.exec.to_string(), "ECS defaults");
    }
}
