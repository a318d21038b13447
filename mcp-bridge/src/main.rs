//! `mcp-bridge`: serves a stdio MCP server over Streamable HTTP. Configuration: see
//! `mcp-bridge/README.md`. `mcp-bridge connect <url>`: the reverse, see `connect`.

use gateway_common::config::Source;
use mcp_bridge::Config;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("connect") {
        // `connect`: the stdio side of a remote MCP server; only the process env counts
        // (no .env from wherever the MCP client started us).
        let env = Source::from_pairs(std::env::vars());
        let code = mcp_bridge::connect::main(&args[1..], &env, gateway_common::clock::system());
        std::process::exit(code);
    }
    serve_main()
}

#[actix_web::main]
async fn serve_main() -> anyhow::Result<()> {
    let check_only = std::env::args().any(|a| a == "--check-config");
    let parsed = Source::from_process().and_then(|src| {
        let config = Config::from_source(&src)?;
        let logging = gateway_common::logging::LogConfig::from_source(&src, "info")?;
        Ok((config, logging))
    });
    let (config, logging) = match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if check_only {
        println!("config ok");
        return Ok(());
    }
    logging.init();
    let serving = mcp_bridge::serve(config).await?;
    let handle = serving.handle.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
        handle.stop(true).await;
    });
    serving.wait().await
}
