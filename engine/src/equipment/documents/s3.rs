//! The S3 document store: objects in one bucket, reached through presigned URLs, so document
//! bytes never pass through the engine.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use super::{DocumentError, SignedRequest};
use crate::equipment::config::DocumentsConfig;
use crate::sinks::aws;

/// Objects in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Files {
    client: Client,
    bucket: String,
    region: String,
}

impl S3Files {
    /// Builds the client of `config`. A set endpoint (an emulator such as moto) also turns on
    /// path-style addressing, which emulators on loopback need.
    pub async fn new(config: &DocumentsConfig) -> Self {
        let shared = aws::sdk_config(&config.s3).await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if config.s3.endpoint_url.is_some() {
            builder = builder.force_path_style(true);
        }
        Self {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            region: config.s3.region.clone(),
        }
    }

    /// Creates the bucket when it is missing, for emulators and first trials.
    pub async fn create_bucket(&self) -> Result<(), DocumentError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        // Outside us-east-1, S3 requires the bucket's region as its location constraint.
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        if self.region != "us-east-1" {
            let location = BucketLocationConstraint::from(self.region.as_str());
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(location)
                    .build(),
            );
        }
        request
            .send()
            .await
            .map_err(|error| store_error("CreateBucket", &error))?;
        Ok(())
    }

    /// Returns a presigned PUT of exactly `size` bytes of `content_type` to `key`.
    pub async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> Result<SignedRequest, DocumentError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .presigned(presigning(ttl)?)
            .await
            .map_err(|error| store_error("PutObject presign", &error))?;
        Ok(SignedRequest {
            method: "PUT".to_owned(),
            url: request.uri().to_owned(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        })
    }

    /// Returns a presigned GET of `key` that names `file_name` for the browser.
    pub async fn download_url(
        &self,
        key: &str,
        file_name: &str,
        ttl: Duration,
    ) -> Result<SignedRequest, DocumentError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(super::attachment(file_name))
            .presigned(presigning(ttl)?)
            .await
            .map_err(|error| store_error("GetObject presign", &error))?;
        Ok(SignedRequest {
            method: "GET".to_owned(),
            url: request.uri().to_owned(),
            headers: Default::default(),
        })
    }

    /// Returns the size of `key`, or `None` when there is no such object.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, DocumentError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(
                output
                    .content_length()
                    .and_then(|length| u64::try_from(length).ok())
                    .unwrap_or(0),
            )),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(store_error("HeadObject", &error)),
        }
    }

    /// Deletes `key`; S3 answers success for a missing object too.
    pub async fn delete(&self, key: &str) -> Result<(), DocumentError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| store_error("DeleteObject", &error))?;
        Ok(())
    }
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, DocumentError> {
    PresigningConfig::expires_in(ttl)
        .map_err(|error| DocumentError::Store(format!("invalid URL lifetime {ttl:?}: {error}")))
}

fn store_error<E>(operation: &str, error: &E) -> DocumentError
where
    E: std::error::Error + ProvideErrorMetadata,
{
    let code = error.code().unwrap_or("unknown");
    DocumentError::Store(format!(
        "S3 {operation} failed ({code}): {}",
        DisplayErrorContext(error)
    ))
}
