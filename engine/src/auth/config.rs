//! The `[auth]` section: how callers of the API and the WebSocket prove who they are.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest accepted clock leeway for `exp`, `nbf` and `iat`.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Bounds of the local issuer's token lifetime.
const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Source of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// The engine signs its own tokens with a key kept in `storage.data_dir`, and prints a
    /// sign-in link at start. For one machine and for trying the engine.
    Local,
    /// Tokens from an external issuer such as Amazon Cognito, checked against its JWKS.
    Jwt,
    /// No authentication: every caller is an admin of every farm. For closed test benches.
    Off,
}

/// Authentication of the API (`/api/v1/`) and the WebSocket (`/ws`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `local`, `jwt` or `off`. Default `local`.
    pub mode: AuthMode,
    /// With `jwt`: the `iss` every token must carry, e.g.
    /// `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf`. Required.
    pub issuer: Option<String>,
    /// With `jwt`: accepted audiences. A token matches by its `aud` (ID tokens) or, for
    /// Cognito access tokens (`token_use = "access"`), by its `client_id`. At least one.
    pub audience: Vec<String>,
    /// With `jwt`: where the issuer publishes its keys (HTTPS; plain HTTP only on loopback),
    /// e.g. `{issuer}/.well-known/jwks.json`. Exactly one of `jwks_url` and `jwks_file`.
    pub jwks_url: Option<String>,
    /// With `jwt`: a JWKS file read at start, for issuers without a reachable URL.
    pub jwks_file: Option<PathBuf>,
    /// How often the JWKS is fetched again from `jwks_url`. A token whose key id is unknown
    /// also triggers a fetch, at most once a minute. Default 1 h, at least 1 min.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// Claim naming the role: `admin`, `operator` or `farm_viewer`. Without it, the first
    /// of those names among `cognito:groups` is taken. Default `custom:role`.
    pub role_claim: String,
    /// Claim listing the farms: a JSON array or a comma-separated string (as Cognito custom
    /// attributes are); `*` is every farm. Admins see every farm regardless. Default
    /// `custom:farms`.
    pub farms_claim: String,
    /// Clock difference tolerated on `exp` and `nbf`. Default 30 s, at most 5 min.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// With `local`: lifetime of the tokens the engine signs. Default 12 h, 1 min to 30 days.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Local,
            issuer: None,
            audience: Vec::new(),
            jwks_url: None,
            jwks_file: None,
            jwks_refresh: Duration::from_secs(3600),
            role_claim: "custom:role".to_owned(),
            farms_claim: "custom:farms".to_owned(),
            leeway: Duration::from_secs(30),
            token_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

impl AuthConfig {
    /// Returns every problem of the section, each naming the key and what to set.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.leeway > MAX_LEEWAY {
            problems.push("`auth.leeway` must be at most 5m".to_owned());
        }
        if !(MIN_TOKEN_TTL..=MAX_TOKEN_TTL).contains(&self.token_ttl) {
            problems.push("`auth.token_ttl` must be between 1m and 30days".to_owned());
        }
        if self.jwks_refresh < Duration::from_secs(60) {
            problems.push("`auth.jwks_refresh` must be at least 1m".to_owned());
        }
        if self.role_claim.is_empty() || self.farms_claim.is_empty() {
            problems.push("`auth.role_claim` and `auth.farms_claim` must name a claim".to_owned());
        }
        match self.mode {
            AuthMode::Jwt => problems.extend(self.jwt_problems()),
            AuthMode::Local | AuthMode::Off => problems.extend(self.unused_jwt_keys()),
        }
        problems
    }

    fn jwt_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.issuer.as_deref().is_none_or(str::is_empty) {
            problems.push(
                "`auth.issuer` is required with mode = \"jwt\"; set the `iss` your identity provider signs, e.g. https://cognito-idp.REGION.amazonaws.com/POOL_ID".to_owned(),
            );
        }
        if self.audience.iter().all(String::is_empty) {
            problems.push(
                "`auth.audience` is required with mode = \"jwt\"; list the app client ids tokens are issued for".to_owned(),
            );
        }
        match (&self.jwks_url, &self.jwks_file) {
            (Some(url), None) => problems.extend(jwks_url_problem(url)),
            (None, Some(_)) => {}
            _ => problems.push(
                "set exactly one of `auth.jwks_url` and `auth.jwks_file` with mode = \"jwt\""
                    .to_owned(),
            ),
        }
        problems
    }

    fn unused_jwt_keys(&self) -> Vec<String> {
        let set = [
            ("issuer", self.issuer.is_some()),
            ("audience", !self.audience.is_empty()),
            ("jwks_url", self.jwks_url.is_some()),
            ("jwks_file", self.jwks_file.is_some()),
        ];
        set.iter()
            .filter(|(_, present)| *present)
            .map(|(key, _)| {
                format!(
                    "`auth.{key}` applies only with mode = \"jwt\"; set the mode or remove the key"
                )
            })
            .collect()
    }
}

/// Returns why `url` cannot serve a JWKS, if it cannot: it must be HTTPS, or plain HTTP on a
/// loopback address.
fn jwks_url_problem(url: &str) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(error) => return Some(format!("`auth.jwks_url` \"{url}\" is not a URL ({error})")),
    };
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => None,
        "http" if loopback => None,
        _ => Some(format!(
            "`auth.jwks_url` \"{url}\" must use https (plain http only on a loopback address)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_mode_requires_issuer_audience_and_one_key_source() {
        let config = AuthConfig {
            mode: AuthMode::Jwt,
            ..AuthConfig::default()
        };
        let problems = config.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("auth.issuer"));
    }

    #[test]
    fn jwks_url_must_be_https_off_loopback() {
        assert!(jwks_url_problem("http://idp.example.com/jwks.json").is_some());
        assert!(jwks_url_problem("http://127.0.0.1:9000/jwks.json").is_none());
        assert!(jwks_url_problem("https://idp.example.com/jwks.json").is_none());
    }

    #[test]
    fn local_mode_names_unused_jwt_keys() {
        let config = AuthConfig {
            issuer: Some("https://idp".into()),
            ..AuthConfig::default()
        };
        assert_eq!(config.problems().len(), 1);
    }
}
