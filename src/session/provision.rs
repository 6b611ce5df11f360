//! A cold jumphost: jump's own task definition, and what its RunTask carries.
//!
//! The task definition is rendered from `templates/taskdef.json` (embedded at build time)
//! and registered only when its content changed: the rendered JSON is hashed, and the
//! latest revision of the family carries that hash in the `jump:content-hash` tag. Running
//! `jump up` a thousand times therefore creates one revision, not a thousand. The tag is
//! only a hint (anyone who may register the family can copy it): a revision is reused only
//! when its whole description is what jump would register (`super::reuse`).
//!
//! The jumphost's RunTask (`super::launch`) carries the session's public key and limits as
//! container environment overrides (nothing secret: the private key stays local).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, ContainerOverride,
    KeyValuePair, LogConfiguration, LogDriver, NetworkMode, PortMapping, TaskDefinitionField,
    TransportProtocol,
};
use serde::Deserialize;
use serde_json::Value;
use ssh_key::sha2::{Digest, Sha256};
use thiserror::Error;

use crate::template::{self, Gap};

use super::launch::RunSpec;
use super::reuse;
use super::tags::{session_tags, tag, TAG_CONTENT_HASH};
use super::SessionId;
use crate::aws::{ApiError, RawBody};
use crate::plan::{Mode, Plan};
use crate::task::awslogs::LOG_STREAM_PREFIX;

/// The task definition template, with `{{name}}` placeholders.
const TASKDEF_TEMPLATE: &str = include_str!("../../templates/taskdef.json");

/// What an exec-mode jumphost runs, whatever its image: `sh -c` this script. On ECS an
/// image runs its own ENTRYPOINT/CMD unless the task definition says otherwise, and a
/// stock image's is a shell that exits at once without a terminal (or a server that
/// never ends by itself); this keeps the task up, and ends it at its TTL and when idle.
const EXEC_WATCHDOG: &str = include_str!("../../templates/exec-watchdog.sh");

/// The template could not be rendered; a bug in the template, not in user input.
#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("task definition template is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("task definition template uses unknown placeholder {{{{{0}}}}}")]
    Placeholder(String),
    #[error("task definition template is incomplete: {0}")]
    Build(#[from] aws_sdk_ecs::error::BuildError),
}

/// A rendered task definition and the hash that identifies its content.
#[derive(Debug, Clone)]
pub struct TaskDefinition {
    pub spec: TaskDefinitionSpec,
    pub content_hash: String,
    /// The definition as RegisterTaskDefinition's JSON: what a reused revision must be.
    pub rendered: Value,
}

/// The subset of the ECS task definition the template may use. Unknown fields are
/// rejected so a template edit cannot be silently ignored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinitionSpec {
    pub family: String,
    pub cpu: String,
    pub memory: String,
    pub network_mode: String,
    pub requires_compatibilities: Vec<String>,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub container_definitions: Vec<ContainerSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub essential: bool,
    #[serde(default)]
    pub port_mappings: Vec<PortSpec>,
    pub log_configuration: LogSpec,
    #[serde(default)]
    pub entry_point: Vec<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: Vec<EnvSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    pub container_port: i32,
    pub protocol: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogSpec {
    pub log_driver: String,
    pub options: BTreeMap<String, String>,
}

/// The values the template's placeholders are filled with.
pub fn template_values(plan: &Plan, region: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("family", plan.family.clone()),
        ("cpu", plan.cpu.to_string()),
        ("memory", plan.memory.to_string()),
        ("task_role", plan.task_role.clone().unwrap_or_default()),
        ("execution_role", plan.execution_role.clone()),
        ("container_name", plan.container_name.clone()),
        ("image", plan.image.clone()),
        ("log_group", plan.log_group.clone()),
        ("region", region.to_string()),
        ("stream_prefix", LOG_STREAM_PREFIX.to_string()),
    ])
}

/// Fills a template: placeholders in string values are substituted, and an object
/// member whose value renders to the empty string is dropped (that is how optional
/// fields such as `taskRoleArn` disappear when unset).
fn filled(template: &str, values: &BTreeMap<&str, String>) -> Result<Value, TemplateError> {
    let mut json: Value = serde_json::from_str(template)?;
    template::fill(&mut json, values).map_err(|gap| match gap {
        Gap::Unknown(name) | Gap::Unterminated(name) => TemplateError::Placeholder(name),
    })?;
    drop_empty(&mut json);
    Ok(json)
}

fn hashed(json: Value) -> Result<TaskDefinition, TemplateError> {
    // serde_json's map is ordered by key, so this serialisation is canonical.
    let canonical = serde_json::to_vec(&json)?;
    let content_hash = Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(TaskDefinition {
        spec: serde_json::from_value(json.clone())?,
        content_hash,
        rendered: json,
    })
}

/// Placeholders left empty drop their key: an optional setting that is not set.
fn drop_empty(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(drop_empty),
        Value::Object(map) => {
            map.values_mut().for_each(drop_empty);
            map.retain(|_, v| v.as_str() != Some(""));
        }
        _ => {}
    }
}

/// Renders the embedded task definition template for a plan. In exec mode every
/// container runs jump's watchdog instead of its image's own command.
pub fn task_definition(plan: &Plan, region: &str) -> Result<TaskDefinition, TemplateError> {
    hashed(rendered(plan, region)?)
}

/// A warm pool's task definition: the jumphost's of the plan's mode, in a family of its
/// own per mode (so cold and pool revisions never take turns as a family's latest), with
/// the pool's limits in its environment, since a service cannot override a task's
/// environment. An idle warm task is the point of a pool: only its TTL ends it, and the
/// service replaces it. An ssh-mode one runs sshd with no key (`JUMP_SSHD`) until a
/// claim installs its session's.
pub fn pool_task_definition(
    plan: &Plan,
    region: &str,
    pool: &str,
    ttl: std::time::Duration,
) -> Result<TaskDefinition, TemplateError> {
    let mut json = rendered(plan, region)?;
    let family = match plan.mode {
        Mode::Exec => format!("{}-pool", plan.family),
        Mode::Ssh => format!("{}-pool-ssh", plan.family),
    };
    json["family"] = Value::String(family);
    let seconds = ttl.as_secs().to_string();
    let mut pairs = vec![
        ("JUMP_TTL_SECONDS", seconds.as_str()),
        ("JUMP_IDLE_SECONDS", seconds.as_str()),
        ("JUMP_POOL", pool),
    ];
    if plan.mode == Mode::Ssh {
        pairs.push(("JUMP_SSHD", "1"));
    }
    let environment: Value = pairs
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    for container in containers(&mut json) {
        container.insert("environment".into(), environment.clone());
    }
    hashed(json)
}

/// The scheduled reaper's task (`jump init --reaper`): jump itself, running `jump gc` on
/// the cluster with a role that may only list, describe and stop its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaperTask {
    pub family: String,
    /// An image whose entrypoint is jump.
    pub image: String,
    pub cluster: String,
    pub task_role: String,
    pub execution_role: String,
    pub log_group: String,
    pub region: String,
}

/// What the reaper's container is called, and where its log streams go.
pub const REAPER_CONTAINER: &str = "reaper";

/// The reaper's task definition: the smallest Fargate task, `gc --cluster C --json` as
/// its command, its output in the sessions' log group under `reaper/`. Its session state
/// goes to the task's own /tmp.
pub fn reaper_task_definition(reaper: &ReaperTask) -> Result<TaskDefinition, TemplateError> {
    hashed(serde_json::json!({
        "family": reaper.family,
        "cpu": "256",
        "memory": "512",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "taskRoleArn": reaper.task_role,
        "executionRoleArn": reaper.execution_role,
        "containerDefinitions": [{
            "name": REAPER_CONTAINER,
            "image": reaper.image,
            "essential": true,
            "command": ["gc", "--cluster", reaper.cluster, "--json"],
            "environment": [{"name": "JUMP_STATE_DIR", "value": "/tmp/jump"}],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": reaper.log_group,
                    "awslogs-region": reaper.region,
                    "awslogs-stream-prefix": REAPER_CONTAINER,
                },
            },
        }],
    }))
}

/// The container definitions of a rendered task definition, to adjust.
fn containers(json: &mut Value) -> impl Iterator<Item = &mut serde_json::Map<String, Value>> {
    json.get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn rendered(plan: &Plan, region: &str) -> Result<Value, TemplateError> {
    let mut json = filled(TASKDEF_TEMPLATE, &template_values(plan, region))?;
    if plan.mode == Mode::Exec {
        for container in containers(&mut json) {
            container.insert("entryPoint".into(), serde_json::json!(["sh", "-c"]));
            container.insert("command".into(), serde_json::json!([EXEC_WATCHDOG]));
        }
    }
    Ok(json)
}

/// Returns the ARN of a task definition revision with this content, registering a new
/// revision only if the family's latest one is not provably jump's own.
pub async fn ensure_task_definition(
    ecs: &aws_sdk_ecs::Client,
    def: &TaskDefinition,
) -> anyhow::Result<String> {
    let raw = RawBody::default();
    let latest = ecs
        .describe_task_definition()
        .task_definition(&def.spec.family)
        .include(TaskDefinitionField::Tags)
        .customize()
        .interceptor(raw.clone())
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:DescribeTaskDefinition", e));
    match latest {
        Ok(out) => {
            let tagged = out
                .tags()
                .iter()
                .any(|t| t.key() == Some(TAG_CONTENT_HASH) && t.value() == Some(&def.content_hash));
            let arn = out.task_definition().and_then(|d| d.task_definition_arn());
            if let (true, Some(arn)) = (tagged, arn) {
                let differences = match raw.json() {
                    Some(body) => reuse::differences(&body["taskDefinition"], &def.rendered),
                    None => vec!["DescribeTaskDefinition's answer was not readable".into()],
                };
                if differences.is_empty() {
                    tracing::debug!(arn, "task definition unchanged");
                    return Ok(arn.to_string());
                }
                tracing::warn!(
                    arn,
                    ?differences,
                    "the latest revision carries jump's content tag but is not what jump \
                     registers; registering a fresh one"
                );
            }
        }
        // A family that was never registered is reported as a client error.
        Err(e) if e.code.as_deref() == Some("ClientException") || e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    register(ecs, def).await
}

async fn register(ecs: &aws_sdk_ecs::Client, def: &TaskDefinition) -> anyhow::Result<String> {
    let spec = &def.spec;
    let mut request = ecs
        .register_task_definition()
        .family(&spec.family)
        .cpu(&spec.cpu)
        .memory(&spec.memory)
        .network_mode(NetworkMode::from(spec.network_mode.as_str()))
        .set_requires_compatibilities(Some(
            spec.requires_compatibilities
                .iter()
                .map(|c| Compatibility::from(c.as_str()))
                .collect(),
        ))
        .set_task_role_arn(spec.task_role_arn.clone())
        .set_execution_role_arn(spec.execution_role_arn.clone())
        .tags(tag(TAG_CONTENT_HASH, &def.content_hash));
    for container in &spec.container_definitions {
        request = request.container_definitions(container_definition(container)?);
    }
    let out = request
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("ecs:RegisterTaskDefinition", e))?;
    let arn = out
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .ok_or_else(|| anyhow::anyhow!("RegisterTaskDefinition returned no ARN"))?;
    tracing::info!(arn, "registered task definition");
    Ok(arn.to_string())
}

fn container_definition(spec: &ContainerSpec) -> Result<ContainerDefinition, TemplateError> {
    let log = LogConfiguration::builder()
        .log_driver(LogDriver::from(spec.log_configuration.log_driver.as_str()))
        .set_options(Some(
            spec.log_configuration
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ))
        .build()?;
    let ports = spec
        .port_mappings
        .iter()
        .map(|p| {
            PortMapping::builder()
                .container_port(p.container_port)
                .protocol(TransportProtocol::from(p.protocol.as_str()))
                .build()
        })
        .collect();
    let given = |words: &[String]| (!words.is_empty()).then(|| words.to_vec());
    let environment = spec
        .environment
        .iter()
        .map(|e| {
            KeyValuePair::builder()
                .name(&e.name)
                .value(&e.value)
                .build()
        })
        .collect::<Vec<_>>();
    Ok(ContainerDefinition::builder()
        .name(&spec.name)
        .image(&spec.image)
        .essential(spec.essential)
        .set_port_mappings(Some(ports))
        .log_configuration(log)
        .set_entry_point(given(&spec.entry_point))
        .set_command(given(&spec.command))
        .set_environment((!environment.is_empty()).then_some(environment))
        .build())
}

/// Where the plan's jumphosts run: its subnets and groups, a public address if asked.
pub fn network(plan: &Plan) -> Result<AwsVpcConfiguration, TemplateError> {
    Ok(AwsVpcConfiguration::builder()
        .set_subnets(Some(plan.subnets.clone()))
        .set_security_groups(Some(plan.security_groups.clone()))
        .assign_public_ip(if plan.public {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()?)
}

/// Everything `RunTask` needs beyond the plan.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub plan: &'a Plan,
    pub task_definition_arn: &'a str,
    pub session: &'a SessionId,
    pub owner: &'a str,
    /// The caller's user id, for IAM conditions on `${aws:userid}`.
    pub owner_id: &'a str,
    /// The session's public key (ssh mode); none in exec mode, so the task runs no sshd.
    pub authorized_key: Option<&'a str>,
    pub expires: SystemTime,
}

impl Launch<'_> {
    /// Environment overrides for the jumphost container (its entrypoint contract).
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let keys = self
            .authorized_key
            .map(|key| ("JUMP_AUTHORIZED_KEYS", key.to_string()));
        keys.into_iter()
            .chain([("JUMP_TTL_SECONDS", self.plan.ttl.as_secs().to_string())])
            .chain([
                (
                    "JUMP_IDLE_SECONDS",
                    self.plan.idle_timeout.as_secs().to_string(),
                ),
                ("JUMP_OWNER", self.owner.to_string()),
                ("JUMP_SESSION_ID", self.session.to_string()),
            ])
            .collect()
    }

    pub fn tags(&self) -> Vec<(&'static str, String)> {
        session_tags(self.owner, self.owner_id, self.session, self.expires)
    }

    /// The RunTask call that starts this jumphost where the plan says.
    pub fn run_spec(&self) -> Result<RunSpec, TemplateError> {
        let plan = self.plan;
        let network = network(plan)?;
        let mut container = ContainerOverride::builder().name(&plan.container_name);
        for (name, value) in self.environment() {
            container =
                container.environment(KeyValuePair::builder().name(name).value(value).build());
        }
        Ok(RunSpec {
            cluster: plan.cluster.clone(),
            task_definition: self.task_definition_arn.to_string(),
            network,
            // ECS refuses ECS Exec without a task role; ssh mode may run without one.
            exec: plan.task_role.is_some(),
            container: container.build(),
            task_role: None,
            cpu: None,
            memory: None,
            tags: self.tags(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::Layers;
    use crate::session::tags::{TAG_EXPIRES, TAG_OWNER, TAG_SESSION};

    /// A plan from a minimal jump.toml plus `extra` (which may name its own image).
    fn plan(extra: &str) -> Plan {
        let image = if extra.contains("image =") {
            ""
        } else {
            "image = \"jump/jumphost:latest\"\n"
        };
        let mut layers = Layers::default();
        layers
            .apply_toml(
                &format!(
                    "cluster = \"c\"\nsubnets = [\"subnet-1\"]\nsecurity_groups = [\"sg-1\"]\n\
                     execution_role = \"arn:aws:iam::1:role/e\"\n{image}{extra}"
                ),
                std::path::Path::new("jump.toml"),
            )
            .unwrap();
        layers.into_plan().unwrap()
    }

    #[test]
    fn renders_embedded_template() {
        let def = task_definition(&plan(""), "eu-west-1").unwrap();
        let spec = &def.spec;
        assert_eq!(spec.family, "jump-jumphost");
        assert_eq!((spec.cpu.as_str(), spec.memory.as_str()), ("256", "512"));
        assert_eq!(spec.network_mode, "awsvpc");
        assert_eq!(spec.requires_compatibilities, vec!["FARGATE"]);
        assert_eq!(spec.task_role_arn, None);
        assert_eq!(
            spec.execution_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/e")
        );
        let container = &spec.container_definitions[0];
        assert_eq!(container.name, "jumphost");
        assert_eq!(container.image, "jump/jumphost:latest");
        assert!(container.entry_point.is_empty() && container.command.is_empty());
        assert_eq!(container.port_mappings[0].container_port, 22);
        let options = &container.log_configuration.options;
        assert_eq!(container.log_configuration.log_driver, "awslogs");
        assert_eq!(options["awslogs-group"], "/jump/sessions");
        assert_eq!(options["awslogs-region"], "eu-west-1");
        assert_eq!(options["awslogs-stream-prefix"], "jump");
        assert_eq!(options["awslogs-create-group"], "true");
        assert_eq!(def.content_hash.len(), 64);
    }

    #[test]
    fn the_task_role_appears_when_set() {
        let def =
            task_definition(&plan("task_role = \"arn:aws:iam::1:role/t\""), "us-east-1").unwrap();
        assert_eq!(
            def.spec.task_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/t")
        );
    }

    #[test]
    fn exec_mode_runs_the_watchdog_whatever_the_image_runs() {
        let exec = task_definition(
            &plan("mode = \"exec\"\ntask_role = \"arn:aws:iam::1:role/t\""),
            "us-east-1",
        )
        .unwrap();
        let container = &exec.spec.container_definitions[0];
        assert_eq!(container.entry_point, ["sh", "-c"]);
        assert_eq!(container.command, [EXEC_WATCHDOG]);
        assert!(
            EXEC_WATCHDOG.contains("JUMP_TTL_SECONDS")
                && EXEC_WATCHDOG.contains("JUMP_IDLE_SECONDS")
        );
        // The script is its own command line (`sh -c TEXT`): spelling the session worker's
        // name in it would make the watchdog count itself as a session, and never idle.
        assert!(!EXEC_WATCHDOG.contains("ssm-session-worker"));
        // The same settings in ssh mode: only the entry point and command differ.
        let ssh =
            task_definition(&plan("task_role = \"arn:aws:iam::1:role/t\""), "us-east-1").unwrap();
        assert_ne!(exec.content_hash, ssh.content_hash);

        // Neither mode's revision is reused for the other.
        assert!(reuse::differences(&exec.rendered, &exec.rendered).is_empty());
        assert!(!reuse::differences(&ssh.rendered, &exec.rendered).is_empty());
        assert!(!reuse::differences(&exec.rendered, &ssh.rendered).is_empty());
    }

    #[test]
    fn hash_tracks_content_only() {
        let a = task_definition(&plan(""), "us-east-1").unwrap();
        let b = task_definition(&plan("ttl = \"2h\""), "us-east-1").unwrap();
        let c = task_definition(&plan("image = \"other:1\""), "us-east-1").unwrap();
        let d = task_definition(&plan(""), "eu-west-1").unwrap();
        assert_eq!(a.content_hash, b.content_hash);
        assert_ne!(a.content_hash, c.content_hash);
        assert_ne!(a.content_hash, d.content_hash);
    }

    #[test]
    fn launch_environment_and_tags() {
        let plan = plan("ttl = \"30m\"\nidle_timeout = \"5m\"");
        let session: SessionId = "00112233aabb".parse().unwrap();
        let launch = Launch {
            plan: &plan,
            task_definition_arn: "arn:td",
            session: &session,
            owner: "arn:aws:sts::1:user/me",
            owner_id: "AIDAEXAMPLE",
            authorized_key: Some("ssh-ed25519 AAAA k"),
            expires: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        let env: BTreeMap<_, _> = launch.environment().into_iter().collect();
        assert_eq!(env["JUMP_AUTHORIZED_KEYS"], "ssh-ed25519 AAAA k");
        assert_eq!(env["JUMP_TTL_SECONDS"], "1800");
        assert_eq!(env["JUMP_IDLE_SECONDS"], "300");
        assert_eq!(env["JUMP_OWNER"], "arn:aws:sts::1:user/me");
        assert_eq!(env["JUMP_SESSION_ID"], "00112233aabb");
        let tags: BTreeMap<_, _> = launch.tags().into_iter().collect();
        assert_eq!(tags[TAG_EXPIRES], "2023-11-14T22:13:20Z");
        assert_eq!(tags[TAG_SESSION], "00112233aabb");
        assert_eq!(tags[TAG_OWNER], "arn:aws:sts::1:user/me");
    }
}
