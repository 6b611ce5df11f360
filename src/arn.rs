//! The ARNs jump names in IAM questions and policy documents, built (or, for a KMS key
//! named by alias or id, looked up) in one place.
//!
//! IAM matches a statement's `Resource` against the ARN of what a call touches, so a
//! simulation with the wrong ARN (or none: IAM then uses `*`, which a statement scoped to
//! one log group never matches) answers a different question than the real call asks.

use crate::aws::ApiError;

/// Where the resources live: partition, account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub partition: String,
    pub account: String,
    pub region: String,
}

impl Account {
    /// From any ARN of the account (the caller's `arn:PARTITION:sts::ACCOUNT:…`, a
    /// role's) and the clients' region.
    pub fn from_arn(arn: &str, region: &str) -> anyhow::Result<Account> {
        match arn.split(':').collect::<Vec<_>>().as_slice() {
            ["arn", partition, _, _, account, ..]
                if !partition.is_empty() && !account.is_empty() =>
            {
                Ok(Account {
                    partition: partition.to_string(),
                    account: account.to_string(),
                    region: region.to_string(),
                })
            }
            _ => anyhow::bail!("jump cannot read the account of the ARN {arn}"),
        }
    }

    fn regional(&self, service: &str, rest: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{rest}",
            self.partition, self.region, self.account
        )
    }

    /// The ARN a role created without a path gets.
    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition, self.account)
    }

    pub fn cluster(&self, name: &str) -> String {
        self.regional("ecs", &format!("cluster/{name}"))
    }

    /// A task of `cluster` (a made-up id stands for "any task jump would start").
    pub fn task(&self, cluster: &str, id: &str) -> String {
        self.regional("ecs", &format!("task/{cluster}/{id}"))
    }

    /// A Session Manager session (`ssm:ResumeSession`, `ssm:TerminateSession`).
    pub fn session(&self, id: &str) -> String {
        self.regional("ssm", &format!("session/{id}"))
    }

    /// A family's ARN without a revision: whatever revision is latest when it is used.
    pub fn task_definition_family(&self, family: &str) -> String {
        self.regional("ecs", &format!("task-definition/{family}"))
    }

    pub fn task_definition(&self, family: &str, revision: u32) -> String {
        self.regional("ecs", &format!("task-definition/{family}:{revision}"))
    }

    /// A stream of a log group: what PutLogEvents and GetLogEvents are authorised on.
    pub fn log_stream(&self, group: &str, stream: &str) -> String {
        self.regional("logs", &format!("log-group:{group}:log-stream:{stream}"))
    }

    /// The log group itself (CreateLogGroup).
    pub fn log_group(&self, group: &str) -> String {
        self.regional("logs", &format!("log-group:{group}"))
    }

    /// An AWS-owned SSM document (no account in its ARN).
    pub fn aws_document(&self, name: &str) -> String {
        format!(
            "arn:{}:ssm:{}::document/{name}",
            self.partition, self.region
        )
    }
}

/// `family:REVISION` of a task definition ARN, as ECS's console and CLI name a revision;
/// anything else is returned as it is.
pub fn revision_name(task_definition: &str) -> &str {
    task_definition
        .split_once(":task-definition/")
        .map_or(task_definition, |(_, name)| name)
}

/// The private ECR repository an image reference names
/// (`ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]/PATH[:TAG][@DIGEST]`), or none for an
/// image from any other registry (public ECR included, which needs no permission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRepository {
    pub account: String,
    pub region: String,
    pub name: String,
    partition: &'static str,
}

impl EcrRepository {
    pub fn of_image(image: &str) -> Option<EcrRepository> {
        let (host, path) = image.split_once('/')?;
        let path = path.split('@').next().unwrap_or_default();
        let name = match path.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => name,
            _ => path,
        };
        let labels: Vec<&str> = host.split('.').collect();
        let (account, region, suffix) = match labels.as_slice() {
            [account, "dkr", "ecr" | "ecr-fips", region, suffix @ ..] => (account, region, suffix),
            _ => return None,
        };
        let partition = match suffix {
            ["amazonaws", "com", "cn"] => "aws-cn",
            ["amazonaws", "com"] if region.starts_with("us-gov-") => "aws-us-gov",
            ["amazonaws", "com"] => "aws",
            _ => return None,
        };
        let digits = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (digits && !region.is_empty() && !name.is_empty()).then(|| EcrRepository {
            account: account.to_string(),
            region: region.to_string(),
            name: name.to_string(),
            partition,
        })
    }

    /// What `ecr:BatchGetImage` and `ecr:GetDownloadUrlForLayer` are authorised on.
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:ecr:{}:{}:repository/{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

/// The key's ARN: IAM matches `kms:Decrypt` and `kms:GenerateDataKey` against the key,
/// never against an alias or a bare id.
pub async fn key_arn(kms: &aws_sdk_kms::Client, key: &str) -> anyhow::Result<String> {
    if key.starts_with("arn:") && key.contains(":key/") {
        return Ok(key.to_string());
    }
    let out = kms
        .describe_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("kms:DescribeKey", e))?;
    let arn = out.key_metadata().and_then(|m| m.arn());
    arn.map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("kms:DescribeKey returned no ARN for {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_comes_from_the_caller_arn() {
        let account = Account::from_arn(
            "arn:aws-cn:sts::111122223333:assumed-role/R/s",
            "cn-north-1",
        )
        .unwrap();
        assert_eq!(account.partition, "aws-cn");
        assert_eq!(account.account, "111122223333");
        assert_eq!(account.role_arn("x"), "arn:aws-cn:iam::111122223333:role/x");
        assert!(Account::from_arn("garbage", "r").is_err());
    }

    #[test]
    fn a_private_ecr_image_names_its_repository() {
        let repo = |image: &str| EcrRepository::of_image(image).map(|r| r.arn());
        assert_eq!(
            repo("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/jumphost:1").as_deref(),
            Some("arn:aws:ecr:eu-west-1:123456789012:repository/team/jumphost")
        );
        let digest = format!("@sha256:{}", "a".repeat(64));
        assert_eq!(
            repo(&format!(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/jumphost{digest}"
            ))
            .as_deref(),
            Some("arn:aws:ecr:us-east-1:123456789012:repository/jumphost")
        );
        assert_eq!(
            repo("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/j:2").as_deref(),
            Some("arn:aws-cn:ecr:cn-north-1:123456789012:repository/j")
        );
        assert_eq!(
            repo("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/j").as_deref(),
            Some("arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/j")
        );
        for other in [
            "public.ecr.aws/amazonlinux/amazonlinux:2023",
            "debian:bookworm-slim",
            "jump/jumphost:latest",
            "12345.dkr.ecr.eu-west-1.amazonaws.com/j:1",
            "123456789012.dkr.ecr.eu-west-1.example.com/j:1",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/",
        ] {
            assert_eq!(repo(other), None, "{other}");
        }
    }

    #[test]
    fn a_revision_is_named_family_colon_number() {
        let arn = "arn:aws:ecs:eu-west-1:1:task-definition/api:12";
        assert_eq!(revision_name(arn), "api:12");
        assert_eq!(revision_name("api:12"), "api:12");
    }

    #[test]
    fn arns_follow_each_service_s_format() {
        let a = Account::from_arn("arn:aws:sts::1:user/u", "eu-west-1").unwrap();
        assert_eq!(a.cluster("c"), "arn:aws:ecs:eu-west-1:1:cluster/c");
        assert_eq!(a.task("c", "abc"), "arn:aws:ecs:eu-west-1:1:task/c/abc");
        assert_eq!(
            a.task_definition("jump-jumphost", 3),
            "arn:aws:ecs:eu-west-1:1:task-definition/jump-jumphost:3"
        );
        assert_eq!(
            a.log_stream("/jump/sessions", "jump/x"),
            "arn:aws:logs:eu-west-1:1:log-group:/jump/sessions:log-stream:jump/x"
        );
        assert_eq!(
            a.aws_document("AWS-StartPortForwardingSession"),
            "arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSession"
        );
    }
}
