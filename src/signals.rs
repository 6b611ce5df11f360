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
//!
//! A local command run by `jump forward … -- CMD` is different: it owns the terminal's
//! signals ([`ChildPid::owning_signals`]), as a shell's foreground job would, so a
//! database console's Ctrl-C cancels its query without ending the tunnel under it.
//!
//! A signal to the whole group also ends ssh, so the session can finish (ssh "failed")
//! before tokio has handed us the signal. Each arrival is therefore also counted in the
//! signal handler itself ([`arrivals`]): work that finishes after a signal arrived counts
//! as signalled, and a signal tokio reports late is not mistaken for a second one.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
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

/// Signals delivered so far, counted in the handler, and the last one's number.
static ARRIVALS: AtomicU64 = AtomicU64::new(0);
static LAST: AtomicI32 = AtomicI32::new(0);

/// How many of our signals the process has received so far.
fn arrivals() -> u64 {
    ARRIVALS.load(Ordering::SeqCst)
}

fn last() -> Option<Signal> {
    match LAST.load(Ordering::SeqCst) {
        libc::SIGINT => Some(Signal::Interrupt),
        libc::SIGTERM => Some(Signal::Terminate),
        libc::SIGHUP => Some(Signal::Hangup),
        _ => None,
    }
}

/// The registered signal streams.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    /// [`arrivals`] when the last signal was dealt with: later ones are news.
    handled: u64,
}

impl Signals {
    /// Registers the handlers. Call before spawning anything.
    pub fn register() -> std::io::Result<Self> {
        for number in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: the action only stores to atomics, which is async-signal-safe.
            unsafe {
                signal_hook_registry::register(number, move || {
                    LAST.store(number, Ordering::SeqCst);
                    ARRIVALS.fetch_add(1, Ordering::SeqCst);
                })?;
            }
        }
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            handled: 0,
        })
    }

    /// The next signal received.
    pub async fn recv(&mut self) -> Signal {
        let signal = tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
            _ = self.hangup.recv() => Signal::Hangup,
        };
        self.all_handled();
        signal
    }

    /// Counts every signal that has arrived so far as dealt with.
    fn all_handled(&mut self) {
        self.handled = arrivals();
    }

    /// The next Ctrl-C or SIGTERM that arrives after those already dealt with. A hang-up
    /// is no one asking (a closing terminal may send several), and a signal tokio reports
    /// late, after it was dealt with, is not a new one.
    pub async fn next_request(&mut self) -> Signal {
        let handled = self.handled;
        loop {
            let signal = self.recv().await;
            if signal != Signal::Hangup && arrivals() > handled {
                return signal;
            }
        }
    }
}

/// The pid of the foreground child (ssh), if one runs; shared with the signal logic.
#[derive(Debug, Clone, Default)]
pub struct ChildPid(Arc<AtomicI32>, Arc<AtomicBool>, Arc<AtomicU64>);

impl ChildPid {
    pub fn set(&self, pid: Option<u32>) {
        self.set_with(pid, false);
    }

    /// A local command in the foreground that answers the terminal's signals itself (a
    /// database console cancels a query on Ctrl-C and carries on). From this call, made
    /// before the command is spawned so that a Ctrl-C in its first instant is its own too,
    /// until [`ChildPid::set`]`(None)`, Ctrl-C and hang-ups are its business, SIGTERM is
    /// passed on to it once its pid is known, and `jump` waits for it to exit, then tears
    /// down as usual.
    pub fn owning_signals(&self, pid: Option<u32>) {
        self.set_with(pid, true);
    }

    fn set_with(&self, pid: Option<u32>, owns: bool) {
        let pid = pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        if self.1.swap(owns, Ordering::SeqCst) && !owns {
            // Whatever arrived while the command owned the signals was the command's, even
            // if tokio has not reported it yet.
            self.2.store(arrivals(), Ordering::SeqCst);
        }
        self.0.store(pid, Ordering::SeqCst);
    }

    /// [`arrivals`] when a command last gave the signals back.
    fn owned_through(&self) -> u64 {
        self.2.load(Ordering::SeqCst)
    }

    fn get(&self) -> Option<i32> {
        Some(self.0.load(Ordering::SeqCst)).filter(|pid| *pid > 0)
    }

    fn owns_signals(&self) -> bool {
        self.1.load(Ordering::SeqCst)
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
    let mut before = signals.handled;
    let mut handle = tokio::spawn(work);
    loop {
        // Signal first: a hang-up or Ctrl-C to the whole group also ends ssh, and the work
        // then finishes at about the same moment; the signal is what happened.
        tokio::select! {
            biased;
            signal = signals.recv() => {
                if child.owns_signals() {
                    tracing::info!(signal = signal.name(), "left to the foreground command");
                    if signal == Signal::Terminate {
                        child.send(signal);
                    }
                    before = signals.handled;
                    continue;
                }
                tracing::info!(signal = signal.name(), "received signal");
                wind_down(handle, child, signal).await;
                return Outcome::Signalled(signal);
            }
            joined = &mut handle => {
                let seen = before.max(child.owned_through());
                // A signal the command had, reported late, is no one asking later either.
                signals.handled = signals.handled.max(child.owned_through());
                return match (joined, last().filter(|_| arrivals() > seen)) {
                (Ok(_), Some(signal)) => {
                    tracing::info!(signal = signal.name(), "received signal as the work ended");
                    signals.all_handled();
                    Outcome::Signalled(signal)
                }
                (Ok(result), None) => Outcome::Finished(result),
                (Err(e), _) => Outcome::Panicked(panic_message(e)),
                };
            }
        }
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
