//! One module per subcommand; this one dispatches and turns results into exit codes.

mod choose;
mod cp;
mod doctor;
mod down;
mod exec;
mod forward;
mod init;
mod logs;
mod ls;
mod pool;
mod run;
mod socks;
mod ssh;
mod up;

use std::io::Write;

use anyhow::Context as _;
use aws_sdk_ecs::types::Task;
use clap::CommandFactory;

use crate::aws::{ApiError, Clients, NoRegion};
use crate::cli::{Cli, ClusterArgs, Command, DownArgs, GlobalArgs};
use crate::connect::copy::CopyError;
use crate::connect::exec_access::AccessError;
use crate::connect::forward::Bind;
use crate::connect::forward::ForwardError;
use crate::connect::local_command::CommandError;
use crate::connect::plugin::PluginError;
use crate::connect::ssh::ConnectError;
use crate::connect::target::ExecError;
use crate::exit::{class_of, Exit, Recognise, UsageError};
use crate::output::Output;
use crate::plan::Layers;
use crate::plan::PlanError;
use crate::session::guard::Guard;
use crate::session::hostkey::HostKeyError;
use crate::session::keys::{BadHostKey, UnsafeStateDir};
use crate::session::record::{session_task, Whose};
use crate::session::wait::TaskFailed;
use crate::session::{BadSessionId, SessionId};
use crate::signals::{supervise, ChildPid, Outcome, Signal, Signals};
use crate::task::{exec_agent_running, newest, service_tasks};

/// Every error type that decides jump's exit code; each says which in its own module.
const EXIT_CLASSES: &[Recognise] = &[
    class_of::<PlanError>,
    class_of::<UsageError>,
    class_of::<NoRegion>,
    class_of::<BadSessionId>,
    class_of::<UnsafeStateDir>,
    class_of::<ApiError>,
    class_of::<TaskFailed>,
    class_of::<HostKeyError>,
    class_of::<BadHostKey>,
    class_of::<ConnectError>,
    class_of::<ExecError>,
    class_of::<AccessError>,
    class_of::<ForwardError>,
    class_of::<PluginError>,
    class_of::<CommandError>,
    class_of::<CopyError>,
];

/// How long teardown may take before jump gives up and says what it left behind.
const TEARDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(45);

/// What every command gets.
pub struct Context {
    pub global: GlobalArgs,
    pub output: Output,
    pub signals: Signals,
    pub child: ChildPid,
}

impl Context {
    /// Runs `work` under the signal policy with no resources to tear down.
    async fn supervised<F>(&mut self, work: F) -> anyhow::Result<Exit>
    where
        F: std::future::Future<Output = anyhow::Result<Exit>> + Send + 'static,
    {
        outcome_result(supervise(&mut self.signals, &self.child, work).await)
    }

    /// Runs `work` under the signal policy, then the guard's teardown, whatever happened.
    async fn guarded<F>(&mut self, guard: &Guard, work: F) -> anyhow::Result<Exit>
    where
        F: std::future::Future<Output = anyhow::Result<Exit>> + Send + 'static,
    {
        let outcome = supervise(&mut self.signals, &self.child, work).await;
        if let Outcome::Signalled(signal) = &outcome {
            self.output
                .note(&format!("jump: {}; stopping the task", signal.name()));
        }
        match self.tear_down(guard).await {
            Some(signal) => Ok(Exit::Signalled(signal)),
            None => outcome_result(outcome),
        }
    }

    /// The guard's teardown within [`TEARDOWN_DEADLINE`]; a signal during it gives up at
    /// once on Ctrl-C or SIGTERM (the signal is returned). Either way out names the task
    /// left behind.
    async fn tear_down(&mut self, guard: &Guard) -> Option<Signal> {
        tokio::select! {
            finished = tokio::time::timeout(TEARDOWN_DEADLINE, guard.teardown()) => {
                if finished.is_err() {
                    let why = format!(
                        "stopping the task took longer than {}s",
                        TEARDOWN_DEADLINE.as_secs()
                    );
                    self.output.note(&guard.abandoned(&why));
                }
                None
            }
            signal = self.signals.next_request() => {
                self.output.note(&guard.abandoned(&format!("{} during teardown", signal.name())));
                Some(signal)
            }
        }
    }
}

/// Runs the parsed command line and returns how to exit. Errors are reported here.
pub async fn run(cli: Cli) -> Exit {
    let output = Output::new(cli.global.json);
    let result = match Signals::register().context("cannot install signal handlers") {
        Ok(signals) => {
            let mut ctx = Context {
                global: cli.global,
                output,
                signals,
                child: ChildPid::default(),
            };
            dispatch(&mut ctx, cli.command).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(exit) => exit,
        Err(err) => {
            let exit = Exit::for_error(&err, EXIT_CLASSES);
            output.error(&err, exit.code());
            exit
        }
    }
}

async fn dispatch(ctx: &mut Context, command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Up(args) => up::run(ctx, *args).await,
        Command::Ssh(args) => {
            let work = ssh::run(ctx.global.clone(), ctx.output, ctx.child.clone(), args);
            ctx.supervised(work).await
        }
        Command::SshConfig(args) => {
            let work = ssh::config(ctx.global.clone(), ctx.output, args);
            ctx.supervised(work).await
        }
        Command::SshProxy(args) => {
            let work = ssh::proxy(ctx.global.clone(), args);
            ctx.supervised(work).await
        }
        Command::Exec(args) => {
            let work = exec::run(ctx.global.clone(), ctx.output, ctx.child.clone(), args);
            ctx.supervised(work).await
        }
        Command::Cp(args) => {
            let work = cp::run(ctx.global.clone(), ctx.output, ctx.child.clone(), *args);
            ctx.supervised(work).await
        }
        Command::Forward(args) => forward::run(ctx, *args).await,
        Command::Run(args) => run::run(ctx, *args).await,
        Command::Socks(args) => socks::run(ctx, *args).await,
        Command::Logs(args) => {
            let work = logs::run(ctx.global.clone(), ctx.output, args);
            ctx.supervised(work).await
        }
        Command::Ls(args) => {
            let work = ls::run(ctx.global.clone(), ctx.output, args);
            ctx.supervised(work).await
        }
        Command::Down(args) => {
            let work = down::run(ctx.global.clone(), ctx.output, args);
            ctx.supervised(work).await
        }
        Command::Gc(cluster) => {
            let args = DownArgs {
                session: None,
                all_mine: false,
                expired: true,
                all: false,
                cluster,
            };
            let work = down::run(ctx.global.clone(), ctx.output, args);
            ctx.supervised(work).await
        }
        Command::Pool(command) => pool::run(ctx, *command).await,
        Command::Init(args) => {
            let work = init::run(ctx.global.clone(), ctx.output, *args);
            ctx.supervised(work).await
        }
        Command::Doctor(args) => {
            let work = doctor::run(ctx.global.clone(), ctx.output, *args);
            ctx.supervised(work).await
        }
        Command::Completions { shell } => {
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "jump", &mut buffer);
            let _ = std::io::stdout().write_all(&buffer);
            Ok(Exit::Success)
        }
        Command::Man => {
            let mut buffer = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buffer)
                .context("cannot render the manual page")?;
            std::io::stdout()
                .write_all(&buffer)
                .context("cannot print the manual page")?;
            Ok(Exit::Success)
        }
    }
}

/// Folds a supervised outcome into the command's result.
fn outcome_result(outcome: Outcome<Exit>) -> anyhow::Result<Exit> {
    match outcome {
        Outcome::Finished(result) => result,
        Outcome::Panicked(message) => Err(anyhow::anyhow!("internal error (panic): {message}")),
        Outcome::Signalled(signal) => Ok(Exit::Signalled(signal)),
    }
}

/// Reads the process environment for `plan`.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The settings layers for a command, with `flags` as the top layer.
fn layers(config: Option<&std::path::Path>, flags: &[(&str, String)]) -> anyhow::Result<Layers> {
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    Ok(Layers::load(config, &cwd, env, flags)?)
}

/// The cluster for `ls` and `down`, from `--cluster`, JUMP_CLUSTER or jump.toml.
fn cluster(args: &ClusterArgs) -> anyhow::Result<String> {
    let flags: Vec<(&str, String)> = args
        .cluster
        .iter()
        .map(|c| ("cluster", c.clone()))
        .collect();
    Ok(layers(args.config.as_deref(), &flags)?.cluster()?)
}

/// An existing task a command goes to: a session's (the caller's own), one named by id or
/// ARN, or the newest exec-ready one of a service.
pub(super) enum Existing {
    Session(SessionId),
    Task(String),
    Service(String),
}

impl Existing {
    /// The one the flags name, in that order of preference.
    pub(super) fn named(
        session: Option<SessionId>,
        task: Option<String>,
        service: Option<String>,
    ) -> Result<Existing, UsageError> {
        session
            .map(Existing::Session)
            .or(task.map(Existing::Task))
            .or(service.map(Existing::Service))
            .ok_or_else(|| UsageError("name a SESSION, a --task or a --service".into()))
    }

    /// Its task ARN (for `--task`, as given); a service's task must have its exec agent up
    /// in `container`, if one is named.
    pub(super) async fn task_arn(
        self,
        clients: &Clients,
        cluster: &str,
        container: Option<&str>,
    ) -> anyhow::Result<String> {
        match self {
            Existing::Session(id) => Ok(session_task(clients, cluster, &id, Whose::Mine).await?),
            Existing::Task(task) => Ok(task),
            Existing::Service(service) => {
                exec_ready_task(&clients.ecs, cluster, &service, container).await
            }
        }
    }
}

/// Fails unless `port` (unless 0: any) is free on the bind address; `pick` says how to
/// choose another.
pub(super) fn check_port_free(
    bind: &Bind,
    port: u16,
    what: &str,
    pick: &str,
) -> Result<(), UsageError> {
    if port == 0 {
        return Ok(());
    }
    let address = bind.first_address();
    std::net::TcpListener::bind((address, port))
        .map(drop)
        .map_err(|err| {
            UsageError(format!(
                "{what} {port} is not available on {address} ({err}); {pick}, e.g. 0 for any"
            ))
        })
}

/// The newest of the service's running tasks whose exec agent runs (in `container`, if
/// named): the one a deployment most recently started, so the current code.
async fn exec_ready_task(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    container: Option<&str>,
) -> anyhow::Result<String> {
    let tasks = service_tasks(ecs, cluster, service).await?;
    if tasks.is_empty() {
        return Err(TaskFailed::Rejected {
            reason: format!("service {service} has no running tasks in cluster {cluster}"),
        }
        .into());
    }
    let ready = tasks.iter().filter(|t| {
        t.last_status() == Some("RUNNING")
            && t.enable_execute_command()
            && exec_agent_running(t, container)
    });
    match newest(ready).and_then(Task::task_arn) {
        Some(arn) => Ok(arn.to_string()),
        None => {
            Err(TaskFailed::Rejected {
                reason: format!(
                "none of service {service}'s {} running task(s) can be reached with ECS Exec{}: \
                 the service needs enableExecuteCommand and a new deployment, and the exec \
                 agent must be RUNNING (`jump doctor --service {service}` checks each step)",
                tasks.len(),
                container.map(|c| format!(" in container {c}")).unwrap_or_default()
            ),
            }
            .into())
        }
    }
}

/// The part of an ARN after the account, e.g. `user/alice` or `assumed-role/Dev/alice`.
fn short_owner(arn: &str) -> &str {
    arn.splitn(6, ':').nth(5).unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_decide_their_exit_class_through_context() {
        let err = anyhow::Error::from(UsageError("no".into())).context("while stopping");
        assert_eq!(Exit::for_error(&err, EXIT_CLASSES), Exit::Usage);
        let err: anyhow::Error = Err::<(), _>(TaskFailed::Rejected { reason: "x".into() })
            .context("starting")
            .unwrap_err();
        assert_eq!(Exit::for_error(&err, EXIT_CLASSES), Exit::TaskFailed);
        let api = ApiError {
            operation: "ecs:RunTask",
            code: Some("AccessDenied".into()),
            message: "no".into(),
            transient: false,
        };
        let err = anyhow::Error::from(api).context("starting");
        assert_eq!(Exit::for_error(&err, EXIT_CLASSES), Exit::Aws);
        assert_eq!(
            Exit::for_error(&anyhow::anyhow!("boom"), EXIT_CLASSES),
            Exit::Internal
        );
    }

    #[test]
    fn owners_are_shortened() {
        assert_eq!(
            short_owner("arn:aws:sts::123456789012:user/moto"),
            "user/moto"
        );
        assert_eq!(
            short_owner("arn:aws:sts::1:assumed-role/Dev/alice"),
            "assumed-role/Dev/alice"
        );
        assert_eq!(short_owner("odd"), "odd");
    }
}
