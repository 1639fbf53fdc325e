//! Verification of bearer tokens: RS256 signature by a known key, issuer, audience, expiry,
//! then the role and farms the claims grant.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::error::AuthError;
use super::keys::{KeyLookupError, Keys};
use super::principal::{FarmScope, Principal, Role};

/// Claims that grant a role and farms, as configured.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub role: String,
    pub farms: String,
}

/// A verified token: who is calling and until when.
#[derive(Debug, Clone)]
pub struct Verified {
    pub principal: Principal,
    /// `exp`, in milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// Checks tokens of one issuer.
pub struct TokenVerifier {
    keys: Keys,
    issuer: String,
    audience: Vec<String>,
    claims: ClaimNames,
    leeway_secs: u64,
}

impl TokenVerifier {
    pub fn new(
        keys: Keys,
        issuer: String,
        audience: Vec<String>,
        claims: ClaimNames,
        leeway: std::time::Duration,
    ) -> Self {
        Self {
            keys,
            issuer,
            audience,
            claims,
            leeway_secs: leeway.as_secs(),
        }
    }

    /// Verifies `token` and returns what it grants.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError`]: `Expired`, `Invalid` with the reason, `NoRole`, or
    /// `KeysUnavailable` when the issuer's keys could not be fetched.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthError::Invalid(format!("malformed token ({error})")))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted; tokens must be signed with RS256",
                header.alg
            )));
        }
        let key_id = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the header has no `kid`".to_owned()))?;
        let key = self.keys.key(&key_id).await.map_err(|error| match error {
            KeyLookupError::UnknownKey => {
                AuthError::Invalid(format!("no issuer key has id `{key_id}`"))
            }
            KeyLookupError::Unavailable => {
                AuthError::KeysUnavailable("the JWKS could not be fetched".to_owned())
            }
        })?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation())
            .map_err(decode_error)?;
        let claims = data.claims;
        self.check_audience(&claims)?;
        let principal = principal_of(&claims, &self.claims)?;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_i64)
            .map_or(i64::MAX, |exp| exp.saturating_mul(1000));
        Ok(Verified {
            principal,
            expires_at,
        })
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        validation
    }

    /// Matches `aud` of ID tokens, or `client_id` of Cognito access tokens, against the
    /// configured audiences.
    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let token_use = claims.get("token_use").and_then(Value::as_str);
        let presented: Vec<&str> = match token_use {
            Some("access") => claims
                .get("client_id")
                .and_then(Value::as_str)
                .into_iter()
                .collect(),
            Some("id") | None => strings(claims.get("aud")),
            Some(other) => {
                return Err(AuthError::Invalid(format!(
                    "`token_use` is \"{other}\"; send an ID or access token"
                )));
            }
        };
        if presented
            .iter()
            .any(|audience| self.audience.iter().any(|allowed| allowed == audience))
        {
            Ok(())
        } else {
            Err(AuthError::Invalid(
                "the token was issued for another audience".to_owned(),
            ))
        }
    }
}

fn decode_error(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidSignature => {
            AuthError::Invalid("the signature does not match the issuer's key".to_owned())
        }
        ErrorKind::InvalidIssuer => {
            AuthError::Invalid("the token comes from another issuer".to_owned())
        }
        ErrorKind::ImmatureSignature => {
            AuthError::Invalid("the token is not valid yet (`nbf`)".to_owned())
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Invalid(format!("the token has no `{claim}` claim"))
        }
        _ => AuthError::Invalid(format!("{error}")),
    }
}

/// Reads the role, farms and names of verified claims.
fn principal_of(claims: &Map<String, Value>, names: &ClaimNames) -> Result<Principal, AuthError> {
    let role = role_of(claims, &names.role).ok_or_else(|| AuthError::NoRole {
        claim: names.role.clone(),
    })?;
    let farms = match role {
        Role::Admin => FarmScope::All,
        Role::Operator | Role::FarmViewer => farms_of(claims.get(&names.farms)),
    };
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = ["email", "name", "cognito:username", "username"]
        .iter()
        .find_map(|claim| claims.get(*claim).and_then(Value::as_str))
        .unwrap_or(&subject)
        .to_owned();
    Ok(Principal {
        subject,
        name,
        role,
        farms,
    })
}

/// Returns the role claim, else the most privileged role among `cognito:groups`.
fn role_of(claims: &Map<String, Value>, role_claim: &str) -> Option<Role> {
    if let Some(role) = claims.get(role_claim).and_then(Value::as_str) {
        return Role::parse(role);
    }
    let groups = strings(claims.get("cognito:groups"));
    [Role::Admin, Role::Operator, Role::FarmViewer]
        .into_iter()
        .find(|role| groups.iter().any(|group| Role::parse(group) == Some(*role)))
}

/// Returns the farms claim, given as a JSON array or a comma-separated string. `*` is every
/// farm.
fn farms_of(claim: Option<&Value>) -> FarmScope {
    let names: Vec<&str> = match claim {
        Some(Value::String(list)) => list.split(',').map(str::trim).collect(),
        other => strings(other),
    };
    if names.contains(&"*") {
        return FarmScope::All;
    }
    FarmScope::Only(
        names
            .into_iter()
            .filter(|name| !name.is_empty())
            .map(Arc::from)
            .collect(),
    )
}

/// Returns a claim that is a string or an array of strings as a list.
fn strings(claim: Option<&Value>) -> Vec<&str> {
    match claim {
        Some(Value::String(single)) => vec![single.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> ClaimNames {
        ClaimNames {
            role: "custom:role".into(),
            farms: "custom:farms".into(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn farms_claim_reads_comma_string_and_array() {
        let scope = farms_of(Some(&json!("north, south")));
        assert!(scope.contains(Some("south")));
        assert!(farms_of(Some(&json!(["north"]))).contains(Some("north")));
        assert_eq!(farms_of(Some(&json!("*"))), FarmScope::All);
        assert!(!farms_of(None).contains(Some("north")));
    }

    #[test]
    fn role_falls_back_to_most_privileged_cognito_group() {
        let groups = claims(json!({"cognito:groups": ["farm_viewer", "operator"]}));
        assert_eq!(role_of(&groups, "custom:role"), Some(Role::Operator));
        let neither = claims(json!({"cognito:groups": ["staff"]}));
        assert_eq!(role_of(&neither, "custom:role"), None);
    }

    #[test]
    fn admin_sees_every_farm_whatever_the_claim() {
        let principal = principal_of(
            &claims(json!({"sub": "a", "custom:role": "admin", "custom:farms": "north"})),
            &names(),
        )
        .expect("a role");
        assert_eq!(principal.farms, FarmScope::All);
    }

    #[test]
    fn unknown_role_is_refused() {
        let result = principal_of(
            &claims(json!({"sub": "a", "custom:role": "root"})),
            &names(),
        );
        assert!(matches!(result, Err(AuthError::NoRole { .. })));
    }
}
