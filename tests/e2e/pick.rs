//! Pick instead of paste: a command that needs a session, a service, a task or a
//! container and is given none lists the candidates on a terminal (type a few letters,
//! Enter); without a terminal it fails with exit 2 and prints them.

use serde_json::Value;

use crate::support::{expect_exit, shared, stderr, Terminal, World};

fn detached(world: &World) -> (String, String) {
    let session: Value = world.json(&["up", "--mode", "exec", "--detach", "--json"]);
    (
        session["session"].as_str().unwrap().to_string(),
        session["task_arn"].as_str().unwrap().to_string(),
    )
}

/// `jump down` alone on a terminal: typing part of the second session's id and Enter
/// stops that session, and only that one.
#[test]
fn down_on_a_terminal_stops_the_session_chosen_from_the_list() {
    let world = World::new(shared(), "pick-down");
    let (first, first_arn) = detached(&world);
    let (second, second_arn) = detached(&world);
    let term = Terminal::start(&world, "down");
    term.wait_for_all(&["session (type to filter", &first, &second]);
    term.keys(&["-l", &second[..8]]);
    term.wait_for(&format!("❯ {second}"));
    term.keys(&["Enter"]);
    term.wait_for("jump-exited-0");
    assert_eq!(world.describe(&second_arn)["desiredStatus"], "STOPPED");
    assert_eq!(world.describe(&first_arn)["desiredStatus"], "RUNNING");
    let out = world.run(&["down", "--all-mine"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// Without a terminal (or with --json) nothing can be asked: `down`, `logs`, `exec` and
/// `ssh` without a session fail with exit 2 and name the candidates, and nothing stops.
#[test]
fn without_a_terminal_a_missing_session_is_an_error_that_lists_the_candidates() {
    let world = World::new(shared(), "pick-none");
    let out = world.run(&["down"]);
    expect_exit(&out, 2, "there is no session to choose from");
    let (id, arn) = detached(&world);
    for args in [
        vec!["down"],
        vec!["down", "--json"],
        vec!["logs"],
        vec!["exec", "--", "true"],
    ] {
        let out = world.run(&args);
        expect_exit(&out, 2, "without a terminal jump cannot ask. Candidates:");
        assert!(stderr(&out).contains(&id), "{args:?}: {}", stderr(&out));
    }
    // Where no session already means something else (start a jumphost, check the
    // configuration), `--session` alone asks for one.
    std::fs::write(world.home.path().join("f.txt"), "x").unwrap();
    for args in [
        vec!["socks", "--session", "--port", "0"],
        vec!["forward", "--session", "0:10.0.0.1:5432"],
        vec!["doctor", "--session"],
        vec!["cp", "f.txt", ":/tmp/"],
    ] {
        let out = world.run(&args);
        expect_exit(&out, 2, "without a terminal jump cannot ask. Candidates:");
        assert!(stderr(&out).contains(&id), "{args:?}: {}", stderr(&out));
    }
    // `jump ssh` offers only this machine's ssh-mode sessions: an exec one is none.
    let out = world.run(&["ssh"]);
    expect_exit(
        &out,
        2,
        "there is no session to choose from (name one: jump ssh SESSION)",
    );
    assert_eq!(world.describe(&arn)["desiredStatus"], "RUNNING");
    let out = world.run(&["down", &id]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// `jump exec` with no session on a terminal runs the command in the chosen one.
#[test]
fn exec_on_a_terminal_runs_in_the_session_chosen_from_the_list() {
    let world = World::new(shared(), "pick-exec");
    let (id, _) = detached(&world);
    let term = Terminal::start(&world, "exec -- sh -c 'echo picked-$((6*7))'");
    term.wait_for("session (type to filter");
    term.keys(&["-l", &id[..6]]);
    term.keys(&["Enter"]);
    term.wait_for("picked-42");
    term.wait_for("jump-exited-0");
    let out = world.run(&["down", &id]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// `jump ssh` with no session on a terminal offers this machine's ssh-mode sessions.
#[test]
fn ssh_on_a_terminal_connects_to_the_session_chosen_from_the_list() {
    let world = World::new(shared(), "pick-ssh");
    let session: Value = world.json(&["up", "--mode", "ssh", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let term = Terminal::start(&world, "ssh -- sh -c 'echo picked-ssh-$((2+3))'");
    term.wait_for_all(&["session (type to filter", &id]);
    term.keys(&["Enter"]);
    term.wait_for("picked-ssh-5");
    term.wait_for("jump-exited-0");
    let out = world.run(&["down", &id]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// `--service` alone picks from the cluster's services (jump's own pools are not offered):
/// `jump exec --service` on a terminal runs in the chosen service's task; without a
/// terminal `exec --service` and `run --service` name the candidates instead.
#[test]
fn a_service_is_picked_from_the_cluster_s_services() {
    let world = World::new(shared(), "pick-svc");
    let family = format!("svc-{}", world.cluster);
    world.register_sleeper(&family, &[]);
    for name in ["api", "billing"] {
        world.create_service(name, &family, true);
    }
    for args in [
        vec!["exec", "--service", "--", "true"],
        vec!["run", "--service", "--", "true"],
    ] {
        let out = world.run(&args);
        expect_exit(&out, 2, "name the service");
        assert!(
            stderr(&out).contains("api  ") && stderr(&out).contains("billing  "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Each task's hostname is its own (ip-A-B-C-D, from its private address).
    let billing = world.sandbox.aws(&[
        "ecs",
        "list-tasks",
        "--cluster",
        &world.cluster,
        "--service-name",
        "billing",
    ])["taskArns"][0]
        .as_str()
        .unwrap()
        .to_string();
    let ip = world.describe(&billing)["containers"][0]["networkInterfaces"][0]
        ["privateIpv4Address"]
        .as_str()
        .unwrap()
        .replace('.', "-");
    let term = Terminal::start(&world, "exec --service -- sh -c 'echo in-$(hostname)'");
    term.wait_for_all(&["service (type to filter", "billing", "api  "]);
    term.keys(&["-l", "bill"]);
    term.wait_for("❯ billing");
    term.keys(&["Enter"]);
    let shown = term.wait_for("jump-exited-");
    assert!(shown.contains(&format!("in-ip-{ip}")), "{shown}");
    assert!(shown.contains("jump-exited-0"), "{shown}");
    world.delete_services(&["api", "billing"]);
    world.assert_nothing_left();
}

/// `jump socks --session` on a terminal proxies through the session chosen from the list.
#[test]
fn socks_on_a_terminal_goes_through_the_session_chosen_from_the_list() {
    let world = World::new(shared(), "pick-socks");
    let (first, _) = detached(&world);
    let (second, second_arn) = detached(&world);
    let term = Terminal::start(&world, "socks --session --port 0");
    term.wait_for_all(&["session (type to filter", &first, &second]);
    term.keys(&["-l", &second[..8]]);
    term.wait_for(&format!("❯ {second}"));
    term.keys(&["Enter"]);
    term.wait_for(&format!("through task {second_arn}"));
    drop(term);
    let out = world.run(&["down", "--all-mine"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// `--task` alone picks from the cluster's running tasks, and a task of several
/// containers has its container picked too (ECS Exec needs one named): typing `side` and
/// Enter runs the command in the sidecar. Without a terminal both are named instead.
#[test]
fn a_task_and_then_its_container_are_picked_from_lists() {
    let world = World::new(shared(), "pick-task");
    let family = format!("two-{}", world.cluster);
    world.sandbox.image("app:1", crate::support::SERVER);
    let container = |name: &str| {
        serde_json::json!({
            "name": name,
            "image": "app:1",
            "command": ["sleep", "600"],
            "environment": [{ "name": "WHO", "value": name }],
        })
    };
    world.register_with(
        &family,
        &serde_json::json!([container("app"), container("sidecar")]),
        &["--task-role-arn", world.sandbox_var("JUMP_TASK_ROLE")],
    );
    let arn = world.run_registered(&family, &["--enable-execute-command"]);
    world.wait_status(&arn, "RUNNING");
    let task_id = arn.rsplit('/').next().unwrap().to_string();

    let out = world.run(&["exec", "--task", "--", "true"]);
    expect_exit(&out, 2, "name the task (jump exec --task TASK)");
    assert!(stderr(&out).contains(&task_id), "{}", stderr(&out));
    let out = world.run(&["exec", "--task", &arn, "--", "true"]);
    expect_exit(&out, 2, "name the container (jump exec --container NAME)");
    assert!(
        stderr(&out).contains("  app  ") && stderr(&out).contains("  sidecar  "),
        "{}",
        stderr(&out)
    );

    let term = Terminal::start(&world, "exec --task -- sh -c 'echo who-$WHO'");
    term.wait_for_all(&["task (type to filter", &task_id, "started"]);
    term.keys(&["-l", &task_id[..8]]);
    term.keys(&["Enter"]);
    term.wait_for_all(&["container (type to filter", "app  ", "sidecar  "]);
    term.keys(&["-l", "side"]);
    term.wait_for("❯ sidecar");
    term.keys(&["Enter"]);
    term.wait_for("who-sidecar");
    term.wait_for("jump-exited-0");
    world.stop_task(&arn);
}
