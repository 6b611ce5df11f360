//! `jump exec` and `jump up --mode exec`: our own Session Manager client against
//! the sandbox's independent agent-side gateway.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{
    expect_exit, policy, shared, stderr, stdout, Sandbox, Terminal, World, SERVER,
};

#[test]
fn exec_mode_passes_output_and_exit_status_through() {
    let world = World::new(shared(), "exec-status");
    let out = world.run(&[
        "up",
        "--mode",
        "exec",
        "--",
        "sh",
        "-c",
        "echo on $(hostname); exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).starts_with("on ip-10-"),
        "stdout: {:?}",
        stdout(&out)
    );
    world.assert_nothing_left();
}

#[test]
fn piped_stdin_reaches_the_command_and_is_not_echoed() {
    let world = World::new(shared(), "exec-stdin");
    let args = ["up", "--mode", "exec", "--", "sh", "-c", "cat; exit 5"];
    let out = world.run_with_input(&args, b"one\ntwo\nthree");
    assert_eq!(out.status.code(), Some(5), "stderr: {}", stderr(&out));
    // Exactly the bytes sent: no echo, no CR/LF translation, the unterminated line kept.
    assert_eq!(stdout(&out), "one\ntwo\nthree");
    world.assert_nothing_left();
}

#[test]
fn detached_exec_session_round_trip() {
    let world = World::new(shared(), "exec-detach");
    let session = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let arn = session["task_arn"].as_str().unwrap().to_string();
    assert_eq!(session["ssh"], format!("jump exec {id}"));

    let out = world.run(&["exec", &id, "--", "printf", "%s|", "a b", "it's"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "a b|it's|");

    let out = world.run(&["exec", "--task", &arn, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));

    let refused = world.run(&["ssh", &id]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("jump exec"),
        "stderr: {}",
        stderr(&refused)
    );

    // The task has no sshd: the entrypoint said so in its log.
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

#[test]
fn exec_into_an_ssh_session_and_refusals() {
    let world = World::new(shared(), "exec-into-ssh");
    let session = world.json(&["up", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let out = world.run(&["exec", &id, "--", "id", "-un"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "root");

    let missing = world.run(&["exec", "0123456789ab", "--", "true"]);
    assert_eq!(
        missing.status.code(),
        Some(75),
        "stderr: {}",
        stderr(&missing)
    );
    assert!(stderr(&missing).contains("no running session"));
    let bad = world.run(&["exec", "../etc", "--", "true"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

#[test]
fn exec_into_a_task_without_exec_enabled_is_a_clear_aws_error() {
    let world = World::new(shared(), "exec-disabled");
    let family = format!("plain-{}", world.cluster);
    world.sandbox.image("app:1", SERVER);
    let arn = world.run_task(
        &family,
        &serde_json::json!([{ "name": "app", "image": "app:1" }]),
    );
    let out = world.run(&["exec", "--task", &arn, "--", "true"]);
    expect_exit(&out, 69, "execute command was not enabled");
    expect_exit(&out, 69, "jump doctor --task");
    world.stop_task(&arn);
}

/// `--ssm-plugin`: the session goes to the plugin, and without a terminal jump still
/// reports the command's real exit status (the plugin itself would say 0).
#[test]
fn exec_through_the_official_plugin_keeps_the_exit_status_in_ci() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let world = World::new(shared(), "exec-plugin")
        .with_env("JUMP_PLUGIN_STANDIN_LOG", log.path().to_str().unwrap());
    let plugin = crate::forward::PLUGIN;
    let args = [
        "up",
        "--mode",
        "exec",
        "--ssm-plugin",
        plugin,
        "--",
        "sh",
        "-c",
        "read v; echo via-$v; exit 3",
    ];
    let out = world.run_with_input(&args, b"plugin\n");
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(stdout(&out).contains("via-plugin"), "{}", stdout(&out));
    let text = std::fs::read_to_string(log.path()).unwrap();
    let argv: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let argv = argv["argv"].as_array().unwrap();
    let session: serde_json::Value = serde_json::from_str(argv[0].as_str().unwrap()).unwrap();
    assert!(session["sessionId"].is_string() && session["tokenValue"].is_string());
    let request: serde_json::Value = serde_json::from_str(argv[4].as_str().unwrap()).unwrap();
    assert!(request["Target"]
        .as_str()
        .unwrap()
        .starts_with(&format!("ecs:{}_", world.cluster)));
    world.assert_nothing_left();
}

/// `--service`: the service's exec-ready task; a service without exec is explained.
#[test]
fn exec_into_a_service_task() {
    let world = World::new(shared(), "exec-service");
    let family = format!("svc-{}", world.cluster);
    world.register_sleeper(&family, &[]);
    for (name, exec) in [("web", true), ("worker", false)] {
        world.create_service(name, &family, exec);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = world.run(&[
            "exec",
            "--service",
            "web",
            "--",
            "sh",
            "-c",
            "echo in-service; exit 4",
        ]);
        if out.status.code() == Some(4) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "in-service");

    let out = world.run(&["exec", "--service", "worker", "--", "true"]);
    expect_exit(&out, 75, "jump doctor --service worker");
    let out = world.run(&["exec", "--service", "nope", "--", "true"]);
    expect_exit(&out, 69, "ServiceNotFoundException");
    let out = world.run(&["exec", "--service", "web", "--task", "abc"]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));

    let doctor = world.run(&["doctor", "--json", "--service", "worker"]);
    assert_eq!(doctor.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let enabled = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "exec-enabled")
        .unwrap();
    assert_eq!(enabled["status"], "FAIL");
    world.delete_services(&["web", "worker"]);
    world.assert_nothing_left();
}

/// A cluster whose ECS Exec configuration names a KMS key: every session is encrypted
/// (the sandbox's agent refuses a client that cannot do it), and each way it can fail
/// is named.
#[test]
fn kms_encrypted_sessions_work_and_failures_are_named() {
    let world = World::new(shared(), "exec-kms");
    let key = world.sandbox.aws(&["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let key_arn = world
        .sandbox
        .aws(&["kms", "describe-key", "--key-id", &key])["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let configuration = serde_json::json!({"executeCommandConfiguration": {"kmsKeyId": key}});
    world.sandbox.aws(&[
        "ecs",
        "update-cluster",
        "--cluster",
        &world.cluster,
        "--configuration",
        &configuration.to_string(),
    ]);
    // The task role of templates/: the channels, and kms:Decrypt on this cluster's key.
    let channels = ("ecs-exec", policy("task-role-policy.json", &[]));
    let decrypt = policy("task-role-kms-policy.json", &[("kms_key_arn", &key_arn)]);
    let role = world.role(
        &format!("{}-task", world.cluster),
        &[channels.clone(), ("kms", decrypt)],
    );
    let out = world.run(&[
        "up",
        "--mode",
        "exec",
        "--task-role",
        &role,
        "--",
        "sh",
        "-c",
        "echo sealed-$((6*7)); exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "sealed-42");

    let args = [
        "up",
        "--mode",
        "exec",
        "--task-role",
        &role,
        "--",
        "sh",
        "-c",
        "read line; echo got-$line",
    ];
    let out = world.run_with_input(&args, b"typed\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "got-typed");

    // A task role without the key policy may not decrypt the data key: the agent says so
    // and jump passes it on.
    let without_key = world.role(&format!("{}-nokey", world.cluster), &[channels]);
    let out = world.run(&[
        "up",
        "--mode",
        "exec",
        "--task-role",
        &without_key,
        "--",
        "true",
    ]);
    expect_exit(&out, 76, "kms:Decrypt");

    // We may not generate a data key: named, with the doctor checks that explain it.
    world.sandbox.ctl(&[
        "fault",
        "GenerateDataKey",
        "--kind",
        "access-denied",
        "--count",
        "1",
    ]);
    let out = world.run(&["up", "--mode", "exec", "--task-role", &role, "--", "true"]);
    expect_exit(&out, 76, "session encryption failed");
    expect_exit(&out, 76, "exec-kms-key");
    world.assert_nothing_left();
}

/// A session in tmux: prompt, echo, resize, Ctrl-C, exit status.
#[test]
fn interactive_shell_in_a_real_terminal() {
    let world = World::new(shared(), "exec-tty");
    let term = Terminal::start(&world, "up --mode exec");
    term.wait_for(":/#"); // the prompt (tmux trims its trailing space)
    term.exercise_shell();
    term.keys(&["exit 9", "Enter"]);
    let shown = term.wait_for("jump-exited-");
    assert!(shown.contains("jump-exited-9"), "screen:\n{shown}");
    drop(term);
    world.assert_nothing_left();
}

/// ssh's escapes on an interactive exec session: at the start of a line `~?` lists them
/// and `~.` ends the session from this side (exit 255, the task stopped as usual);
/// `--escape none` sends them as typed.
#[test]
fn escapes_end_an_interactive_session_from_this_side() {
    let world = World::new(shared(), "exec-escape");
    let term = Terminal::start(&world, "up --mode exec");
    term.wait_for(":/#");
    term.keys(&["-l", "echo not~.an-$((1+1))"]);
    term.keys(&["Enter"]);
    term.wait_for("not~.an-2");
    term.keys(&["-l", "~?"]);
    term.wait_for("Supported escape sequences");
    term.keys(&["-l", "~."]);
    let shown = term.wait_for("jump-exited-");
    assert!(
        shown.contains("session ended from this side (~.)"),
        "screen:\n{shown}"
    );
    assert!(shown.contains("jump-exited-255"), "screen:\n{shown}");
    drop(term);
    world.assert_nothing_left();

    let world = World::new(shared(), "exec-escape-none");
    let term = Terminal::start(&world, "--escape none up --mode exec");
    term.wait_for(":/#");
    term.keys(&["-l", "~."]);
    term.keys(&["Enter"]);
    term.wait_for("not found");
    term.keys(&["exit 3", "Enter"]);
    let shown = term.wait_for("jump-exited-");
    assert!(shown.contains("jump-exited-3"), "screen:\n{shown}");
    drop(term);
    world.assert_nothing_left();
}

/// With a terminal the official plugin owns it and reports no remote status: jump says so
/// and exits with the plugin's own status, and still stops the task.
#[test]
fn the_official_plugin_in_a_terminal() {
    let world = World::new(shared(), "exec-tty-plugin");
    let command = format!(
        "up --mode exec --ssm-plugin {} -- sh -c 'echo on-a-tty-$(tty >/dev/null && echo yes); exit 6'",
        crate::forward::PLUGIN
    );
    let term = Terminal::start(&world, &command);
    let shown = term.wait_for("jump-exited-");
    assert!(shown.contains("on-a-tty-yes"), "screen:\n{shown}");
    assert!(
        shown.contains("does not report the remote exit status"),
        "screen:\n{shown}"
    );
    assert!(shown.contains("jump-exited-0"), "screen:\n{shown}");
    drop(term);
    world.assert_nothing_left();
}

/// The plugin killed mid-session cannot put the terminal back as it found it (it set
/// cbreak without echo): jump does, reports the plugin's end, and stops the task.
#[test]
fn a_killed_plugin_leaves_the_terminal_as_it_was() {
    let world = World::new(shared(), "exec-tty-plugin-killed");
    // After jump: the terminal's line discipline, then jump's own status.
    let command = format!(
        "up --mode exec --ssm-plugin {} -- sh -c 'echo plugin-up; sleep 60'; s=$?; \
         echo \"modes:$(stty -a | tr ' ;' '\\n\\n' | grep -x -e '-*icanon' -e '-*echo' | tr '\\n' ' ')\"; \
         (exit $s)",
        crate::forward::PLUGIN
    );
    let term = Terminal::start(&world, &command);
    term.wait_for("plugin-up");
    let pane = term.tmux(&["display-message", "-p", "#{pane_pid}"]);
    let shell = String::from_utf8_lossy(&pane.stdout).trim().to_string();
    let child_of = |parent: &str| -> String {
        let out = std::process::Command::new("pgrep")
            .args(["-P", parent])
            .output()
            .expect("pgrep runs");
        let pids = String::from_utf8_lossy(&out.stdout).into_owned();
        pids.lines()
            .next()
            .unwrap_or_else(|| panic!("no child of {parent}"))
            .to_string()
    };
    let jump = child_of(&shell);
    let plugin = child_of(&jump);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &plugin])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let shown = term.wait_for("jump-exited-");
    let modes = shown.lines().find(|l| l.starts_with("modes:"));
    assert_eq!(
        modes.map(str::trim_end),
        Some("modes:icanon echo"),
        "screen:\n{shown}"
    );
    assert!(!shown.contains("jump-exited-0"), "screen:\n{shown}");
    drop(term);
    world.assert_nothing_left();
}

/// Drop, duplicate and delay on the gateway's side: every byte arrives, in order.
#[test]
fn a_faulty_channel_still_delivers_everything() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "exec-faults");
    sandbox.ctl(&[
        "gateway-fault",
        "--drop",
        "0.1",
        "--duplicate",
        "0.1",
        "--delay",
        "0.1",
    ]);
    let out = world.run(&["up", "--mode", "exec", "--", "seq", "1", "100000"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let expected: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    assert!(
        stdout(&out) == expected,
        "output differs: {} bytes vs {}",
        stdout(&out).len(),
        expected.len()
    );
    world.assert_nothing_left();
}

/// The gateway dies mid-session: jump says so promptly and exits non-zero.
#[test]
fn a_killed_channel_is_reported_at_once() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "exec-killed");
    sandbox.ctl(&["gateway-fault", "--kill-after", "1"]);
    let args = [
        "up",
        "--mode",
        "exec",
        "--",
        "sh",
        "-c",
        "echo started; sleep 60",
    ];
    let mut child = world.spawn(&args, Stdio::null());
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    // Long before the remote command's 60 s: the cut is what ended the session.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    expect_exit(&out, 76, "data channel");
    world.assert_nothing_left();
}

/// Exec mode on a stock image whose own CMD is a shell that exits at once without a
/// terminal (on Fargate that stops the task before anyone connects): jump's watchdog is
/// the task's command, so the session works, and a task nobody uses ends by itself.
#[test]
fn exec_mode_works_on_a_stock_image_and_the_task_ends_itself() {
    let world = World::new(shared(), "exec-stock");
    let stock = "public.ecr.aws/amazonlinux/amazonlinux:2023";
    let out = world.run(&[
        "up",
        "--mode",
        "exec",
        "--image",
        stock,
        "--",
        "sh",
        "-c",
        "echo stock; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "stock");

    // Detached and never used: the watchdog ends it after the idle timeout, no client needed.
    let session = world.json(&[
        "up",
        "--mode",
        "exec",
        "--image",
        stock,
        "--idle-timeout",
        "2s",
        "--detach",
        "--json",
    ]);
    let arn = session["task_arn"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let task = loop {
        let task = world.describe(&arn);
        if task["lastStatus"] == "STOPPED" {
            break task;
        }
        assert!(
            Instant::now() < deadline,
            "the idle task never ended: {task}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(task["stopCode"], "EssentialContainerExited", "{task}");
    assert_eq!(task["containers"][0]["exitCode"], 0, "{task}");
    // The watchdog said why, in the task's log stream (the session is gone from `jump logs`).
    let task_id = task["taskArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let events = world.sandbox.aws(&[
        "logs",
        "get-log-events",
        "--log-group-name",
        "/jump/sessions",
        "--log-stream-name",
        &format!("jump/jumphost/{task_id}"),
    ]);
    let said = events["events"].to_string();
    assert!(said.contains("no session for 2s"), "{said}");
    // What is left is this machine's record of the session, which `down` clears.
    let down = world.run(&["down", session["session"].as_str().unwrap()]);
    assert!(down.status.success(), "{}", stderr(&down));
    world.assert_nothing_left();
}

/// ECS reports the exec agent RUNNING a few seconds before Session Manager can reach it
/// (ExecuteCommand answers TargetNotConnectedException meanwhile): `jump exec` right
/// after `jump up --detach` waits that out instead of failing.
#[test]
fn exec_right_after_the_agent_starts_waits_for_it_to_connect() {
    let world = World::new(shared(), "exec-settle");
    let session = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap();
    let out = world.run(&["-v", "exec", id, "--", "echo", "reached"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "reached");
    assert!(world.run(&["down", id]).status.success());
    world.assert_nothing_left();
}

/// `-vvv` is what a user pastes into a bug report: it must not hand out the session.
#[test]
fn the_most_verbose_diagnostics_hold_no_session_token() {
    let world = World::new(shared(), "exec-trace");
    let session = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap();
    let out = world.run(&["-vvv", "exec", id, "--", "echo", "reached"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "reached");
    let diagnostics = stderr(&out);
    assert!(
        diagnostics.contains("DEBUG"),
        "-vvv shows jump's own debug lines"
    );
    assert!(
        !diagnostics.to_lowercase().contains("tokenvalue"),
        "the StartSession token is in the diagnostics"
    );
    // Lifting the cap is possible, and says what it means.
    let unsafe_trace = world
        .jump()
        .env("JUMP_UNSAFE_TRACE", "1")
        .args(["-vvv", "ls"])
        .output()
        .unwrap();
    assert!(
        stderr(&unsafe_trace).contains("JUMP_UNSAFE_TRACE=1: this output can hold session tokens"),
        "{}",
        stderr(&unsafe_trace)
    );
    assert!(world.run(&["down", id]).status.success());
    world.assert_nothing_left();
}

/// `cat dump.sql | jump exec …`: every byte arrives as sent, whatever it is and however
/// long the line, and a command that stops reading still ends the session.
#[test]
fn piped_input_arrives_byte_for_byte() {
    use sha2::{Digest, Sha256};
    use std::io::Write as _;

    let world = World::new(shared(), "exec-bytes");
    let session = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();

    let one_long_line: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let every_byte_value: Vec<u8> = (0..=255u8).cycle().take(256 * 8).collect();
    let control_characters =
        b"\x03\x04\x7f\x15\x1a\x1c\x11\x13\x16\x0f\x12\x17\x00\r\n\x04".repeat(64);
    let inputs: [(&str, &[u8]); 4] = [
        ("a 100 KB single line", &one_long_line),
        ("all 256 byte values", &every_byte_value),
        ("control characters", &control_characters),
        ("nothing at all", b""),
    ];
    for (what, input) in inputs {
        let out = world.run_with_input(&["exec", &id, "--", "sha256sum"], input);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        let expected = format!("{:x}", Sha256::digest(input));
        assert_eq!(
            stdout(&out).split_whitespace().next(),
            Some(expected.as_str()),
            "{what} arrived altered"
        );
    }

    // Like `yes | head -n 2` locally: the command's end ends the session.
    let mut child = world.spawn(&["exec", &id, "--", "head", "-n", "2"], Stdio::piped());
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || while input.write_all(b"y\n").is_ok() {});
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "y\ny\n");

    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

/// A container without `stty` or `head -c` cannot take piped input byte for byte: jump
/// says what is missing instead of delivering something else.
#[test]
fn piped_input_into_a_container_that_cannot_carry_it_is_refused_clearly() {
    let world = World::new(shared(), "exec-unfit");
    let only_sh = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/bin/sh", only_sh.path().join("sh")).unwrap();
    let family = format!("unfit-{}", world.cluster);
    world.register_sleeper(&family, &[("PATH", only_sh.path().to_str().unwrap())]);
    let arn = world.run_registered(&family, &["--enable-execute-command"]);
    world.wait_status(&arn, "RUNNING");
    let out = world.run_with_input(&["exec", "--task", &arn, "--", "sh", "-c", "cat"], b"data");
    expect_exit(&out, 76, "cannot take piped input byte for byte");
    expect_exit(&out, 76, "`stty` and `head -c`");
    assert_eq!(stdout(&out), "");
    world.stop_task(&arn);
}

/// Anyone may put a colleague's session id on a task of their own. `jump exec ID` still
/// goes to the caller's own task, and once that is gone refuses the impostor.
#[test]
fn a_session_id_planted_on_someone_elses_task_is_not_followed() {
    let world = World::new(shared(), "exec-planted");
    let session = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let family = format!("planted-{}", world.cluster);
    world.register_sleeper(&family, &[("MARK", "planted")]);
    let claim = format!("key=jump:session,value={id}");
    let planted = world.run_registered(
        &family,
        &[
            "--enable-execute-command",
            "--started-by",
            "jump",
            "--tags",
            &claim,
            "key=jump:owner-id,value=AIDAMALLORY",
        ],
    );
    world.wait_status(&planted, "RUNNING");

    let out = world.run(&["exec", &id, "--", "sh", "-c", "echo ${MARK:-genuine}"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "genuine");

    assert!(world.run(&["down", &id]).status.success());
    let out = world.run(&["exec", &id, "--", "true"]);
    expect_exit(&out, 75, "someone else claims it");
    assert!(stderr(&out).contains(&planted), "stderr: {}", stderr(&out));
    world.stop_task(&planted);
    world.assert_nothing_left();
}
