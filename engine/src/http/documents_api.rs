//! Equipment documents under `/api/v1/equipment/{id}/documents`, and the disk store's signed
//! file URLs under `/api/v1/document-files/{document}`.
//!
//! The metadata routes check the caller's farms like every equipment route. The file routes
//! check only the URL's signature and expiry: the URL itself is the grant, handed out by a
//! metadata route that did check the farm.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use valmetal_actors::clock::now_ms;

use super::HttpState;
use super::api::{ApiError, ApiPath, ApiQuery, JsonBody};
use super::equipment_api::{new_id, require_change, store_failed, visible_record};
use crate::auth::Principal;
use crate::equipment::documents::{DocumentError, FileStore, attachment, clean_file_name};
use crate::store::documents::{DocumentKind, DocumentRecord, DocumentStatus};

/// Maximum length of a title and a file name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// `GET /api/v1/equipment/{id}/documents`: the documents' metadata, newest first.
pub async fn list_documents(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    visible_record(&state.equipment, &principal, &id).await?;
    let documents = state
        .equipment
        .documents
        .list(&id)
        .await
        .map_err(store_failed)?;
    Ok(Json(serde_json::json!({ "documents": documents })).into_response())
}

/// Body of an upload request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    title: String,
    kind: DocumentKind,
    file_name: String,
    content_type: String,
    /// The file's exact size in bytes.
    size_bytes: u64,
    /// The work order the document belongs to, such as its service report.
    work_order_id: Option<String>,
}

/// `POST /api/v1/equipment/{id}/documents`: checks the limits, records the metadata as
/// pending and returns the signed request that uploads the file.
pub async fn create_upload(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    JsonBody(mut body): JsonBody<UploadBody>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    require_change(&principal, &record.fields.farm_id)?;
    let file_name = clean_file_name(&body.file_name);
    if file_name.is_empty() && !body.file_name.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "`file_name` \"{}\" ends in a folder separator; give the file's own name, such as report.pdf",
                body.file_name
            ),
        ));
    }
    body.file_name = file_name;
    check_limits(&state, &body)?;
    if let Some(order) = &body.work_order_id {
        let found = state
            .equipment
            .maintenance
            .work_order(&id, order)
            .await
            .map_err(store_failed)?;
        if found.is_none() {
            let message = format!("equipment `{id}` has no work order `{order}`");
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", message));
        }
    }
    let document_id = new_id("doc");
    let storage_key = format!(
        "{}{}/{}/{document_id}",
        key_prefix(&state),
        safe_segment(&record.fields.farm_id),
        record.equipment_id
    );
    let document = DocumentRecord {
        document_id,
        equipment_id: id,
        farm_id: record.fields.farm_id.clone(),
        work_order_id: body.work_order_id,
        title: body.title.trim().to_owned(),
        kind: body.kind,
        file_name: body.file_name,
        content_type: media_type(&body.content_type),
        size_bytes: i64::try_from(body.size_bytes).unwrap_or(i64::MAX),
        storage_key,
        status: DocumentStatus::Pending,
        uploaded_by: principal.name.clone(),
        uploaded_at: now_ms(),
    };
    let ttl = state.equipment.config.documents.url_ttl;
    let upload = state
        .equipment
        .files
        .upload_request(
            &document.document_id,
            &document.storage_key,
            &document.content_type,
            body.size_bytes,
            ttl,
        )
        .await
        .map_err(store_unavailable)?;
    state
        .equipment
        .documents
        .insert(&document)
        .await
        .map_err(store_failed)?;
    let body = serde_json::json!({ "document": document, "upload": upload });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /api/v1/equipment/{id}/documents/{document}/complete`: checks that the file is in
/// the store with the announced size and marks the document stored.
pub async fn complete_upload(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath((id, document_id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    require_change(&principal, &record.fields.farm_id)?;
    let document = document_of(&state, &id, &document_id).await?;
    let stored = state
        .equipment
        .files
        .size_of(&document.storage_key)
        .await
        .map_err(store_unavailable)?;
    let Some(size) = stored else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_uploaded",
            format!("document `{document_id}` has no file yet; send the upload request first"),
        ));
    };
    if i64::try_from(size).unwrap_or(i64::MAX) != document.size_bytes {
        let _ = state.equipment.files.delete(&document.storage_key).await;
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_mismatch",
            format!(
                "the stored file has {size} bytes but {} were announced; it was deleted, upload again",
                document.size_bytes
            ),
        ));
    }
    state
        .equipment
        .documents
        .mark_stored(&document_id, document.size_bytes)
        .await
        .map_err(store_failed)?;
    let document = DocumentRecord {
        status: DocumentStatus::Stored,
        ..document
    };
    Ok(Json(serde_json::json!({ "document": document })).into_response())
}

/// `GET /api/v1/equipment/{id}/documents/{document}/download`: the signed request that
/// downloads a stored document.
pub async fn create_download(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath((id, document_id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    visible_record(&state.equipment, &principal, &id).await?;
    let document = document_of(&state, &id, &document_id).await?;
    if document.status != DocumentStatus::Stored {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_uploaded",
            format!("document `{document_id}` is not uploaded yet"),
        ));
    }
    let ttl = state.equipment.config.documents.url_ttl;
    let download = state
        .equipment
        .files
        .download_request(
            &document.document_id,
            &document.storage_key,
            &document.file_name,
            ttl,
        )
        .await
        .map_err(store_unavailable)?;
    Ok(Json(serde_json::json!({ "document": document, "download": download })).into_response())
}

/// `DELETE /api/v1/equipment/{id}/documents/{document}`: deletes the file and its metadata.
pub async fn delete_document(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath((id, document_id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    require_change(&principal, &record.fields.farm_id)?;
    let document = document_of(&state, &id, &document_id).await?;
    state
        .equipment
        .files
        .delete(&document.storage_key)
        .await
        .map_err(store_unavailable)?;
    state
        .equipment
        .documents
        .delete(&document_id)
        .await
        .map_err(store_failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === signed disk URLs ===

/// The query of a signed file URL. Both fields are optional here so that a URL missing one
/// gets a reply that explains how to obtain a valid URL.
#[derive(Debug, Deserialize)]
pub struct SignedQuery {
    /// Expiry, in seconds since the Unix epoch.
    expires: Option<i64>,
    signature: Option<String>,
}

/// `PUT /api/v1/document-files/{document}`: stores the file of a pending document.
pub async fn put_file(
    State(state): State<Arc<HttpState>>,
    ApiPath(document_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SignedQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let files = check_signature(&state, "PUT", &document_id, &query)?;
    let body = body.map_err(|rejection| body_rejected(&state, &rejection))?;
    let document = signed_document(&state, &document_id).await?;
    if document.status == DocumentStatus::Stored {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_stored",
            format!(
                "document `{document_id}` is already stored and cannot be replaced; upload a new document instead"
            ),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(media_type)
        .unwrap_or_default();
    if content_type != document.content_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            format!(
                "the upload was announced as `{}`; send that Content-Type",
                document.content_type
            ),
        ));
    }
    if i64::try_from(body.len()).unwrap_or(i64::MAX) != document.size_bytes {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_mismatch",
            format!(
                "the body has {} bytes but {} were announced",
                body.len(),
                document.size_bytes
            ),
        ));
    }
    files
        .write(&document.storage_key, &body)
        .await
        .map_err(store_unavailable)?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /api/v1/document-files/{document}`: returns the file of a stored document.
pub async fn get_file(
    State(state): State<Arc<HttpState>>,
    ApiPath(document_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SignedQuery>,
) -> Result<Response, ApiError> {
    let files = check_signature(&state, "GET", &document_id, &query)?;
    let document = signed_document(&state, &document_id).await?;
    let bytes = files
        .read(&document.storage_key)
        .await
        .map_err(store_unavailable)?
        .ok_or_else(|| file_not_found(&document_id))?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let response_headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&document.content_type) {
        response_headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&attachment(&document.file_name)) {
        response_headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

// === helpers ===

/// Returns the type and subtype of a `Content-Type` value in lower case, without
/// parameters: `Text/Plain; charset=UTF-8` gives `text/plain`.
fn media_type(value: &str) -> String {
    let essence = value.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

fn check_limits(state: &HttpState, body: &UploadBody) -> Result<(), ApiError> {
    let limits = &state.equipment.config.documents;
    if body.size_bytes == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`size_bytes` is 0; announce the file's exact size, at least 1 byte",
        ));
    }
    if body.size_bytes > limits.max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "`size_bytes` is {}; documents must be 1 to {} bytes",
                body.size_bytes, limits.max_bytes
            ),
        ));
    }
    let content_type = media_type(&body.content_type);
    if !limits
        .allowed_types
        .iter()
        .any(|allowed| media_type(allowed) == content_type)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            format!(
                "content type `{}` is not accepted; use one of: {}",
                body.content_type,
                limits.allowed_types.join(", ")
            ),
        ));
    }
    for (name, value) in [("title", &body.title), ("file_name", &body.file_name)] {
        let length = value.trim().chars().count();
        if length == 0 || length > MAX_NAME_CHARS {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!(
                    "`{name}` has {length} characters after trimming spaces; it must have 1 to {MAX_NAME_CHARS}"
                ),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("`{name}` contains a control character; use one line of plain text"),
            ));
        }
    }
    if matches!(body.file_name.as_str(), "." | "..") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "`file_name` \"{}\" names no file; give the file's own name, such as report.pdf",
                body.file_name
            ),
        ));
    }
    Ok(())
}

async fn document_of(
    state: &HttpState,
    equipment_id: &str,
    document_id: &str,
) -> Result<DocumentRecord, ApiError> {
    state
        .equipment
        .documents
        .get(document_id)
        .await
        .map_err(store_failed)?
        .filter(|document| document.equipment_id == equipment_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("equipment `{equipment_id}` has no document `{document_id}`"),
            )
        })
}

/// Checks a disk URL's signature and expiry and returns the disk store.
fn check_signature<'a>(
    state: &'a HttpState,
    method: &str,
    document_id: &str,
    query: &SignedQuery,
) -> Result<&'a crate::equipment::documents::disk::DiskFiles, ApiError> {
    let FileStore::Disk { files, signer } = &state.equipment.files else {
        return Err(file_not_found(document_id));
    };
    let forbidden = |message: &str| ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
    let (Some(expires), Some(signature)) = (query.expires, query.signature.as_deref()) else {
        return Err(forbidden(
            "the URL lacks its `expires` or `signature` parameter; use the whole URL that the upload or download request returned",
        ));
    };
    let renew = if method == "PUT" {
        "delete the pending document and request a new upload"
    } else {
        "request a new URL from the document's download route"
    };
    if !signer.verify(method, document_id, expires, signature) {
        return Err(forbidden(&format!(
            "the URL's signature does not match a {method} of document `{document_id}`; send the URL exactly as returned, with the method it was returned for"
        )));
    }
    if expires < now_ms() / 1000 {
        return Err(forbidden(&format!("the URL has expired; {renew}")));
    }
    Ok(files)
}

/// Replies to a file body that could not be read: 413 naming the limit when it is too large.
fn body_rejected(state: &HttpState, rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = state.equipment.config.documents.max_bytes;
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the file is over the limit of {limit} bytes (`equipment.documents.max_bytes`); send a smaller file"
            ),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_body",
        format!("the file could not be read: {}", rejection.body_text()),
    )
}

async fn signed_document(state: &HttpState, document_id: &str) -> Result<DocumentRecord, ApiError> {
    state
        .equipment
        .documents
        .get(document_id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| file_not_found(document_id))
}

fn file_not_found(document_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("document `{document_id}` has no file"),
    )
}

fn key_prefix(state: &HttpState) -> String {
    match &state.equipment.files {
        FileStore::Disk { .. } => String::new(),
        FileStore::S3(_) => state.equipment.config.documents.key_prefix.clone(),
    }
}

/// Returns `text` with every character outside `a-z A-Z 0-9 _ -` replaced by `_`, for a
/// storage key segment.
fn safe_segment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn store_unavailable(error: DocumentError) -> ApiError {
    tracing::error!(%error, "Document store request failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the document store could not be reached; retry shortly",
    )
}
