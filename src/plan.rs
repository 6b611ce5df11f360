//! The plan: every setting a session needs, merged from three layers and validated
//! before anything touches AWS.
//!
//! Precedence, lowest first: `jump.toml` (found in the working directory or one of its
//! parents, or named with `--config`), environment variables `JUMP_<KEY>`, and command
//! line flags. All three layers go through the same per-key parser, so a value means the
//! same thing wherever it is written and every error names where it came from.
//!
//! Validation lives here and only here: bad input must never cost an API call or leave
//! a task behind, so by the time a [`Plan`] exists it is known to be well formed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// Name of the configuration file searched for in the working directory and its parents.
pub const CONFIG_FILE: &str = "jump.toml";

/// Every key accepted in `jump.toml`, as `JUMP_<KEY>` and as `--<key>` (dashes for
/// underscores).
pub const KEYS: &[&str] = &[
    "cluster",
    "subnets",
    "security_groups",
    "public",
    "image",
    "cpu",
    "memory",
    "ttl",
    "idle_timeout",
    "log_group",
    "task_role",
    "execution_role",
    "container_name",
    "family",
    "login_user",
    "wait_timeout",
    "mode",
    "ssh_via",
    "pool",
    "forwards",
];

/// RunTask's `awsvpcConfiguration` limits (ECS API reference, AwsVpcConfiguration).
pub const MAX_SUBNETS: usize = 16;
pub const MAX_GROUPS: usize = 5;

const MIN_TTL: Duration = Duration::from_secs(60);
/// The longest a session may be asked to live; `jump gc` stops any of jump's tasks older.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// jump's task-definition family unless jump.toml names another.
const DEFAULT_FAMILY: &str = "jump-jumphost";

/// Where a value came from; used so every error can tell the user what to edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Configuration problems. Each message says what to change.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("missing `{key}`: set it with --{flag}, the environment variable {env}, or `{key} = {example}` in {CONFIG_FILE}")]
    Missing {
        key: &'static str,
        flag: String,
        env: String,
        example: &'static str,
    },
    #[error("unknown key `{key}` in {}; known keys: {}", path.display(), KEYS.join(", "))]
    UnknownKey { key: String, path: PathBuf },
    #[error("invalid `{key}` from {origin}: {reason}")]
    Invalid {
        key: String,
        origin: Origin,
        reason: String,
    },
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{cpu} CPU units cannot have {memory} MiB of memory on Fargate; valid memory for {cpu}: {allowed}")]
    CpuMemory {
        cpu: u32,
        memory: u32,
        allowed: String,
    },
    #[error("`cpu` must be one of 256, 512, 1024, 2048, 4096, 8192 or 16384 (got {0})")]
    Cpu(u32),
    #[error(
        "{count} {key} given ({origin}), but a Fargate task takes at most {max}; \
         list fewer (one per availability zone is enough)"
    )]
    TooMany {
        key: &'static str,
        count: usize,
        max: usize,
        origin: Origin,
    },
    #[error(
        "no `execution_role`: Fargate refuses a task definition that sends logs to CloudWatch \
         (awslogs, which jump uses for the host key and `jump logs`) without an execution role; \
         set --execution-role, JUMP_EXECUTION_ROLE or `execution_role` in jump.toml \
         (`jump init` creates one; templates/execution-role-policy.json is its policy)"
    )]
    NoExecutionRole,
    #[error(
        "a pool's jumphosts are claimed through ECS Exec, which needs a task role, also in \
         ssh mode: set --task-role, JUMP_TASK_ROLE or `task_role` in jump.toml to a role with \
         templates/task-role-policy.json (`jump init` creates one), or drop the pool"
    )]
    PoolWithoutTaskRole,
    #[error(
        "exec mode reaches the jumphost through ECS Exec, which needs a task role: set \
         --task-role, JUMP_TASK_ROLE or `task_role` in jump.toml to a role with \
         templates/task-role-policy.json (`jump init` creates one), or use --mode ssh"
    )]
    ExecWithoutTaskRole,
    #[error(
        "`ssh_via = \"ssm\"` reaches sshd through ECS Exec, which needs a task role: set \
         --task-role, JUMP_TASK_ROLE or `task_role` in jump.toml to a role with \
         templates/task-role-policy.json (`jump init` creates one), or use --ssh-via network"
    )]
    SsmWithoutTaskRole,
    #[error("`ttl` must be between 1m and 24h (got {0}); set it with --ttl, JUMP_TTL or `ttl` in jump.toml")]
    Ttl(String),
    #[error("`idle_timeout` ({idle}) must not exceed `ttl` ({ttl})")]
    IdleExceedsTtl { idle: String, ttl: String },
    #[error("`{0}` must be greater than zero")]
    Zero(&'static str),
}

/// How `jump up` reaches the jumphost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// sshd in the task, a per-session key and a pinned host key.
    #[default]
    Ssh,
    /// ECS Exec only: no sshd, no key, works with any image that has `sh`.
    Exec,
}

/// How ssh reaches the jumphost's sshd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SshVia {
    /// TCP to the task's address: its security group must let port 22 in.
    #[default]
    Network,
    /// A Session Manager port session to the task's own port 22, through its exec agent:
    /// no inbound rule, no VPN or public IP.
    Ssm,
}

impl SshVia {
    pub fn as_str(self) -> &'static str {
        match self {
            SshVia::Network => "network",
            SshVia::Ssm => "ssm",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ssh => "ssh",
            Mode::Exec => "exec",
        }
    }
}

/// The validated, immutable description of one session. Built only by [`Layers::into_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub cluster: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub public: bool,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub ttl: Duration,
    pub idle_timeout: Duration,
    pub log_group: String,
    pub task_role: Option<String>,
    /// Required: jump's task definition logs through awslogs (see [`PlanError::NoExecutionRole`]).
    pub execution_role: String,
    pub container_name: String,
    pub family: String,
    pub login_user: String,
    pub wait_timeout: Duration,
    pub mode: Mode,
    pub ssh_via: SshVia,
    /// A warm pool to claim the jumphost from (`jump pool create`), of the plan's mode.
    pub pool: Option<String>,
}

/// One raw value before it is interpreted for a key.
enum Raw<'a> {
    Text(&'a str),
    Toml(&'a toml::Value),
}

/// The merged, not yet validated settings. Later layers override earlier ones key by key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layers {
    cluster: Option<String>,
    subnets: Option<(Vec<String>, Origin)>,
    security_groups: Option<(Vec<String>, Origin)>,
    public: Option<bool>,
    image: Option<String>,
    cpu: Option<u32>,
    memory: Option<u32>,
    ttl: Option<Duration>,
    idle_timeout: Option<Duration>,
    log_group: Option<String>,
    task_role: Option<(String, Origin)>,
    execution_role: Option<(String, Origin)>,
    container_name: Option<String>,
    family: Option<String>,
    login_user: Option<String>,
    wait_timeout: Option<Duration>,
    mode: Option<Mode>,
    ssh_via: Option<SshVia>,
    pool: Option<String>,
    forwards: Option<Vec<(String, String)>>,
}

impl Layers {
    /// Loads all three layers: the config file (explicit or discovered from `cwd`), the
    /// environment via `env`, then `flags` as `(key, value)` pairs.
    pub fn load(
        explicit: Option<&Path>,
        cwd: &Path,
        env: impl Fn(&str) -> Option<String>,
        flags: &[(&str, String)],
    ) -> Result<Self, PlanError> {
        let mut layers = Layers::default();
        let file = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => find_config(cwd),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|source| PlanError::Read {
                path: path.clone(),
                source,
            })?;
            layers.apply_toml(&text, &path)?;
        }
        layers.apply_env(env)?;
        for (key, value) in flags {
            let origin = Origin::Flag(format!("--{}", key.replace('_', "-")));
            layers.set(key, Raw::Text(value), &origin)?;
        }
        Ok(layers)
    }

    /// Applies a `jump.toml` document; unknown keys are errors naming the key and file.
    pub fn apply_toml(&mut self, text: &str, path: &Path) -> Result<(), PlanError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| PlanError::Parse {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
        let origin = Origin::File(path.to_path_buf());
        for (key, value) in &table {
            if !KEYS.contains(&key.as_str()) {
                return Err(PlanError::UnknownKey {
                    key: key.clone(),
                    path: path.to_path_buf(),
                });
            }
            self.set(key, Raw::Toml(value), &origin)?;
        }
        Ok(())
    }

    /// Applies `JUMP_<KEY>` variables. Empty values count as unset so a variable can be
    /// blanked in a shell or CI step without deleting it.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), PlanError> {
        for key in KEYS {
            let var = env_var(key);
            if let Some(value) = env(&var).filter(|v| !v.trim().is_empty()) {
                self.set(key, Raw::Text(&value), &Origin::Env(var))?;
            }
        }
        Ok(())
    }

    fn set(&mut self, key: &str, raw: Raw<'_>, origin: &Origin) -> Result<(), PlanError> {
        let invalid = |reason: String| PlanError::Invalid {
            key: key.to_string(),
            origin: origin.clone(),
            reason,
        };
        match key {
            "cluster" => self.cluster = Some(text(raw).map_err(invalid)?),
            "subnets" => self.subnets = Some((list(raw).map_err(invalid)?, origin.clone())),
            "security_groups" => {
                self.security_groups = Some((list(raw).map_err(invalid)?, origin.clone()))
            }
            "public" => self.public = Some(boolean(raw).map_err(invalid)?),
            "image" => self.image = Some(text(raw).map_err(invalid)?),
            "cpu" => self.cpu = Some(number(raw).map_err(invalid)?),
            "memory" => self.memory = Some(number(raw).map_err(invalid)?),
            "ttl" => self.ttl = Some(duration(raw).map_err(invalid)?),
            "idle_timeout" => self.idle_timeout = Some(duration(raw).map_err(invalid)?),
            "log_group" => self.log_group = Some(text(raw).map_err(invalid)?),
            "task_role" => self.task_role = Some((text(raw).map_err(invalid)?, origin.clone())),
            "execution_role" => {
                self.execution_role = Some((text(raw).map_err(invalid)?, origin.clone()))
            }
            "container_name" => self.container_name = Some(text(raw).map_err(invalid)?),
            "family" => self.family = Some(text(raw).map_err(invalid)?),
            "login_user" => self.login_user = Some(user_name(raw).map_err(invalid)?),
            "wait_timeout" => self.wait_timeout = Some(duration(raw).map_err(invalid)?),
            "mode" => self.mode = Some(mode(raw).map_err(invalid)?),
            "ssh_via" => self.ssh_via = Some(ssh_via(raw).map_err(invalid)?),
            "pool" => self.pool = Some(pool_name(raw).map_err(invalid)?),
            "forwards" => self.forwards = Some(named(raw).map_err(invalid)?),
            _ => {
                return Err(invalid(format!(
                    "unknown key; known keys: {}",
                    KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Named forward targets (`[forwards]` in jump.toml, `JUMP_FORWARDS=name=spec,...`),
    /// as `(name, target)`; the targets are parsed by `jump forward`.
    pub fn forwards(&self) -> &[(String, String)] {
        self.forwards.as_deref().unwrap_or_default()
    }

    /// The cluster alone, for commands (`ls`, `down`) that need nothing else.
    pub fn cluster(&self) -> Result<String, PlanError> {
        self.cluster.clone().ok_or_else(|| missing("cluster"))
    }

    /// jump's task-definition family, as a plan would have it.
    pub fn family(&self) -> String {
        self.family
            .clone()
            .unwrap_or_else(|| DEFAULT_FAMILY.to_string())
    }

    /// Subnets and security groups alone, validated as for a plan: for a task that is not
    /// jump's own (`jump run --task-definition`), which needs nothing else of jump.toml.
    pub fn network(&self) -> Result<(Vec<String>, Vec<String>), PlanError> {
        Ok((
            ids(self.subnets.clone(), "subnets", "subnet-", MAX_SUBNETS)?,
            ids(
                self.security_groups.clone(),
                "security_groups",
                "sg-",
                MAX_GROUPS,
            )?,
        ))
    }

    /// Validates everything and produces the immutable [`Plan`].
    pub fn into_plan(self) -> Result<Plan, PlanError> {
        let cluster = self.cluster.ok_or_else(|| missing("cluster"))?;
        let subnets = ids(self.subnets, "subnets", "subnet-", MAX_SUBNETS)?;
        let security_groups = ids(self.security_groups, "security_groups", "sg-", MAX_GROUPS)?;
        let cpu = self.cpu.unwrap_or(256);
        let memory = self.memory.unwrap_or(512);
        check_cpu_memory(cpu, memory)?;
        let ttl = self.ttl.unwrap_or(Duration::from_secs(3600));
        check_ttl(ttl)?;
        // The default idle timeout shrinks to fit a short TTL; an explicit one must fit.
        let idle_timeout = self
            .idle_timeout
            .unwrap_or_else(|| Duration::from_secs(15 * 60).min(ttl));
        if idle_timeout.is_zero() {
            return Err(PlanError::Zero("idle_timeout"));
        }
        if idle_timeout > ttl {
            return Err(PlanError::IdleExceedsTtl {
                idle: humantime::format_duration(idle_timeout).to_string(),
                ttl: humantime::format_duration(ttl).to_string(),
            });
        }
        let wait_timeout = self.wait_timeout.unwrap_or(Duration::from_secs(5 * 60));
        if wait_timeout.is_zero() {
            return Err(PlanError::Zero("wait_timeout"));
        }
        // jump's task definition always logs through awslogs (the host key and `jump logs`
        // travel that way), and Fargate refuses to register that without an execution role.
        let execution_role =
            arn(self.execution_role, "execution_role")?.ok_or(PlanError::NoExecutionRole)?;
        let task_role = arn(self.task_role, "task_role")?;
        // A pool alone implies exec mode; `mode = "ssh"` claims from an ssh-mode pool.
        let mode = match (self.mode, &self.pool) {
            (None, Some(_)) => Mode::Exec,
            (mode, _) => mode.unwrap_or_default(),
        };
        if self.pool.is_some() && task_role.is_none() {
            return Err(PlanError::PoolWithoutTaskRole);
        }
        if mode == Mode::Exec && task_role.is_none() {
            return Err(PlanError::ExecWithoutTaskRole);
        }
        let ssh_via = self.ssh_via.unwrap_or_default();
        if mode == Mode::Ssh && ssh_via == SshVia::Ssm && task_role.is_none() {
            return Err(PlanError::SsmWithoutTaskRole);
        }
        Ok(Plan {
            cluster,
            subnets,
            security_groups,
            public: self.public.unwrap_or(false),
            // No default: an image name jump picked would be in a namespace it does not
            // control, and whoever owned it would run code in every user's jumphost.
            image: self.image.ok_or_else(|| missing("image"))?,
            cpu,
            memory,
            ttl,
            idle_timeout,
            log_group: self
                .log_group
                .unwrap_or_else(|| "/jump/sessions".to_string()),
            task_role,
            execution_role,
            container_name: self
                .container_name
                .unwrap_or_else(|| "jumphost".to_string()),
            family: self.family.unwrap_or_else(|| DEFAULT_FAMILY.to_string()),
            login_user: self.login_user.unwrap_or_else(|| "jump".to_string()),
            wait_timeout,
            mode,
            ssh_via,
            pool: self.pool,
        })
    }

    /// The pool named by jump.toml, `JUMP_POOL` or `--pool`, for `jump pool`.
    pub fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The plan of pool `name`'s jumphosts: what a session claiming from it would plan,
    /// so a pool is in the mode its sessions are (exec, unless `mode` says ssh).
    pub fn into_pool_plan(mut self, name: &str) -> Result<Plan, PlanError> {
        self.pool = Some(name.to_string());
        self.into_plan()
    }
}

/// `JUMP_<KEY>` for a config key.
pub fn env_var(key: &str) -> String {
    format!("JUMP_{}", key.to_ascii_uppercase())
}

/// Finds `jump.toml` in `start` or the nearest parent that has one.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|candidate| candidate.is_file())
}

/// Parses a duration written as bare seconds (`90`) or in humantime form (`1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); use seconds or e.g. 90s, 15m, 1h"))
}

fn missing(key: &'static str) -> PlanError {
    let example = match key {
        "cluster" => "\"my-cluster\"",
        "subnets" => "[\"subnet-0abc...\"]",
        "security_groups" => "[\"sg-0abc...\"]",
        "image" => "\"123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumphost@sha256:...\" (jump init writes one)",
        _ => "\"...\"",
    };
    PlanError::Missing {
        key,
        flag: key.replace('_', "-"),
        env: env_var(key),
        example,
    }
}

fn ids(
    value: Option<(Vec<String>, Origin)>,
    key: &'static str,
    prefix: &str,
    max: usize,
) -> Result<Vec<String>, PlanError> {
    let (values, origin) = value.ok_or_else(|| missing(key))?;
    if values.is_empty() {
        return Err(missing(key));
    }
    if values.len() > max {
        return Err(PlanError::TooMany {
            key,
            count: values.len(),
            max,
            origin,
        });
    }
    for value in &values {
        let well_formed = value.strip_prefix(prefix).is_some_and(|hex| {
            !hex.is_empty()
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        });
        if !well_formed {
            return Err(PlanError::Invalid {
                key: key.to_string(),
                origin,
                reason: format!(
                    "`{value}` does not look like `{prefix}` followed by lowercase hex digits"
                ),
            });
        }
    }
    Ok(values)
}

fn arn(value: Option<(String, Origin)>, key: &str) -> Result<Option<String>, PlanError> {
    match value {
        Some((arn, origin)) if !arn.starts_with("arn:") => Err(PlanError::Invalid {
            key: key.to_string(),
            origin,
            reason: format!("`{arn}` is not an ARN (it must start with `arn:`)"),
        }),
        other => Ok(other.map(|(arn, _)| arn)),
    }
}

/// The memory sizes (MiB) Fargate accepts for a CPU size, or `None` for an invalid CPU.
pub fn fargate_memory_options(cpu: u32) -> Option<Vec<u32>> {
    let (low, high, step) = match cpu {
        256 => return Some(vec![512, 1024, 2048]),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return None,
    };
    Some((low..=high).step_by(step).collect())
}

/// A task lifetime jump accepts: long enough to connect, short enough to be safe to forget.
pub fn check_ttl(ttl: Duration) -> Result<(), PlanError> {
    if (MIN_TTL..=MAX_TTL).contains(&ttl) {
        Ok(())
    } else {
        Err(PlanError::Ttl(humantime::format_duration(ttl).to_string()))
    }
}

pub fn check_cpu_memory(cpu: u32, memory: u32) -> Result<(), PlanError> {
    let options = fargate_memory_options(cpu).ok_or(PlanError::Cpu(cpu))?;
    if options.contains(&memory) {
        return Ok(());
    }
    let allowed = if options.len() <= 4 {
        options
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!(
            "{} to {} in steps of {}",
            options[0],
            options[options.len() - 1],
            options[1] - options[0]
        )
    };
    Err(PlanError::CpuMemory {
        cpu,
        memory,
        allowed,
    })
}

fn text(raw: Raw<'_>) -> Result<String, String> {
    let value = match raw {
        Raw::Text(s) => s.trim().to_string(),
        Raw::Toml(toml::Value::String(s)) => s.trim().to_string(),
        Raw::Toml(other) => return Err(format!("expected a string, got {}", other.type_str())),
    };
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(value)
}

/// A login name ssh passes as `-l` and sshd's `AllowUsers` matches: the portable POSIX
/// form, so that nothing in it reads as an option, a pattern or a second word.
fn user_name(raw: Raw<'_>) -> Result<String, String> {
    let name = text(raw)?;
    let first = |c: char| c.is_ascii_lowercase() || c == '_';
    let rest = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(first) && chars.all(rest) && name.len() <= 32;
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "'{name}' is not a user name: lower-case letters, digits, '_' and '-', starting \
             with a letter or '_', at most 32 characters"
        ))
    }
}

fn list(raw: Raw<'_>) -> Result<Vec<String>, String> {
    let items: Vec<String> = match raw {
        Raw::Text(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Raw::Toml(toml::Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Raw::Toml(toml::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s.trim().to_string()),
                other => Err(format!("expected strings, got {}", other.type_str())),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => {
            return Err(format!(
                "expected a list of strings, got {}",
                other.type_str()
            ))
        }
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

/// A table of names to strings in TOML, or `name=value` items in a list elsewhere.
fn named(raw: Raw<'_>) -> Result<Vec<(String, String)>, String> {
    if let Raw::Toml(toml::Value::Table(table)) = raw {
        return table
            .iter()
            .map(|(name, value)| match value {
                toml::Value::String(s) => Ok((name.clone(), s.clone())),
                other => Err(format!(
                    "`{name}` must be a string, got {}",
                    other.type_str()
                )),
            })
            .collect();
    }
    list(raw)?
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_string(), value.trim().to_string()))
            }
            _ => Err(format!("`{item}` is not name=target")),
        })
        .collect()
}

fn ssh_via(raw: Raw<'_>) -> Result<SshVia, String> {
    match text(raw)?.as_str() {
        "network" => Ok(SshVia::Network),
        "ssm" => Ok(SshVia::Ssm),
        other => Err(format!(
            "`{other}` is not a way to reach sshd; use `network` or `ssm`"
        )),
    }
}

fn pool_name(raw: Raw<'_>) -> Result<String, String> {
    let name = text(raw)?;
    check_pool_name(&name)?;
    Ok(name)
}

/// A pool's name: it names an ECS service (`jump-pool-NAME`) and a tag value.
pub fn check_pool_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a pool name: lower-case letters, digits and '-', starting with a \
             letter, at most 32 characters"
        ))
    }
}

fn mode(raw: Raw<'_>) -> Result<Mode, String> {
    match text(raw)?.as_str() {
        "ssh" => Ok(Mode::Ssh),
        "exec" => Ok(Mode::Exec),
        other => Err(format!("`{other}` is not a mode; use `ssh` or `exec`")),
    }
}

fn boolean(raw: Raw<'_>) -> Result<bool, String> {
    match raw {
        Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(format!("`{other}` is not a boolean; use true or false")),
        },
        Raw::Toml(other) => Err(format!("expected true or false, got {}", other.type_str())),
    }
}

fn number(raw: Raw<'_>) -> Result<u32, String> {
    match raw {
        Raw::Toml(toml::Value::Integer(n)) => {
            u32::try_from(*n).map_err(|_| format!("{n} is out of range"))
        }
        Raw::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number")),
        Raw::Toml(other) => Err(format!("expected a number, got {}", other.type_str())),
    }
}

fn duration(raw: Raw<'_>) -> Result<Duration, String> {
    match raw {
        Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| format!("{n} is not a valid number of seconds")),
        Raw::Toml(toml::Value::String(s)) => parse_duration(s),
        Raw::Text(s) => parse_duration(s),
        Raw::Toml(other) => Err(format!(
            "expected seconds or a duration like \"15m\", got {}",
            other.type_str()
        )),
    }
}

crate::exit::exit_class!(Usage: PlanError);

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn base() -> Layers {
        let mut layers = Layers::default();
        layers
            .apply_toml(
                "cluster = \"c\"\nsubnets = [\"subnet-0a1b\"]\nsecurity_groups = [\"sg-12ef\"]\n\
                 execution_role = \"arn:aws:iam::1:role/e\"\nimage = \"team/jumphost:1\"\n",
                Path::new("/x/jump.toml"),
            )
            .unwrap();
        layers
    }

    fn with_task_role(mut layers: Layers) -> Layers {
        layers
            .set(
                "task_role",
                Raw::Text("arn:aws:iam::1:role/t"),
                &Origin::Flag("--task-role".into()),
            )
            .unwrap();
        layers
    }

    fn with(mut layers: Layers, key: &str, value: &str) -> Result<Plan, PlanError> {
        layers.set(key, Raw::Text(value), &Origin::Flag(format!("--{key}")))?;
        layers.into_plan()
    }

    #[test]
    fn ssh_through_ssm_needs_a_task_role_and_a_known_way() {
        assert_eq!(base().into_plan().unwrap().ssh_via, SshVia::Network);
        let err = with(base(), "ssh_via", "ssm").unwrap_err().to_string();
        assert!(
            err.contains("task_role") && err.contains("--ssh-via network"),
            "{err}"
        );
        let err = with(base(), "ssh_via", "tcp").unwrap_err().to_string();
        assert!(err.contains("`network` or `ssm`"), "{err}");
        let layers = with_task_role(base());
        assert_eq!(with(layers, "ssh_via", "ssm").unwrap().ssh_via, SshVia::Ssm);
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let plan = base().into_plan().unwrap();
        assert_eq!(plan.cluster, "c");
        assert_eq!(plan.subnets, vec!["subnet-0a1b"]);
        assert_eq!(plan.security_groups, vec!["sg-12ef"]);
        assert!(!plan.public);
        assert_eq!(plan.image, "team/jumphost:1");
        assert_eq!((plan.cpu, plan.memory), (256, 512));
        assert_eq!(plan.ttl, Duration::from_secs(3600));
        assert_eq!(plan.idle_timeout, Duration::from_secs(900));
        assert_eq!(plan.wait_timeout, Duration::from_secs(300));
        assert_eq!(plan.log_group, "/jump/sessions");
        assert_eq!(plan.container_name, "jumphost");
        assert_eq!(plan.family, "jump-jumphost");
        assert_eq!(plan.login_user, "jump");
        assert_eq!(plan.task_role, None);
    }

    #[test]
    fn missing_cluster_says_how_to_set_it() {
        let err = Layers::default().into_plan().unwrap_err().to_string();
        assert!(err.contains("--cluster"), "{err}");
        assert!(err.contains("JUMP_CLUSTER"), "{err}");
        assert!(err.contains("jump.toml"), "{err}");
    }

    #[test]
    fn missing_security_groups_names_all_three_ways() {
        let mut layers = Layers::default();
        layers
            .apply_toml("cluster = \"c\"\nsubnets = \"subnet-1\"", Path::new("j"))
            .unwrap();
        let err = layers.into_plan().unwrap_err().to_string();
        assert!(err.contains("--security-groups"), "{err}");
        assert!(err.contains("JUMP_SECURITY_GROUPS"), "{err}");
    }

    #[test]
    fn unknown_toml_key_names_key_and_file() {
        let err = Layers::default()
            .apply_toml("clutser = \"c\"", Path::new("/etc/jump.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clutser"), "{err}");
        assert!(err.contains("/etc/jump.toml"), "{err}");
    }

    #[test]
    fn toml_syntax_error_names_file() {
        let err = Layers::default()
            .apply_toml("cluster = ", Path::new("/a/jump.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/a/jump.toml"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let mut layers = base();
        layers
            .apply_env(|var| match var {
                "JUMP_CLUSTER" => Some("from-env".into()),
                "JUMP_SUBNETS" => Some("subnet-aa, subnet-bb".into()),
                "JUMP_PUBLIC" => Some("true".into()),
                "JUMP_IMAGE" => Some("  ".into()),
                _ => None,
            })
            .unwrap();
        let plan = layers.clone().into_plan().unwrap();
        assert_eq!(plan.cluster, "from-env");
        assert_eq!(plan.subnets, vec!["subnet-aa", "subnet-bb"]);
        assert!(plan.public);
        assert_eq!(plan.image, "team/jumphost:1");
        let plan = with(layers, "cluster", "from-flag").unwrap();
        assert_eq!(plan.cluster, "from-flag");
    }

    #[test]
    fn load_reads_explicit_file_env_and_flags() {
        let dir = std::env::temp_dir().join(format!("jump-plan-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        let file = dir.join(CONFIG_FILE);
        std::fs::write(&file, "cluster = \"file\"\nttl = 120\n").unwrap();
        let found = find_config(&dir.join("nested")).unwrap();
        assert_eq!(found, file);
        let flags = [
            ("subnets", "subnet-1".to_string()),
            ("security_groups", "sg-2".to_string()),
            ("execution_role", "arn:aws:iam::1:role/e".to_string()),
            ("image", "team/jumphost:1".to_string()),
        ];
        let layers = Layers::load(None, &dir.join("nested"), no_env, &flags).unwrap();
        let plan = layers.into_plan().unwrap();
        assert_eq!(plan.cluster, "file");
        assert_eq!(plan.ttl, Duration::from_secs(120));
        let err = Layers::load(Some(&dir.join("absent.toml")), &dir, no_env, &[]).unwrap_err();
        assert!(err.to_string().contains("absent.toml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_must_be_well_formed() {
        let err = with(base(), "subnets", "subnet-XYZ")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("subnet-XYZ") && err.contains("--subnets"),
            "{err}"
        );
        assert!(with(base(), "subnets", "subnet-").is_err());
        assert!(with(base(), "subnets", "sg-123").is_err());
        assert!(with(base(), "security_groups", "sg-12g").is_err());
        assert!(with(base(), "security_groups", "subnet-12").is_err());
        assert!(with(base(), "security_groups", "sg-0123456789abcdef0,sg-1").is_ok());
        let err = with(base(), "subnets", ",").unwrap_err().to_string();
        assert!(err.contains("missing `subnets`"), "{err}");
    }

    #[test]
    fn cpu_memory_pairs_follow_fargate() {
        let pair = |cpu: &str, mem: &str| {
            let mut layers = base();
            layers.set("cpu", Raw::Text(cpu), &Origin::Flag("--cpu".into()))?;
            layers.set("memory", Raw::Text(mem), &Origin::Flag("--memory".into()))?;
            layers.into_plan()
        };
        for (cpu, mem) in [
            ("256", "512"),
            ("256", "2048"),
            ("512", "1024"),
            ("512", "4096"),
            ("1024", "8192"),
            ("2048", "16384"),
            ("4096", "30720"),
        ] {
            assert!(pair(cpu, mem).is_ok(), "{cpu}/{mem}");
        }
        for (cpu, mem) in [
            ("256", "4096"),
            ("512", "512"),
            ("512", "1536"),
            ("1024", "1024"),
            ("4096", "31744"),
            ("128", "512"),
        ] {
            assert!(pair(cpu, mem).is_err(), "{cpu}/{mem}");
        }
        let err = pair("256", "4096").unwrap_err().to_string();
        assert!(err.contains("512, 1024, 2048"), "{err}");
        let err = pair("1024", "1000").unwrap_err().to_string();
        assert!(err.contains("2048 to 8192 in steps of 1024"), "{err}");
        assert!(pair("abc", "512").is_err());
    }

    #[test]
    fn ttl_and_idle_bounds() {
        assert!(with(base(), "ttl", "59").is_err());
        assert!(with(base(), "ttl", "60").is_ok());
        assert!(with(base(), "ttl", "24h").is_ok());
        assert!(with(base(), "ttl", "24h 1s").is_err());
        let err = with(base(), "idle_timeout", "2h").unwrap_err().to_string();
        assert!(err.contains("must not exceed"), "{err}");
        assert!(with(base(), "idle_timeout", "0").is_err());
        assert!(with(base(), "wait_timeout", "0s").is_err());
        let plan = with(base(), "idle_timeout", "1h").unwrap();
        assert_eq!(plan.idle_timeout, plan.ttl);
        let plan = with(base(), "ttl", "5m").unwrap();
        assert_eq!(plan.idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn durations_accept_seconds_and_humantime() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5").is_err());
        let mut layers = Layers::default();
        layers
            .apply_toml("ttl = 300\nidle_timeout = \"2m\"", Path::new("j"))
            .unwrap();
        assert_eq!(layers.ttl, Some(Duration::from_secs(300)));
        assert_eq!(layers.idle_timeout, Some(Duration::from_secs(120)));
        assert!(Layers::default()
            .apply_toml("ttl = -1", Path::new("j"))
            .is_err());
    }

    #[test]
    fn arns_must_look_like_arns() {
        let err = with(base(), "task_role", "my-role")
            .unwrap_err()
            .to_string();
        assert!(err.contains("arn:"), "{err}");
        let plan = with(base(), "execution_role", "arn:aws:iam::1:role/x").unwrap();
        assert_eq!(plan.execution_role, "arn:aws:iam::1:role/x");
    }

    #[test]
    fn an_execution_role_is_required_because_jump_logs_through_awslogs() {
        let mut layers = Layers::default();
        layers
            .apply_toml(
                "cluster = \"c\"\nsubnets = [\"subnet-1\"]\nsecurity_groups = [\"sg-1\"]\n",
                Path::new("jump.toml"),
            )
            .unwrap();
        let err = layers.into_plan().unwrap_err().to_string();
        assert!(
            err.contains("execution_role") && err.contains("awslogs") && err.contains("jump init"),
            "{err}"
        );
    }

    #[test]
    fn exec_mode_needs_a_task_role_for_ecs_exec() {
        let err = with(base(), "mode", "exec").unwrap_err().to_string();
        assert!(
            err.contains("task_role") && err.contains("--mode ssh"),
            "{err}"
        );
        let layers = with_task_role(base());
        assert_eq!(with(layers, "mode", "exec").unwrap().mode, Mode::Exec);
    }

    #[test]
    fn a_pool_is_exec_mode_unless_ssh_is_asked_for_and_either_needs_a_task_role() {
        let err = with(base(), "pool", "dev").unwrap_err().to_string();
        assert!(
            err.contains("claimed through ECS Exec") && err.contains("task_role"),
            "{err}"
        );
        let mut ssh = base();
        ssh.set("mode", Raw::Text("ssh"), &Origin::Flag("--mode".into()))
            .unwrap();
        let err = ssh.into_pool_plan("ops").unwrap_err().to_string();
        assert!(err.contains("claimed through ECS Exec"), "{err}");

        let plan = with_task_role(base()).into_pool_plan("dev").unwrap();
        assert_eq!((plan.mode, plan.pool.as_deref()), (Mode::Exec, Some("dev")));
        let mut ssh = with_task_role(base());
        ssh.set("mode", Raw::Text("ssh"), &Origin::Flag("--mode".into()))
            .unwrap();
        assert_eq!(ssh.into_pool_plan("ops").unwrap().mode, Mode::Ssh);
    }

    #[test]
    fn at_most_sixteen_subnets_and_five_security_groups() {
        let subnets = |n: usize| {
            (1..=n)
                .map(|i| format!("subnet-{i:x}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(with(base(), "subnets", &subnets(16)).is_ok());
        let err = with(base(), "subnets", &subnets(17))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("17 subnets") && err.contains("at most 16") && err.contains("--subnets"),
            "{err}"
        );
        let groups = (1..=6).map(|i| format!("sg-{i}")).collect::<Vec<_>>();
        let err = with(base(), "security_groups", &groups.join(","))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 5"), "{err}");
    }

    #[test]
    fn type_errors_name_key_and_origin() {
        let err = Layers::default()
            .apply_toml("public = \"yes\"", Path::new("/p/jump.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`public`") && err.contains("/p/jump.toml"),
            "{err}"
        );
        let err = Layers::default()
            .apply_env(|v| (v == "JUMP_CPU").then(|| "lots".to_string()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("JUMP_CPU") && err.contains("lots"), "{err}");
        assert!(Layers::default()
            .apply_toml("cluster = 5", Path::new("j"))
            .is_err());
        assert!(Layers::default()
            .apply_toml("subnets = [1]", Path::new("j"))
            .is_err());
    }

    #[test]
    fn named_forwards_from_a_table_or_a_list() {
        let mut layers = Layers::default();
        let text = "[forwards]\ndb = \"5432:rds:orders\"\nrepl = \"7888:repl.internal:7888\"\n";
        layers.apply_toml(text, Path::new("j")).unwrap();
        assert_eq!(
            layers.forwards(),
            [
                ("db".to_string(), "5432:rds:orders".to_string()),
                ("repl".to_string(), "7888:repl.internal:7888".to_string())
            ]
        );
        assert_eq!(
            named(Raw::Text("db=rds:orders, web = 8080:web:80")),
            Ok(vec![
                ("db".into(), "rds:orders".into()),
                ("web".into(), "8080:web:80".into())
            ])
        );
        assert!(named(Raw::Text("no-equals")).is_err());
        assert!(Layers::default()
            .apply_toml("[forwards]\ndb = 5432\n", Path::new("j"))
            .is_err());
    }

    #[test]
    fn booleans_from_text() {
        for (text, expected) in [("true", true), ("YES", true), ("0", false), ("off", false)] {
            assert_eq!(boolean(Raw::Text(text)), Ok(expected));
        }
        assert!(boolean(Raw::Text("maybe")).is_err());
    }

    #[test]
    fn memory_options_table() {
        assert_eq!(fargate_memory_options(256), Some(vec![512, 1024, 2048]));
        assert_eq!(
            fargate_memory_options(512),
            Some(vec![1024, 2048, 3072, 4096])
        );
        assert_eq!(fargate_memory_options(4096).unwrap().len(), 23);
        assert_eq!(fargate_memory_options(3000), None);
    }
}
