//! Signal policy: whatever ends the client, the session still ends cleanly.
//!
//! SIGINT, SIGTERM and SIGHUP are registered once, before anything is spawned;
//! registering replaces their default action for the life of the process, so from then on
//! `jump` must exit by itself. The command runs in a spawned task so that a panic
//! surfaces as a join error and still reaches teardown.
//!
//! When a signal arrives while `ssh` runs in the foreground:
//! - SIGINT and SIGHUP from the terminal reach the whole process group, ssh included, so
//!   we give ssh a moment to finish on its own, then ask it with SIGTERM;
//! - SIGTERM is aimed at `jump` alone, so it is forwarded to ssh at once.
//!
//! If ssh still runs after that, the session task is aborted, which kills ssh (its
//! handle is `kill_on_drop`). The exit code is then 128 + the signal number.

use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

/// How long ssh may take to exit after the terminal signalled it, before we ask.
const GROUP_GRACE: Duration = Duration::from_secs(3);
/// How long ssh may take to exit after SIGTERM, before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// The signals `jump` handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    Hangup,
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Terminate => libc::SIGTERM,
            Signal::Hangup => libc::SIGHUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }
}

/// The registered signal streams.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers the handlers. Call before spawning anything.
    pub fn register() -> std::io::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal received.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
            _ = self.hangup.recv() => Signal::Hangup,
        }
    }
}

/// The pid of the foreground child (ssh), if one runs; shared with the signal logic.
#[derive(Debug, Clone, Default)]
pub struct ChildPid(Arc<AtomicI32>);

impl ChildPid {
    pub fn set(&self, pid: Option<u32>) {
        let pid = pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        self.0.store(pid, Ordering::SeqCst);
    }

    fn get(&self) -> Option<i32> {
        Some(self.0.load(Ordering::SeqCst)).filter(|pid| *pid > 0)
    }

    fn send(&self, signal: Signal) {
        if let Some(pid) = self.get() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child,
            // which has not been reaped while it is registered here.
            unsafe {
                libc::kill(pid, signal.number());
            }
        }
    }
}

/// How a supervised command ended.
pub enum Outcome<T> {
    Finished(anyhow::Result<T>),
    Panicked(String),
    Signalled(Signal),
}

/// Runs `work` in its own task until it finishes, panics, or a signal arrives.
pub async fn supervise<T, F>(signals: &mut Signals, child: &ChildPid, work: F) -> Outcome<T>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut handle = tokio::spawn(work);
    // Signal first: a hang-up or Ctrl-C to the whole group also ends ssh, and the work
    // then finishes at about the same moment; the signal is what happened.
    tokio::select! {
        biased;
        signal = signals.recv() => {
            tracing::info!(signal = signal.name(), "received signal");
            wind_down(handle, child, signal).await;
            Outcome::Signalled(signal)
        }
        joined = &mut handle => match joined {
            Ok(result) => Outcome::Finished(result),
            Err(e) => Outcome::Panicked(panic_message(e)),
        },
    }
}

async fn wind_down<T>(mut handle: JoinHandle<T>, child: &ChildPid, signal: Signal) {
    let mut finished = false;
    if child.get().is_some() {
        if signal != Signal::Terminate {
            finished = tokio::time::timeout(GROUP_GRACE, &mut handle).await.is_ok();
        }
        if !finished {
            child.send(Signal::Terminate);
            finished = tokio::time::timeout(TERM_GRACE, &mut handle).await.is_ok();
        }
    }
    if !finished {
        handle.abort();
        let _ = handle.await;
    }
}

fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string()),
        Err(e) => e.to_string(),
    }
}
