//! The teardown guard: one owner for the task from the moment `RunTask` returns.
//!
//! Every way out of `jump up` — success, error, Ctrl-C, SIGTERM, SIGHUP, panic — ends in
//! [`Guard::teardown`], which stops the task (with retries) and deletes the local session
//! directory, exactly once. The `RunTask` call itself runs as a detached tokio task that
//! holds the guard's lock until the ARN is recorded: if the session is cancelled while
//! the call is in flight, teardown waits for the answer instead of leaking the task.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::aws::ApiError;
use crate::keys::SessionDir;

/// Attempts for StopTask on transient errors, on top of the SDK's own retries.
const STOP_ATTEMPTS: u32 = 4;

/// What teardown has to clean up.
#[derive(Debug, Default)]
struct Owned {
    task: Option<String>,
    dir: Option<SessionDir>,
    done: bool,
}

/// Shared handle to the session's resources; cheap to clone.
#[derive(Debug, Clone)]
pub struct Guard {
    ecs: aws_sdk_ecs::Client,
    cluster: String,
    owned: Arc<Mutex<Owned>>,
}

impl Guard {
    /// A guard that will remove `dir` at teardown, and the task once one is launched.
    pub fn new(ecs: aws_sdk_ecs::Client, cluster: &str, dir: SessionDir) -> Self {
        Guard {
            ecs,
            cluster: cluster.to_string(),
            owned: Arc::new(Mutex::new(Owned {
                dir: Some(dir),
                ..Owned::default()
            })),
        }
    }

    /// Runs `launch` (a `RunTask` call returning the task ARN) so that the ARN is owned
    /// by this guard even if the caller is cancelled mid-call.
    pub async fn launch<F>(&self, launch: F) -> anyhow::Result<String>
    where
        F: Future<Output = anyhow::Result<String>> + Send + 'static,
    {
        let mut owned = self.owned.clone().lock_owned().await;
        if owned.done {
            anyhow::bail!("the session is already being torn down");
        }
        let handle = tokio::spawn(async move {
            let result = launch.await;
            if let Ok(arn) = &result {
                owned.task = Some(arn.clone());
            }
            result
        });
        handle.await?
    }

    /// Hands the task and directory over to the user (`up --detach`): teardown then
    /// does nothing.
    pub async fn release(&self) {
        let mut owned = self.owned.lock().await;
        owned.task = None;
        owned.dir = None;
    }

    /// Stops the task and removes the session directory. Idempotent: only the first call
    /// does anything. Reports problems on stderr and returns whether the task is gone.
    pub async fn teardown(&self) -> bool {
        let mut owned = self.owned.lock().await;
        if std::mem::replace(&mut owned.done, true) {
            return true;
        }
        let mut clean = true;
        if let Some(task) = owned.task.take() {
            if let Err(e) = stop_task(&self.ecs, &self.cluster, &task, "jump session ended").await {
                clean = false;
                let _ = writeln!(
                    std::io::stderr(),
                    "jump: could not stop task {task}: {e}\njump: it will stop itself at its TTL; or run `jump down --expired` later"
                );
            }
        }
        if let Some(dir) = owned.dir.take() {
            if let Err(e) = dir.remove() {
                let _ = writeln!(std::io::stderr(), "jump: {e}");
            }
        }
        clean
    }
}

/// Stops a task, retrying transient failures with backoff. A task ECS no longer knows
/// counts as stopped, so this is safe to call for sessions that already ended.
pub async fn stop_task(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    task_arn: &str,
    reason: &str,
) -> Result<(), ApiError> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let result = ecs
            .stop_task()
            .cluster(cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ecs:StopTask", e));
        match result {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.transient && attempt < STOP_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "StopTask failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
