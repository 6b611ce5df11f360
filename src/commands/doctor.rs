//! `jump doctor`: runs the checks of [`crate::doctor`] for the configuration, or for one
//! running task, and exits 1 if any FAILs.
//!
//! Checks go from the bottom of the stack up (credentials, cluster, task, role,
//! network) and stop only where nothing further could be learnt: without credentials
//! there is nothing to ask, without a cluster no task to look at.

use aws_sdk_ecs::types::{Task, TaskDefinition};

use crate::aws::describe_task;
use crate::aws::{ApiError, Clients};
use crate::cli::{DoctorArgs, GlobalArgs};
use crate::doctor::identity::Caller;
use crate::doctor::network::Placement;
use crate::doctor::{cluster, identity, logs, network, role, task, Check, Report};
use crate::exit::Exit;
use crate::output::Output;
use crate::plan::Layers;
use crate::session::record::{session_task, Whose};
use crate::session::SessionId;
use crate::task::awslogs::AwsLogs;
use crate::task::eni;
use crate::task::{newest, service_tasks};

use super::choose::{chosen_service, chosen_session, chosen_task};
use super::layers;

pub async fn run(global: GlobalArgs, output: Output, mut args: DoctorArgs) -> anyhow::Result<Exit> {
    let mut session: Option<SessionId> = args.session.as_deref().map(str::parse).transpose()?;
    let layers = layers(args.config.as_deref(), &args.settings.pairs())?;
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    choose_target(&clients, &layers, output, &mut args, &mut session).await?;
    let mut report = Report::default();
    if let Some(program) = &global.ssm_plugin {
        report.add(plugin_check(program));
    }
    examine(&clients, &layers, &args, session, &mut report).await?;
    if output.json() {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = (!report.failed()).into();
        output.print_json(&value);
    } else {
        output.print(report.render().trim_end());
    }
    Ok(if report.failed() {
        Exit::ChecksFailed
    } else {
        Exit::Success
    })
}

/// What `--session`, `--task` or `--service` given alone mean: one chosen from a list.
async fn choose_target(
    clients: &Clients,
    layers: &Layers,
    output: Output,
    args: &mut DoctorArgs,
    session: &mut Option<SessionId>,
) -> anyhow::Result<()> {
    let wanted = |named: &Option<String>| named.as_deref() == Some("");
    if let Some(named) = &args.chosen {
        let named = (!named.is_empty()).then_some(named.as_str());
        let instead = "jump doctor SESSION";
        let cluster = layers.cluster()?;
        *session = Some(chosen_session(named, clients, &cluster, output, instead, |_| true).await?);
    } else if wanted(&args.task) {
        let instead = "jump doctor --task TASK";
        let cluster = layers.cluster()?;
        args.task = Some(chosen_task("", clients, &cluster, output, instead).await?);
    } else if wanted(&args.service) {
        let instead = "jump doctor --service NAME";
        let cluster = layers.cluster()?;
        args.service = Some(chosen_service("", clients, &cluster, output, instead).await?);
    }
    Ok(())
}

async fn examine(
    clients: &Clients,
    layers: &Layers,
    args: &DoctorArgs,
    session: Option<SessionId>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (check, caller) = identity::credentials(clients).await;
    report.add(check);
    let Some(caller) = caller else {
        return Ok(());
    };
    report.add(identity::owner_identity(&caller));
    let cluster_name = match layers.cluster() {
        Ok(name) => name,
        Err(err) => {
            report.add(Check::fail(
                "config",
                err.to_string(),
                "run `jump init`, or pass --cluster",
            ));
            return Ok(());
        }
    };
    let (check, exec) = cluster::cluster(clients, &cluster_name).await;
    report.add(check);
    let Some(exec) = exec else {
        return Ok(());
    };
    let principal = identity::principal(clients, &caller).await;
    if let Some(key) = &exec.kms_key {
        report.add(cluster::kms_key(clients, key, &principal, &caller).await);
    }
    if let Some(group) = &exec.log_group {
        let what = "ECS Exec session logs";
        report.add(logs::group(clients, "exec-log-group", group, what, false).await);
    }
    let task_arn = match (session, &args.task, &args.service) {
        (Some(id), _, _) => Some(session_task(clients, &cluster_name, &id, Whose::Anyones).await?),
        (None, Some(task), _) => Some(task.clone()),
        (None, None, Some(service)) => match newest_task(clients, &cluster_name, service).await {
            Ok(Some(arn)) => Some(arn),
            Ok(None) => {
                report.add(Check::fail(
                    "service",
                    format!("service {service} has no running tasks in cluster {cluster_name}"),
                    "check the service's events (aws ecs describe-services) for why tasks do not start",
                ));
                return Ok(());
            }
            Err(err) if err.code.as_deref() == Some("ServiceNotFoundException") => {
                report.add(Check::fail(
                    "service",
                    format!("there is no service {service} in cluster {cluster_name}"),
                    "check the name (aws ecs list-services) and the cluster",
                ));
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        },
        (None, None, None) => None,
    };
    match task_arn {
        Some(arn) => {
            let who = (&caller, principal.as_str());
            examine_task(clients, &cluster_name, &arn, args, &exec, who, report).await
        }
        None => {
            examine_config(clients, layers, &exec, (&caller, &principal), report).await;
            Ok(())
        }
    }
}

/// `--ssm-plugin` names a program that can be run (jump's own client needs nothing).
fn plugin_check(program: &std::path::Path) -> Check {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::metadata(program) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Check::pass(
            "ssm-plugin",
            format!("sessions go to the session-manager-plugin at {}", program.display()),
        ),
        Ok(_) => Check::fail(
            "ssm-plugin",
            format!("{} is not an executable file", program.display()),
            "point --ssm-plugin (JUMP_SSM_PLUGIN) at the plugin binary, or drop it: jump needs no plugin",
        ),
        Err(err) => Check::fail(
            "ssm-plugin",
            format!("cannot use {}: {err}", program.display()),
            "install AWS's session-manager-plugin there, or drop --ssm-plugin: jump needs no plugin",
        ),
    }
}

/// The newest running task of a service, exec-ready or not: the doctor says why not.
async fn newest_task(
    clients: &Clients,
    cluster: &str,
    service: &str,
) -> Result<Option<String>, ApiError> {
    let tasks = service_tasks(&clients.ecs, cluster, service).await?;
    Ok(newest(&tasks).and_then(Task::task_arn).map(str::to_string))
}

async fn definition(clients: &Clients, arn: &str) -> Result<TaskDefinition, ApiError> {
    let out = clients
        .ecs
        .describe_task_definition()
        .task_definition(arn)
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeTaskDefinition", e))?;
    out.task_definition().cloned().ok_or_else(|| ApiError {
        operation: "ecs:DescribeTaskDefinition",
        code: None,
        message: format!("no task definition {arn}"),
        transient: false,
    })
}

async fn examine_task(
    clients: &Clients,
    cluster: &str,
    task_arn: &str,
    args: &DoctorArgs,
    exec: &cluster::ExecSettings,
    (caller, principal): (&Caller, &str),
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some(found) = describe_task(&clients.ecs, cluster, task_arn).await? else {
        report.add(Check::fail(
            "task",
            format!("task {task_arn} not found in cluster {cluster}"),
            "check the id (`jump ls`, aws ecs list-tasks)",
        ));
        return Ok(());
    };
    let def = definition(clients, found.task_definition_arn().unwrap_or_default()).await?;
    report.extend(task::running(&found, args.container.as_deref()));
    report.extend(task::definition(Some(&found), &def));
    let role_arn = found
        .overrides()
        .and_then(|o| o.task_role_arn())
        .or(def.task_role_arn());
    match role_arn {
        Some(role_arn) => {
            report.add(Check::pass(
                "task-role",
                format!("the task runs as {role_arn}"),
            ));
            report.extend(role::checks(clients, role_arn, exec).await);
        }
        None => report.add(Check::fail(
            "task-role",
            "the task has no task role: the exec agent has no identity to open its channels with",
            "give the task definition a taskRoleArn with templates/task-role-policy.json",
        )),
    }
    report.add(identity::may_reach(clients, principal, cluster, &found, caller).await);
    let placement = placement(clients, &found, &def, exec.kms_key.is_some()).await;
    report.extend(network::checks(clients, &placement).await);
    report.extend(awslogs_group(clients, &def).await);
    Ok(())
}

/// The task's subnet, security groups and public IP, from its network interface.
async fn placement(
    clients: &Clients,
    found: &Task,
    def: &TaskDefinition,
    uses_kms: bool,
) -> Placement {
    let mut placement = Placement {
        subnets: eni::subnet_id(found).into_iter().collect(),
        security_groups: Vec::new(),
        public_ip: false,
        uses_awslogs: AwsLogs::of_task_definition(def).is_some(),
        uses_kms,
    };
    let interface = match eni::interface_id(found) {
        Some(id) => eni::describe(&clients.ec2, &id).await.ok().flatten(),
        None => None,
    };
    if let Some(interface) = interface {
        placement.security_groups = interface
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect();
        placement.public_ip = interface
            .association()
            .and_then(|a| a.public_ip())
            .is_some();
    }
    placement
}

async fn awslogs_group(clients: &Clients, def: &TaskDefinition) -> Option<Check> {
    let (_, destination) = AwsLogs::of_task_definition(def)?;
    Some(
        logs::group(
            clients,
            "log-group",
            &destination.group,
            "the task's container output",
            destination.create_group,
        )
        .await,
    )
}

/// Without a task: what `jump up` would use, from jump.toml, JUMP_<KEY> and flags.
async fn examine_config(
    clients: &Clients,
    layers: &Layers,
    exec: &cluster::ExecSettings,
    (caller, principal): (&Caller, &str),
    report: &mut Report,
) {
    let plan = match layers.clone().into_plan() {
        Ok(plan) => plan,
        Err(err) => {
            report.add(Check::fail(
                "config",
                err.to_string(),
                "fix jump.toml (or run `jump init`)",
            ));
            return;
        }
    };
    // The plan refuses exec mode without a task role, so no role here means ssh mode.
    match &plan.task_role {
        Some(role_arn) => {
            report.add(Check::pass(
                "task-role",
                format!("jumphosts run as {role_arn}"),
            ));
            report.extend(role::checks(clients, role_arn, exec).await);
        }
        None => report.add(Check::pass("task-role", "ssh mode needs no task role")),
    }
    report.add(execution_role(clients, &plan.execution_role).await);
    let logs = (&plan.log_group, &plan.container_name);
    report.add(role::execution_checks(clients, &plan.execution_role, logs.0, logs.1).await);
    if let Some(check) = role::pull_check(clients, &plan.execution_role, &plan.image).await {
        report.add(check);
    }
    report.add(identity::may_use(clients, principal, &plan, caller).await);
    let placement = Placement {
        subnets: plan.subnets.clone(),
        security_groups: plan.security_groups.clone(),
        public_ip: plan.public,
        uses_awslogs: true,
        uses_kms: exec.kms_key.is_some(),
    };
    report.extend(network::checks(clients, &placement).await);
    let what = "jumphost output, sshd log and host key";
    report.add(logs::group(clients, "log-group", &plan.log_group, what, true).await);
}

async fn execution_role(clients: &Clients, role_arn: &str) -> Check {
    let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    match clients.iam.get_role().role_name(name).send().await {
        Ok(_) => Check::pass("execution-role", format!("execution role {role_arn} exists")),
        Err(err) => Check::fail(
            "execution-role",
            format!("execution role {role_arn}: {}", ApiError::from_sdk("iam:GetRole", err)),
            "create it with templates/execution-role-policy.json (`jump init` does), or fix `execution_role`",
        ),
    }
}
