//! The harness: sandboxes, per-test sessions, and the real `jump` binary.
//!
//! One sandbox is shared by the tests that cannot disturb each other (each
//! works in its own ECS cluster and state directory, and task faults are
//! scoped to a per-test image name). Tests that inject API faults or need
//! slower task lifecycles start a sandbox of their own. A sandbox is started
//! with `--stop-on-eof` and its stdin held here, so it ends with the test
//! process however that process ends.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// A policy from `templates/`, with its `{{placeholders}}` filled from `values` (every
/// one of them: a placeholder left over fails the test, as it would fail IAM).
pub fn policy(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("templates").join(template))
        .unwrap_or_else(|e| panic!("templates/{template}: {e}"));
    for (key, value) in values {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    assert!(
        !text.contains("{{"),
        "unfilled placeholder in {template}: {text}"
    );
    text
}

/// A trust policy that lets ECS tasks assume a role.
pub const ECS_TASKS_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The CMD of a test image that plays a service: a long-running process.
pub const SERVER: &[&str] = &["sleep", "3600"];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Sandbox {
    pub env: Vec<(String, String)>,
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    /// Holds the env file and the sandbox's log for as long as it runs.
    _dir: TempDir,
}

/// The tag every e2e sandbox runs jump's jumphost image under (as the sandbox's pytest suite does).
const JUMPHOST_IMAGE: &str = "jumphost:sandbox";

/// Builds jump's jumphost image once per test process (`dockerfiles/jumphost/build`, offline:
/// no image registry is contacted), so that every ssh-mode test runs the image users ship.
/// A rebuild with nothing changed takes a fraction of a second.
fn jumphost_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(repo().join("dockerfiles/jumphost/build"))
            .args(["--offline", "--tag", JUMPHOST_IMAGE])
            .output()
            .expect("dockerfiles/jumphost/build runs (did tests/sandbox/setup run?)");
        assert!(
            out.status.success(),
            "building the jumphost image failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    JUMPHOST_IMAGE
}

impl Sandbox {
    /// Starts a sandbox whose task lifecycle steps take `step` seconds.
    pub fn start(step: f64) -> Sandbox {
        let image = jumphost_image();
        let dir = TempDir::new().expect("temp dir");
        let env_file = dir.path().join("sandbox.env");
        let log = std::fs::File::create(dir.path().join("sandbox.log")).expect("log file");
        let mut child = Command::new(repo().join("tests/sandbox/start"))
            .arg("--env-file")
            .arg(&env_file)
            .arg("--step")
            .arg(step.to_string())
            .arg("--stop-on-eof")
            .args(["--jumphost-image", image])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("tests/sandbox/start runs (did tests/sandbox/setup run?)");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !env_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sandbox exited with {status}:\n{}",
                    read(&dir.path().join("sandbox.log"))
                );
            }
            assert!(Instant::now() < deadline, "sandbox did not start in 90 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let env = read(&env_file)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let stdin = child.stdin.take();
        Sandbox {
            env,
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            _dir: dir,
        }
    }

    fn tool(&self, path: &str) -> Command {
        let mut cmd = Command::new(repo().join(path));
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Declares a test image to the sandbox's catalogue: what it runs when a task
    /// definition does not say (its ENTRYPOINT is empty, its CMD is `cmd`). Images the
    /// catalogue does not know cannot be pulled, as on ECS.
    pub fn image(&self, name: &str, cmd: &[&str]) {
        let cmd = serde_json::to_string(cmd).expect("JSON");
        self.ctl(&["image", name, "--entrypoint", "[]", "--cmd", &cmd]);
    }

    /// `tests/sandbox/ctl ARGS`: faults, timing, denials. Returns what it printed.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self
            .tool("tests/sandbox/ctl")
            .args(args)
            .output()
            .expect("ctl runs");
        assert!(
            out.status.success(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The AWS CLI from the sandbox's environment, as a second, independent client.
    /// The endpoint is passed explicitly: AWS CLI v1 ignores AWS_ENDPOINT_URL for some
    /// services (RDS), and no test may ever try a real AWS endpoint.
    pub fn aws(&self, args: &[&str]) -> Value {
        let out = self.aws_output(args);
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).expect("aws CLI prints JSON")
        }
    }
}

impl Sandbox {
    /// A value from the sandbox's environment (the default subnets, security group, ...).
    pub fn var(&self, key: &str) -> &str {
        let found = self.env.iter().find(|(k, _)| k == key);
        found.map(|(_, v)| v.as_str()).expect("the sandbox sets it")
    }

    /// The CIDR of the sandbox's VPC, where its default subnets are.
    pub fn vpc_cidr(&self) -> String {
        let vpc = self.aws(&["ec2", "describe-vpcs", "--vpc-ids", &self.vpc()]);
        vpc["Vpcs"][0]["CidrBlock"].as_str().unwrap().to_string()
    }

    fn vpc(&self) -> String {
        let jumphosts = self.var("JUMP_SECURITY_GROUPS");
        let groups = self.aws(&["ec2", "describe-security-groups", "--group-ids", jumphosts]);
        groups["SecurityGroups"][0]["VpcId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A new security group in the sandbox's VPC that admits TCP `port` from `source`
    /// only (a CIDR, or a group id for that group's members), as a team sets one up for a
    /// database or a service. Otherwise AWS's defaults: no inbound rule, all outbound.
    pub fn group_admitting(&self, name: &str, port: u16, source: &str) -> String {
        let id = self.group(name);
        let from = if source.starts_with("sg-") {
            "--source-group"
        } else {
            "--cidr"
        };
        let port = port.to_string();
        self.aws(&[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            &id,
            "--protocol",
            "tcp",
            "--port",
            &port,
            from,
            source,
        ]);
        id
    }

    /// A new security group in the sandbox's VPC with AWS's defaults, as `jump init`
    /// makes one: no inbound rule, all outbound.
    pub fn group(&self, name: &str) -> String {
        let created = self.aws(&[
            "ec2",
            "create-security-group",
            "--group-name",
            name,
            "--description",
            name,
            "--vpc-id",
            &self.vpc(),
        ]);
        created["GroupId"].as_str().unwrap().to_string()
    }

    /// The AWS CLI's whole answer, for calls that are meant to fail.
    pub fn aws_output(&self, args: &[&str]) -> Output {
        let endpoint = self.env.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL");
        self.tool("tests/sandbox/.venv/bin/aws")
            .args(args)
            .args([
                "--output",
                "json",
                "--endpoint-url",
                &endpoint.expect("sandbox endpoint").1,
            ])
            .output()
            .expect("aws CLI runs")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        drop(self.stdin.lock().unwrap().take());
        let mut child = self.child.lock().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
    }
}

/// The sandbox shared by tests that cannot disturb each other.
pub fn shared() -> &'static Sandbox {
    static SHARED: OnceLock<Sandbox> = OnceLock::new();
    SHARED.get_or_init(|| Sandbox::start(0.2))
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// One test's world: its own cluster, state directory and home, in a sandbox.
pub struct World<'a> {
    pub sandbox: &'a Sandbox,
    pub cluster: String,
    pub image: String,
    pub state: TempDir,
    pub home: TempDir,
    extra: Vec<(String, String)>,
}

impl<'a> World<'a> {
    pub fn new(sandbox: &'a Sandbox, name: &str) -> World<'a> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let cluster = format!("t-{name}-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        sandbox.aws(&["ecs", "create-cluster", "--cluster-name", &cluster]);
        World {
            sandbox,
            // jump's own image (the sandbox knows it by its repository name, `jumphost`),
            // under a per-test registry path so task faults can be scoped to one test.
            image: format!("jump-{cluster}/jumphost:latest"),
            cluster,
            state: TempDir::new().expect("temp dir"),
            home: TempDir::new().expect("temp dir"),
            extra: Vec::new(),
        }
    }

    /// Runs `jump` as another AWS identity (an IAM user with its own key).
    pub fn acting_as(mut self, user: &str) -> World<'a> {
        self.sandbox
            .aws(&["iam", "create-user", "--user-name", user]);
        let key = self
            .sandbox
            .aws(&["iam", "create-access-key", "--user-name", user]);
        for (var, field) in [
            ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
            ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
        ] {
            self.extra
                .push((var.into(), key["AccessKey"][field].as_str().unwrap().into()));
        }
        self
    }

    /// Runs `jump` with one more environment variable.
    pub fn with_env(mut self, key: &str, value: &str) -> World<'a> {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// Another view of the same world with a separate identity and state, for ownership tests.
    pub fn sibling(&self, user: &str) -> World<'a> {
        World {
            sandbox: self.sandbox,
            cluster: self.cluster.clone(),
            image: self.image.clone(),
            state: TempDir::new().expect("temp dir"),
            home: TempDir::new().expect("temp dir"),
            extra: Vec::new(),
        }
        .acting_as(user)
    }

    /// A role ECS tasks may assume, with these inline policies (name, document); returns
    /// its ARN. New, so ECS cannot assume it for the first seconds (IAM propagation).
    pub fn role(&self, name: &str, policies: &[(&str, String)]) -> String {
        let aws = |args: &[&str]| self.sandbox.aws(args);
        let created = aws(&[
            "iam",
            "create-role",
            "--role-name",
            name,
            "--assume-role-policy-document",
            ECS_TASKS_TRUST,
        ]);
        for (policy_name, document) in policies {
            aws(&[
                "iam",
                "put-role-policy",
                "--role-name",
                name,
                "--policy-name",
                policy_name,
                "--policy-document",
                document,
            ]);
        }
        created["Role"]["Arn"]
            .as_str()
            .expect("a role ARN")
            .to_string()
    }

    /// [`World::role`], returned once ECS can assume it: for tests that start tasks with
    /// it directly (jump itself waits out IAM propagation; the AWS CLI does not). The
    /// sandbox's propagation delay is a known deadline from the role's CreateDate.
    pub fn assumable_role(&self, name: &str, policies: &[(&str, String)]) -> String {
        let arn = self.role(name, policies);
        let timing: Value =
            serde_json::from_str(&self.sandbox.ctl(&["timing"])).expect("ctl timing prints JSON");
        let delay = timing["iam_propagation"].as_f64().expect("iam_propagation");
        let role = self.sandbox.aws(&["iam", "get-role", "--role-name", name]);
        let created = role["Role"]["CreateDate"].as_str().expect("CreateDate");
        let created = humantime::parse_rfc3339_weak(&created[..19]).expect("an RFC 3339 date");
        // CreateDate read to the second: one more second covers the fraction.
        let ready = created + Duration::from_secs_f64(delay) + Duration::from_secs(1);
        if let Ok(wait) = ready.duration_since(std::time::SystemTime::now()) {
            std::thread::sleep(wait);
        }
        arn
    }

    /// The values the templates' placeholders take for this world.
    pub fn template_values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("partition", "aws".into()),
            ("region", self.sandbox_var("AWS_REGION").into()),
            ("account", "123456789012".into()),
            ("cluster", self.cluster.clone()),
            ("family", "jump-jumphost".into()),
            ("log_group", "/jump/sessions".into()),
            ("task_role", self.sandbox_var("JUMP_TASK_ROLE").into()),
            (
                "execution_role",
                self.sandbox_var("JUMP_EXECUTION_ROLE").into(),
            ),
        ]
    }

    /// A value from the sandbox's environment (the default subnets, security group, ...).
    pub fn sandbox_var(&self, key: &str) -> &str {
        self.sandbox.var(key)
    }

    pub fn jump(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jump"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .envs(self.sandbox.env.iter().map(|(k, v)| (k, v)))
            .env("JUMP_CLUSTER", &self.cluster)
            .env("JUMP_IMAGE", &self.image)
            .env("JUMP_STATE_DIR", self.state.path())
            .envs(self.extra.iter().map(|(k, v)| (k, v)))
            .current_dir(self.home.path())
            .stdin(Stdio::null());
        cmd
    }

    /// `jump` signed with temporary credentials: the `Credentials` of an `sts assume-role`
    /// answer, in the environment as a CI job or a credentials helper would put them.
    pub fn jump_with_credentials(&self, creds: &Value) -> Command {
        let mut cmd = self.jump();
        for (var, field) in [
            ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
            ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
            ("AWS_SESSION_TOKEN", "SessionToken"),
        ] {
            cmd.env(var, creds[field].as_str().expect("a credentials field"));
        }
        cmd
    }

    /// `jump` without any of the sandbox's `JUMP_*` settings or the world's cluster and
    /// image: a configuration file then works as it is, or not at all.
    pub fn jump_with_only_config(&self) -> Command {
        let mut cmd = self.jump();
        for (key, _) in &self.sandbox.env {
            if key.starts_with("JUMP_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("JUMP_CLUSTER").env_remove("JUMP_IMAGE");
        cmd
    }

    /// A task of the world's cluster started directly through ECS (not by jump), from a
    /// new Fargate task definition with these container definitions; returns its ARN.
    pub fn run_task(&self, family: &str, containers: &Value) -> String {
        self.register(family, containers);
        self.run_registered(family, &[])
    }

    /// Runs a task of a registered family in the default subnets and security group
    /// (whose members reach each other, jumphosts included), with `extra` run-task
    /// arguments; returns its ARN.
    pub fn run_registered(&self, family: &str, extra: &[&str]) -> String {
        let network = format!(
            "awsvpcConfiguration={{subnets=[{}],securityGroups=[{}]}}",
            self.sandbox_var("JUMP_SUBNETS"),
            self.sandbox_var("JUMP_SECURITY_GROUPS")
        );
        let mut args = vec![
            "ecs",
            "run-task",
            "--cluster",
            &self.cluster,
            "--task-definition",
            family,
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &network,
        ];
        args.extend_from_slice(extra);
        let run = self.sandbox.aws(&args);
        run["tasks"][0]["taskArn"]
            .as_str()
            .expect("a task ARN")
            .to_string()
    }

    /// Registers a Fargate task definition with these container definitions.
    pub fn register(&self, family: &str, containers: &Value) {
        self.register_with(family, containers, &[]);
    }

    /// [`World::register`] with more register-task-definition arguments; returns ECS's answer.
    pub fn register_with(&self, family: &str, containers: &Value, extra: &[&str]) -> Value {
        let containers = containers.to_string();
        let mut args = vec![
            "ecs",
            "register-task-definition",
            "--family",
            family,
            "--requires-compatibilities",
            "FARGATE",
            "--network-mode",
            "awsvpc",
            "--cpu",
            "256",
            "--memory",
            "512",
            "--execution-role-arn",
            self.sandbox_var("JUMP_EXECUTION_ROLE"),
            "--container-definitions",
            &containers,
        ];
        args.extend_from_slice(extra);
        self.sandbox.aws(&args)
    }

    /// A task definition of one container (the catalogue's `app:1`) that only sleeps,
    /// with `env` and the task role ECS Exec needs.
    pub fn register_sleeper(&self, family: &str, env: &[(&str, &str)]) {
        self.sandbox.image("app:1", SERVER);
        let environment: Vec<Value> = env
            .iter()
            .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
            .collect();
        self.register_with(
            family,
            &serde_json::json!([{
                "name": "app",
                "image": "app:1",
                "command": ["/bin/sleep", "600"],
                "environment": environment,
            }]),
            &["--task-role-arn", self.sandbox_var("JUMP_TASK_ROLE")],
        );
    }

    /// A service of the world's cluster running one task of `family` in the sandbox's
    /// subnets and security groups, with ECS Exec if `exec`.
    pub fn create_service(&self, name: &str, family: &str, exec: bool) {
        self.create_service_in(name, family, exec, self.sandbox_var("JUMP_SECURITY_GROUPS"));
    }

    /// The same, in security group `group`.
    pub fn create_service_in(&self, name: &str, family: &str, exec: bool, group: &str) {
        let network = format!(
            "awsvpcConfiguration={{subnets=[{}],securityGroups=[{group}]}}",
            self.sandbox_var("JUMP_SUBNETS"),
        );
        let mut args = vec![
            "ecs",
            "create-service",
            "--cluster",
            &self.cluster,
            "--service-name",
            name,
            "--task-definition",
            family,
            "--desired-count",
            "1",
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &network,
        ];
        if exec {
            args.push("--enable-execute-command");
        }
        self.sandbox.aws(&args);
    }

    /// Deletes services of the world's cluster and waits until their tasks are gone.
    pub fn delete_services(&self, names: &[&str]) {
        for name in names {
            self.sandbox.aws(&[
                "ecs",
                "delete-service",
                "--cluster",
                &self.cluster,
                "--service",
                name,
                "--force",
            ]);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.running_tasks().is_empty() {
            assert!(Instant::now() < deadline, "service tasks never stopped");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops a task directly through ECS (one jump did not start).
    pub fn stop_task(&self, task_arn: &str) {
        self.sandbox.aws(&[
            "ecs",
            "stop-task",
            "--cluster",
            &self.cluster,
            "--task",
            task_arn,
        ]);
    }

    /// Moves a task's `jump:expires` tag into the past, as if its TTL had passed.
    pub fn expire(&self, task_arn: &str) {
        let tag = "key=jump:expires,value=2020-01-01T00:00:00Z";
        self.sandbox.aws(&[
            "ecs",
            "tag-resource",
            "--resource-arn",
            task_arn,
            "--tags",
            tag,
        ]);
    }

    /// `jump ARGS` in the background, stdout and stderr captured.
    pub fn spawn(&self, args: &[&str], stdin: Stdio) -> Child {
        self.jump()
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jump starts")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.jump().args(args).output().expect("jump runs")
    }

    /// `jump ARGS` with `input` piped to its stdin (then closed).
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self.spawn(args, Stdio::piped());
        child
            .stdin
            .take()
            .expect("a stdin pipe")
            .write_all(input)
            .expect("jump reads its stdin");
        child.wait_with_output().expect("jump exits")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "jump {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("jump --json prints JSON")
    }

    /// ARNs of tasks in this world's cluster whose desired status is RUNNING.
    pub fn running_tasks(&self) -> Vec<String> {
        self.tasks("RUNNING")
    }

    pub fn tasks(&self, desired: &str) -> Vec<String> {
        let out = self.sandbox.aws(&[
            "ecs",
            "list-tasks",
            "--cluster",
            &self.cluster,
            "--desired-status",
            desired,
        ]);
        out["taskArns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// The task definition revision (ARN) each stopped task of this world ran.
    pub fn revisions_run(&self) -> Vec<String> {
        self.tasks("STOPPED")
            .iter()
            .map(|task| {
                self.describe(task)["taskDefinitionArn"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// The first container of a task definition (family, family:revision or ARN), as
    /// ECS describes it.
    pub fn container_definition(&self, definition: &str) -> Value {
        let described = self.sandbox.aws(&[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            definition,
        ]);
        described["taskDefinition"]["containerDefinitions"][0].clone()
    }

    /// The first container of the revision a task runs.
    pub fn task_container_definition(&self, task_arn: &str) -> Value {
        let task = self.describe(task_arn);
        self.container_definition(task["taskDefinitionArn"].as_str().expect("a revision"))
    }

    pub fn describe(&self, arn: &str) -> Value {
        let out = self.sandbox.aws(&[
            "ecs",
            "describe-tasks",
            "--cluster",
            &self.cluster,
            "--tasks",
            arn,
            "--include",
            "TAGS",
        ]);
        out["tasks"][0].clone()
    }

    /// Waits until a task reaches STOPPED (teardown asks; the sandbox takes a few steps).
    pub fn wait_stopped(&self, arn: &str) -> Value {
        self.wait_status(arn, "STOPPED")
    }

    /// Waits until ECS reports the task in `status`; returns its description.
    pub fn wait_status(&self, arn: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let task = self.describe(arn);
            if task["lastStatus"] == status {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {arn} never reached {status}: {task}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until jump has started a task in this cluster; returns its ARN.
    pub fn wait_for_task(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(arn) = self.running_tasks().into_iter().next() {
                return arn;
            }
            assert!(
                Instant::now() < deadline,
                "no task appeared in {}",
                self.cluster
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every file left in the state directory (key files, records, known_hosts).
    pub fn state_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(self.state.path(), &mut found);
        found
    }

    /// Asserts the world is clean: no task desired RUNNING, no local files.
    pub fn assert_nothing_left(&self) {
        assert_eq!(
            self.running_tasks(),
            Vec::<String>::new(),
            "tasks left running"
        );
        assert_eq!(
            self.state_files(),
            Vec::<PathBuf>::new(),
            "local files left"
        );
    }
}

/// Asserts `jump` exited with `code` and said something containing `needle` on stderr.
pub fn expect_exit(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A word for `sh -c`, quoted.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `jump ARGS` in a 100x30 tmux terminal of its own, for tests that need a real tty.
pub struct Terminal {
    socket: PathBuf,
}

impl Terminal {
    pub fn start(world: &World, args: &str) -> Terminal {
        let term = Terminal {
            socket: world.home.path().join("tmux.sock"),
        };
        // The environment `World::jump` gives, in its order: later settings win.
        let command = world.jump();
        let env: Vec<String> = command
            .get_envs()
            .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)))
            .map(|pair| shell_word(&pair))
            .collect();
        let script = format!(
            "cd {} && env {} {} {args}; echo \"jump-exited-$?\"; sleep 60",
            shell_word(&world.home.path().display().to_string()),
            env.join(" "),
            env!("CARGO_BIN_EXE_jump")
        );
        let started = term.tmux(&[
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            "sh",
            "-c",
            &script,
        ]);
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        term
    }

    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    pub fn screen(&self) -> String {
        // -J: a line the terminal wrapped is one line again.
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-J"]).stdout).into_owned()
    }

    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let shown = self.screen();
            if shown.contains(needle) {
                return shown;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {needle:?}; screen:\n{shown}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The screen once it shows every one of `needles` (a list is drawn after its prompt).
    pub fn wait_for_all(&self, needles: &[&str]) -> String {
        let mut shown = String::new();
        for needle in needles {
            shown = self.wait_for(needle);
        }
        shown
    }

    pub fn keys(&self, keys: &[&str]) {
        assert!(self.tmux(&[&["send-keys"], keys].concat()).status.success());
    }

    /// What a remote shell on this terminal must see: typing, the terminal's size and a
    /// resize, and Ctrl-C interrupting its foreground command (not ending the session).
    pub fn exercise_shell(&self) {
        self.keys(&["echo typed-$((40+2))", "Enter"]);
        self.wait_for("typed-42");
        self.keys(&["stty size", "Enter"]);
        self.wait_for("30 100");
        self.tmux(&["resize-window", "-x", "120", "-y", "40"]);
        std::thread::sleep(Duration::from_millis(500));
        self.keys(&["stty size", "Enter"]);
        self.wait_for("40 120");
        self.keys(&["sleep 30; echo slept-$((2*3))", "Enter"]);
        std::thread::sleep(Duration::from_millis(500));
        self.keys(&["C-c"]);
        self.keys(&["echo after-$((1+1))", "Enter"]);
        let shown = self.wait_for("after-2");
        assert!(
            !shown.contains("slept-6"),
            "Ctrl-C did not reach the remote shell:\n{shown}"
        );
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// A file of the Terraform example, once it has parsed as HCL (python-hcl2, from
/// tests/sandbox/setup): its text, for tests that hold it against what jump makes.
pub fn terraform(file: &str) -> String {
    let path = repo().join("examples/terraform").join(file);
    let out = Command::new(repo().join("tests/sandbox/.venv/bin/python"))
        .args(["-c", "import hcl2, sys; hcl2.load(open(sys.argv[1]))"])
        .arg(&path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{file} is not valid HCL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path).unwrap()
}
