//! AWS API faults, each in a sandbox of its own (API faults are sandbox-wide).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

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

/// An AWS endpoint that stops answering: each call gives up after its attempt timeout
/// and is retried, so a StopTask that hangs once still ends the session cleanly.
#[test]
fn a_call_that_hangs_is_timed_out_and_retried() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "hang-once");
    sandbox.ctl(&["fault", "StopTask", "--kind", "hang", "--seconds", "300"]);
    let out = world.run(&["up", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(pending_faults(&sandbox), 0, "the hung call was made");
    let stopped = world.tasks("STOPPED");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    world.assert_nothing_left();
}

/// StopTask never answers: teardown gives up at its deadline instead of hanging the
/// terminal or a CI job, and says which task is left and how to stop it.
#[test]
fn a_teardown_that_never_finishes_gives_up_at_its_deadline_and_names_the_task() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "hang-always");
    let script = "echo ready; cat >/dev/null";
    let mut child = world.spawn(&["up", "--", "sh", "-c", script], Stdio::piped());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().expect("a line").expect("readable"), "ready");
    let arn = world.wait_for_task();
    sandbox.ctl(&[
        "fault",
        "StopTask",
        "--kind",
        "hang",
        "--seconds",
        "300",
        "--count",
        "100",
    ]);
    // The remote command ends with its input; jump then tries to stop the task.
    drop(child.stdin.take());
    drop(lines);
    let out = child.wait_with_output().expect("jump exits");
    let err = stderr(&out);
    let note = err
        .lines()
        .find(|l| l.contains("stopping the task took longer than 45s"))
        .unwrap_or_else(|| panic!("no note of what is left: {err}"));
    assert!(note.contains(&arn), "{note}");
    assert_eq!(world.describe(&arn)["desiredStatus"], "RUNNING");
    sandbox.ctl(&["clear"]);
    let session = note
        .split("`jump down ")
        .nth(1)
        .and_then(|tail| tail.split('`').next())
        .unwrap_or_else(|| panic!("no `jump down ID` in {note}"));
    let down = world.run(&["down", session]);
    assert!(down.status.success(), "stderr: {}", stderr(&down));
    world.wait_stopped(&arn);
    world.assert_nothing_left();
}

fn pending_faults(sandbox: &Sandbox) -> usize {
    let listed: serde_json::Value =
        serde_json::from_str(&sandbox.ctl(&["faults"])).expect("ctl prints JSON");
    listed["faults"].as_array().expect("a list").len()
}
