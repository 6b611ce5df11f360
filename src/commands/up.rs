//! `jump up`: the whole lifecycle — plan, provision, wait, connect, teardown.
//!
//! The plan is validated before any AWS call. From the moment the session directory
//! exists, the [`Guard`] owns it (and the task, once launched); the session itself runs
//! under the signal policy, and whatever way it ends, the guard's teardown runs once
//! afterwards. `--detach` hands task and directory over to the user instead.

use anyhow::Context as _;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::{layers, Context};
use crate::aws::Clients;
use crate::cli::UpArgs;
use crate::connect::exec::{self, ExecTarget};
use crate::connect::forward::{self, ForwardSpec};
use crate::connect::ssh::{self, Target};
use crate::exit::Exit;
use crate::keys::{host_key_alias, SessionDir};
use crate::output::{Output, Progress};
use crate::plan::{Mode, Plan};
use crate::session::guard::Guard;
use crate::session::hostkey::{wait_for_host_key, Stream};
use crate::session::provision::{self, log_stream_name, Launch};
use crate::session::record::SessionRecord;
use crate::session::wait::{self, Endpoint, WaitSpec};
use crate::session::SessionId;
use crate::signals::ChildPid;

/// sshd listens on this port in the jumphost.
const SSH_PORT: u16 = 22;
/// The least time left for a step, however much of the wait budget is used up.
const MIN_STEP: Duration = Duration::from_secs(10);

/// What a session does once its jumphost is reachable.
pub enum After {
    /// A shell, or these words as a command.
    Run(Vec<String>),
    /// Port forwards for as long as the user wants (`jump forward` without a session).
    Forward(Vec<ForwardSpec>),
}

pub async fn run(ctx: &mut Context, args: UpArgs) -> anyhow::Result<Exit> {
    let mut flags = args.settings.pairs();
    if args.public {
        flags.push(("public", "true".to_string()));
    }
    let plan = layers(args.config.as_deref(), &flags)?.into_plan()?;
    run_plan(ctx, plan, args.detach, After::Run(args.command)).await
}

/// The lifecycle for a validated plan: provision, wait, connect, and always tear down.
pub async fn run_plan(
    ctx: &mut Context,
    plan: Plan,
    detach: bool,
    after: After,
) -> anyhow::Result<Exit> {
    let clients = Clients::new(ctx.global.profile.as_deref(), ctx.global.region.as_deref())
        .await?
        .with_ssm_plugin(ctx.global.ssm_plugin.clone());
    let id = SessionId::random();
    let dir = SessionDir::create(&id)?;
    let guard = Guard::new(clients.ecs.clone(), &plan.cluster, dir.clone());
    let session = Session {
        plan,
        clients,
        id,
        dir,
        guard: guard.clone(),
        output: ctx.output,
        child: ctx.child.clone(),
        detach,
        after,
    };
    ctx.guarded(&guard, session.run()).await
}

/// Everything one session needs, owned so it can run as a spawned task.
struct Session {
    plan: Plan,
    clients: Clients,
    id: SessionId,
    dir: SessionDir,
    guard: Guard,
    output: Output,
    child: ChildPid,
    detach: bool,
    after: After,
}

impl Session {
    async fn run(self) -> anyhow::Result<Exit> {
        let plan = &self.plan;
        let progress = self.output.progress("checking AWS identity");
        let caller = self.clients.caller().await?;
        let owner = caller.arn;

        progress.stage("preparing the task definition");
        let definition = provision::task_definition(plan, &self.clients.region)?;
        let definition_arn =
            provision::ensure_task_definition(&self.clients.ecs, &definition).await?;

        let exec_mode = plan.mode == Mode::Exec;
        let authorized_key = if exec_mode {
            None
        } else {
            Some(self.dir.generate_keypair(&self.id)?)
        };
        let expires = SystemTime::now() + plan.ttl;
        // One budget for the whole wait, however many times the task has to be started.
        let deadline = Instant::now() + plan.wait_timeout;
        let attempt = || async {
            progress.stage("starting the task");
            let task_arn = self
                .launch(
                    &definition_arn,
                    &owner,
                    &caller.user_id,
                    authorized_key.as_deref(),
                    expires,
                )
                .await?;
            tracing::info!(task_arn, session = %self.id, "task started");
            let spec = self.wait_spec(&task_arn, deadline);
            let endpoint = wait::wait_running(&self.clients, &spec, |status| {
                progress.stage(&format!("task {status}"))
            })
            .await?;
            Ok((task_arn, endpoint))
        };
        let (task_arn, endpoint) =
            wait::until_roles_assumable(attempt, |note| progress.stage(note)).await?;
        let spec = self.wait_spec(&task_arn, deadline);
        let host = endpoint
            .public_ip
            .clone()
            .unwrap_or_else(|| endpoint.private_ip.clone());
        let words = match &self.after {
            After::Run(words) if !exec_mode => words,
            _ => {
                return self
                    .exec(progress, &task_arn, &endpoint, &host, &owner, expires)
                    .await
            }
        };

        progress.stage("reading the jumphost's host key");
        let stream = log_stream_name(&plan.container_name, &task_arn);
        let logged = Stream {
            group: &plan.log_group,
            name: &stream,
            not_before: endpoint.not_before,
        };
        let host_key = tokio::select! {
            key = wait_for_host_key(&self.clients.logs, &logged, remaining(deadline)) => match key {
                Ok(key) => key,
                Err(err) => return Err(self.explain_stop(&spec, err).await),
            },
            stopped = wait::until_stopped(&self.clients, &spec) => return Err(stopped.into()),
        };
        let alias = host_key_alias(&self.id);
        self.dir.write_known_hosts(&alias, SSH_PORT, &host_key)?;
        let record = self.record(&task_arn, &endpoint, &host, &owner, expires);
        record.save(&self.dir)?;

        if self.detach {
            progress.finish();
            return self.detached(&record).await;
        }

        progress.stage(&format!("waiting for sshd on {host}"));
        tokio::select! {
            ready = ssh::wait_for_port(&host, SSH_PORT, remaining(deadline)) => ready?,
            stopped = wait::until_stopped(&self.clients, &spec) => return Err(stopped.into()),
        }
        progress.finish();
        let target = Target {
            host,
            port: SSH_PORT,
            user: plan.login_user.clone(),
            identity: self.dir.private_key_path(),
            known_hosts: self.dir.known_hosts_path(),
            host_key_alias: alias,
        };
        let code = ssh::run(&target, words, &self.child).await?;
        Ok(Exit::Remote(code))
    }

    /// Exec mode: no host key, no ssh; the session goes through ECS Exec.
    async fn exec(
        &self,
        progress: Progress,
        task_arn: &str,
        endpoint: &Endpoint,
        host: &str,
        owner: &str,
        expires: SystemTime,
    ) -> anyhow::Result<Exit> {
        let record = self.record(task_arn, endpoint, host, owner, expires);
        record.save(&self.dir)?;
        progress.finish();
        if self.detach {
            return self.detached(&record).await;
        }
        let target = ExecTarget {
            cluster: self.plan.cluster.clone(),
            task_arn: task_arn.to_string(),
            container: Some(self.plan.container_name.clone()),
        };
        match &self.after {
            After::Run(words) => Ok(Exit::Remote(
                exec::run(&self.clients, &target, words, &self.child).await?,
            )),
            After::Forward(specs) => {
                forward::forward_all(&self.clients, &target, specs, self.output).await
            }
        }
    }

    fn wait_spec<'a>(&'a self, task_arn: &'a str, deadline: Instant) -> WaitSpec<'a> {
        let plan = &self.plan;
        WaitSpec {
            cluster: &plan.cluster,
            task_arn,
            container: &plan.container_name,
            log_group: &plan.log_group,
            log_stream_prefix: provision::LOG_STREAM_PREFIX,
            public: plan.public,
            exec_agent: plan.mode == Mode::Exec,
            timeout: remaining(deadline),
        }
    }

    /// Calls RunTask through the guard, so the task is owned even if we are cancelled.
    async fn launch(
        &self,
        definition_arn: &str,
        owner: &str,
        owner_id: &str,
        authorized_key: Option<&str>,
        expires: SystemTime,
    ) -> anyhow::Result<String> {
        let launch = Launch {
            plan: &self.plan,
            task_definition_arn: definition_arn,
            session: &self.id,
            owner,
            owner_id,
            authorized_key,
            expires,
        };
        provision::run_task(&self.clients.ecs, &self.guard, &launch).await
    }

    /// A missing host key is often a task that died after starting; say so if it did.
    async fn explain_stop(&self, spec: &WaitSpec<'_>, err: anyhow::Error) -> anyhow::Error {
        match wait::describe_task(&self.clients.ecs, spec.cluster, spec.task_arn).await {
            Ok(Some(task)) if task.last_status() == Some("STOPPED") => {
                wait::stopped_error(&self.clients, spec, &task).await.into()
            }
            _ => err,
        }
    }

    fn record(
        &self,
        task_arn: &str,
        endpoint: &Endpoint,
        host: &str,
        owner: &str,
        expires: SystemTime,
    ) -> SessionRecord {
        SessionRecord {
            id: self.id.to_string(),
            task_arn: task_arn.to_string(),
            cluster: self.plan.cluster.clone(),
            region: self.clients.region.clone(),
            ip: host.to_string(),
            private_ip: endpoint.private_ip.clone(),
            public_ip: endpoint.public_ip.clone(),
            expires: humantime::format_rfc3339_seconds(expires).to_string(),
            owner: owner.to_string(),
            login_user: self.plan.login_user.clone(),
            mode: self.plan.mode.as_str().to_string(),
        }
    }

    /// Hands the session over, once the user has been told how to reach and stop it: if
    /// that cannot be printed (stdout closed), the session is torn down instead.
    async fn detached(&self, record: &SessionRecord) -> anyhow::Result<Exit> {
        self.print_detached(record)
            .context("cannot print the detached session, so it is stopped again")?;
        self.guard.release().await;
        Ok(Exit::Success)
    }

    fn print_detached(&self, record: &SessionRecord) -> std::io::Result<()> {
        let ssh = format!("jump {} {}", record.mode, record.id);
        if self.output.json() {
            self.output.deliver_json(&json!({
                "session": record.id,
                "task_arn": record.task_arn,
                "cluster": record.cluster,
                "ip": record.ip,
                "private_ip": record.private_ip,
                "public_ip": record.public_ip,
                "expires": record.expires,
                "owner": record.owner,
                "ssh": ssh,
            }))
        } else {
            self.output.deliver(&format!(
                "session  {}\ntask     {}\nip       {}\nexpires  {}\nconnect  {ssh}\nstop     jump down {}",
                record.id, record.task_arn, record.ip, record.expires, record.id
            ))
        }
    }
}

/// Time left until `deadline`, but never less than [`MIN_STEP`].
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(MIN_STEP)
}
