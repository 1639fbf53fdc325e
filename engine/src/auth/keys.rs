//! The issuer's public keys (a JWKS), loaded from a file, fetched from a URL, or given by the
//! local issuer, and looked up by key id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use parking_lot::RwLock;
use tracing::{info, warn};

/// Shortest wait between two fetches caused by unknown key ids, so forged key ids cannot
/// make the engine hammer the issuer.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Maximum wait for the issuer's JWKS endpoint.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// RS256 verification keys by key id.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

impl KeySet {
    /// Takes the RSA signing keys of `jwks`; others (encryption keys, other algorithms, keys
    /// without an id) are skipped.
    ///
    /// # Errors
    ///
    /// Returns a reason when the document is not a JWKS or contains no usable key.
    pub fn from_json(jwks: &str) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|error| format!("not a JWKS: {error}"))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter(|jwk| jwk.common.public_key_use != Some(PublicKeyUse::Encryption))
            .filter(|jwk| {
                jwk.common
                    .key_algorithm
                    .is_none_or(|algorithm| algorithm == KeyAlgorithm::RS256)
            })
            .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
            .filter_map(|jwk| {
                let id = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|key| (id, key))
            })
            .collect();
        if keys.is_empty() {
            return Err("the JWKS holds no RSA signing key with a `kid`".to_owned());
        }
        Ok(Self { keys })
    }

    fn get(&self, key_id: &str) -> Option<&DecodingKey> {
        self.keys.get(key_id)
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Source of the keys.
pub enum KeySource {
    /// Fixed keys: a file read at start, or the local issuer's own key.
    Fixed(KeySet),
    /// An HTTPS endpoint fetched at start, every refresh interval, and on unknown key ids.
    Url {
        url: String,
        client: reqwest::Client,
        refresh: Duration,
    },
}

/// Shortest wait between two failed fetches.
const RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// The keys in use and the times of the last fetches.
#[derive(Clone, Default)]
struct KeyState {
    keys: Arc<KeySet>,
    /// Last successful fetch; `None` before the first.
    fetched: Option<Instant>,
    /// Last attempt, successful or not.
    attempted: Option<Instant>,
}

impl KeyState {
    /// Returns true when a fetch should run before looking up `key_id`.
    fn needs_fetch(&self, key_id: &str, refresh: Duration) -> bool {
        let elapsed = |at: Option<Instant>, interval| at.is_none_or(|at| at.elapsed() >= interval);
        let due = elapsed(self.fetched, refresh);
        let unknown =
            self.keys.get(key_id).is_none() && elapsed(self.fetched, MIN_REFETCH_INTERVAL);
        (due || unknown) && elapsed(self.attempted, RETRY_INTERVAL)
    }
}

/// The current keys, refreshed from their source.
pub struct Keys {
    source: KeySource,
    state: RwLock<KeyState>,
    fetching: tokio::sync::Mutex<()>,
}

impl Keys {
    /// Keys that never change.
    pub fn fixed(keys: KeySet) -> Self {
        Self::with_source(KeySource::Fixed(keys))
    }

    /// Reads a JWKS file.
    ///
    /// # Errors
    ///
    /// Returns a reason naming the file when it cannot be read or contains no usable key.
    pub fn from_file(path: &PathBuf) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read `auth.jwks_file` {}: {error}", path.display()))?;
        let keys = KeySet::from_json(&text)
            .map_err(|reason| format!("`auth.jwks_file` {}: {reason}", path.display()))?;
        Ok(Self::fixed(keys))
    }

    /// Keys fetched from `url`; the first fetch happens on the first token.
    pub fn from_url(url: String, refresh: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self::with_source(KeySource::Url {
            url,
            client,
            refresh,
        })
    }

    fn with_source(source: KeySource) -> Self {
        let state = match &source {
            KeySource::Fixed(keys) => KeyState {
                keys: Arc::new(keys.clone()),
                fetched: Some(Instant::now()),
                attempted: Some(Instant::now()),
            },
            KeySource::Url { .. } => KeyState::default(),
        };
        Self {
            source,
            state: RwLock::new(state),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Returns the key with id `key_id`, fetching the JWKS first when it is due, or when the
    /// id is unknown and the last fetch is over a minute old.
    ///
    /// # Errors
    ///
    /// Returns [`KeyLookupError`] when the key is unknown or no keys could be fetched yet.
    pub async fn key(&self, key_id: &str) -> Result<DecodingKey, KeyLookupError> {
        if let KeySource::Url { refresh, .. } = &self.source
            && self.state.read().needs_fetch(key_id, *refresh)
        {
            self.refetch(key_id, *refresh).await;
        }
        let state = self.state.read();
        match state.keys.get(key_id) {
            Some(key) => Ok(key.clone()),
            None if state.fetched.is_none() => Err(KeyLookupError::Unavailable),
            None => Err(KeyLookupError::UnknownKey),
        }
    }

    /// Fetches the JWKS unless a concurrent caller just did; keeps the old keys on failure.
    async fn refetch(&self, key_id: &str, refresh: Duration) {
        let KeySource::Url { url, client, .. } = &self.source else {
            return;
        };
        let _guard = self.fetching.lock().await;
        if !self.state.read().needs_fetch(key_id, refresh) {
            return;
        }
        let result = fetch(client, url).await;
        let mut state = self.state.write();
        state.attempted = Some(Instant::now());
        match result {
            Ok(keys) => {
                info!(jwks.url = %url, jwks.keys = keys.len(), "Issuer keys fetched");
                state.keys = Arc::new(keys);
                state.fetched = Some(Instant::now());
            }
            Err(reason) => warn!(jwks.url = %url, %reason, "Issuer keys could not be fetched"),
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<KeySet, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| format!("GET {url}: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    let text = response
        .text()
        .await
        .map_err(|error| format!("GET {url}: {error}"))?;
    KeySet::from_json(&text)
}

/// Reason a token's key could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookupError {
    /// No key has that id.
    UnknownKey,
    /// The keys could not be fetched yet.
    Unavailable,
}
