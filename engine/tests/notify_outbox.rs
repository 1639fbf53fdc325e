//! The notification outbox on both backends, a SQLite file and the PostgreSQL server of
//! `VALMETAL_TEST_POSTGRES_URL`: rows derived from the alarm history once, whatever is read
//! again; a row claimed by one sender only; retries, then `dead`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use common::notify::{alarm, at, notifications, record};
use common::postgres::PostgresDatabase;
use valmetal_actors::rules::{Severity, Transition};
use valmetal_engine::store::{AlarmHistory, Database};

/// Runs every check on `database`; `secret_file` contains the webhook secret.
async fn exercise(database: Database, secret_file: &std::path::Path) {
    let history = AlarmHistory::new(database.clone());
    let before = alarm(
        "feedbin-001",
        "bin_low",
        Severity::Major,
        at("2026-12-04T09:00:00Z"),
    );
    record(&history, &before, Transition::Raised).await;

    let closed_port = common::free_port();
    let config = format!(
        r#"
        max_attempts = 3
        backoff = {{ first = "1s", max = "1s" }}

        [[channels]]
        type = "webhook"
        name = "hook"
        url = "http://127.0.0.1:{closed_port}/hook"
        secret = {{ file = "{}" }}

        [[recipients]]
        id = "farmer"
        channels = ["hook"]

        [[routes]]
        id = "all"
        recipients = ["farmer"]
        "#,
        secret_file.display()
    );
    let notifier = notifications(&database, &config).await;
    let outbox = notifier.outbox().clone();
    let now = at("2026-12-04T10:00:00Z");
    notifier.tick(now).await.unwrap();
    assert!(
        outbox.list(None, None, 10).await.unwrap().is_empty(),
        "events stored before notifications were enabled are not notified"
    );

    let bin_low = alarm("feedbin-002", "bin_low", Severity::Major, now);
    record(&history, &bin_low, Transition::Raised).await;
    assert_eq!(notifier.tick(now).await.unwrap(), 1);
    let rows = outbox.list(None, None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].dedup_key,
        format!("{}|raised|farmer|hook", bin_low.id)
    );
    assert_eq!(rows[0].status, "queued");

    sqlx::query("UPDATE notification_cursor SET last_event_id = 0")
        .execute(database.pool())
        .await
        .unwrap();
    notifier.tick(now).await.unwrap();
    assert_eq!(
        outbox.list(None, None, 10).await.unwrap().len(),
        2,
        "reading every event again adds only the one from before the start, never a duplicate"
    );
    let bin_low_rows = outbox.list(Some(&bin_low.id), None, 10).await.unwrap();
    assert_eq!(bin_low_rows.len(), 1);

    let due = outbox.due(now, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(outbox.claim(&due[0], now + 60_000).await.unwrap());
    assert!(
        !outbox.claim(&due[0], now + 60_000).await.unwrap(),
        "a claimed row is not claimed twice"
    );
    assert_eq!(
        outbox.due(now, 10).await.unwrap().len(),
        1,
        "a leased row is not due"
    );

    let id = bin_low_rows[0].id;
    for attempt in 1..=3 {
        let row = outbox.get(id).await.unwrap().unwrap();
        notifier.send_due(row.next_attempt_at).await.unwrap();
        let row = outbox.get(id).await.unwrap().unwrap();
        assert_eq!(row.attempts, attempt);
        let expected = if attempt < 3 { "failed" } else { "dead" };
        assert_eq!(row.status, expected, "after attempt {attempt}");
        assert!(row.last_error.is_some());
    }
    let dead = outbox
        .list(None, Some(valmetal_engine::notify::Status::Dead), 10)
        .await
        .unwrap();
    assert!(dead.iter().any(|row| row.id == id), "{dead:?}");
}

#[tokio::test]
async fn outbox_keeps_its_guarantees_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, "outbox-secret\n").unwrap();
    let database = Database::open_sqlite(&directory.path().join("valmetal.db"))
        .await
        .unwrap();
    exercise(database, &secret).await;
}

#[tokio::test]
async fn outbox_keeps_its_guarantees_on_postgres() {
    let directory = tempfile::tempdir().unwrap();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, "outbox-secret\n").unwrap();
    let server = PostgresDatabase::create("notify_outbox").await;
    let database = Database::open_url(&server.url).await.unwrap();
    exercise(database.clone(), &secret).await;
    database.close().await;
    server.drop_database().await;
}
