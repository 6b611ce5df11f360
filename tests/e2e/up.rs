//! `jump up`, `ssh`, `ls`, `down` against the shared sandbox.

use std::process::{Command, Stdio};

use crate::support::{expect_exit, policy, shared, stderr, stdout, Sandbox, World, SERVER};

#[test]
fn command_output_and_exit_status_pass_through_and_nothing_is_left() {
    let world = World::new(shared(), "exit");
    let out = world.run(&[
        "up",
        "--",
        "sh",
        "-c",
        "hostname; ps -o args= -p 1; echo to-stderr >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[0].starts_with("ip-10-"), "stdout: {printed}");
    // The session is inside the jumphost image users build: its entrypoint is process 1.
    assert_eq!(
        lines[1], "/bin/sh /usr/local/bin/jump-entrypoint",
        "stdout: {printed}"
    );
    assert!(stderr(&out).contains("to-stderr"));

    let stopped = world.tasks("STOPPED");
    assert_eq!(stopped.len(), 1);
    let task = world.wait_stopped(&stopped[0]);
    assert_eq!(task["stopCode"], "UserInitiated");
    let tags = task["tags"].as_array().unwrap();
    for key in [
        "jump:owner",
        "jump:owner-id",
        "jump:session",
        "jump:expires",
    ] {
        assert!(
            tags.iter().any(|t| t["key"] == key),
            "tag {key} missing: {tags:?}"
        );
    }
    // What IAM's ${aws:userid} is for this caller: the user policy's conditions use it.
    let user_id = world.sandbox.aws(&["sts", "get-caller-identity"])["UserId"].clone();
    let owner_id = tags.iter().find(|t| t["key"] == "jump:owner-id").unwrap();
    assert_eq!(owner_id["value"], user_id);
    assert_eq!(world.json(&["ls", "--json"]), serde_json::json!([]));
    world.assert_nothing_left();
}

#[test]
fn arguments_reach_the_remote_command_intact() {
    let world = World::new(shared(), "quoting");
    let out = world.run(&[
        "up",
        "--",
        "printf",
        "[%s]",
        "two words",
        "it's",
        "$HOME",
        "a;b",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "[two words][it's][$HOME][a;b]");
    world.assert_nothing_left();
}

#[test]
fn detach_then_ssh_then_down_round_trip() {
    let world = World::new(shared(), "detach");
    let session = world.json(&["up", "--detach", "--json"]);
    let id = session["session"].as_str().expect("session id").to_string();
    let arn = session["task_arn"].as_str().expect("task ARN").to_string();
    assert!(
        session["ip"].as_str().unwrap().starts_with("10."),
        "{session}"
    );
    assert!(session["expires"].as_str().is_some(), "{session}");
    assert_eq!(world.running_tasks(), vec![arn.clone()]);

    let listed = world.json(&["ls", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["session"], id.as_str());

    let out = world.run(&["ssh", &id, "--", "echo", "hello-from", "$(hostname)"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "hello-from $(hostname)");

    let out = world.run(&["down", &id]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    world.wait_stopped(&arn);
    let again = world.run(&["down", &id]);
    assert!(
        again.status.success(),
        "down is idempotent: {}",
        stderr(&again)
    );
    world.assert_nothing_left();
}

#[test]
fn down_refuses_another_owners_session_unless_asked() {
    let alice = World::new(shared(), "owners").acting_as("alice-owners");
    let session = alice.json(&["up", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let bob = alice.sibling("bob-owners");

    let refused = bob.run(&["down", &id]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("alice-owners"),
        "stderr: {}",
        stderr(&refused)
    );
    assert_eq!(alice.running_tasks().len(), 1);

    assert_eq!(bob.json(&["ls", "--json"]), serde_json::json!([]));
    assert_eq!(
        bob.json(&["ls", "--all", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let all_mine = bob.run(&["down", "--all-mine"]);
    assert!(all_mine.status.success());
    assert_eq!(
        alice.running_tasks().len(),
        1,
        "--all-mine stopped someone else's task"
    );

    let forced = bob.run(&["down", &id, "--all"]);
    assert!(forced.status.success(), "stderr: {}", stderr(&forced));
    assert!(alice.running_tasks().is_empty());
    let out = alice.run(&["down", &id]);
    assert!(out.status.success());
    alice.assert_nothing_left();
}

#[test]
fn expired_sessions_are_reaped_whoever_owns_them() {
    let owner = World::new(shared(), "expired").acting_as("carol-expired");
    let session = owner.json(&["up", "--detach", "--json"]);
    let arn = session["task_arn"].as_str().unwrap().to_string();
    let fresh = owner.json(&["up", "--detach", "--json"]);
    owner.expire(&arn);
    let reaper = owner.sibling("reaper-expired");
    let out = reaper.run(&["down", "--expired"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        owner.running_tasks(),
        vec![fresh["task_arn"].as_str().unwrap().to_string()]
    );
    owner.run(&["down", "--all-mine"]);
    assert!(owner.running_tasks().is_empty());
}

#[test]
fn image_that_cannot_be_pulled_is_a_clear_task_failure() {
    let world = World::new(shared(), "pull");
    world
        .sandbox
        .ctl(&["task-fault", "pull-error", "--image", &world.image]);
    let out = world.run(&["up", "--", "true"]);
    assert_eq!(out.status.code(), Some(75), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("CannotPullContainerError"), "stderr: {err}");
    world.assert_nothing_left();
}

/// No registry has the image: the task stops as on Fargate, and jump says why.
#[test]
fn an_image_no_registry_has_is_a_clear_task_failure() {
    let world = World::new(shared(), "no-image");
    let out = world.run(&["up", "--image", "example.invalid/nothing:1", "--", "true"]);
    expect_exit(&out, 75, "CannotPullContainerError");
    expect_exit(&out, 75, "example.invalid/nothing:1");
    world.assert_nothing_left();
}

/// RunTask answers "not now" (Fargate capacity, ENIs) instead of a task: jump retries
/// with backoff, says so, and the session goes ahead.
#[test]
fn capacity_shortages_are_retried_until_a_task_starts() {
    let world = World::new(shared(), "capacity");
    let image = world.image.clone();
    world
        .sandbox
        .ctl(&["run-failure", "capacity", "--count", "2", "--image", &image]);
    world
        .sandbox
        .ctl(&["run-failure", "eni", "--count", "1", "--image", &image]);
    let out = world.run(&["up", "--", "echo", "started"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "started");
    let err = stderr(&out);
    assert!(
        err.contains("Capacity is unavailable") && err.contains("retrying"),
        "{err}"
    );
    assert!(err.contains("RESOURCE:ENI"), "{err}");
    world.assert_nothing_left();
}

/// Fargate's largest sizes: 8 and 16 vCPU.
#[test]
fn the_largest_fargate_sizes_are_accepted() {
    let world = World::new(shared(), "large");
    let out = world.run(&["up", "--cpu", "16384", "--memory", "32768", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let task = world.describe(&world.tasks("STOPPED")[0]);
    assert_eq!(
        (&task["cpu"], &task["memory"]),
        (&"16384".into(), &"32768".into())
    );
    world.assert_nothing_left();
}

/// A co-worker allowed to write into the session's log stream adds a key line of their
/// own, or back-dates one: jump trusts no key, connects nowhere, and stops the task.
#[test]
fn a_forged_host_key_line_in_the_stream_is_never_trusted() {
    for (fault, says) in [
        ("extra-host-key", "2 host key lines in jump/jumphost/"),
        (
            "backdated-host-key",
            "before the task's container could run",
        ),
    ] {
        let world = World::new(shared(), fault);
        world
            .sandbox
            .ctl(&["task-fault", fault, "--image", &world.image]);
        let out = world.run(&["up", "--", "echo", "should-not-run"]);
        assert_eq!(out.status.code(), Some(76), "{fault}: {}", stderr(&out));
        assert!(!stdout(&out).contains("should-not-run"));
        assert!(stderr(&out).contains(says), "{fault}: {}", stderr(&out));
        world.assert_nothing_left();
    }
}

#[test]
fn a_host_key_that_does_not_match_the_log_is_refused() {
    let world = World::new(shared(), "hostkey");
    world
        .sandbox
        .ctl(&["task-fault", "wrong-host-key", "--image", &world.image]);
    let out = world.run(&["up", "--", "echo", "should-not-run"]);
    assert_eq!(out.status.code(), Some(76), "stderr: {}", stderr(&out));
    assert!(!stdout(&out).contains("should-not-run"));
    assert!(
        stderr(&out).to_lowercase().contains("host key"),
        "stderr: {}",
        stderr(&out)
    );
    world.assert_nothing_left();
}

/// The world's next task is killed (exit 137) `after` seconds into RUNNING.
fn crash_next_task(world: &World, after: &str) {
    let image = world.image.as_str();
    let fault = [
        "task-fault",
        "crash",
        "--image",
        image,
        "--after",
        after,
        "--exit-code",
        "137",
    ];
    world.sandbox.ctl(&fault);
}

#[test]
fn task_crashing_during_the_session_is_reported() {
    let world = World::new(shared(), "crash");
    crash_next_task(&world, "0.1");
    let out = world.run(&["up", "--", "sleep", "30"]);
    assert_ne!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// A task that dies before its sshd listens ends the wait at once, with its own reason,
/// whichever wait it interrupts (the host key's or sshd's).
#[test]
fn a_task_dying_before_its_sshd_listens_is_reported_with_its_exit_code() {
    let world = World::new(shared(), "early-crash");
    crash_next_task(&world, "0");
    let out = world.run(&["up", "--wait-timeout", "2m", "--", "true"]);
    expect_exit(&out, 75, "container exit code: 137");
    world.assert_nothing_left();
}

#[test]
fn the_example_jump_toml_is_a_working_configuration() {
    // A sandbox of its own, whose IAM takes long enough to propagate that jump must wait
    // for the role below however slowly this machine gets to RunTask.
    let sandbox = Sandbox::start(0.2);
    sandbox.ctl(&["timing", "--iam-propagation", "12"]);
    let world = World::new(&sandbox, "example");
    let config = crate::support::repo().join("examples/jump.toml");
    // The example's execution role, made just now with jump's policies (its image is in
    // ECR, so the pull grant too): jump waits until ECS can assume it.
    let values = world.template_values();
    let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let repository = "arn:aws:ecr:eu-west-1:123456789012:repository/jumphost";
    let pull = [values.clone(), vec![("ecr_repository", repository)]].concat();
    world.role(
        "jump-execution",
        &[
            (
                "jump-execution",
                policy("execution-role-policy.json", &values),
            ),
            (
                "jump-ecr-pull",
                policy("execution-role-ecr-policy.json", &pull),
            ),
        ],
    );
    let out = world
        .jump()
        .env_remove("JUMP_IMAGE")
        .env_remove("JUMP_EXECUTION_ROLE")
        .env_remove("JUMP_TASK_ROLE")
        .args(["up", "--config"])
        .arg(&config)
        .args([
            "--cluster",
            &world.cluster,
            "--subnets",
            world.sandbox_var("JUMP_SUBNETS"),
        ])
        .args([
            "--security-groups",
            world.sandbox_var("JUMP_SECURITY_GROUPS"),
            "--",
            "true",
        ])
        .output()
        .expect("jump runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let arn = &world.tasks("STOPPED")[0];
    let task = world.describe(arn);
    assert_eq!(task["cpu"], "256");
    let definition = world.sandbox.aws(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        task["taskDefinitionArn"].as_str().unwrap(),
    ]);
    let container = &definition["taskDefinition"]["containerDefinitions"][0];
    assert_eq!(
        container["image"],
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumphost:latest"
    );
    assert_eq!(
        definition["taskDefinition"]["executionRoleArn"],
        "arn:aws:iam::123456789012:role/jump-execution"
    );
    let err = stderr(&out);
    assert!(
        err.contains("ECS cannot assume the task's roles yet"),
        "{err}"
    );
    world.assert_nothing_left();
}

#[test]
fn logs_show_the_session_task_output_and_follow_until_it_stops() {
    let world = World::new(shared(), "logs");
    let session = world.json(&["up", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let out = world.run(&["logs", &id]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("jump-host-key: ssh-ed25519 "), "{text}");
    assert!(
        text.contains("owner arn:aws:sts::123456789012:user/moto"),
        "{text}"
    );

    let follower = world.spawn(&["logs", "--follow", &id], std::process::Stdio::null());
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(world.run(&["down", &id]).status.success());
    let out = follower.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains("received SIGTERM"),
        "{}",
        stdout(&out)
    );
    world.assert_nothing_left();
}

/// Anyone allowed to write into a session's log stream could make `jump logs` send
/// escape sequences to the reader's terminal; they are shown, not obeyed.
#[test]
fn logs_show_escape_sequences_others_wrote_instead_of_obeying_them() {
    let world = World::new(shared(), "logs-escape");
    let session = world.json(&["up", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let task = session["task_arn"].as_str().unwrap();
    let stream = format!("jump/jumphost/{}", task.rsplit('/').next().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let events = serde_json::json!([{"timestamp": now, "message": "\u{1b}]0;owned\u{7}\u{1b}[2J"}]);
    world.sandbox.aws(&[
        "logs",
        "put-log-events",
        "--log-group-name",
        "/jump/sessions",
        "--log-stream-name",
        &stream,
        "--log-events",
        &events.to_string(),
    ]);
    let out = world.run(&["logs", &id]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(!out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07));
    assert!(
        stdout(&out).contains("\\x1b]0;owned\\x07\\x1b[2J"),
        "{}",
        stdout(&out)
    );
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

#[test]
fn twenty_concurrent_sessions_never_interfere() {
    let world = World::new(shared(), "twenty");
    let sessions: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| scope.spawn(|| world.json(&["up", "--detach", "--json"])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids: Vec<String> = sessions
        .iter()
        .map(|s| s["session"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "session ids collided");
    let mut arns: Vec<&str> = sessions
        .iter()
        .map(|s| s["task_arn"].as_str().unwrap())
        .collect();
    arns.sort_unstable();
    arns.dedup();
    assert_eq!(arns.len(), 20);

    let listed = world.json(&["ls", "--json"]);
    let mut listed_ids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_str().unwrap().to_string())
        .collect();
    listed_ids.sort();
    assert_eq!(listed_ids, ids);
    // Each local record belongs to its own session: no cross-talk.
    for session in &sessions {
        let id = session["session"].as_str().unwrap();
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(world.state.path().join(id).join("session.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(record["task_arn"], session["task_arn"]);
        assert_eq!(record["ip"], session["ip"]);
    }
    let out = world.run(&["down", "--all-mine"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

#[test]
fn gc_reaps_expired_sessions_like_down_expired() {
    let world = World::new(shared(), "gc");
    let session = world.json(&["up", "--detach", "--json"]);
    let arn = session["task_arn"].as_str().unwrap();
    world.expire(arn);
    let out = world.run(&["gc"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(world.running_tasks().is_empty());
    assert!(world
        .run(&["down", session["session"].as_str().unwrap()])
        .status
        .success());
    world.assert_nothing_left();
}

/// Tags are the caller's word. gc also stops a task of jump's family that ECS created
/// longer ago than any session may live, whatever its expiry tag says, and one with no
/// expiry at all, however it was started; a young, properly tagged session stays.
#[test]
fn gc_stops_what_ecs_says_is_too_old_and_what_has_no_expiry() {
    let world = World::new(shared(), "gc-age");
    let young = world.json(&["up", "--detach", "--json"]);
    let young_arn = young["task_arn"].as_str().unwrap().to_string();
    let old = world.json(&["up", "--detach", "--json"]);
    let old_arn = old["task_arn"].as_str().unwrap().to_string();
    world.sandbox.ctl(&["task-age", &old_arn, "90000"]);
    let family = world.describe(&young_arn)["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let untagged = world.run_registered(&family, &["--started-by", "by-hand"]);
    let mut running = world.running_tasks();
    running.sort();
    let mut all = vec![young_arn.clone(), old_arn.clone(), untagged];
    all.sort();
    assert_eq!(running, all);

    let out = world.run(&["gc"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(world.running_tasks(), vec![young_arn]);
    for session in [&young, &old] {
        let id = session["session"].as_str().unwrap();
        assert!(world.run(&["down", id]).status.success());
    }
    world.assert_nothing_left();
}

/// In a cluster made for jump (as its `jump:managed-by` tag says), gc also stops a task
/// of any other family once ECS created it longer ago than any session may live; a
/// young one stays, and in a cluster that is not jump's both stay.
#[test]
fn gc_in_a_cluster_made_for_jump_stops_any_task_that_is_too_old() {
    let world = World::new(shared(), "gc-dedicated");
    let family = format!("other-{}", world.cluster);
    world.sandbox.image("app:1", SERVER);
    world.register(
        &family,
        &serde_json::json!([{ "name": "app", "image": "app:1" }]),
    );
    let old = world.run_registered(&family, &[]);
    let young = world.run_registered(&family, &[]);
    world.sandbox.ctl(&["task-age", &old, "90000"]);
    let mut both = vec![old.clone(), young.clone()];
    both.sort();

    let out = world.run(&["gc"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let mut running = world.running_tasks();
    running.sort();
    assert_eq!(
        running, both,
        "not jump's cluster: nothing of another family is touched"
    );

    let described = world
        .sandbox
        .aws(&["ecs", "describe-clusters", "--clusters", &world.cluster]);
    let cluster_arn = described["clusters"][0]["clusterArn"].as_str().unwrap();
    world.sandbox.aws(&[
        "ecs",
        "tag-resource",
        "--resource-arn",
        cluster_arn,
        "--tags",
        "key=jump:managed-by,value=jump-init",
    ]);
    let out = world.run(&["gc"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(world.running_tasks(), vec![young.clone()]);
    world.stop_task(&young);
    world.assert_nothing_left();
}

#[test]
fn jumps_own_revision_serves_session_after_session() {
    let world = World::new(shared(), "reuse");
    let family = format!("reuse-{}", world.cluster);
    for _ in 0..2 {
        let out = world.run(&["up", "--family", &family, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    }
    let used = world.revisions_run();
    assert_eq!(used.len(), 2);
    assert_eq!(used[0], used[1], "the second session registered a revision");
    let listed = world
        .sandbox
        .aws(&["ecs", "list-task-definitions", "--family-prefix", &family]);
    assert_eq!(listed["taskDefinitionArns"].as_array().unwrap().len(), 1);
    world.assert_nothing_left();
}

/// Registers, on top of jump's own revision of a fresh family, a copy carrying jump's
/// content tag and whatever `plant` changes in its container; then `jump up` must run a
/// revision of its own, never the planted one.
fn a_planted_revision_is_never_run(name: &str, plant: impl Fn(&mut serde_json::Value)) {
    let world = World::new(shared(), name);
    let family = format!("{name}-{}", world.cluster);
    let first = world.run(&["up", "--mode", "exec", "--family", &family, "--", "true"]);
    assert_eq!(first.status.code(), Some(0), "stderr: {}", stderr(&first));
    let ours = world.sandbox.aws(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        &family,
        "--include",
        "TAGS",
    ]);
    let hash = ours["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "jump:content-hash")
        .expect("jump tags its revision")["value"]
        .as_str()
        .unwrap()
        .to_string();
    let mut containers = ours["taskDefinition"]["containerDefinitions"].clone();
    plant(&mut containers[0]);
    let tag = format!("key=jump:content-hash,value={hash}");
    let role = ours["taskDefinition"]["taskRoleArn"].as_str().unwrap();
    let extra = ["--tags", &tag, "--task-role-arn", role];
    let planted = world.register_with(&family, &containers, &extra)["taskDefinition"]
        ["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();

    let second = world.run(&["up", "--mode", "exec", "--family", &family, "--", "true"]);
    assert_eq!(second.status.code(), Some(0), "stderr: {}", stderr(&second));
    let used = world.revisions_run();
    assert_eq!(used.len(), 2);
    assert!(
        !used.contains(&planted),
        "jump ran the planted revision {planted}"
    );
    let latest = world.sandbox.aws(&[
        "ecs",
        "describe-task-definition",
        "--task-definition",
        &family,
    ]);
    assert_eq!(
        latest["taskDefinition"]["containerDefinitions"],
        ours["taskDefinition"]["containerDefinitions"],
        "jump registered its own content again"
    );
    world.assert_nothing_left();
}

/// A revision someone else registered in jump's family, with jump's content tag copied
/// onto a different image and command, must not be run: jump registers its own.
#[test]
fn a_revision_with_a_copied_content_tag_is_not_trusted() {
    a_planted_revision_is_never_run("poison", |container| {
        container["image"] = serde_json::json!("attacker/image:1");
        container["command"] = serde_json::json!(["sh", "-c", "echo owned"]);
    });
}

#[test]
fn a_health_check_planted_in_jumps_revision_is_not_trusted() {
    // ECS runs a health check's command inside the container, as root.
    a_planted_revision_is_never_run("health", |container| {
        container["healthCheck"] =
            serde_json::json!({"command": ["CMD-SHELL", "echo owned > /tmp/x"]});
    });
}

#[test]
fn a_restart_policy_or_ulimits_planted_in_jumps_revision_are_not_trusted() {
    a_planted_revision_is_never_run("restart", |container| {
        container["restartPolicy"] = serde_json::json!({"enabled": true});
    });
    a_planted_revision_is_never_run("ulimits", |container| {
        container["ulimits"] =
            serde_json::json!([{"name": "nofile", "softLimit": 16, "hardLimit": 16}]);
    });
}

/// Port sessions the sandbox's Session Manager has seen to this task (`ssm
/// describe-sessions`, active and ended).
pub fn port_sessions_to(world: &World, task_arn: &str) -> usize {
    let id = task_arn.rsplit('/').next().unwrap();
    ["Active", "History"]
        .iter()
        .map(|state| {
            let listed = world
                .sandbox
                .aws(&["ssm", "describe-sessions", "--state", state]);
            listed["Sessions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["Target"].as_str().unwrap_or_default().contains(id))
                .count()
        })
        .sum()
}

/// ssh over the network into a jumphost whose security group has no inbound rule (as
/// `jump init` makes it): after a few silent probes jump says the packets are dropped,
/// names the groups and the way out, and leaves nothing behind.
#[test]
fn ssh_to_a_jumphost_its_group_does_not_admit_says_so_and_names_the_way_out() {
    let world = World::new(shared(), "ssh-dropped");
    let group = world.sandbox.group(&format!("closed-{}", world.cluster));
    let out = world.run(&["up", "--security-groups", &group, "--", "true"]);
    expect_exit(&out, 76, "does not answer");
    for needle in [
        group.as_str(),
        "ssh_via = \"ssm\"",
        "inbound rule for port 22",
    ] {
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    let arn = world.tasks("STOPPED").pop().expect("the session's task");
    world.wait_stopped(&arn);
    world.assert_nothing_left();
}

/// ssh mode through Session Manager, into a jumphost whose security group has no inbound
/// rule at all: sshd is reached over a port session to the task's own port 22, the host
/// key still pinned, while TCP to its port 22 goes nowhere; `jump ssh-config` lets scp,
/// sftp and rsync use the same path with their own binaries.
#[test]
fn ssh_through_session_manager_needs_no_inbound_rule_and_serves_scp_sftp_rsync() {
    let world = World::new(shared(), "ssh-ssm");
    let group = world.sandbox.group(&format!("closed-{}", world.cluster));
    let world = world.with_env("JUMP_SECURITY_GROUPS", &group);
    let out = world.run(&["up", "--ssh-via", "ssm", "--", "echo", "via-ssm"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "via-ssm");
    let arn = world.tasks("STOPPED").pop().expect("the session's task");
    assert!(
        port_sessions_to(&world, &arn) >= 1,
        "no port session was used"
    );
    world.assert_nothing_left();

    let session = world.json(&["up", "--ssh-via", "ssm", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let arn = session["task_arn"].as_str().unwrap().to_string();
    let out = world.run(&["ssh", &id, "--", "echo", "again"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "again");
    let address = (session["private_ip"].as_str().unwrap(), 22);
    let address = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .unwrap()
        .next()
        .unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)).is_err(),
        "the group has no inbound rule, yet {address} took a connection"
    );

    let config = world.run(&["ssh-config", &id]);
    assert!(config.status.success(), "stderr: {}", stderr(&config));
    let text = stdout(&config);
    assert!(text.contains(&format!("Host jump-{id}")), "{text}");
    assert!(text.contains("ProxyCommand "), "{text}");
    let config_file = world.home.path().join("ssh_config");
    std::fs::write(&config_file, &text).unwrap();
    let payload = world.home.path().join("payload.bin");
    let bytes: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&payload, &bytes).unwrap();
    let host = format!("jump-{id}");
    let ssh_env = |cmd: &mut Command| {
        // What `jump ssh-proxy` needs from the environment, as jump itself has it.
        cmd.env_clear()
            .envs(world.jump().get_envs().filter_map(|(k, v)| Some((k, v?))));
    };
    let mut scp = Command::new("scp");
    ssh_env(&mut scp);
    let out = scp
        .args(["-q", "-F"])
        .arg(&config_file)
        .arg(&payload)
        .arg(format!("{host}:payload.bin"))
        .output()
        .expect("scp runs");
    assert!(out.status.success(), "scp: {}", stderr(&out));
    let sum = world.run(&["ssh", &id, "--", "sha256sum", "payload.bin"]);
    let expected = {
        use ssh_key::sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(&bytes))
    };
    assert!(stdout(&sum).starts_with(&expected), "{}", stdout(&sum));
    let mut sftp = Command::new("sftp");
    ssh_env(&mut sftp);
    let out = sftp
        .args(["-q", "-b", "-", "-F"])
        .arg(&config_file)
        .arg(&host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"ls -l payload.bin\n")?;
            child.wait_with_output()
        })
        .expect("sftp runs");
    assert!(out.status.success(), "sftp: {}", stderr(&out));
    assert!(stdout(&out).contains("20971520"), "{}", stdout(&out));

    let tree = world.home.path().join("tree");
    std::fs::create_dir_all(tree.join("nested/deeper")).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(tree.join("nested/b.bin"), &bytes[..65536]).unwrap();
    std::fs::write(tree.join("nested/deeper/c"), "").unwrap();
    let mut rsync = Command::new("rsync");
    ssh_env(&mut rsync);
    let out = rsync
        .arg("-a")
        .arg("-e")
        .arg(format!("ssh -F {}", config_file.display()))
        .arg(format!("{}/", tree.display()))
        .arg(format!("{host}:tree/"))
        .output()
        .expect("rsync runs");
    assert!(out.status.success(), "rsync: {}", stderr(&out));
    let listing = "cd tree && find . -type f | sort | xargs sha256sum";
    let remote = world.run(&["ssh", &id, "--", "sh", "-c", listing]);
    let local = Command::new("sh")
        .args(["-c", listing])
        .current_dir(world.home.path())
        .output()
        .unwrap();
    assert_eq!(stdout(&remote), stdout(&local), "{}", stderr(&remote));
    assert_eq!(stdout(&local).lines().count(), 3);

    let out = world.run(&["down", &id]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    world.wait_stopped(&arn);
    world.assert_nothing_left();
}

/// A start slower than 20 s (Fargate's capacity, a big image) is not waited out in
/// silence: jump says what the task is waiting for, from the task's own status fields.
#[test]
fn a_slow_start_says_what_it_is_waiting_for() {
    let sandbox = Sandbox::start(8.0);
    let world = World::new(&sandbox, "up-slow");
    let out = world.run(&["up", "--mode", "exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("still starting after 2"), "{said}");
    assert!(said.contains(": waiting for "), "{said}");
    world.assert_nothing_left();
}
