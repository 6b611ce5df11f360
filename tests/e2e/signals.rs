//! Signals sent to `jump up` in each phase leave nothing behind.
//!
//! These run in a sandbox with one-second lifecycle steps, so that the wait
//! phase (PROVISIONING, PENDING, ACTIVATING) is long enough to be hit for sure.
//! jump runs in a process group of its own and each signal goes to the whole group, as
//! a terminal sends Ctrl-C or a hang-up to the foreground job (ssh included).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{stderr, Sandbox, Terminal, World};

fn slow() -> &'static Sandbox {
    static SLOW: OnceLock<Sandbox> = OnceLock::new();
    SLOW.get_or_init(|| Sandbox::start(1.0))
}

/// `jump ARGS` as the foreground job of a terminal: a process group of its own.
fn spawn_job(world: &World, args: &[&str]) -> Child {
    world
        .jump()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("jump starts")
}

/// The signal to jump's whole process group.
fn send(child: &Child, signal: i32) {
    let group = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: killpg(2) on the process group of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::killpg(group, signal) }, 0);
}

fn finish(world: &World, child: Child, signal: i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = child.wait_with_output().expect("jump exits");
    assert!(Instant::now() < deadline);
    assert_eq!(
        out.status.code(),
        Some(128 + signal),
        "stderr: {}",
        stderr(&out)
    );
    for arn in world.tasks("STOPPED") {
        world.wait_stopped(&arn);
    }
    world.assert_nothing_left();
}

/// Signal while the task is being waited for (PROVISIONING..ACTIVATING). jump reports each
/// status as it sees it, so the signal goes at the first one, seconds before RUNNING
/// (asking ECS ourselves through the AWS CLI was too slow on a loaded machine).
fn during_wait(signal: i32, name: &str) {
    let world = World::new(slow(), name);
    let mut child = spawn_job(&world, &["up", "--", "true"]);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("readable stderr");
        let waiting = line.contains("task PROVISIONING") || line.contains("task PENDING");
        seen.push(line);
        if waiting {
            break;
        }
    }
    send(&child, signal);
    // Read to the end, so jump never writes into a closed pipe.
    seen.extend(lines.map_while(Result::ok));
    assert!(
        !seen.iter().any(|l| l.contains("task RUNNING")),
        "signal must land before RUNNING: {seen:#?}"
    );
    finish(&world, child, signal);
}

/// Signal while the remote command runs over SSH.
fn during_session(signal: i32, name: &str) {
    let world = World::new(slow(), name);
    let mut child = spawn_job(&world, &["up", "--", "sh", "-c", "echo ready; sleep 60"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().expect("a line").expect("readable"), "ready");
    send(&child, signal);
    finish(&world, child, signal);
}

/// Signal while RunTask is being retried (the sandbox throttles it): nothing may start.
fn during_provisioning(signal: i32, name: &str) {
    let sandbox = Sandbox::start(1.0);
    let world = World::new(&sandbox, name);
    sandbox.ctl(&["fault", "RunTask", "--count", "3"]);
    let child = spawn_job(&world, &["up", "--", "true"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sandbox.ctl(&["faults"]).contains("\"count\": 3") {
        assert!(Instant::now() < deadline, "jump never called RunTask");
        std::thread::sleep(Duration::from_millis(20));
    }
    send(&child, signal);
    finish(&world, child, signal);
}

/// One test per signal and phase, so a failure names both.
macro_rules! signal_tests {
    ($($name:ident: $phase:ident($signal:ident, $label:literal);)*) => {
        $(
            #[test]
            fn $name() {
                $phase(libc::$signal, $label);
            }
        )*
    };
}

signal_tests! {
    sigint_during_provisioning: during_provisioning(SIGINT, "int-provision");
    sigterm_during_provisioning: during_provisioning(SIGTERM, "term-provision");
    sighup_during_provisioning: during_provisioning(SIGHUP, "hup-provision");
    sigint_during_wait: during_wait(SIGINT, "int-wait");
    sigterm_during_wait: during_wait(SIGTERM, "term-wait");
    sighup_during_wait: during_wait(SIGHUP, "hup-wait");
    sigint_during_session: during_session(SIGINT, "int-session");
    sigterm_during_session: during_session(SIGTERM, "term-session");
    sighup_during_session: during_session(SIGHUP, "hup-session");
}

/// SIGKILL leaves no chance to clean up: the jumphost must end itself once
/// nobody is connected, and `jump down` then clears the local files.
/// A second Ctrl-C while StopTask is still being retried: jump gives up waiting at once,
/// and says which task is left and how to stop it.
#[test]
fn a_second_ctrl_c_during_teardown_names_what_is_left() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "int-twice");
    let mut child = spawn_job(&world, &["up", "--", "sh", "-c", "echo ready; sleep 60"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().expect("a line").expect("readable"), "ready");
    let arn = world.wait_for_task();
    sandbox.ctl(&["fault", "StopTask", "--count", "1000"]);
    send(&child, libc::SIGINT);
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in errors.by_ref() {
        if line.expect("readable stderr").contains("stopping the task") {
            break;
        }
    }
    send(&child, libc::SIGINT);
    let rest: Vec<String> = errors.map_while(Result::ok).collect();
    let status = child.wait().expect("jump exits");
    assert_eq!(status.code(), Some(130), "stderr: {rest:#?}");
    let note = rest
        .iter()
        .find(|l| l.contains("SIGINT during teardown"))
        .unwrap_or_else(|| panic!("no note of what is left: {rest:#?}"));
    assert!(note.contains(&arn), "{note}");
    let session = note
        .split("`jump down ")
        .nth(1)
        .and_then(|tail| tail.split('`').next())
        .unwrap_or_else(|| panic!("no `jump down ID` in {note}"));

    // The task is indeed still there, and the command given stops it.
    assert_eq!(world.describe(&arn)["desiredStatus"], "RUNNING");
    sandbox.ctl(&["clear"]);
    let out = world.run(&["down", session]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    world.wait_stopped(&arn);
    world.assert_nothing_left();
}

/// `up --detach` whose output cannot be printed: nobody would know the session, so it
/// is not handed over but stopped.
#[test]
fn a_detached_session_nobody_was_told_about_is_stopped() {
    let world = World::new(crate::support::shared(), "detach-closed");
    let mut child = world.spawn(&["up", "--detach", "--json"], Stdio::null());
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("jump exits");
    assert_ne!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot print the detached session"),
        "stderr: {}",
        stderr(&out)
    );
    for arn in world.tasks("STOPPED") {
        world.wait_stopped(&arn);
    }
    world.assert_nothing_left();
}

#[test]
fn after_sigkill_the_task_stops_itself_and_down_clears_local_files() {
    let world = World::new(crate::support::shared(), "sigkill");
    let mut child = spawn_job(
        &world,
        &[
            "up",
            "--idle-timeout",
            "3s",
            "--",
            "sh",
            "-c",
            "echo ready; sleep 600",
        ],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().expect("a line").expect("readable"), "ready");
    let arn = world.wait_for_task();
    // The whole client goes: jump and its ssh.
    send(&child, libc::SIGKILL);
    child.wait().expect("reaped");

    let task = world.wait_stopped(&arn);
    assert_eq!(task["stopCode"], "EssentialContainerExited", "{task}");
    assert_eq!(task["containers"][0]["exitCode"], 0);
    let session = world.state_files()[0]
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let out = world.run(&["down", &session]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// `jump up` in ssh mode in a real terminal: what is typed, Ctrl-C and a resize all reach
/// the remote shell, and closing the terminal (a hang-up to jump and ssh alike) still
/// ends in a full teardown.
#[test]
fn an_interactive_ssh_session_in_a_real_terminal_and_closing_it() {
    let world = World::new(crate::support::shared(), "ssh-tty");
    let term = Terminal::start(&world, "up");
    term.wait_for("$");
    term.exercise_shell();
    let arn = world.wait_for_task();

    drop(term); // the terminal goes away under the session
    world.wait_stopped(&arn);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !world.state_files().is_empty() {
        assert!(Instant::now() < deadline, "left: {:?}", world.state_files());
        std::thread::sleep(Duration::from_millis(100));
    }
    world.assert_nothing_left();
}
