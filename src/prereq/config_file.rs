//! The jump.toml init writes, pointing at what it created.
//!
//! The file starts with a header that says who wrote it; `--destroy` removes the file only
//! while that header is there, so a jump.toml someone rewrote by hand survives. Values
//! are written by the `toml` crate, so any name or ARN is quoted correctly, and the file
//! is compared key by key so the plan can say which settings an update changes.

use std::fmt::Write as _;

use toml::Value;

/// The first line of every file init writes.
pub const HEADER: &str = "# Written by `jump init`.";

const EXPLANATION: &str = "\
# It points jump at what init created. Run `jump init` again rather than editing it
# (init shows edits as changes and puts its own values back); `jump init --destroy`
# removes it together with the rest, as long as the first line is left as it is.
#
# cluster          the ECS cluster jumphosts run in
# subnets          where a jumphost's network interface goes
# security_groups  init's security group: no inbound rules, all outbound
# public           true only where the subnets' one way out is an internet gateway;
#                  jumphosts are reached through ECS Exec either way (nothing connects in)
# mode             \"exec\": ECS Exec only, no sshd and no keys (nothing may connect in)
# image            the jumphost image; exec mode works with any image that has sh
# log_group        the jumphosts' output, kept for init's retention period
# execution_role   lets ECS pull the image and write the log stream
# task_role        the jumphost's own AWS identity: ECS Exec channels only
# ttl              a jumphost stops itself after this long, whatever happens to jump
";

/// Shown in the plan for the id of a security group init has yet to create.
const NEW_SECURITY_GROUP: &str = "(new security group)";

/// The settings jump.toml records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValues {
    pub cluster: String,
    pub subnets: Vec<String>,
    /// Whether jumphosts get a public IP: when the subnets' only way out is an internet
    /// gateway.
    pub public: bool,
    /// `None` until init has created its security group.
    pub security_group: Option<String>,
    pub image: String,
    pub log_group: String,
    pub execution_role: RoleRef,
    pub task_role: RoleRef,
}

/// A role by name (to match it when it is created) and ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRef {
    pub name: String,
    pub arn: String,
}

impl ConfigValues {
    pub fn render(&self) -> String {
        let text = |s: &str| Value::String(s.to_string());
        let security_group = self.security_group.as_deref().unwrap_or(NEW_SECURITY_GROUP);
        let entries = [
            ("cluster", text(&self.cluster)),
            (
                "subnets",
                Value::Array(self.subnets.iter().map(|s| text(s)).collect()),
            ),
            ("security_groups", Value::Array(vec![text(security_group)])),
            ("public", Value::Boolean(self.public)),
            ("mode", text("exec")),
            ("image", text(&self.image)),
            ("log_group", text(&self.log_group)),
            ("execution_role", text(&self.execution_role.arn)),
            ("task_role", text(&self.task_role.arn)),
            ("ttl", text("1h")),
        ];
        let mut out = format!("{HEADER}\n{EXPLANATION}\n");
        for (key, value) in entries {
            let _ = writeln!(out, "{key} = {value}");
        }
        out
    }
}

/// True when init wrote the file (and nobody removed its header since).
pub fn written_by_init(text: &str) -> bool {
    text.starts_with(HEADER)
}

/// How an existing file differs from the one init would write, for the plan.
pub fn difference(existing: &str, wanted: &str) -> String {
    let (Ok(old), Ok(new)) = (
        existing.parse::<toml::Table>(),
        wanted.parse::<toml::Table>(),
    ) else {
        return "the file is not valid TOML and is replaced".to_string();
    };
    let changed: Vec<&str> = new
        .iter()
        .filter(|(key, value)| old.get(key.as_str()) != Some(*value))
        .map(|(key, _)| key.as_str())
        .collect();
    let dropped: Vec<&str> = old
        .keys()
        .filter(|key| !new.contains_key(key.as_str()))
        .map(String::as_str)
        .collect();
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!("sets {}", changed.join(", ")));
    }
    if !dropped.is_empty() {
        parts.push(format!("drops {}", dropped.join(", ")));
    }
    if parts.is_empty() {
        "same settings; puts back jump init's comments".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::plan::{Layers, Mode};

    pub fn values() -> ConfigValues {
        ConfigValues {
            cluster: "jump".into(),
            subnets: vec!["subnet-0a".into(), "subnet-0b".into()],
            public: false,
            security_group: Some("sg-0c".into()),
            image: "public.ecr.aws/amazonlinux/amazonlinux:2023".into(),
            log_group: "/jump/sessions".into(),
            execution_role: RoleRef {
                name: "jump-task-execution".into(),
                arn: "arn:aws:iam::123456789012:role/jump-task-execution".into(),
            },
            task_role: RoleRef {
                name: "jump-task".into(),
                arn: "arn:aws:iam::123456789012:role/jump-task".into(),
            },
        }
    }

    #[test]
    fn the_file_parses_back_to_the_same_values() {
        let text = values().render();
        assert!(written_by_init(&text));
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["cluster"].as_str(), Some("jump"));
        let subnets: Vec<&str> = table["subnets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(subnets, ["subnet-0a", "subnet-0b"]);
        assert_eq!(table["security_groups"][0].as_str(), Some("sg-0c"));
        assert_eq!(table["public"].as_bool(), Some(false));
        assert_eq!(table["mode"].as_str(), Some("exec"));
        assert_eq!(table["ttl"].as_str(), Some("1h"));
        assert_eq!(
            table["task_role"].as_str(),
            Some("arn:aws:iam::123456789012:role/jump-task")
        );
        assert_eq!(table.len(), 10);
        // Every key is explained in the header.
        for key in table.keys() {
            assert!(EXPLANATION.contains(&format!("# {key} ")), "{key}");
        }
    }

    #[test]
    fn the_file_is_a_working_jump_configuration() {
        let mut layers = Layers::default();
        layers
            .apply_toml(&values().render(), Path::new("jump.toml"))
            .unwrap();
        let plan = layers.into_plan().unwrap();
        assert_eq!(plan.cluster, "jump");
        assert_eq!(plan.security_groups, vec!["sg-0c"]);
        assert_eq!(plan.mode, Mode::Exec);
        assert!(!plan.public);
        assert_eq!(plan.ttl, Duration::from_secs(3600));
        assert_eq!(plan.log_group, "/jump/sessions");
        assert_eq!(
            plan.execution_role,
            "arn:aws:iam::123456789012:role/jump-task-execution"
        );
    }

    #[test]
    fn awkward_values_are_quoted() {
        let mut odd = values();
        odd.image = "registry.example/a \"quoted\" \\ image:1".into();
        let table: toml::Table = odd.render().parse().unwrap();
        assert_eq!(table["image"].as_str(), Some(odd.image.as_str()));
    }

    #[test]
    fn differences_name_the_keys() {
        let wanted = values().render();
        let mut other = values();
        other.cluster = "old".into();
        other.security_group = None;
        let existing = format!("{}[forwards]\ndb = \"5432:rds:orders\"\n", other.render());
        assert_eq!(
            difference(&existing, &wanted),
            "sets cluster, security_groups; drops forwards"
        );
        let bare: String = wanted
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!written_by_init(&bare));
        assert_eq!(
            difference(&bare, &wanted),
            "same settings; puts back jump init's comments"
        );
        assert_eq!(
            difference("cluster = ", &wanted),
            "the file is not valid TOML and is replaced"
        );
    }
}
