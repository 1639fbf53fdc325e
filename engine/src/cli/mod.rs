//! Command-line interface of the `valmetal` binary.

pub mod demo;
pub mod demo_equipment;
pub mod replay;
pub mod rules;
pub mod serve;
pub mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The valmetal telemetry engine for barn equipment.
#[derive(Debug, Parser)]
#[command(name = "valmetal", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine against an external MQTT broker, configured by a TOML file.
    Serve(ServeArgs),
    /// Run everything in one process: an embedded MQTT broker, the engine, SQLite, and a
    /// replay of the bundled real barn data. Prints the dashboard URL.
    Demo(DemoArgs),
    /// Publish a bundled data set to an MQTT broker, paced by its recorded times.
    Replay(ReplayArgs),
    /// Work with alarm rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print a sign-in token of the engine's local issuer (`auth.mode = "local"`), for the
    /// dashboard (`http://HOST:PORT/#token=TOKEN`) or the API (`Authorization: Bearer`).
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Role: admin, operator or farm_viewer.
    #[arg(long, default_value = "admin")]
    pub role: String,
    /// A farm the token grants; repeat for several. Required except for admins.
    #[arg(long)]
    pub farm: Vec<String>,
    /// The user's name, recorded on their actions. Default: the role.
    #[arg(long)]
    pub name: Option<String>,
    /// Configuration file (TOML), for `auth.token_ttl` and `storage.data_dir`.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory whose key signs the token; overrides `storage.data_dir`. Use the
    /// engine's own: `.valmetal` for `serve`, `.valmetal/demo` for `demo`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); `VALMETAL_*` variables and these flags override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// HTTP listen address (dashboard, /ws, API, metrics); overrides `http.addr`.
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Broker as HOST:PORT; overrides `mqtt.host` and `mqtt.port`.
    #[arg(long)]
    pub broker: Option<String>,
    /// Directory of the SQLite database, the journal and the dead-letter files; overrides
    /// `storage.data_dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// HTTP listen address of the dashboard, WebSocket and API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Listen address of the embedded MQTT broker.
    #[arg(long, default_value = "127.0.0.1:11883")]
    pub mqtt_addr: SocketAddr,
    /// Directory of the SQLite database, the journal and the dead-letter files.
    #[arg(long, default_value = ".valmetal/demo")]
    pub data_dir: PathBuf,
    /// Replay speed of the feed-bin data: device seconds per real second. The default plays
    /// the two recorded days in under five minutes.
    #[arg(long, default_value_t = 600.0)]
    pub speed: f64,
    /// Replay speed of the machine-temperature series; the default plays its 79 days in about
    /// the same time as the feed bins.
    #[arg(long, default_value_t = 24_000.0)]
    pub machine_speed: f64,
    /// Stop once the replay has finished and print a summary, instead of running until Ctrl+C.
    #[arg(long)]
    pub exit_after_replay: bool,
    /// Start from the devices, telemetry and alarms the previous run stored. By default each
    /// run empties them first, because the replay sends the same recorded times again, and
    /// frames older than what a device already has change nothing.
    #[arg(long)]
    pub keep_state: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    /// The ODRC feed-bin visits (100 devices).
    FeedBins,
    /// The NAB machine temperature series (one device).
    Machine,
    /// Both, side by side.
    All,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Broker as HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// Topic prefix; frames go to `{prefix}/{device_id}/telemetry`.
    #[arg(long, default_value = "valmetal/equipment")]
    pub topic_prefix: String,
    /// Bundled data set to publish.
    #[arg(long, value_enum, default_value = "all")]
    pub dataset: Dataset,
    /// Replay speed of the feed-bin data; 0 publishes as fast as the broker accepts.
    #[arg(long, default_value_t = 600.0)]
    pub speed: f64,
    /// Replay speed of the machine-temperature series; 0 publishes as fast as possible.
    #[arg(long, default_value_t = 24_000.0)]
    pub machine_speed: f64,
    /// Publish at most this many frames of each data set.
    #[arg(long)]
    pub limit: Option<usize>,
    /// MQTT QoS of the publishes, 0 or 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate rule files and print a summary of their rules.
    Check {
        /// Rule files (TOML), or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Replay recorded telemetry from a CSV file through a rule file and print the alarms it
    /// would have raised and cleared, with their times.
    Backtest(BacktestArgs),
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The rule file (TOML).
    pub rules: PathBuf,
    /// Recorded telemetry: one row per frame, a time column, and a column per key.
    #[arg(long)]
    pub data: PathBuf,
    /// Device id of every row, or the prefix of ids read from --device-column.
    #[arg(long, default_value = "device")]
    pub device: String,
    /// Column that names each row's device.
    #[arg(long)]
    pub device_column: Option<String>,
    /// Zero-pads numeric values of --device-column to this many digits (3 matches the
    /// replay's feedbin-006); 0 keeps them as they are.
    #[arg(long, default_value_t = 0)]
    pub device_width: usize,
    /// Column of the frame time (RFC 3339, `YYYY-MM-DD HH:MM:SS` as UTC, or epoch ms); found
    /// automatically when it is named ts, timestamp, time, end_time or date_time.
    #[arg(long)]
    pub time_column: Option<String>,
    /// Renames a column to a key, as COLUMN=KEY; repeatable.
    #[arg(long = "rename", value_name = "COLUMN=KEY")]
    pub renames: Vec<String>,
    /// Columns to leave out, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Farm of the devices, so the rule file's overrides for that farm apply.
    #[arg(long)]
    pub farm: Option<String>,
    /// Print the transitions as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Splits `HOST:PORT`.
///
/// # Errors
///
/// Returns a message naming the value and the expected form.
pub fn parse_broker(text: &str) -> Result<(String, u16), String> {
    let invalid = || format!("invalid broker `{text}`; use HOST:PORT, e.g. 127.0.0.1:1883");
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    if host.is_empty() || port == 0 {
        return Err(invalid());
    }
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_broker_splits_host_and_port() {
        assert_eq!(
            parse_broker("127.0.0.1:1883"),
            Ok(("127.0.0.1".into(), 1883))
        );
        assert_eq!(parse_broker("[::1]:1883"), Ok(("::1".into(), 1883)));
        assert!(parse_broker("localhost").is_err());
        assert!(parse_broker(":1883").is_err());
        assert!(parse_broker("host:0").is_err());
        assert!(
            parse_broker("host:99999")
                .unwrap_err()
                .contains("HOST:PORT")
        );
    }
}
