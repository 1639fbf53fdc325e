//! Secrets in the configuration: a value that is never printed, and where to read one from.
//!
//! A password or key never sits in the configuration file itself. The file names an
//! environment variable or a file (a mounted secret), and the engine reads the value at start.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A value that is never printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("***")
    }
}

impl Secret {
    /// Returns the secret's text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Source of a secret: exactly one of an environment variable or a file, such as
/// `{ env = "VALMETAL_SMTP_PASSWORD" }` or `{ file = "/run/secrets/smtp" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SecretInput")]
pub struct SecretSource {
    /// Name of the environment variable that contains the secret.
    pub env: Option<String>,
    /// Path of a file whose content, without a trailing newline, is the secret.
    pub file: Option<PathBuf>,
}

/// Configuration value in the place of a secret source. Anything but a table of `env`
/// or `file` is refused without repeating it, because it may be the secret itself written
/// inline.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretInput {
    Source(SourceFields),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFields {
    env: Option<String>,
    file: Option<PathBuf>,
}

impl TryFrom<SecretInput> for SecretSource {
    type Error = &'static str;

    fn try_from(input: SecretInput) -> Result<Self, Self::Error> {
        match input {
            SecretInput::Source(SourceFields { env, file }) => Ok(Self { env, file }),
            SecretInput::Other(_) => Err(
                "a secret is written as { env = \"VARIABLE\" } or { file = \"/path\" }, never inline; the value is not shown",
            ),
        }
    }
}

/// Errors reading a secret; the messages name the source, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("needs exactly one of `env` or `file`")]
    Ambiguous,
    #[error("environment variable {0} is not set or not valid UTF-8")]
    MissingVariable(String),
    #[error("cannot read secret file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("from {0} is empty")]
    Empty(String),
}

impl SecretSource {
    /// Reads the secret now.
    ///
    /// # Errors
    ///
    /// Returns [`SecretError`] when the source is not exactly one of `env` and `file`, when
    /// the variable or file is missing, or when the value is empty.
    pub fn read(&self) -> Result<Secret, SecretError> {
        let (text, origin) = match (&self.env, &self.file) {
            (Some(name), None) => {
                let text =
                    std::env::var(name).map_err(|_| SecretError::MissingVariable(name.clone()))?;
                (text, format!("environment variable {name}"))
            }
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|error| SecretError::Unreadable {
                        path: path.display().to_string(),
                        reason: error.to_string(),
                    })?;
                (text, format!("file {}", path.display()))
            }
            _ => return Err(SecretError::Ambiguous),
        };
        let text = text.trim_end_matches(['\r', '\n']).to_owned();
        if text.is_empty() {
            return Err(SecretError::Empty(origin));
        }
        Ok(Secret(text))
    }

    /// Returns a problem line when the source is not exactly one of `env` and `file`.
    pub fn problem(&self, key: &str) -> Option<String> {
        match (&self.env, &self.file) {
            (Some(name), None) if !name.is_empty() => None,
            (None, Some(_)) => None,
            _ => Some(format!(
                "`{key}` needs exactly one of `env` (a variable name) or `file` (a path)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "***");
    }

    #[test]
    fn secret_file_read_without_newline() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let source = SecretSource {
            env: None,
            file: Some(path),
        };
        assert_eq!(source.read().unwrap().expose(), "s3cret");
    }

    #[test]
    fn secret_source_needs_exactly_one() {
        let neither = SecretSource {
            env: None,
            file: None,
        };
        assert_eq!(neither.read(), Err(SecretError::Ambiguous));
        assert!(neither.problem("notify.x").is_some());
        let missing = SecretSource {
            env: Some("VALMETAL_TEST_SECRET_THAT_IS_NEVER_SET".into()),
            file: None,
        };
        let error = missing.read().unwrap_err().to_string();
        assert!(
            error.contains("VALMETAL_TEST_SECRET_THAT_IS_NEVER_SET"),
            "{error}"
        );
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        secret: SecretSource,
    }

    #[test]
    fn inline_secret_rejected_without_echo() {
        use figment::providers::{Format, Toml};
        let error = figment::Figment::from(Toml::string("secret = \"hunter2-value\""))
            .extract::<Holder>()
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("env"), "{error}");
    }

    #[test]
    fn secret_source_table_reads() {
        let holder: Holder = toml::from_str("secret = { env = \"SMTP_PASSWORD\" }").unwrap();
        assert_eq!(holder.secret.env.as_deref(), Some("SMTP_PASSWORD"));
    }
}
