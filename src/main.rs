//! `jump`: a short-lived SSH jumphost on ECS Fargate that always cleans up after itself.
//!
//! `main` only parses arguments, sets up logging and the runtime, and turns the result
//! into an exit code; see [`exit::Exit`] for the table of codes. The lifecycle lives in
//! `plan` → `session::provision` → `session::wait` → `connect` → `session::guard`.

mod arn;
mod aws;
mod cli;
mod commands;
mod connect;
mod doctor;
mod exit;
mod output;
mod pick;
mod plan;
mod policy_sim;
mod prereq;
mod proxy;
mod retry;
mod session;
mod signals;
mod ssm;
mod task;
mod template;
mod vpc;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version exit 0; usage errors exit 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = anyhow::Error::from(err).context("cannot start the async runtime");
            output::Output::new(cli.global.json).error(&err, exit::Exit::Internal.code());
            return ExitCode::from(exit::Exit::Internal.code());
        }
    };
    let exit = runtime.block_on(commands::run(cli));
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::from(exit.code())
}

/// Crates whose debug and trace output carries secrets: request and response bodies and
/// URLs with the StartSession token, signed headers, every WebSocket frame of a session,
/// TLS records. They stay at `info` however verbose jump is asked to be (`RUST_LOG`
/// included), unless `JUMP_UNSAFE_TRACE=1` says the output will not be shared.
const SECRET_BEARING: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
    "tokio_tungstenite",
    "tungstenite",
];

/// Diagnostics on stderr: warnings by default, more with each `-v`; `RUST_LOG` wins, but
/// never over the cap on [`SECRET_BEARING`] crates.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "jump=info,warn",
        2 => "jump=debug,info",
        _ => "trace",
    };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let unsafe_trace = std::env::var("JUMP_UNSAFE_TRACE").is_ok_and(|v| v == "1");
    if !unsafe_trace {
        for target in SECRET_BEARING {
            if let Ok(cap) = format!("{target}=info").parse() {
                filter = filter.add_directive(cap);
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::color_enabled())
        .init();
    if unsafe_trace {
        tracing::warn!(
            "JUMP_UNSAFE_TRACE=1: this output can hold session tokens, signed requests and \
             session data; do not share it"
        );
    }
}
