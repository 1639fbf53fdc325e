//! `valmetal demo`: embedded broker, engine and replay of the bundled real data in one
//! process, with nothing else to install.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use rumqttc::QoS;
use tokio::sync::watch;
use tracing::info;
use valmetal_actors::rules::{AlarmState, RuleBook};
use valmetal_engine::replay::{self, ReplayOptions, ReplaySummary};
use valmetal_engine::sinks::shadows::ShadowStore;
use valmetal_engine::store::Database;
use valmetal_engine::store::shadows::SqlShadowStore;
use valmetal_engine::store::telemetry::SqlTelemetry;
use valmetal_engine::{Config, RunningEngine, broker, bundled_rules};

use super::{Dataset, DemoArgs, demo_equipment};

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
    config.equipment.plans = demo_equipment::plans();
    config.validate()?;

    if !args.keep_state {
        clear_previous_run(&config).await?;
    }
    broker::start(args.mqtt_addr, config.mqtt.max_payload_bytes)?;
    let rules = demo_rules(args.speed, args.machine_speed)?;
    let engine = RunningEngine::start(&config, rules).await?;
    demo_equipment::seed(&engine.http_state().equipment)
        .await
        .context("cannot create the demo's equipment records")?;
    println!();
    super::token::print_sign_in(engine.auth(), engine.http_addr(), Some("odrc"))?;
    println!(
        "  MQTT broker: {} (topics {}/{{device_id}}/telemetry)",
        args.mqtt_addr, config.mqtt.topic_prefix
    );
    println!(
        "  Replaying 100 ODRC feed bins at {}x and the NAB machine at {}x; their equipment records are under #/equipment. Ctrl+C stops.",
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
    if finished.is_some() {
        print_stored(&config).await;
    }
    Ok(())
}

/// Empties what the previous demo run stored of its devices: their documents, telemetry,
/// alarm history, registry entries and journal. Stored rule files stay.
async fn clear_previous_run(config: &Config) -> anyhow::Result<()> {
    let journal = config.storage.journal_dir();
    if journal.exists() {
        std::fs::remove_dir_all(&journal)
            .with_context(|| format!("cannot empty the demo journal {}", journal.display()))?;
    }
    let database = Database::open_sqlite(&config.storage.sqlite_path()).await?;
    for table in [
        "device_shadows",
        "telemetry",
        "alarm_events",
        "equipment",
        "farms",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(database.pool())
            .await
            .with_context(|| format!("cannot empty the demo table {table}"))?;
    }
    database.close().await;
    Ok(())
}

/// Prints what the stopped engine left in its SQLite file.
async fn print_stored(config: &Config) {
    let path = config.storage.sqlite_path();
    let Ok(database) = Database::open_sqlite(&path).await else {
        return;
    };
    let telemetry = SqlTelemetry::new(database.clone())
        .count()
        .await
        .unwrap_or(0);
    let shadows = SqlShadowStore::new(database.clone())
        .load_all()
        .await
        .map_or(0, |documents| documents.len());
    database.close().await;
    println!(
        "  Stored in {}: {telemetry} telemetry values and {shadows} device shadows; `valmetal serve --data-dir {}` restores them.",
        path.display(),
        config.storage.data_dir.display()
    );
    println!();
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
    wait_until_taken(engine, summary.acknowledged).await;
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

/// Waits until ingest has taken every message the broker acknowledged and the actors have
/// applied them, or 60 s at most.
async fn wait_until_taken(engine: &RunningEngine, messages: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while engine.messages_taken() < messages && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    engine.registry().settle().await;
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
