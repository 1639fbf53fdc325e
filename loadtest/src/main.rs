//! `valmetal-loadtest`: see the library documentation and `loadtest/README.md`.

use clap::Parser;
use valmetal_loadtest::{Args, run};

/// The same allocator as the `valmetal` binary, so the engine run inside the harness costs
/// what a deployed engine does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttc=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = run(&args, command).await?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    }
    print!("{}", report.table());
    if !report.passed() {
        anyhow::bail!("a correctness check failed; see the checks above");
    }
    Ok(())
}
