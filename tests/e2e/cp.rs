//! `jump cp`: files up to and down from a task, through ECS Exec (only `sh` and `base64`
//! or `od` in the container) or, for an ssh session started here, through scp.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{expect_exit, shared, stderr, stdout, Sandbox, Terminal, World};

fn detached(world: &World, mode: &str) -> (String, String) {
    let session: Value = world.json(&["up", "--mode", mode, "--detach", "--json"]);
    (
        session["session"].as_str().unwrap().to_string(),
        session["task_arn"].as_str().unwrap().to_string(),
    )
}

fn sha256_of(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// What the task's own sha256sum says of `path`.
fn remote_sha256(world: &World, session: &str, path: &str) -> String {
    let out = world.run(&["exec", session, "--", "sha256sum", path]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

/// Makes `/tmp/big` in the session's task, `bytes` of random, and an empty `inbox` here
/// for a download of it to land in.
fn big_remote_file_and_an_inbox(world: &World, session: &str, bytes: u64) -> std::path::PathBuf {
    let make = format!("head -c {bytes} /dev/urandom > /tmp/big");
    let out = world.run(&["exec", session, "--", "sh", "-c", &make]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let inbox = world.home.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    inbox
}

/// Fails if anything, a temporary file included, is left in `dir`.
fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Bytes no terminal passes unharmed: every value, runs of control characters, and
/// pseudo-random noise, `len` of them.
fn awkward_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(&b"\x03\x04\x1a\x1c\x11\x13\x7f\x00\r\n\x04".repeat(16));
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// 100 MB of binary up into a session's task and back down again arrive byte for byte:
/// checked by the task's own sha256sum and by ours, and by jump's cksum on the way.
#[test]
fn a_100_mb_binary_file_goes_up_and_comes_back_byte_for_byte() {
    let world = World::new(shared(), "cp-big");
    let (id, arn) = detached(&world, "exec");
    let local = world.home.path().join("blob.bin");
    std::fs::write(&local, awkward_bytes(100_000_000)).unwrap();
    let sent = sha256_of(&local);

    let out = world.run(&["cp", "--json", "blob.bin", &format!("{id}:/tmp/")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["via"], "exec");
    assert_eq!(report["task_arn"], arn);
    assert_eq!(report["files"], 1);
    assert_eq!(report["bytes"], 100_000_000);
    assert_eq!(report["unverified"], 0);
    assert_eq!(remote_sha256(&world, &id, "/tmp/blob.bin"), sent);

    let back = world.home.path().join("back.bin");
    let out = world.run(&["cp", &format!("{id}:/tmp/blob.bin"), "back.bin"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("copied 1 file(s), 100000000 byte(s) (each checked with cksum)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sha256_of(&back), sent);
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

/// A tree of awkward names (spaces, quotes, a leading dash, UTF-8, dot files), an empty
/// directory and an executable go up with -r into an existing directory (landing inside
/// it, as with cp) and come back down the same; without -r a directory is refused.
#[test]
fn a_directory_tree_goes_up_and_comes_back_with_its_names_and_executable_bits() {
    let world = World::new(shared(), "cp-tree");
    let (id, _) = detached(&world, "exec");
    let tree = world.home.path().join("site");
    for dir in ["sub dir/deep", "empty", "-dash"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    std::fs::write(tree.join("it's \"quoted\".txt"), "quotes\n").unwrap();
    std::fs::write(tree.join("sub dir/deep/naïve ✓"), awkward_bytes(70_000)).unwrap();
    std::fs::write(tree.join(".hidden"), "").unwrap();
    std::fs::write(tree.join("-dash/run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(
        tree.join("-dash/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let out = world.run(&["cp", "site", &format!("{id}:/tmp")]);
    expect_exit(&out, 2, "is a directory: add -r");
    let out = world.run(&["exec", &id, "--", "mkdir", "/srv/www"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let out = world.run(&["cp", "-r", "site", &format!("{id}:/srv/www")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("copied 4 file(s)"),
        "{}",
        stderr(&out)
    );
    let out = world.run(&["exec", &id, "--", "/srv/www/site/-dash/run.sh"]);
    assert_eq!(stdout(&out), "ran\n", "stderr: {}", stderr(&out));
    let out = world.run(&["exec", &id, "--", "test", "-d", "/srv/www/site/empty"]);
    assert_eq!(out.status.code(), Some(0), "the empty directory went too");

    let out = world.run(&["cp", &format!("{id}:/srv/www/site"), "down"]);
    expect_exit(&out, 1, "/srv/www/site is a directory in the task: add -r");
    let out = world.run(&["cp", "-r", &format!("{id}:/srv/www/site"), "down"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let down = world.home.path().join("down");
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&tree)
        .arg(&down)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert!(down.join("empty").is_dir());
    let mode = std::fs::metadata(down.join("-dash/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o111,
        0o111,
        "the executable bit came back: {mode:o}"
    );
    // Into an existing directory, a download lands inside it.
    std::fs::create_dir(world.home.path().join("fresh")).unwrap();
    let out = world.run(&["cp", "-r", &format!("{id}:/srv/www/site/sub dir"), "fresh"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        sha256_of(&world.home.path().join("fresh/sub dir/deep/naïve ✓")),
        sha256_of(&tree.join("sub dir/deep/naïve ✓"))
    );
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

/// A sleeping container whose PATH holds only the named tools (links to this machine's).
fn container_with_only(world: &World, family: &str, tools: &[&str]) -> (String, tempfile::TempDir) {
    let bin = tempfile::tempdir().unwrap();
    for tool in tools {
        let real = which(tool);
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
    }
    world.register_sleeper(family, &[("PATH", bin.path().to_str().unwrap())]);
    let arn = world.run_registered(family, &["--enable-execute-command"]);
    world.wait_status(&arn, "RUNNING");
    (arn, bin)
}

fn which(tool: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The container needs only `sh` and `od`: binary goes up as `printf` escapes and comes
/// down as `od`'s hexadecimal, byte for byte, and jump says it could not check it with
/// cksum. With only `sh`, a copy from the task names what it lacks; one to it still works.
#[test]
fn a_container_with_only_sh_and_od_still_copies_byte_for_byte_and_says_what_it_lacks() {
    let world = World::new(shared(), "cp-bare");
    let family = format!("bare-{}", world.cluster);
    let (arn, _bin) = container_with_only(&world, &family, &["sh", "od"]);
    let bytes = awkward_bytes(20_000);
    std::fs::write(world.home.path().join("in.bin"), &bytes).unwrap();
    let out = world.run(&["cp", "--task", &arn, "in.bin", ":/tmp/copied.bin"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("(not checked: the container has no cksum)"),
        "{}",
        stderr(&out)
    );
    let out = world.run(&[
        "cp",
        "--json",
        "--task",
        &arn,
        ":/tmp/copied.bin",
        "out.bin",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unverified"], 1, "{report}");
    assert_eq!(
        std::fs::read(world.home.path().join("out.bin")).unwrap(),
        bytes
    );
    world.stop_task(&arn);

    let family = format!("sh-only-{}", world.cluster);
    let (arn, _bin) = container_with_only(&world, &family, &["sh"]);
    let out = world.run(&["cp", "--task", &arn, "in.bin", ":/tmp/copied.bin"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let out = world.run(&["cp", "--task", &arn, ":/tmp/copied.bin", "again.bin"]);
    expect_exit(&out, 76, "neither `base64` nor `od`");
    assert!(!world.home.path().join("again.bin").exists());
    world.stop_task(&arn);
}

/// What goes wrong in the task is named, with cp's exit status 1, and leaves nothing
/// here: a missing file, a directory that does not exist. Bad input is refused before
/// any AWS call (config.rs).
#[test]
fn failures_in_the_task_are_named_and_leave_nothing_behind() {
    let world = World::new(shared(), "cp-fail");
    let (id, _) = detached(&world, "exec");
    let out = world.run(&["cp", &format!("{id}:/no/such/file"), "here"]);
    expect_exit(
        &out,
        1,
        "/no/such/file: no such file or directory in the task",
    );
    std::fs::write(world.home.path().join("f.txt"), "x").unwrap();
    let out = world.run(&["cp", "f.txt", &format!("{id}:/no/such/dir/f.txt")]);
    expect_exit(&out, 1, "cannot write /no/such/dir/f.txt in the task");
    let out = world.run(&["cp", "-r", &format!("{id}:/etc/hostname"), "f.txt/x"]);
    expect_exit(&out, 2, "f.txt is not a directory here");
    let entries: Vec<_> = std::fs::read_dir(world.home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "f.txt" && !name.starts_with('.'))
        .collect();
    assert!(entries.is_empty(), "left behind: {entries:?}");
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

/// A container that answers for the copy script (a hostile image) cannot make jump write
/// outside the copy: a name with `..` is refused and nothing is written.
#[test]
fn a_container_cannot_make_jump_write_outside_the_copy() {
    let world = World::new(shared(), "cp-hostile");
    let bin = tempfile::tempdir().unwrap();
    // Its `sh` skips the script and names a file one level up; $4 is the nonce.
    let liar = format!(
        "#!{}\nn=$4\nm() {{ printf '\\033]jump;%s;%s\\007' \"$n\" \"$1\"; }}\nm ready=b\n\
         m \"file=-:3:$(printf /../escaped | base64)\"\nprintf 'aGkK\\n'\nm end=\nm done\n",
        which("bash")
    );
    let sh = bin.path().join("sh");
    std::fs::write(&sh, liar).unwrap();
    std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(which("base64"), bin.path().join("base64")).unwrap();
    let family = format!("liar-{}", world.cluster);
    world.register_sleeper(&family, &[("PATH", bin.path().to_str().unwrap())]);
    let arn = world.run_registered(&family, &["--enable-execute-command"]);
    world.wait_status(&arn, "RUNNING");
    std::fs::create_dir(world.home.path().join("inbox")).unwrap();
    let out = world.run(&["cp", "--task", &arn, ":/etc/motd", "inbox/motd"]);
    expect_exit(&out, 76, "for a name outside the copy");
    assert!(!world.home.path().join("escaped").exists());
    assert_empty(&world.home.path().join("inbox"));
    world.stop_task(&arn);
}

/// An ssh-mode session started on this machine is copied by scp with its own key and
/// pinned host key, files and trees both ways.
#[test]
fn an_ssh_session_started_here_is_copied_with_scp() {
    let world = World::new(shared(), "cp-scp");
    let (id, _) = detached(&world, "ssh");
    let tree = world.home.path().join("conf");
    std::fs::create_dir_all(tree.join("nested")).unwrap();
    std::fs::write(tree.join("nested/app.yml"), awkward_bytes(50_000)).unwrap();
    let out = world.run(&["cp", "--json", "-r", "conf", &format!("{id}:")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["via"], "scp", "{report}");
    let out = world.run(&["ssh", &id, "--", "sha256sum", "conf/nested/app.yml"]);
    assert_eq!(
        stdout(&out).split_whitespace().next(),
        Some(sha256_of(&tree.join("nested/app.yml")).as_str()),
        "stderr: {}",
        stderr(&out)
    );
    let out = world.run(&["cp", &format!("{id}:conf/nested/app.yml"), "copy.yml"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        sha256_of(&world.home.path().join("copy.yml")),
        sha256_of(&tree.join("nested/app.yml"))
    );
    let out = world.run(&["cp", &format!("{id}:/no/such"), "x"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "scp's own status: {}",
        stderr(&out)
    );
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

/// A service's newest exec-ready task is a copy's other side with `--service NAME`.
#[test]
fn a_service_s_task_is_copied_to_and_from() {
    let world = World::new(shared(), "cp-service");
    let family = format!("svc-{}", world.cluster);
    world.register_sleeper(&family, &[]);
    world.create_service("web", &family, true);
    std::fs::write(world.home.path().join("seed.sql"), "insert 1;\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = world.run(&["cp", "--service", "web", "seed.sql", ":/tmp/"]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let out = world.run(&["cp", "--service", "web", ":/tmp/seed.sql", "back.sql"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(world.home.path().join("back.sql")).unwrap(),
        "insert 1;\n"
    );
    world.delete_services(&["web"]);
}

/// On a terminal, the copy shows a progress bar, and with no session named the session
/// is chosen from a list: typing part of its id and Enter copies into that one.
#[test]
fn on_a_terminal_the_session_is_chosen_and_a_progress_bar_shows() {
    let world = World::new(shared(), "cp-term");
    let (first, _) = detached(&world, "exec");
    let (second, _) = detached(&world, "exec");
    std::fs::write(world.home.path().join("big.bin"), awkward_bytes(10_000_000)).unwrap();
    let term = Terminal::start(&world, "cp big.bin :/tmp/big.bin");
    term.wait_for("session (type to filter");
    term.keys(&["-l", &second[..8]]);
    term.wait_for(&format!("❯ {second}"));
    term.keys(&["Enter"]);
    let shown = term.wait_for(" MiB/9.54 MiB");
    assert!(shown.contains("░") || shown.contains("█"), "{shown}");
    term.wait_for("jump-exited-0");
    let sent = sha256_of(&world.home.path().join("big.bin"));
    assert_eq!(remote_sha256(&world, &second, "/tmp/big.bin"), sent);
    let out = world.run(&["exec", &first, "--", "test", "-e", "/tmp/big.bin"]);
    assert_eq!(out.status.code(), Some(1), "the other session got nothing");
    assert!(world.run(&["down", "--all-mine"]).status.success());
    world.assert_nothing_left();
}

/// Ctrl-C (or SIGTERM) during a download stops it at once, and the partial file is
/// gone: nothing is left where the copy was going.
#[test]
fn an_interrupted_download_leaves_no_partial_file() {
    let world = World::new(shared(), "cp-signal");
    let (id, _) = detached(&world, "exec");
    let inbox = big_remote_file_and_an_inbox(&world, &id, 60_000_000);
    let child = world.spawn(&["cp", &format!("{id}:/tmp/big"), "inbox/"], Stdio::null());
    // The copy is under way once its temporary file has content.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let growing = std::fs::read_dir(&inbox)
            .unwrap()
            .any(|e| e.unwrap().metadata().unwrap().len() > 0);
        if growing {
            break;
        }
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    assert_empty(&inbox);
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

/// A channel that drops, duplicates and delays messages, or whose connection is recycled
/// every half second (resumed each time), still carries every byte both ways; a download
/// outlives the idle timeout; a channel that dies mid-copy ends it with exit 76 and
/// leaves no partial file.
#[test]
fn a_faulty_channel_still_copies_exactly_and_a_dead_one_leaves_nothing() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "cp-faults");
    let (id, _) = detached(&world, "exec");
    let faults: [&[&str]; 2] = [
        &["--drop", "0.1", "--duplicate", "0.1", "--delay", "0.05"],
        &["--recycle-every", "0.5"],
    ];
    for (fault, size) in faults.into_iter().zip([2_000_000, 20_000_000]) {
        std::fs::write(world.home.path().join("in.bin"), awkward_bytes(size)).unwrap();
        sandbox.ctl(&[&["gateway-fault"], fault].concat());
        let out = world.run(&["cp", "in.bin", &format!("{id}:/tmp/in.bin")]);
        assert_eq!(out.status.code(), Some(0), "{fault:?}: {}", stderr(&out));
        let out = world.run(&["cp", &format!("{id}:/tmp/in.bin"), "out.bin"]);
        assert_eq!(out.status.code(), Some(0), "{fault:?}: {}", stderr(&out));
        assert_eq!(
            sha256_of(&world.home.path().join("out.bin")),
            sha256_of(&world.home.path().join("in.bin")),
            "{fault:?}"
        );
    }

    // Session Manager ends a session without input for its idle timeout (20 minutes on
    // ECS Exec; 1 s here), however much output flows: a long download types as it reads.
    sandbox.ctl(&["gateway-fault", "--idle-close", "1"]);
    let out = world.run(&["cp", &format!("{id}:/tmp/in.bin"), "idle.bin"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        sha256_of(&world.home.path().join("idle.bin")),
        sha256_of(&world.home.path().join("in.bin"))
    );

    sandbox.ctl(&["gateway-fault"]);
    let inbox = big_remote_file_and_an_inbox(&world, &id, 100_000_000);
    sandbox.ctl(&["gateway-fault", "--kill-after", "1"]);
    let out = world.run(&["cp", &format!("{id}:/tmp/big"), "inbox/"]);
    expect_exit(&out, 76, "data channel");
    assert_empty(&inbox);
    assert!(world.run(&["down", &id]).status.success());
    world.assert_nothing_left();
}

/// A task started without ECS Exec cannot be copied to: the error says why and how to
/// check, and nothing is written here.
#[test]
fn a_task_without_ecs_exec_is_explained() {
    let world = World::new(shared(), "cp-noexec");
    let family = format!("plain-{}", world.cluster);
    world.register_sleeper(&family, &[]);
    let arn = world.run_registered(&family, &[]);
    world.wait_status(&arn, "RUNNING");
    let out = world.run(&["cp", "--task", &arn, ":/etc/hostname", "hostname"]);
    expect_exit(&out, 69, "ECS Exec is not available in this task");
    assert!(!world.home.path().join("hostname").exists());
    world.stop_task(&arn);
}
