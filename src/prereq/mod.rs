//! The prerequisites of jumphosts, made by `jump init` and removed by `jump init --destroy`.
//!
//! A jumphost needs a cluster, a task execution role, a task role allowed exactly the
//! ECS Exec channels, a log group, a security group and a jump.toml naming them all.
//! Init works like a small, single-purpose Terraform: decide what should exist
//! ([`desired`]), look at what does ([`survey`]), compute the difference ([`change`]),
//! show it, and only then [`apply`] it. Each step is a separate module so the decisions,
//! which are pure, can be tested without AWS, and the AWS calls stay few and obvious.
//!
//! Ownership is by tag: everything init creates carries `jump:managed-by = jump-init`
//! and `jump:init-name = <name>`, and init changes or deletes only what carries both.
//! Resources with the right names but not those tags are used and reported, never
//! modified (the one exception being a cluster's ECS Exec settings, and only the ones a
//! flag asks for, shown in the plan).

mod apply;
mod change;
mod config_file;
mod desired;
mod input;
mod network;
mod policy;
mod survey;

pub use apply::apply;
pub use change::Plan;
pub use input::Input;

use crate::aws::{ApiError, Clients};
use desired::Names;
use survey::Survey;

pub use crate::session::tags::{MANAGED_BY, TAG_MANAGED_BY};
pub const TAG_INIT_NAME: &str = "jump:init-name";

/// What `jump init` would change to put everything in place.
pub async fn plan_init(clients: &Clients, input: &Input) -> anyhow::Result<Plan> {
    let desired = desired::resolve(clients, input).await?;
    let survey = Survey::take(
        clients,
        &desired.names,
        Some(&desired.vpc),
        input.existing_config.clone(),
    )
    .await?;
    Ok(change::init_plan(&desired, &survey))
}

/// What `jump init --destroy` would remove. The security group is looked for in every
/// VPC unless `--vpc` names one, so destroy needs no more flags than init was given.
pub async fn plan_destroy(clients: &Clients, input: &Input) -> anyhow::Result<Plan> {
    let names = Names::new(input);
    let survey = Survey::take(
        clients,
        &names,
        input.vpc.as_deref(),
        input.existing_config.clone(),
    )
    .await?;
    let running = match &survey.cluster {
        Some(cluster) if cluster.managed => {
            survey::running_tasks(&clients.ecs, &names.cluster).await?
        }
        _ => 0,
    };
    Ok(change::destroy_plan(
        &names,
        &survey,
        running,
        &input.config,
    ))
}

/// "Does not exist", in the words of IAM (`NoSuchEntity`) and of the other services.
fn is_missing(err: &ApiError) -> bool {
    err.code.as_deref() == Some("NoSuchEntity") || err.is_not_found()
}
