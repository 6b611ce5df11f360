//! Behind a corporate proxy: jump sends the AWS API and the Session Manager WebSocket
//! through the proxy the environment names (`HTTP_PROXY`, `HTTPS_PROXY`), leaves out what
//! `NO_PROXY` exempts, and says so plainly when the proxy refuses the tunnel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::support::{shared, stderr, stdout, World};

/// A local HTTP proxy that records what went through it: `HTTP host:port` for each
/// request forwarded in absolute form, `CONNECT host:port` for each tunnel opened (or
/// refused, with `refuse_connect`).
struct Proxy {
    address: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(refuse_connect: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, &log, refuse_connect);
                });
            }
        });
        Proxy { address, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(client: TcpStream, log: &Mutex<Vec<String>>, refuse_connect: bool) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header == "\r\n" || header.is_empty() {
            break;
        }
        headers.push(header);
    }
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let mut client = client;
    if method == "CONNECT" {
        log.lock().unwrap().push(format!("CONNECT {target}"));
        if refuse_connect {
            client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")?;
            return Ok(());
        }
        let upstream = TcpStream::connect(target)?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        return pipe(reader, client, upstream);
    }
    // An absolute-form request: forwarded once, in origin form, and the connection closed.
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    log.lock().unwrap().push(format!("HTTP {authority}"));
    let mut upstream = TcpStream::connect(authority)?;
    let version = words.next().unwrap_or("HTTP/1.1");
    let path = if path.is_empty() { "/" } else { path };
    let mut head = format!("{method} {path} {version}\r\n");
    let mut length = 0usize;
    for header in headers {
        let lower = header.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("proxy-") {
            continue;
        }
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&header);
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&body)?;
    std::io::copy(&mut upstream, &mut client)?;
    client.shutdown(Shutdown::Both)
}

/// Both ways until either side closes.
fn pipe(
    mut from_client: BufReader<TcpStream>,
    mut client: TcpStream,
    upstream: TcpStream,
) -> std::io::Result<()> {
    let mut up_write = upstream.try_clone()?;
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut up_write);
        let _ = up_write.shutdown(Shutdown::Write);
    });
    let mut up_read = upstream;
    let _ = std::io::copy(&mut up_read, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = forward.join();
    Ok(())
}

/// A user whose environment names `proxy` for both HTTP and HTTPS.
fn behind<'a>(proxy: &Proxy, name: &str) -> World<'a> {
    World::new(shared(), name)
        .with_env("HTTP_PROXY", &proxy.url())
        .with_env("HTTPS_PROXY", &proxy.url())
}

fn sandbox_port(world: &World) -> String {
    world
        .sandbox
        .var("AWS_ENDPOINT_URL")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string()
}

/// Everything goes through the proxy: the API calls as proxied HTTP requests, the ECS
/// Exec data channel as a CONNECT tunnel, and the session works as it does without one.
#[test]
fn behind_a_proxy_the_api_and_the_data_channel_both_go_through_it() {
    let proxy = Proxy::start(false);
    let world = behind(&proxy, "proxy");
    let out = world.run(&[
        "up",
        "--mode",
        "exec",
        "--",
        "sh",
        "-c",
        "echo through; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "through\n");
    let seen = proxy.seen();
    let api = format!("HTTP 127.0.0.1:{}", sandbox_port(&world));
    assert!(
        seen.contains(&api),
        "no API call went through the proxy: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.starts_with("CONNECT 127.0.0.1:")),
        "the data channel did not go through the proxy: {seen:?}"
    );
    world.assert_nothing_left();
}

/// `NO_PROXY` exempts a host from both kinds of traffic.
#[test]
fn no_proxy_exempts_a_host_from_the_api_and_the_data_channel() {
    let proxy = Proxy::start(false);
    let world = behind(&proxy, "noproxy").with_env("NO_PROXY", "127.0.0.1");
    let out = world.run(&["up", "--mode", "exec", "--", "echo", "direct"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "direct\n");
    assert_eq!(proxy.seen(), Vec::<String>::new());
    world.assert_nothing_left();
}

/// A proxy that allows API calls but refuses the data channel's tunnel: jump names the
/// proxy and its answer, and still stops the task.
#[test]
fn a_proxy_that_refuses_the_tunnel_is_named_and_the_task_still_stopped() {
    let proxy = Proxy::start(true);
    let world = behind(&proxy, "proxy-deny");
    let out = world.run(&["up", "--mode", "exec", "--", "echo", "should-not-run"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!stdout(&out).contains("should-not-run"));
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "the proxy {} refused to open a tunnel",
            proxy.url()
        )) && said.contains("403 Forbidden"),
        "{said}"
    );
    world.assert_nothing_left();
}
