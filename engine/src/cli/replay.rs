//! `valmetal replay`: publish bundled data to a broker.

use rumqttc::QoS;
use tokio::sync::watch;
use valmetal_engine::replay::{self, ReplayOptions, ReplayStream, datasets};

use super::{Dataset, ReplayArgs, parse_broker};

/// Builds the replay streams of `dataset`, each cut to `limit` frames.
///
/// # Errors
///
/// Returns an error if a bundled data set cannot be read.
pub fn streams(
    dataset: Dataset,
    speed: f64,
    machine_speed: f64,
    limit: Option<usize>,
) -> anyhow::Result<Vec<ReplayStream>> {
    let mut streams = Vec::new();
    if matches!(dataset, Dataset::FeedBins | Dataset::All) {
        let frames = datasets::feed_bins(datasets::FEED_BINS_CSV, limit)?;
        streams.push(ReplayStream {
            name: "feed-bins".into(),
            frames,
            speed,
        });
    }
    if matches!(dataset, Dataset::Machine | Dataset::All) {
        let frames = datasets::machine_temperature(
            datasets::MACHINE_TEMPERATURE_CSV,
            datasets::MACHINE_DEVICE_ID,
            limit,
        )?;
        streams.push(ReplayStream {
            name: "machine-temperature".into(),
            frames,
            speed: machine_speed,
        });
    }
    Ok(streams)
}

/// Publishes the chosen data set and prints what was published.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    for (flag, value) in [
        ("--speed", args.speed),
        ("--machine-speed", args.machine_speed),
    ] {
        if !value.is_finite() || value < 0.0 {
            anyhow::bail!(
                "invalid {flag} {value}; use 0 (as fast as possible) or a positive factor"
            );
        }
    }
    let (host, port) = parse_broker(&args.broker).map_err(anyhow::Error::msg)?;
    let options = ReplayOptions {
        host,
        port,
        topic_prefix: args.topic_prefix,
        client_id: format!("valmetal-replay-{}", std::process::id()),
        qos: if args.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
    };
    let streams = streams(args.dataset, args.speed, args.machine_speed, args.limit)?;
    let (stop, stopped) = watch::channel(false);
    let replay = tokio::spawn(replay::replay(options, streams, stopped));
    let abort = replay.abort_handle();
    tokio::select! {
        result = replay => {
            let summary = result??;
            println!("Published {} frames ({} acknowledged by the broker)", summary.published, summary.acknowledged);
        }
        () = super::serve::shutdown_signal() => {
            let _ = stop.send(true);
            abort.abort();
            println!("Replay interrupted");
        }
    }
    Ok(())
}
