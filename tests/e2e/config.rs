//! Bad configuration is refused before any AWS call.
//!
//! The AWS endpoint is a listener owned by the test: if `jump` made any call,
//! the listener would see the connection.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use crate::support::{expect_exit, stderr};

struct NoAws {
    listener: TcpListener,
    dir: TempDir,
}

impl NoAws {
    fn new() -> NoAws {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        NoAws {
            listener,
            dir: TempDir::new().expect("temp dir"),
        }
    }

    fn jump(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let endpoint = format!("http://{}", self.listener.local_addr().unwrap());
        let out = Command::new(env!("CARGO_BIN_EXE_jump"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("JUMP_STATE_DIR", self.dir.path().join("state"))
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("jump runs");
        assert!(
            self.listener.accept().is_err(),
            "jump called AWS for {args:?}"
        );
        out
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.dir.path().join("jump.toml"), text).unwrap();
    }
}

const GOOD: [(&str, &str); 5] = [
    ("JUMP_CLUSTER", "c"),
    ("JUMP_SUBNETS", "subnet-0abc"),
    ("JUMP_SECURITY_GROUPS", "sg-0abc"),
    (
        "JUMP_EXECUTION_ROLE",
        "arn:aws:iam::123456789012:role/jump-task-execution",
    ),
    (
        "JUMP_IMAGE",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumphost:1",
    ),
];

/// A usage error (exit 2) that says what is wrong.
fn refused(out: &Output, needle: &str) {
    expect_exit(out, 2, needle);
}

#[test]
fn missing_cluster_says_how_to_set_it() {
    let t = NoAws::new();
    refused(&t.jump(&["up", "--", "true"], &[]), "JUMP_CLUSTER");
}

/// jump has no default image: a name it picked would be someone else's namespace.
#[test]
fn missing_image_says_how_to_set_it() {
    let t = NoAws::new();
    let out = t.jump(&["up", "--", "true"], &GOOD[..4]);
    refused(&out, "missing `image`");
    refused(&out, "JUMP_IMAGE");
}

#[test]
fn unknown_key_in_jump_toml_is_named() {
    let t = NoAws::new();
    t.write_config("cluster = \"c\"\nsubnets = [\"subnet-0abc\"]\nsecurity_groups = [\"sg-0abc\"]\nclustr = \"typo\"\n");
    refused(&t.jump(&["up", "--", "true"], &[]), "clustr");
}

#[test]
fn malformed_jump_toml_is_refused() {
    let t = NoAws::new();
    t.write_config("cluster = \n");
    refused(&t.jump(&["up", "--", "true"], &[]), "jump.toml");
}

#[test]
fn invalid_values_are_refused_whatever_their_source() {
    let t = NoAws::new();
    refused(
        &t.jump(
            &["up", "--cpu", "256", "--memory", "4096", "--", "true"],
            &GOOD,
        ),
        "memory",
    );
    refused(
        &t.jump(&["up", "--ttl", "soon", "--", "true"], &GOOD),
        "ttl",
    );
    refused(
        &t.jump(&["up", "--subnets", "not-a-subnet", "--", "true"], &GOOD),
        "not-a-subnet",
    );
    let mut env = GOOD.to_vec();
    env.push(("JUMP_SECURITY_GROUPS", "nope"));
    refused(&t.jump(&["up", "--", "true"], &env), "nope");
    // A login user ssh would read as an option, or sshd's AllowUsers as a pattern.
    for user in ["-oProxyCommand=x", "root@host", "a b", "*"] {
        let flag = format!("--login-user={user}");
        refused(
            &t.jump(&["up", &flag, "--", "true"], &GOOD),
            "is not a user name",
        );
    }
}

/// Fargate refuses awslogs without an execution role, at RegisterTaskDefinition; jump
/// says so first, with the fix, and never gets that far.
#[test]
fn no_execution_role_is_refused_with_the_fix() {
    let t = NoAws::new();
    let out = t.jump(&["up", "--", "true"], &GOOD[..3]);
    refused(&out, "execution_role");
    refused(&out, "jump init");
}

/// RunTask takes at most 16 subnets and 5 security groups.
#[test]
fn more_subnets_or_security_groups_than_a_task_takes_are_refused() {
    let t = NoAws::new();
    let subnets: Vec<String> = (0..17).map(|i| format!("subnet-{i:x}")).collect();
    let flag = ["--subnets", &subnets.join(",")];
    refused(
        &t.jump(&[&["up"], &flag[..], &["--", "true"]].concat(), &GOOD),
        "at most 16",
    );
    let groups = "sg-1,sg-2,sg-3,sg-4,sg-5,sg-6";
    refused(
        &t.jump(&["up", "--security-groups", groups, "--", "true"], &GOOD),
        "at most 5",
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let t = NoAws::new();
    refused(&t.jump(&["up", "--bogus"], &GOOD), "--bogus");
}

#[test]
fn bad_session_id_is_refused_before_any_call() {
    let t = NoAws::new();
    refused(&t.jump(&["down", "../../etc"], &GOOD), "session");
}

#[test]
fn completions_are_generated_without_aws() {
    let t = NoAws::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = t.jump(&["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["forward", "exec", "down", "socks", "ssh-config", "man"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
    }
}

/// `jump man`: a manual page from the same definitions as `--help`, which `man` renders.
#[test]
fn the_manual_page_is_generated_without_aws_and_man_reads_it() {
    let t = NoAws::new();
    let out = t.jump(&["man"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(page.contains("\n.TH jump 1 "), "{page}");
    let dir = t.dir.path().join("jump.1");
    std::fs::write(&dir, &page).unwrap();
    let rendered = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&dir)
        .env("MANWIDTH", "100")
        .output()
        .expect("man runs");
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    let text = String::from_utf8_lossy(&rendered.stdout);
    for section in [
        "NAME",
        "SYNOPSIS",
        "SUBCOMMANDS",
        "jump-socks",
        "jump-ssh-config",
    ] {
        assert!(text.contains(section), "no {section} in:\n{text}");
    }
}

#[test]
fn a_state_directory_someone_else_could_prepare_is_refused_before_any_call() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let aws = NoAws::new();
    let open = aws.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let private = aws.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = aws.dir.path().join("link");
    symlink(&private, &link).unwrap();
    for (root, why) in [
        (&open, "its mode 777 lets group or others write it"),
        (&link, "it is a symbolic link"),
    ] {
        let mut env = GOOD.to_vec();
        let root = root.display().to_string();
        env.push(("JUMP_STATE_DIR", &root));
        let out = aws.jump(&["up", "--", "true"], &env);
        refused(&out, why);
        assert!(stderr(&out).contains("chmod 700"), "{}", stderr(&out));
        assert_eq!(std::fs::read_dir(&private).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
    }
}

/// `jump cp` refuses what it can tell is wrong here before asking AWS anything: two
/// local sides, two remote ones, a task named twice, a source that is missing or a
/// directory without -r, a destination whose directory does not exist, a bad session id.
#[test]
fn cp_refuses_bad_input_before_any_aws_call() {
    let t = NoAws::new();
    std::fs::create_dir(t.dir.path().join("tree")).unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["cp", "a", "b"], "one side must be in the task"),
        (&["cp", "s1:/a", "s2:/b"], "both sides are in tasks"),
        (
            &["cp", "--task", "t", "tree", "3f9c0a1b2c4d:/tmp"],
            "name the task once",
        ),
        (
            &["cp", "missing.txt", "3f9c0a1b2c4d:/tmp"],
            "cannot read missing.txt",
        ),
        (
            &["cp", "tree", "3f9c0a1b2c4d:/tmp"],
            "tree is a directory: add -r",
        ),
        (
            &["cp", "3f9c0a1b2c4d:/etc/hosts", "no/such/dir/hosts"],
            "no/such/dir is not a directory here",
        ),
        (&["cp", "tree", "not-an-id:/tmp"], "not-an-id"),
    ];
    for (args, needle) in cases {
        refused(&t.jump(args, &GOOD), needle);
    }
}
