//! The teardown guard: one owner for the task from the moment `RunTask` returns.
//!
//! Every way out of `jump up` — success, error, Ctrl-C, SIGTERM, SIGHUP, panic — ends in
//! [`Guard::teardown`], which stops the task (with retries) and deletes the local session
//! directory, exactly once. The `RunTask` call itself runs as a detached tokio task that
//! holds the guard's lock until the ARN is recorded: if the session is cancelled while
//! the call is in flight, teardown waits for the answer instead of leaking the task.
//!
//! Teardown is bounded (every AWS call has timeouts, and the caller gives it a deadline)
//! and can be abandoned by a second signal; [`Guard::abandoned`] then says which task is
//! left and how to stop it, which is why the task ARN is also kept outside the lock that
//! teardown holds.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::Mutex;

use crate::aws::ApiError;
use crate::retry::{self, Backoff};
use crate::session::keys::SessionDir;

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
    session: String,
    owned: Arc<Mutex<Owned>>,
    /// The task until it is known to be stopped or handed over, readable during teardown.
    at_large: Arc<StdMutex<Option<String>>>,
}

impl Guard {
    /// A guard that will remove `dir` at teardown, and the task once one is launched.
    pub fn new(ecs: aws_sdk_ecs::Client, cluster: &str, dir: SessionDir) -> Self {
        let session = dir
            .path()
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Guard {
            ecs,
            cluster: cluster.to_string(),
            session,
            owned: Arc::new(Mutex::new(Owned {
                dir: Some(dir),
                ..Owned::default()
            })),
            at_large: Arc::default(),
        }
    }

    fn set_at_large(&self, task: Option<String>) {
        if let Ok(mut at_large) = self.at_large.lock() {
            *at_large = task;
        }
    }

    /// What to tell the user when teardown is given up (`why`): the task that may still
    /// run and the command that stops it.
    pub fn abandoned(&self, why: &str) -> String {
        let task = self.at_large.lock().ok().and_then(|t| t.clone());
        match task {
            Some(task) => format!(
                "jump: {why}: leaving task {task} to stop itself at its TTL; \
                 stop it now with `jump down {}`",
                self.session
            ),
            None => format!("jump: {why}: nothing was left running"),
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
        let at_large = self.clone();
        let handle = tokio::spawn(async move {
            let result = launch.await;
            if let Ok(arn) = &result {
                owned.task = Some(arn.clone());
                at_large.set_at_large(Some(arn.clone()));
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
        self.set_at_large(None);
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
            match stop_task(&self.ecs, &self.cluster, &task, "jump session ended").await {
                Ok(()) => self.set_at_large(None),
                Err(e) => {
                    clean = false;
                    let _ = writeln!(
                        std::io::stderr(),
                        "jump: could not stop task {task}: {e}\njump: it will stop itself at \
                         its TTL; or run `jump down --expired` later"
                    );
                }
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
    let stop = || async {
        let result = ecs
            .stop_task()
            .cluster(cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ecs:StopTask", e));
        match result {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    };
    retry::up_to(
        STOP_ATTEMPTS,
        Backoff::polling(),
        stop,
        |e: &ApiError| e.transient,
        |e, attempt| tracing::warn!(error = %e, attempt, "StopTask failed; retrying"),
    )
    .await
}
