//! The GitHub Actions examples, run for real: each `run:` step of the workflow file, in
//! order, with bash, against the sandbox (`uses:` steps configure credentials on GitHub;
//! "Install jump" is the binary under test, put first on PATH). `if: always()` steps
//! run after a failure, and `${{ steps.ID.outputs.NAME }}` comes from $GITHUB_OUTPUT.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{repo, shared, stderr, World};

fn workflow(name: &str) -> Value {
    read_workflow(&repo().join("examples/github-actions").join(name))
}

/// A workflow file, as JSON.
pub fn read_workflow(path: &Path) -> Value {
    let name = path.display();
    let out = Command::new(repo().join("tests/sandbox/.venv/bin/python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{name} is not valid YAML: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs the job's steps; returns each run step's name and exit status.
fn run_job(world: &World, job: &Value, replace: &[(&str, &str)]) -> Vec<(String, i32)> {
    let bin = Path::new(env!("CARGO_BIN_EXE_jump")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let outputs_file = world.home.path().join("github_output");
    let mut outputs: HashMap<String, String> = HashMap::new();
    let mut results = Vec::new();
    let mut failed = false;
    for step in job["steps"].as_array().unwrap() {
        let (Some(script), name) = (step["run"].as_str(), step["name"].as_str().unwrap_or(""))
        else {
            continue;
        };
        if name == "Install jump" || (failed && step["if"] != "always()") {
            continue;
        }
        let mut script = script.to_string();
        for (from, to) in replace {
            script = script.replace(from, to);
        }
        for (key, value) in &outputs {
            script = script.replace(&format!("${{{{ steps.{key} }}}}"), value);
        }
        std::fs::write(&outputs_file, "").unwrap();
        let mut command = Command::new("bash");
        command
            .args(["-e", "-c", &script])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", world.home.path())
            .envs(
                job["env"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
            )
            .envs(world.sandbox.env.iter().cloned())
            .env("JUMP_CLUSTER", &world.cluster)
            .env("JUMP_IMAGE", &world.image)
            .env("JUMP_STATE_DIR", world.state.path())
            .env("GITHUB_OUTPUT", &outputs_file)
            .current_dir(world.home.path());
        let out = command.output().expect("bash runs");
        let code = out.status.code().unwrap_or(-1);
        eprintln!("step {name:?}: exit {code}\n{}", stderr(&out));
        if let Some(id) = step["id"].as_str() {
            for line in std::fs::read_to_string(&outputs_file).unwrap().lines() {
                if let Some((key, value)) = line.split_once('=') {
                    outputs.insert(format!("{id}.outputs.{key}"), value.to_string());
                }
            }
        }
        failed |= code != 0;
        results.push((name.to_string(), code));
    }
    results
}

#[test]
fn the_vpc_check_workflow_opens_checks_and_tears_down() {
    let world = World::new(shared(), "gha-check");
    let job = &workflow("vpc-check.yml")["jobs"]["vpc-check"];
    let results = run_job(&world, job, &[]);
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["Open a session", "Check inside the VPC", "Tear down"]
    );
    assert!(results.iter().all(|(_, code)| *code == 0), "{results:?}");
    world.assert_nothing_left();
}

#[test]
fn a_failing_check_fails_the_job_and_still_tears_down() {
    let world = World::new(shared(), "gha-fail");
    let job = &workflow("vpc-check.yml")["jobs"]["vpc-check"];
    let check = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Check inside the VPC")
        .unwrap();
    let failing = r#"jump exec "${{ steps.session.outputs.id }}" -- sh -c 'exit 3'"#;
    let results = run_job(&world, job, &[(check["run"].as_str().unwrap(), failing)]);
    assert_eq!(
        results,
        [
            ("Open a session".to_string(), 0),
            ("Check inside the VPC".to_string(), 3),
            ("Tear down".to_string(), 0)
        ]
    );
    world.assert_nothing_left();
}

#[test]
fn the_reaper_workflow_stops_expired_sessions() {
    let owner = World::new(shared(), "gha-reaper").acting_as("dana-reaper");
    let session = owner.json(&["up", "--mode", "exec", "--detach", "--json"]);
    let arn = session["task_arn"].as_str().unwrap();
    owner.expire(arn);
    let reaper = owner.sibling("ci-reaper");
    let results = run_job(&reaper, &workflow("reaper.yml")["jobs"]["reap"], &[]);
    assert_eq!(results, [("Stop expired sessions".to_string(), 0)]);
    assert!(owner.running_tasks().is_empty());
    assert!(owner
        .run(&["down", session["session"].as_str().unwrap()])
        .status
        .success());
    owner.assert_nothing_left();
}
