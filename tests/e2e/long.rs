//! Sessions that outlast their connection: the service recycles a data channel's WebSocket
//! (about hourly), networks cut it without a word, and jump resumes the session
//! (`ssm:ResumeSession`) without losing or repeating a byte. Each test has a sandbox of its
//! own: gateway faults apply to every session opened while they are set.

use std::io::{Read, Write};
use std::process::Stdio;

use ssh_key::sha2::{Digest, Sha256};

use crate::forward::{connect, echo_task, forward, perl_task, stop};
use crate::support::{expect_exit, stderr, stdout, Sandbox, Terminal, World, SERVER};

/// Bytes each connection to the source task's port 9000 sends: MIB mebibytes of a
/// repeating pattern, then it closes.
fn source_task(world: &World, mib: usize) -> (String, String) {
    let family = format!("source-{}", world.cluster);
    let server = format!(
        "use IO::Socket::INET; $s=IO::Socket::INET->new(LocalPort=>9000,Listen=>4,ReuseAddr=>1) or die; \
         $b=join('', map {{ chr(($_ * 7 + 3) % 251) }} 0..1048575); \
         while($c=$s->accept){{ if(!fork){{ for (1..{mib}) {{ print $c $b }} close $c; exit }} close $c }}"
    );
    world.sandbox.image("source:1", SERVER);
    let definition = serde_json::json!([{ "name": "source", "image": "source:1", "command": ["perl", "-e", server] }]);
    perl_task(world, &family, &definition)
}

fn expected_digest(mib: usize) -> (usize, String) {
    let block: Vec<u8> = (0..1_048_576u32)
        .map(|i| ((i * 7 + 3) % 251) as u8)
        .collect();
    let mut hash = Sha256::new();
    for _ in 0..mib {
        hash.update(&block);
    }
    (mib * block.len(), format!("{:x}", hash.finalize()))
}

/// Reads everything from `address` and returns its length and SHA-256.
fn fetch(address: &str) -> (usize, String) {
    let mut stream = connect(address);
    let (mut hash, mut total, mut buffer) = (Sha256::new(), 0, vec![0u8; 256 * 1024]);
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hash.update(&buffer[..n]);
                total += n;
            }
            Err(e) => panic!("the transfer broke after {total} bytes: {e}"),
        }
    }
    (total, format!("{:x}", hash.finalize()))
}

/// The largest number of connections any port or exec session of the sandbox has had.
fn most_connections(sandbox: &Sandbox) -> u64 {
    let listing: serde_json::Value = serde_json::from_str(&sandbox.ctl(&["sessions"])).unwrap();
    listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["connections"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Downloads MIB mebibytes through `jump forward` while the gateway applies `fault`
/// (`--recycle-every N` or `--break-every N`) to every connection, and checks they arrive
/// whole and in order, and that connections were indeed lost on the way.
fn download_across(name: &str, fault: &[&str], mib: usize) {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, name);
    let (source, ip) = source_task(&world, mib);
    sandbox.ctl(&[&["gateway-fault"], fault].concat());
    let (child, address) = forward(&world, &format!("0:{ip}:9000"));
    assert_eq!(fetch(&address), expected_digest(mib));
    assert!(
        most_connections(&sandbox) >= 2,
        "no connection was lost: {}",
        sandbox.ctl(&["sessions"])
    );
    world.stop_task(&source);
    stop(&world, child);
}

/// Terminates (`ssm terminate-session`, as an administrator would) the one active
/// session of the sandbox and returns its id.
fn terminate_the_only_session(sandbox: &Sandbox) -> String {
    let active = sandbox.aws(&["ssm", "describe-sessions", "--state", "Active"]);
    let sessions = active["Sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{active}");
    let id = sessions[0]["SessionId"].as_str().unwrap().to_string();
    sandbox.aws(&["ssm", "terminate-session", "--session-id", &id]);
    id
}

/// The service closes the WebSocket (code 1000) every 3 s: a 200 MB download through
/// `jump forward` arrives whole and in order across the recycles.
#[test]
fn a_forward_carries_200_mb_intact_across_recycled_connections() {
    download_across("long-recycle", &["--recycle-every", "3"], 200);
}

/// A network that drops the connection without a close frame, mid-transfer: resumed,
/// nothing lost.
#[test]
fn a_forward_survives_connections_cut_without_a_close_frame() {
    download_across("long-break", &["--break-every", "1"], 50);
}

/// A connection that goes silent (a path that drops everything, never closing): jump's
/// keepalive notices within seconds and resumes; the download arrives whole.
#[test]
fn a_forward_outlives_a_connection_that_goes_silent() {
    download_across("long-stall", &["--stall-every", "1"], 30);
}

/// A command that outlives several connections: its output and its exit status arrive.
#[test]
fn an_exec_command_outlives_its_connections_and_keeps_its_exit_status() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "long-exec");
    sandbox.ctl(&["gateway-fault", "--recycle-every", "3"]);
    let script = "echo begun; sleep 10; echo done; exit 6";
    let out = world.run(&["up", "--mode", "exec", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(6), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "begun\ndone\n");
    assert!(
        most_connections(&sandbox) >= 3,
        "{}",
        sandbox.ctl(&["sessions"])
    );
    world.assert_nothing_left();
}

/// A session terminated through the API cannot be resumed: jump names the reason, exits
/// 76, and stops the jumphost it started.
#[test]
fn a_session_that_cannot_be_resumed_ends_with_the_reason() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "long-refused");
    let mut child = world.spawn(
        &[
            "up",
            "--mode",
            "exec",
            "--",
            "sh",
            "-c",
            "echo started; sleep 60",
        ],
        Stdio::null(),
    );
    let mut first = [0u8; 8];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"started\n");
    terminate_the_only_session(&sandbox);
    let out = child.wait_with_output().unwrap();
    expect_exit(&out, 76, "could not be resumed");
    assert!(
        stderr(&out).contains("no longer exists"),
        "{}",
        stderr(&out)
    );
    world.assert_nothing_left();
}

/// Input typed into a command while its connection is being recycled reaches it once,
/// in order.
#[test]
fn piped_input_crosses_recycled_connections_byte_for_byte() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "long-input");
    sandbox.ctl(&["gateway-fault", "--recycle-every", "2"]);
    let mut child = world.spawn(&["up", "--mode", "exec", "--", "sha256sum"], Stdio::piped());
    let input: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            // Slowly enough to span several connections.
            for chunk in input.chunks(256 * 1024) {
                stdin.write_all(chunk).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        })
    };
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let expected = format!("{:x}", Sha256::digest(&input));
    assert!(stdout(&out).starts_with(&expected), "{}", stdout(&out));
    assert!(
        most_connections(&sandbox) >= 2,
        "{}",
        sandbox.ctl(&["sessions"])
    );
    world.assert_nothing_left();
}

/// An interactive shell in tmux keeps going across recycled connections: the same shell
/// (the same pid) answers before and after, and its exit status is jump's.
#[test]
fn an_interactive_shell_keeps_its_process_across_recycled_connections() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "long-tty");
    sandbox.ctl(&["gateway-fault", "--recycle-every", "2"]);
    let term = Terminal::start(&world, "up --mode exec");
    term.wait_for(":/#");
    term.keys(&["echo bef\"\"ore-$$", "Enter"]); // the quotes keep the typed line from matching
    let shown = term.wait_for("before-");
    let pid = |shown: &str, tag: &str| -> String {
        let line = shown
            .lines()
            .rev()
            .find(|l| l.starts_with(tag))
            .unwrap_or_default();
        line.trim_start_matches(tag).trim().to_string()
    };
    let before = pid(&shown, "before-");
    assert!(!before.is_empty(), "screen:\n{shown}");
    // Wait (on the sandbox's own count) until the connection has been replaced twice.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while most_connections(&sandbox) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            sandbox.ctl(&["sessions"])
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    term.keys(&["echo aft\"\"er-$$", "Enter"]);
    let shown = term.wait_for("after-");
    assert_eq!(pid(&shown, "after-"), before, "screen:\n{shown}");
    term.keys(&["exit 4", "Enter"]);
    let shown = term.wait_for("jump-exited-");
    assert!(shown.contains("jump-exited-4"), "screen:\n{shown}");
    drop(term);
    world.assert_nothing_left();
}

/// ECS Exec's idle timeout (20 minutes, fixed by AWS): a command that keeps printing but
/// gets no input is ended by the service. jump says so and what to do instead, exits 76,
/// and stops the jumphost it started.
#[test]
fn an_exec_session_without_input_is_ended_by_the_idle_timeout_and_jump_says_why() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "long-idle");
    sandbox.ctl(&["gateway-fault", "--idle-close", "2"]);
    let chatter = "while true; do echo tick; sleep 0.5; done";
    let out = world.run(&["up", "--mode", "exec", "--", "sh", "-c", chatter]);
    expect_exit(&out, 76, "timed out due to inactivity");
    assert!(
        stderr(&out).contains("20 minutes without input") && stderr(&out).contains("tmux"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("tick\n"), "{}", stdout(&out));
    world.assert_nothing_left();
}

/// A forward whose port session ends for good carries on: the connection it carried is
/// reset, a new one goes through a new session, and jump says why on stderr. `end` ends
/// the session the way the story needs.
fn renewed_after(name: &str, fault: &[&str], end: impl FnOnce(&Sandbox), why: &str) {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, name);
    let (echo, ip) = echo_task(&world);
    if !fault.is_empty() {
        sandbox.ctl(&[&["gateway-fault"], fault].concat());
    }
    let (child, address) = forward(&world, &format!("0:{ip}:7000"));
    let mut before = connect(&address);
    // A hang guard only: the session's end resets this connection long before.
    before
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    before.write_all(b"one").unwrap();
    let mut answer = [0u8; 3];
    before.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"one");
    let first = sandbox.aws(&["ssm", "describe-sessions", "--state", "Active"]);
    end(&sandbox);

    let err = before
        .read(&mut answer)
        .expect_err("a connection of an ended session must not end cleanly");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let mut after = connect(&address);
    after.write_all(b"two").unwrap();
    after.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"two");
    let active = sandbox.aws(&["ssm", "describe-sessions", "--state", "Active"]);
    let ids = |listing: &serde_json::Value| -> Vec<String> {
        listing["Sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Status"] == "Connected")
            .filter_map(|s| s["SessionId"].as_str().map(String::from))
            .collect()
    };
    let (first, now) = (ids(&first), ids(&active));
    assert!(
        first.len() == 1 && now.len() == 1 && now[0] != first[0],
        "{active}"
    );
    drop(after);
    world.stop_task(&echo);
    let out = stop(&world, child);
    assert!(stderr(&out).contains(why), "{}", stderr(&out));
}

/// A session terminated through the API cannot be resumed: the forward opens a new one.
#[test]
fn a_forward_whose_session_is_terminated_carries_on_through_a_new_one() {
    renewed_after(
        "long-renew",
        &[],
        |sandbox| {
            terminate_the_only_session(sandbox);
        },
        "new ones go through a new session",
    );
}

/// The account's Session Manager idle timeout ends a port session nobody uses: the next
/// connection goes through a new session, and jump names the timeout.
#[test]
fn a_forward_idle_past_the_session_timeout_opens_a_new_session_for_the_next_connection() {
    renewed_after(
        "long-idle-fwd",
        &["--idle-close", "4"],
        |_| {}, // the first connection's read below waits out the idle limit
        "idle timeout",
    );
}

/// Writes a profile whose credentials come from `credential_process`: an assumed role,
/// fetched again each time the SDK finds them about to expire (as SSO and `aws sts
/// assume-role` wrappers do). Returns the config file and the log of fetches.
fn assumed_role_profile(sandbox: &Sandbox, dir: &std::path::Path, role: &str) -> (String, String) {
    let python = format!(
        "{}/tests/sandbox/.venv/bin/python",
        env!("CARGO_MANIFEST_DIR")
    );
    let fetches = dir.join("fetches").display().to_string();
    let script = dir.join("credentials");
    let fetch = "import boto3, json, sys\n\
        c = boto3.client('sts', endpoint_url=sys.argv[1], region_name=sys.argv[2]).assume_role(\n\
            RoleArn=sys.argv[3], RoleSessionName='jump-long')['Credentials']\n\
        print(json.dumps({'Version': 1, 'AccessKeyId': c['AccessKeyId'], 'SecretAccessKey': c['SecretAccessKey'],\n\
            'SessionToken': c['SessionToken'], 'Expiration': c['Expiration'].isoformat()}))\n";
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho fetched >> '{fetches}'\n\
             exec env AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox '{python}' -c \"{fetch}\" \
             '{}' '{}' '{role}'\n",
            sandbox.var("AWS_ENDPOINT_URL"),
            sandbox.var("AWS_REGION"),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile long]\ncredential_process = {}\nregion = {}\n",
            script.display(),
            sandbox.var("AWS_REGION")
        ),
    )
    .unwrap();
    (config.display().to_string(), fetches)
}

/// A role anyone in the sandbox's account may assume; returns its ARN.
fn assumable_role(sandbox: &Sandbox, name: &str) -> String {
    let account = sandbox.aws(&["sts", "get-caller-identity"])["Account"]
        .as_str()
        .unwrap()
        .to_string();
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "sts:AssumeRole"}]});
    let role = sandbox.aws(&[
        "iam",
        "create-role",
        "--role-name",
        name,
        "--assume-role-policy-document",
        &trust.to_string(),
    ]);
    sandbox.aws(&[
        "iam",
        "attach-role-policy",
        "--role-name",
        name,
        "--policy-arn",
        "arn:aws:iam::aws:policy/AdministratorAccess",
    ]);
    role["Role"]["Arn"].as_str().unwrap().to_string()
}

/// Credentials that expire while a session runs (SSO, an assumed role's hour, here
/// compressed to 8 s): the SDK fetches fresh ones through the profile, and every resume
/// of the session signs with them; the command's output and status arrive.
#[test]
fn an_exec_command_outlives_its_credentials_when_they_refresh() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "long-creds");
    let session = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let arn = session["task_arn"].as_str().unwrap().to_string();
    let role = assumable_role(&sandbox, "jump-long-creds");
    let dir = tempfile::TempDir::new().unwrap();
    let (config, fetches) = assumed_role_profile(&sandbox, dir.path(), &role);
    sandbox.ctl(&["credentials", "--lifetime", "8"]);
    sandbox.ctl(&["gateway-fault", "--recycle-every", "3"]);

    let script = "echo begun; sleep 24; echo done; exit 6";
    let out = world
        .jump()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_PROFILE", "long")
        .args(["exec", "--task", &arn, "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "begun\ndone\n");
    let fetched = std::fs::read_to_string(&fetches).unwrap().lines().count();
    assert!(fetched >= 3, "credentials fetched only {fetched} times");
    assert!(
        most_connections(&sandbox) >= 5,
        "{}",
        sandbox.ctl(&["sessions"])
    );
    sandbox.ctl(&["credentials"]);
    world.run(&["down", session["session"].as_str().unwrap()]);
    world.assert_nothing_left();
}

/// Credentials that expire and cannot be refreshed (plain environment variables from an
/// earlier `aws sts assume-role`): the first resume after their expiry is refused, and
/// jump says the credentials expired, exit 76.
#[test]
fn an_exec_session_whose_credentials_expire_for_good_ends_with_the_reason() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "long-expired");
    let session = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let arn = session["task_arn"].as_str().unwrap().to_string();
    let role = assumable_role(&sandbox, "jump-long-expired");
    sandbox.ctl(&["credentials", "--lifetime", "6"]);
    let issued = sandbox.aws(&[
        "sts",
        "assume-role",
        "--role-arn",
        &role,
        "--role-session-name",
        "jump-long",
    ]);
    sandbox.ctl(&["credentials"]);
    sandbox.ctl(&["gateway-fault", "--recycle-every", "2"]);
    let creds = &issued["Credentials"];
    let out = world
        .jump_with_credentials(creds)
        .args([
            "exec",
            "--task",
            &arn,
            "--",
            "sh",
            "-c",
            "echo begun; sleep 30",
        ])
        .output()
        .unwrap();
    expect_exit(&out, 76, "could not be resumed");
    assert!(
        stderr(&out).contains("credentials expired"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "begun\n");
    world.run(&["down", session["session"].as_str().unwrap()]);
    world.assert_nothing_left();
}
