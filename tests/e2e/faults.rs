//! AWS API faults, each in a sandbox of its own (API faults are sandbox-wide).

use crate::support::{expect_exit, stderr, Sandbox, World};

#[test]
fn throttling_on_run_describe_and_stop_is_survived() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "throttle");
    for action in ["RunTask", "DescribeTasks", "StopTask", "GetLogEvents"] {
        sandbox.ctl(&["fault", action, "--count", "2"]);
    }
    let out = world.run(&["up", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let left = sandbox.aws(&["ecs", "list-tasks", "--cluster", "jump-sandbox"]);
    assert_eq!(left["taskArns"], serde_json::json!([]));
    world.assert_nothing_left();
    assert_eq!(pending_faults(&sandbox), 0, "every injected fault was hit");
}

#[test]
fn persistent_throttling_is_an_aws_error_and_still_tears_down() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "throttled");
    sandbox.ctl(&[
        "fault",
        "DescribeTasks",
        "--service",
        "ecs",
        "--count",
        "1000",
    ]);
    let out = world.run(&["up", "--", "true"]);
    assert_eq!(out.status.code(), Some(69), "stderr: {}", stderr(&out));
    // The Rust SDK parsed the sandbox's error shape into the service's error code.
    assert!(
        stderr(&out).contains("ThrottlingException"),
        "stderr: {}",
        stderr(&out)
    );
    world.assert_nothing_left();
}

#[test]
fn access_denied_on_run_task_is_an_aws_error_with_nothing_started() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "denied");
    sandbox.ctl(&["fault", "RunTask", "--kind", "access-denied"]);
    let out = world.run(&["up", "--", "true"]);
    expect_exit(&out, 69, "AccessDenied");
    assert!(world.tasks("STOPPED").is_empty() && world.running_tasks().is_empty());
    world.assert_nothing_left();
}

fn pending_faults(sandbox: &Sandbox) -> usize {
    let listed: serde_json::Value =
        serde_json::from_str(&sandbox.ctl(&["faults"])).expect("ctl prints JSON");
    listed["faults"].as_array().expect("a list").len()
}
