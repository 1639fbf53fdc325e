//! Creating the device table when it is missing, and waiting for it to become active.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TableStatus,
};
use tracing::info;

use super::items::KEY_ATTRIBUTE;
use crate::sinks::aws::AwsSetupError;

/// Maximum wait for a table to become active after its creation.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between two `DescribeTable` requests while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Creates `table` with the partition key `device_id` (string) and on-demand capacity
/// unless it exists, then waits until it is active.
///
/// # Errors
///
/// Returns [`AwsSetupError`] when a request fails, the table has another key, or it is not
/// active within 60 seconds.
pub async fn ensure(client: &Client, table: &str) -> Result<(), AwsSetupError> {
    if describe(client, table).await?.is_none() {
        create(client, table).await?;
    }

    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        if let Some(description) = describe(client, table).await? {
            check_key(table, &description)?;
            if description.table_status() == Some(&TableStatus::Active) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AwsSetupError::new(
                "DescribeTable",
                format!("table `{table}` did not become ACTIVE within {ACTIVE_TIMEOUT:?}"),
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Returns the table's description, or `None` if it does not exist.
async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>, AwsSetupError> {
    match client.describe_table().table_name(table).send().await {
        Ok(output) => Ok(output.table),
        Err(error) if code_of(&error) == Some("ResourceNotFoundException") => Ok(None),
        Err(error) => Err(setup_error("DescribeTable", &error)),
    }
}

async fn create(client: &Client, table: &str) -> Result<(), AwsSetupError> {
    let build_error = |error: aws_sdk_dynamodb::error::BuildError| {
        AwsSetupError::new("CreateTable", error.to_string())
    };
    let key = KeySchemaElement::builder()
        .attribute_name(KEY_ATTRIBUTE)
        .key_type(KeyType::Hash)
        .build()
        .map_err(build_error)?;
    let attribute = AttributeDefinition::builder()
        .attribute_name(KEY_ATTRIBUTE)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)?;
    let created = client
        .create_table()
        .table_name(table)
        .key_schema(key)
        .attribute_definitions(attribute)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match created {
        Ok(_) => {
            info!(dynamodb.table = table, "Created DynamoDB table");
            Ok(())
        }
        // Another process created it meanwhile.
        Err(error) if code_of(&error) == Some("ResourceInUseException") => Ok(()),
        Err(error) => Err(setup_error("CreateTable", &error)),
    }
}

fn check_key(table: &str, description: &TableDescription) -> Result<(), AwsSetupError> {
    let keys: Vec<(&str, &KeyType)> = description
        .key_schema()
        .iter()
        .map(|key| (key.attribute_name(), key.key_type()))
        .collect();
    if keys == [(KEY_ATTRIBUTE, &KeyType::Hash)] {
        return Ok(());
    }
    Err(AwsSetupError::new(
        "DescribeTable",
        format!(
            "table `{table}` has the key schema {keys:?}, but device documents need the partition key `{KEY_ATTRIBUTE}` alone; use another table"
        ),
    ))
}

fn code_of<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(error: &SdkError<E>) -> Option<&str> {
    error.as_service_error().and_then(|error| error.code())
}

fn setup_error<E: std::error::Error + 'static>(
    operation: &'static str,
    error: &SdkError<E>,
) -> AwsSetupError {
    AwsSetupError::new(operation, DisplayErrorContext(error).to_string())
}
