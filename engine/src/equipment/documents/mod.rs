//! Equipment documents: the file store (local disk by default, Amazon S3 in production), the
//! short-lived URLs through which files go up and down, and the size and type limits.
//!
//! An upload is two steps. `POST /api/v1/equipment/{id}/documents` checks the limits, records
//! the metadata as `pending` and returns a signed PUT URL; after the PUT, `.../complete`
//! checks that the file is in the store with the announced size and marks it `stored`.

pub mod disk;
pub mod s3;
pub mod signing;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use valmetal_actors::clock::now_ms;

use self::disk::DiskFiles;
use self::s3::S3Files;
use self::signing::UrlSigner;
use super::config::{DocumentBackend, DocumentsConfig};

/// Path under which the engine serves the disk store's signed URLs.
pub const DISK_URL_PATH: &str = "/api/v1/document-files";

/// Errors of the document store.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("document store failed: {0}")]
    Store(String),
    #[error("cannot read `equipment.documents.signing_key`: {0}")]
    SigningKey(String),
}

/// A request a client makes itself: the method, the URL and the headers it must send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignedRequest {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// Where document files are kept.
#[derive(Debug, Clone)]
pub enum FileStore {
    Disk { files: DiskFiles, signer: UrlSigner },
    S3(S3Files),
}

impl FileStore {
    /// Opens the store `config` names; `data_dir` holds the disk store by default. With
    /// `create_bucket`, a missing S3 bucket is created, for emulators and first trials.
    ///
    /// # Errors
    ///
    /// Returns [`DocumentError`] when the configured signing key cannot be read or the
    /// bucket cannot be created.
    pub async fn open(
        config: &DocumentsConfig,
        data_dir: &std::path::Path,
        create_bucket: bool,
    ) -> Result<Self, DocumentError> {
        match config.backend {
            DocumentBackend::Disk => {
                let dir = config
                    .dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("documents"));
                let signer = match &config.signing_key {
                    Some(source) => UrlSigner::new(
                        source
                            .read()
                            .map_err(|error| DocumentError::SigningKey(error.to_string()))?
                            .expose()
                            .as_bytes()
                            .to_vec(),
                    ),
                    None => UrlSigner::random(),
                };
                Ok(Self::Disk {
                    files: DiskFiles::new(dir),
                    signer,
                })
            }
            DocumentBackend::S3 => {
                let files = S3Files::new(config).await;
                if create_bucket {
                    files.create_bucket().await?;
                }
                Ok(Self::S3(files))
            }
        }
    }

    /// Returns the request that uploads `size` bytes of `content_type` as `document_id`.
    ///
    /// # Errors
    ///
    /// Returns [`DocumentError::Store`] when S3 presigning fails.
    pub async fn upload_request(
        &self,
        document_id: &str,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, DocumentError> {
        match self {
            Self::Disk { signer, .. } => {
                let mut request = disk_request(signer, "PUT", document_id, ttl);
                request
                    .headers
                    .insert("content-type".to_owned(), content_type.to_owned());
                Ok(request)
            }
            Self::S3(files) => files.upload_url(key, content_type, size, ttl).await,
        }
    }

    /// Returns the request that downloads `document_id`.
    ///
    /// # Errors
    ///
    /// Returns [`DocumentError::Store`] when S3 presigning fails.
    pub async fn download_request(
        &self,
        document_id: &str,
        key: &str,
        file_name: &str,
        ttl: Duration,
    ) -> Result<SignedRequest, DocumentError> {
        match self {
            Self::Disk { signer, .. } => Ok(disk_request(signer, "GET", document_id, ttl)),
            Self::S3(files) => files.download_url(key, file_name, ttl).await,
        }
    }

    /// Returns the stored size of `key`, or `None` when nothing is stored under it.
    ///
    /// # Errors
    ///
    /// Returns [`DocumentError::Store`] when the store cannot be read.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, DocumentError> {
        match self {
            Self::Disk { files, .. } => files.size_of(key).await,
            Self::S3(files) => files.size_of(key).await,
        }
    }

    /// Deletes `key`.
    ///
    /// # Errors
    ///
    /// Returns [`DocumentError::Store`] when the store refuses.
    pub async fn delete(&self, key: &str) -> Result<(), DocumentError> {
        match self {
            Self::Disk { files, .. } => files.delete(key).await,
            Self::S3(files) => files.delete(key).await,
        }
    }
}

/// Returns a signed URL of the engine's own file route, relative to the engine's address.
fn disk_request(
    signer: &UrlSigner,
    method: &str,
    document_id: &str,
    ttl: Duration,
) -> SignedRequest {
    let expires = now_ms() / 1000 + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let signature = signer.sign(method, document_id, expires);
    SignedRequest {
        method: method.to_owned(),
        url: format!("{DISK_URL_PATH}/{document_id}?expires={expires}&signature={signature}"),
        headers: BTreeMap::new(),
    }
}

/// Returns a `Content-Disposition` value that downloads the file as `file_name`: an ASCII
/// `filename` for old clients and the exact name, percent-encoded, in `filename*` (RFC 6266).
pub fn attachment(file_name: &str) -> String {
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(file_name, FILENAME_ESCAPES);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Bytes escaped in a `filename*` value: all but RFC 5987's `attr-char`.
const FILENAME_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Returns the name to store for an uploaded file: its last path segment, without control
/// characters and surrounding spaces, so `C:\scans\report.pdf` gives `report.pdf`.
pub fn clean_file_name(file_name: &str) -> String {
    let last = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    last.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_keeps_exact_name_in_extended_parameter() {
        assert_eq!(
            attachment("Prüfbericht 3.pdf"),
            "attachment; filename=\"Pr_fbericht 3.pdf\"; filename*=UTF-8''Pr%C3%BCfbericht%203.pdf"
        );
        assert_eq!(
            attachment("a\"b.txt"),
            "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"
        );
    }

    #[test]
    fn clean_file_name_drops_folders_and_control_characters() {
        assert_eq!(clean_file_name("C:\\scans\\report.pdf"), "report.pdf");
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name(" manual\n.pdf "), "manual.pdf");
    }
}
