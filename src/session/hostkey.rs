//! Reading the jumphost's host key from its log stream.
//!
//! The entrypoint generates a fresh host key and prints `jump-host-key: ssh-ed25519 …`
//! once, at start. CloudWatch Logs is an IAM-authenticated channel, but not one only the
//! task can write: anyone allowed `logs:PutLogEvents` on the stream (the execution role,
//! which any user may pass as a task role) can add lines to it, with any timestamp they
//! like. So the key is accepted only when nothing is ambiguous: exactly one key line in
//! the whole stream, neither timestamped nor received by CloudWatch before the task's
//! image was pulled (no container could have written it then). A forged line either comes
//! too early or makes a second key line next to the real one, and jump refuses both. The
//! stream appears only once the container has written something, so "stream not found"
//! just means "not yet".

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ssh_key::PublicKey;
use thiserror::Error;

use crate::aws::{log_page_from_head, ApiError};
use crate::retry::Backoff;
use crate::session::keys::{parse_host_key_line, BadHostKey};

/// Clocks of the task's host and of CloudWatch may differ by this much.
const CLOCK_SKEW: Duration = Duration::from_secs(2);

/// The host key could not be obtained, or not trusted. Exit code 76.
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
    #[error(
        "{count} host key lines in {stream}, where the jumphost writes one: someone else \
         wrote to its log stream, so no key is trusted and no connection is made (look at \
         who may call logs:PutLogEvents on that stream)"
    )]
    Ambiguous { stream: String, count: usize },
    #[error(
        "the host key line in {stream} was logged at {logged}, before the task's container \
         could run (its image was pulled at {pulled}): someone else wrote it, so it is not \
         trusted and no connection is made"
    )]
    TooEarly {
        stream: String,
        logged: String,
        pulled: String,
    },
}

/// One key line of the stream: when it was logged and received, and what it holds.
#[derive(Debug)]
pub struct KeyLine {
    /// The event's timestamp (set by whoever wrote it) and CloudWatch's ingestion time.
    pub logged: SystemTime,
    pub ingested: SystemTime,
    pub key: Result<PublicKey, BadHostKey>,
}

/// Where a task's container logs, and the earliest moment it can have logged anything.
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a> {
    pub group: &'a str,
    pub name: &'a str,
    /// When the task's image was pulled (or, failing that, when the task was created).
    pub not_before: SystemTime,
}

/// The key to pin from every key line of the stream so far: `None` while there is none.
pub fn trusted_key(
    lines: Vec<KeyLine>,
    stream: &Stream<'_>,
) -> Result<Option<PublicKey>, HostKeyError> {
    if lines.len() > 1 {
        return Err(HostKeyError::Ambiguous {
            stream: stream.name.to_string(),
            count: lines.len(),
        });
    }
    let Some(line) = lines.into_iter().next() else {
        return Ok(None);
    };
    let earliest = line.logged.min(line.ingested);
    if earliest + CLOCK_SKEW < stream.not_before {
        let stamp = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
        return Err(HostKeyError::TooEarly {
            stream: stream.name.to_string(),
            logged: stamp(earliest),
            pulled: stamp(stream.not_before),
        });
    }
    Ok(Some(line.key?))
}

/// Polls the task's log stream until its host key line appears, reading the whole stream
/// each time so that every key line in it is judged.
pub async fn wait_for_host_key(
    logs: &aws_sdk_cloudwatchlogs::Client,
    stream: &Stream<'_>,
    timeout: Duration,
) -> anyhow::Result<PublicKey> {
    let started = Instant::now();
    let mut backoff = Backoff::polling();
    loop {
        match key_lines(logs, stream).await {
            Ok(lines) => {
                if let Some(key) = trusted_key(lines, stream)? {
                    return Ok(key);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        if started.elapsed() >= timeout {
            return Err(HostKeyError::NotFound {
                group: stream.group.to_string(),
                stream: stream.name.to_string(),
                waited: timeout,
            }
            .into());
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Every key line of the stream, from its first event to its last.
async fn key_lines(
    logs: &aws_sdk_cloudwatchlogs::Client,
    stream: &Stream<'_>,
) -> Result<Vec<KeyLine>, ApiError> {
    let at = |ms: Option<i64>| UNIX_EPOCH + Duration::from_millis(ms.unwrap_or(0).max(0) as u64);
    let mut lines = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = log_page_from_head(logs, stream.group, stream.name, token.clone()).await?;
        for event in page.events() {
            let message = event.message().unwrap_or_default();
            for key in message.lines().filter_map(parse_host_key_line) {
                lines.push(KeyLine {
                    logged: at(event.timestamp()),
                    ingested: at(event.ingestion_time().or(event.timestamp())),
                    key,
                });
            }
        }
        // The forward token repeats once the end of the stream is reached.
        let next = page.next_forward_token().map(str::to_string);
        if page.events().is_empty() || next.is_none() || next == token {
            return Ok(lines);
        }
        token = next;
    }
}

crate::exit::exit_class!(Connect: HostKeyError);

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFtWfdZ6AB1ooF6+Uyzyjql8YFSaEJNZf80P/Usmr4+N";

    fn line(logged_s: u64, ingested_s: u64) -> KeyLine {
        KeyLine {
            logged: UNIX_EPOCH + Duration::from_secs(logged_s),
            ingested: UNIX_EPOCH + Duration::from_secs(ingested_s),
            key: Ok(PublicKey::from_openssh(KEY).unwrap()),
        }
    }

    fn stream() -> Stream<'static> {
        Stream {
            group: "/jump/sessions",
            name: "jump/jumphost/abc",
            not_before: UNIX_EPOCH + Duration::from_secs(1_000),
        }
    }

    #[test]
    fn the_one_key_line_logged_after_the_pull_is_trusted() {
        let key = trusted_key(vec![line(1_001, 1_002)], &stream()).unwrap();
        assert_eq!(key.unwrap().to_openssh().unwrap(), KEY);
        assert!(trusted_key(vec![], &stream()).unwrap().is_none());
        // Within the clock skew of the pull: the same host's clock, read a moment apart.
        assert!(trusted_key(vec![line(999, 999)], &stream())
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_second_key_line_is_refused_whichever_comes_first() {
        let err = trusted_key(vec![line(1_001, 1_001), line(1_003, 1_003)], &stream()).unwrap_err();
        assert!(
            matches!(err, HostKeyError::Ambiguous { count: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("logs:PutLogEvents"), "{err}");
    }

    #[test]
    fn a_line_back_dated_or_received_before_the_pull_is_refused() {
        for (logged, ingested) in [(500, 1_001), (1_001, 500)] {
            let err = trusted_key(vec![line(logged, ingested)], &stream()).unwrap_err();
            assert!(matches!(err, HostKeyError::TooEarly { .. }), "{err}");
        }
    }

    #[test]
    fn a_malformed_key_line_is_an_error_not_skipped() {
        let bad = KeyLine {
            key: parse_host_key_line("jump-host-key: ssh-rsa AAAA").unwrap(),
            ..line(1_001, 1_001)
        };
        assert!(matches!(
            trusted_key(vec![bad], &stream()),
            Err(HostKeyError::Bad(_))
        ));
    }
}
