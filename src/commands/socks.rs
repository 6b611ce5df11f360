//! `jump socks [SESSION]`: a local SOCKS5 proxy into the VPC, through a session's task or
//! a jumphost started for as long as it runs. The bind address and the port are checked
//! before the first AWS call.
//!
//! A session in ssh mode started on this machine is proxied by OpenSSH itself (`ssh -D`,
//! with the session's pinned key): its task needs no ECS Exec for that. Every other
//! session, and the jumphost started without one, goes through Session Manager port
//! sessions (`connect::socks`).

use std::net::SocketAddr;

use super::choose::chosen_session;
use super::forward::bind_address;
use super::{check_port_free, cluster, layers, up, Context, Existing};
use crate::aws::Clients;
use crate::cli::{ClusterArgs, SocksArgs};
use crate::connect::socks::{self, Proxy};
use crate::connect::ssh::{self, Target};
use crate::connect::target::ExecTarget;
use crate::exit::Exit;
use crate::output::Output;
use crate::session::lifecycle::{ssh_target, Then};
use crate::session::record::SessionRecord;
use crate::session::SessionId;
use crate::signals::ChildPid;

pub async fn run(ctx: &mut Context, args: SocksArgs) -> anyhow::Result<Exit> {
    let session: Option<SessionId> = args.session.as_deref().map(str::parse).transpose()?;
    let bind = bind_address(args.bind.as_deref())?;
    check_port_free(&bind, args.port, "port", "pick another with --port")?;
    let proxy = Proxy {
        bind,
        port: args.port,
    };
    let mut flags = args.settings.pairs();
    flags.push(("mode", "exec".to_string()));
    let layers = layers(args.config.as_deref(), &flags)?;
    if session.is_none() && args.chosen.is_none() {
        return up::run_plan(ctx, layers.into_plan()?, Then::Socks(proxy)).await;
    }
    let cluster = cluster(&ClusterArgs {
        cluster: args.settings.cluster.clone(),
        config: args.config.clone(),
    })?;
    let (global, output, child) = (ctx.global.clone(), ctx.output, ctx.child.clone());
    let work = async move {
        let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
        let id = match session {
            Some(id) => id,
            None => {
                let named = args.chosen.as_deref().filter(|n| !n.is_empty());
                let instead = "jump socks SESSION";
                chosen_session(named, &clients, &cluster, output, instead, |_| true).await?
            }
        };
        // An ssh-mode session started here: OpenSSH proxies with the session's key.
        if let Some((dir, record)) = SessionRecord::local(&id)?.filter(|(_, r)| r.mode == "ssh") {
            let target = ssh_target(&record, &dir, global.profile.as_deref())?;
            return over_ssh(output, child, target, record, proxy).await;
        }
        through_session(&clients, output, cluster, id, proxy).await
    };
    ctx.supervised(work).await
}

/// `ssh -D` on the proxy's address, announced as the Session Manager proxy is.
async fn over_ssh(
    output: Output,
    child: ChildPid,
    target: Target,
    record: SessionRecord,
    proxy: Proxy,
) -> anyhow::Result<Exit> {
    let local = SocketAddr::new(proxy.bind.first_address(), free_port(&proxy).await?);
    let ready = || socks::announce(output, &proxy.bind, local, &record.task_arn);
    let code = ssh::socks(&target, local, &child, ready).await?;
    Ok(Exit::Remote(code))
}

/// The port asked for, or one the system has free now (ssh -D cannot pick its own).
async fn free_port(proxy: &Proxy) -> anyhow::Result<u16> {
    if proxy.port != 0 {
        return Ok(proxy.port);
    }
    let probe = tokio::net::TcpListener::bind((proxy.bind.first_address(), 0)).await?;
    Ok(probe.local_addr()?.port())
}

async fn through_session(
    clients: &Clients,
    output: Output,
    cluster: String,
    id: SessionId,
    proxy: Proxy,
) -> anyhow::Result<Exit> {
    let task_arn = Existing::Session(id)
        .task_arn(clients, &cluster, None)
        .await?;
    let target = ExecTarget {
        cluster,
        task_arn,
        container: None,
    };
    socks::run(clients, &target, &proxy, output).await
}
