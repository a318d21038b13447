//! `mcp-verifier`: parse the config (exit 2 with the one-line error), serve.
//! `--check-config` validates and exits.

use gateway_common::config::Source;
use mcp_verifier::VerifierConfig;

fn main() -> std::process::ExitCode {
    let check_only = std::env::args().skip(1).any(|a| a == "--check-config");
    let parsed = Source::from_process().and_then(|src| {
        let config = VerifierConfig::from_source(&src)?;
        let logging = gateway_common::logging::LogConfig::from_source(&src, "info")?;
        Ok((config, logging))
    });
    let (config, logging) = match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    if check_only {
        println!("config ok: {} service(s)", config.services.len());
        return std::process::ExitCode::SUCCESS;
    }
    logging.init();
    match actix_web::rt::System::new().block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-verifier: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: VerifierConfig) -> anyhow::Result<()> {
    let running = mcp_verifier::serve(config).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}
