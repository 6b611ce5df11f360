//! The IAM documents init puts on its roles, and how to compare them with what IAM holds.
//!
//! The documents live in `templates/` (embedded at build time, shared with
//! `examples/terraform/`, explained statement by statement in `templates/README.md`), with
//! `{{name}}` placeholders inside JSON strings. They are compared as parsed JSON, never as
//! text: IAM hands documents back URL-encoded and with its own whitespace, and a
//! formatting difference must not count as drift.

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

use crate::template::{self, Gap};

/// A template from `templates/`, by file name, embedded at build time.
macro_rules! template {
    ($file:literal) => {
        Template {
            file: $file,
            text: include_str!(concat!("../../templates/", $file)),
        }
    };
}

pub const TRUST: Template = template!("ecs-tasks-trust-policy.json");
pub const EXECUTION: Template = template!("execution-role-policy.json");
pub const EXECUTION_ECR: Template = template!("execution-role-ecr-policy.json");
pub const TASK: Template = template!("task-role-policy.json");
pub const TASK_LOGGING: Template = template!("task-role-logging-policy.json");
pub const SCHEDULER_TRUST: Template = template!("scheduler-trust-policy.json");
pub const REAPER_TASK: Template = template!("reaper-task-role-policy.json");
pub const REAPER_SCHEDULER: Template = template!("reaper-scheduler-policy.json");
pub const TASK_KMS: Template = template!("task-role-kms-policy.json");

/// One policy document template from `templates/`.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// The file name under `templates/`, for messages that send a reviewer there.
    pub file: &'static str,
    pub text: &'static str,
}

/// A template that cannot be filled in: a bug in a template or in init, not in user input.
#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("templates/{file} is not valid JSON: {source}")]
    Json {
        file: &'static str,
        source: serde_json::Error,
    },
    #[error("templates/{file} uses {{{{{name}}}}}, which jump init has no value for")]
    Unknown { file: &'static str, name: String },
    #[error("templates/{file} has an unterminated placeholder in `{text}`")]
    Unterminated { file: &'static str, text: String },
}

impl Template {
    /// The document with every placeholder filled in from `values`.
    pub fn render(&self, values: &BTreeMap<&str, String>) -> Result<Value, TemplateError> {
        let mut document: Value =
            serde_json::from_str(self.text).map_err(|source| TemplateError::Json {
                file: self.file,
                source,
            })?;
        // An empty value would leave a document that means something else.
        let present: BTreeMap<&str, String> = values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        template::fill(&mut document, &present).map_err(|gap| match gap {
            Gap::Unknown(name) => TemplateError::Unknown {
                file: self.file,
                name,
            },
            Gap::Unterminated(text) => TemplateError::Unterminated {
                file: self.file,
                text,
            },
        })?;
        Ok(document)
    }
}

/// A policy document as IAM returns it (URL-encoded on AWS, plain JSON elsewhere), parsed.
/// Something that is not JSON either way is kept as a string, so it compares unequal to
/// any document init wants.
pub fn parse_document(raw: &str) -> Value {
    serde_json::from_str(raw)
        .ok()
        .or_else(|| percent_decode(raw).and_then(|text| serde_json::from_str(&text).ok()))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

/// RFC 3986 percent-decoding, as IAM applies it (a `+` stays a `+`).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex_digit(*bytes.get(i + 1)?)?;
            let low = hex_digit(*bytes.get(i + 2)?)?;
            out.push((high << 4) | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("partition", "aws".to_string()),
            ("region", "eu-west-1".to_string()),
            ("account", "123456789012".to_string()),
            ("log_group", "/jump/sessions".to_string()),
            ("exec_log_group", "/jump/exec".to_string()),
            (
                "kms_key_arn",
                "arn:aws:kms:eu-west-1:123456789012:key/k".to_string(),
            ),
            (
                "ecr_repository",
                "arn:aws:ecr:eu-west-1:123456789012:repository/jumphost".to_string(),
            ),
        ])
    }

    #[test]
    fn every_role_template_renders_completely() {
        for template in [
            TRUST,
            EXECUTION,
            EXECUTION_ECR,
            TASK,
            TASK_LOGGING,
            TASK_KMS,
        ] {
            let document = template.render(&values()).unwrap();
            let text = document.to_string();
            assert!(!text.contains("{{"), "{}: {text}", template.file);
            assert_eq!(document["Version"], "2012-10-17", "{}", template.file);
        }
        let trust = TRUST.render(&values()).unwrap();
        let statement = &trust["Statement"][0];
        assert_eq!(statement["Principal"]["Service"], "ecs-tasks.amazonaws.com");
        assert_eq!(
            statement["Condition"]["ArnLike"]["aws:SourceArn"],
            "arn:aws:ecs:eu-west-1:123456789012:*"
        );
        let logging = TASK_LOGGING.render(&values()).unwrap().to_string();
        assert!(logging.contains("log-group:/jump/exec:*"), "{logging}");
    }

    #[test]
    fn missing_or_empty_values_are_errors() {
        let mut partial = values();
        partial.remove("account");
        assert!(matches!(
            TRUST.render(&partial),
            Err(TemplateError::Unknown { name, .. }) if name == "account"
        ));
        partial.insert("account", String::new());
        assert!(TRUST.render(&partial).is_err());
        let broken = Template {
            file: "x.json",
            text: r#"{"a": "{{partition"}"#,
        };
        assert!(matches!(
            broken.render(&values()),
            Err(TemplateError::Unterminated { .. })
        ));
    }

    #[test]
    fn documents_from_iam_are_decoded() {
        let plain = r#"{"Version": "2012-10-17", "Statement": []}"#;
        let expected = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        assert_eq!(parse_document(plain), expected);
        let encoded = "%7B%22Version%22%3A%20%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(parse_document(encoded), expected);
        let plus = "%7B%22a%22%3A%22x+y%22%7D";
        assert_eq!(parse_document(plus), serde_json::json!({"a": "x+y"}));
        assert_eq!(parse_document("%zz"), Value::String("%zz".into()));
        assert_eq!(percent_decode("%4"), None);
    }
}
