//! Generic webhooks: a JSON POST signed with HMAC-SHA256.
//!
//! The signature covers the timestamp and the exact body bytes: the key is the channel's
//! secret, the message is `{timestamp}.{body}`, and the header value is `v1=` followed by the
//! lowercase hex digest. The timestamp (Unix seconds) travels in its own header, so a receiver
//! can reject old deliveries as replays. `docs/notifications.md` describes the check.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use valmetal_actors::clock::now_ms;

use super::{Delivery, DeliveryError, http_client, post_json};
use crate::notify::NotifyError;
use crate::notify::config::WebhookChannelConfig;
use crate::secret::Secret;

/// Header of the signature, `v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-valmetal-signature";
/// Header of the signing time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-valmetal-timestamp";
/// Header of the delivery id (the outbox dedup key), the same on every attempt.
pub const DELIVERY_HEADER: &str = "x-valmetal-delivery";

/// A webhook channel.
pub struct WebhookChannel {
    url: String,
    secret: Secret,
    client: reqwest::Client,
}

impl WebhookChannel {
    /// Reads the signing secret and builds the HTTP client.
    ///
    /// # Errors
    ///
    /// Returns [`NotifyError`] when the secret cannot be read or the client built.
    pub fn new(config: &WebhookChannelConfig, timeout: Duration) -> Result<Self, NotifyError> {
        let secret = config.secret.read().map_err(|reason| NotifyError::Secret {
            channel: config.name.clone(),
            reason,
        })?;
        let client = http_client(timeout).map_err(|error| NotifyError::Client {
            channel: config.name.clone(),
            message: error.to_string(),
        })?;
        Ok(Self {
            url: config.url.clone(),
            secret,
            client,
        })
    }

    /// Posts the notification as JSON with its signature headers.
    ///
    /// # Errors
    ///
    /// Returns [`DeliveryError`] as [`post_json`] classifies it.
    pub async fn send(&self, delivery: &Delivery<'_>) -> Result<(), DeliveryError> {
        let body = body(delivery).to_string().into_bytes();
        let timestamp = now_ms() / 1000;
        let signature = sign(self.secret.expose().as_bytes(), timestamp, &body);
        let request = self
            .client
            .post(&self.url)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, delivery.dedup_key);
        post_json(request, body).await
    }
}

/// Returns the JSON body of a delivery.
pub fn body(delivery: &Delivery<'_>) -> serde_json::Value {
    let payload = delivery.payload;
    json!({
        "delivery": delivery.dedup_key,
        "notification_id": delivery.id,
        "kind": payload.kind,
        "recipient": { "id": delivery.recipient.id, "name": delivery.recipient.display_name() },
        "subject": payload.subject(),
        "text": payload.text(),
        "alarm": payload.alarm,
        "transition": payload.transition,
        "operator": payload.operator,
        "reminder": payload.reminder,
        "escalation_level": payload.escalation_level,
        "held": payload.held,
        "held_total": payload.held_total,
        "dashboard_url": payload.dashboard_url,
    })
}

/// Returns the signature header value: `v1=` and the hex HMAC-SHA256 of `{timestamp}.{body}`
/// under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header value against `secret`, in constant time.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(digest) = header
        .strip_prefix("v1=")
        .and_then(|hex_text| hex::decode(hex_text).ok())
    else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign(b"key", 1_700_000_000, br#"{"a":1}"#),
            "v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }

    #[test]
    fn verify_rejects_a_changed_body_or_time() {
        let header = sign(b"key", 10, b"body");
        assert!(verify(b"key", 10, b"body", &header));
        assert!(!verify(b"key", 11, b"body", &header));
        assert!(!verify(b"key", 10, b"bodY", &header));
        assert!(!verify(b"other", 10, b"body", &header));
        assert!(!verify(b"key", 10, b"body", "v2=00"));
    }
}
