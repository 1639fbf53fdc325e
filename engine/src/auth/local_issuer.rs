//! The embedded token issuer of `mode = "local"`: an RSA key kept in the data directory
//! signs RS256 tokens shaped like Amazon Cognito's, which the engine then verifies through
//! the same path as tokens of an external issuer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::keys::KeySet;
use super::principal::Role;

/// `iss` of the tokens the local issuer signs.
pub const LOCAL_ISSUER: &str = "valmetal-local";
/// `aud` of the tokens the local issuer signs.
pub const LOCAL_AUDIENCE: &str = "valmetal-dashboard";
/// File of the signing key under the data directory, PKCS#8 DER.
const KEY_FILE: &str = "auth/local-issuer.pk8";

/// Errors loading or creating the local issuer's key.
#[derive(Debug, thiserror::Error)]
pub enum LocalIssuerError {
    #[error(
        "cannot read or write the local issuer key {path}: {source}; check that the data directory is writable"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the local issuer key {path} is damaged; delete it to make a new one (tokens signed before stop working)"
    )]
    Damaged { path: PathBuf },
    #[error("the local issuer could not {0}")]
    Crypto(&'static str),
}

/// Who a local token is for.
#[derive(Debug, Clone)]
pub struct LocalUser {
    pub name: String,
    pub role: Role,
    /// Farm ids, or empty for every farm (admins see every farm anyway).
    pub farms: Vec<String>,
}

/// Signs tokens with the key of one data directory.
pub struct LocalIssuer {
    key_pair: RsaKeyPair,
    key_id: String,
    ttl: Duration,
}

impl LocalIssuer {
    /// Loads the key of `data_dir`, creating it (mode 0600) on first use.
    ///
    /// # Errors
    ///
    /// Returns [`LocalIssuerError`] when the key cannot be read, written or parsed.
    pub fn load_or_create(data_dir: &Path, ttl: Duration) -> Result<Self, LocalIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let key_pair = match std::fs::read(&path) {
            Ok(der) => RsaKeyPair::from_pkcs8(&der)
                .map_err(|_| LocalIssuerError::Damaged { path: path.clone() })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => create_key(&path)?,
            Err(source) => return Err(LocalIssuerError::Io { path, source }),
        };
        let digest = Sha256::digest(key_pair.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(&digest[..12]);
        Ok(Self {
            key_pair,
            key_id,
            ttl,
        })
    }

    /// Returns a token for `user`, valid from now for the configured lifetime.
    ///
    /// # Errors
    ///
    /// Returns [`LocalIssuerError::Crypto`] if signing fails.
    pub fn sign(&self, user: &LocalUser) -> Result<String, LocalIssuerError> {
        let now = valmetal_actors::clock::now_ms() / 1000;
        let expires = now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let farms = if user.farms.is_empty() {
            "*".to_owned()
        } else {
            user.farms.join(",")
        };
        self.sign_claims(&json!({
            "iss": LOCAL_ISSUER,
            "aud": LOCAL_AUDIENCE,
            "sub": format!("local:{}", user.name),
            "name": user.name,
            "token_use": "id",
            "custom:role": user.role.as_str(),
            "custom:farms": farms,
            "iat": now,
            "exp": expires,
        }))
    }

    /// Signs `claims` as they are, with this issuer's key and key id. Tools and tests use
    /// it to make tokens shaped like another issuer's.
    ///
    /// # Errors
    ///
    /// Returns [`LocalIssuerError::Crypto`] if signing fails.
    pub fn sign_claims(&self, claims: &Value) -> Result<String, LocalIssuerError> {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.key_id });
        let signing_input = format!("{}.{}", encode_part(&header), encode_part(claims));
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| LocalIssuerError::Crypto("sign a token"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// Returns the public key as a JWKS document.
    pub fn jwks(&self) -> Value {
        let public = self.key_pair.public_key();
        json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": self.key_id,
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            }]
        })
    }

    /// Returns the public key as verification keys.
    pub fn key_set(&self) -> KeySet {
        KeySet::from_json(&self.jwks().to_string())
            .expect("the local issuer's own JWKS holds its RSA key")
    }
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Makes a 2048-bit key and writes it to `path`, readable by the owner only.
fn create_key(path: &Path) -> Result<RsaKeyPair, LocalIssuerError> {
    let io = |source| LocalIssuerError::Io {
        path: path.to_owned(),
        source,
    };
    let key_pair = RsaKeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| LocalIssuerError::Crypto("generate a key"))?;
    let der = key_pair
        .as_der()
        .map_err(|_| LocalIssuerError::Crypto("encode its key"))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    write_private(path, der.as_ref()).map_err(io)?;
    Ok(key_pair)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_survives_a_reload() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ttl = Duration::from_secs(60);
        let first = LocalIssuer::load_or_create(dir.path(), ttl).expect("a new key");
        let again = LocalIssuer::load_or_create(dir.path(), ttl).expect("the stored key");
        assert_eq!(first.key_id, again.key_id);
        assert_eq!(first.jwks(), again.jwks());
    }

    #[test]
    fn damaged_key_names_the_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(dir.path().join("auth")).expect("auth directory");
        std::fs::write(dir.path().join(KEY_FILE), b"not a key").expect("write");
        let error = LocalIssuer::load_or_create(dir.path(), Duration::from_secs(60))
            .err()
            .expect("a damaged key");
        assert!(error.to_string().contains("local-issuer.pk8"), "{error}");
    }
}
