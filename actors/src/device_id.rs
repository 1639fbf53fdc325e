//! Device identifiers: validation of the ids that equipment uses in topics and frames.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Maximum length of a device id, in characters.
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// A validated device id: 1 to 128 characters of `A-Z a-z 0-9 _ . : -`, and not `.` or `..`.
///
/// Cloning is cheap because the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(Arc<str>);

/// Reasons a device id is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    #[error("device id is empty; use 1 to {MAX_DEVICE_ID_LEN} characters of A-Z a-z 0-9 _ . : -")]
    Empty,
    #[error("device id is {length} characters long; the maximum is {MAX_DEVICE_ID_LEN}")]
    TooLong { length: usize },
    #[error("device id `{id}` contains {character:?}; use only A-Z a-z 0-9 _ . : -")]
    InvalidCharacter { id: String, character: char },
    #[error("device id `{0}` is reserved; `.` and `..` are not valid ids")]
    Reserved(String),
}

impl DeviceId {
    /// Validates `text` as a device id.
    ///
    /// # Errors
    ///
    /// Returns a [`DeviceIdError`] naming the first rule the text breaks.
    pub fn parse(text: &str) -> Result<Self, DeviceIdError> {
        validate(text)?;
        Ok(Self(Arc::from(text)))
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(text: &str) -> Result<(), DeviceIdError> {
    if text.is_empty() {
        return Err(DeviceIdError::Empty);
    }
    let length = text.chars().count();
    if length > MAX_DEVICE_ID_LEN {
        return Err(DeviceIdError::TooLong { length });
    }
    if let Some(character) = text.chars().find(|c| !is_allowed(*c)) {
        let id = text.chars().take(MAX_DEVICE_ID_LEN).collect();
        return Err(DeviceIdError::InvalidCharacter { id, character });
    }
    if text == "." || text == ".." {
        return Err(DeviceIdError::Reserved(text.to_owned()));
    }
    Ok(())
}

fn is_allowed(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | ':' | '-')
}

impl fmt::Display for DeviceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, formatter)
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::borrow::Borrow<str> for DeviceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parse_accepts_allowed_characters() {
        for id in ["feedbin-006", "a", "Barn_2:fan.3", "..."] {
            assert!(DeviceId::parse(id).is_ok(), "{id} should be valid");
        }
    }

    #[test]
    fn parse_rejects_wildcards_and_separators() {
        for id in ["bin/1", "bin+", "#", "bin 1", "bin\n1", "bïn"] {
            let error = DeviceId::parse(id).unwrap_err();
            assert!(
                matches!(error, DeviceIdError::InvalidCharacter { .. }),
                "{id}: {error}"
            );
        }
    }

    #[test]
    fn parse_rejects_dot_names_and_bad_lengths() {
        assert_eq!(
            DeviceId::parse(".").unwrap_err(),
            DeviceIdError::Reserved(".".into())
        );
        assert_eq!(
            DeviceId::parse("..").unwrap_err(),
            DeviceIdError::Reserved("..".into())
        );
        assert_eq!(DeviceId::parse("").unwrap_err(), DeviceIdError::Empty);
        let long = "x".repeat(MAX_DEVICE_ID_LEN + 1);
        assert_eq!(
            DeviceId::parse(&long).unwrap_err(),
            DeviceIdError::TooLong { length: 129 }
        );
        assert!(DeviceId::parse(&"x".repeat(MAX_DEVICE_ID_LEN)).is_ok());
    }

    proptest! {
        #[test]
        fn parse_matches_character_rule(text in "\\PC{0,140}") {
            let expected = !text.is_empty()
                && text.chars().count() <= MAX_DEVICE_ID_LEN
                && text.chars().all(is_allowed)
                && text != "." && text != "..";
            prop_assert_eq!(DeviceId::parse(&text).is_ok(), expected);
        }
    }
}
