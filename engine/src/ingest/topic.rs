//! MQTT topic layout: `{prefix}/{device_id}/telemetry` for frames and
//! `{prefix}/{device_id}/status` for presence.

use valmetal_actors::{DeviceId, DeviceIdError};

/// Kind of message a topic under the prefix carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Telemetry,
    Status,
}

/// Error parsing a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic `{0}` is not under the configured prefix")]
    OutsidePrefix(String),
    #[error(
        "topic `{topic}` has no known kind; expected `{{prefix}}/{{device_id}}/telemetry` or `/status`"
    )]
    UnknownKind { topic: String },
    #[error("topic `{topic}`: {source}")]
    InvalidDeviceId {
        topic: String,
        source: DeviceIdError,
    },
}

/// Checks that `prefix` can stand before `/{device_id}/...` in topics and filters.
///
/// # Errors
///
/// Returns a phrase saying what is wrong, for use after the key name.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("is empty; set a prefix such as `valmetal/equipment`".to_owned());
    }
    if prefix.contains(['+', '#', '\0']) {
        return Err(format!(
            "`{prefix}` contains a wildcard or NUL; use plain topic levels"
        ));
    }
    if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
        return Err(format!(
            "`{prefix}` has an empty topic level; remove leading, trailing or doubled `/`"
        ));
    }
    Ok(())
}

/// Subscription filters for a prefix.
pub fn filters(prefix: &str) -> [String; 2] {
    [
        format!("{prefix}/+/telemetry"),
        format!("{prefix}/+/status"),
    ]
}

/// Returns the telemetry topic of a device.
pub fn telemetry_topic(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/telemetry")
}

/// Splits `topic` into the device id and the kind of message.
///
/// # Errors
///
/// Returns [`TopicError`] when the topic is outside `prefix`, has an unknown last level, or
/// carries an invalid device id.
pub fn parse(prefix: &str, topic: &str) -> Result<(DeviceId, TopicKind), TopicError> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| TopicError::OutsidePrefix(topic.to_owned()))?;
    let (device, kind) = rest
        .rsplit_once('/')
        .ok_or_else(|| TopicError::UnknownKind {
            topic: topic.to_owned(),
        })?;
    let kind = match kind {
        "telemetry" => TopicKind::Telemetry,
        "status" => TopicKind::Status,
        _ => {
            return Err(TopicError::UnknownKind {
                topic: topic.to_owned(),
            });
        }
    };
    let device = DeviceId::parse(device).map_err(|source| TopicError::InvalidDeviceId {
        topic: topic.to_owned(),
        source,
    })?;
    Ok((device, kind))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PREFIX: &str = "valmetal/equipment";

    #[test]
    fn parse_splits_device_and_kind() {
        let (device, kind) = parse(PREFIX, "valmetal/equipment/feedbin-006/telemetry").unwrap();
        assert_eq!(device.as_str(), "feedbin-006");
        assert_eq!(kind, TopicKind::Telemetry);
        let (_, kind) = parse(PREFIX, "valmetal/equipment/fan:1/status").unwrap();
        assert_eq!(kind, TopicKind::Status);
    }

    #[test]
    fn parse_rejects_extra_levels_as_invalid_id() {
        let error = parse(PREFIX, "valmetal/equipment/barn/bin/telemetry").unwrap_err();
        assert!(
            matches!(error, TopicError::InvalidDeviceId { .. }),
            "{error}"
        );
    }

    #[test]
    fn parse_rejects_other_prefixes_and_kinds() {
        assert!(matches!(
            parse(PREFIX, "valmetal/equipmentx/a/telemetry"),
            Err(TopicError::OutsidePrefix(_))
        ));
        assert!(matches!(
            parse(PREFIX, "valmetal/equipment/a/shadow"),
            Err(TopicError::UnknownKind { .. })
        ));
        assert!(matches!(
            parse(PREFIX, "valmetal/equipment/telemetry"),
            Err(TopicError::UnknownKind { .. })
        ));
        assert!(matches!(
            parse(PREFIX, "valmetal/equipment/../telemetry"),
            Err(TopicError::InvalidDeviceId { .. })
        ));
    }

    #[test]
    fn validate_prefix_rejects_wildcards_and_empty_levels() {
        assert!(validate_prefix("valmetal/equipment").is_ok());
        for prefix in ["", "a/+", "a/#", "/a", "a/", "a//b"] {
            assert!(validate_prefix(prefix).is_err(), "{prefix:?}");
        }
    }

    proptest! {
        #[test]
        fn telemetry_topic_round_trips(device in "[A-Za-z0-9_.:-]{1,128}") {
            prop_assume!(device != "." && device != "..");
            let topic = telemetry_topic(PREFIX, &device);
            let (parsed, kind) = parse(PREFIX, &topic).unwrap();
            prop_assert_eq!(parsed.as_str(), device.as_str());
            prop_assert_eq!(kind, TopicKind::Telemetry);
        }

        #[test]
        fn parse_never_panics(topic in "\\PC{0,200}") {
            let _ = parse(PREFIX, &topic);
        }
    }
}
