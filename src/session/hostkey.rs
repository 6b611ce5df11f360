//! Reading the jumphost's host key from its log stream.
//!
//! The entrypoint generates a fresh host key and prints `jump-host-key: ssh-ed25519 …`.
//! CloudWatch Logs is an IAM-authenticated channel, so the key read here can be pinned
//! with no trust-on-first-use step. The stream appears only once the container has
//! written something, so "stream not found" just means "not yet".

use std::time::{Duration, Instant};

use ssh_key::PublicKey;
use thiserror::Error;

use crate::aws::ApiError;
use crate::keys::{parse_host_key_line, BadHostKey};
use crate::retry::Backoff;

/// The host key could not be obtained. Exit code 76.
#[derive(Debug, Error)]
pub enum HostKeyError {
    #[error("the jumphost did not log its host key within {} (looked in {group}:{stream})", humantime::format_duration(*.waited))]
    NotFound {
        group: String,
        stream: String,
        waited: Duration,
    },
    #[error(transparent)]
    Bad(#[from] BadHostKey),
}

/// Polls the task's log stream until the host key line appears.
pub async fn wait_for_host_key(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    timeout: Duration,
) -> anyhow::Result<PublicKey> {
    let started = Instant::now();
    let mut backoff = Backoff::polling();
    let mut token: Option<String> = None;
    loop {
        let page = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("logs:GetLogEvents", e));
        match page {
            Ok(page) => {
                let lines = page
                    .events()
                    .iter()
                    .filter_map(|e| e.message())
                    .flat_map(str::lines);
                for line in lines {
                    if let Some(parsed) = parse_host_key_line(line) {
                        return Ok(parsed.map_err(HostKeyError::from)?);
                    }
                }
                token = page.next_forward_token().map(str::to_string).or(token);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        if started.elapsed() >= timeout {
            return Err(HostKeyError::NotFound {
                group: group.to_string(),
                stream: stream.to_string(),
                waited: timeout,
            }
            .into());
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
