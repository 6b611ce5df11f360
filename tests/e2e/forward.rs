//! `jump forward`: local ports through a jumphost, over our own Session Manager client,
//! smux v1, and the sandbox's independent agent-side gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{expect_exit, shared, stderr, stdout, Sandbox, World, SERVER};

/// A PostgreSQL-backed RDS instance in the shared sandbox.
pub fn database() -> &'static str {
    static DB: OnceLock<()> = OnceLock::new();
    DB.get_or_init(|| {
        let sandbox = shared();
        // The database's own group admits PostgreSQL from the jumphosts' group only.
        let group = sandbox.group_admitting("tunneldb", 5432, sandbox.var("JUMP_SECURITY_GROUPS"));
        sandbox.aws(&[
            "rds",
            "create-db-instance",
            "--db-instance-identifier",
            "tunneldb",
            "--engine",
            "postgres",
            "--db-instance-class",
            "db.t3.micro",
            "--master-username",
            "app",
            "--master-user-password",
            "tunnel-secret",
            "--db-name",
            "orders",
            "--allocated-storage",
            "20",
            "--vpc-security-group-ids",
            &group,
        ]);
    });
    "tunneldb"
}

/// `jump forward --json TARGETS` in the background; returns it and the local address
/// of each target, from the ready line it prints for each.
fn forward_all(world: &World, targets: &[&str]) -> (Child, Vec<String>) {
    forward_all_with(world, &[], targets)
}

pub fn forward(world: &World, target: &str) -> (Child, String) {
    let (child, mut addresses) = forward_all(world, &[target]);
    (child, addresses.remove(0))
}

fn drain_stderr(child: &mut Child) -> String {
    let _ = child.kill();
    let mut text = String::new();
    let _ = child.stderr.as_mut().unwrap().read_to_string(&mut text);
    text
}

fn psql(address: &str, sql: &str) -> std::process::Output {
    let (host, port) = address.rsplit_once(':').unwrap();
    Command::new("psql")
        .args([
            "-h", host, "-p", port, "-U", "app", "-d", "orders", "-At", "-c", sql,
        ])
        .env("PGPASSWORD", "tunnel-secret")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs")
}

/// Ends a forward with Ctrl-C, checks it exits 130 leaving nothing behind, and returns
/// what it printed.
pub fn stop(world: &World, child: Child) -> std::process::Output {
    let out = interrupt(child);
    world.assert_nothing_left();
    out
}

/// Ends a forward or proxy with Ctrl-C and checks that it exits 130.
pub fn interrupt(child: Child) -> std::process::Output {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    out
}

/// AWS's plugin's command-line contract, played by the sandbox's stand-in client.
pub const PLUGIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/sandbox/session-manager-plugin-standin"
);

#[test]
fn forward_through_the_official_plugin_when_asked() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let world = World::new(shared(), "fwd-plugin")
        .with_env("JUMP_SSM_PLUGIN", PLUGIN)
        .with_env("JUMP_PLUGIN_STANDIN_LOG", log.path().to_str().unwrap());
    let (child, address) = forward(&world, &format!("0:rds:{}", database()));
    let out = psql(&address, "select 6*7");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42", "{out:?}");
    let text = std::fs::read_to_string(log.path()).unwrap();
    let argv: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let argv = argv["argv"].as_array().unwrap();
    assert_eq!(argv.len(), 6, "{argv:?}");
    assert_eq!(argv[2], "StartSession");
    let session: serde_json::Value = serde_json::from_str(argv[0].as_str().unwrap()).unwrap();
    assert!(session["SessionId"].is_string() && session["StreamUrl"].is_string());
    let request: serde_json::Value = serde_json::from_str(argv[4].as_str().unwrap()).unwrap();
    assert_eq!(
        request["DocumentName"],
        "AWS-StartPortForwardingSessionToRemoteHost"
    );
    let port = address.rsplit_once(':').unwrap().1;
    assert_eq!(request["Parameters"]["localPortNumber"][0], port);
    assert!(request["Target"]
        .as_str()
        .unwrap()
        .starts_with(&format!("ecs:{}_", world.cluster)));
    assert_eq!(
        argv[5].as_str().unwrap(),
        world.sandbox_var("AWS_ENDPOINT_URL")
    );
    stop(&world, child);

    let missing =
        World::new(shared(), "fwd-no-plugin").with_env("JUMP_SSM_PLUGIN", "/nonexistent/plugin");
    let out = missing.run(&["forward", &format!("0:rds:{}", database())]);
    expect_exit(
        &out,
        76,
        "cannot run the session-manager-plugin /nonexistent/plugin",
    );
    missing.assert_nothing_left();
}

#[test]
fn psql_through_a_forward_to_rds_with_concurrent_sessions() {
    let world = World::new(shared(), "fwd-rds");
    let (child, address) = forward(&world, &format!("0:rds:{}", database()));
    let out = psql(&address, "select 6*7, current_database()");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "42|orders",
        "{}",
        stderr(&out)
    );
    let sessions: Vec<_> = (0..8)
        .map(|n| {
            let address = address.clone();
            std::thread::spawn(move || psql(&address, &format!("select {n}, pg_sleep(0.3)")))
        })
        .collect();
    for (n, session) in sessions.into_iter().enumerate() {
        let out = session.join().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{n}|"),
            "{}",
            stderr(&out)
        );
    }
    stop(&world, child);
}

#[test]
fn fifty_megabytes_arrive_intact_even_with_a_paused_reader() {
    let world = World::new(shared(), "fwd-bulk");
    let (child, address) = forward(&world, &format!("0:rds:{}", database()));
    let sql = "copy (select repeat(md5(g::text), 32) from generate_series(1, 50000) g) to stdout";
    let started = Instant::now();
    let out = psql(&address, sql);
    let elapsed = started.elapsed();
    let expected: usize = 50_000 * (32 * 32 + 1);
    assert_eq!(out.stdout.len(), expected, "{}", stderr(&out));
    // Speed is measured by benches/tunnel.sh on a quiet machine; under this suite's
    // parallel load a timing bound would only measure the load.
    eprintln!("51.2 MB through the tunnel in {elapsed:?}");

    // A reader that pauses for 10 s: backpressure, then every byte.
    let (host, port) = address.rsplit_once(':').unwrap();
    let mut slow = Command::new("psql")
        .args([
            "-h", host, "-p", port, "-U", "app", "-d", "orders", "-At", "-c", sql,
        ])
        .env("PGPASSWORD", "tunnel-secret")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let mut received = Vec::new();
    slow.stdout
        .take()
        .unwrap()
        .read_to_end(&mut received)
        .unwrap();
    assert!(slow.wait().unwrap().success());
    assert_eq!(received.len(), expected);
    assert_eq!(received, out.stdout, "the paused transfer differs");
    stop(&world, child);
}

/// A TCP echo server on another task of the cluster: the "REPL on another task" case.
/// Returns the task's ARN and private IP.
pub fn echo_task(world: &World) -> (String, String) {
    let family = format!("echo-{}", world.cluster);
    let server = "use IO::Socket::INET; use Socket; $s=IO::Socket::INET->new(LocalPort=>7000,Listen=>16,ReuseAddr=>1) or die; \
                  while($c=$s->accept){ if(!fork){ setsockopt($c,IPPROTO_TCP,TCP_NODELAY,1); \
                  while(sysread($c,$b,65536)){ syswrite($c,$b) } exit } close $c }";
    world.sandbox.image("echo:1", SERVER);
    let definition = serde_json::json!([{ "name": "echo", "image": "echo:1", "command": ["perl", "-e", server] }]);
    perl_task(world, &family, &definition)
}

/// Runs a task of `definition` (a perl server) in the world's cluster and returns its ARN
/// and private IP once it runs.
pub fn perl_task(world: &World, family: &str, definition: &serde_json::Value) -> (String, String) {
    let arn = world.run_task(family, definition);
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.describe(&arn)["lastStatus"] != "RUNNING" {
        assert!(Instant::now() < deadline, "{family} task never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ip = world.describe(&arn)["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
        .as_str()
        .unwrap()
        .to_string();
    (arn, ip)
}

/// Stops the echo task, then the forward, and checks nothing else is left.
fn stop_echo(world: &World, child: Child, echo: &str) {
    world.stop_task(echo);
    stop(world, child);
}

pub fn connect(address: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(address) {
            Ok(stream) => return stream,
            Err(err) => assert!(Instant::now() < deadline, "{err}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Many small request/answer exchanges on one connection, each answered in full before
/// the next: the latency figures themselves are `benches/tunnel.sh`'s, not a test's.
#[test]
fn small_round_trips_are_answered_one_after_another() {
    let world = World::new(shared(), "fwd-rtt");
    let (echo, ip) = echo_task(&world);
    let (child, address) = forward(&world, &format!("0:{ip}:7000"));
    let mut stream = connect(&address);
    stream.set_nodelay(true).unwrap();
    let request = [7u8; 100];
    let mut reply = [0u8; 100];
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        stream.write_all(&request).unwrap();
        stream.read_exact(&mut reply).unwrap();
        times.push(started.elapsed());
        assert_eq!(reply, request);
    }
    times.sort();
    eprintln!(
        "100-byte round trip: median {:?}, p90 {:?}",
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );
    drop(stream);
    stop_echo(&world, child, &echo);
}

#[test]
fn a_failing_connection_leaves_the_others_working() {
    let world = World::new(shared(), "fwd-isolation");
    let (echo, ip) = echo_task(&world);
    let targets = [format!("0:{ip}:7000"), format!("0:{ip}:7999")];
    let (child, addresses) = forward_all(&world, &[&targets[0], &targets[1]]);
    let (good, refused) = (&addresses[0], &addresses[1]);
    let mut kept = connect(good);
    kept.write_all(b"before").unwrap();
    let mut buffer = [0u8; 6];
    kept.read_exact(&mut buffer).unwrap();
    // A connection the far side refuses ends on its own...
    let mut broken = connect(refused);
    let mut rest = Vec::new();
    let _ = broken.read_to_end(&mut rest);
    // ...and an abruptly dropped one takes nothing with it.
    let dropped = connect(good);
    drop(dropped);
    kept.write_all(b"after!").unwrap();
    kept.read_exact(&mut buffer).unwrap();
    assert_eq!(&buffer, b"after!");
    drop(kept);
    stop_echo(&world, child, &echo);
}

/// The gateway's side of the session dies (it cannot be resumed): the connection it
/// carried is reset at once, not ended cleanly, jump says so, and the forward goes on
/// through a new session.
#[test]
fn a_killed_tunnel_resets_its_connections_and_the_forward_goes_on() {
    let sandbox = Sandbox::start(0.2);
    let world = World::new(&sandbox, "fwd-killed");
    let (echo, ip) = echo_task(&world);
    // The gateway kills the first session three seconds in; later ones are left alone.
    sandbox.ctl(&["gateway-fault", "--kill-after", "3"]);
    let (mut child, address) = forward(&world, &format!("0:{ip}:7000"));
    sandbox.ctl(&["clear"]);
    let mut stream = connect(&address);
    stream.write_all(b"ping").unwrap();
    let mut buffer = [0u8; 4];
    stream.read_exact(&mut buffer).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let err = stream
        .read(&mut buffer)
        .expect_err("a cut tunnel must not look like a clean end");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let mut again = connect(&address);
    again.write_all(b"pong").unwrap();
    again.read_exact(&mut buffer).unwrap();
    assert_eq!(&buffer, b"pong");
    assert!(child.try_wait().unwrap().is_none(), "the forward ended");
    drop(again);
    world.stop_task(&echo);
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("could not be resumed") && stderr(&out).contains("new session"),
        "stderr: {}",
        stderr(&out)
    );
    world.assert_nothing_left();
}

#[test]
fn named_targets_and_bad_targets() {
    let world = World::new(shared(), "fwd-named");
    std::fs::write(
        world.home.path().join("jump.toml"),
        format!("[forwards]\ndb = \"0:rds:{}\"\n", database()),
    )
    .unwrap();
    let (child, address) = forward(&world, "db");
    let out = psql(&address, "select 'named'");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "named");
    stop(&world, child);

    for bad in ["db.internal", "5432:db:99999", "rds:"] {
        let out = world.run(&["forward", bad]);
        expect_exit(&out, 2, "forward target");
    }
    world.assert_nothing_left();
}

/// A service `api` whose task runs a line-based "REPL" on 55555 (each line evaluated, the
/// answer sent back as `=> VALUE`), with ECS Exec enabled, in a group of its own that
/// admits 55555 from the VPC only; returns its task's ARN once it runs and its exec agent
/// is up.
fn repl_service(world: &World) -> String {
    let family = format!("repl-{}", world.cluster);
    let server = "use IO::Socket::INET; $s=IO::Socket::INET->new(LocalPort=>55555,Listen=>16,ReuseAddr=>1) or die; \
                  while($c=$s->accept){ if(!fork){ while(<$c>){ chomp; print $c '=> '.eval($_).\"\\n\" } exit } }";
    world.sandbox.image("repl:1", SERVER);
    world.register_with(
        &family,
        &serde_json::json!([{ "name": "api", "image": "repl:1", "command": ["perl", "-e", server] }]),
        &["--task-role-arn", world.sandbox_var("JUMP_TASK_ROLE")],
    );
    let group = world.sandbox.group_admitting(
        &format!("api-{}", world.cluster),
        55555,
        &world.sandbox.vpc_cidr(),
    );
    world.create_service_in("api", &family, true, &group);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(arn) = world.running_tasks().first() {
            let task = world.describe(arn);
            let agent = &task["containers"][0]["managedAgents"][0]["lastStatus"];
            if task["lastStatus"] == "RUNNING" && agent == "RUNNING" {
                return arn.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the api service's task never ran"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends one line to the REPL at `address` and returns its answer.
fn evaluate(address: &str, expression: &str) -> String {
    let mut stream = connect(address);
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    writeln!(stream, "{expression}").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer.trim_end().to_string()
}

/// Ctrl-C ends a forward that started no task of its own: nothing of jump's is left.
fn stop_forward(world: &World, child: Child) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    assert_eq!(world.state_files(), Vec::<std::path::PathBuf>::new());
}

/// The nREPL case: a service's own port, through the task's own exec agent. No jumphost
/// is started, and the listener is where `--bind` says.
#[test]
fn a_service_s_own_port_is_forwarded_without_a_jumphost() {
    let world = World::new(shared(), "fwd-service");
    let task = repl_service(&world);
    let (child, addresses) = forward_all_with(&world, &["--service", "api"], &["0:55555"]);
    let address = &addresses[0];
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert_eq!(evaluate(address, "6*7"), "=> 42");
    assert_eq!(
        world.running_tasks(),
        vec![task.clone()],
        "a task was started"
    );
    stop_forward(&world, child);

    // `--task` names the task; `--bind` moves the listener off the default address.
    let id = task.rsplit('/').next().unwrap();
    let flags = ["--task", id, "--bind", "127.0.0.2"];
    let (child, addresses) = forward_all_with(&world, &flags, &["0:55555"]);
    let address = &addresses[0];
    let port = address.strip_prefix("127.0.0.2:").expect("bound as asked");
    assert_eq!(evaluate(address, "2**10"), "=> 1024");
    assert!(
        TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err(),
        "the default address listens too"
    );
    stop_forward(&world, child);

    // Another machine (the api task's own network namespace, on the VPC bridge) reaches
    // a listener on 0.0.0.0 through this machine's bridge address, and not the default.
    let (child, addresses) = forward_all_with(&world, &["--task", id], &["0:55555"]);
    let port = addresses[0].rsplit_once(':').unwrap().1.to_string();
    let out = from_another_machine(&world, &task, &port, "5+5");
    assert!(
        !out.status.success(),
        "loopback's listener was reachable from the VPC"
    );
    stop_forward(&world, child);
    let flags = ["--task", id, "--bind", "0.0.0.0"];
    let (child, addresses) = forward_all_with(&world, &flags, &["0:55555"]);
    let port = addresses[0]
        .strip_prefix("0.0.0.0:")
        .expect("bound as asked");
    let out = from_another_machine(&world, &task, port, "5+5");
    assert_eq!(stdout(&out).trim(), "=> 10", "{}", stderr(&out));
    stop_forward(&world, child);
    world.delete_services(&["api"]);
}

/// Sends `expression` from inside the network namespace of sandbox task `arn` (another
/// host in the VPC, as far as the network goes) to `port` on this machine's address on
/// the VPC bridge, and returns what came back.
fn from_another_machine(
    world: &World,
    arn: &str,
    port: &str,
    expression: &str,
) -> std::process::Output {
    let id = arn.rsplit('/').next().unwrap();
    let namespace = format!(
        "jsb-{}-{}",
        world.sandbox_var("JUMP_SANDBOX_INSTANCE"),
        &id[..12]
    );
    let script = format!(
        "gw=$(ip -4 route show default | cut -d' ' -f3); exec 3<>/dev/tcp/$gw/{port} || exit 9; \
         echo '{expression}' >&3; timeout 20 head -n 1 <&3"
    );
    Command::new("ip")
        .args(["netns", "exec", &namespace, "bash", "-c", &script])
        .output()
        .expect("ip netns exec runs")
}

/// `service:NAME` and `task:ID` in a target: the task's private address, through a
/// jumphost, which is stopped afterwards.
#[test]
fn service_and_task_names_resolve_to_their_addresses_through_a_jumphost() {
    let world = World::new(shared(), "fwd-names");
    let task = repl_service(&world);
    let id = task.rsplit('/').next().unwrap().to_string();
    let by_task = format!("0:task:{id}:55555");
    let (child, addresses) = forward_all_with(&world, &[], &["0:service:api:55555", &by_task]);
    assert_eq!(evaluate(&addresses[0], "1+1"), "=> 2");
    assert_eq!(evaluate(&addresses[1], "3*3"), "=> 9");
    stop_forward(&world, child);
    world.delete_services(&["api"]);
    world.assert_nothing_left();
}

#[test]
fn forward_refuses_bad_bind_addresses_and_targets_before_any_aws_call() {
    let world = World::new(shared(), "fwd-bad");
    for (args, needle) in [
        (vec!["--bind", "localhost-ish", "0:rds:x"], "--bind"),
        (
            vec!["--service", "api", "0:rds:orders"],
            "[LOCAL_PORT:]PORT",
        ),
        (vec!["--task", "abc", "70000"], "not a port"),
        (
            vec!["--container", "app", "0:db:5432"],
            "--container goes with",
        ),
        (vec!["0:service:api"], "remote PORT"),
    ] {
        let out = world.run(&[&["forward"], &args[..]].concat());
        expect_exit(&out, 2, needle);
    }
    let out = world.run(&["forward", "--service", "a", "--task", "b", "1"]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    world.assert_nothing_left();
}

/// `jump forward --json FLAGS TARGETS` in the background, as [`forward_all`].
fn forward_all_with(world: &World, flags: &[&str], targets: &[&str]) -> (Child, Vec<String>) {
    let args = [&["forward", "--json"], flags, targets].concat();
    let mut child = world.spawn(&args, Stdio::null());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addresses = Vec::new();
    for _ in targets {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "no ready line: {line:?}; stderr: {}",
                drain_stderr(&mut child)
            )
        });
        addresses.push(ready["local_address"].as_str().unwrap().to_string());
    }
    (child, addresses)
}

/// Three HTTP servers (8080, 8081, 8082) in one task of the cluster, each answering
/// `page-PORT`; returns the task's ARN and private IP.
pub fn web_task(world: &World) -> (String, String) {
    let family = format!("web-{}", world.cluster);
    let server = "use IO::Socket::INET; for $p (8080, 8081, 8082) { if (!fork) { \
                  $s=IO::Socket::INET->new(LocalPort=>$p,Listen=>64,ReuseAddr=>1) or die; \
                  while($c=$s->accept){ if(!fork){ while(<$c>){ last if /^\\r?$/ } $b=\"page-$p\"; \
                  print $c \"HTTP/1.0 200 OK\\r\\nContent-Length: \".length($b).\"\\r\\nConnection: close\\r\\n\\r\\n$b\"; \
                  exit } close $c } } } sleep 3600";
    world.sandbox.image("web:1", SERVER);
    let definition =
        serde_json::json!([{ "name": "web", "image": "web:1", "command": ["perl", "-e", server] }]);
    perl_task(world, &family, &definition)
}

pub fn curl_through(proxy: &str, url: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "30", "--socks5-hostname", proxy, url])
        .output()
        .expect("curl runs")
}

/// The line `jump socks --json` prints once it listens.
pub fn socks_ready(child: &mut Child) -> serde_json::Value {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("no ready line: {line:?}; {}", drain_stderr(child)))
}

/// `jump socks`: each connection reaches the host and port it asks for, through one
/// jumphost; many at once to several targets; a refused one gets a SOCKS failure reply.
#[test]
fn a_socks_proxy_reaches_any_host_and_port_it_is_asked_for() {
    let world = World::new(shared(), "socks");
    let (web, ip) = web_task(&world);
    let mut child = world.spawn(&["socks", "--json", "--port", "0"], Stdio::null());
    let proxy = socks_ready(&mut child)["socks_address"]
        .as_str()
        .unwrap()
        .to_string();

    let out = curl_through(&proxy, &format!("http://{ip}:8080/"));
    assert!(out.status.success(), "curl: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "page-8080");

    let clients: Vec<_> = (0..16)
        .map(|i| {
            let port = 8080 + i % 3;
            let (proxy, url) = (proxy.clone(), format!("http://{ip}:{port}/"));
            std::thread::spawn(move || (port, curl_through(&proxy, &url)))
        })
        .collect();
    for client in clients {
        let (port, out) = client.join().unwrap();
        assert!(out.status.success(), "curl to {port}: {}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("page-{port}"));
    }

    // Nothing listens on port 9 of that task: a SOCKS failure, not a hang or an empty success.
    let mut socks = connect(&proxy);
    socks
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    socks.write_all(&[5, 1, 0]).unwrap();
    let mut answer = [0u8; 2];
    socks.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [5, 0]);
    socks
        .write_all(&[&[5u8, 1, 0, 1][..], &octets, &9u16.to_be_bytes()].concat())
        .unwrap();
    let mut reply = [0u8; 10];
    socks.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 5);
    assert_ne!(
        reply[1], 0,
        "a refused target was reported as connected: {reply:?}"
    );

    world.stop_task(&web);
    stop(&world, child);
}

/// `jump socks SESSION` on an ssh-mode session: OpenSSH's own proxy (`ssh -D`) through
/// the session's pinned key, no Session Manager involved; Ctrl-C ends the proxy and
/// leaves the session running for `jump down`.
#[test]
fn a_socks_proxy_through_an_ssh_session_is_ssh_s_own() {
    let world = World::new(shared(), "socks-ssh");
    let (web, ip) = web_task(&world);
    let session = world.json(&["up", "--detach", "--json"]);
    let id = session["session"].as_str().unwrap().to_string();
    let arn = session["task_arn"].as_str().unwrap().to_string();
    let mut child = world.spawn(&["socks", &id, "--json"], Stdio::null());
    let ready = socks_ready(&mut child);
    assert_eq!(ready["task_arn"], arn.as_str());
    let proxy = ready["socks_address"].as_str().unwrap().to_string();
    for port in [8080, 8081] {
        let out = curl_through(&proxy, &format!("http://{ip}:{port}/"));
        assert!(out.status.success(), "curl: {}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("page-{port}"));
    }
    assert_eq!(crate::up::port_sessions_to(&world, &arn), 0);

    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    assert!(
        curl_through(&proxy, &format!("http://{ip}:8080/"))
            .status
            .code()
            != Some(0),
        "the proxy outlived jump"
    );
    assert!(
        world.running_tasks().contains(&arn),
        "the session was stopped"
    );
    let out = world.run(&["down", &id]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    world.wait_stopped(&arn);
    world.stop_task(&web);
    world.wait_stopped(&web);
    world.assert_nothing_left();
}

/// `jump forward TARGET -- CMD`: a database console in one command. The client runs once
/// the tunnel listens, with its address filled in; its output is all stdout carries, its
/// exit status is jump's, and the jumphost started for it is gone afterwards.
#[test]
fn a_one_shot_client_runs_through_a_fresh_jumphost_and_its_status_is_jump_s() {
    let world = World::new(shared(), "fwd-once");
    let target = format!("0:rds:{}", database());
    let console = |sql: &str| {
        world
            .jump()
            .env("PGPASSWORD", "tunnel-secret")
            .env("PGCONNECT_TIMEOUT", "10")
            .args([
                "forward", &target, "--", "psql", "-h", "{host}", "-p", "{port}",
            ])
            .args(["-U", "app", "-d", "orders", "-At", "-c", sql])
            .output()
            .unwrap()
    };
    let out = console("select 6*7");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "42\n");
    world.assert_nothing_left();
    let out = console("select 1/0");
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("division by zero"),
        "{}",
        stderr(&out)
    );
    world.assert_nothing_left();
}

/// Every target's address is in the command's environment, by `[forwards]` name or by
/// position, and `{host}`/`{port}` are the first target's.
#[test]
fn a_one_shot_command_finds_every_target_in_its_environment() {
    let world = World::new(shared(), "fwd-once-env");
    let (echo, ip) = echo_task(&world);
    std::fs::write(
        world.home.path().join("jump.toml"),
        format!("[forwards]\necho-srv = \"0:{ip}:7000\"\n"),
    )
    .unwrap();
    let script = "test \"$JUMP_FORWARD_ECHO_SRV_PORT\" = \"$1\" && test \"$JUMP_FORWARD_ECHO_SRV_HOST\" = \"$2\" \
                  && printf 'through %s:%s and %s\\n' \"$2\" \"$1\" \"$JUMP_FORWARD_2_PORT\"; exit 3";
    let out = world.run(&[
        "forward",
        "echo-srv",
        &format!("0:{ip}:7000"),
        "--",
        "sh",
        "-c",
        script,
        "sh",
        "{port}",
        "{host}",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with("through 127.0.0.1:"), "{line}");
    let ports: Vec<&str> = line.trim().rsplit(' ').collect();
    assert!(ports[0].parse::<u16>().is_ok(), "{line}");
    world.stop_task(&echo);
    world.assert_nothing_left();
}

/// The command owns the terminal's Ctrl-C while it runs: a console that catches it
/// carries on, and the tunnel under it with it; when it exits, jump tears down.
#[test]
fn ctrl_c_belongs_to_the_one_shot_command_while_it_runs() {
    use std::os::unix::process::CommandExt as _;
    let world = World::new(shared(), "fwd-once-int");
    let (echo, ip) = echo_task(&world);
    let stop_file = world.home.path().join("stop");
    let script = format!(
        "trap 'echo caught' INT; echo ready; while [ ! -e '{}' ]; do sleep 0.1; done; echo done",
        stop_file.display()
    );
    let mut child = world
        .jump()
        .args([
            "forward",
            &format!("0:{ip}:7000"),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0) // jump and its command: the terminal's foreground group
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let group = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the process group of a child we spawned and have not reaped.
    unsafe { libc::kill(-group, libc::SIGINT) };
    assert_eq!(lines.next().unwrap().unwrap(), "caught");
    std::fs::write(&stop_file, "").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "done");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    world.stop_task(&echo);
    world.assert_nothing_left();
}

/// A command that is not there, or `--json` with a command: refused before anything
/// starts.
#[test]
fn a_one_shot_command_that_cannot_run_is_refused_before_any_aws_call() {
    let world = World::new(shared(), "fwd-once-bad");
    let out = world.run(&[
        "forward",
        "0:rds:x",
        "--",
        "no-such-console",
        "-h",
        "{host}",
    ]);
    expect_exit(&out, 2, "cannot run `no-such-console`");
    let out = world.run(&["--json", "forward", "0:rds:x", "--", "sh", "-c", "true"]);
    expect_exit(&out, 2, "--json");
    world.assert_nothing_left();
}
