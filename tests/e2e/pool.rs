//! Warm pools: an ECS service keeps idle exec-mode jumphosts, and a session claims one
//! (atomically, never shared, never reused) instead of waiting for Fargate.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{expect_exit, shared, stderr, stdout, World};

/// `jump pool status --json` for pool `name`.
fn status(world: &World, name: &str) -> Value {
    world.json(&["pool", "status", "--name", name, "--json"])
}

/// Waits (on the pool's own status) until `warm` tasks of pool `name` are warm.
fn wait_warm(world: &World, name: &str, warm: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = status(world, name);
        if now["warm"] == warm {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "pool {name} never had {warm} warm: {now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates pool `name` of `size` tasks and waits until they are all warm.
fn warm_pool(world: &World, name: &str, size: u64) {
    let size_text = size.to_string();
    world.json(&[
        "pool", "create", "--name", name, "--size", &size_text, "--json",
    ]);
    wait_warm(world, name, size);
}

/// Moves a session's expiry into the past: its client is gone and nobody stopped it.
fn expire(world: &World, arn: &str) {
    world.sandbox.aws(&[
        "ecs",
        "tag-resource",
        "--resource-arn",
        arn,
        "--tags",
        "key=jump:expires,value=2020-01-01T00:00:00Z",
    ]);
}

/// A task's tags, as a map.
fn tags(world: &World, arn: &str) -> std::collections::BTreeMap<String, String> {
    world.describe(arn)["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_string(),
                t["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Deletes the pool and checks that nothing of it, or of the sessions, is left.
fn delete_and_check(world: &World, name: &str) {
    let out = world.run(&["pool", "delete", "--name", name]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// A session from the pool: the claimed task is one of the pool's (its environment says
/// so), tagged with the session; `jump down` stops it, it is never handed out again, and
/// the service brings the pool back to its size.
#[test]
fn a_session_claims_a_warm_jumphost_which_is_stopped_after_and_never_reused() {
    let world = World::new(shared(), "pool-claim");
    let created = world.json(&["pool", "create", "--name", "dev", "--size", "2", "--json"]);
    assert_eq!(created["created"], true, "{created}");
    let again = world.json(&["pool", "create", "--name", "dev", "--size", "2", "--json"]);
    assert_eq!(
        again["created"], false,
        "creating again changes nothing: {again}"
    );
    let warm = wait_warm(&world, "dev", 2);
    assert_eq!(
        (warm["size"].as_u64(), warm["claimed"].as_u64()),
        (Some(2), Some(0))
    );
    assert!(warm["cost_per_hour_usd"].as_f64().unwrap() > 0.0, "{warm}");

    let session = world.json(&["up", "--pool", "dev", "--detach", "--json"]);
    let (id, arn) = (
        session["session"].as_str().unwrap().to_string(),
        session["task_arn"].as_str().unwrap().to_string(),
    );
    let on = tags(&world, &arn);
    assert_eq!(
        on.get("jump:pool").map(String::as_str),
        Some("dev"),
        "{on:?}"
    );
    assert_eq!(on.get("jump:session"), Some(&id), "{on:?}");
    let out = world.run(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "echo pool=$JUMP_POOL; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "pool=dev\n");
    let listed = world.json(&["ls", "--json"]);
    assert!(
        listed.to_string().contains(&id),
        "jump ls shows the pool session: {listed}"
    );

    // The Terraform example's pool is this one: the same tags on the service (ECS copies
    // them onto the tasks), and the same environment for each task.
    let example = crate::support::terraform("pool.tf");
    for key in on.keys().filter(|k| k.starts_with("jump:pool")) {
        assert!(
            example.contains(&format!("\"{key}\"")),
            "pool.tf lacks the tag {key}"
        );
    }
    let container = world.task_container_definition(&arn);
    for variable in container["environment"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap();
        assert!(
            example.contains(&format!("name = \"{name}\"")),
            "pool.tf lacks {name}"
        );
    }
    assert_eq!(container["entryPoint"], serde_json::json!(["sh", "-c"]));
    assert!(
        example.contains(r#"entryPoint   = ["sh", "-c"]"#) && example.contains("exec-watchdog.sh")
    );

    let out = world.run(&["down", &id]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(world.describe(&arn)["desiredStatus"], "STOPPED");
    let back = wait_warm(&world, "dev", 2);
    assert_eq!(back["claimed"], 0, "{back}");
    let running: BTreeSet<String> = world.running_tasks().into_iter().collect();
    assert!(!running.contains(&arn), "a claimed jumphost came back");
    delete_and_check(&world, "dev");
}

/// Ten sessions at once on a pool of three: each warm task goes to exactly one session,
/// the other seven start cold (and say so), and every session has a task of its own;
/// `jump down --all-mine` leaves the pool at three warm.
#[test]
fn concurrent_claims_never_share_a_jumphost() {
    let world = World::new(shared(), "pool-race");
    warm_pool(&world, "race", 3);
    let runs: Vec<_> = (0..10)
        .map(|_| {
            world.spawn(
                &["up", "--pool", "race", "--detach", "--json"],
                std::process::Stdio::null(),
            )
        })
        .collect();
    let mut arns = BTreeSet::new();
    let (mut from_pool, mut cold) = (0, 0);
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let session: Value = serde_json::from_slice(&out.stdout).unwrap();
        let arn = session["task_arn"].as_str().unwrap().to_string();
        let on = tags(&world, &arn);
        assert_eq!(
            on.get("jump:session"),
            session["session"].as_str().map(String::from).as_ref()
        );
        if on.contains_key("jump:pool") {
            from_pool += 1;
        } else {
            cold += 1;
            assert!(
                stderr(&out).contains("no warm jumphost in pool race"),
                "{}",
                stderr(&out)
            );
        }
        arns.insert(arn);
    }
    assert_eq!(arns.len(), 10, "two sessions share a task: {arns:?}");
    assert_eq!((from_pool, cold), (3, 7));
    let out = world.run(&["down", "--all-mine"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    wait_warm(&world, "race", 3);
    delete_and_check(&world, "race");
}

/// `jump gc` leaves warm pool tasks alone (their own TTL bounds them) and reaps a claimed
/// one whose session expired, like any session.
#[test]
fn gc_leaves_warm_pool_tasks_alone_and_reaps_expired_claims() {
    let world = World::new(shared(), "pool-gc");
    warm_pool(&world, "gc", 2);
    let session = world.json(&["up", "--pool", "gc", "--ttl", "1m", "--detach", "--json"]);
    let arn = session["task_arn"].as_str().unwrap().to_string();
    expire(&world, &arn);
    let out = world.run(&["gc", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(world.describe(&arn)["desiredStatus"], "STOPPED");
    let after = status(&world, "gc");
    assert!(
        after["warm"].as_u64().unwrap() >= 1,
        "gc stopped warm tasks: {after}"
    );
    wait_warm(&world, "gc", 2);
    delete_and_check(&world, "gc");
}

/// Bad input is refused before any AWS call; a pool that does not exist is said so.
#[test]
fn pool_input_is_checked_before_anything_starts() {
    let world = World::new(shared(), "pool-bad");
    for (args, needle) in [
        (vec!["pool", "create", "--name", "Dev_1"], "not a pool name"),
        (
            vec!["pool", "create", "--name", "dev", "--size", "0"],
            "--size",
        ),
        (
            vec!["pool", "create", "--name", "dev", "--recycle-after", "1m"],
            "--recycle-after",
        ),
        (vec!["pool", "status"], "name the pool"),
    ] {
        let out = world.run(&args);
        expect_exit(&out, 2, needle);
    }
    let out = world.run(&["up", "--pool", "nosuch", "--", "true"]);
    expect_exit(&out, 0, "there is no pool nosuch in cluster");
    assert!(
        stderr(&out).contains("starting one (cold)"),
        "{}",
        stderr(&out)
    );
    let out = world.run(&["pool", "status", "--name", "nosuch"]);
    expect_exit(&out, 2, "there is no pool `nosuch`");
    let out = world.run(&["pool", "delete", "--name", "nosuch"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing to delete"),
        "{}",
        stdout(&out)
    );
    world.assert_nothing_left();
}

/// A client that dies in the middle of a claim (here: while ECS Exec does not answer)
/// leaves a task tagged as its session, with an expiry: `jump ls` shows it, and `jump gc`
/// reaps it once that expiry has passed, like any session whose client died.
#[test]
fn a_client_killed_during_a_claim_leaves_a_session_gc_reaps() {
    let sandbox = crate::support::Sandbox::start(0.2);
    let world = World::new(&sandbox, "pool-kill");
    warm_pool(&world, "kill", 1);
    sandbox.ctl(&[
        "fault",
        "ExecuteCommand",
        "--kind",
        "hang",
        "--seconds",
        "60",
    ]);
    let mut child = world.spawn(
        &["up", "--pool", "kill", "--detach", "--json"],
        std::process::Stdio::null(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let arn = loop {
        let claimed = world
            .running_tasks()
            .into_iter()
            .find(|arn| tags(&world, arn).contains_key("jump:session"));
        if let Some(arn) = claimed {
            break arn;
        }
        assert!(Instant::now() < deadline, "the claim never tagged the task");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap(); // SIGKILL: no teardown of any kind
    child.wait().unwrap();
    sandbox.ctl(&["clear"]);
    let on = tags(&world, &arn);
    assert!(
        on.contains_key("jump:expires") && on.contains_key("jump:owner-id"),
        "{on:?}"
    );
    let listed = world.json(&["ls", "--json"]);
    assert!(listed.to_string().contains(&arn), "{listed}");
    expire(&world, &arn);
    let out = world.run(&["gc"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(world.describe(&arn)["desiredStatus"], "STOPPED");
    wait_warm(&world, "kill", 1);
    let out = world.run(&["pool", "delete", "--name", "kill"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    // The killed client's session directory is all it left on this machine.
    assert_eq!(world.running_tasks(), Vec::<String>::new());
}

/// A claim that fails halfway (ECS Exec refuses the claim's own command) does not strand
/// the task it tagged: that task is stopped (the service replaces it) and the session
/// starts cold.
#[test]
fn a_claim_that_fails_halfway_releases_its_task_and_starts_cold() {
    let sandbox = crate::support::Sandbox::start(0.2);
    let world = World::new(&sandbox, "pool-half");
    warm_pool(&world, "half", 1);
    let warm: Vec<String> = world.running_tasks();
    sandbox.ctl(&[
        "fault",
        "ExecuteCommand",
        "--kind",
        "access-denied",
        "--count",
        "1",
    ]);
    let out = world.run(&["up", "--pool", "half", "--", "true"]);
    expect_exit(
        &out,
        0,
        "no warm jumphost in pool half; starting one (cold)",
    );
    for arn in &warm {
        assert_eq!(
            world.describe(arn)["desiredStatus"],
            "STOPPED",
            "{arn} was left tagged"
        );
    }
    wait_warm(&world, "half", 1);
    let out = world.run(&["pool", "delete", "--name", "half"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// `jump forward --pool` claims its jumphost from the pool too, and a one-shot client
/// through it leaves the pool as it found it.
#[test]
fn a_forward_goes_through_a_claimed_pool_jumphost() {
    let world = World::new(shared(), "pool-fwd");
    let (echo, ip) = crate::forward::echo_task(&world);
    warm_pool(&world, "fwd", 1);
    let pooled = world.running_tasks();
    let client = "use IO::Socket::INET; \
                  $s = IO::Socket::INET->new(\"$ENV{JUMP_FORWARD_1_HOST}:$ENV{JUMP_FORWARD_1_PORT}\") or die; \
                  print $s 'ping'; sysread($s, $b, 4) == 4 or die; print $b";
    let target = format!("0:{ip}:7000");
    let out = world.run(&[
        "forward", "--pool", "fwd", &target, "--", "perl", "-e", client,
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "ping");
    assert!(
        !stderr(&out).contains("starting one (cold)"),
        "{}",
        stderr(&out)
    );
    let claimed: Vec<&String> = pooled
        .iter()
        .filter(|arn| **arn != echo && world.describe(arn)["desiredStatus"] == "STOPPED")
        .collect();
    assert_eq!(
        claimed.len(),
        1,
        "the forward did not use the warm jumphost"
    );
    wait_warm(&world, "fwd", 1);
    world.stop_task(&echo);
    delete_and_check(&world, "fwd");
}

/// The pool's one warm task, once it is warm and is not `other`.
fn warm_task_other_than(world: &World, name: &str, other: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let warm: Vec<String> = world
            .running_tasks()
            .into_iter()
            .filter(|arn| Some(arn.as_str()) != other)
            .filter(|arn| {
                let on = tags(world, arn);
                on.get("jump:pool").map(String::as_str) == Some(name)
                    && !on.contains_key("jump:session")
            })
            .collect();
        if let [arn] = warm.as_slice() {
            if status(world, name)["warm"] == 1 {
                return arn.clone();
            }
        }
        assert!(Instant::now() < deadline, "no new warm task in {name}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `--recycle-after` bounds every warm task (the TTL in its environment, and the tag a
/// claim reads it by), changing it reaches the tasks started afterwards, and a claim
/// takes only a task with a whole session's TTL left: an older one is passed over for a
/// cold start, and one that ends is replaced by a fresh one.
#[test]
fn a_warm_jumphost_is_claimed_only_with_a_session_s_worth_of_life_left() {
    let world = World::new(shared(), "pool-ttl");
    let create = |recycle: &str| {
        world.json(&[
            "pool",
            "create",
            "--name",
            "ttl",
            "--size",
            "1",
            "--recycle-after",
            recycle,
            "--json",
        ])
    };
    create("10m");
    let first = warm_task_other_than(&world, "ttl", None);
    assert_eq!(tags(&world, &first)["jump:pool-ttl"], "600");
    let again = create("30m");
    assert_eq!(again["created"], false, "{again}");
    // The task that ends (here stopped; at its TTL it ends itself) is replaced.
    world.stop_task(&first);
    let second = warm_task_other_than(&world, "ttl", Some(&first));
    assert_eq!(tags(&world, &second)["jump:pool-ttl"], "1800");
    let environment = world.task_container_definition(&second)["environment"].to_string();
    assert!(
        environment.contains(r#""name":"JUMP_TTL_SECONDS","value":"1800""#),
        "{environment}"
    );

    // 15 of its 30 minutes gone: not enough for a 20-minute session.
    world.sandbox.ctl(&["task-age", &second, "900"]);
    let out = world.run(&["up", "--pool", "ttl", "--ttl", "20m", "--detach", "--json"]);
    expect_exit(&out, 0, "no warm jumphost in pool ttl");
    let cold: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cold_arn = cold["task_arn"].as_str().unwrap();
    assert!(!tags(&world, cold_arn).contains_key("jump:pool"));
    assert!(!tags(&world, &second).contains_key("jump:session"));

    world.stop_task(&second);
    let fresh = warm_task_other_than(&world, "ttl", Some(&second));
    let claimed = world.json(&["up", "--pool", "ttl", "--ttl", "20m", "--detach", "--json"]);
    assert_eq!(claimed["task_arn"].as_str(), Some(fresh.as_str()));
    let out = world.run(&["down", "--all-mine"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    delete_and_check(&world, "ttl");
}

/// `jump socks --pool` claims its jumphost too: the proxy goes through the claimed task,
/// which is stopped when the proxy ends.
#[test]
fn a_socks_proxy_goes_through_a_claimed_pool_jumphost() {
    let world = World::new(shared(), "pool-socks");
    let (web, ip) = crate::forward::web_task(&world);
    warm_pool(&world, "socks", 1);
    let warm = warm_task_other_than(&world, "socks", Some(&web));
    let mut child = world.spawn(
        &["socks", "--pool", "socks", "--json", "--port", "0"],
        std::process::Stdio::null(),
    );
    let ready = crate::forward::socks_ready(&mut child);
    let proxy = ready["socks_address"].as_str().unwrap().to_string();
    assert_eq!(ready["task_arn"].as_str(), Some(warm.as_str()));
    let out = crate::forward::curl_through(&proxy, &format!("http://{ip}:8081/"));
    assert!(out.status.success(), "curl: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "page-8081");
    let on = tags(&world, &warm);
    assert!(
        on.contains_key("jump:session"),
        "the proxy's task is not the warm one: {on:?}"
    );
    crate::forward::interrupt(child);
    assert_eq!(world.describe(&warm)["desiredStatus"], "STOPPED");
    wait_warm(&world, "socks", 1);
    world.stop_task(&web);
    delete_and_check(&world, "socks");
}

/// ssh mode from a pool: an ssh-mode jumphost waits with sshd up and no key; the claim
/// installs the session's key and pins the host key, both through ECS Exec (a forged key
/// line in the task's log changes nothing). Only the session's key gets in, and a host
/// key that changes afterwards is refused. An exec-mode session does not take an
/// ssh-mode jumphost.
#[test]
fn an_ssh_session_claims_an_ssh_mode_jumphost_whose_host_key_it_reads_through_exec() {
    let world = World::new(shared(), "pool-ssh");
    // Someone allowed to write to the warm task's log stream adds a key line of their own:
    // a cold start would trust no key then, and a claim never reads the log at all.
    world
        .sandbox
        .ctl(&["task-fault", "extra-host-key", "--image", &world.image]);
    let created = world.json(&[
        "pool", "create", "--name", "ops", "--mode", "ssh", "--size", "1", "--json",
    ]);
    assert_eq!(created["mode"], "ssh", "{created}");
    let warm = warm_task_other_than(&world, "ops", None);
    assert_eq!(status(&world, "ops")["mode"], "ssh");

    let out = world.run(&["up", "--pool", "ops", "--", "true"]);
    expect_exit(
        &out,
        0,
        "pool ops keeps ssh-mode jumphosts, and this session is in exec mode",
    );
    assert!(!tags(&world, &warm).contains_key("jump:session"));

    let session = world.json(&["up", "--pool", "ops", "--mode", "ssh", "--detach", "--json"]);
    let (id, ip) = (
        session["session"].as_str().unwrap().to_string(),
        session["ip"].as_str().unwrap().to_string(),
    );
    assert_eq!(session["task_arn"].as_str(), Some(warm.as_str()));
    let out = world.run(&["ssh", &id, "--", "id", "-un"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "jump\n");

    // Any other key is refused: only the claim's is installed.
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    let out = std::process::Command::new("ssh")
        .arg("-i")
        .arg(&stranger)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            &format!("jump@{ip}"),
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );

    // sshd starts serving another host key: jump's pinned one no longer matches.
    let swap = "cd /run/jump && rm -f host_ed25519_key host_ed25519_key.pub && \
                ssh-keygen -q -t ed25519 -N '' -C '' -f host_ed25519_key && \
                kill -HUP \"$(cat sshd.pid)\"";
    let out = world.run(&["exec", "--task", &warm, "--", "sh", "-c", swap]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let out = world.run(&["ssh", &id, "--", "echo", "should-not-run"]);
        if out.status.code() != Some(0) {
            break out;
        }
        assert!(Instant::now() < deadline, "sshd never took the new key");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!stdout(&refused).contains("should-not-run"));
    assert!(
        stderr(&refused).contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        stderr(&refused)
    );

    let out = world.run(&["down", "--all-mine"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(world.describe(&warm)["desiredStatus"], "STOPPED");
    wait_warm(&world, "ops", 1);
    delete_and_check(&world, "ops");
}
