//! Authentication and per-farm access: verifying bearer tokens (RS256 JWTs as Amazon
//! Cognito issues them, or the engine's own local issuer) and the [`Principal`] they grant.
//!
//! The layer in [`layer`] runs in front of `/api/v1/` and `/ws` only; the dashboard's files,
//! `/metrics` and the health checks stay open, as a load balancer and a scraper need them.

pub mod config;
pub mod error;
pub mod keys;
pub mod layer;
pub mod local_issuer;
pub mod principal;
pub mod verifier;

use std::path::Path;

pub use config::{AuthConfig, AuthMode};
pub use error::AuthError;
pub use local_issuer::{LocalIssuer, LocalIssuerError, LocalUser};
pub use principal::{FarmScope, Principal, Role};

use keys::Keys;
use verifier::{ClaimNames, TokenVerifier};

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// When the token expires, in milliseconds since the Unix epoch; `None` with
    /// authentication off.
    pub expires_at: Option<i64>,
}

/// Errors setting up authentication at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    LocalIssuer(#[from] LocalIssuerError),
    #[error("{0}")]
    Keys(String),
}

/// How the engine checks callers: not at all, or with a token verifier.
pub struct Auth {
    verifier: Option<TokenVerifier>,
    local: Option<LocalIssuer>,
}

impl Auth {
    /// Sets up `config`, keeping the local issuer's key under `data_dir`.
    ///
    /// # Errors
    ///
    /// Returns [`AuthSetupError`] when the local key or the JWKS file cannot be loaded.
    pub fn start(config: &AuthConfig, data_dir: &Path) -> Result<Self, AuthSetupError> {
        let claims = ClaimNames {
            role: config.role_claim.clone(),
            farms: config.farms_claim.clone(),
        };
        match config.mode {
            AuthMode::Off => Ok(Self {
                verifier: None,
                local: None,
            }),
            AuthMode::Local => {
                let issuer = LocalIssuer::load_or_create(data_dir, config.token_ttl)?;
                let verifier = TokenVerifier::new(
                    Keys::fixed(issuer.key_set()),
                    local_issuer::LOCAL_ISSUER.to_owned(),
                    vec![local_issuer::LOCAL_AUDIENCE.to_owned()],
                    claims,
                    config.leeway,
                );
                Ok(Self {
                    verifier: Some(verifier),
                    local: Some(issuer),
                })
            }
            AuthMode::Jwt => {
                let keys = match (&config.jwks_file, &config.jwks_url) {
                    (Some(path), _) => Keys::from_file(path).map_err(AuthSetupError::Keys)?,
                    (None, Some(url)) => Keys::from_url(url.clone(), config.jwks_refresh),
                    (None, None) => {
                        return Err(AuthSetupError::Keys(
                            "set `auth.jwks_url` or `auth.jwks_file`".to_owned(),
                        ));
                    }
                };
                let verifier = TokenVerifier::new(
                    keys,
                    config.issuer.clone().unwrap_or_default(),
                    config.audience.clone(),
                    claims,
                    config.leeway,
                );
                Ok(Self {
                    verifier: Some(verifier),
                    local: None,
                })
            }
        }
    }

    /// No authentication: every caller is an admin.
    pub fn off() -> Self {
        Self {
            verifier: None,
            local: None,
        }
    }

    /// Returns the local issuer, in local mode.
    pub fn local_issuer(&self) -> Option<&LocalIssuer> {
        self.local.as_ref()
    }

    /// Returns true unless authentication is off.
    pub fn is_enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Verifies the bearer token of a request.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError::Missing`] without a token, or why the token was refused.
    pub async fn verify(&self, token: Option<&str>) -> Result<Caller, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Caller {
                principal: Principal::unauthenticated(),
                expires_at: None,
            });
        };
        let token = token
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        let verified = verifier.verify(token).await?;
        Ok(Caller {
            principal: verified.principal,
            expires_at: Some(verified.expires_at),
        })
    }
}
