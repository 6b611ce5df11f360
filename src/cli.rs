//! Command line definitions (clap) — nothing else lives here.
//!
//! Help text is written to teach: every subcommand shows how it is used in practice.
//! Settings flags map one to one onto `jump.toml` keys and `JUMP_<KEY>` variables, so
//! they are collected generically by [`ConfigFlags::pairs`] and parsed in `plan`.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use clap_complete::Shell;

use crate::connect::terminal::Escape;

const ABOUT: &str =
    "Open a short-lived SSH jumphost in your VPC on ECS Fargate, and always clean it up";

const LONG_ABOUT: &str = "\
jump launches a one-off ECS Fargate task as an SSH jumphost inside your VPC, connects to it
with your system `ssh` using a fresh per-session key and a pinned host key, and stops the
task when you leave — on exit, error, Ctrl-C, SIGTERM or a closed terminal. A second Ctrl-C
while it stops the task gives up waiting and prints the `jump down ID` that finishes the job.
If the client dies outright, the task still stops itself at its TTL or after its idle timeout.

Settings come from jump.toml (in this directory or a parent), then JUMP_<KEY> environment
variables, then flags. AWS credentials and region come from the standard AWS chain
(AWS_PROFILE, AWS_REGION, SSO, ...) or --profile / --region.";

const AFTER_HELP: &str = "\
Examples:
  jump up                              open an interactive shell on a new jumphost
  jump up -- psql -h db.internal       run one command, exit with its status
  jump up --detach                     start a jumphost and leave it running
  jump ssh 3f9c0a1b2c4d                connect to a detached session
  jump ls                              list your running sessions
  jump down --all-mine                 stop all your sessions

Exit codes: 0 success (or the remote command's status), 2 usage or configuration error,
69 AWS API error, 70 internal error, 75 task failed to start or stopped, 76 could not
connect, 129/130/143 ended by SIGHUP/SIGINT/SIGTERM.";

#[derive(Debug, Parser)]
#[command(name = "jump", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// AWS profile to use (default: AWS_PROFILE or the default profile)
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region to use (default: AWS_REGION or the profile's region)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace); RUST_LOG also works
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Machine-readable JSON on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Hand ECS Exec and port-forward sessions to AWS's session-manager-plugin at PATH
    /// instead of jump's own client (for policies that require it)
    #[arg(long, global = true, value_name = "PATH", env = "JUMP_SSM_PLUGIN")]
    pub ssm_plugin: Option<PathBuf>,
    /// Escape character of interactive ECS Exec sessions (`~.` ends one, `~?` lists the
    /// escapes), or `none`
    #[arg(
        long,
        global = true,
        value_name = "CHAR",
        default_value = "~",
        env = "JUMP_ESCAPE"
    )]
    pub escape: Escape,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a jumphost, connect to it, and stop it when done
    #[command(
        long_about = "Start a jumphost task, wait until it runs, read its host key from its \
log stream, and connect with ssh. Without a command you get an interactive shell; with one \
(after `--`) it runs non-interactively and jump exits with its status. The task is stopped \
afterwards, whatever happens, unless --detach is given.",
        after_help = "Examples:\n  jump up\n  jump up --public --ttl 30m\n  jump up -- pg_dump -h db.internal app > app.sql\n  jump up --detach --json"
    )]
    Up(Box<UpArgs>),
    /// Connect to a session started with `jump up --detach`
    #[command(
        after_help = "Examples:\n  jump ssh 3f9c0a1b2c4d\n  jump ssh 3f9c0a1b2c4d -- uptime"
    )]
    Ssh(SshArgs),
    /// An ssh config Host block for a session, for scp, rsync, sftp and IDEs
    #[command(
        long_about = "Print an OpenSSH `Host` block for a session started on this machine: its \
key, its pinned known_hosts and host key alias, the same locked-down settings `jump ssh` uses \
and, for a session reached through Session Manager (`ssh_via = \"ssm\"`), a ProxyCommand \
through jump. Programs that speak ssh then work with their own binaries for as long as the \
session runs.",
        after_help = "Examples:\n  jump ssh-config 3f9c0a1b2c4d > /tmp/jump.ssh\n  scp -F /tmp/jump.ssh dump.sql jump-3f9c0a1b2c4d:/tmp/\n  rsync -e 'ssh -F /tmp/jump.ssh' -a ./site/ jump-3f9c0a1b2c4d:site/\n  sftp -F /tmp/jump.ssh jump-3f9c0a1b2c4d"
    )]
    SshConfig(SessionArg),
    /// ssh's ProxyCommand for a session reached through Session Manager (used by jump)
    #[command(hide = true)]
    SshProxy(SessionArg),
    /// List running sessions (yours, or everyone's with --all)
    #[command(after_help = "Examples:\n  jump ls\n  jump ls --all --json")]
    Ls(LsArgs),
    /// Stop sessions; stopping one that is already gone is not an error
    #[command(
        after_help = "Examples:\n  jump down 3f9c0a1b2c4d\n  jump down --all-mine\n  jump down --expired\n  jump down 3f9c0a1b2c4d --all   # someone else's session"
    )]
    Down(DownArgs),
    /// Open a shell (or run a command) in a task through ECS Exec, no plugin needed
    #[command(
        long_about = "Open an interactive shell, or run a command, in a session's task, in a running \
task of a service, or in any exec-enabled task of the cluster, through ECS Exec. jump speaks the \
Session Manager protocol itself: no session-manager-plugin. The remote command's exit status \
becomes jump's; without a terminal (CI) output streams as it comes and piped stdin reaches the \
command byte for byte, through a pipe (the container needs `stty` and `head`, as coreutils and busybox \
have). Sessions on clusters whose ECS Exec configuration names a KMS key are encrypted end to \
end with a data key from that key (you need kms:GenerateDataKey on it). A lost connection \
(Session Manager recycles them about hourly; networks drop them; one silent for 15 s counts as \
lost) is resumed with ssm:ResumeSession, nothing lost or repeated; a session that cannot be resumed ends with the reason \
and exit 76. ECS Exec's idle timeout (20 minutes without input; output and keepalives do not \
count, and AWS does not let it be changed) ends the session itself and the processes it started: \
jump says so and exits 76. Keep long work in tmux or nohup on the task, or use `jump run`.",
        after_help = "Examples:\n  jump exec 3f9c0a1b2c4d\n  jump exec 3f9c0a1b2c4d -- sh -c 'echo $HOSTNAME'\n  jump exec --service web --container app -- bin/rails console\n  jump exec --task 0123456789abcdef0123456789abcdef --container web -- ps aux\n  echo 'select 1' | jump exec 3f9c0a1b2c4d -- psql -h db.internal\n  jump exec --ssm-plugin /usr/local/bin/session-manager-plugin 3f9c0a1b2c4d"
    )]
    Exec(ExecArgs),
    /// Copy files and directories to or from a session's task, or any exec-enabled task
    #[command(
        long_about = "Copy a file (or, with -r, a directory and everything below it) between this \
machine and a task. One side is local; the other is SESSION:PATH, or :PATH with --task or \
--service (or, on a terminal, a session chosen from a list of yours). A PATH is relative to the \
task's working directory; an existing directory receives the copy inside it, as cp and scp do. \
An ssh-mode session started on this machine is copied with scp and the session's key (scp's \
own progress meter). Everything else goes through ECS Exec: no S3 bucket and no plugin, and the \
container needs only `sh`, plus `base64` (or, copying from the task, `od`) for the bytes and \
`mkdir` for directories; `cksum`, where the container has it, checks every file end to end (jump \
says how many it could not check), and `stty`, `wc` and `chmod` are used where present. Files \
arrive under a temporary name and are renamed into place only when whole and checked. The \
executable bit is kept; owners, times and links are not (a link to a file is copied as the \
file, a link to a directory is skipped). A progress bar shows on a terminal; --json prints what \
was copied.",
        after_help = "Examples:\n  jump cp dump.sql 3f9c0a1b2c4d:/tmp/\n  jump cp 3f9c0a1b2c4d:/var/log/app.log .\n  jump cp -r ./fixtures 3f9c0a1b2c4d:/srv/\n  jump cp --service web :/app/log/production.log ./production.log\n  jump cp --task 0123456789abcdef0123456789abcdef --container app report.csv :/tmp/\n  jump cp ./seed.sql :/tmp/        # on a terminal: choose the session"
    )]
    Cp(Box<CpArgs>),
    /// Forward local ports to hosts inside the VPC (a database, a REPL), no plugin needed
    #[command(
        long_about = "Forward local ports to hosts inside the VPC. Each TARGET is \
[LOCAL_PORT:]HOST[:PORT], where HOST may be a name or address, rds:<db-identifier> (resolved \
through the RDS API, which also gives the port), service:<name> (the private address of the \
service's newest running task), task:<id> (a task's), or a name from the [forwards] table of \
jump.toml. With a SESSION (or `--session` alone: one of yours chosen from a list), forwards \
through that session's task; without one, starts an exec-mode jumphost for as long as the \
forward runs and stops it afterwards. With --service or \
--task, each TARGET is [LOCAL_PORT:]PORT and the forward goes to that port of the task itself, \
through its own ECS Exec agent: no jumphost is started and the task needs no inbound rule (it \
must run with ECS Exec enabled). Many local connections share one session, each on its own \
stream. Listens on 127.0.0.1 (and ::1) unless --bind says otherwise. Prints the local address \
when ready (--json for scripts). A lost connection is resumed (ssm:ResumeSession) without open \
connections noticing; a session that cannot be resumed resets the connections it carried and new \
ones go through a new session; if no new session can be opened, jump exits 76. The same happens \
when the account's Session Manager idle timeout (20 minutes without traffic unless changed) ends \
an unused port session. After `--`, a local COMMAND runs once every forward listens, with \
{host} and {port} in its words replaced by the first target's local address and every target's \
in its environment (JUMP_FORWARD_<NAME>_HOST and _PORT, NAME being the [forwards] name or the \
target's position, 1, 2, …); when it exits, the forward and any jumphost started for it are torn \
down and its exit status is jump's. The command owns the terminal while it runs: Ctrl-C is \
its own (a console cancels a query), and the tunnel stays up until it exits.",
        after_help = "Examples:\n  jump forward 5432:rds:orders            # psql -h 127.0.0.1 -p 5432 ...\n  jump forward db                          # [forwards] db = \"5432:rds:orders\" in jump.toml\n  jump forward --service api 6666:55555    # the service's own nREPL: lein repl :connect localhost:6666\n  jump forward 6666:service:api:55555      # the same through a jumphost\n  jump forward 3f9c0a1b2c4d 7888:repl.internal:7888\n  jump forward --json 0:rds:orders         # any free local port, printed as JSON\n  jump forward --bind 0.0.0.0 5432:rds:orders   # reachable from containers (and the network)\n  jump forward db -- psql -h {host} -p {port} -U app orders   # a console through a fresh jumphost\n  jump forward 0:rds:orders 0:cache.internal:6379 -- sh -c 'echo $JUMP_FORWARD_2_PORT'"
    )]
    Forward(Box<ForwardArgs>),
    /// A local SOCKS5 proxy into the VPC: each connection reaches the host it asks for
    #[command(
        long_about = "A local SOCKS5 proxy (no authentication, CONNECT; IPv4 and domain-name \
targets, names resolved inside the VPC) through one task: each connection reaches whatever \
host and port it asks for, over a Session Manager port session per target, reused while it \
lasts. With a SESSION (or `--session` alone: one of yours chosen from a list), through that \
session's task (an ssh-mode session started on this machine \
is proxied by OpenSSH itself, `ssh -D`, with the session's key: no ECS Exec needed); without one, \
through an exec-mode jumphost started for as long as the proxy runs and stopped afterwards. A \
target that refuses the connection gets a SOCKS failure reply. Listens on 127.0.0.1 (and ::1) unless --bind says \
otherwise; prints the proxy's address when ready (--json for scripts).",
        after_help = "Examples:\n  jump socks --port 1080\n  curl --socks5-hostname 127.0.0.1:1080 http://grafana.internal:3000/\n  ssh -o ProxyCommand='nc -X 5 -x 127.0.0.1:1080 %h %p' admin@10.0.3.7\n  jump socks 3f9c0a1b2c4d --port 1080      # through a detached session's task"
    )]
    Socks(Box<SocksArgs>),
    /// A one-off task from a service's own task definition, a command in it, then gone
    #[command(
        long_about = "Start a one-off task from a service's own task definition and network \
configuration (image, environment, secrets, roles, logging, subnets, security groups), with ECS \
Exec enabled, owner tags and a TTL; its main command is replaced by a keep-alive, your command \
runs in it through ECS Exec with a real terminal, jump exits with its status, and the task is \
stopped afterwards on every exit path. Without a command you get a shell.",
        after_help = "Examples:\n  jump run --service web -- bin/rails console\n  jump run --service api --container app -e LOG_LEVEL=debug -- ./migrate.sh\n  jump run --task-definition worker:42 -- sh -c 'echo $APP_ENV'"
    )]
    Run(Box<RunArgs>),
    /// Show a session task's container output (from CloudWatch Logs)
    #[command(
        after_help = "Examples:\n  jump logs 3f9c0a1b2c4d\n  jump logs 3f9c0a1b2c4d --follow"
    )]
    Logs(LogsArgs),
    /// Stop every session whose TTL has passed, whoever owns it (`down --expired`, for a schedule)
    #[command(
        long_about = "Stop every session whose TTL has passed, whoever owns it (the same as `jump down \
                      --expired`, for a schedule). Tags are whatever the caller set, so gc also stops \
                      every task of jump's task-definition family, however it was started, whose \
                      jump:expires tag is missing or unreadable, or that ECS created more than 24 hours \
                      ago (the longest TTL).",
        after_help = "Examples:\n  jump gc\n  jump gc --cluster platform --json"
    )]
    Gc(ClusterArgs),
    /// Keep warm jumphosts ready to claim, so a session starts in seconds: create, status, delete
    #[command(
        subcommand,
        long_about = "A warm pool: an ECS service (jump-pool-NAME) whose tasks are idle jumphosts \
from jump's own task definition, each replaced by the service after --recycle-after. With \
`pool = \"NAME\"` in jump.toml (or --pool NAME, JUMP_POOL), `jump up`, `jump forward` and `jump \
socks` claim a warm task instead of starting one: the claim is atomic (tags, then an exclusive \
mkdir in the task through ECS Exec), so two users never share a jumphost; the claimed task is the \
session's, stopped at its end and never reused, and the service starts a fresh one. With no warm \
task to claim, jump says so and starts one cold. A pool is in exec mode unless `--mode ssh` (or \
`mode = \"ssh\"`) says otherwise, and a session claims only from a pool of its own mode: an \
ssh-mode jumphost waits with sshd up and no key, and the claim installs the session's key and \
pins the host key, both through ECS Exec, so both modes need a task role. A pool costs what its \
tasks cost while they run: `jump pool status` says how much."
    )]
    Pool(Box<PoolCommand>),
    /// Create what jumphosts need (cluster, roles, log group, security group, jump.toml)
    #[command(
        long_about = "Show a plan, then create what jumphosts need in a VPC (the default VPC unless \
--vpc is given): the ECS cluster if missing, a task execution role, a task role with exactly the \
permissions ECS Exec needs, a CloudWatch log group with a retention period, a security group with \
no inbound rules, and a jump.toml that points at all of it. Every resource is tagged \
jump:managed-by=jump-init. Running it again changes nothing that is already right; --destroy \
removes what init created and nothing else. The policies are in templates/ for review.",
        after_help = "Examples:\n  jump init --dry-run\n  jump init --yes --vpc vpc-0123456789abcdef0 --cluster platform\n  jump init --yes --session-logging --kms-key alias/jump-sessions\n  jump init --yes --alerts arn:aws:sns:eu-west-1:123456789012:security-alerts\n  jump init --destroy --yes"
    )]
    Init(Box<InitArgs>),
    /// Check every prerequisite of ECS Exec and jump, each PASS/WARN/FAIL with its fix
    #[command(
        long_about = "Check the prerequisites of jump sessions and ECS Exec, and say how to fix each \
one that fails. Without a target it checks the configuration (jump.toml, flags, JUMP_<KEY>): \
credentials and region, the cluster and its exec settings, the roles' permissions (IAM policy \
simulation), the subnets' route to Session Manager (internet or VPC endpoints), security-group \
egress on 443 and the log group. With a SESSION, --task or --service it checks that task as it \
runs: platform version, enableExecuteCommand, the exec agent, the task definition (init process, \
read-only root filesystem, pidMode, credentials in the environment), its role, its network. \
`--session`, `--task` or `--service` alone, on a terminal, choose the target from a list. Exits 1 \
if any check FAILs.",
        after_help = "Examples:\n  jump doctor\n  jump doctor 3f9c0a1b2c4d\n  jump doctor --service web --json\n  jump doctor --task 0123456789abcdef0123456789abcdef"
    )]
    Doctor(Box<DoctorArgs>),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  jump completions bash > ~/.local/share/bash-completion/completions/jump\n  jump completions zsh > \"${fpath[1]}/_jump\""
    )]
    Completions {
        /// The shell to generate completions for
        shell: Shell,
    },
    /// Print jump's manual page (roff), made from the same definitions as --help
    #[command(
        after_help = "Examples:\n  jump man | man -l -\n  jump man > ~/.local/share/man/man1/jump.1"
    )]
    Man,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Leave the task running and print how to connect, instead of connecting
    #[arg(long)]
    pub detach: bool,
    /// Give the task a public IP and connect to it (needs a public subnet)
    #[arg(long)]
    pub public: bool,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ConfigFlags,
    /// Command to run on the jumphost instead of an interactive shell
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Flags that override `jump.toml` keys and `JUMP_<KEY>` variables.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Settings (override jump.toml and JUMP_<KEY>)")]
pub struct ConfigFlags {
    /// ECS cluster name or ARN
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Subnet ids, comma separated
    #[arg(long, value_name = "IDS")]
    pub subnets: Option<String>,
    /// Security group ids, comma separated
    #[arg(long, value_name = "IDS")]
    pub security_groups: Option<String>,
    /// Jumphost container image (required: no default; `jump init` writes one to jump.toml)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Task CPU units (256, 512, 1024, 2048, 4096)
    #[arg(long, value_name = "UNITS")]
    pub cpu: Option<String>,
    /// Task memory in MiB (must suit the CPU size)
    #[arg(long, value_name = "MIB")]
    pub memory: Option<String>,
    /// Lifetime of the task, e.g. 30m or 3600 (1m to 24h)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Stop the task after this long without an ssh connection
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// CloudWatch Logs group for task output
    #[arg(long, value_name = "NAME")]
    pub log_group: Option<String>,
    /// IAM role ARN for the task
    #[arg(long, value_name = "ARN")]
    pub task_role: Option<String>,
    /// IAM role ARN ECS uses to pull the image and write logs
    #[arg(long, value_name = "ARN")]
    pub execution_role: Option<String>,
    /// Container name in the task definition
    #[arg(long, value_name = "NAME")]
    pub container_name: Option<String>,
    /// Task definition family
    #[arg(long, value_name = "NAME")]
    pub family: Option<String>,
    /// User to log in as on the jumphost
    #[arg(long, value_name = "USER")]
    pub login_user: Option<String>,
    /// How long to wait for the task to run and log its host key
    #[arg(long, value_name = "DURATION")]
    pub wait_timeout: Option<String>,
    /// `ssh` (sshd and a pinned host key) or `exec` (ECS Exec only, any image with sh)
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// ssh mode: reach sshd over the `network` (inbound 22) or through `ssm` (no inbound rule)
    #[arg(long, value_name = "HOW")]
    pub ssh_via: Option<String>,
    /// Claim a warm jumphost from this pool (`jump pool create`) instead of starting one;
    /// exec mode
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
}

impl ConfigFlags {
    /// The flags that were given, as `(config key, raw value)` pairs.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        self.entries()
            .into_iter()
            .filter_map(|(key, value)| value.clone().map(|v| (key, v)))
            .collect()
    }

    fn entries(&self) -> [(&'static str, &Option<String>); 18] {
        [
            ("cluster", &self.cluster),
            ("subnets", &self.subnets),
            ("security_groups", &self.security_groups),
            ("image", &self.image),
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("ttl", &self.ttl),
            ("idle_timeout", &self.idle_timeout),
            ("log_group", &self.log_group),
            ("task_role", &self.task_role),
            ("execution_role", &self.execution_role),
            ("container_name", &self.container_name),
            ("family", &self.family),
            ("login_user", &self.login_user),
            ("wait_timeout", &self.wait_timeout),
            ("mode", &self.mode),
            ("ssh_via", &self.ssh_via),
            ("pool", &self.pool),
        ]
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Show what would be created or changed, and change nothing
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Apply without asking (required without a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Remove everything an earlier `jump init` created (with this --name), nothing else
    #[arg(long)]
    pub destroy: bool,
    /// Alert this SNS topic on every ECS Exec session in the cluster: an EventBridge rule on
    /// CloudTrail's ExecuteCommand records (needs a trail recording management events, and a
    /// topic policy that lets events.amazonaws.com publish)
    #[arg(long, value_name = "TOPIC_ARN", conflicts_with = "destroy")]
    pub alerts: Option<String>,
    /// Replace a jump.toml that `jump init` did not write (otherwise init refuses to touch it)
    #[arg(long, conflicts_with = "destroy")]
    pub force: bool,
    /// Prefix of the names init gives its resources (roles, log group, security group)
    #[arg(long, value_name = "PREFIX", default_value = "jump")]
    pub name: String,
    /// ECS cluster to use, created if missing (default: from jump.toml, else the --name)
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// VPC for the security group and subnets (default: the account's default VPC)
    #[arg(long, value_name = "ID")]
    pub vpc: Option<String>,
    /// Subnets for jumphosts, comma separated, at most 16 (default: up to 16 subnets of the
    /// VPC that have a way out, NAT-routed ones first)
    #[arg(long, value_name = "IDS")]
    pub subnets: Option<String>,
    /// Days CloudWatch keeps session logs (one of the periods CloudWatch Logs accepts)
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub log_retention_days: i32,
    /// Also log ECS Exec sessions to the log group (adds the log permissions to the task role)
    #[arg(long)]
    pub session_logging: bool,
    /// Encrypt ECS Exec sessions with this KMS key (id, ARN or alias)
    #[arg(long, value_name = "KEY")]
    pub kms_key: Option<String>,
    /// Image for jump.toml's `image` (exec mode works with any image that has sh)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Also reap on ECS itself: an EventBridge Scheduler schedule that runs `jump gc` as a
    /// Fargate task every --every, with a role that may only list, describe and stop the
    /// cluster's tasks (needs --reaper-image)
    #[arg(long, requires = "reaper_image", conflicts_with = "destroy")]
    pub reaper: bool,
    /// How often the reaper runs (5m to 24h)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "15m",
        requires = "reaper"
    )]
    pub every: String,
    /// An image whose entrypoint is jump (dockerfiles/reaper builds one), for the reaper task
    #[arg(long, value_name = "IMAGE", requires = "reaper")]
    pub reaper_image: Option<String>,
    /// Where to write the configuration
    #[arg(long, value_name = "PATH", default_value = "jump.toml")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Session id to check (its task as it runs), as printed by `jump up --detach` or `jump ls`
    pub session: Option<String>,
    /// `--session` alone, on a terminal: one of your sessions, chosen from a list
    /// (`--session=ID`: the same as naming it)
    #[arg(
        long = "session",
        value_name = "SESSION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        conflicts_with_all = ["session", "task", "service"]
    )]
    pub chosen: Option<String>,
    /// Any task of the cluster to check (id or ARN; `--task` alone, on a terminal: chosen
    /// from the cluster's running tasks)
    #[arg(
        long,
        value_name = "TASK",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with_all = ["session", "service"]
    )]
    pub task: Option<String>,
    /// Check the newest running task of this ECS service (`--service` alone, on a
    /// terminal: chosen from the cluster's services)
    #[arg(
        long,
        value_name = "NAME",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with = "session"
    )]
    pub service: Option<String>,
    /// Container to check the exec agent of (default: every container)
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ConfigFlags,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create the pool's service, or bring an existing one to this size and definition
    #[command(
        after_help = "Examples:\n  jump pool create --name dev --size 3\n  jump pool create --size 2 --recycle-after 2h   # the name from jump.toml's `pool`\n  jump pool create --name ops --mode ssh          # claimed by `jump up --pool ops --mode ssh`"
    )]
    Create(Box<PoolCreateArgs>),
    /// The pool's size, warm and claimed tasks, and its cost per hour
    #[command(after_help = "Examples:\n  jump pool status --name dev\n  jump pool status --json")]
    Status(PoolArgs),
    /// Delete the pool's service (claimed tasks run on until their sessions end)
    #[command(after_help = "Examples:\n  jump pool delete --name dev")]
    Delete(PoolArgs),
}

#[derive(Debug, Args)]
pub struct PoolCreateArgs {
    /// The pool (default: `pool` from jump.toml, JUMP_POOL or --pool)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// How many warm tasks to keep (1 to 20)
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub size: u32,
    /// Each warm task is replaced after this long (10m to 24h)
    #[arg(long, value_name = "DURATION", default_value = "4h")]
    pub recycle_after: String,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ConfigFlags,
}

#[derive(Debug, Args)]
pub struct PoolArgs {
    /// The pool (default: `pool` from jump.toml or JUMP_POOL)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// ECS cluster name or ARN (default: from jump.toml or JUMP_CLUSTER)
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Where to find the cluster for commands that need nothing else.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// ECS cluster name or ARN (default: from jump.toml or JUMP_CLUSTER)
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Session id, as printed by `jump up --detach` or `jump ls` (on a terminal: chosen
    /// from a list of this machine's ssh sessions when left out)
    pub session: Option<String>,
    /// Command to run instead of an interactive shell
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SocksArgs {
    /// A session whose task carries the proxy; without one, a jumphost is started
    pub session: Option<String>,
    /// `--session` alone, on a terminal: one of your sessions, chosen from a list
    /// (`--session=ID`: the same as naming it)
    #[arg(
        long = "session",
        value_name = "SESSION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        conflicts_with_all = ["session"]
    )]
    pub chosen: Option<String>,
    /// Local port (0: any free one, printed)
    #[arg(long, value_name = "N", default_value_t = 1080)]
    pub port: u16,
    /// Listen on this address (default 127.0.0.1 and ::1; 0.0.0.0 exposes the proxy)
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ConfigFlags,
}

#[derive(Debug, Args)]
pub struct SessionArg {
    /// Session id, as printed by `jump up --detach` or `jump ls`
    pub session: String,
}

/// A task other than a session's, and the container in it, for `exec` and `cp`.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// Any exec-enabled task of the cluster instead of a session (id or ARN; `--task`
    /// alone, on a terminal: chosen from the cluster's running tasks)
    #[arg(long, value_name = "TASK", num_args = 0..=1, default_missing_value = "")]
    pub task: Option<String>,
    /// The newest running, exec-ready task of this ECS service instead of a session
    /// (`--service` alone, on a terminal: chosen from the cluster's services)
    #[arg(
        long,
        value_name = "NAME",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with = "task"
    )]
    pub service: Option<String>,
    /// The container, when the task has several (without it, on a terminal: chosen from
    /// the task's containers)
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").args(["session", "task", "service"]))]
pub struct ExecArgs {
    /// Session id, as printed by `jump up --detach` or `jump ls` (on a terminal, with no
    /// --task or --service either: chosen from a list of yours)
    pub session: Option<String>,
    #[command(flatten)]
    pub target: TaskArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Command to run instead of an interactive shell
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// What to copy: a local path, or SESSION:PATH (:PATH with --task or --service)
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Where to: a local path, or SESSION:PATH (:PATH with --task or --service)
    #[arg(value_name = "DEST")]
    pub dest: String,
    /// Copy a directory and everything below it
    #[arg(short, long)]
    pub recursive: bool,
    #[command(flatten)]
    pub target: TaskArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// [SESSION] TARGET...: an optional session id, then targets
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// `--session` alone, on a terminal: one of your sessions, chosen from a list
    /// (`--session=ID`: the same as naming it)
    #[arg(
        long = "session",
        value_name = "SESSION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        conflicts_with_all = ["service", "task"]
    )]
    pub chosen: Option<String>,
    /// Forward to ports of the newest exec-ready task of this ECS service itself
    #[arg(long, value_name = "NAME", conflicts_with = "task")]
    pub service: Option<String>,
    /// Forward to ports of this exec-enabled task itself (id or ARN)
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// With --service or --task: the container whose exec agent carries the session
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Listen on this address (default 127.0.0.1 and ::1; 0.0.0.0 exposes the tunnel)
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ConfigFlags,
    /// A local command to run through the forwards ({host} and {port}: the first
    /// target's address); its exit ends the forward, and its status is jump's
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["service", "task_definition"]))]
pub struct RunArgs {
    /// Take the task definition and network configuration of this ECS service (`--service`
    /// alone, on a terminal: chosen from the cluster's services)
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub service: Option<String>,
    /// Use this task definition (FAMILY or FAMILY:REVISION); network from jump.toml
    #[arg(long, value_name = "FAMILY[:REV]")]
    pub task_definition: Option<String>,
    /// The container to run the command in (default: the first essential one)
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Extra environment for that container (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Task CPU units instead of the task definition's
    #[arg(long, value_name = "UNITS")]
    pub cpu: Option<u32>,
    /// Task memory (MiB) instead of the task definition's
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,
    /// Task role instead of the task definition's (e.g. one allowed to open ECS Exec channels)
    #[arg(long, value_name = "ARN")]
    pub task_role: Option<String>,
    /// Lifetime of the task, e.g. 30m (1m to 24h; default 1h)
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
    /// Use this config file instead of searching for jump.toml
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// ECS cluster name or ARN (default: from jump.toml or JUMP_CLUSTER)
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Command to run instead of a shell
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Session id, as printed by `jump up --detach` or `jump ls` (on a terminal: chosen
    /// from a list when left out)
    pub session: Option<String>,
    /// Keep printing new lines until the task stops (or Ctrl-C)
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show everyone's sessions, not only yours
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Session id to stop (on a terminal: chosen from a list of yours when left out)
    pub session: Option<String>,
    /// Stop all of your sessions
    #[arg(long)]
    pub all_mine: bool,
    /// Stop every session whose TTL has passed, whoever owns it
    #[arg(long)]
    pub expired: bool,
    /// With SESSION: allow stopping another owner's session. Alone: stop every session
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_map_to_config_keys() {
        let cli = Cli::parse_from([
            "jump",
            "up",
            "--cluster",
            "c",
            "--security-groups",
            "sg-1,sg-2",
            "--ttl",
            "1h",
            "--",
            "ls",
            "-l",
        ]);
        let Command::Up(up) = cli.command else {
            panic!("expected up");
        };
        assert_eq!(
            up.settings.pairs(),
            vec![
                ("cluster", "c".to_string()),
                ("security_groups", "sg-1,sg-2".to_string()),
                ("ttl", "1h".to_string()),
            ]
        );
        assert_eq!(up.command, vec!["ls", "-l"]);
        let mut keys: Vec<&str> = ConfigFlags::default()
            .entries()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        keys.push("public");
        // Named forward targets live in jump.toml; on the command line targets are given
        // directly to `jump forward`.
        keys.push("forwards");
        keys.sort_unstable();
        let mut expected = crate::plan::KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn down_takes_a_selector_or_leaves_the_choice_to_the_picker() {
        // Without one, the session is chosen from a list (or refused without a terminal).
        let bare = Cli::try_parse_from(["jump", "down"]).expect("jump down parses");
        assert!(matches!(
            bare.command,
            Command::Down(DownArgs {
                session: None,
                all_mine: false,
                expired: false,
                all: false,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["jump", "down", "--expired"]).is_ok());
        assert!(Cli::try_parse_from(["jump", "down", "0123456789ab", "--all"]).is_ok());
    }
}
