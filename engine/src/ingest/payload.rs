//! Decoding and validation of telemetry payloads.
//!
//! A payload is one frame, `{"ts": ..., "seq": ..., "values": {...}}`, or a JSON array of
//! frames. `ts` is epoch milliseconds or an RFC 3339 string; `seq` is optional; each value is
//! a finite number, a boolean or a string. Anything else is rejected with a reason that names
//! the offending field.

use std::sync::Arc;

use chrono::DateTime;
use serde::Deserialize;
use valmetal_actors::{Frame, Value};

/// The highest `mqtt.max_payload_bytes` the configuration accepts (16 MiB).
pub const MAX_PAYLOAD_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// Frames one message may carry.
pub const MAX_FRAMES_PER_MESSAGE: usize = 1000;
/// Keys one frame may carry.
pub const MAX_KEYS_PER_FRAME: usize = 256;
/// Maximum key length, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Maximum string value length, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Earliest accepted device time: 2000-01-01T00:00:00Z. Earlier values are almost always
/// seconds sent where milliseconds belong.
pub const MIN_TS_MS: i64 = 946_684_800_000;
/// How far ahead of the engine's clock a device time may be, in milliseconds (five minutes).
/// A frame from further ahead would make every later frame of that device look late, and late
/// frames never change alarms, so one bad clock could silence a device's alarms.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// Error decoding a payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is {size} bytes; the limit is {limit} (`mqtt.max_payload_bytes`)")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is empty; send a JSON frame object or an array of frames")]
    Empty,
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("message has {count} frames; the limit is {MAX_FRAMES_PER_MESSAGE}, split it")]
    TooManyFrames { count: usize },
    #[error("frame {index}: {reason}")]
    InvalidFrame { index: usize, reason: String },
}

impl PayloadError {
    /// Returns a short stable name of the reason, for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Empty => "empty",
            Self::InvalidJson(_) => "invalid_json",
            Self::TooManyFrames { .. } => "too_many_frames",
            Self::InvalidFrame { .. } => "invalid_frame",
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPayload {
    Many(Vec<serde_json::Value>),
    One(serde_json::Value),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrame {
    ts: serde_json::Value,
    #[serde(default)]
    seq: Option<u64>,
    values: serde_json::Map<String, serde_json::Value>,
}

/// Decodes a payload into frames, checked against the limits above and `max_bytes`.
/// `now_ms` is the engine's clock, for the future-time check.
///
/// # Errors
///
/// Returns [`PayloadError`] naming the first problem; a payload is accepted or rejected whole.
pub fn decode(payload: &[u8], max_bytes: usize, now_ms: i64) -> Result<Vec<Frame>, PayloadError> {
    if payload.len() > max_bytes {
        return Err(PayloadError::TooLarge {
            size: payload.len(),
            limit: max_bytes,
        });
    }
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(PayloadError::Empty);
    }
    if let Some(decoded) = decode_typed(payload, now_ms) {
        return decoded;
    }
    let raw: RawPayload = serde_json::from_slice(payload)
        .map_err(|error| PayloadError::InvalidJson(error.to_string()))?;
    let items = match raw {
        RawPayload::Many(items) => items,
        RawPayload::One(item) => vec![item],
    };
    check_count(items.len())?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            decode_frame(item, now_ms)
                .map_err(|reason| PayloadError::InvalidFrame { index, reason })
        })
        .collect()
}

/// Decodes a payload of well-formed frames straight into [`RawFrame`]s, without building a
/// JSON tree first, which costs more than the rest of decoding. Returns `None` when the
/// payload does not have that shape, so that the general path finds and names the problem.
/// Both paths apply the same checks to each frame.
fn decode_typed(payload: &[u8], now_ms: i64) -> Option<Result<Vec<Frame>, PayloadError>> {
    let first = payload.iter().find(|byte| !byte.is_ascii_whitespace())?;
    let frames: Vec<RawFrame> = match first {
        b'{' => vec![serde_json::from_slice(payload).ok()?],
        b'[' => serde_json::from_slice(payload).ok()?,
        _ => return None,
    };
    if let Err(error) = check_count(frames.len()) {
        return Some(Err(error));
    }
    let decoded = frames
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            frame_of(raw, now_ms).map_err(|reason| PayloadError::InvalidFrame { index, reason })
        })
        .collect();
    Some(decoded)
}

fn check_count(count: usize) -> Result<(), PayloadError> {
    if count == 0 {
        return Err(PayloadError::Empty);
    }
    if count > MAX_FRAMES_PER_MESSAGE {
        return Err(PayloadError::TooManyFrames { count });
    }
    Ok(())
}

fn decode_frame(item: serde_json::Value, now_ms: i64) -> Result<Frame, String> {
    if !item.is_object() {
        return Err(format!(
            "expected an object with `ts` and `values`, got {}",
            json_kind(&item)
        ));
    }
    let raw: RawFrame = serde_json::from_value(item).map_err(|error| error.to_string())?;
    frame_of(raw, now_ms)
}

/// Checks one frame's time and values and converts it.
fn frame_of(raw: RawFrame, now_ms: i64) -> Result<Frame, String> {
    let ts = decode_ts(&raw.ts, now_ms)?;
    if raw.values.is_empty() {
        return Err("`values` is empty; send at least one key".to_owned());
    }
    if raw.values.len() > MAX_KEYS_PER_FRAME {
        return Err(format!(
            "`values` has {} keys; the limit is {MAX_KEYS_PER_FRAME}",
            raw.values.len()
        ));
    }
    let values = raw
        .values
        .into_iter()
        .map(|(key, value)| decode_value(&key, value).map(|value| (Arc::from(key), value)))
        .collect::<Result<_, _>>()?;
    Ok(Frame {
        ts,
        seq: raw.seq,
        values,
    })
}

fn decode_ts(raw: &serde_json::Value, now_ms: i64) -> Result<i64, String> {
    let ts = match raw {
        serde_json::Value::Number(number) => number
            .as_i64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|value| value.fract() == 0.0 && value.abs() < 9.0e15)
                    .map(|value| value as i64)
            })
            .ok_or_else(|| format!("`ts` {number} is not a whole number of milliseconds"))?,
        serde_json::Value::String(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|error| {
                format!("`ts` \"{text}\" is not RFC 3339 ({error}); e.g. 2022-01-01T00:04:32Z")
            })?
            .timestamp_millis(),
        other => {
            return Err(format!(
                "`ts` must be epoch milliseconds or an RFC 3339 string, got {}",
                json_kind(other)
            ));
        }
    };
    if ts < MIN_TS_MS {
        return Err(format!(
            "`ts` {ts} is before 2000-01-01; send milliseconds since the epoch, not seconds"
        ));
    }
    if ts > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(format!(
            "`ts` {ts} is more than 5 minutes ahead of the engine's clock; check the device clock"
        ));
    }
    Ok(ts)
}

/// Validates one key and its JSON value, returning the reason when either is invalid.
///
/// # Errors
///
/// Returns a message naming the key and what is wrong with it.
pub fn decode_value(key: &str, value: serde_json::Value) -> Result<Value, String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(format!(
            "key {key:?} is invalid; use 1 to {MAX_KEY_BYTES} bytes without control characters"
        ));
    }
    match value {
        serde_json::Value::Number(number) => match number.as_f64() {
            Some(finite) if finite.is_finite() => Ok(Value::Number(finite)),
            _ => Err(format!("`{key}` is {number}, which is not a finite number")),
        },
        serde_json::Value::Bool(flag) => Ok(Value::Bool(flag)),
        serde_json::Value::String(text) if text.len() <= MAX_TEXT_BYTES => {
            Ok(Value::Text(Arc::from(text)))
        }
        serde_json::Value::String(text) => Err(format!(
            "`{key}` is a string of {} bytes; the limit is {MAX_TEXT_BYTES}",
            text.len()
        )),
        other => Err(format!(
            "`{key}` is {}; values must be numbers, booleans or strings",
            json_kind(&other)
        )),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_764_800_000_000;
    const LIMIT: usize = 256 * 1024;

    fn decode_text(text: &str) -> Result<Vec<Frame>, PayloadError> {
        decode(text.as_bytes(), LIMIT, NOW)
    }

    fn reason_of(text: &str) -> String {
        decode_text(text).unwrap_err().to_string()
    }

    #[test]
    fn decode_accepts_single_frame() {
        let frames = decode_text(
            r#"{"ts":1641000000000,"seq":4,"values":{"w":3.5,"on":true,"mode":"auto"}}"#,
        )
        .unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].ts, 1_641_000_000_000);
        assert_eq!(frames[0].seq, Some(4));
        assert_eq!(frames[0].values.len(), 3);
        assert!(
            frames[0]
                .values
                .contains(&(Arc::from("w"), Value::Number(3.5)))
        );
        assert!(
            frames[0]
                .values
                .contains(&(Arc::from("on"), Value::Bool(true)))
        );
        assert!(
            frames[0]
                .values
                .contains(&(Arc::from("mode"), Value::Text(Arc::from("auto"))))
        );
    }

    #[test]
    fn decode_accepts_array_and_rfc3339() {
        let frames = decode_text(r#"[{"ts":"2022-01-01T00:04:32Z","values":{"w":1}},{"ts":"2022-01-01T01:04:32+01:00","values":{"w":2}}]"#).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].ts, 1_640_995_472_000);
        assert_eq!(frames[1].ts, 1_640_995_472_000);
        assert_eq!(frames[0].seq, None);
    }

    #[test]
    fn decode_rejects_non_finite_numbers() {
        assert!(
            reason_of(r#"{"ts":1641000000000,"values":{"t":NaN}}"#).starts_with("invalid JSON")
        );
        assert!(
            reason_of(r#"{"ts":1641000000000,"values":{"t":Infinity}}"#)
                .starts_with("invalid JSON")
        );
        assert!(
            reason_of(r#"{"ts":1641000000000,"values":{"t":1e400}}"#).starts_with("invalid JSON")
        );
    }

    #[test]
    fn decode_names_the_bad_field() {
        let cases = [
            (r#"{"values":{"w":1}}"#, "missing field `ts`"),
            (r#"{"ts":1641000000000}"#, "missing field `values`"),
            (r#"{"ts":1641000000000,"values":{}}"#, "`values` is empty"),
            (r#"{"ts":1641000000,"values":{"w":1}}"#, "not seconds"),
            (r#"{"ts":"yesterday","values":{"w":1}}"#, "not RFC 3339"),
            (r#"{"ts":1.5e11,"values":{"w":1}}"#, "before 2000"),
            (
                r#"{"ts":1641000000000.5,"values":{"w":1}}"#,
                "not a whole number",
            ),
            (r#"{"ts":true,"values":{"w":1}}"#, "got a boolean"),
            (r#"{"ts":1641000000000,"values":{"w":null}}"#, "`w` is null"),
            (
                r#"{"ts":1641000000000,"values":{"w":{"a":1}}}"#,
                "`w` is an object",
            ),
            (
                r#"{"ts":1641000000000,"values":{"w":1},"extra":1}"#,
                "unknown field `extra`",
            ),
            (
                r#"{"ts":1641000000000,"seq":-1,"values":{"w":1}}"#,
                "invalid value",
            ),
            (
                r#"{"ts":9999999999999,"values":{"w":1}}"#,
                "ahead of the engine's clock",
            ),
            ("[1]", "got a number"),
            ("[]", "payload is empty"),
            ("   ", "payload is empty"),
            (
                "{\"ts\":1641000000000,\"values\":{\"a\\nb\":1}}",
                "is invalid",
            ),
        ];
        for (payload, expected) in cases {
            let reason = reason_of(payload);
            assert!(reason.contains(expected), "{payload}: {reason}");
        }
    }

    #[test]
    fn decode_enforces_size_limits() {
        let big = format!(
            r#"{{"ts":1641000000000,"values":{{"s":"{}"}}}}"#,
            "x".repeat(MAX_TEXT_BYTES + 1)
        );
        assert!(reason_of(&big).contains("the limit is 1024"));
        let error = decode(big.as_bytes(), 100, NOW).unwrap_err();
        assert_eq!(
            error,
            PayloadError::TooLarge {
                size: big.len(),
                limit: 100
            }
        );
        let frame = r#"{"ts":1641000000000,"values":{"w":1}}"#;
        let many = format!("[{}]", vec![frame; MAX_FRAMES_PER_MESSAGE + 1].join(","));
        assert_eq!(
            decode_text(&many).unwrap_err(),
            PayloadError::TooManyFrames { count: 1001 }
        );
    }

    #[test]
    fn decode_reports_frame_index() {
        let error = decode_text(
            r#"[{"ts":1641000000000,"values":{"w":1}},{"ts":1641000000000,"values":{"w":[1]}}]"#,
        )
        .unwrap_err();
        assert!(
            matches!(error, PayloadError::InvalidFrame { index: 1, .. }),
            "{error}"
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, LIMIT, NOW);
        }

        #[test]
        fn decode_round_trips_numbers(ts in MIN_TS_MS..NOW, value in -1.0e12..1.0e12_f64) {
            let text = serde_json::json!({"ts": ts, "values": {"k": value}}).to_string();
            let frames = decode_text(&text).unwrap();
            prop_assert_eq!(frames[0].ts, ts);
            prop_assert_eq!(&frames[0].values[0].1, &Value::Number(value));
        }
    }
}
