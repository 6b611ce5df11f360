//! Asking IAM's policy simulator what a principal may do, as IAM will judge the real call.
//!
//! SimulatePrincipalPolicy answers the question it is asked, not the one meant: without
//! `ResourceArns` it evaluates `*`, which a statement scoped to one log group or key
//! never matches, and without `ContextEntries` every condition (`ecs:cluster`, the owner
//! tag, `iam:PassedToService`) is unmet and every policy variable (`${aws:userid}`)
//! unresolved. So every question here names the ARN the real call touches and the
//! context keys it carries; results then mean what a user would see on a first real run.

use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};

use crate::aws::ApiError;

/// A condition key and its value(s) in the simulated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub key: String,
    pub values: Vec<String>,
    pub list: bool,
}

impl Context {
    pub fn string(key: &str, value: &str) -> Context {
        Context {
            key: key.to_string(),
            values: vec![value.to_string()],
            list: false,
        }
    }

    pub fn list(key: &str, values: &[&str]) -> Context {
        Context {
            key: key.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
            list: true,
        }
    }

    fn entry(&self) -> ContextEntry {
        ContextEntry::builder()
            .context_key_name(&self.key)
            .set_context_key_values(Some(self.values.clone()))
            .context_key_type(if self.list {
                ContextKeyTypeEnum::StringList
            } else {
                ContextKeyTypeEnum::String
            })
            .build()
    }
}

/// May the principal call these actions on this resource, in this context?
#[derive(Debug, Clone)]
pub struct Question<'a> {
    pub actions: &'a [&'a str],
    pub resource: String,
    pub context: Vec<Context>,
}

impl<'a> Question<'a> {
    pub fn new(actions: &'a [&'a str], resource: impl Into<String>) -> Self {
        Question {
            actions,
            resource: resource.into(),
            context: Vec::new(),
        }
    }

    pub fn with(mut self, context: Context) -> Self {
        self.context.push(context);
        self
    }

    pub fn with_all(mut self, context: &[Context]) -> Self {
        self.context.extend_from_slice(context);
        self
    }
}

/// Which of the question's actions the simulator says `principal` may not call.
pub async fn denied(
    iam: &aws_sdk_iam::Client,
    principal: &str,
    question: &Question<'_>,
) -> Result<Vec<String>, ApiError> {
    let out = iam
        .simulate_principal_policy()
        .policy_source_arn(principal)
        .set_action_names(Some(
            question.actions.iter().map(|a| a.to_string()).collect(),
        ))
        .resource_arns(&question.resource)
        .set_context_entries(Some(question.context.iter().map(Context::entry).collect()))
        .send()
        .await
        .map_err(|e| ApiError::from_sdk("iam:SimulatePrincipalPolicy", e))?;
    Ok(out
        .evaluation_results()
        .iter()
        .filter(|r| r.eval_decision() != &PolicyEvaluationDecisionType::Allowed)
        .map(|r| r.eval_action_name().to_string())
        .collect())
}
