//! One run: broker and engine set-up, the ceiling phase, the engine phase with dashboards,
//! the drain, and the checks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::Histogram;
use rumqttc::QoS;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::ceiling::CeilingSubscriber;
use crate::dashboards::{DashboardOptions, Dashboards, latency_histogram};
use crate::engine::{
    ChildEngine, EngineCounters, EngineMode, EngineSettings, ProcessSample, read_counters,
    sample_process,
};
use crate::options::{Args, Scenario};
use crate::profile::{Recordings, device_id};
use crate::publisher::{ConnectionResult, Fleet, FleetCounters, FleetOptions, Schedule};
use crate::replay::{self, ReplayPlan};
use crate::report::{
    CeilingSummary, Check, DashboardSummary, EngineSummary, LatencySummary, PublishSummary, Report,
};

/// Topic prefix of the ceiling phase, which the engine does not subscribe to.
const CEILING_PREFIX: &str = "valmetal-loadtest-ceiling/equipment";

/// How often the harness reads the engine's counters during a run.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// The engine the run measures.
struct EngineUnderTest {
    http_addr: SocketAddr,
    pid: Option<u32>,
    child: Option<ChildEngine>,
    in_process: Option<valmetal_engine::RunningEngine>,
}

impl EngineUnderTest {
    fn intake(&self) -> Option<valmetal_engine::storage::Intake> {
        self.in_process
            .as_ref()
            .map(|engine| engine.intake().clone())
    }
}

impl EngineUnderTest {
    async fn stop(self) {
        if let Some(child) = self.child {
            child.stop().await;
        }
        if let Some(engine) = self.in_process {
            engine.shutdown().await;
        }
    }
}

/// Runs the scenario `args` describes and returns its report.
///
/// # Errors
///
/// Fails when the broker, the engine or the clients cannot be set up; problems during the run
/// become failed checks in the report instead.
pub async fn run(args: &Args, command: String) -> anyhow::Result<Report> {
    args.validate()?;
    let open_file_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let temporary = tempfile::tempdir().context("cannot create a temporary directory")?;
    let work_dir: PathBuf = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    std::fs::create_dir_all(&work_dir)?;
    let (host, port) = args.broker_address()?;
    let broker = if args.start_broker {
        Some(Broker::start(&host, port, &work_dir).await?)
    } else {
        None
    };
    let mut report = Report {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        command,
        started_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64),
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        open_file_limit,
        ..Report::default()
    };
    let result = run_over_broker(args, &host, port, &work_dir, &mut report).await;
    if let Some(broker) = broker {
        broker.stop().await;
    }
    result?;
    Ok(report)
}

async fn run_over_broker(
    args: &Args,
    host: &str,
    port: u16,
    work_dir: &std::path::Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let recordings = Recordings::load()?;
    if args.ceiling || args.scenario == Scenario::Ceiling {
        report.ceiling = Some(ceiling_phase(args, host, port, &recordings).await?);
    }
    let no_engine = args.engine == EngineMode::None && args.scenario != Scenario::Direct;
    if args.scenario == Scenario::Ceiling || no_engine {
        if let Some(ceiling) = &report.ceiling {
            report.publish = PublishSummary {
                published: ceiling.published,
                ..publish_settings(args)
            };
        }
        return Ok(());
    }
    let engine = start_engine(args, host, port, work_dir).await?;
    let outcome = engine_phase(args, host, port, &engine, &recordings, report).await;
    engine.stop().await;
    outcome
}

fn qos(args: &Args) -> QoS {
    if args.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn publish_settings(args: &Args) -> PublishSummary {
    let (devices, connections) = if args.scenario == Scenario::Replay {
        (replay::device_ids().len() as u32, 1)
    } else {
        (args.devices, args.connection_count())
    };
    PublishSummary {
        devices,
        connections,
        qos: args.qos,
        target_rate: args.rate,
        ..PublishSummary::default()
    }
}

fn fleet_options(args: &Args, host: &str, port: u16, prefix: &str) -> FleetOptions {
    let schedule = Schedule {
        rate: args.rate,
        ramp: args.ramp,
        burst: (args.scenario == Scenario::Burst).then_some((args.burst_every, args.burst_frames)),
        reconnect_at: (args.scenario == Scenario::ReconnectStorm).then_some(args.duration / 2),
    };
    let seq_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
        * 1_000_000;
    FleetOptions {
        host: host.to_owned(),
        port,
        topic_prefix: prefix.to_owned(),
        qos: qos(args),
        devices: args.devices,
        connections: args.connection_count(),
        profile: args.profile,
        schedule,
        max_frames: args.max_frames,
        duration: args.duration,
        seq_base,
    }
}

/// Destination of a phase's frames: a broker and topic prefix, or an in-process engine's
/// intake.
struct Target<'a> {
    host: &'a str,
    port: u16,
    prefix: &'a str,
    direct: Option<valmetal_engine::storage::Intake>,
}

/// Publishes with the run's schedule, the replay or the fleet, and returns what was sent.
async fn publish(
    args: &Args,
    target: Target<'_>,
    recordings: &Arc<Recordings>,
    counters_out: &mut Option<Arc<FleetCounters>>,
    stop: watch::Receiver<bool>,
    progress: impl Fn(&FleetCounters, Duration),
) -> anyhow::Result<(Vec<ConnectionResult>, Duration)> {
    let Target {
        host,
        port,
        prefix,
        direct,
    } = target;
    let started = Instant::now();
    let (counters, task) = if let Some(intake) = direct {
        let counters = Arc::new(FleetCounters::default());
        let task = tokio::spawn(crate::direct::feed(
            intake,
            fleet_options(args, host, port, prefix),
            Arc::clone(recordings),
            Arc::clone(&counters),
            started,
            stop,
        ));
        (
            counters,
            tokio::spawn(async move { Ok(vec![task.await.context("direct feed panicked")??]) }),
        )
    } else if args.scenario == Scenario::Replay {
        let counters = Arc::new(FleetCounters::default());
        let plan = ReplayPlan {
            host: host.to_owned(),
            port,
            topic_prefix: prefix.to_owned(),
            qos: qos(args),
            speed: args.speed,
            machine_speed: args.machine_speed,
            duration: args.duration,
            max_frames: args.max_frames,
        };
        let task = tokio::spawn(replay::run(plan, Arc::clone(&counters), started, stop));
        (
            counters,
            tokio::spawn(async move { Ok(vec![task.await.context("replay task panicked")??]) }),
        )
    } else {
        let fleet = Fleet::start(
            fleet_options(args, host, port, prefix),
            Arc::clone(recordings),
            stop,
        )
        .await?;
        let counters = Arc::clone(&fleet.counters);
        (counters, tokio::spawn(fleet.finish()))
    };
    *counters_out = Some(Arc::clone(&counters));
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    while !task.is_finished() {
        tokio::select! {
            _ = ticker.tick() => progress(&counters, started.elapsed()),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let elapsed = started.elapsed();
    let results = task.await.context("publishing task panicked")??;
    Ok((results, elapsed))
}

async fn ceiling_phase(
    args: &Args,
    host: &str,
    port: u16,
    recordings: &Arc<Recordings>,
) -> anyhow::Result<CeilingSummary> {
    let (stop_sender, stop) = watch::channel(false);
    let epoch = Instant::now();
    let subscriber =
        CeilingSubscriber::start(host, port, CEILING_PREFIX, qos(args), epoch, stop.clone())
            .await?;
    let quiet = args.quiet;
    let received = Arc::clone(&subscriber.received);
    let mut counters = None;
    let target = Target {
        host,
        port,
        prefix: CEILING_PREFIX,
        direct: None,
    };
    let (_, _) = publish(
        args,
        target,
        recordings,
        &mut counters,
        stop.clone(),
        |fleet, elapsed| {
            progress_line(
                quiet,
                elapsed,
                fleet.published.load(Ordering::Relaxed),
                &format!("ceiling {}", received.load(Ordering::Relaxed)),
            );
        },
    )
    .await?;
    let published = counters.map_or(0, |counters| counters.published.load(Ordering::Relaxed));
    wait_until_stable(
        args.drain,
        || subscriber.received.load(Ordering::Relaxed),
        published,
    )
    .await;
    let received = subscriber.received.load(Ordering::Relaxed);
    let last_us = subscriber.last_received_us.load(Ordering::Relaxed);
    let _ = stop_sender.send(true);
    let latency = subscriber.finish().await;
    end_progress(quiet);
    Ok(CeilingSummary {
        published,
        received,
        rate: received as f64 / (last_us as f64 / 1e6).max(1e-3),
        latency: LatencySummary::of(&latency),
    })
}

/// Polls `current` until it reaches `target` or stops growing for a second, for at most
/// `limit`.
async fn wait_until_stable(limit: Duration, current: impl Fn() -> u64, target: u64) {
    let deadline = Instant::now() + limit;
    let mut last = current();
    let mut last_change = Instant::now();
    while Instant::now() < deadline {
        let now = current();
        if now >= target {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The measured span of a run, from just before the first publish.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the engine last accepted a frame.
    last_accepted_at: Duration,
    /// When the measuring ended, once the store queues had emptied or the drain limit passed.
    measured: Duration,
    /// False when records were still queued at the drain limit.
    stores_drained: bool,
}

/// Poll interval of the store queues while waiting for them to empty.
const STORE_POLL: Duration = Duration::from_millis(100);

/// Waits, up to `limit`, until the engine's sink queues are empty and their written counts
/// have stopped moving, so the CPU time measured next includes storing every frame. Returns
/// whether they emptied.
///
/// NOTE: the queue gauge leaves out the batches being written, so a batch write slower than
/// `STORE_POLL` can end the wait before that batch is stored.
async fn wait_for_stores(
    limit: Duration,
    addr: SocketAddr,
    token: Option<&str>,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut last_sent = None;
    loop {
        let counters = read_counters(addr, token).await?;
        if counters.sink_queued == 0 && last_sent == Some(counters.sink_sent) {
            return Ok(true);
        }
        if started.elapsed() >= limit {
            return Ok(false);
        }
        last_sent = Some(counters.sink_sent);
        tokio::time::sleep(STORE_POLL).await;
    }
}

async fn start_engine(
    args: &Args,
    host: &str,
    port: u16,
    work_dir: &std::path::Path,
) -> anyhow::Result<EngineUnderTest> {
    let http_addr = if args.http_addr.port() == 0 && args.engine != EngineMode::External {
        free_port(args.http_addr)?
    } else {
        args.http_addr
    };
    let settings = EngineSettings {
        broker_host: host.to_owned(),
        broker_port: port,
        topic_prefix: args.topic_prefix.clone(),
        qos: args.qos,
        http_addr,
        data_dir: work_dir.join("engine"),
    };
    let mode = if args.scenario == Scenario::Direct {
        EngineMode::InProcess
    } else {
        args.engine
    };
    match mode {
        EngineMode::Spawn => {
            let binary = match &args.engine_bin {
                Some(binary) => binary.clone(),
                None => std::env::current_exe()?.with_file_name("valmetal"),
            };
            let child = ChildEngine::start(&binary, &settings, args.token.as_deref()).await?;
            Ok(EngineUnderTest {
                http_addr,
                pid: Some(child.pid),
                child: Some(child),
                in_process: None,
            })
        }
        EngineMode::External => Ok(EngineUnderTest {
            http_addr,
            pid: args.engine_pid,
            child: None,
            in_process: None,
        }),
        EngineMode::InProcess => {
            let engine = crate::direct::start_in_process(&settings).await?;
            if args.scenario != Scenario::Direct {
                crate::direct::wait_connected(&engine).await?;
            }
            Ok(EngineUnderTest {
                http_addr: engine.http_addr(),
                pid: Some(std::process::id()),
                child: None,
                in_process: Some(engine),
            })
        }
        EngineMode::None => anyhow::bail!("no engine to measure"),
    }
}

/// Returns `addr` with a free port when its port is 0.
pub fn free_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot bind {addr} to pick a free port"))?;
    Ok(listener.local_addr()?)
}

fn sample(pid: Option<u32>) -> ProcessSample {
    pid.and_then(|pid| sample_process(pid).ok())
        .unwrap_or_default()
}

async fn engine_phase(
    args: &Args,
    host: &str,
    port: u16,
    engine: &EngineUnderTest,
    recordings: &Arc<Recordings>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let token = args.token.as_deref();
    let counters_start = read_counters(engine.http_addr, token).await?;
    let process_start = sample(engine.pid);
    let device_ids = Arc::new(if args.scenario == Scenario::Replay {
        replay::device_ids()
    } else if args.dashboard_count() > 0 {
        (0..args.devices)
            .map(|index| device_id(args.profile.kind_of(index), index))
            .collect()
    } else {
        Vec::new()
    });
    let (stop_sender, stop) = watch::channel(false);
    let dashboard_options = DashboardOptions {
        url: websocket_url(engine.http_addr, token),
        clients: args.dashboard_count(),
        watch: args.watch,
        selection: args.selection(),
        device_ids,
    };
    let dashboards = if dashboard_options.clients > 0 {
        Some(Dashboards::connect(&dashboard_options, stop.clone()).await?)
    } else {
        None
    };
    let process_clients = sample(engine.pid);
    let measuring_since = Instant::now();

    let sampler = Sampler::start(engine.http_addr, args.token.clone());
    let quiet = args.quiet;
    let accepted_live = Arc::clone(&sampler.accepted);
    let updates_live = dashboards
        .as_ref()
        .map(|dashboards| Arc::clone(&dashboards.counters));
    let mut fleet_counters = None;
    let target = Target {
        host,
        port,
        prefix: &args.topic_prefix,
        direct: if args.scenario == Scenario::Direct {
            engine.intake()
        } else {
            None
        },
    };
    let (results, publish_time) = publish(
        args,
        target,
        recordings,
        &mut fleet_counters,
        stop.clone(),
        |fleet, elapsed| {
            let updates = updates_live
                .as_ref()
                .map_or(0, |counters| counters.updates.load(Ordering::Relaxed));
            let accepted = accepted_live.load(Ordering::Relaxed);
            progress_line(
                quiet,
                elapsed,
                fleet.published.load(Ordering::Relaxed),
                &format!(
                    "engine {} accepted ({:.0}/s), dashboards {updates} updates",
                    accepted.saturating_sub(counters_start.frames_accepted),
                    accepted.saturating_sub(counters_start.frames_accepted) as f64
                        / elapsed.as_secs_f64().max(1e-3),
                ),
            );
        },
    )
    .await?;
    let fleet = fleet_counters.unwrap_or_default();
    let published = fleet.published.load(Ordering::Relaxed);

    // Drain: the engine takes what the broker still holds, then the dashboards catch up.
    let target = counters_start.frames_accepted + published;
    let accepted_now = Arc::clone(&sampler.accepted);
    wait_until_stable(args.drain, || accepted_now.load(Ordering::Relaxed), target).await;
    if let Some(dashboards) = &dashboards {
        let counters = Arc::clone(&dashboards.counters);
        wait_until_stable(
            args.drain,
            || counters.updates.load(Ordering::Relaxed),
            u64::MAX,
        )
        .await;
    }
    let (last_accepted_at, _) = sampler.stop().await;
    let stores_drained = wait_for_stores(args.drain, engine.http_addr, token).await?;
    let counters_end = read_counters(engine.http_addr, token).await?;
    let process_end = sample(engine.pid);
    let window = Window {
        last_accepted_at,
        measured: measuring_since.elapsed(),
        stores_drained,
    };
    let _ = stop_sender.send(true);
    let client_results = match dashboards {
        Some(dashboards) => Some(dashboards.finish().await),
        None => None,
    };
    end_progress(quiet);

    let counters = counters_end.since(&counters_start);
    report.publish = summarize_publish(args, &fleet, &results, publish_time);
    let engine_summary = summarize_engine(
        engine,
        report.ceiling.as_ref(),
        counters,
        window,
        [process_start, process_clients, process_end],
        dashboard_options.clients,
    );
    let expected = expected_by_device(&results);
    if let Some(client_results) = &client_results {
        report.dashboards = Some(summarize_dashboards(
            &dashboard_options,
            client_results,
            &expected,
            publish_time,
        ));
    }
    report.checks = checks(report, &engine_summary, &results, args);
    report.engine = Some(engine_summary);
    Ok(())
}

fn websocket_url(addr: SocketAddr, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("ws://{addr}/ws?access_token={}", percent_encode(token)),
        None => format!("ws://{addr}/ws"),
    }
}

/// Percent-encodes everything but unreserved URL characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Reads the engine's accepted-frame counter every 100 ms and notes when it last grew.
struct Sampler {
    accepted: Arc<std::sync::atomic::AtomicU64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl Sampler {
    fn start(addr: SocketAddr, token: Option<String>) -> Self {
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::clone(&accepted);
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut last_change = Duration::ZERO;
            let mut previous = None;
            loop {
                if let Ok(counters) = read_counters(addr, token.as_deref()).await {
                    if previous.is_some_and(|previous| counters.frames_accepted > previous) {
                        last_change = started.elapsed();
                    }
                    previous = Some(counters.frames_accepted);
                    shared.store(counters.frames_accepted, Ordering::Relaxed);
                }
                tokio::select! {
                    () = tokio::time::sleep(SAMPLE_INTERVAL) => {}
                    _ = stopped.changed() => return last_change,
                }
            }
        });
        Self {
            accepted,
            stop,
            task,
        }
    }

    /// Stops sampling and returns when, after the start, the counter last grew.
    async fn stop(self) -> (Duration, u64) {
        let _ = self.stop.send(true);
        let last = self.task.await.unwrap_or_default();
        (last, self.accepted.load(Ordering::Relaxed))
    }
}

fn summarize_publish(
    args: &Args,
    fleet: &FleetCounters,
    results: &[ConnectionResult],
    elapsed: Duration,
) -> PublishSummary {
    let published = fleet.published.load(Ordering::Relaxed);
    PublishSummary {
        published,
        acknowledged: fleet.acknowledged.load(Ordering::Relaxed),
        publish_errors: fleet.publish_errors.load(Ordering::Relaxed),
        seconds: elapsed.as_secs_f64(),
        achieved_rate: published as f64 / elapsed.as_secs_f64().max(1e-3),
        reconnects: fleet.reconnects.load(Ordering::Relaxed),
        max_reconnect_ms: results
            .iter()
            .filter_map(|result| result.reconnect_time)
            .max()
            .map(|time| time.as_secs_f64() * 1000.0),
        ..publish_settings(args)
    }
}

fn summarize_engine(
    engine: &EngineUnderTest,
    ceiling: Option<&CeilingSummary>,
    counters: EngineCounters,
    window: Window,
    [start, with_clients, end]: [ProcessSample; 3],
    clients: u32,
) -> EngineSummary {
    let rate = counters.frames_accepted as f64 / window.last_accepted_at.as_secs_f64().max(1e-3);
    let cpu_seconds = end.cpu_seconds - with_clients.cpu_seconds;
    let new_actors = counters.actors_created;
    EngineSummary {
        pid: engine.pid,
        rate,
        fraction_of_ceiling: ceiling.map(|ceiling| rate / ceiling.rate.max(1e-9)),
        cpu_seconds,
        cpu_us_per_frame: cpu_seconds * 1e6 / counters.frames_accepted.max(1) as f64,
        cpu_percent: cpu_seconds * 100.0 / window.measured.as_secs_f64().max(1e-3),
        stores_drained: window.stores_drained,
        store_drain_seconds: window
            .measured
            .saturating_sub(window.last_accepted_at)
            .as_secs_f64(),
        rss_start_bytes: start.rss_bytes,
        rss_end_bytes: end.rss_bytes,
        rss_per_client_bytes: (clients > 0 && engine.pid.is_some()).then(|| {
            with_clients.rss_bytes.saturating_sub(start.rss_bytes) as f64 / f64::from(clients)
        }),
        rss_per_device_bytes: (new_actors > 0 && engine.pid.is_some()).then(|| {
            end.rss_bytes.saturating_sub(with_clients.rss_bytes) as f64 / new_actors as f64
        }),
        in_process: engine.in_process.is_some(),
        counters,
    }
}

/// Frames published and raises expected, by device id.
fn expected_by_device(results: &[ConnectionResult]) -> HashMap<&str, (u64, u64)> {
    results
        .iter()
        .flat_map(|result| result.devices.iter())
        .map(|device| {
            (
                device.id.as_str(),
                (device.published, device.expected_raises),
            )
        })
        .collect()
}

fn summarize_dashboards(
    options: &DashboardOptions,
    results: &[crate::dashboards::ClientResult],
    expected: &HashMap<&str, (u64, u64)>,
    publish_time: Duration,
) -> DashboardSummary {
    let mut latency: Histogram<u64> = latency_histogram();
    let mut summary = DashboardSummary {
        clients: options.clients,
        devices_per_client: options.watch,
        ..DashboardSummary::default()
    };
    for result in results {
        let _ = latency.add(&result.latency);
        if result.error.is_some() {
            summary.failed_clients += 1;
        }
        for (device, watched) in &result.devices {
            let (published, raises) = expected.get(device.as_str()).copied().unwrap_or((0, 0));
            let seen = watched.last_version.saturating_sub(watched.baseline);
            summary.updates += watched.delivered;
            summary.coalesced += watched.coalesced;
            summary.missing += published.saturating_sub(seen);
            summary.raises_received += watched.raises;
            summary.raises_expected += raises;
        }
    }
    summary.deliveries_per_second = summary.updates as f64 / publish_time.as_secs_f64().max(1e-3);
    summary.latency = LatencySummary::of(&latency);
    summary
}

fn checks(
    report: &Report,
    engine: &EngineSummary,
    results: &[ConnectionResult],
    args: &Args,
) -> Vec<Check> {
    let publish = &report.publish;
    let counters = &engine.counters;
    let rejected: u64 = counters.rejected.values().sum();
    let lost = publish
        .published
        .saturating_sub(counters.frames_accepted + rejected);
    let mut checks = vec![Check {
        name: "frames accounted",
        passed: lost == 0,
        detail: format!(
            "{} published = {} accepted + {} rejected {:?} + {lost} not received",
            publish.published, counters.frames_accepted, rejected, counters.rejected
        ),
    }];
    // A direct feed goes to the engine without a broker, so nothing acknowledges it.
    if args.qos == 1 && args.scenario != Scenario::Direct {
        checks.push(Check {
            name: "publishes acknowledged",
            passed: publish.acknowledged >= publish.published,
            detail: format!(
                "{} of {} acknowledged by the broker",
                publish.acknowledged, publish.published
            ),
        });
    }
    let expected_raises: u64 = results
        .iter()
        .flat_map(|result| result.devices.iter())
        .map(|device| device.expected_raises)
        .sum();
    // `bin_low` is major and `temperature_low` critical in the bundled rules.
    let raised = counters.alarms_raised.get("major").copied().unwrap_or(0)
        + counters.alarms_raised.get("critical").copied().unwrap_or(0);
    checks.push(Check {
        name: "alarms raised",
        passed: raised == expected_raises,
        detail: format!(
            "{raised} major and critical raises, {expected_raises} expected from the values sent (fresh devices)"
        ),
    });
    if let Some(dashboards) = &report.dashboards {
        checks.push(Check {
            name: "dashboard updates",
            passed: dashboards.missing == 0 && dashboards.failed_clients == 0,
            detail: format!(
                "{} delivered + {} coalesced; {} missing; {} failed clients",
                dashboards.updates,
                dashboards.coalesced,
                dashboards.missing,
                dashboards.failed_clients
            ),
        });
        checks.push(Check {
            name: "dashboard alarms",
            passed: dashboards.raises_received == dashboards.raises_expected,
            detail: format!(
                "{} raises received of {} expected for watched devices",
                dashboards.raises_received, dashboards.raises_expected
            ),
        });
    }
    checks
}

fn progress_line(quiet: bool, elapsed: Duration, published: u64, rest: &str) {
    if quiet {
        return;
    }
    eprint!(
        "\r{:>5.1}s  published {published} ({:.0}/s)  {rest}      ",
        elapsed.as_secs_f64(),
        published as f64 / elapsed.as_secs_f64().max(1e-3)
    );
}

fn end_progress(quiet: bool) {
    if !quiet {
        eprintln!();
    }
}
