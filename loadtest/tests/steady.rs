//! A short steady run through a real Mosquitto and an engine inside the test: every frame,
//! dashboard update and alarm must be accounted for.
//!
//! The broker address comes from `VALMETAL_TEST_MQTT_ADDR`, default `127.0.0.1:1883`.

use clap::Parser;
use valmetal_loadtest::{Args, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_run_accounts_every_frame() {
    let broker =
        std::env::var("VALMETAL_TEST_MQTT_ADDR").unwrap_or_else(|_| "127.0.0.1:1883".to_owned());
    let prefix = format!("valmetal-lt-test-{}/equipment", std::process::id());
    let args = Args::try_parse_from([
        "valmetal-loadtest",
        "--engine",
        "in-process",
        "--broker",
        &broker,
        "--topic-prefix",
        &prefix,
        "--devices",
        "200",
        "--connections",
        "4",
        "--rate",
        "400",
        "--ramp",
        "0s",
        "--duration",
        "2s",
        "--dashboards",
        "3",
        "--watch",
        "20",
        "--quiet",
    ])
    .unwrap();
    let report = run(&args, "steady test".into()).await.unwrap();

    let engine = report.engine.as_ref().unwrap();
    let dashboards = report.dashboards.as_ref().unwrap();
    assert!(report.publish.published > 0, "{}", report.table());
    assert_eq!(
        engine.counters.frames_accepted,
        report.publish.published,
        "{}",
        report.table()
    );
    assert_eq!(dashboards.missing, 0, "{}", report.table());
    assert!(dashboards.updates > 0, "{}", report.table());
    assert!(report.passed(), "{}", report.table());
}
