//! Email through a real SMTP server: aiosmtpd on loopback, started by the test.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use common::notify::{SmtpServer, alarm, at, notifications, record};
use valmetal_actors::rules::{Severity, Transition};
use valmetal_engine::store::{AlarmHistory, Database};

#[tokio::test]
async fn email_reaches_smtp_server_once() {
    let smtp = SmtpServer::start().await;
    let directory = tempfile::tempdir().unwrap();
    let database = Database::open_sqlite(&directory.path().join("valmetal.db"))
        .await
        .unwrap();
    let config = format!(
        r#"
        [[channels]]
        type = "email"
        name = "email"
        host = "127.0.0.1"
        port = {}
        tls = "none"
        from = "Valmetal alarms <alarms@valmetal.test>"

        [[recipients]]
        id = "farmer"
        name = "Farmer Jo"
        email = "jo@farm.test"
        channels = ["email"]

        [[routes]]
        id = "all"
        recipients = ["farmer"]
        "#,
        smtp.port
    );
    let notifier = notifications(&database, &config).await;
    let history = AlarmHistory::new(database);
    let now = at("2026-12-04T10:00:00Z");
    let bin_low = alarm("feedbin-007", "bin_low", Severity::Major, now);
    record(&history, &bin_low, Transition::Raised).await;

    notifier.tick(now).await.unwrap();
    assert_eq!(notifier.send_due(now).await.unwrap(), 1);
    notifier.tick(now + 1000).await.unwrap();
    notifier.send_due(now + 1000).await.unwrap();

    let row = &notifier
        .outbox()
        .list(Some(&bin_low.id), None, 10)
        .await
        .unwrap()[0];
    assert_eq!(row.status, "sent", "{:?}", row.last_error);
    assert_eq!(row.attempts, 1);
    let messages = smtp.messages();
    assert_eq!(
        messages.len(),
        1,
        "one message, however often the sender runs"
    );
    let message = &messages[0];
    assert!(
        message.contains("Subject: [major] feedbin-007: bin_low raised"),
        "{message}"
    );
    assert!(
        message.contains("To: \"Farmer Jo\" <jo@farm.test>")
            || message.contains("To: Farmer Jo <jo@farm.test>"),
        "{message}"
    );
    assert!(message.contains("Farm: odrc"), "{message}");
    assert!(message.contains("Message-ID: <"), "{message}");
}
