//! `jump run`: one-off tasks from a service's own task definition.

use std::process::Stdio;

use crate::support::{expect_exit, policy, shared, stderr, stdout, World, SERVER};

/// A service `web` with its own command, environment, subnet and security group.
pub fn web_service(world: &World) -> (String, String, String) {
    let family = format!("web-{}", world.cluster);
    world.sandbox.image("registry.example/web:1.2.3", SERVER);
    let definition = serde_json::json!([{
        "name": "web", "image": "registry.example/web:1.2.3", "essential": true,
        "command": ["sh", "-c", "echo serving; sleep 3600"],
        "environment": [{ "name": "APP_ENV", "value": "production" }],
    }]);
    // ECS Exec needs a task role allowed the four ssmmessages channels.
    let role = world.sandbox_var("JUMP_TASK_ROLE");
    world.register_with(&family, &definition, &["--task-role-arn", role]);
    let subnet = world
        .sandbox_var("JUMP_SUBNETS")
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let described = world
        .sandbox
        .aws(&["ec2", "describe-subnets", "--subnet-ids", &subnet]);
    let vpc = described["Subnets"][0]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let created = world.sandbox.aws(&[
        "ec2",
        "create-security-group",
        "--group-name",
        &format!("web-{}", world.cluster),
        "--description",
        "the web service",
        "--vpc-id",
        &vpc,
    ]);
    let group = created["GroupId"].as_str().unwrap().to_string();
    let network = format!("awsvpcConfiguration={{subnets=[{subnet}],securityGroups=[{group}]}}");
    world.sandbox.aws(&[
        "ecs",
        "create-service",
        "--cluster",
        &world.cluster,
        "--service-name",
        "web",
        "--task-definition",
        &family,
        "--desired-count",
        "0",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &network,
    ]);
    (family, subnet, group)
}

#[test]
fn a_command_in_a_one_off_task_of_the_service() {
    let world = World::new(shared(), "run-service");
    let (family, subnet, group) = web_service(&world);
    let args = [
        "run",
        "--service",
        "web",
        "--",
        "sh",
        "-c",
        "echo $APP_ENV; sleep 15; exit 5",
    ];
    let child = world.spawn(&args, Stdio::null());
    // While it runs (15 s is ample even for slow CLI calls under load): the task's network
    // interface is in the service's subnet and group.
    let arn = world.wait_for_task();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let eni = loop {
        let task = world.describe(&arn);
        let details = task["attachments"][0]["details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = details.iter().find(|d| d["name"] == "networkInterfaceId");
        if let Some(eni) = found.and_then(|d| d["value"].as_str()) {
            break eni.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no ENI: {task}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let interfaces = world.sandbox.aws(&[
        "ec2",
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni,
    ]);
    let interface = &interfaces["NetworkInterfaces"][0];
    assert_eq!(interface["SubnetId"], subnet.as_str());
    assert_eq!(interface["Groups"][0]["GroupId"], group.as_str());

    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "production\n");
    let task = world.describe(&arn);
    assert_eq!(task["startedBy"], "jump");
    assert!(task["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .contains(&format!("task-definition/{family}:")));
    assert!(task["enableExecuteCommand"].as_bool().unwrap());
    assert!(task["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "jump:owner"));
    world.wait_stopped(&arn);
    world.assert_nothing_left();
}

#[test]
fn without_a_terminal_stdin_is_piped_and_the_status_returns() {
    let world = World::new(shared(), "run-pipe");
    web_service(&world);
    let args = [
        "run",
        "--service",
        "web",
        "-e",
        "EXTRA=yes",
        "--",
        "sh",
        "-c",
        "cat; echo $EXTRA; exit 3",
    ];
    let out = world.run_with_input(&args, b"from the pipe\n");
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "from the pipe\nyes\n");
    world.assert_nothing_left();
}

#[test]
fn run_refuses_bad_input_before_any_task() {
    let world = World::new(shared(), "run-bad");
    web_service(&world);
    for (args, needle) in [
        (
            vec!["run", "--service", "web", "-e", "NOVALUE"],
            "KEY=VALUE",
        ),
        (vec!["run", "--service", "web", "--ttl", "2d"], "--ttl"),
        (
            vec![
                "run",
                "--service",
                "web",
                "--cpu",
                "256",
                "--memory",
                "4096",
            ],
            "memory",
        ),
        (vec!["run"], "--service"),
    ] {
        let out = world.run(&args);
        expect_exit(&out, 2, needle);
    }
    let out = world.run(&["run", "--service", "nope", "--", "true"]);
    expect_exit(&out, 2, "no service nope");
    let out = world.run(&["run", "--service", "web", "--container", "db", "--", "true"]);
    assert!(
        stderr(&out).contains("no container db"),
        "stderr: {}",
        stderr(&out)
    );
    world.assert_nothing_left();
}

#[test]
fn a_task_role_that_cannot_open_exec_channels_is_named_with_what_it_lacks() {
    let world = World::new(shared(), "run-role");
    web_service(&world);
    // A role made just now with templates/task-role-policy.json, then denied two of its
    // four channels: jump waits until ECS can assume it, then names exactly those two.
    let name = format!("no-exec-{}", world.cluster);
    let role = world.role(&name, &[("ecs-exec", policy("task-role-policy.json", &[]))]);
    world.sandbox.ctl(&[
        "deny",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenDataChannel",
        "--principal",
        &format!("role/{name}"),
    ]);
    let out = world.run(&[
        "run",
        "--service",
        "web",
        "--task-role",
        &role,
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(76), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&role), "{err}");
    assert!(
        err.contains("ssmmessages:CreateDataChannel, ssmmessages:OpenDataChannel"),
        "{err}"
    );
    assert!(!err.contains("OpenControlChannel"), "{err}");
    world.assert_nothing_left();
}

/// A task that stops before the command can run is explained with the service container's
/// own log stream (its awslogs group and prefix), not jump's.
#[test]
fn a_task_that_stops_early_points_at_its_own_log_stream() {
    let world = World::new(shared(), "run-crash");
    let family = format!("crashy-{}", world.cluster);
    let group = format!("/{}/app", world.cluster);
    let image = format!("crashy/{}:1", world.cluster);
    world.sandbox.image(&image, SERVER);
    world
        .sandbox
        .aws(&["logs", "create-log-group", "--log-group-name", &group]);
    world.register_with(
        &family,
        &serde_json::json!([{
            "name": "app", "image": image, "essential": true,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": group, "awslogs-region": world.sandbox_var("AWS_REGION"),
                "awslogs-stream-prefix": "svc"}},
        }]),
        &["--task-role-arn", world.sandbox_var("JUMP_TASK_ROLE")],
    );
    world.sandbox.ctl(&[
        "task-fault",
        "crash",
        "--image",
        &image,
        "--after",
        "0",
        "--exit-code",
        "3",
    ]);
    let out = world.run(&["run", "--task-definition", &family, "--", "true"]);
    expect_exit(&out, 75, &format!("{group}:svc/app/"));
    expect_exit(&out, 75, "container exit code: 3");
    world.assert_nothing_left();
}

#[test]
fn a_family_runs_the_revision_it_names_on_stderr() {
    let world = World::new(shared(), "run-revision");
    let family = format!("svc-{}", world.cluster);
    let image = format!("registry.example/{}:1", world.cluster);
    world.sandbox.image(&image, SERVER);
    let register = |env: &str| {
        world.register_with(
            &family,
            &serde_json::json!([{
                "name": "app", "image": image, "essential": true,
                "environment": [{"name": "APP_ENV", "value": env}],
            }]),
            &["--task-role-arn", world.sandbox_var("JUMP_TASK_ROLE")],
        )["taskDefinition"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut used = Vec::new();
    for (env, revision) in [("staging", 1), ("production", 2)] {
        let arn = register(env);
        assert!(arn.ends_with(&format!("{family}:{revision}")), "{arn}");
        let out = world.run(&[
            "run",
            "--task-definition",
            &family,
            "--",
            "sh",
            "-c",
            "echo $APP_ENV",
        ]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), env);
        let named = format!("jump: one-off task of {family}:{revision}");
        assert!(stderr(&out).contains(&named), "stderr: {}", stderr(&out));
        used.push(arn);
    }
    let ran = world.revisions_run();
    assert_eq!(ran.len(), 2);
    assert!(used.iter().all(|arn| ran.contains(arn)), "{ran:?}");
    world.assert_nothing_left();
}
