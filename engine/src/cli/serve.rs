//! `valmetal serve`: the engine against an external broker.

use anyhow::Context;
use valmetal_engine::{Config, RunningEngine, bundled_rules};

use super::{ServeArgs, parse_broker};

/// Runs the engine until Ctrl+C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(addr) = args.http_addr {
        config.http.addr = addr;
    }
    if let Some(broker) = &args.broker {
        let (host, port) = parse_broker(broker).map_err(anyhow::Error::msg)?;
        config.mqtt.host = host;
        config.mqtt.port = port;
    }
    if let Some(directory) = args.data_dir {
        config.storage.data_dir = directory;
    }
    let rules =
        bundled_rules::load(config.rules.dir.as_deref()).context("cannot load alarm rules")?;
    if let (Some(directory), 0) = (&config.rules.dir, rules.sets().count()) {
        tracing::warn!(
            rules.dir = %directory.display(),
            "No rule files (*.toml) in the rules directory; no alarms are raised until one is added"
        );
    }
    let engine = RunningEngine::start(&config, rules).await?;
    super::token::print_sign_in(engine.auth(), engine.http_addr(), None)?;
    shutdown_signal().await;
    engine.shutdown().await;
    Ok(())
}

/// Waits for Ctrl+C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "Cannot listen for Ctrl+C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "Cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
