//! Noise control under a clock the test sets: quiet hours hold back all but critical alarms
//! and send a summary when they end, a rate limit turns a flood into one digest, and a
//! maintenance window silences a farm.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use common::notify::{
    WebhookReceiver, alarm, at, notifications, record, record_all, status_counts,
};
use valmetal_actors::rules::{Severity, Transition};
use valmetal_engine::store::{AlarmHistory, Database};

const SECRET: &str = "noise-secret";

struct Setup {
    _directory: tempfile::TempDir,
    history: AlarmHistory,
    notifier: valmetal_engine::notify::Notifications,
    receiver: WebhookReceiver,
}

/// Starts a receiver and notifications whose only recipient, `farmer`, gets `recipient_extra`.
async fn setup(recipient_extra: &str, extra_sections: &str) -> Setup {
    let directory = tempfile::tempdir().unwrap();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let receiver = WebhookReceiver::start(SECRET).await;
    let config = format!(
        r#"
        [[channels]]
        type = "webhook"
        name = "hook"
        url = "{url}"
        secret = {{ file = "{secret}" }}

        [[recipients]]
        id = "farmer"
        channels = ["hook"]
        {recipient_extra}

        [[routes]]
        id = "everything"
        recipients = ["farmer"]

        {extra_sections}
        "#,
        url = receiver.url(),
        secret = secret.display(),
    );
    let database = Database::open_sqlite(&directory.path().join("valmetal.db"))
        .await
        .unwrap();
    let notifier = notifications(&database, &config).await;
    Setup {
        _directory: directory,
        history: AlarmHistory::new(database),
        notifier,
        receiver,
    }
}

#[tokio::test]
async fn quiet_hours_hold_minor_but_pass_critical() {
    let setup = setup(
        r#"quiet_hours = { start = "22:00", end = "06:00", time_zone = "UTC" }"#,
        "",
    )
    .await;
    let night = at("2026-12-04T23:00:00Z");
    let minor = alarm("feedbin-001", "bin_low", Severity::Minor, night);
    let critical = alarm("machine-01", "temperature_low", Severity::Critical, night);
    record(&setup.history, &minor, Transition::Raised).await;
    record(&setup.history, &critical, Transition::Raised).await;

    setup.notifier.tick(night).await.unwrap();
    setup.notifier.send_due(night).await.unwrap();
    let received = setup.receiver.received();
    assert_eq!(
        received.len(),
        1,
        "only the critical alarm is sent at night"
    );
    assert_eq!(received[0].body["alarm"]["rule"], "temperature_low");
    assert!(received[0].signature_valid);
    let outbox = setup.notifier.outbox();
    let minor_row = &outbox.list(Some(&minor.id), None, 10).await.unwrap()[0];
    assert_eq!(minor_row.status, "held");
    assert_eq!(minor_row.reason.as_deref(), Some("quiet_hours"));

    let morning = at("2026-12-05T06:00:00Z");
    setup.notifier.tick(morning - 1).await.unwrap();
    setup.notifier.send_due(morning - 1).await.unwrap();
    assert_eq!(
        setup.receiver.count(),
        1,
        "no summary before the quiet hours end"
    );

    setup.notifier.tick(morning).await.unwrap();
    setup.notifier.send_due(morning).await.unwrap();
    let received = setup.receiver.received();
    assert_eq!(received.len(), 2, "one summary when the quiet hours end");
    let summary = &received[1].body;
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["held_total"], 1);
    assert_eq!(summary["held"][0]["alarm"]["id"], *minor.id);
    let minor_row = &outbox.list(Some(&minor.id), None, 10).await.unwrap()[0];
    assert_eq!(minor_row.status, "digested");
    assert!(minor_row.digest_id.is_some());
}

#[tokio::test]
async fn flood_becomes_one_rate_limited_digest() {
    let setup = setup(r#"rate_limit = { max = 5, per = "1h" }"#, "").await;
    let start = at("2026-12-04T12:00:00Z");
    let flood: Vec<_> = (0..1000)
        .map(|index| {
            let device = format!("feedbin-{index:04}");
            alarm(&device, "bin_low", Severity::Major, start + index * 60)
        })
        .collect();
    record_all(&setup.history, &flood, Transition::Raised).await;

    let after_flood = start + 60_000;
    setup.notifier.tick(after_flood).await.unwrap();
    let counts = status_counts(setup.notifier.outbox()).await;
    assert_eq!(counts.get("queued"), Some(&5));
    assert_eq!(counts.get("held"), Some(&995));
    setup.notifier.send_due(after_flood).await.unwrap();
    assert_eq!(setup.receiver.count(), 5);

    setup
        .notifier
        .tick(after_flood + 30 * 60_000)
        .await
        .unwrap();
    setup
        .notifier
        .send_due(after_flood + 30 * 60_000)
        .await
        .unwrap();
    assert_eq!(
        setup.receiver.count(),
        5,
        "no digest while the hour is full"
    );

    let window_over = after_flood + 60 * 60_000 + 1;
    setup.notifier.tick(window_over).await.unwrap();
    setup.notifier.send_due(window_over).await.unwrap();
    let received = setup.receiver.received();
    assert_eq!(received.len(), 6, "the held 995 arrive as one digest");
    let digest = &received[5].body;
    assert_eq!(digest["kind"], "digest");
    assert_eq!(digest["held_total"], 995);
    assert_eq!(digest["held"].as_array().unwrap().len(), 50);
    assert!(
        digest["text"].as_str().unwrap().ends_with("… and 945 more"),
        "{}",
        digest["text"]
    );
    let counts = status_counts(setup.notifier.outbox()).await;
    assert_eq!(counts.get("digested"), Some(&995));
    assert_eq!(counts.get("sent"), Some(&6));
    assert_eq!(counts.get("held"), None);
}

#[tokio::test]
async fn maintenance_window_silences_its_farm() {
    let setup = setup(
        "",
        r#"
        [[maintenance]]
        farm = "odrc"
        from = "2026-12-04T08:00:00Z"
        until = "2026-12-04T12:00:00Z"
        "#,
    )
    .await;
    let during = at("2026-12-04T09:00:00Z");
    let bin = alarm("feedbin-001", "bin_low", Severity::Critical, during);
    let machine = alarm("machine-01", "temperature_low", Severity::Critical, during);
    record(&setup.history, &bin, Transition::Raised).await;
    record(&setup.history, &machine, Transition::Raised).await;
    setup.notifier.tick(during).await.unwrap();
    setup.notifier.send_due(during).await.unwrap();

    let received = setup.receiver.received();
    assert_eq!(received.len(), 1, "the other farm is still notified");
    assert_eq!(received[0].body["alarm"]["device"], "machine-01");
    let row = &setup
        .notifier
        .outbox()
        .list(Some(&bin.id), None, 10)
        .await
        .unwrap()[0];
    assert_eq!(row.status, "suppressed");
    assert_eq!(row.reason.as_deref(), Some("maintenance"));

    let after = at("2026-12-04T12:00:00Z");
    let later = alarm("feedbin-001", "bin_low", Severity::Critical, after);
    record(&setup.history, &later, Transition::Raised).await;
    setup.notifier.tick(after).await.unwrap();
    setup.notifier.send_due(after).await.unwrap();
    assert_eq!(
        setup.receiver.count(),
        2,
        "the farm is notified again after the window"
    );
}
