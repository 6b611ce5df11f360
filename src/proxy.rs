//! Corporate proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (and their
//! lower-case forms), honoured as the AWS CLI and the official Session Manager plugin
//! honour them, so that jump works wherever `aws ecs execute-command` does.
//!
//! Two kinds of traffic leave jump. The AWS API goes through the SDK's HTTP client, which
//! takes its proxy from the environment by itself (since behaviour version 2025-08-07).
//! The Session Manager data channel is a WebSocket the SDK does not carry, so [`connect`]
//! opens its TCP stream through an HTTP `CONNECT` tunnel when the same rules say so: the
//! rules are hyper-util's matcher (curl's reading of those variables), the one the SDK's
//! client uses too, so one set of variables governs both and `NO_PROXY` exempts both alike.
//! Only `CONNECT` is hand-written here (a request line, headers, a status line): the
//! WebSocket library has no proxy support of its own.

use std::time::Duration;

use hyper_util::client::proxy::matcher::Matcher;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Uri;

/// A proxy's answer to `CONNECT` ends within this many bytes.
const MAX_ANSWER: usize = 16 * 1024;
/// How long a proxy may take to answer `CONNECT`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ProxyError {
    #[error("cannot reach the proxy {proxy} (from {variable}): {source}")]
    Unreachable {
        proxy: String,
        variable: &'static str,
        source: std::io::Error,
    },
    #[error("the proxy {proxy} refused to open a tunnel to {target}: {status}")]
    Refused {
        proxy: String,
        target: String,
        status: String,
    },
    #[error("the proxy {proxy} gave no readable answer to CONNECT {target}: {why}")]
    Garbled {
        proxy: String,
        target: String,
        why: String,
    },
    #[error(
        "the proxy {proxy} is https://, which jump cannot tunnel through: give an http:// \
         proxy (the tunnel itself is still TLS to AWS)"
    )]
    TlsProxy { proxy: String },
}

/// A TCP stream to `host:port`, for a WebSocket URL of `scheme` (`ws` or `wss`): straight
/// there, or through the proxy the environment names for it.
pub async fn connect(scheme: &str, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let web_scheme = if scheme == "wss" { "https" } else { "http" };
    let destination: Uri = format!("{web_scheme}://{host}:{port}/").parse().map_err(
        |e: tokio_tungstenite::tungstenite::http::uri::InvalidUri| {
            ConnectError::Direct(std::io::Error::other(e.to_string()))
        },
    )?;
    let Some(intercept) = Matcher::from_env().intercept(&destination) else {
        return TcpStream::connect((host, port))
            .await
            .map_err(ConnectError::Direct);
    };
    let variable = if web_scheme == "https" {
        "HTTPS_PROXY"
    } else {
        "HTTP_PROXY"
    };
    let proxy = intercept.uri();
    // Without any user name and password the URL may hold.
    let shown = format!(
        "{}://{}",
        proxy.scheme_str().unwrap_or("http"),
        proxy
            .authority()
            .and_then(|a| a.as_str().rsplit('@').next())
            .unwrap_or_default()
    );
    if proxy.scheme_str() == Some("https") {
        return Err(ProxyError::TlsProxy { proxy: shown }.into());
    }
    let proxy_host = proxy.host().unwrap_or_default();
    let proxy_port = proxy.port_u16().unwrap_or(80);
    let mut stream = TcpStream::connect((proxy_host, proxy_port))
        .await
        .map_err(|source| ProxyError::Unreachable {
            proxy: shown.clone(),
            variable,
            source,
        })?;
    let target = format!("{host}:{port}");
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = intercept.basic_auth().and_then(|v| v.to_str().ok()) {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    let garbled = |why: String| ProxyError::Garbled {
        proxy: shown.clone(),
        target: target.clone(),
        why,
    };
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| garbled(e.to_string()))?;
    let head = tokio::time::timeout(ANSWER_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| garbled(format!("no answer within {}s", ANSWER_TIMEOUT.as_secs())))?
        .map_err(garbled)?;
    let status = head.lines().next().unwrap_or_default().to_string();
    if status_code(&status) != Some(200) {
        return Err(ProxyError::Refused {
            proxy: shown,
            target,
            status,
        }
        .into());
    }
    tracing::debug!(proxy = %shown, %target, "tunnel open");
    Ok(stream)
}

/// Why no stream was opened: directly, or through the proxy.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("{0}")]
    Direct(std::io::Error),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// The proxy's answer up to the blank line that ends it, read a byte at a time so that
/// nothing after it (the start of the tunnel) is taken.
async fn read_head(stream: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_ANSWER {
            return Err(format!("an answer longer than {MAX_ANSWER} bytes"));
        }
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await {
            Ok(0) => return Err("it closed the connection".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    String::from_utf8(head).map_err(|_| "an answer that is not text".into())
}

/// The status code of an HTTP status line (`HTTP/1.1 200 Connection established`).
fn status_code(line: &str) -> Option<u16> {
    let mut words = line.split_whitespace();
    let version = words.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn status_lines_are_read_as_proxies_write_them() {
        assert_eq!(
            status_code("HTTP/1.1 200 Connection established"),
            Some(200)
        );
        assert_eq!(status_code("HTTP/1.0 200"), Some(200));
        assert_eq!(
            status_code("HTTP/1.1 407 Proxy Authentication Required"),
            Some(407)
        );
        assert_eq!(status_code("SSH-2.0-OpenSSH_9.2"), None);
        assert_eq!(status_code(""), None);
    }
}
