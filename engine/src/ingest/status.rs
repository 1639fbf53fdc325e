//! Presence payloads on `{prefix}/{device_id}/status`, typically the device's MQTT last will.

/// Error parsing a status payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "status payload {0:?} is not understood; send `online` or `offline`, or {{\"online\": true|false}}"
)]
pub struct StatusError(pub String);

/// Parses `online` / `offline` as plain text, or JSON `{"online": bool}`,
/// `{"status": "online"}` or `{"state": "offline"}`.
///
/// # Errors
///
/// Returns [`StatusError`] quoting the start of the payload.
pub fn parse(payload: &[u8]) -> Result<bool, StatusError> {
    let text = String::from_utf8_lossy(payload);
    let trimmed = text.trim();
    if let Some(online) = word_to_presence(trimmed.trim_matches('"')) {
        return Ok(online);
    }
    let presence = serde_json::from_str::<serde_json::Value>(trimmed)
        .ok()
        .and_then(|json| {
            if let Some(online) = json.get("online").and_then(serde_json::Value::as_bool) {
                return Some(online);
            }
            ["status", "state"].iter().find_map(|field| {
                json.get(field)
                    .and_then(serde_json::Value::as_str)
                    .and_then(word_to_presence)
            })
        });
    presence.ok_or_else(|| StatusError(trimmed.chars().take(64).collect()))
}

fn word_to_presence(word: &str) -> Option<bool> {
    match word.to_ascii_lowercase().as_str() {
        "online" | "connected" | "up" => Some(true),
        "offline" | "disconnected" | "down" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_words_and_json() {
        assert_eq!(parse(b"online"), Ok(true));
        assert_eq!(parse(b" OFFLINE\n"), Ok(false));
        assert_eq!(parse(br#"{"online":false}"#), Ok(false));
        assert_eq!(parse(br#"{"status":"online"}"#), Ok(true));
        assert_eq!(parse(br#"{"state":"offline","reason":"lwt"}"#), Ok(false));
        assert_eq!(parse(br#""online""#), Ok(true));
    }

    #[test]
    fn parse_rejects_other_payloads() {
        assert!(parse(b"maybe").is_err());
        assert!(parse(br#"{"online":"yes"}"#).is_err());
        assert!(parse(b"").is_err());
    }
}
