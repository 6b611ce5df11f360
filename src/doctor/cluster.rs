//! The cluster, and the ECS Exec settings it imposes on every session in it.

use aws_sdk_ecs::types::{ClusterField, ExecuteCommandLogging};

use crate::aws::{describe_cluster, ApiError, Clients};

use super::identity::Caller;
use super::Check;
use crate::policy_sim::Question;

/// What the cluster's ECS Exec configuration asks of sessions.
#[derive(Debug, Default)]
pub struct ExecSettings {
    pub kms_key: Option<String>,
    /// The CloudWatch log group sessions are logged to, if any.
    pub log_group: Option<String>,
    /// The S3 bucket sessions are logged to, if any, and whether uploads must be encrypted.
    pub s3_bucket: Option<String>,
    /// The key prefix session logs get in the bucket, if any.
    pub s3_prefix: Option<String>,
    pub s3_encrypted: bool,
}

/// The cluster exists and is ACTIVE; its exec settings for the checks that follow.
pub async fn cluster(clients: &Clients, name: &str) -> (Check, Option<ExecSettings>) {
    let described = describe_cluster(&clients.ecs, name, &[ClusterField::Configurations]).await;
    let found = match described {
        Ok(found) => found,
        Err(err) => {
            return (
                Check::fail(
                    "cluster",
                    format!("cannot describe cluster {name}: {err}"),
                    "check the name and your ecs:DescribeClusters permission",
                ),
                None,
            )
        }
    };
    let Some(found) = found else {
        return (
            Check::fail(
                "cluster",
                format!("cluster {name} does not exist in {}", clients.region),
                "create it (`jump init` does) or point jump.toml's `cluster` at an existing one",
            ),
            None,
        );
    };
    let status = found.status().unwrap_or("UNKNOWN");
    if status != "ACTIVE" {
        return (
            Check::fail(
                "cluster",
                format!("cluster {name} is {status}"),
                "use an ACTIVE cluster (an INACTIVE one was deleted)",
            ),
            None,
        );
    }
    let exec = found
        .configuration()
        .and_then(|c| c.execute_command_configuration());
    let logging = exec
        .filter(|e| e.logging() == Some(&ExecuteCommandLogging::Override))
        .and_then(|e| e.log_configuration());
    let settings = ExecSettings {
        kms_key: exec.and_then(|e| e.kms_key_id()).map(str::to_string),
        log_group: logging
            .and_then(|l| l.cloud_watch_log_group_name())
            .map(str::to_string),
        s3_bucket: logging.and_then(|l| l.s3_bucket_name()).map(str::to_string),
        s3_prefix: logging
            .and_then(|l| l.s3_key_prefix())
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        s3_encrypted: logging.is_some_and(|l| l.s3_encryption_enabled()),
    };
    (
        Check::pass("cluster", format!("cluster {name} is ACTIVE")),
        Some(settings),
    )
}

/// An encrypting cluster's key exists, is enabled, and the caller may generate data
/// keys with it (the client's half of an encrypted session).
pub async fn kms_key(clients: &Clients, key: &str, principal: &str, caller: &Caller) -> Check {
    let described = clients.kms.describe_key().key_id(key).send().await;
    let metadata = match described {
        Ok(out) => out.key_metadata().cloned(),
        Err(err) => {
            let err = ApiError::from_sdk("kms:DescribeKey", err);
            return Check::fail(
                "exec-kms-key",
                format!(
                    "sessions must be encrypted with KMS key {key}, which cannot be read: {err}"
                ),
                "fix the cluster's executeCommandConfiguration.kmsKeyId or allow kms:DescribeKey",
            );
        }
    };
    let Some(metadata) = metadata else {
        return Check::fail(
            "exec-kms-key",
            format!("KMS key {key} not found"),
            "fix the cluster's executeCommandConfiguration.kmsKeyId",
        );
    };
    if !metadata.enabled() {
        return Check::fail(
            "exec-kms-key",
            format!("KMS key {key} is disabled"),
            "enable the key, or remove it from the cluster's executeCommandConfiguration",
        );
    }
    let arn = metadata.arn().unwrap_or(key);
    let question = Question::new(&["kms:GenerateDataKey"], arn).with_all(&caller.context());
    let mut check = super::identity::may(clients, principal, &[question]).await;
    check.id = "exec-kms-key";
    if check.status == super::Status::Pass {
        check.summary =
            format!("sessions are encrypted with {arn}, and you may generate data keys with it");
    }
    check
}
