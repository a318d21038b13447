//! The real reverse proxies ([`gateway_testkit::proxy`]) in front of the
//! gateway's own services ([`crate::stack`]).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
pub use gateway_testkit::proxy::{render, Proxy, ProxyKind, Upstreams};

/// The services for a proxy origin, and `kind` in front of them: the proxy's
/// port must be in the services' configuration (issuer, resource) before the
/// proxy binds it, so a port taken in between starts both again on another.
pub async fn start_behind(
    kind: ProxyKind,
    spec: crate::stack::StackSpec,
    extra: &[(&str, &str)],
) -> anyhow::Result<(crate::stack::Stack, Proxy)> {
    gateway_testkit::retry_on_port_taken(|port| async move {
        let stack = crate::stack::Stack::start_with(spec, port, extra)
            .await
            .context("starting the services")?;
        let up = Upstreams {
            authz: stack.authz_addrs(),
            verifiers: stack.verifier_addrs(),
            mcp: stack.bridge.addr,
        };
        match Proxy::start(kind, port, &up).await {
            Ok(proxy) => {
                wait_for_authz(&proxy).await?;
                Ok((stack, proxy))
            }
            Err(e) => {
                stack.stop().await;
                Err(e)
            }
        }
    })
    .await
}

/// Polls until the authorization server metadata comes through the proxy.
async fn wait_for_authz(proxy: &Proxy) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("{}/.well-known/oauth-authorization-server", proxy.origin());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(&url).send().await {
            if r.status() == 200 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} never routed {url} to the authz-server:\n{}",
                proxy.kind.name(),
                proxy.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
