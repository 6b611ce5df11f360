//! `jump socks [SESSION]`: a local SOCKS5 proxy into the VPC, through a session's task or
//! a jumphost started for as long as it runs. The bind address and the port are checked
//! before the first AWS call.

use super::forward::bind_address;
use super::{check_port_free, cluster, layers, up, Context, Existing};
use crate::aws::Clients;
use crate::cli::{ClusterArgs, GlobalArgs, SocksArgs};
use crate::connect::socks::{self, Proxy};
use crate::connect::target::ExecTarget;
use crate::exit::Exit;
use crate::output::Output;
use crate::session::lifecycle::Then;
use crate::session::SessionId;

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
    match session {
        None => up::run_plan(ctx, layers.into_plan()?, Then::Socks(proxy)).await,
        Some(id) => {
            let cluster = cluster(&ClusterArgs {
                cluster: args.settings.cluster.clone(),
                config: args.config.clone(),
            })?;
            let work = through_session(ctx.global.clone(), ctx.output, cluster, id, proxy);
            ctx.supervised(work).await
        }
    }
}

async fn through_session(
    global: GlobalArgs,
    output: Output,
    cluster: String,
    id: SessionId,
    proxy: Proxy,
) -> anyhow::Result<Exit> {
    let clients = Clients::new(global.profile.as_deref(), global.region.as_deref()).await?;
    let task_arn = Existing::Session(id)
        .task_arn(&clients, &cluster, None)
        .await?;
    let target = ExecTarget {
        cluster,
        task_arn,
        container: None,
    };
    socks::run(&clients, &target, &proxy, output).await
}
