//! `mcp-authz`: parse the configuration, optionally only check it, serve.

// glibc malloc showed up at ~8% of the token endpoint's CPU under load
// (authz-server/examples/bench_tokens.rs); mimalloc is a drop-in, well-kept allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gateway_common::config::Source;
use mcp_authz::Config;

fn parse() -> (Config, gateway_common::logging::LogConfig) {
    let parsed = Source::from_process().and_then(|src| {
        let config = Config::from_source(&src)?;
        gateway_store::config::StoreConfig::from_source(&src)?;
        mcp_authz::http::rate_limit::Limits::from_source(&src)?;
        let logging = gateway_common::logging::LogConfig::from_source(&src, "info")?;
        Ok((config, logging))
    });
    match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let (config, logging) = parse();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--check-config") {
        println!("configuration ok: issuer {}", config.issuer);
        return Ok(());
    }
    logging.init();
    let store = match gateway_store::config::open_from_config(&config.source).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if args.first().map(String::as_str) == Some("rotate-keys") {
        // Rotation on command: running instances pick the new key up within a minute,
        // and keep publishing the previous one for verification.
        let keys =
            mcp_authz::keys::KeyManager::init(store, &config, gateway_common::clock::system())
                .await?;
        let kid = keys.rotate().await?;
        println!("rotated: new signing key {kid}");
        return Ok(());
    }
    let (_, server) = mcp_authz::serve_with(config, store, gateway_common::clock::system()).await?;
    server.await?;
    Ok(())
}
