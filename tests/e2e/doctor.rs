//! `jump doctor`: every check made to fail and made to pass against the sandbox.
//!
//! Network checks use a VPC of their own (moto only, no data plane needed): an endpoint
//! added for one test must not make another test's VPC look reachable.

use serde_json::{json, Value};

use crate::support::{policy, shared, stderr, World, SERVER};

/// `jump doctor --json ARGS`: the report and the exit code.
fn doctor(world: &World, args: &[&str]) -> (Value, i32) {
    doctor_without(world, args, &[])
}

/// [`doctor`] with these variables taken out of the environment.
fn doctor_without(world: &World, args: &[&str], unset: &[&str]) -> (Value, i32) {
    let mut cmd = world.jump();
    for key in unset {
        cmd.env_remove(key);
    }
    let out = cmd
        .args([&["doctor", "--json"], args].concat())
        .output()
        .expect("jump runs");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor prints JSON ({e}); stderr: {}", stderr(&out)));
    (report, out.status.code().unwrap_or(-1))
}

fn check<'r>(report: &'r Value, id: &str) -> &'r Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

fn status<'r>(report: &'r Value, id: &str) -> &'r str {
    check(report, id)["status"].as_str().unwrap()
}

/// A task role with templates/task-role-policy.json: the four ECS Exec channels.
fn task_role(world: &World, name: &str) -> String {
    world.assumable_role(name, &[("ecs-exec", policy("task-role-policy.json", &[]))])
}

/// The policies of templates/ filled with `values` (partition, region, account are the
/// sandbox's).
fn filled(template: &str, world: &World, values: &[(&str, &str)]) -> String {
    let region = world.sandbox_var("AWS_REGION");
    let base = [
        ("partition", "aws"),
        ("region", region),
        ("account", "123456789012"),
    ];
    policy(template, &[&base[..], values].concat())
}

/// A VPC, subnet and security group of the test's own.
struct Net {
    vpc: String,
    subnet: String,
    group: String,
}

fn own_network(world: &World, octet: u8) -> Net {
    let aws = |args: &[&str]| world.sandbox.aws(args);
    let cidr = format!("10.{octet}.0.0/16");
    let vpc = aws(&["ec2", "create-vpc", "--cidr-block", &cidr])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet_cidr = format!("10.{octet}.1.0/24");
    let subnet = aws(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        &subnet_cidr,
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_string();
    let group = aws(&[
        "ec2",
        "create-security-group",
        "--group-name",
        &format!("doctor-{octet}"),
        "--description",
        "doctor test",
        "--vpc-id",
        &vpc,
    ])["GroupId"]
        .as_str()
        .unwrap()
        .to_string();
    Net { vpc, subnet, group }
}

#[test]
fn configuration_checks_fail_and_pass() {
    let sandbox = shared();
    let world = World::new(sandbox, "doctor-config");
    let task_role = task_role(&world, &format!("{}-task", world.cluster));
    let group_name = format!("/{}/sessions", world.cluster);
    let execution = filled(
        "execution-role-policy.json",
        &world,
        &[("log_group", &group_name)],
    );
    let execution_role = world.role(
        &format!("{}-exec", world.cluster),
        &[("execution", execution)],
    );
    let net = own_network(&world, 77);
    let settings = [
        "--mode",
        "exec",
        "--task-role",
        &task_role,
        "--execution-role",
        &execution_role,
        "--subnets",
        &net.subnet,
        "--security-groups",
        &net.group,
        "--log-group",
        &group_name,
    ];

    // A private subnet with no endpoint, a log group not created yet.
    let (report, code) = doctor(&world, &settings);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    for id in [
        "credentials",
        "cluster",
        "task-role",
        "task-role-channels",
        "execution-role",
        "execution-role-logs",
        "caller-permissions",
        "egress-443",
    ] {
        assert_eq!(status(&report, id), "PASS", "{id}: {report:#}");
    }
    assert_eq!(status(&report, "network-route"), "FAIL");
    assert!(check(&report, "network-route")["fix"]
        .as_str()
        .unwrap()
        .contains("ssmmessages"));
    assert_eq!(status(&report, "vpc-endpoints"), "WARN");
    assert_eq!(status(&report, "log-group"), "WARN");

    // The endpoint and the log group make it pass.
    let service = "com.amazonaws.eu-west-1.ssmmessages";
    let region = world.sandbox_var("AWS_REGION");
    let service = service.replace("eu-west-1", region);
    world.sandbox.aws(&[
        "ec2",
        "create-vpc-endpoint",
        "--vpc-id",
        &net.vpc,
        "--vpc-endpoint-type",
        "Interface",
        "--service-name",
        &service,
        "--subnet-ids",
        &net.subnet,
    ]);
    world
        .sandbox
        .aws(&["logs", "create-log-group", "--log-group-name", &group_name]);
    let (report, code) = doctor(&world, &settings);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(status(&report, "network-route"), "PASS");
    assert_eq!(status(&report, "log-group"), "PASS");
    assert_eq!(status(&report, "vpc-endpoints"), "WARN");
    for name in ["logs", "ecr.api", "ecr.dkr", "s3"] {
        let service = format!("com.amazonaws.{region}.{name}");
        world.sandbox.aws(&[
            "ec2",
            "create-vpc-endpoint",
            "--vpc-id",
            &net.vpc,
            "--service-name",
            &service,
        ]);
    }
    let (report, _) = doctor(&world, &settings);
    assert_eq!(status(&report, "vpc-endpoints"), "PASS", "{report:#}");

    // The issue's case: the task role may not open the data channel.
    world.sandbox.ctl(&[
        "deny",
        "ssmmessages:OpenDataChannel",
        "--principal",
        &task_role,
    ]);
    let (report, code) = doctor(&world, &settings);
    assert_eq!(code, 1);
    let channels = check(&report, "task-role-channels");
    assert_eq!(channels["status"], "FAIL");
    assert!(channels["summary"]
        .as_str()
        .unwrap()
        .contains("ssmmessages:OpenDataChannel"));
    assert!(channels["fix"]
        .as_str()
        .unwrap()
        .contains("templates/task-role-policy.json"));
    let text = world.run(&[&["doctor"], &settings[..]].concat());
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(shown.contains("FAIL  task-role-channels"), "{shown}");
    assert!(
        shown.contains("fix: add templates/task-role-policy.json"),
        "{shown}"
    );

    // No egress on 443.
    world.sandbox.aws(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &net.group,
        "--ip-permissions",
        r#"[{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]"#,
    ]);
    let (report, _) = doctor(&world, &settings);
    assert_eq!(status(&report, "egress-443"), "FAIL");

    // Exec mode without a task role is a configuration error (ECS Exec needs one).
    let (report, code) = doctor_without(
        &world,
        &[
            "--mode",
            "exec",
            "--subnets",
            &net.subnet,
            "--security-groups",
            &net.group,
        ],
        &["JUMP_TASK_ROLE"],
    );
    assert_eq!(code, 1);
    let config = check(&report, "config");
    assert_eq!(config["status"], "FAIL");
    assert!(
        config["summary"].as_str().unwrap().contains("task_role"),
        "{config}"
    );

    // An execution role that does not exist.
    let (report, code) = doctor(
        &world,
        &[
            "--execution-role",
            "arn:aws:iam::123456789012:role/nope",
            "--subnets",
            &net.subnet,
            "--security-groups",
            &net.group,
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(status(&report, "execution-role"), "FAIL");

    // A cluster that does not exist stops the checks there.
    let (report, code) = doctor(&world, &["--cluster", "no-such-cluster"]);
    assert_eq!(code, 1);
    assert_eq!(status(&report, "cluster"), "FAIL");
    let ids: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["credentials", "owner-identity", "cluster"]);

    // No cluster configured anywhere: the configuration itself fails.
    let out = world
        .jump()
        .args(["doctor", "--json"])
        .env_remove("JUMP_CLUSTER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&report, "config"), "FAIL");
}

#[test]
fn credentials_and_caller_permissions() {
    let sandbox = shared();
    let world = World::new(sandbox, "doctor-caller");
    let mut blind = world.jump();
    blind
        .args(["doctor", "--json"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = blind.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&report, "credentials"), "FAIL");
    assert_eq!(report["checks"].as_array().unwrap().len(), 1);

    // --ssm-plugin must name something runnable; jump's own client needs nothing.
    let plugin = crate::forward::PLUGIN;
    let (report, _) = doctor(&world, &["--ssm-plugin", plugin]);
    assert_eq!(status(&report, "ssm-plugin"), "PASS");
    let (report, code) = doctor(&world, &["--ssm-plugin", "/nonexistent/plugin"]);
    assert_eq!(code, 1);
    assert_eq!(status(&report, "ssm-plugin"), "FAIL");

    // A user without any policy may do nothing, and the check names what it lacks.
    let user = world.sibling("doctor-denied-user");
    let (report, code) = doctor(&user, &[]);
    assert_eq!(code, 1);
    assert_eq!(status(&report, "credentials"), "PASS");
    let caller = check(&report, "caller-permissions");
    assert_eq!(caller["status"], "FAIL", "{report:#}");
    let summary = caller["summary"].as_str().unwrap();
    assert!(summary.contains("ecs:RunTask on arn:aws:ecs:"), "{summary}");
    assert!(summary.contains("iam:PassRole"), "{summary}");

    // templates/user-policy.json, filled for this cluster, is exactly enough: IAM's
    // simulator is asked with the ARNs and condition keys of the real calls.
    let mut values = world.template_values();
    values.retain(|(k, _)| !["partition", "region", "account"].contains(k));
    let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let document = filled("user-policy.json", &world, &values);
    let name = format!("{}-user-policy", world.cluster);
    let created = sandbox.aws(&[
        "iam",
        "create-policy",
        "--policy-name",
        &name,
        "--policy-document",
        &document,
    ]);
    let policy_arn = created["Policy"]["Arn"].as_str().unwrap();
    sandbox.aws(&[
        "iam",
        "attach-user-policy",
        "--user-name",
        "doctor-denied-user",
        "--policy-arn",
        policy_arn,
    ]);
    let (report, _) = doctor(&user, &[]);
    assert_eq!(status(&report, "caller-permissions"), "PASS", "{report:#}");
    sandbox.ctl(&[
        "deny",
        "ecs:ExecuteCommand",
        "ssm:ResumeSession",
        "--principal",
        "user/doctor-denied-user",
    ]);
    let (report, code) = doctor(&user, &[]);
    assert_eq!(code, 1);
    let caller = check(&report, "caller-permissions");
    assert_eq!(caller["status"], "FAIL");
    let summary = caller["summary"].as_str().unwrap();
    assert!(summary.contains("ecs:ExecuteCommand"), "{summary}");
    // Without ResumeSession every dropped connection would end the session.
    assert!(summary.contains("ssm:ResumeSession"), "{summary}");
}

#[test]
fn cluster_exec_settings_kms_and_session_logging() {
    let sandbox = shared();
    let world = World::new(sandbox, "doctor-kms");
    let created = sandbox.aws(&["kms", "create-key"]);
    let key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let key_arn = created["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let cluster = format!("{}-kms", world.cluster);
    let logs = format!("/{cluster}/exec");
    // The task role of `jump init --session-logging --kms-key`, plus the S3 upload that
    // templates/ leave to the user (the bucket is theirs).
    let s3 = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::session-logs/*"},
        {"Effect": "Allow", "Action": "s3:GetEncryptionConfiguration", "Resource": "arn:aws:s3:::session-logs"}]});
    let task_role = world.role(
        &format!("{}-task", world.cluster),
        &[
            ("ecs-exec", policy("task-role-policy.json", &[])),
            (
                "logging",
                filled(
                    "task-role-logging-policy.json",
                    &world,
                    &[("exec_log_group", &logs)],
                ),
            ),
            (
                "kms",
                policy("task-role-kms-policy.json", &[("kms_key_arn", &key_arn)]),
            ),
            ("s3", s3.to_string()),
        ],
    );
    let configuration = json!({"executeCommandConfiguration": {"kmsKeyId": key, "logging": "OVERRIDE",
        "logConfiguration": {"cloudWatchLogGroupName": logs, "s3BucketName": "session-logs",
            "s3EncryptionEnabled": true}}});
    sandbox.aws(&[
        "ecs",
        "create-cluster",
        "--cluster-name",
        &cluster,
        "--configuration",
        &configuration.to_string(),
    ]);
    let settings = [
        "--cluster",
        &cluster,
        "--mode",
        "exec",
        "--task-role",
        &task_role,
    ];

    let (report, _) = doctor(&world, &settings);
    assert_eq!(status(&report, "exec-kms-key"), "PASS", "{report:#}");
    assert_eq!(status(&report, "task-role-kms"), "PASS");
    assert_eq!(status(&report, "task-role-logging"), "PASS");
    assert_eq!(status(&report, "task-role-s3-logging"), "PASS");
    assert_eq!(status(&report, "exec-log-group"), "FAIL");
    sandbox.aws(&["logs", "create-log-group", "--log-group-name", &logs]);
    let (report, _) = doctor(&world, &settings);
    assert_eq!(status(&report, "exec-log-group"), "PASS");

    sandbox.ctl(&[
        "deny",
        "kms:Decrypt",
        "logs:PutLogEvents",
        "s3:GetEncryptionConfiguration",
        "--principal",
        &task_role,
    ]);
    let (report, code) = doctor(&world, &settings);
    assert_eq!(code, 1);
    assert_eq!(status(&report, "task-role-kms"), "FAIL");
    assert_eq!(status(&report, "task-role-logging"), "FAIL");
    let s3 = check(&report, "task-role-s3-logging");
    assert_eq!(s3["status"], "FAIL");
    assert!(s3["summary"]
        .as_str()
        .unwrap()
        .contains("s3:GetEncryptionConfiguration"));
    sandbox.aws(&["kms", "disable-key", "--key-id", &key]);
    let (report, _) = doctor(&world, &settings);
    assert_eq!(status(&report, "exec-kms-key"), "FAIL");
}

/// Registers a task definition from raw JSON and runs it with `extra` run-task arguments.
/// Fargate needs the execution role for awslogs; the sandbox's is the account's.
fn run_raw(world: &World, definition: &Value, extra: &[&str]) -> String {
    let mut definition = definition.clone();
    definition["executionRoleArn"] = json!(world.sandbox_var("JUMP_EXECUTION_ROLE"));
    world.sandbox.aws(&[
        "ecs",
        "register-task-definition",
        "--cli-input-json",
        &definition.to_string(),
    ]);
    world.run_registered(definition["family"].as_str().unwrap(), extra)
}

fn definition(family: &str, role: &str, container: Value, pid_mode: Option<&str>) -> Value {
    let mut def = json!({
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "256", "memory": "512", "taskRoleArn": role,
        "containerDefinitions": [container],
    });
    if let Some(mode) = pid_mode {
        def["pidMode"] = json!(mode);
    }
    def
}

#[test]
fn task_checks_fail_and_pass() {
    let sandbox = shared();
    let world = World::new(sandbox, "doctor-task");
    let task_role = task_role(&world, &format!("{}-task", world.cluster));
    let app_logs = format!("/{}/app", world.cluster);
    sandbox.aws(&["logs", "create-log-group", "--log-group-name", &app_logs]);
    sandbox.image("app:1", SERVER);
    let good = definition(
        &format!("{}-good", world.cluster),
        &task_role,
        json!({"name": "app", "image": "app:1", "essential": true, "command": ["sleep", "600"],
               "linuxParameters": {"initProcessEnabled": true},
               "logConfiguration": {"logDriver": "awslogs", "options": {
                   "awslogs-group": app_logs, "awslogs-region": world.sandbox_var("AWS_REGION"),
                   "awslogs-stream-prefix": "app"}}}),
        None,
    );
    let bad = definition(
        &format!("{}-bad", world.cluster),
        &task_role,
        json!({"name": "app", "image": "app:1", "essential": true, "command": ["sleep", "600"],
               "readonlyRootFilesystem": true,
               "environment": [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIAEXAMPLE"}]}),
        Some("task"),
    );
    let good_task = run_raw(&world, &good, &["--enable-execute-command"]);
    let bad_task = run_raw(&world, &bad, &["--platform-version", "1.3.0"]);
    for task in [&good_task, &bad_task] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while world.describe(task)["lastStatus"] != "RUNNING" {
            assert!(std::time::Instant::now() < deadline, "{task} never ran");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    let task_checks = [
        "platform-version",
        "exec-enabled",
        "exec-agent",
        "init-process",
        "readonly-root",
        "pid-mode",
        "container-credentials",
        "task-role",
        "task-role-channels",
        "caller-permissions",
    ];
    // The agent comes up a moment after the task runs.
    let mut report = Value::Null;
    for _ in 0..50 {
        report = doctor(&world, &["--task", &good_task]).0;
        if status(&report, "exec-agent") == "PASS" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for id in task_checks {
        assert_eq!(status(&report, id), "PASS", "{id}: {report:#}");
    }
    assert_eq!(status(&report, "log-group"), "PASS", "{report:#}");
    // The sandbox's subnets are private, routed through a NAT gateway.
    assert_eq!(status(&report, "network-route"), "PASS", "{report:#}");
    // The log group goes away under the running task (ECS may not create it again).
    sandbox.aws(&["logs", "delete-log-group", "--log-group-name", &app_logs]);
    let (report, _) = doctor(&world, &["--task", &good_task]);
    assert_eq!(status(&report, "log-group"), "FAIL", "{report:#}");

    let (report, code) = doctor(&world, &["--task", &bad_task]);
    assert_eq!(code, 1);
    for id in [
        "platform-version",
        "exec-enabled",
        "exec-agent",
        "readonly-root",
        "container-credentials",
    ] {
        assert_eq!(status(&report, id), "FAIL", "{id}: {report:#}");
    }
    for id in ["init-process", "pid-mode"] {
        assert_eq!(status(&report, id), "WARN", "{id}: {report:#}");
    }
    assert!(check(&report, "exec-enabled")["fix"]
        .as_str()
        .unwrap()
        .contains("--enable-execute-command"));

    // The task role denied a channel action: named, for this task.
    sandbox.ctl(&[
        "deny",
        "ssmmessages:CreateControlChannel",
        "--principal",
        &task_role,
    ]);
    let (report, _) = doctor(&world, &["--task", &good_task]);
    assert_eq!(status(&report, "task-role-channels"), "FAIL");
    for task in [good_task, bad_task] {
        world.stop_task(&task);
    }

    // A task or a service that is not there.
    let (report, code) = doctor(&world, &["--task", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(code, 1);
    assert_eq!(status(&report, "task"), "FAIL");
    let (report, code) = doctor(&world, &["--service", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(status(&report, "service"), "FAIL");
}

/// A CI role assumed under the action's default session name makes every run one owner.
#[test]
fn a_role_session_name_every_run_shares_is_a_warning() {
    let world = World::new(shared(), "doctor-owner");
    let role = format!("{}-ci", world.cluster);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    let created = world.sandbox.aws(&[
        "iam",
        "create-role",
        "--role-name",
        &role,
        "--assume-role-policy-document",
        trust,
    ]);
    let arn = created["Role"]["Arn"].as_str().unwrap().to_string();
    for (name, expected) in [("GitHubActions", "WARN"), ("jump-8123456789-1", "PASS")] {
        let assumed = world.sandbox.aws(&[
            "sts",
            "assume-role",
            "--role-arn",
            &arn,
            "--role-session-name",
            name,
        ]);
        let creds = &assumed["Credentials"];
        let out = world
            .jump_with_credentials(creds)
            .args(["doctor", "--json"])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor prints JSON ({e}); stderr: {}", stderr(&out)));
        let owner = check(&report, "owner-identity");
        assert_eq!(owner["status"], expected, "{name}: {report:#}");
        if expected == "WARN" {
            let summary = owner["summary"].as_str().unwrap();
            assert!(
                summary.contains(&format!("role {role} under the session name GitHubActions")),
                "{summary}"
            );
        }
    }
}
