//! `tests/aws-smoke`, the opt-in check against a real account, run against the sandbox
//! so the script itself is tested: every step passes, and nothing is left behind.

use std::process::{Command, Output};

use crate::support::{repo, shared, stderr, stdout, World};

fn smoke(world: &World, account: &str, extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(repo().join("tests/aws-smoke"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", world.home.path())
        .env("JUMP", env!("CARGO_BIN_EXE_jump"))
        .env("AWS", repo().join("tests/sandbox/.venv/bin/aws"))
        .env("JUMP_SMOKE_ACCOUNT", account)
        .env("JUMP_SMOKE_NAME", format!("{}-smoke", world.cluster))
        .env("JUMP_SMOKE_CLUSTER", &world.cluster);
    // Only what an AWS user has: credentials, region and (here) the endpoint.
    for key in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        cmd.env(key, world.sandbox_var(key));
    }
    cmd.envs(extra.iter().copied())
        .output()
        .expect("tests/aws-smoke runs")
}

#[test]
fn the_smoke_script_passes_every_step_and_leaves_nothing() {
    let world = World::new(shared(), "smoke");
    crate::run::web_service(&world);
    let vpc = world.sandbox.aws(&[
        "ec2",
        "describe-subnets",
        "--subnet-ids",
        world.sandbox_var("JUMP_SUBNETS").split(',').next().unwrap(),
    ])["Subnets"][0]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let out = smoke(
        &world,
        "123456789012",
        &[
            ("JUMP_SMOKE_VPC", &vpc),
            ("JUMP_SMOKE_SUBNETS", world.sandbox_var("JUMP_SUBNETS")),
            ("JUMP_SMOKE_IMAGE", "jumphost:latest"),
            // init's own group admits nothing: ssh over the network needs one that admits 22.
            (
                "JUMP_SMOKE_SSH_SECURITY_GROUPS",
                world.sandbox_var("JUMP_SECURITY_GROUPS"),
            ),
            ("JUMP_SMOKE_SERVICE", "web"),
            ("JUMP_SMOKE_RDS", crate::forward::database()),
        ],
    );
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{table}\n{}", stderr(&out));
    for step in [
        "init",
        "doctor",
        "up (ssh)",
        "up (exec)",
        "run --service",
        "forward rds",
        "down",
        "gc",
        "init --destroy",
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{step} ")))
            .unwrap_or_else(|| panic!("no row for {step}:\n{table}"));
        assert!(row.contains(" PASS"), "{row}\n{table}");
    }
    assert!(world.running_tasks().is_empty(), "tasks left running");
    let roles = world.sandbox.aws(&["iam", "list-roles"]).to_string();
    assert!(
        !roles.contains(&format!("{}-smoke", world.cluster)),
        "roles left"
    );
}

#[test]
fn the_smoke_script_refuses_any_other_account() {
    let world = World::new(shared(), "smoke-wrong");
    let out = smoke(&world, "999999999999", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("123456789012") && err.contains("refusing"),
        "{err}"
    );
    assert!(world.running_tasks().is_empty());
}
