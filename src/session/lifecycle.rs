//! One session, whatever its task's source: launch → wait → connect → teardown.
//!
//! The command has checked its input before any AWS call and chosen the [`Source`]. From
//! the moment the session directory exists the [`Guard`] owns it (and the task, once
//! launched); the command runs [`Session::run`] under the signal policy and the guard's
//! teardown afterwards, once, whichever way the session ended. [`Then::Detach`] hands
//! task and directory over to the user instead, once they have been told how to reach
//! and stop it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ssh_key::PublicKey;

use super::guard::Guard;
use super::hostkey::{wait_for_host_key, Stream};
use super::keys::{host_key_alias, SessionDir};
use super::launch;
use super::pool;
use super::record::SessionRecord;
use super::source::{Prepared, Preparing, Reach, Source};
use super::wait::{self, Endpoint, WaitSpec};
use super::SessionId;
use crate::aws::{describe_task, Clients};
use crate::connect::exec::{self, Interactive};
use crate::connect::forward::{self, Forwards};
use crate::connect::socks::{self, Proxy};
use crate::connect::ssh::{self, Target};
use crate::connect::ssh_over_ssm;
use crate::connect::target::ExecTarget;
use crate::exit::{Exit, UsageError};
use crate::output::{Output, Progress};
use crate::plan::SshVia;

/// sshd listens on this port in the jumphost.
const SSH_PORT: u16 = 22;
/// The least time left for a step, however much of the wait budget is used up.
const MIN_STEP: Duration = Duration::from_secs(10);

/// What the session does once its task is reachable.
pub enum Then {
    /// A shell, or these words as a command.
    Run(Vec<String>),
    /// Port forwards for as long as the user wants (exec mode).
    Forward(Forwards),
    /// A SOCKS5 proxy into the VPC for as long as the user wants (exec mode).
    Socks(Proxy),
    /// Hand the session over once `Announce` has told the user about it.
    Detach(Announce),
}

/// Tells the user how to reach and stop a detached session; if it cannot (stdout closed),
/// the session is stopped instead of handed over.
pub type Announce = Box<dyn FnOnce(&SessionRecord) -> std::io::Result<()> + Send>;

/// This side of the session: where notes go, the foreground child (ssh, the plugin) and
/// the escape character of an interactive ECS Exec session.
pub struct Local {
    pub output: Output,
    pub interactive: Interactive,
    /// The AWS profile given on the command line, for `jump ssh-proxy`.
    pub profile: Option<String>,
}

/// One session: its source, its id and local directory, and the guard that owns both.
pub struct Session {
    clients: Clients,
    source: Source,
    id: SessionId,
    dir: SessionDir,
    guard: Guard,
    local: Local,
}

/// The task, running and reachable.
struct Running {
    task_arn: String,
    endpoint: Endpoint,
    /// The address ssh connects to: the public one when the session asked for it.
    host: String,
    deadline: Instant,
    /// ssh mode, a claimed pool task: the host key its claim read through ECS Exec.
    host_key: Option<PublicKey>,
}

impl Running {
    fn new(task_arn: String, endpoint: Endpoint, deadline: Instant) -> Running {
        let host = endpoint
            .public_ip
            .clone()
            .unwrap_or_else(|| endpoint.private_ip.clone());
        Running {
            task_arn,
            endpoint,
            host,
            deadline,
            host_key: None,
        }
    }
}

impl Session {
    /// A new session with its own id and directory, not yet launched.
    pub fn new(clients: Clients, source: Source, local: Local) -> anyhow::Result<Session> {
        let id = SessionId::random();
        let dir = SessionDir::create(&id)?;
        let guard = Guard::new(clients.ecs.clone(), source.cluster(), dir.clone());
        Ok(Session {
            clients,
            source,
            id,
            dir,
            guard,
            local,
        })
    }

    /// The guard whose teardown the command runs after [`Session::run`], whatever happens.
    pub fn guard(&self) -> Guard {
        self.guard.clone()
    }

    pub async fn run(self, then: Then) -> anyhow::Result<Exit> {
        let stages = Stages::new(&self.source, self.local.output);
        let caller = self.clients.caller().await?;
        let preparing = Preparing {
            clients: &self.clients,
            id: &self.id,
            dir: &self.dir,
            caller: &caller,
            output: self.local.output,
        };
        let prepared = self.source.prepare(&preparing, |s| stages.stage(s)).await?;
        let running = self.launch(&prepared, &stages).await?;
        match prepared.reach {
            Reach::Ssh => {
                self.over_ssh(&prepared, running, stages, &caller.arn, then)
                    .await
            }
            Reach::Exec => {
                self.over_exec(&prepared, running, stages, &caller.arn, then)
                    .await
            }
        }
    }

    /// Starts the task and waits until it runs, starting it again while ECS cannot yet
    /// assume a role that was just created; one wait budget covers every start.
    async fn launch(&self, prepared: &Prepared, stages: &Stages) -> anyhow::Result<Running> {
        let deadline = Instant::now() + prepared.wait_timeout;
        if let Some(running) = self.claim_warm(prepared, stages, deadline).await? {
            return Ok(running);
        }
        let attempt = || async {
            stages.stage("starting the task");
            let task_arn = launch::run_task(&self.clients.ecs, &self.guard, &prepared.run).await?;
            tracing::info!(task_arn, session = %self.id, "task started");
            let spec = wait_spec(prepared, &task_arn, deadline);
            let endpoint = wait::wait_running(&self.clients, &spec, |status| {
                stages.stage(&format!("task {status}"))
            })
            .await?;
            Ok((task_arn, endpoint))
        };
        let (task_arn, endpoint) =
            wait::until_roles_assumable(attempt, |note| stages.stage(note)).await?;
        Ok(Running::new(task_arn, endpoint, deadline))
    }

    /// With a pool, a warm task of it claimed for this session (`super::pool`); `None`
    /// when there is no pool or nothing to claim, and then the task starts cold.
    async fn claim_warm(
        &self,
        prepared: &Prepared,
        stages: &Stages,
        deadline: Instant,
    ) -> anyhow::Result<Option<Running>> {
        let Source::Cold(plan) = &self.source else {
            return Ok(None);
        };
        let Some(name) = &plan.pool else {
            return Ok(None);
        };
        stages.stage(&format!("claiming a warm jumphost from pool {name}"));
        let claimant = pool::Claimant {
            session: self.id.as_str(),
            tags: &prepared.run.tags,
            ttl: plan.ttl,
            container: &prepared.container,
            mode: plan.mode,
            authorized_key: prepared.authorized_key.as_deref(),
        };
        let claim = pool::claim(&self.clients, &self.guard, &plan.cluster, name, &claimant);
        let why = match claim.await? {
            pool::Claim::Won { task_arn, host_key } => {
                tracing::info!(task_arn, session = %self.id, "claimed a pool task");
                let spec = wait_spec(prepared, &task_arn, deadline);
                let endpoint = wait::wait_running(&self.clients, &spec, |status| {
                    stages.stage(&format!("task {status}"))
                })
                .await?;
                let mut running = Running::new(task_arn, endpoint, deadline);
                running.host_key = host_key;
                return Ok(Some(running));
            }
            pool::Claim::NoneWarm => format!("no warm jumphost in pool {name}"),
            pool::Claim::OtherMode(mode) => format!(
                "pool {name} keeps {mode}-mode jumphosts, and this session is in {} mode",
                plan.mode.as_str()
            ),
            pool::Claim::NoPool => format!(
                "there is no pool {name} in cluster {} (`jump pool create --name {name}`)",
                plan.cluster
            ),
        };
        self.local
            .output
            .note(&format!("jump: {why}; starting one (cold)"));
        Ok(None)
    }

    /// ssh mode: pin the host key (from the log stream, or from a pool claim's answer),
    /// then ssh once sshd listens.
    async fn over_ssh(
        &self,
        prepared: &Prepared,
        running: Running,
        stages: Stages,
        owner: &str,
        then: Then,
    ) -> anyhow::Result<Exit> {
        let Source::Cold(plan) = &self.source else {
            return Err(UsageError("only jump's own jumphost runs sshd".into()).into());
        };
        let spec = wait_spec(prepared, &running.task_arn, running.deadline);
        let host_key = match &running.host_key {
            Some(key) => key.clone(),
            None => {
                self.logged_host_key(prepared, &running, &spec, &stages)
                    .await?
            }
        };
        let alias = host_key_alias(&self.id);
        self.dir.write_known_hosts(&alias, SSH_PORT, &host_key)?;
        let record = self.record(prepared, &running, owner);
        record.save(&self.dir)?;
        let target = ssh_target(&record, &self.dir, self.local.profile.as_deref())?;
        let words = match then {
            Then::Detach(announce) => {
                stages.finish();
                return self.detached(&record, announce).await;
            }
            Then::Run(words) => words,
            Then::Forward(_) | Then::Socks(_) => {
                return Err(UsageError(
                    "forwards and proxies go through ECS Exec (exec mode)".into(),
                )
                .into())
            }
        };
        let left = remaining(running.deadline);
        let sshd = async {
            match plan.ssh_via {
                SshVia::Network => {
                    stages.stage(&format!("waiting for sshd on {}", running.host));
                    let groups = &plan.security_groups;
                    Ok(ssh::wait_for_port(&running.host, SSH_PORT, groups, left).await?)
                }
                SshVia::Ssm => {
                    stages.stage("waiting for sshd through Session Manager");
                    let task = record.exec_target();
                    ssh_over_ssm::wait_for_sshd(&self.clients, &task, left).await
                }
            }
        };
        tokio::select! {
            ready = sshd => ready?,
            stopped = wait::until_stopped(&self.clients, &spec) => return Err(stopped.into()),
        }
        stages.finish();
        let code = ssh::run(&target, &words, &self.local.interactive.child).await?;
        Ok(Exit::Remote(code))
    }

    /// Exec mode: no host key, no ssh; the session goes through ECS Exec.
    async fn over_exec(
        &self,
        prepared: &Prepared,
        running: Running,
        stages: Stages,
        owner: &str,
        then: Then,
    ) -> anyhow::Result<Exit> {
        // A one-off is found again by its tags alone; jump's own jumphosts also locally.
        if matches!(self.source, Source::Cold(_)) {
            let record = self.record(prepared, &running, owner);
            record.save(&self.dir)?;
            if let Then::Detach(announce) = then {
                stages.finish();
                return self.detached(&record, announce).await;
            }
        }
        stages.finish();
        let target = ExecTarget {
            cluster: self.source.cluster().to_string(),
            task_arn: running.task_arn,
            container: Some(prepared.container.clone()),
        };
        match then {
            Then::Run(words) => Ok(Exit::Remote(
                exec::run(&self.clients, &target, &words, &self.local.interactive).await?,
            )),
            Then::Forward(forwards) => {
                forward::forward_all(&self.clients, &target, &forwards, self.local.output).await
            }
            Then::Socks(proxy) => {
                socks::run(&self.clients, &target, &proxy, self.local.output).await
            }
            Then::Detach(_) => Err(UsageError("a one-off task cannot be detached".into()).into()),
        }
    }

    /// The host key a cold jumphost logged, once the log stream holds it.
    async fn logged_host_key(
        &self,
        prepared: &Prepared,
        running: &Running,
        spec: &WaitSpec<'_>,
        stages: &Stages,
    ) -> anyhow::Result<PublicKey> {
        stages.stage("reading the jumphost's host key");
        let logs = prepared
            .logs
            .as_ref()
            .context("jump's jumphost logs to CloudWatch")?;
        let stream = logs
            .stream(&prepared.container, &running.task_arn)
            .context("jump's jumphost logs with a stream prefix")?;
        let logged = Stream {
            group: &logs.group,
            name: &stream,
            not_before: running.endpoint.not_before,
        };
        let left = remaining(running.deadline);
        tokio::select! {
            key = wait_for_host_key(&self.clients.logs, &logged, left) => match key {
                Ok(key) => Ok(key),
                Err(err) => Err(self.explain_stop(spec, err).await),
            },
            stopped = wait::until_stopped(&self.clients, spec) => Err(stopped.into()),
        }
    }

    /// A missing host key is often a task that died after starting; say so if it did.
    async fn explain_stop(&self, spec: &WaitSpec<'_>, err: anyhow::Error) -> anyhow::Error {
        match describe_task(&self.clients.ecs, spec.cluster, spec.task_arn).await {
            Ok(Some(task)) if task.last_status() == Some("STOPPED") => {
                wait::stopped_error(&self.clients, spec, &task).await.into()
            }
            _ => err,
        }
    }

    fn record(&self, prepared: &Prepared, running: &Running, owner: &str) -> SessionRecord {
        let (login_user, mode, ssh_via) = match &self.source {
            Source::Cold(plan) => (
                plan.login_user.clone(),
                plan.mode.as_str(),
                plan.ssh_via.as_str(),
            ),
            Source::OneOff(_) => (String::new(), "exec", "network"),
        };
        SessionRecord {
            id: self.id.to_string(),
            task_arn: running.task_arn.clone(),
            cluster: self.source.cluster().to_string(),
            region: self.clients.region.clone(),
            ip: running.host.clone(),
            private_ip: running.endpoint.private_ip.clone(),
            public_ip: running.endpoint.public_ip.clone(),
            expires: humantime::format_rfc3339_seconds(prepared.expires).to_string(),
            owner: owner.to_string(),
            login_user,
            mode: mode.to_string(),
            ssh_via: ssh_via.to_string(),
        }
    }

    /// Hands the session over, once the user has been told how to reach and stop it: if
    /// that cannot be done (stdout closed), the session is torn down instead.
    async fn detached(&self, record: &SessionRecord, announce: Announce) -> anyhow::Result<Exit> {
        announce(record).context("cannot print the detached session, so it is stopped again")?;
        self.guard.release().await;
        Ok(Exit::Success)
    }
}

/// How ssh reaches a session: its key and pinned host key, and either the task's address
/// or, through Session Manager, `jump ssh-proxy` (with this machine's jump and profile).
pub fn ssh_target(
    record: &SessionRecord,
    dir: &SessionDir,
    profile: Option<&str>,
) -> anyhow::Result<Target> {
    let id: SessionId = record.id.parse()?;
    let alias = host_key_alias(&id);
    let (host, proxy) = if record.ssh_via == SshVia::Ssm.as_str() {
        let jump = std::env::current_exe().context("cannot tell where jump itself is")?;
        let mut proxy = vec![jump.display().to_string()];
        if let Some(profile) = profile {
            proxy.extend(["--profile".to_string(), profile.to_string()]);
        }
        proxy.extend([
            "--region".to_string(),
            record.region.clone(),
            "ssh-proxy".to_string(),
            record.id.clone(),
        ]);
        (alias.clone(), Some(proxy))
    } else {
        (record.ip.clone(), None)
    };
    Ok(Target {
        host,
        port: SSH_PORT,
        user: record.login_user.clone(),
        identity: dir.private_key_path(),
        known_hosts: dir.known_hosts_path(),
        host_key_alias: alias,
        proxy,
    })
}

fn wait_spec<'a>(prepared: &'a Prepared, task_arn: &'a str, deadline: Instant) -> WaitSpec<'a> {
    WaitSpec {
        cluster: &prepared.run.cluster,
        task_arn,
        container: &prepared.container,
        logs: prepared.logs.as_ref(),
        public: prepared.public,
        exec_agent: prepared.exec_agent,
        timeout: remaining(deadline),
    }
}

/// Time left until `deadline`, but never less than [`MIN_STEP`].
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(MIN_STEP)
}

/// Where the launch's stages go: a progress line for jump's own jumphosts, the debug
/// log for a one-off (whose user waits for their command, not for a jumphost).
enum Stages {
    Shown(Progress),
    Logged,
}

impl Stages {
    fn new(source: &Source, output: Output) -> Stages {
        if source.shows_stages() {
            Stages::Shown(output.progress("checking AWS identity"))
        } else {
            Stages::Logged
        }
    }

    fn stage(&self, message: &str) {
        match self {
            Stages::Shown(progress) => progress.stage(message),
            Stages::Logged => tracing::info!(stage = message, "one-off task"),
        }
    }

    fn finish(&self) {
        if let Stages::Shown(progress) = self {
            progress.finish();
        }
    }
}
