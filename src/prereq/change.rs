//! The plan: the difference between what should exist and what does, as a list of
//! changes a person can review and [`super::apply`] can carry out, in that order.
//!
//! Each change carries the operation that makes it, so what is shown is exactly what is
//! done. What init sees but will not touch (resources someone else made, a cluster that
//! still runs tasks, inbound rules on its security group) becomes a note instead: notes
//! are printed with the plan but are never changes, so a second run can report "no
//! changes" while still warning.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::config_file::{difference, written_by_init, ConfigValues, RoleRef, HEADER};
use super::desired::{AlertSpec, Desired, ExecSettings, Names, ReaperSpec, RoleSpec, ALERT_TARGET};
use super::survey::{ClusterState, RoleState, RuleState, SecurityGroupState, Survey};
use crate::session::provision::{reaper_task_definition, ReaperTask};

const CLUSTER: &str = "ecs cluster";
const CLUSTER_EXEC: &str = "ecs cluster exec settings";
const ROLE: &str = "iam role";
const TRUST: &str = "iam trust policy";
const POLICY: &str = "iam inline policy";
const LOG_GROUP: &str = "logs group";
const RETENTION: &str = "logs retention";
const SECURITY_GROUP: &str = "ec2 security group";
const ALERT_RULE: &str = "eventbridge rule";
const TASK_DEFINITION: &str = "ecs task definition";
const SCHEDULE: &str = "scheduler schedule";
const FILE: &str = "file";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One change, as shown and as done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub action: Action,
    pub resource: &'static str,
    pub name: String,
    pub detail: String,
    #[serde(skip)]
    pub op: Op,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.action.verb();
        write!(
            f,
            "{} {verb:<7} {} {}",
            self.action.symbol(),
            self.resource,
            self.name
        )?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The AWS (or file) operation behind a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    CreateLogGroup {
        name: String,
        retention_days: i32,
    },
    PutRetention {
        name: String,
        retention_days: i32,
    },
    DeleteLogGroup {
        name: String,
    },
    CreateRole {
        name: String,
        description: &'static str,
        trust: String,
    },
    PutTrust {
        role: String,
        trust: String,
    },
    PutPolicy {
        role: String,
        policy: &'static str,
        document: String,
    },
    DeletePolicy {
        role: String,
        policy: String,
    },
    DeleteRole {
        name: String,
    },
    CreateCluster {
        name: String,
        exec: ExecSettings,
    },
    SetClusterExec {
        name: String,
        exec: ExecSettings,
    },
    DeleteCluster {
        name: String,
    },
    CreateSecurityGroup {
        name: String,
        vpc: String,
    },
    DeleteSecurityGroup {
        id: String,
    },
    WriteConfig {
        path: PathBuf,
        values: ConfigValues,
    },
    RemoveConfig {
        path: PathBuf,
    },
    /// The rule (created or updated) with `topic` as its only target.
    PutAlertRule {
        name: String,
        pattern: String,
        topic: String,
    },
    /// The rule, after its targets (EventBridge refuses to delete a rule that has any).
    DeleteAlertRule {
        name: String,
        targets: Vec<String>,
    },
    /// A revision of the reaper's family with exactly this content, unless the latest is.
    RegisterReaper {
        task: ReaperTask,
    },
    /// The reaper's schedule, created or brought to this.
    PutSchedule(Box<ScheduleSpec>),
    DeleteSchedule {
        name: String,
    },
}

/// The reaper's schedule as init wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub name: String,
    pub exists: bool,
    pub expression: String,
    pub cluster: String,
    pub role: String,
    /// The family's ARN without a revision: each run takes the latest.
    pub task_definition: String,
    pub subnets: Vec<String>,
    /// `None` until init has created its security group.
    pub security_group: Option<String>,
    pub public: bool,
}

/// What init would do, and what it saw but leaves alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
}

impl Plan {
    /// One line per change, then one per note (`!`).
    pub fn lines(&self) -> Vec<String> {
        let changes = self.changes.iter().map(Change::to_string);
        let notes = self.notes.iter().map(|note| format!("! {note}"));
        changes.chain(notes).collect()
    }

    /// `2 to create, 1 to update, 0 to delete`.
    pub fn summary(&self) -> String {
        let count = |action| self.changes.iter().filter(|c| c.action == action).count();
        format!(
            "{} to create, {} to update, {} to delete",
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete)
        )
    }

    fn push(&mut self, action: Action, resource: &'static str, name: &str, detail: String, op: Op) {
        self.changes.push(Change {
            action,
            resource,
            name: name.to_string(),
            detail,
            op,
        });
    }

    fn kept(&mut self, resource: &str, name: &str) {
        self.notes
            .push(format!("kept {resource} {name} (not created by jump init)"));
    }

    fn used(&mut self, resource: &str, name: &str) {
        self.notes.push(format!(
            "{resource} {name} exists and was not created by jump init: used as it is, \
             and --destroy leaves it"
        ));
    }
}

/// The changes that make `survey` into `desired`: log groups first (the cluster's exec
/// settings name one), then roles, cluster, security group, and jump.toml last, since it
/// records the others' ARNs and ids.
pub fn init_plan(desired: &Desired, survey: &Survey) -> Plan {
    let mut plan = Plan::default();
    let names = &desired.names;
    log_group(&mut plan, &names.log_group, desired.retention_days, survey);
    if desired.session_logging {
        log_group(
            &mut plan,
            &names.exec_log_group,
            desired.retention_days,
            survey,
        );
    } else if survey.log_groups.contains_key(&names.exec_log_group) {
        plan.notes.push(format!(
            "kept {LOG_GROUP} {}: it holds earlier ECS Exec transcripts (--destroy removes it \
             if jump init created it)",
            names.exec_log_group
        ));
    }
    let [execution_role, task_role] = [&desired.execution_role, &desired.task_role].map(|spec| {
        let state = survey.roles.get(&spec.name);
        role(&mut plan, spec, state);
        RoleRef {
            name: spec.name.clone(),
            arn: role_arn(desired, survey, spec),
        }
    });
    cluster(&mut plan, desired, survey.cluster.as_ref());
    let security_group = security_group(&mut plan, desired, &survey.security_groups);
    if let Some(reaper) = &desired.reaper {
        self::reaper(&mut plan, desired, reaper, survey, security_group.clone());
    }
    if let Some(alerts) = &desired.alerts {
        alert_rule(
            &mut plan,
            &names.alert_rule,
            alerts,
            survey.alert_rule.as_ref(),
        );
    }
    plan.notes.extend(desired.network.notes.iter().cloned());
    let values = ConfigValues {
        cluster: names.cluster.clone(),
        subnets: desired.network.subnets.clone(),
        public: desired.network.public,
        security_group,
        image: desired.image.clone(),
        log_group: names.log_group.clone(),
        execution_role,
        task_role,
    };
    config(&mut plan, &desired.config, survey.config.as_deref(), values);
    plan
}

/// A role's ARN: as IAM has it, or as it will be once init creates it.
fn role_arn(desired: &Desired, survey: &Survey, spec: &RoleSpec) -> String {
    survey
        .roles
        .get(&spec.name)
        .map_or_else(|| desired.account.role_arn(&spec.name), |s| s.arn.clone())
}

/// The scheduled reaper: its two roles, its task definition and its schedule. The schedule
/// names the family without a revision, so a new revision needs no schedule change.
fn reaper(
    plan: &mut Plan,
    desired: &Desired,
    reaper: &ReaperSpec,
    survey: &Survey,
    security_group: Option<String>,
) {
    let names = &desired.names;
    for spec in [&reaper.task_role, &reaper.scheduler_role] {
        role(plan, spec, survey.roles.get(&spec.name));
    }
    let arn = |spec: &RoleSpec| role_arn(desired, survey, spec);
    let task = ReaperTask {
        family: names.reaper_family.clone(),
        image: reaper.image.clone(),
        cluster: names.cluster.clone(),
        task_role: arn(&reaper.task_role),
        execution_role: arn(&desired.execution_role),
        log_group: names.log_group.clone(),
        region: desired.account.region.clone(),
    };
    match reaper_task_definition(&task) {
        Ok(definition) => match &survey.reaper_definition {
            Some(hash) if *hash == definition.content_hash => {}
            found => {
                let (action, detail) = match found {
                    None => (
                        Action::Create,
                        format!("runs `jump gc` from {}", task.image),
                    ),
                    Some(_) => (
                        Action::Update,
                        format!("a new revision: `jump gc` from {}", task.image),
                    ),
                };
                plan.push(
                    action,
                    TASK_DEFINITION,
                    &task.family.clone(),
                    detail,
                    Op::RegisterReaper { task },
                );
            }
        },
        Err(err) => plan
            .notes
            .push(format!("cannot render the reaper's task definition: {err}")),
    }
    let wanted = ScheduleSpec {
        name: names.reaper_schedule.clone(),
        exists: survey.reaper_schedule.is_some(),
        expression: reaper.expression(),
        cluster: desired.account.cluster(&names.cluster),
        role: arn(&reaper.scheduler_role),
        task_definition: desired.account.task_definition_family(&names.reaper_family),
        subnets: desired.network.subnets.clone(),
        security_group,
        public: desired.network.public,
    };
    let detail = format!("{} → `jump gc` in {}", wanted.expression, names.cluster);
    match &survey.reaper_schedule {
        None => plan.push(
            Action::Create,
            SCHEDULE,
            &wanted.name.clone(),
            detail,
            Op::PutSchedule(Box::new(wanted)),
        ),
        Some(state) if !state.managed => plan.kept(SCHEDULE, &wanted.name),
        Some(state) => {
            let same = state.expression == wanted.expression
                && state.role == wanted.role
                && state.task_definition == wanted.task_definition
                && state.subnets == wanted.subnets
                && wanted
                    .security_group
                    .as_ref()
                    .is_some_and(|g| state.security_groups == [g.clone()]);
            if !same {
                plan.push(
                    Action::Update,
                    SCHEDULE,
                    &wanted.name.clone(),
                    format!("differs; {detail}"),
                    Op::PutSchedule(Box::new(wanted)),
                );
            }
        }
    }
}

/// The ExecuteCommand alert: made, or brought back to exactly the pattern and the one
/// target init would give it. Without `--alerts` an existing rule is left as it is.
fn alert_rule(plan: &mut Plan, name: &str, alerts: &AlertSpec, state: Option<&RuleState>) {
    let op = Op::PutAlertRule {
        name: name.to_string(),
        pattern: alerts.pattern.to_string(),
        topic: alerts.topic.clone(),
    };
    let Some(state) = state else {
        let detail = format!("every ECS Exec session → {}", alerts.topic);
        plan.push(Action::Create, ALERT_RULE, name, detail, op);
        return;
    };
    if !state.managed {
        plan.notes.push(format!(
            "kept {ALERT_RULE} {name} (not created by jump init): --alerts changes nothing \
             about it"
        ));
        return;
    }
    let targets = [(ALERT_TARGET.to_string(), alerts.topic.clone())];
    if state.pattern.as_ref() != Some(&alerts.pattern) || state.targets != targets {
        let detail = format!("differs; every ECS Exec session → {}", alerts.topic);
        plan.push(Action::Update, ALERT_RULE, name, detail, op);
    }
}

fn log_group(plan: &mut Plan, name: &str, days: i32, survey: &Survey) {
    let Some(state) = survey.log_groups.get(name) else {
        plan.push(
            Action::Create,
            LOG_GROUP,
            name,
            format!("retention {days} days"),
            Op::CreateLogGroup {
                name: name.to_string(),
                retention_days: days,
            },
        );
        return;
    };
    if !state.managed {
        plan.used(LOG_GROUP, name);
    } else if state.retention_days != Some(days) {
        let now = state
            .retention_days
            .map_or_else(|| "never expire".to_string(), |d| d.to_string());
        plan.push(
            Action::Update,
            RETENTION,
            name,
            format!("{now} → {days} days"),
            Op::PutRetention {
                name: name.to_string(),
                retention_days: days,
            },
        );
    }
}

fn role(plan: &mut Plan, spec: &RoleSpec, state: Option<&RoleState>) {
    let Some(state) = state else {
        plan.push(
            Action::Create,
            ROLE,
            &spec.name,
            format!(
                "assumed by {} of this account (templates/{})",
                spec.assumed_by, spec.trust_file
            ),
            Op::CreateRole {
                name: spec.name.clone(),
                description: spec.description,
                trust: spec.trust.to_string(),
            },
        );
        for wanted in &spec.policies {
            if let Some(document) = &wanted.document {
                let name = format!("{}/{}", spec.name, wanted.name);
                plan.push(
                    Action::Create,
                    POLICY,
                    &name,
                    format!("templates/{}", wanted.file),
                    put_policy(spec, wanted.name, document),
                );
            }
        }
        return;
    };
    if !state.managed {
        plan.used(ROLE, &spec.name);
        return;
    }
    if state.trust.as_ref() != Some(&spec.trust) {
        plan.push(
            Action::Update,
            TRUST,
            &spec.name,
            format!("differs from templates/{}", spec.trust_file),
            Op::PutTrust {
                role: spec.name.clone(),
                trust: spec.trust.to_string(),
            },
        );
    }
    for wanted in &spec.policies {
        let name = format!("{}/{}", spec.name, wanted.name);
        let file = format!("templates/{}", wanted.file);
        match (state.policies.get(wanted.name), &wanted.document) {
            (None, Some(document)) => plan.push(
                Action::Create,
                POLICY,
                &name,
                file,
                put_policy(spec, wanted.name, document),
            ),
            (Some(current), Some(document)) if current != document => plan.push(
                Action::Update,
                POLICY,
                &name,
                format!("differs from {file}"),
                put_policy(spec, wanted.name, document),
            ),
            (Some(_), None) => plan.push(
                Action::Delete,
                POLICY,
                &name,
                "not wanted with these flags".to_string(),
                Op::DeletePolicy {
                    role: spec.name.clone(),
                    policy: wanted.name.to_string(),
                },
            ),
            _ => {}
        }
    }
}

fn put_policy(spec: &RoleSpec, policy: &'static str, document: &serde_json::Value) -> Op {
    Op::PutPolicy {
        role: spec.name.clone(),
        policy,
        document: document.to_string(),
    }
}

/// A cluster init created gets exactly the ECS Exec settings the flags ask for. Someone
/// else's cluster is changed only in what a flag names (`--session-logging`,
/// `--kms-key`), and nothing else about it.
fn cluster(plan: &mut Plan, desired: &Desired, state: Option<&ClusterState>) {
    let name = &desired.names.cluster;
    let Some(state) = state else {
        let detail = if desired.exec.is_default() {
            String::new()
        } else {
            format!("ECS Exec: {}", desired.exec)
        };
        plan.push(
            Action::Create,
            CLUSTER,
            name,
            detail,
            Op::CreateCluster {
                name: name.clone(),
                exec: desired.exec.clone(),
            },
        );
        return;
    };
    let target = if state.managed {
        desired.exec.clone()
    } else {
        ExecSettings {
            log_group: desired
                .exec
                .log_group
                .clone()
                .or_else(|| state.exec.log_group.clone()),
            kms_key: desired
                .exec
                .kms_key
                .clone()
                .or_else(|| state.exec.kms_key.clone()),
        }
    };
    if !state.managed {
        plan.used(CLUSTER, name);
        if !state.exec.is_default() && desired.exec.is_default() {
            plan.notes.push(format!(
                "{CLUSTER} {name} has ECS Exec settings of its own ({}); the task role may \
                 need --session-logging or --kms-key to match them",
                state.exec
            ));
        }
    }
    if target != state.exec {
        let owner = if state.managed {
            ""
        } else {
            " (nothing else about this cluster changes)"
        };
        plan.push(
            Action::Update,
            CLUSTER_EXEC,
            name,
            format!("{} → {target}{owner}", state.exec),
            Op::SetClusterExec {
                name: name.clone(),
                exec: target,
            },
        );
    }
}

/// Returns the group's id when it exists already.
fn security_group(
    plan: &mut Plan,
    desired: &Desired,
    groups: &[SecurityGroupState],
) -> Option<String> {
    let name = &desired.names.security_group;
    let Some(group) = groups.first() else {
        plan.push(
            Action::Create,
            SECURITY_GROUP,
            name,
            format!("in {}: no inbound rules, all outbound", desired.vpc),
            Op::CreateSecurityGroup {
                name: name.clone(),
                vpc: desired.vpc.clone(),
            },
        );
        return None;
    };
    if !group.managed {
        plan.used(SECURITY_GROUP, &format!("{name} ({})", group.id));
    }
    if group.inbound_rules > 0 {
        plan.notes.push(format!(
            "WARN {SECURITY_GROUP} {name} ({}) has {} inbound rule(s) jump init did not make; \
             jumphosts need none (ECS Exec connects from inside the task), so consider \
             removing them",
            group.id, group.inbound_rules
        ));
    }
    Some(group.id.clone())
}

fn config(plan: &mut Plan, path: &Path, existing: Option<&str>, values: ConfigValues) {
    let wanted = values.render();
    let name = path.display().to_string();
    let op = Op::WriteConfig {
        path: path.to_path_buf(),
        values,
    };
    match existing {
        None => plan.push(Action::Create, FILE, &name, String::new(), op),
        Some(text) if text == wanted => {}
        Some(text) => plan.push(Action::Update, FILE, &name, difference(text, &wanted), op),
    }
}

/// The changes that remove what init created, dependants first: inline policies before
/// their roles, and the cluster only when it runs no tasks. `running_tasks` counts the
/// cluster's tasks; jump.toml goes last, and only if init wrote it.
pub fn destroy_plan(names: &Names, survey: &Survey, running_tasks: usize, config: &Path) -> Plan {
    let mut plan = Plan::default();
    match &survey.reaper_schedule {
        Some(state) if state.managed => plan.push(
            Action::Delete,
            SCHEDULE,
            &names.reaper_schedule,
            String::new(),
            Op::DeleteSchedule {
                name: names.reaper_schedule.clone(),
            },
        ),
        Some(_) => plan.kept(SCHEDULE, &names.reaper_schedule),
        None => {}
    }
    if survey.reaper_definition.is_some() {
        plan.notes.push(format!(
            "kept {TASK_DEFINITION} {}: ECS keeps registered revisions (deregister them with \
             `aws ecs deregister-task-definition` if you like)",
            names.reaper_family
        ));
    }
    for role in [
        &names.reaper_scheduler_role,
        &names.reaper_role,
        &names.task_role,
        &names.execution_role,
    ] {
        match survey.roles.get(role) {
            Some(state) if state.managed => {
                for policy in state.policies.keys() {
                    plan.push(
                        Action::Delete,
                        POLICY,
                        &format!("{role}/{policy}"),
                        String::new(),
                        Op::DeletePolicy {
                            role: role.clone(),
                            policy: policy.clone(),
                        },
                    );
                }
                plan.push(
                    Action::Delete,
                    ROLE,
                    role,
                    String::new(),
                    Op::DeleteRole { name: role.clone() },
                );
            }
            Some(_) => plan.kept(ROLE, role),
            None => {}
        }
    }
    for group in [&names.log_group, &names.exec_log_group] {
        match survey.log_groups.get(group) {
            Some(state) if state.managed => plan.push(
                Action::Delete,
                LOG_GROUP,
                group,
                "and the logs in it".to_string(),
                Op::DeleteLogGroup {
                    name: group.clone(),
                },
            ),
            Some(_) => plan.kept(LOG_GROUP, group),
            None => {}
        }
    }
    for group in &survey.security_groups {
        let name = format!("{} ({})", names.security_group, group.id);
        if group.managed {
            plan.push(
                Action::Delete,
                SECURITY_GROUP,
                &name,
                format!("in {}", group.vpc),
                Op::DeleteSecurityGroup {
                    id: group.id.clone(),
                },
            );
        } else {
            plan.kept(SECURITY_GROUP, &name);
        }
    }
    match &survey.alert_rule {
        Some(state) if state.managed => plan.push(
            Action::Delete,
            ALERT_RULE,
            &names.alert_rule,
            String::new(),
            Op::DeleteAlertRule {
                name: names.alert_rule.clone(),
                targets: state.targets.iter().map(|(id, _)| id.clone()).collect(),
            },
        ),
        Some(_) => plan.kept(ALERT_RULE, &names.alert_rule),
        None => {}
    }
    match &survey.cluster {
        Some(state) if state.managed && running_tasks > 0 => plan.notes.push(format!(
            "kept {CLUSTER} {}: {running_tasks} task(s) still running; stop them and run \
             `jump init --destroy` again",
            names.cluster
        )),
        Some(state) if state.managed => plan.push(
            Action::Delete,
            CLUSTER,
            &names.cluster,
            String::new(),
            Op::DeleteCluster {
                name: names.cluster.clone(),
            },
        ),
        Some(_) => plan.kept(CLUSTER, &names.cluster),
        None => {}
    }
    match survey.config.as_deref() {
        Some(text) if written_by_init(text) => plan.push(
            Action::Delete,
            FILE,
            &config.display().to_string(),
            String::new(),
            Op::RemoveConfig {
                path: config.to_path_buf(),
            },
        ),
        Some(_) => plan.notes.push(format!(
            "kept {FILE} {}: jump init did not write it (its first line is not `{HEADER}`)",
            config.display()
        )),
        None => {}
    }
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::prereq::desired::tests::desired;
    use crate::prereq::survey::{LogGroupState, ScheduleState};

    /// What the world looks like right after init applied `desired`.
    fn after_init(desired: &Desired) -> Survey {
        let role = |spec: &RoleSpec| RoleState {
            arn: desired.account.role_arn(&spec.name),
            managed: true,
            trust: Some(spec.trust.clone()),
            policies: spec
                .policies
                .iter()
                .filter_map(|p| Some((p.name.to_string(), p.document.clone()?)))
                .collect(),
        };
        let group = LogGroupState {
            managed: true,
            retention_days: Some(desired.retention_days),
        };
        let mut log_groups = BTreeMap::from([(desired.names.log_group.clone(), group.clone())]);
        if desired.session_logging {
            log_groups.insert(desired.names.exec_log_group.clone(), group);
        }
        let mut survey = Survey {
            cluster: Some(ClusterState {
                managed: true,
                exec: desired.exec.clone(),
            }),
            roles: [&desired.execution_role, &desired.task_role]
                .into_iter()
                .chain(
                    desired
                        .reaper
                        .iter()
                        .flat_map(|r| [&r.task_role, &r.scheduler_role]),
                )
                .map(|spec| (spec.name.clone(), role(spec)))
                .collect(),
            log_groups,
            security_groups: vec![SecurityGroupState {
                id: "sg-0c".into(),
                vpc: desired.vpc.clone(),
                managed: true,
                inbound_rules: 0,
            }],
            alert_rule: desired.alerts.as_ref().map(|alerts| RuleState {
                managed: true,
                pattern: Some(alerts.pattern.clone()),
                targets: vec![(ALERT_TARGET.to_string(), alerts.topic.clone())],
            }),
            reaper_definition: None,
            reaper_schedule: None,
            config: None,
        };
        let written = init_plan(desired, &survey);
        for change in &written.changes {
            match &change.op {
                Op::RegisterReaper { task } => {
                    survey.reaper_definition =
                        Some(reaper_task_definition(task).unwrap().content_hash);
                }
                Op::PutSchedule(spec) => {
                    survey.reaper_schedule = Some(ScheduleState {
                        managed: true,
                        expression: spec.expression.clone(),
                        role: spec.role.clone(),
                        task_definition: spec.task_definition.clone(),
                        subnets: spec.subnets.clone(),
                        security_groups: spec.security_group.iter().cloned().collect(),
                    });
                }
                _ => {}
            }
        }
        let Some(Op::WriteConfig { values, .. }) = written.changes.last().map(|c| &c.op) else {
            panic!("no config change in {written:?}");
        };
        survey.config = Some(values.render());
        survey
    }

    fn shown(plan: &Plan) -> Vec<String> {
        plan.lines()
    }

    #[test]
    fn a_fresh_account_gets_everything() {
        let desired = desired(|_| {}, None);
        let plan = init_plan(&desired, &Survey::default());
        assert_eq!(
            shown(&plan),
            vec![
                "+ create  logs group /jump/sessions: retention 30 days",
                "+ create  iam role jump-task-execution: assumed by ECS tasks of this account \
                 (templates/ecs-tasks-trust-policy.json)",
                "+ create  iam inline policy jump-task-execution/jump-execution: \
                 templates/execution-role-policy.json",
                "+ create  iam role jump-task: assumed by ECS tasks of this account \
                 (templates/ecs-tasks-trust-policy.json)",
                "+ create  iam inline policy jump-task/jump-ecs-exec: templates/task-role-policy.json",
                "+ create  ecs cluster jump",
                "+ create  ec2 security group jump-jumphost: in vpc-0a: no inbound rules, all outbound",
                "+ create  file jump.toml",
            ]
        );
        assert_eq!(plan.summary(), "8 to create, 0 to update, 0 to delete");
        let json = serde_json::to_value(&plan.changes[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "action": "create",
                "resource": "logs group",
                "name": "/jump/sessions",
                "detail": "retention 30 days"
            })
        );
        let Op::WriteConfig { values, .. } = &plan.changes[7].op else {
            panic!("{:?}", plan.changes[7]);
        };
        assert_eq!(values.security_group, None);
        assert_eq!(
            values.task_role.arn,
            "arn:aws:iam::123456789012:role/jump-task"
        );
    }

    #[test]
    fn a_second_run_changes_nothing() {
        for desired in [
            desired(|_| {}, None),
            desired(
                |i| i.session_logging = true,
                Some("arn:aws:kms:eu-west-1:1:key/k"),
            ),
        ] {
            let plan = init_plan(&desired, &after_init(&desired));
            assert_eq!(plan, Plan::default());
        }
    }

    #[test]
    fn drift_is_one_update_each() {
        let desired = desired(|_| {}, None);
        let mut survey = after_init(&desired);
        survey
            .log_groups
            .get_mut("/jump/sessions")
            .unwrap()
            .retention_days = Some(7);
        let plan = init_plan(&desired, &survey);
        assert_eq!(
            shown(&plan),
            vec!["~ update  logs retention /jump/sessions: 7 → 30 days"]
        );

        let mut survey = after_init(&desired);
        let task = survey.roles.get_mut("jump-task").unwrap();
        task.policies
            .insert("jump-ecs-exec".into(), serde_json::json!({"Statement": []}));
        task.policies
            .insert("jump-session-logging".into(), serde_json::json!({}));
        survey.config = Some(
            survey
                .config
                .unwrap()
                .replace("ttl = \"1h\"", "ttl = \"2h\""),
        );
        let plan = init_plan(&desired, &survey);
        assert_eq!(
            shown(&plan),
            vec![
                "~ update  iam inline policy jump-task/jump-ecs-exec: differs from \
                 templates/task-role-policy.json",
                "- delete  iam inline policy jump-task/jump-session-logging: not wanted with these flags",
                "~ update  file jump.toml: sets ttl",
            ]
        );
    }

    #[test]
    fn someone_elses_cluster_changes_only_in_what_a_flag_names() {
        let desired = desired(|i| i.session_logging = true, None);
        let mut survey = after_init(&desired);
        survey.cluster = Some(ClusterState {
            managed: false,
            exec: ExecSettings {
                log_group: None,
                kms_key: Some("arn:k".into()),
            },
        });
        let plan = init_plan(&desired, &survey);
        let [change] = plan.changes.as_slice() else {
            panic!("{plan:?}");
        };
        assert_eq!(change.resource, CLUSTER_EXEC);
        assert_eq!(
            change.op,
            Op::SetClusterExec {
                name: "jump".into(),
                exec: ExecSettings {
                    log_group: Some("/jump/exec".into()),
                    kms_key: Some("arn:k".into()),
                },
            }
        );
        assert!(
            plan.notes[0].contains("not created by jump init"),
            "{plan:?}"
        );

        let plain = desired_plain();
        let mut survey = after_init(&plain);
        survey.cluster = Some(ClusterState {
            managed: false,
            exec: ExecSettings::default(),
        });
        let plan = init_plan(&plain, &survey);
        assert!(plan.changes.is_empty(), "{plan:?}");
    }

    fn desired_plain() -> Desired {
        desired(|_| {}, None)
    }

    #[test]
    fn inbound_rules_are_warned_about_not_removed() {
        let desired = desired_plain();
        let mut survey = after_init(&desired);
        survey.security_groups[0].inbound_rules = 2;
        let plan = init_plan(&desired, &survey);
        assert!(plan.changes.is_empty());
        assert_eq!(plan.lines().len(), 1);
        assert!(
            plan.lines()[0].starts_with("! WARN ec2 security group jump-jumphost (sg-0c) has 2")
        );
    }

    #[test]
    fn the_exec_alert_is_made_kept_right_and_destroyed() {
        let topic = "arn:aws:sns:eu-west-1:123456789012:security";
        let with_alerts = desired(|i| i.alerts = Some(topic.into()), None);
        let plan = init_plan(&with_alerts, &Survey::default());
        let rule = plan
            .changes
            .iter()
            .find(|c| c.resource == ALERT_RULE)
            .expect("a rule to create");
        assert_eq!(
            rule.to_string(),
            format!("+ create  eventbridge rule jump-exec-alert: every ECS Exec session → {topic}")
        );
        let Op::PutAlertRule { pattern, .. } = &rule.op else {
            panic!("{:?}", rule.op)
        };
        let pattern: serde_json::Value = serde_json::from_str(pattern).unwrap();
        assert_eq!(
            pattern["detail"]["eventName"],
            serde_json::json!(["ExecuteCommand"])
        );
        assert_eq!(
            pattern["detail"]["requestParameters"]["cluster"],
            serde_json::json!(["jump", { "suffix": ":cluster/jump" }])
        );

        // Right as it is: nothing to do. Another topic, or an extra target: one update.
        let mut survey = after_init(&with_alerts);
        assert_eq!(init_plan(&with_alerts, &survey), Plan::default());
        let state = survey.alert_rule.as_mut().unwrap();
        state
            .targets
            .push(("someone".into(), "arn:aws:sns:eu-west-1:1:other".into()));
        let plan = init_plan(&with_alerts, &survey);
        assert_eq!(plan.changes.len(), 1, "{plan:?}");
        assert_eq!(plan.changes[0].action, Action::Update);

        // Without --alerts a rule stays; someone else's rule is never touched.
        let plain = desired(|_| {}, None);
        assert_eq!(
            init_plan(&plain, &after_init(&with_alerts)),
            Plan::default()
        );
        survey.alert_rule.as_mut().unwrap().managed = false;
        let plan = init_plan(&with_alerts, &survey);
        assert!(plan.changes.is_empty(), "{plan:?}");
        assert!(plan.notes[0].starts_with("kept eventbridge rule jump-exec-alert"));

        let plan = destroy_plan(
            &with_alerts.names,
            &after_init(&with_alerts),
            0,
            Path::new("jump.toml"),
        );
        let delete = plan
            .changes
            .iter()
            .find(|c| c.resource == ALERT_RULE)
            .unwrap();
        assert_eq!(
            delete.op,
            Op::DeleteAlertRule {
                name: "jump-exec-alert".into(),
                targets: vec![ALERT_TARGET.into()],
            }
        );
    }

    #[test]
    fn the_reaper_is_made_then_left_alone_and_destroyed_with_its_roles() {
        use crate::prereq::input::ReaperInput;
        let desired = desired(
            |i| {
                i.reaper = Some(ReaperInput {
                    every: std::time::Duration::from_secs(15 * 60),
                    image: "reaper:1".into(),
                })
            },
            None,
        );
        let plan = init_plan(&desired, &Survey::default());
        let lines = shown(&plan);
        for wanted in [
            "+ create  iam role jump-reaper: assumed by ECS tasks",
            "+ create  iam role jump-reaper-runs: assumed by EventBridge Scheduler",
            "+ create  ecs task definition jump-reaper: runs `jump gc` from reaper:1",
            "+ create  scheduler schedule jump-reaper: rate(15 minutes) → `jump gc` in jump",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(wanted)),
                "{wanted}: {lines:#?}"
            );
        }
        let schedule = plan.changes.iter().find_map(|c| match &c.op {
            Op::PutSchedule(spec) => Some(spec.clone()),
            _ => None,
        });
        let schedule = schedule.expect("a schedule");
        assert_eq!(
            schedule.task_definition,
            "arn:aws:ecs:eu-west-1:123456789012:task-definition/jump-reaper"
        );
        assert!(schedule.role.ends_with(":role/jump-reaper-runs"));

        let survey = after_init(&desired);
        assert_eq!(shown(&init_plan(&desired, &survey)), Vec::<String>::new());
        let mut faster = desired.clone();
        if let Some(reaper) = faster.reaper.as_mut() {
            reaper.every = std::time::Duration::from_secs(5 * 60);
        }
        let lines = shown(&init_plan(&faster, &survey));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0]
            .starts_with("~ update  scheduler schedule jump-reaper: differs; rate(5 minutes)"));

        let destroy = shown(&destroy_plan(&desired.names, &survey, 0, &desired.config));
        for wanted in [
            "- delete  scheduler schedule jump-reaper",
            "- delete  iam role jump-reaper-runs",
            "- delete  iam role jump-reaper",
            "! kept ecs task definition jump-reaper",
        ] {
            assert!(
                destroy.iter().any(|l| l.starts_with(wanted)),
                "{wanted}: {destroy:#?}"
            );
        }
    }

    #[test]
    fn destroy_removes_only_what_init_made() {
        let desired = desired_plain();
        let mut survey = after_init(&desired);
        let names = &desired.names;
        let plan = destroy_plan(names, &survey, 0, Path::new("jump.toml"));
        assert_eq!(
            shown(&plan),
            vec![
                "- delete  iam inline policy jump-task/jump-ecs-exec",
                "- delete  iam role jump-task",
                "- delete  iam inline policy jump-task-execution/jump-execution",
                "- delete  iam role jump-task-execution",
                "- delete  logs group /jump/sessions: and the logs in it",
                "- delete  ec2 security group jump-jumphost (sg-0c): in vpc-0a",
                "- delete  ecs cluster jump",
                "- delete  file jump.toml",
            ]
        );

        survey.cluster.as_mut().unwrap().managed = false;
        survey.roles.get_mut("jump-task").unwrap().managed = false;
        survey.config = Some("cluster = \"mine\"\n".into());
        let plan = destroy_plan(names, &survey, 0, Path::new("jump.toml"));
        assert!(!plan
            .changes
            .iter()
            .any(|c| c.name == "jump-task" || c.resource == CLUSTER));
        assert!(!plan.changes.iter().any(|c| c.resource == FILE));
        assert!(plan
            .notes
            .contains(&"kept iam role jump-task (not created by jump init)".to_string()));
        assert!(plan
            .notes
            .contains(&"kept ecs cluster jump (not created by jump init)".to_string()));

        let mut survey = after_init(&desired);
        survey.cluster.as_mut().unwrap().managed = true;
        let plan = destroy_plan(names, &survey, 2, Path::new("jump.toml"));
        assert!(!plan.changes.iter().any(|c| c.resource == CLUSTER));
        assert!(
            plan.notes[0].contains("2 task(s) still running"),
            "{plan:?}"
        );

        let empty = destroy_plan(names, &Survey::default(), 0, Path::new("jump.toml"));
        assert_eq!(empty, Plan::default());
    }
}
