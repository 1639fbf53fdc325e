//! `valmetal-loadtest`: replays the bundled feed-bin data over MQTT as fast as the broker takes
//! it, repeated with shifted times, and reports the publish rate achieved.
//!
//! Run the engine (`valmetal serve` or `valmetal demo`) against the same broker to load it.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rumqttc::QoS;
use tokio::sync::watch;
use valmetal_engine::replay::{self, ReplayFrame, ReplayOptions, ReplayStream, datasets};

/// Replay load against an MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "valmetal-loadtest", version, about)]
struct Args {
    /// Broker as HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Topic prefix the engine subscribes to.
    #[arg(long, default_value = "valmetal/equipment")]
    topic_prefix: String,
    /// Times the 27,153 feed-bin visits are replayed; each pass is shifted two days later.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    passes: u32,
    /// MQTT QoS of the publishes, 0 or 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
}

/// Length of the bundled feed-bin recording, by which each pass is shifted.
const PASS_SHIFT_MS: i64 = 2 * 24 * 60 * 60 * 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args = Args::parse();
    let (host, port) = args
        .broker
        .rsplit_once(':')
        .context("--broker must be HOST:PORT")?;
    let port: u16 = port
        .parse()
        .context("--broker port must be a number from 1 to 65535")?;
    let frames = passes(
        &datasets::feed_bins(datasets::FEED_BINS_CSV, None)?,
        args.passes,
    );
    let options = ReplayOptions {
        host: host.to_owned(),
        port,
        topic_prefix: args.topic_prefix,
        client_id: format!("valmetal-loadtest-{}", std::process::id()),
        qos: if args.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
    };
    let (_stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let stream = ReplayStream {
        name: "feed-bins".into(),
        frames,
        speed: 0.0,
    };
    let summary = replay::replay(options, vec![stream], stopped).await?;
    report(summary.published, summary.acknowledged, started.elapsed());
    Ok(())
}

fn passes(frames: &[ReplayFrame], count: u32) -> Vec<ReplayFrame> {
    let per_device = frames
        .iter()
        .filter(|frame| frame.device == frames[0].device)
        .count() as u64;
    (0..count)
        .flat_map(|pass| {
            frames.iter().map(move |frame| ReplayFrame {
                ts: frame.ts + i64::from(pass) * PASS_SHIFT_MS,
                seq: frame.seq + u64::from(pass) * per_device.max(1) * 1000,
                ..frame.clone()
            })
        })
        .collect()
}

#[allow(clippy::print_stdout, reason = "the report is the program's output")]
fn report(published: u64, acknowledged: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    println!("published     {published} frames");
    println!("acknowledged  {acknowledged} frames");
    println!("elapsed       {seconds:.2} s");
    println!("rate          {:.0} frames/s", published as f64 / seconds);
}
