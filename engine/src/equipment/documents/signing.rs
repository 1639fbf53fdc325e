//! Signed URLs of the disk store: an HMAC-SHA256 over the method, the document id and the
//! expiry time, so a URL grants one operation on one document until it expires.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key that signs and checks disk store URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("UrlSigner(***)")
    }
}

impl UrlSigner {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// Creates a signer with 32 random bytes, for a start without a configured key.
    pub fn random() -> Self {
        Self::new(rand::random::<[u8; 32]>().to_vec())
    }

    /// Returns the hex signature of `method` on `document_id` until `expires` (seconds since
    /// the Unix epoch).
    pub fn sign(&self, method: &str, document_id: &str, expires: i64) -> String {
        hex::encode(
            self.mac(method, document_id, expires)
                .finalize()
                .into_bytes(),
        )
    }

    /// Returns true when `signature` is the signature of the same request, compared in
    /// constant time.
    pub fn verify(&self, method: &str, document_id: &str, expires: i64, signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else {
            return false;
        };
        self.mac(method, document_id, expires)
            .verify_slice(&bytes)
            .is_ok()
    }

    fn mac(&self, method: &str, document_id: &str, expires: i64) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("{method}\n{document_id}\n{expires}").as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_binds_method_document_and_expiry() {
        let signer = UrlSigner::new(b"key".to_vec());
        let signature = signer.sign("GET", "doc_1", 100);
        assert!(signer.verify("GET", "doc_1", 100, &signature));
        assert!(!signer.verify("PUT", "doc_1", 100, &signature));
        assert!(!signer.verify("GET", "doc_2", 100, &signature));
        assert!(!signer.verify("GET", "doc_1", 101, &signature));
        assert!(!signer.verify("GET", "doc_1", 100, "zz"));
    }
}
