//! The flags of `jump init`, checked before anything touches AWS.
//!
//! Every name init derives from `--name` has to be acceptable to several services at
//! once (IAM roles, a CloudWatch Logs group, a security group, and by default the ECS
//! cluster), so a bad one is refused here with the rule that covers all of them, rather
//! than by whichever API call happens to come first, halfway through creating things.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config_file::{written_by_init, HEADER};
use crate::cli::InitArgs;
use crate::exit::UsageError;
use crate::plan::{Layers, MAX_SUBNETS};

/// The retention periods (days) CloudWatch Logs accepts; PutRetentionPolicy refuses others.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The longest suffix init appends to `--name` for an IAM role.
const LONGEST_ROLE_SUFFIX: &str = "-task-execution";

/// IAM's limit on role names.
const MAX_ROLE_NAME: usize = 64;

/// ECS's limit on cluster names.
const MAX_CLUSTER_NAME: usize = 255;

/// The image written to jump.toml without `--image`: exec mode needs nothing but `sh`.
pub const DEFAULT_IMAGE: &str = "public.ecr.aws/amazonlinux/amazonlinux:2023";

/// How often the reaper may run: EventBridge Scheduler's rate() goes down to a minute,
/// but a reaper more eager than this only costs Fargate starts.
const REAPER_EVERY: (Duration, Duration) =
    (Duration::from_secs(5 * 60), Duration::from_secs(24 * 3600));

/// The scheduled reaper: how often, and the image whose entrypoint is jump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaperInput {
    pub every: Duration,
    pub image: String,
}

/// What `jump init` was asked to do, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub name: String,
    pub cluster: String,
    pub vpc: Option<String>,
    /// Sorted, without duplicates.
    pub subnets: Option<Vec<String>>,
    pub retention_days: i32,
    pub session_logging: bool,
    pub kms_key: Option<String>,
    pub image: String,
    /// The SNS topic for the ExecuteCommand alert (`--alerts`).
    pub alerts: Option<String>,
    /// The scheduled reaper (`--reaper`).
    pub reaper: Option<ReaperInput>,
    pub config: PathBuf,
    /// The text of the config file as it is now, if there is one.
    pub existing_config: Option<String>,
}

impl Input {
    /// Validates the flags and reads the existing config file (for its `cluster`).
    pub fn from_args(args: &InitArgs) -> anyhow::Result<Input> {
        check_retention(args.log_retention_days)?;
        check_name(&args.name)?;
        let existing_config = read_existing(&args.config)?;
        if !args.destroy {
            check_config_dir(&args.config)?;
            if let Some(text) = &existing_config {
                check_ours(text, &args.config, args.force)?;
            }
        }
        // The cluster an earlier init (or the user) put in jump.toml is the one to keep.
        let from_file = match &existing_config {
            Some(text) => {
                let mut layers = Layers::default();
                layers.apply_toml(text, &args.config)?;
                layers.cluster().ok()
            }
            None => None,
        };
        let cluster = match args.cluster.clone().or(from_file) {
            Some(cluster) => cluster_name(&cluster)?,
            None => args.name.clone(),
        };
        let vpc = args
            .vpc
            .as_deref()
            .map(|v| resource_id(v, "vpc-", "--vpc"))
            .transpose()?;
        let subnets = args.subnets.as_deref().map(subnet_list).transpose()?;
        let kms_key = match args.kms_key.as_deref().map(str::trim) {
            Some("") => return Err(UsageError("--kms-key must not be empty".into()).into()),
            other => other.map(str::to_string),
        };
        let image = match args.image.as_deref().map(str::trim) {
            Some("") => return Err(UsageError("--image must not be empty".into()).into()),
            Some(image) => image.to_string(),
            None => DEFAULT_IMAGE.to_string(),
        };
        let alerts = args.alerts.as_deref().map(topic_arn).transpose()?;
        let reaper = if args.reaper {
            Some(reaper_input(&args.every, args.reaper_image.as_deref())?)
        } else {
            None
        };
        Ok(Input {
            name: args.name.clone(),
            cluster,
            vpc,
            subnets,
            retention_days: args.log_retention_days,
            session_logging: args.session_logging,
            kms_key,
            image,
            alerts,
            reaper,
            config: args.config.clone(),
            existing_config,
        })
    }
}

fn reaper_input(every: &str, image: Option<&str>) -> Result<ReaperInput, UsageError> {
    let every = humantime::parse_duration(every)
        .map_err(|e| UsageError(format!("--every: {e} (e.g. 15m)")))?;
    let (low, high) = REAPER_EVERY;
    if !(low..=high).contains(&every) || every.as_secs() % 60 != 0 {
        return Err(UsageError(
            "--every: whole minutes, from 5m to 24h (EventBridge Scheduler runs it at that rate)"
                .into(),
        ));
    }
    let image = match image.map(str::trim) {
        Some(image) if !image.is_empty() => image.to_string(),
        _ => {
            return Err(UsageError(
                "--reaper-image: an image whose entrypoint is jump (build one from \
                 dockerfiles/reaper and push it where the cluster's tasks pull from)"
                    .into(),
            ))
        }
    };
    Ok(ReaperInput { every, image })
}

/// An SNS topic ARN, `arn:PARTITION:sns:REGION:ACCOUNT:NAME`, checked before any AWS call.
pub fn topic_arn(arn: &str) -> Result<String, UsageError> {
    let arn = arn.trim();
    let parts: Vec<&str> = arn.split(':').collect();
    let name_ok = |name: &str| {
        let base = name.strip_suffix(".fifo").unwrap_or(name);
        (1..=256).contains(&name.len())
            && !base.is_empty()
            && base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && name_ok(parts[5]);
    if ok {
        Ok(arn.to_string())
    } else {
        Err(UsageError(format!(
            "--alerts must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC), not {arn:?}"
        )))
    }
}

pub fn check_retention(days: i32) -> Result<(), UsageError> {
    if RETENTION_DAYS.contains(&days) {
        return Ok(());
    }
    let allowed: Vec<String> = RETENTION_DAYS.iter().map(i32::to_string).collect();
    Err(UsageError(format!(
        "--log-retention-days {days} is not a retention period CloudWatch Logs accepts; use one of {}",
        allowed.join(", ")
    )))
}

/// Letters, digits, `-` and `_` are what IAM role names, log group names, security
/// group names and ECS cluster names all accept.
pub fn check_name(name: &str) -> Result<(), UsageError> {
    let max = MAX_ROLE_NAME - LONGEST_ROLE_SUFFIX.len();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !name.is_empty() && name.len() <= max && name.chars().all(allowed) {
        return Ok(());
    }
    Err(UsageError(format!(
        "--name `{name}` cannot be used: it must be 1 to {max} letters, digits, `-` or `_` \
         (it prefixes the IAM roles, e.g. `{name}{LONGEST_ROLE_SUFFIX}`, which IAM limits to \
         {MAX_ROLE_NAME} characters, the log group and the security group, and names the \
         cluster unless --cluster is given)"
    )))
}

/// A cluster name, from a name or a cluster ARN (jump.toml may hold either).
fn cluster_name(value: &str) -> Result<String, UsageError> {
    let value = value.trim();
    let name = if value.starts_with("arn:") {
        value.rsplit('/').next().unwrap_or_default()
    } else {
        value
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !name.is_empty() && name.len() <= MAX_CLUSTER_NAME && name.chars().all(allowed) {
        return Ok(name.to_string());
    }
    Err(UsageError(format!(
        "`{value}` is not an ECS cluster name: up to {MAX_CLUSTER_NAME} letters, digits, `-` \
         or `_` (from --cluster, or `cluster` in the config file)"
    )))
}

/// An EC2 id such as `vpc-0abc…`: the prefix, then lowercase hex digits.
fn resource_id(value: &str, prefix: &str, flag: &str) -> Result<String, UsageError> {
    let value = value.trim();
    let hex = value.strip_prefix(prefix).unwrap_or_default();
    if !hex.is_empty()
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(value.to_string());
    }
    Err(UsageError(format!(
        "{flag}: `{value}` does not look like `{prefix}` followed by lowercase hex digits"
    )))
}

fn subnet_list(text: &str) -> Result<Vec<String>, UsageError> {
    let mut subnets = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| resource_id(s, "subnet-", "--subnets"))
        .collect::<Result<Vec<_>, _>>()?;
    if subnets.is_empty() {
        return Err(UsageError(
            "--subnets is empty; give subnet ids, comma separated, or leave it out to use \
             every subnet of the VPC"
                .into(),
        ));
    }
    subnets.sort();
    subnets.dedup();
    if subnets.len() > MAX_SUBNETS {
        return Err(UsageError(format!(
            "--subnets names {} subnets; a Fargate task takes at most {MAX_SUBNETS} (one per \
             availability zone is enough)",
            subnets.len()
        )));
    }
    Ok(subnets)
}

/// A jump.toml someone wrote by hand is theirs: init replaces it only with --force.
fn check_ours(text: &str, path: &Path, force: bool) -> Result<(), UsageError> {
    if force || written_by_init(text) {
        return Ok(());
    }
    Err(UsageError(format!(
        "{} exists and jump init did not write it (its first line is not `{HEADER}`), so init \
         leaves it alone: pass --force to replace it (the plan shows what changes first), or \
         --config PATH to write another file",
        path.display()
    )))
}

fn read_existing(path: &Path) -> Result<Option<String>, UsageError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(UsageError(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))),
    }
}

/// Refuses early when the config file could not be written after everything else was made.
fn check_config_dir(path: &Path) -> Result<(), UsageError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(UsageError(format!(
            "--config {}: the directory {} does not exist",
            path.display(),
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_topics_are_sns_topic_arns() {
        let good = "arn:aws:sns:eu-west-1:123456789012:security-alerts";
        assert_eq!(topic_arn(good).unwrap(), good);
        assert!(topic_arn("arn:aws:sns:eu-west-1:123456789012:alerts.fifo").is_ok());
        for bad in [
            "security-alerts",
            "arn:aws:sqs:eu-west-1:123456789012:queue",
            "arn:aws:sns:eu-west-1:1234:short-account",
            "arn:aws:sns:eu-west-1:123456789012:",
            "arn:aws:sns:eu-west-1:123456789012:has space",
            "arn:aws:sns::123456789012:no-region",
        ] {
            let err = topic_arn(bad).unwrap_err().to_string();
            assert!(
                err.contains("--alerts must be an SNS topic ARN"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn retention_must_be_a_cloudwatch_period() {
        for days in RETENTION_DAYS {
            assert!(check_retention(days).is_ok(), "{days}");
        }
        for days in [0, -1, 13, 31, 3654] {
            let err = check_retention(days).unwrap_err().0;
            assert!(
                err.contains(&format!("--log-retention-days {days} ")),
                "{err}"
            );
            assert!(err.contains("1, 3, 5, 7, 14, 30"), "{err}");
            assert!(err.ends_with("3288, 3653"), "{err}");
        }
    }

    #[test]
    fn names_must_suit_every_service() {
        let longest = "a".repeat(49);
        for good in ["jump", "team_a-jump", "J1", longest.as_str()] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(50);
        for bad in ["", "bad name!", "a/b", "a.b", "x+y", "é", too_long.as_str()] {
            let err = check_name(bad).unwrap_err().0;
            assert!(err.contains("--name"), "{err}");
            assert!(err.contains("1 to 49 letters, digits"), "{err}");
        }
    }

    #[test]
    fn clusters_may_be_given_as_arns() {
        assert_eq!(cluster_name("platform").unwrap(), "platform");
        assert_eq!(
            cluster_name("arn:aws:ecs:eu-west-1:1:cluster/platform").unwrap(),
            "platform"
        );
        assert!(cluster_name("not a cluster").is_err());
        assert!(cluster_name("").is_err());
    }

    #[test]
    fn ids_are_checked_and_subnets_sorted() {
        assert_eq!(
            resource_id("vpc-0a1b", "vpc-", "--vpc").unwrap(),
            "vpc-0a1b"
        );
        assert!(resource_id("vpc-", "vpc-", "--vpc").is_err());
        assert!(resource_id("vpc-XYZ", "vpc-", "--vpc").is_err());
        assert!(resource_id("subnet-0a", "vpc-", "--vpc").is_err());
        assert_eq!(
            subnet_list("subnet-0b, subnet-0a,subnet-0b,").unwrap(),
            vec!["subnet-0a", "subnet-0b"]
        );
        assert!(subnet_list(" , ").is_err());
        assert!(subnet_list("subnet-0a,sg-1").is_err());
        let seventeen: Vec<String> = (0..17).map(|i| format!("subnet-{i:x}")).collect();
        let err = subnet_list(&seventeen.join(",")).unwrap_err().0;
        assert!(
            err.contains("17 subnets") && err.contains("at most 16"),
            "{err}"
        );
    }

    #[test]
    fn a_hand_written_config_is_replaced_only_with_force() {
        let path = Path::new("jump.toml");
        let err = check_ours("cluster = \"mine\"\n", path, false)
            .unwrap_err()
            .0;
        assert!(err.contains("--force") && err.contains("--config"), "{err}");
        assert!(check_ours("cluster = \"mine\"\n", path, true).is_ok());
        assert!(check_ours(&format!("{HEADER}\ncluster = \"c\"\n"), path, false).is_ok());
    }
}
