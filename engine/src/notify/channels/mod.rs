//! Channels: the ways a notification leaves the engine. Each channel sends one rendered
//! notification and reports whether a failure may pass with a retry.

pub mod email;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use super::NotifyError;
use super::config::{ChannelConfig, RecipientConfig};
use super::message::Payload;

/// One notification to send.
pub struct Delivery<'a> {
    /// The outbox row id.
    pub id: i64,
    /// The outbox dedup key, sent along so a receiver can drop a repeated delivery.
    pub dedup_key: &'a str,
    pub recipient: &'a RecipientConfig,
    pub payload: &'a Payload,
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Whether another attempt may succeed (a timeout, a 5xx, a busy mail server); false when
    /// the receiver rejected the notification for good.
    pub retriable: bool,
    /// Stable metric label, such as `timeout` or `http_4xx`.
    pub reason: &'static str,
    pub message: String,
}

impl DeliveryError {
    pub fn retriable(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            retriable: true,
            reason,
            message: message.into(),
        }
    }

    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            retriable: false,
            reason,
            message: message.into(),
        }
    }
}

/// A configured channel, ready to send.
pub enum Channel {
    Email(email::EmailChannel),
    Webhook(webhook::WebhookChannel),
    Slack(slack::SlackChannel),
}

impl Channel {
    /// Builds the channel, reading its secrets now.
    ///
    /// # Errors
    ///
    /// Returns [`NotifyError`] when a secret cannot be read or the client cannot be built.
    pub fn build(config: &ChannelConfig, timeout: Duration) -> Result<Self, NotifyError> {
        Ok(match config {
            ChannelConfig::Email(email) => Self::Email(email::EmailChannel::new(email, timeout)?),
            ChannelConfig::Webhook(webhook) => {
                Self::Webhook(webhook::WebhookChannel::new(webhook, timeout)?)
            }
            ChannelConfig::Slack(slack) => Self::Slack(slack::SlackChannel::new(slack, timeout)?),
        })
    }

    /// Sends one notification.
    ///
    /// # Errors
    ///
    /// Returns [`DeliveryError`], classified as retriable or permanent.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Result<(), DeliveryError> {
        match self {
            Self::Email(email) => email.send(delivery).await,
            Self::Webhook(webhook) => webhook.send(delivery).await,
            Self::Slack(slack) => slack.send(delivery).await,
        }
    }
}

/// Builds the HTTP client of the webhook and Slack channels: no redirects, because a signed
/// body must reach only the configured URL.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("valmetal/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Posts a JSON body and classifies the outcome. Connection failures, timeouts, 408, 429 and
/// 5xx may pass with a retry, and any other non-2xx status is permanent.
pub(crate) async fn post_json(
    request: reqwest::RequestBuilder,
    body: Vec<u8>,
) -> Result<(), DeliveryError> {
    let response = request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| {
            let reason = if error.is_timeout() {
                "timeout"
            } else {
                "unreachable"
            };
            DeliveryError::retriable(reason, describe_http_error(error))
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    let message = format!("receiver responded {status}: {text}");
    let retriable = status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    if retriable {
        Err(DeliveryError::retriable("http_retriable", message))
    } else {
        Err(DeliveryError::permanent("http_rejected", message))
    }
}

/// Returns the error with its causes, without the URL, which may carry a credential.
fn describe_http_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
