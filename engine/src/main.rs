//! The `valmetal` binary.

mod cli;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, RulesCommand};

/// mimalloc serves the many small allocations of each frame (payload, frames, records) with
/// less CPU than glibc's allocator, which took about 15 % of the direct feed's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log filter used when `RUST_LOG` is not set: the engine at info, chatty dependencies at warn.
/// The embedded broker is silenced because it logs every client disconnect as an error;
/// `RUST_LOG=info,rumqttd=info` shows it.
const DEFAULT_LOG_FILTER: &str = "info,rumqttd=off,rumqttc=warn,sqlx=warn";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let result = match cli.command {
        Command::Rules(RulesCommand::Check { paths }) => cli::rules::check(&paths),
        Command::Rules(RulesCommand::Backtest(args)) => cli::rules::backtest(&args),
        Command::Token(args) => cli::token::run(&args),
        command => run_async(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_async(command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Serve(args) => cli::serve::run(args).await,
            Command::Demo(args) => cli::demo::run(args).await,
            Command::Replay(args) => cli::replay::run(args).await,
            Command::Rules(_) | Command::Token(_) => {
                unreachable!("rules and token commands run without a runtime")
            }
        }
    })
}
