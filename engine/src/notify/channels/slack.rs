//! Slack-compatible incoming webhooks: a POST of `{"text": ...}`, with Block Kit `blocks` when
//! configured. Mattermost, Rocket.Chat and similar servers accept the same body.

use std::time::Duration;

use serde_json::json;

use super::{Delivery, DeliveryError, http_client, post_json};
use crate::notify::NotifyError;
use crate::notify::config::SlackChannelConfig;
use crate::secret::Secret;

/// Slack's limit on a header block's text, in characters.
const MAX_HEADER_CHARS: usize = 150;
/// Slack's limit on a section block's text, in characters.
const MAX_SECTION_CHARS: usize = 3000;

/// A Slack incoming webhook.
pub struct SlackChannel {
    /// The webhook URL, which is itself the credential.
    url: Secret,
    blocks: bool,
    client: reqwest::Client,
}

impl SlackChannel {
    /// Reads the webhook URL and builds the HTTP client.
    ///
    /// # Errors
    ///
    /// Returns [`NotifyError`] when the URL cannot be read or is not an http(s) URL.
    pub fn new(config: &SlackChannelConfig, timeout: Duration) -> Result<Self, NotifyError> {
        let url = config.url.read().map_err(|reason| NotifyError::Secret {
            channel: config.name.clone(),
            reason,
        })?;
        let valid = url::Url::parse(url.expose())
            .is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https"));
        if !valid {
            return Err(NotifyError::Client {
                channel: config.name.clone(),
                message: "the webhook URL read from the secret is not an http:// or https:// URL"
                    .to_owned(),
            });
        }
        let client = http_client(timeout).map_err(|error| NotifyError::Client {
            channel: config.name.clone(),
            message: error.to_string(),
        })?;
        Ok(Self {
            url,
            blocks: config.blocks,
            client,
        })
    }

    /// Posts the notification.
    ///
    /// # Errors
    ///
    /// Returns [`DeliveryError`] as [`post_json`] classifies it.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Result<(), DeliveryError> {
        let body = body(delivery, self.blocks).to_string().into_bytes();
        post_json(self.client.post(self.url.expose()), body).await
    }
}

/// Returns the message body: `text` always, `blocks` when asked for.
pub fn body(delivery: &Delivery<'_>, blocks: bool) -> serde_json::Value {
    let subject = delivery.payload.subject();
    let text = delivery.payload.text();
    let mut body = json!({ "text": format!("*{subject}*\n{text}") });
    if blocks {
        let header: String = subject.chars().take(MAX_HEADER_CHARS).collect();
        let section: String = text.chars().take(MAX_SECTION_CHARS).collect();
        body["blocks"] = json!([
            { "type": "header", "text": { "type": "plain_text", "text": header } },
            { "type": "section", "text": { "type": "mrkdwn", "text": section } },
        ]);
    }
    body
}
