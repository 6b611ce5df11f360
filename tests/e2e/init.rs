//! `jump init`: creates what jumphosts need, changes nothing the second time, and
//! `--destroy` removes what it created and nothing else.
//!
//! The tests share one sandbox and run in parallel, so each gives init its own `--name`
//! (derived from its world's unique cluster name) and its snapshots list only what is
//! named after that world: other tests' roles, log groups and clusters come and go.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{expect_exit, repo, shared, stderr, stdout, Terminal, World};

/// One test's `jump init`: its world, name, network and config file.
struct Init {
    world: World<'static>,
    name: String,
    vpc: String,
    subnets: String,
    config: PathBuf,
}

impl Init {
    /// What init creates in an empty account, as (resource, name) in its plan.
    fn everything(&self) -> Vec<(&'static str, String)> {
        let name = &self.name;
        vec![
            ("ecs cluster", name.clone()),
            ("iam role", format!("{name}-task-execution")),
            ("iam role", format!("{name}-task")),
            ("logs group", format!("/{name}/sessions")),
            ("ec2 security group", format!("{name}-jumphost")),
            ("file", self.config.display().to_string()),
        ]
    }

    fn new(label: &str) -> Init {
        let world = World::new(shared(), label);
        let subnets = world.sandbox_var("JUMP_SUBNETS").to_string();
        let first = subnets.split(',').next().expect("a subnet").to_string();
        let described = world
            .sandbox
            .aws(&["ec2", "describe-subnets", "--subnet-ids", &first]);
        let vpc = described["Subnets"][0]["VpcId"]
            .as_str()
            .expect("the subnet's VPC")
            .to_string();
        Init {
            name: format!("{}-init", world.cluster),
            config: world.home.path().join("jump.toml"),
            world,
            vpc,
            subnets,
        }
    }

    /// `jump init` with this test's name, VPC, subnets and config file, then `extra`.
    fn run(&self, extra: &[&str]) -> Output {
        self.world
            .jump()
            .arg("init")
            .args(["--name", &self.name, "--vpc", &self.vpc])
            .args(["--subnets", &self.subnets, "--config"])
            .arg(&self.config)
            .args(extra)
            .output()
            .expect("jump runs")
    }

    /// The same with `--json`; it must succeed.
    fn json(&self, extra: &[&str]) -> Value {
        let out = self.run(&[extra, &["--json"]].concat());
        assert!(
            out.status.success(),
            "jump init {extra:?}: {}",
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout).expect("jump init --json prints JSON")
    }

    fn aws(&self, args: &[&str]) -> Value {
        self.world.sandbox.aws(args)
    }

    /// Everything named after this world: IAM roles, log groups, security groups of the
    /// VPC and clusters that are not deleted (moto keeps listing deleted ones as INACTIVE).
    fn snapshot(&self) -> Value {
        let token = self.world.cluster.as_str();
        let named = |items: &Value, field: &str| -> Vec<String> {
            let mut names: Vec<String> = items
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|item| item[field].as_str())
                .filter(|name| name.contains(token))
                .map(str::to_string)
                .collect();
            names.sort();
            names
        };
        let roles = named(&self.aws(&["iam", "list-roles"])["Roles"], "RoleName");
        let log_groups = named(
            &self.aws(&["logs", "describe-log-groups"])["logGroups"],
            "logGroupName",
        );
        let vpc_filter = format!("Name=vpc-id,Values={}", self.vpc);
        let groups = self.aws(&["ec2", "describe-security-groups", "--filters", &vpc_filter]);
        let security_groups: Vec<String> = groups["SecurityGroups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["GroupName"].as_str().unwrap().contains(token))
            .map(|g| format!("{} {}", g["GroupName"], g["GroupId"]))
            .collect();
        let listed = self.aws(&["ecs", "list-clusters"]);
        let arns: Vec<&str> = listed["clusterArns"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|arn| arn.contains(token))
            .collect();
        let mut clusters = Vec::new();
        if !arns.is_empty() {
            let mut args = vec!["ecs", "describe-clusters", "--clusters"];
            args.extend(&arns);
            let described = self.aws(&args);
            for cluster in described["clusters"].as_array().unwrap() {
                if cluster["status"] == "ACTIVE" {
                    clusters.push(cluster["clusterName"].as_str().unwrap().to_string());
                }
            }
            clusters.sort();
        }
        json!({
            "roles": roles,
            "log_groups": log_groups,
            "security_groups": security_groups,
            "clusters": clusters,
        })
    }

    /// The jump.toml init wrote, parsed.
    fn written_config(&self) -> toml::Table {
        let text = std::fs::read_to_string(&self.config).expect("jump init wrote the config");
        assert!(text.starts_with("# Written by `jump init`."), "{text}");
        text.parse().expect("jump.toml is TOML")
    }

    fn retention(&self, group: &str) -> Value {
        let out = self.aws(&[
            "logs",
            "describe-log-groups",
            "--log-group-name-prefix",
            group,
        ]);
        out["logGroups"][0]["retentionInDays"].clone()
    }

    fn assert_init_made(&self, tags: &BTreeMap<String, String>, what: &str) {
        assert_eq!(
            tags.get("jump:managed-by").map(String::as_str),
            Some("jump-init"),
            "{what}: {tags:?}"
        );
        assert_eq!(
            tags.get("jump:init-name"),
            Some(&self.name),
            "{what}: {tags:?}"
        );
    }

    fn cluster_tags(&self, cluster: &str) -> BTreeMap<String, String> {
        let out = self.aws(&[
            "ecs",
            "describe-clusters",
            "--clusters",
            cluster,
            "--include",
            "TAGS",
        ]);
        tag_map(&out["clusters"][0]["tags"], "key", "value")
    }
}

/// `[{Key: k, Value: v}, …]` (or lowercase) as a map.
fn tag_map(list: &Value, key: &str, value: &str) -> BTreeMap<String, String> {
    list.as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| {
                    let text = |field: &str| t[field].as_str().unwrap_or_default().to_string();
                    (text(key), text(value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `(action, resource, name)` of every change in a `--json` report.
fn changes(report: &Value) -> Vec<(String, String, String)> {
    report["changes"]
        .as_array()
        .expect("a changes list")
        .iter()
        .map(|c| {
            let text = |field: &str| c[field].as_str().expect(field).to_string();
            (text("action"), text("resource"), text("name"))
        })
        .collect()
}

fn has(list: &[(String, String, String)], action: &str, resource: &str, name: &str) -> bool {
    list.iter()
        .any(|(a, r, n)| a == action && r == resource && n == name)
}

/// A policy document as the AWS CLI returns it: parsed already, or as JSON text.
fn document(value: &Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(text).expect("a JSON policy"),
        other => other.clone(),
    }
}

#[test]
fn init_creates_what_up_needs_and_is_idempotent() {
    let init = Init::new("init-create");
    let name = init.name.clone();
    let before = init.snapshot();

    let report = init.json(&["--yes"]);
    assert_eq!(report["applied"], true, "{report}");
    assert_eq!(report["config"], init.config.display().to_string());
    let made = changes(&report);
    for (resource, what) in init.everything() {
        assert!(
            has(&made, "create", resource, &what),
            "{resource} {what}: {made:?}"
        );
    }
    assert!(
        made.iter().all(|(action, _, _)| action == "create"),
        "{made:?}"
    );

    // Everything is tagged as init's.
    for role in [format!("{name}-task-execution"), format!("{name}-task")] {
        let tags = init.aws(&["iam", "list-role-tags", "--role-name", &role]);
        init.assert_init_made(&tag_map(&tags["Tags"], "Key", "Value"), &role);
    }
    let group = format!("/{name}/sessions");
    let tags = init.aws(&["logs", "list-tags-log-group", "--log-group-name", &group]);
    let tags: BTreeMap<String, String> = serde_json::from_value(tags["tags"].clone()).unwrap();
    init.assert_init_made(&tags, &group);
    init.assert_init_made(&init.cluster_tags(&name), "cluster");
    assert_eq!(init.retention(&group), 30);

    let toml = init.written_config();
    assert_eq!(toml["cluster"].as_str(), Some(name.as_str()));
    assert_eq!(toml["mode"].as_str(), Some("exec"));
    assert_eq!(toml["log_group"].as_str(), Some(group.as_str()));
    let sg = toml["security_groups"][0]
        .as_str()
        .expect("a security group")
        .to_string();
    let described = init.aws(&["ec2", "describe-security-groups", "--group-ids", &sg]);
    let security_group = &described["SecurityGroups"][0];
    init.assert_init_made(&tag_map(&security_group["Tags"], "Key", "Value"), &sg);
    assert_eq!(
        security_group["IpPermissions"],
        json!([]),
        "{security_group}"
    );
    assert_eq!(security_group["VpcId"], init.vpc.as_str());

    // The task role may do exactly what templates/task-role-policy.json says.
    let policy = init.aws(&[
        "iam",
        "get-role-policy",
        "--role-name",
        &format!("{name}-task"),
        "--policy-name",
        "jump-ecs-exec",
    ]);
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("templates/task-role-policy.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(document(&policy["PolicyDocument"]), template);
    let policies = init.aws(&[
        "iam",
        "list-role-policies",
        "--role-name",
        &format!("{name}-task"),
    ]);
    assert_eq!(policies["PolicyNames"], json!(["jump-ecs-exec"]));

    // The configuration works as it is: nothing from the environment helps.
    let out = init
        .world
        .jump_with_only_config()
        .args(["up", "--config"])
        .arg(&init.config)
        .args(["--", "true"])
        .output()
        .expect("jump runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let running = init.aws(&[
        "ecs",
        "list-tasks",
        "--cluster",
        &name,
        "--desired-status",
        "RUNNING",
    ]);
    assert_eq!(running["taskArns"], json!([]), "tasks left running");
    assert_eq!(
        init.world.state_files(),
        Vec::<PathBuf>::new(),
        "local files left"
    );
    let stopped = init.aws(&[
        "ecs",
        "list-tasks",
        "--cluster",
        &name,
        "--desired-status",
        "STOPPED",
    ]);
    let task = stopped["taskArns"][0]
        .as_str()
        .expect("the session's task")
        .to_string();
    let task = wait_stopped(&init, &name, &task);
    let definition = init.aws(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        task["taskDefinitionArn"].as_str().unwrap(),
    ]);
    assert_eq!(
        definition["taskDefinition"]["taskRoleArn"].as_str(),
        toml["task_role"].as_str()
    );

    // Running it again changes nothing.
    let again = init.json(&["--yes"]);
    assert_eq!(again["changes"], json!([]), "{again}");
    assert_eq!(again["applied"], false);
    let out = init.run(&["--yes"]);
    assert!(
        stdout(&out).contains("No changes: everything jump init manages is in place."),
        "{}",
        stdout(&out)
    );

    // Destroy leaves the account as it was.
    let destroyed = init.json(&["--destroy", "--yes"]);
    assert_eq!(destroyed["applied"], true, "{destroyed}");
    let removed = changes(&destroyed);
    assert!(
        removed.iter().all(|(action, _, _)| action == "delete"),
        "{removed:?}"
    );
    assert!(has(&removed, "delete", "ecs cluster", &name), "{removed:?}");
    assert_eq!(init.snapshot(), before);
    assert!(!init.config.exists(), "jump.toml was left behind");
    let again = init.json(&["--destroy", "--yes"]);
    assert_eq!(again["changes"], json!([]), "{again}");
}

/// Waits until a task in `cluster` has stopped (its log group must not be recreated by
/// the task's last log lines after destroy removed it).
fn wait_stopped(init: &Init, cluster: &str, task: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = init.aws(&[
            "ecs",
            "describe-tasks",
            "--cluster",
            cluster,
            "--tasks",
            task,
        ]);
        let described = out["tasks"][0].clone();
        if described["lastStatus"] == "STOPPED" {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "task {task} never stopped: {described}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn init_dry_run_changes_nothing() {
    let init = Init::new("init-dry");
    let name = init.name.clone();
    let before = init.snapshot();

    let report = init.json(&["--dry-run"]);
    assert_eq!(report["applied"], false, "{report}");
    let planned = changes(&report);
    for (resource, what) in init.everything() {
        assert!(
            has(&planned, "create", resource, &what),
            "{resource} {what}: {planned:?}"
        );
    }

    let out = init.run(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("+ create  iam role {name}-task-execution")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "+ create  logs group /{name}/sessions: retention 30 days"
        )),
        "{text}"
    );
    assert!(text.contains("Dry run: nothing was changed."), "{text}");

    assert_eq!(init.snapshot(), before);
    assert!(
        !init.config.exists(),
        "a dry run wrote {}",
        init.config.display()
    );
}

/// `jump` against an AWS endpoint that is a listener owned by the test: if `jump` made
/// any call, the listener would see the connection.
fn without_aws(args: &[&str]) -> (Output, TempDir) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let dir = TempDir::new().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_jump"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://{}", listener.local_addr().unwrap()),
        )
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .current_dir(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("jump runs");
    assert!(listener.accept().is_err(), "jump called AWS for {args:?}");
    (out, dir)
}

#[test]
fn init_refuses_bad_input_before_any_aws_call() {
    let seventeen: Vec<String> = (0..17).map(|i| format!("subnet-{i:x}")).collect();
    let seventeen = seventeen.join(",");
    let cases: [(&[&str], &str); 12] = [
        (
            &["init", "--yes", "--log-retention-days", "13"],
            "1, 3, 5, 7, 14, 30, 60",
        ),
        (
            &["init", "--yes", "--alerts", "security-alerts"],
            "--alerts must be an SNS topic ARN",
        ),
        (
            &[
                "init",
                "--yes",
                "--alerts",
                "arn:aws:sns:eu-west-1:123456789012:alerts",
            ],
            "topic in eu-west-1, but init works in us-east-1",
        ),
        (&["init", "--yes", "--name", "bad name!"], "--name"),
        (&["init", "--yes", "--subnets", "subnet-0a,nope"], "nope"),
        (&["init", "--yes", "--subnets", &seventeen], "at most 16"),
        (&["init", "--yes", "--vpc", "my-vpc"], "--vpc"),
        (&["init"], "--yes"),
        (&["init", "--destroy"], "--yes"),
        (&["init", "--yes", "--reaper"], "--reaper-image"),
        (
            &[
                "init",
                "--yes",
                "--reaper",
                "--reaper-image",
                "r:1",
                "--every",
                "3m",
            ],
            "--every: whole minutes, from 5m to 24h",
        ),
        (
            &[
                "init",
                "--yes",
                "--reaper",
                "--reaper-image",
                "  ",
                "--every",
                "1h",
            ],
            "--reaper-image: an image whose entrypoint is jump",
        ),
    ];
    for (args, needle) in cases {
        let (out, dir) = without_aws(args);
        expect_exit(&out, 2, needle);
        assert!(
            !dir.path().join("jump.toml").exists(),
            "{args:?} wrote jump.toml"
        );
    }
}

/// `--alerts TOPIC`: an EventBridge rule on CloudTrail's record of every ECS Exec session
/// in the cluster, with the topic as its one target; a second run changes nothing, and
/// `--destroy` removes rule and target.
#[test]
fn init_alerts_a_topic_on_every_ecs_exec_session() {
    let init = Init::new("init-alerts");
    let rule = format!("{}-exec-alert", init.name);
    let topic = init.aws(&["sns", "create-topic", "--name", &rule])["TopicArn"]
        .as_str()
        .expect("a topic ARN")
        .to_string();
    let report = init.json(&["--yes", "--alerts", &topic]);
    assert!(
        has(&changes(&report), "create", "eventbridge rule", &rule),
        "{report}"
    );
    let cluster = init.written_config()["cluster"]
        .as_str()
        .expect("a cluster")
        .to_string();

    let described = init.aws(&["events", "describe-rule", "--name", &rule]);
    assert_eq!(described["State"], "ENABLED");
    let pattern: Value = serde_json::from_str(described["EventPattern"].as_str().unwrap()).unwrap();
    assert_eq!(pattern["detail"]["eventName"], json!(["ExecuteCommand"]));
    assert_eq!(
        pattern["detail"]["requestParameters"]["cluster"],
        json!([cluster.clone(), { "suffix": format!(":cluster/{cluster}") }])
    );
    let targets = init.aws(&["events", "list-targets-by-rule", "--rule", &rule]);
    assert_eq!(
        targets["Targets"],
        json!([{ "Id": "jump-alerts", "Arn": topic }])
    );
    let tags = init.aws(&[
        "events",
        "list-tags-for-resource",
        "--resource-arn",
        described["Arn"].as_str().unwrap(),
    ]);
    init.assert_init_made(&tag_map(&tags["Tags"], "Key", "Value"), "the alert rule");

    let again = init.json(&["--yes", "--alerts", &topic]);
    assert_eq!(changes(&again), vec![], "{again}");

    let gone = init.json(&["--destroy", "--yes"]);
    assert!(
        has(&changes(&gone), "delete", "eventbridge rule", &rule),
        "{gone}"
    );
    let missing = init
        .world
        .sandbox
        .aws_output(&["events", "describe-rule", "--name", &rule]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("ResourceNotFoundException"),
        "the rule is still there: {}",
        String::from_utf8_lossy(&missing.stdout)
    );
    init.aws(&["sns", "delete-topic", "--topic-arn", &topic]);
}

#[test]
fn init_updates_drift_and_destroy_keeps_what_it_did_not_create() {
    let init = Init::new("init-drift");
    let cluster = init.world.cluster.clone();
    let before = init.snapshot();
    assert_eq!(before["clusters"], json!([cluster.clone()]), "{before}");

    let first = init.json(&["--cluster", &cluster, "--yes"]);
    let made = changes(&first);
    assert!(
        !made
            .iter()
            .any(|(_, resource, _)| resource.starts_with("ecs cluster")),
        "{made:?}"
    );
    assert!(
        first["notes"]
            .to_string()
            .contains("not created by jump init"),
        "{first}"
    );
    assert_eq!(
        init.written_config()["cluster"].as_str(),
        Some(cluster.as_str())
    );

    let group = format!("/{}/sessions", init.name);
    init.aws(&[
        "logs",
        "put-retention-policy",
        "--log-group-name",
        &group,
        "--retention-in-days",
        "7",
    ]);
    // No --cluster: jump.toml says which.
    let second = init.json(&["--yes"]);
    assert_eq!(
        changes(&second),
        vec![(
            "update".to_string(),
            "logs retention".to_string(),
            group.clone()
        )],
        "{second}"
    );
    assert_eq!(second["changes"][0]["detail"], "7 → 30 days");
    assert_eq!(init.retention(&group), 30);
    assert_eq!(init.json(&["--yes"])["changes"], json!([]));

    let destroyed = init.json(&["--destroy", "--yes"]);
    assert!(
        destroyed["notes"].to_string().contains(&format!(
            "kept ecs cluster {cluster} (not created by jump init)"
        )),
        "{destroyed}"
    );
    assert!(!has(
        &changes(&destroyed),
        "delete",
        "ecs cluster",
        &cluster
    ));
    assert_eq!(init.snapshot(), before);
    let tags = init.cluster_tags(&cluster);
    assert!(
        !tags.contains_key("jump:managed-by"),
        "init tagged a cluster it did not create: {tags:?}"
    );
    assert!(!init.config.exists());
}

/// On a terminal, init asks before changing anything: "n" changes nothing, "y" applies.
#[test]
fn init_asks_on_a_terminal() {
    let init = Init::new("init-ask");
    let before = init.snapshot();
    let command = format!(
        "init --name {} --vpc {} --subnets {} --config {}",
        init.name,
        init.vpc,
        init.subnets,
        init.config.display()
    );
    let term = Terminal::start(&init.world, &command);
    term.wait_for("Apply these changes? [y/N]");
    term.keys(&["n", "Enter"]);
    let shown = term.wait_for("jump-exited-");
    assert!(shown.contains("Nothing was changed."), "screen:\n{shown}");
    assert!(shown.contains("jump-exited-0"), "screen:\n{shown}");
    drop(term);
    assert_eq!(init.snapshot(), before);
    assert!(!init.config.exists());

    let term = Terminal::start(&init.world, &command);
    term.wait_for("Apply these changes? [y/N]");
    term.keys(&["y", "Enter"]);
    let shown = term.wait_for("jump-exited-");
    assert!(shown.contains("Applied 8 change(s)."), "screen:\n{shown}");
    drop(term);
    assert!(init.config.exists());
    let report = init.json(&["--destroy", "--yes"]);
    assert_eq!(report["applied"], true, "{report}");
    assert_eq!(init.snapshot(), before);
}

/// `jump doctor` right after `jump init` (plain, with session logging, with a KMS key)
/// finds nothing wrong: init's roles carry the templates' policies, and doctor asks IAM
/// about them with the ARNs and condition keys of the real calls.
#[test]
fn doctor_finds_nothing_wrong_after_init() {
    let key = shared().aws(&["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let variants: [(&str, &[&str]); 3] = [
        ("init-doctor", &[]),
        ("init-doctor-logs", &["--session-logging"]),
        ("init-doctor-kms", &["--kms-key", &key]),
    ];
    for (label, flags) in variants {
        let init = Init::new(label);
        let report = init.json(&[&["--yes"], flags].concat());
        assert_eq!(report["applied"], true, "{report}");
        let out = init
            .world
            .jump_with_only_config()
            .args(["doctor", "--json", "--config"])
            .arg(&init.config)
            .output()
            .expect("jump runs");
        let doctor: Value = serde_json::from_slice(&out.stdout).expect("doctor prints JSON");
        let failed: Vec<&Value> = doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "FAIL")
            .collect();
        assert!(failed.is_empty(), "{label}: {failed:#?}");
        assert_eq!(out.status.code(), Some(0), "{label}: {doctor:#}");
        let checks: Vec<&str> = doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        for id in [
            "task-role-channels",
            "execution-role-logs",
            "caller-permissions",
        ] {
            assert!(checks.contains(&id), "{label}: no {id} in {checks:?}");
        }
        if flags.contains(&"--kms-key") {
            assert!(checks.contains(&"task-role-kms"), "{checks:?}");
        }
        if flags.contains(&"--session-logging") {
            assert!(checks.contains(&"task-role-logging"), "{checks:?}");
        }
        let report = init.json(&["--destroy", "--yes"]);
        assert_eq!(report["applied"], true, "{report}");
    }
}

/// A jump.toml somebody wrote is theirs: init refuses to touch it, and says how
/// (`--force`, or `--config` elsewhere); with `--force` the plan shows the update.
#[test]
fn init_leaves_a_hand_written_jump_toml_alone_unless_forced() {
    let init = Init::new("init-mine");
    let mine = "cluster = \"platform\"\nsubnets = [\"subnet-0a\"]\n";
    std::fs::write(&init.config, mine).unwrap();
    let before = init.snapshot();
    let out = init.run(&["--yes"]);
    expect_exit(&out, 2, "--force");
    assert_eq!(std::fs::read_to_string(&init.config).unwrap(), mine);
    assert_eq!(init.snapshot(), before);

    let report = init.json(&["--force", "--dry-run"]);
    assert!(
        has(
            &changes(&report),
            "update",
            "file",
            &init.config.display().to_string()
        ),
        "{report}"
    );
    assert_eq!(std::fs::read_to_string(&init.config).unwrap(), mine);
}

/// In the default VPC, whose subnets reach the internet only through an internet
/// gateway, init gives jumphosts a public IP (or they could not pull their image or
/// reach Session Manager), and its doctor agrees. (No session is started there: the
/// default VPC's 172.31.0.0/16 may be in use on the test machine, and the sandbox hosts
/// tasks only in ranges that are free.)
#[test]
fn init_in_the_default_vpc_gives_jumphosts_a_public_ip() {
    let world = World::new(shared(), "init-default");
    let name = format!("{}-init", world.cluster);
    let config = world.home.path().join("jump.toml");
    let out = world
        .jump()
        .args(["init", "--yes", "--json", "--name", &name, "--config"])
        .arg(&config)
        .output()
        .expect("jump runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = report["notes"].to_string();
    assert!(notes.contains("public = true"), "{notes}");
    let text = std::fs::read_to_string(&config).unwrap();
    let toml: toml::Table = text.parse().unwrap();
    assert_eq!(toml["public"].as_bool(), Some(true), "{text}");
    let subnets = toml["subnets"].as_array().unwrap();
    assert!(!subnets.is_empty() && subnets.len() <= 16, "{text}");

    let doctor = world
        .jump_with_only_config()
        .args(["doctor", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("jump runs");
    let checks: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let route = checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "network-route")
        .expect("a network-route check");
    assert_eq!(route["status"], "PASS", "{checks:#}");

    let out = world
        .jump()
        .args(["init", "--destroy", "--yes", "--name", &name, "--config"])
        .arg(&config)
        .output()
        .expect("jump runs");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A private ECR image: init lets the execution role pull from that repository and no
/// other, so a jump.toml pointed at another repository fails to start, as on AWS, and
/// doctor says why before anyone tries; an image from elsewhere gets no ECR grant at all.
#[test]
fn init_lets_the_execution_role_pull_only_the_jumphost_repository() {
    let init = Init::new("init-ecr");
    let registry = format!(
        "123456789012.dkr.ecr.{}.amazonaws.com",
        init.world.sandbox_var("AWS_REGION")
    );
    let image = format!("{registry}/{}/jumphost:1", init.name);
    let report = init.json(&["--yes", "--image", &image]);
    assert_eq!(report["applied"], true, "{report}");
    let role = format!("{}-task-execution", init.name);
    let policies = init.aws(&["iam", "list-role-policies", "--role-name", &role]);
    let mut names: Vec<&str> = policies["PolicyNames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["jump-ecr-pull", "jump-execution"]);
    let grant = init.aws(&[
        "iam",
        "get-role-policy",
        "--role-name",
        &role,
        "--policy-name",
        "jump-ecr-pull",
    ]);
    let grant = document(&grant["PolicyDocument"]);
    assert_eq!(
        grant["Statement"][1]["Resource"],
        format!(
            "arn:aws:ecr:{}:123456789012:repository/{}/jumphost",
            init.world.sandbox_var("AWS_REGION"),
            init.name
        ),
        "{grant}"
    );

    let up = |config: &PathBuf| {
        init.world
            .jump_with_only_config()
            .args(["up", "--config"])
            .arg(config)
            .args(["--", "true"])
            .output()
            .expect("jump runs")
    };
    let out = up(&init.config);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));

    // The same account, a jump.toml naming another repository: nothing pulls it.
    let text = std::fs::read_to_string(&init.config).unwrap();
    let elsewhere = init.world.home.path().join("elsewhere.toml");
    let other = format!("{registry}/payments/jumphost:1");
    std::fs::write(&elsewhere, text.replace(&image, &other)).unwrap();
    let doctor = init
        .world
        .jump_with_only_config()
        .args(["doctor", "--json", "--config"])
        .arg(&elsewhere)
        .output()
        .expect("jump runs");
    let checks: Value = serde_json::from_slice(&doctor.stdout).expect("doctor prints JSON");
    let pull = checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "execution-role-ecr")
        .expect("doctor checks the pull")
        .clone();
    assert_eq!(pull["status"], "FAIL", "{pull}");
    assert!(pull.to_string().contains("ecr:BatchGetImage"), "{pull}");
    let out = up(&elsewhere);
    expect_exit(&out, 75, "403 Forbidden");
    expect_exit(&out, 75, &other);
    let running = init.aws(&[
        "ecs",
        "list-tasks",
        "--cluster",
        &init.name,
        "--desired-status",
        "RUNNING",
    ]);
    assert_eq!(running["taskArns"], json!([]), "tasks left running");

    // A public image: the grant goes.
    let public = "public.ecr.aws/amazonlinux/amazonlinux:2023";
    let report = init.json(&["--yes", "--image", public]);
    let dropped = format!("{role}/jump-ecr-pull");
    assert!(
        changes(&report)
            .iter()
            .any(|(action, _, name)| action == "delete" && *name == dropped),
        "{report}"
    );
    let policies = init.aws(&["iam", "list-role-policies", "--role-name", &role]);
    assert_eq!(policies["PolicyNames"], json!(["jump-execution"]));
    let report = init.json(&["--destroy", "--yes"]);
    assert_eq!(report["applied"], true, "{report}");
}

/// `jump init --reaper`: an EventBridge Scheduler schedule whose target is a Fargate task
/// running `jump gc` with a role of its own. When it fires, that task stops the session
/// whose expiry has passed, leaves the live one alone, and ends by itself; a second init
/// changes nothing, and `--destroy` removes the schedule and both roles.
#[test]
fn init_reaper_schedules_a_gc_task_that_stops_expired_sessions() {
    let init = Init::new("init-reaper");
    let name = init.name.clone();
    // The reaper image: jump itself as the entrypoint (the sandbox runs it from this build).
    let image = format!("jump-reaper-{name}:1");
    let jump = env!("CARGO_BIN_EXE_jump");
    init.world.sandbox.ctl(&[
        "image",
        &image,
        "--entrypoint",
        &serde_json::to_string(&[jump]).unwrap(),
    ]);
    let reaper = ["--reaper", "--every", "30m", "--reaper-image", &image];
    let report = init.json(&[&reaper[..], &["--yes"]].concat());
    let made = changes(&report);
    for (resource, what) in [
        ("iam role", format!("{name}-reaper")),
        ("iam role", format!("{name}-reaper-runs")),
        ("ecs task definition", format!("{name}-reaper")),
        ("scheduler schedule", format!("{name}-reaper")),
    ] {
        assert!(
            has(&made, "create", resource, &what),
            "{resource} {what}: {made:?}"
        );
    }
    let schedule = init.aws(&[
        "scheduler",
        "get-schedule",
        "--name",
        &format!("{name}-reaper"),
    ]);
    assert_eq!(schedule["ScheduleExpression"], "rate(30 minutes)");
    assert_eq!(
        schedule["Target"]["RoleArn"]
            .as_str()
            .map(|a| a.ends_with(&format!("role/{name}-reaper-runs"))),
        Some(true),
        "{schedule}"
    );
    let again = init.json(&[&reaper[..], &["--dry-run"]].concat());
    assert_eq!(again["changes"], json!([]), "{again}");

    let up = |extra: &[&str]| -> Value {
        let out = init
            .world
            .jump_with_only_config()
            .args(["up", "--config"])
            .arg(&init.config)
            .args(["--detach", "--json"])
            .args(extra)
            .output()
            .expect("jump runs");
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let expired = up(&[])["task_arn"].as_str().unwrap().to_string();
    let live = up(&[])["task_arn"].as_str().unwrap().to_string();
    init.aws(&[
        "ecs",
        "tag-resource",
        "--resource-arn",
        &expired,
        "--tags",
        "key=jump:expires,value=2020-01-01T00:00:00Z",
    ]);

    // As when the schedule comes due; a reaper whose new role ECS cannot assume yet fails
    // to start, and the next run is the one that counts (as in AWS).
    let deadline = Instant::now() + Duration::from_secs(90);
    let ran = loop {
        let fired: Value = serde_json::from_str(
            &init
                .world
                .sandbox
                .ctl(&["schedule-fire", &format!("{name}-reaper")]),
        )
        .unwrap();
        let task = fired["task"]
            .as_str()
            .unwrap_or_else(|| panic!("the schedule started nothing: {fired}"))
            .to_string();
        let stopped = wait_stopped(&init, &name, &task);
        if stopped["stopCode"] != "TaskFailedToStart" {
            break stopped;
        }
        assert!(
            Instant::now() < deadline,
            "the reaper never started: {stopped}"
        );
    };
    assert_eq!(ran["containers"][0]["exitCode"], 0, "{ran}");
    assert_eq!(
        ran["taskDefinitionArn"]
            .as_str()
            .map(|a| a.contains(&format!("task-definition/{name}-reaper:"))),
        Some(true)
    );
    let stopped = wait_stopped(&init, &name, &expired);
    assert_eq!(
        stopped["stoppedReason"], "stopped by jump down",
        "{stopped}"
    );
    // The reaper's own account of it, in the session log group.
    let reaper_id = ran["taskArn"].as_str().unwrap().rsplit('/').next().unwrap();
    let logged = init.aws(&[
        "logs",
        "get-log-events",
        "--log-group-name",
        &format!("/{name}/sessions"),
        "--log-stream-name",
        &format!("reaper/reaper/{reaper_id}"),
    ]);
    assert!(
        logged["events"].to_string().contains(&expired),
        "the reaper did not say it stopped {expired}: {logged}"
    );
    let live_now = init.aws(&[
        "ecs",
        "describe-tasks",
        "--cluster",
        &name,
        "--tasks",
        &live,
    ]);
    assert_eq!(live_now["tasks"][0]["desiredStatus"], "RUNNING");

    // The Terraform example's reaper is this one: the same command, environment, log
    // prefix and schedule shape.
    let example = crate::support::terraform("pool.tf");
    let container = init.world.container_definition(&format!("{name}-reaper"));
    // The cluster's name is the module's variable there.
    let command: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| match w.as_str().unwrap() {
            word if word == name => "var.cluster_name".to_string(),
            word => format!("\"{word}\""),
        })
        .collect();
    assert!(
        example.contains(&format!("command     = [{}]", command.join(", "))),
        "pool.tf's reaper command is not {command:?}"
    );
    assert!(example.contains(r#"environment = [{ name = "JUMP_STATE_DIR", value = "/tmp/jump" }]"#));
    assert!(example.contains(r#""awslogs-stream-prefix" = "reaper""#));
    assert_eq!(schedule["FlexibleTimeWindow"]["Mode"], "OFF");
    assert!(example.contains("mode = \"OFF\""));
    assert!(
        schedule["Target"]["EcsParameters"]["TaskDefinitionArn"]
            .as_str()
            .is_some_and(|a| a.ends_with(&format!("task-definition/{name}-reaper"))),
        "the schedule names a revision: {schedule}"
    );

    let out = init
        .world
        .jump_with_only_config()
        .args(["down", "--all-mine", "--config"])
        .arg(&init.config)
        .output()
        .expect("jump runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    wait_stopped(&init, &name, &live);
    let destroyed = init.json(&["--destroy", "--yes"]);
    let removed = changes(&destroyed);
    for (resource, what) in [
        ("scheduler schedule", format!("{name}-reaper")),
        ("iam role", format!("{name}-reaper")),
        ("iam role", format!("{name}-reaper-runs")),
    ] {
        assert!(
            has(&removed, "delete", resource, &what),
            "{resource} {what}: {removed:?}"
        );
    }
    let out = init.world.sandbox.aws_output(&[
        "scheduler",
        "get-schedule",
        "--name",
        &format!("{name}-reaper"),
    ]);
    assert!(!out.status.success(), "the schedule outlived --destroy");
}
