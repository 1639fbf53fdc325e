//! A short direct feed into an engine inside the test, with no broker: every frame must reach
//! the engine and its dashboards.

use clap::Parser;
use valmetal_loadtest::{Args, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_feed_accounts_every_frame() {
    // The engine inside the test still connects to a broker; this port has none, and the
    // direct feed does not need one.
    let args = Args::try_parse_from([
        "valmetal-loadtest",
        "--scenario",
        "direct",
        "--broker",
        "127.0.0.1:9",
        "--devices",
        "50",
        "--rate",
        "1000",
        "--ramp",
        "0s",
        "--duration",
        "1s",
        "--dashboards",
        "2",
        "--watch",
        "10",
        "--quiet",
    ])
    .unwrap();
    let report = run(&args, "direct test".into()).await.unwrap();

    let engine = report.engine.as_ref().unwrap();
    assert!(report.publish.published > 0, "{}", report.table());
    assert_eq!(
        engine.counters.frames_accepted,
        report.publish.published,
        "{}",
        report.table()
    );
    assert!(engine.in_process);
    assert!(report.passed(), "{}", report.table());
}
