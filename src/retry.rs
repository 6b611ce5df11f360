//! Waiting things out: polling schedules, and retrying what AWS will soon allow.
//!
//! Two kinds of waiting share this module. Polling (a task's status, a log line, a port)
//! asks the same question until the answer changes. Settling retries a call that AWS
//! refuses only because it is eventually consistent: a role created seconds ago that ECS
//! cannot assume yet, an exec agent that reports RUNNING a few seconds before Session
//! Manager can reach it, Fargate capacity or ENIs that are short for a moment. The SDK's
//! own retries cover throttling and server errors; these are refusals it rightly treats
//! as final, so jump decides, per call site, which ones are worth waiting out and for how
//! long. Every such wait is bounded and ends in the last error, never in silence.

use std::future::Future;
use std::time::{Duration, Instant};

/// A delay that starts short and grows geometrically (×1.5) to a ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    /// The schedule used for all polling in a session: 250 ms, ×1.5, at most 2 s.
    pub fn polling() -> Self {
        Backoff {
            current: Duration::from_millis(250),
            max: Duration::from_secs(2),
        }
    }

    /// For calls AWS refuses while it settles: 1 s, ×1.5, at most 8 s.
    pub fn settling() -> Self {
        Backoff {
            current: Duration::from_secs(1),
            max: Duration::from_secs(8),
        }
    }

    /// The delay to wait now; the following one will be 1.5 times longer, up to the max.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 3 / 2).min(self.max);
        delay
    }
}

/// Calls `attempt` until it succeeds, fails in a way `settles` does not expect to pass,
/// or `budget` is spent; `waiting` hears about each retry. Returns the last outcome.
pub async fn until_settled<T, Fut>(
    budget: Duration,
    mut backoff: Backoff,
    mut attempt: impl FnMut() -> Fut,
    settles: impl Fn(&anyhow::Error) -> bool,
    mut waiting: impl FnMut(&anyhow::Error),
) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + budget;
    loop {
        match attempt().await {
            Err(err) if settles(&err) => {
                let delay = backoff.next_delay();
                if Instant::now() + delay > deadline {
                    return Err(err);
                }
                waiting(&err);
                tokio::time::sleep(delay).await;
            }
            outcome => return outcome,
        }
    }
}

/// Calls `attempt` at most `tries` times while it fails in a way `passes` expects to go
/// away (`waiting` hears about each retry); returns the last outcome. For calls that must
/// be bounded by count rather than time, such as teardown's StopTask.
pub async fn up_to<T, E, Fut>(
    tries: u32,
    mut backoff: Backoff,
    mut attempt: impl FnMut() -> Fut,
    passes: impl Fn(&E) -> bool,
    mut waiting: impl FnMut(&E, u32),
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut tried = 1;
    loop {
        match attempt().await {
            Err(err) if tried < tries && passes(&err) => {
                waiting(&err, tried);
                tokio::time::sleep(backoff.next_delay()).await;
                tried += 1;
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn a_count_bound_retry_stops_at_its_count_or_at_a_final_error() {
        let calls = Cell::new(0);
        let result: Result<(), &str> = up_to(
            3,
            quick(),
            || {
                calls.set(calls.get() + 1);
                async { Err("busy") }
            },
            |e| *e == "busy",
            |_, _| {},
        )
        .await;
        assert_eq!((result, calls.get()), (Err("busy"), 3));
        calls.set(0);
        let result: Result<(), &str> = up_to(
            3,
            quick(),
            || {
                calls.set(calls.get() + 1);
                async { Err("denied") }
            },
            |e| *e == "busy",
            |_, _| {},
        )
        .await;
        assert_eq!((result, calls.get()), (Err("denied"), 1));
    }

    #[test]
    fn backoff_grows_to_ceiling() {
        let mut backoff = Backoff::polling();
        let delays: Vec<u128> = (0..8).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![250, 375, 562, 843, 1265, 1898, 2000, 2000]);
    }

    fn quick() -> Backoff {
        Backoff {
            current: Duration::from_millis(1),
            max: Duration::from_millis(4),
        }
    }

    #[tokio::test]
    async fn a_refusal_that_settles_is_retried_until_it_passes() {
        let calls = Cell::new(0);
        let result = until_settled(
            Duration::from_secs(30),
            quick(),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        anyhow::bail!("not yet")
                    }
                    Ok(n)
                }
            },
            |e| e.to_string() == "not yet",
            |_| {},
        )
        .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn other_errors_end_at_once_and_the_budget_bounds_the_rest() {
        let calls = Cell::new(0);
        let final_error = until_settled::<(), _>(
            Duration::from_secs(30),
            quick(),
            || {
                calls.set(calls.get() + 1);
                async { anyhow::bail!("denied") }
            },
            |e| e.to_string() == "not yet",
            |_| {},
        )
        .await;
        assert_eq!(final_error.unwrap_err().to_string(), "denied");
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let timed_out = until_settled::<(), _>(
            Duration::from_millis(50),
            quick(),
            || {
                calls.set(calls.get() + 1);
                async { anyhow::bail!("not yet") }
            },
            |e| e.to_string() == "not yet",
            |_| {},
        )
        .await;
        assert_eq!(timed_out.unwrap_err().to_string(), "not yet");
        assert!(calls.get() > 1, "retried before giving up");
    }
}
