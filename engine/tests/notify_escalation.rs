//! Escalation and reminders of an unacknowledged alarm, under a clock the test sets: each
//! pass of the notifier gets the engine time to act at.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::collections::BTreeMap;

use common::notify::{alarm, at, notifications, record};
use valmetal_actors::rules::{OperatorAction, Severity, Transition};
use valmetal_engine::store::{AlarmHistory, Database};

const MINUTE: i64 = 60_000;

fn config(secret_file: &std::path::Path) -> String {
    format!(
        r#"
        [[channels]]
        type = "webhook"
        name = "hook"
        url = "http://127.0.0.1:{port}/hook"
        secret = {{ file = "{secret}" }}

        [[recipients]]
        id = "farmer"
        channels = ["hook"]

        [[recipients]]
        id = "manager"
        channels = ["hook"]

        [[groups]]
        id = "managers"
        members = ["manager"]

        [[routes]]
        id = "bins"
        device_types = ["feed_bin"]
        recipients = ["farmer"]
        escalate = [{{ after = "15m", recipients = ["managers"] }}]
        remind_every = "10m"
        "#,
        port = common::free_port(),
        secret = secret_file.display()
    )
}

/// Returns each dedup key's status, the alarm id cut off.
async fn rows(
    outbox: &valmetal_engine::notify::OutboxStore,
    alarm_id: &str,
) -> BTreeMap<String, String> {
    outbox
        .list(Some(alarm_id), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let key = row
                .dedup_key
                .strip_prefix(&format!("{alarm_id}|"))
                .unwrap()
                .to_owned();
            (key, row.status)
        })
        .collect()
}

fn keys(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(key, status)| ((*key).to_owned(), (*status).to_owned()))
        .collect()
}

#[tokio::test]
async fn escalation_fires_on_time_and_stops_at_acknowledgement() {
    let directory = tempfile::tempdir().unwrap();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, "escalation-secret").unwrap();
    let database = Database::open_sqlite(&directory.path().join("valmetal.db"))
        .await
        .unwrap();
    let history = AlarmHistory::new(database.clone());
    let notifier = notifications(&database, &config(&secret)).await;
    let outbox = notifier.outbox().clone();
    let raised_at = at("2026-12-04T10:00:00Z");
    let mut bin_low = alarm("feedbin-001", "bin_low", Severity::Major, raised_at);
    let id = bin_low.id.to_string();

    record(&history, &bin_low, Transition::Raised).await;
    notifier.tick(raised_at).await.unwrap();
    assert_eq!(
        rows(&outbox, &id).await,
        keys(&[("raised|farmer|hook", "queued")])
    );

    notifier.tick(raised_at + 10 * MINUTE - 1).await.unwrap();
    assert_eq!(
        rows(&outbox, &id).await.len(),
        1,
        "no reminder before 10 minutes"
    );
    notifier.tick(raised_at + 10 * MINUTE).await.unwrap();
    assert_eq!(
        rows(&outbox, &id).await,
        keys(&[
            ("raised|farmer|hook", "queued"),
            ("reminder:1|farmer|hook", "queued")
        ])
    );

    notifier.tick(raised_at + 15 * MINUTE - 1).await.unwrap();
    assert_eq!(
        rows(&outbox, &id).await.len(),
        2,
        "no escalation before 15 minutes"
    );
    notifier.tick(raised_at + 15 * MINUTE).await.unwrap();
    assert_eq!(
        rows(&outbox, &id)
            .await
            .get("escalation:1|manager|hook")
            .map(String::as_str),
        Some("queued")
    );

    notifier.tick(raised_at + 20 * MINUTE).await.unwrap();
    let after_second_reminder = rows(&outbox, &id).await;
    assert_eq!(
        after_second_reminder
            .get("reminder:2|farmer|hook")
            .map(String::as_str),
        Some("queued")
    );
    assert_eq!(
        after_second_reminder
            .get("reminder:2|manager|hook")
            .map(String::as_str),
        Some("queued"),
        "reminders reach the escalated level too"
    );

    bin_low.acknowledged = Some(OperatorAction {
        by: "alice".into(),
        at: raised_at + 21 * MINUTE,
    });
    record(&history, &bin_low, Transition::Acknowledged).await;
    notifier.tick(raised_at + 21 * MINUTE).await.unwrap();
    let after_acknowledgement = rows(&outbox, &id).await;
    assert_eq!(
        after_acknowledgement,
        keys(&[
            ("raised|farmer|hook", "queued"),
            ("reminder:1|farmer|hook", "cancelled"),
            ("escalation:1|manager|hook", "cancelled"),
            ("reminder:2|farmer|hook", "cancelled"),
            ("reminder:2|manager|hook", "cancelled"),
        ]),
        "unsent reminders and escalations stop at once"
    );

    notifier.tick(raised_at + 3 * 60 * MINUTE).await.unwrap();
    assert_eq!(
        rows(&outbox, &id).await,
        after_acknowledgement,
        "nothing after the acknowledgement"
    );
}

#[tokio::test]
async fn clear_stops_reminders_of_the_alarm() {
    let directory = tempfile::tempdir().unwrap();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, "escalation-secret").unwrap();
    let database = Database::open_sqlite(&directory.path().join("valmetal.db"))
        .await
        .unwrap();
    let history = AlarmHistory::new(database.clone());
    let notifier = notifications(&database, &config(&secret)).await;
    let raised_at = at("2026-12-04T10:00:00Z");
    let mut bin_low = alarm("feedbin-002", "bin_low", Severity::Major, raised_at);
    let id = bin_low.id.to_string();

    record(&history, &bin_low, Transition::Raised).await;
    notifier.tick(raised_at).await.unwrap();
    bin_low.cleared_at = Some(raised_at + 5 * MINUTE);
    record(&history, &bin_low, Transition::Cleared).await;
    notifier.tick(raised_at + 5 * MINUTE).await.unwrap();
    notifier.tick(raised_at + 60 * MINUTE).await.unwrap();

    assert_eq!(
        rows(notifier.outbox(), &id).await,
        keys(&[("raised|farmer|hook", "queued")]),
        "a cleared alarm gets neither reminders nor escalation"
    );
}

#[tokio::test]
async fn clear_reaches_escalated_level_after_schedule_ends() {
    let directory = tempfile::tempdir().unwrap();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, "escalation-secret").unwrap();
    let database = Database::open_sqlite(&directory.path().join("valmetal.db"))
        .await
        .unwrap();
    let history = AlarmHistory::new(database.clone());
    let without_reminders =
        config(&secret).replace("remind_every = \"10m\"", "on = [\"raised\", \"cleared\"]");
    let notifier = notifications(&database, &without_reminders).await;
    let raised_at = at("2026-12-04T10:00:00Z");
    let mut bin_low = alarm("feedbin-003", "bin_low", Severity::Major, raised_at);
    let id = bin_low.id.to_string();

    record(&history, &bin_low, Transition::Raised).await;
    notifier.tick(raised_at).await.unwrap();
    notifier.tick(raised_at + 15 * MINUTE).await.unwrap();
    notifier.tick(raised_at + 16 * MINUTE).await.unwrap();
    bin_low.cleared_at = Some(raised_at + 20 * MINUTE);
    record(&history, &bin_low, Transition::Cleared).await;
    notifier.tick(raised_at + 20 * MINUTE).await.unwrap();

    let after_clear = rows(notifier.outbox(), &id).await;
    assert_eq!(
        after_clear.get("cleared|manager|hook").map(String::as_str),
        Some("queued"),
        "the clear reaches the level the alarm escalated to: {after_clear:?}"
    );
    assert_eq!(
        after_clear.get("cleared|farmer|hook").map(String::as_str),
        Some("queued")
    );
}
