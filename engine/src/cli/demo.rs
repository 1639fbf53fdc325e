//! `valmetal demo`: embedded broker, engine and replay of the bundled real data in one
//! process, with nothing else to install.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use rumqttc::QoS;
use tokio::sync::watch;
use tracing::info;
use valmetal_actors::rules::{AlarmState, RuleBook};
use valmetal_engine::replay::{self, ReplayOptions, ReplaySummary};
use valmetal_engine::{Config, RunningEngine, broker, bundled_rules};

use super::{Dataset, DemoArgs};

/// Runs the demo until Ctrl+C, or until the replay ends with `--exit-after-replay`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    for (flag, value) in [
        ("--speed", args.speed),
        ("--machine-speed", args.machine_speed),
    ] {
        if !value.is_finite() || value <= 0.0 {
            anyhow::bail!("invalid {flag} {value}; use a positive factor such as 600");
        }
    }
    let mut config = Config::default();
    config.http.addr = args.http_addr;
    config.storage.data_dir = args.data_dir.clone();
    config.mqtt.host = args.mqtt_addr.ip().to_string();
    config.mqtt.port = args.mqtt_addr.port();
    config.mqtt.client_id = "valmetal-demo-engine".into();
    config.validate()?;

    broker::start(args.mqtt_addr, config.mqtt.max_payload_bytes)?;
    let rules = demo_rules(args.speed, args.machine_speed)?;
    let engine = RunningEngine::start(&config, rules).await?;
    println!();
    println!("  Dashboard:   http://{}/", browsable(engine.http_addr()));
    println!(
        "  MQTT broker: {} (topics {}/{{device_id}}/telemetry)",
        args.mqtt_addr, config.mqtt.topic_prefix
    );
    println!(
        "  Replaying 100 ODRC feed bins at {}x and the NAB machine at {}x. Ctrl+C stops.",
        args.speed, args.machine_speed
    );
    println!();

    let options = ReplayOptions {
        host: config.mqtt.host.clone(),
        port: config.mqtt.port,
        topic_prefix: config.mqtt.topic_prefix.clone(),
        client_id: "valmetal-demo-replay".into(),
        qos: QoS::AtLeastOnce,
    };
    let streams = super::replay::streams(Dataset::All, args.speed, args.machine_speed, None)?;
    let (stop, stopped) = watch::channel(false);
    let mut replay = tokio::spawn(replay::replay(options, streams, stopped));

    let finished = tokio::select! {
        result = &mut replay => Some(result.context("replay task failed")??),
        () = super::serve::shutdown_signal() => None,
    };
    if let Some(summary) = &finished {
        print_summary(&engine, summary).await;
        if !args.exit_after_replay {
            info!("Replay finished; the engine keeps running until Ctrl+C");
            super::serve::shutdown_signal().await;
        }
    }
    let _ = stop.send(true);
    engine.shutdown().await;
    Ok(())
}

/// Returns the bundled rules with time limits scaled to each data set's replay speed, so that
/// an offline rule means device time, as it does in a live barn.
fn demo_rules(feed_bin_speed: f64, machine_speed: f64) -> anyhow::Result<RuleBook> {
    let book = bundled_rules::bundled()?;
    let scaled = book.sets().map(|set| match &*set.device_type {
        "feed_bin" => set.scaled_for_replay(feed_bin_speed),
        "machine" => set.scaled_for_replay(machine_speed),
        _ => (**set).clone(),
    });
    Ok(RuleBook::from_sets(scaled.collect::<Vec<_>>()))
}

async fn print_summary(engine: &RunningEngine, summary: &ReplaySummary) {
    // Frames published last may still be on their way through the broker and the actors.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let states = engine.hub().device_states(None);
    let applied: u64 = states.iter().map(|state| state.version).sum();
    let alarms = states.iter().flat_map(|state| state.alarms.iter());
    let active = alarms
        .clone()
        .filter(|alarm| alarm.state == AlarmState::Active)
        .count();
    let unacknowledged = alarms.filter(|alarm| alarm.acknowledged.is_none()).count();
    let transitions = engine
        .history()
        .transition_counts()
        .await
        .unwrap_or_default();
    println!();
    println!(
        "  Replay finished: {} frames published, {} acknowledged by the broker.",
        summary.published, summary.acknowledged
    );
    println!(
        "  Devices: {}; shadow versions applied: {applied}; alarms active now: {active}, awaiting acknowledgement: {unacknowledged}.",
        states.len()
    );
    for (transition, count) in transitions {
        println!("  Alarm history: {count} {transition}");
    }
    println!();
}

/// Returns an address a browser on this machine can open: an unspecified listen address
/// becomes loopback.
pub fn browsable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
    } else {
        addr
    }
}
