//! DynamoDB as the online store: a table per feature group version, created when missing,
//! and a metadata table recording each version's key, schema, ttl and last loaded as-of.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, ScalarAttributeType, SseSpecification,
    TimeToLiveSpecification,
};
use chrono::{DateTime, Utc};
use fengine_online::{
    Error, KeyKind, KeyValue, LoadCounts, LoadState, OnlineLoad, OnlineRow, OnlineStore,
    OnlineTable, Result, SnapshotId, check_rows_common, key_conflict, key_kinds, parse_key,
};
use tokio::sync::OnceCell;

use super::items::{
    COMPOSITE_KEY, EXPIRES_AT, Item, LOAD_ATTRIBUTE, batch_items, check_items, composite_key,
    hash_key_attribute, item_to_json,
};
use super::writer::{BatchWriter, WriteSettings};
use crate::AwsContext;
use crate::error::classify;

/// The metadata table's name after the profile's prefix.
const METADATA_TABLE: &str = "fengine_online_tables";
/// Segments of the scan that finds the items a load did not write, scanned at once.
const SCAN_SEGMENTS: i32 = 4;

#[derive(Debug, Clone)]
pub struct DynamoDbOnlineStore {
    client: Client,
    /// Without the SDK's own retries: the batch writer retries with its own backoff and
    /// deadline, and one policy is easier to reason about than two stacked.
    batch_client: Client,
    prefix: String,
    settings: WriteSettings,
    /// Set once the metadata table is known to exist, so it is described once per store.
    metadata_table_ready: Arc<OnceCell<()>>,
}

impl DynamoDbOnlineStore {
    /// Tables are named `<prefix><group>_v<version>`; the metadata table
    /// `<prefix>fengine_online_tables`.
    pub fn new(aws: &AwsContext, prefix: &str, settings: WriteSettings) -> Self {
        let batch_config = aws_sdk_dynamodb::config::Builder::from(&aws.config)
            .retry_config(RetryConfig::disabled())
            .build();
        DynamoDbOnlineStore {
            client: Client::new(&aws.config),
            batch_client: Client::from_conf(batch_config),
            prefix: prefix.to_string(),
            settings,
            metadata_table_ready: Arc::new(OnceCell::new()),
        }
    }

    /// The tables a load of these group versions touches, the metadata table last.
    pub fn table_names(&self, groups: &[(String, u32)]) -> Vec<String> {
        let mut names: Vec<String> = groups.iter().map(|(g, v)| self.table_name(g, *v)).collect();
        names.push(self.metadata_table());
        names
    }

    fn metadata_table(&self) -> String {
        format!("{}{METADATA_TABLE}", self.prefix)
    }

    /// Creates the table unless it exists, and waits until it is active.
    async fn ensure_table(
        &self,
        name: &str,
        hash_key: &str,
        key_type: ScalarAttributeType,
    ) -> Result<()> {
        match self.client.describe_table().table_name(name).send().await {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(storage("DescribeTable", &e)),
        }
        let created = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .sse_specification(SseSpecification::builder().enabled(true).build())
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(hash_key)
                    .attribute_type(key_type)
                    .build()
                    .map_err(|e| Error::Storage(e.to_string()))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(hash_key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| Error::Storage(e.to_string()))?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(storage("CreateTable", &e)),
        }
        self.wait_until_active(name).await?;
        self.client
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()
                    .map_err(|e| Error::Storage(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| storage("UpdateContinuousBackups", &e))?;
        Ok(())
    }

    async fn wait_until_active(&self, name: &str) -> Result<()> {
        for _ in 0..600 {
            let table = self
                .client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| storage("DescribeTable", &e))?;
            let status = table
                .table()
                .and_then(|t| t.table_status())
                .map(|s| s.as_str().to_string());
            if status.as_deref() == Some("ACTIVE") {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(Error::Storage(format!(
            "DynamoDB table '{name}' did not become active within 5 minutes"
        )))
    }

    /// Sets attributes of a table's metadata item; names go through placeholders, as many
    /// (`version`, `columns`) are reserved words of DynamoDB's expressions.
    async fn update_metadata(
        &self,
        table: &str,
        attributes: Vec<(&str, AttributeValue)>,
    ) -> Result<()> {
        let assignments: Vec<String> = (0..attributes.len())
            .map(|i| format!("#a{i} = :a{i}"))
            .collect();
        self.ensure_metadata_table().await?;
        let mut update = self
            .client
            .update_item()
            .table_name(self.metadata_table())
            .key("table_name", AttributeValue::S(table.to_string()))
            .update_expression(format!("SET {}", assignments.join(", ")));
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":a{i}"), value);
        }
        update.send().await.map_err(|e| storage("UpdateItem", &e))?;
        Ok(())
    }

    async fn ensure_metadata_table(&self) -> Result<()> {
        let name = self.metadata_table();
        self.metadata_table_ready
            .get_or_try_init(|| self.ensure_table(&name, "table_name", ScalarAttributeType::S))
            .await?;
        Ok(())
    }

    async fn metadata(&self, table: &str) -> Result<Option<Item>> {
        self.ensure_metadata_table().await?;
        self.metadata_if_recorded(table).await
    }

    /// A table's metadata item, without creating the metadata table (for checks that
    /// must change nothing).
    async fn metadata_if_recorded(&self, table: &str) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(self.metadata_table())
            .key("table_name", AttributeValue::S(table.to_string()))
            .consistent_read(true)
            .send()
            .await;
        match output {
            Ok(output) => Ok(output.item().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(storage("GetItem", &e)),
        }
    }

    /// The newest version of the group with a completed load, or the given one.
    async fn loaded_metadata(
        &self,
        group: &str,
        version: Option<u32>,
    ) -> Result<HashMap<String, AttributeValue>> {
        self.ensure_metadata_table().await?;
        let mut newest: Option<HashMap<String, AttributeValue>> = None;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.metadata_table())
                .filter_expression("#g = :g AND attribute_exists(loaded_as_of)")
                .expression_attribute_names("#g", "group_name")
                .expression_attribute_values(":g", AttributeValue::S(group.to_string()))
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| storage("Scan", &e))?;
            for item in page.items() {
                let item_version = number(item, "version").unwrap_or_default() as u32;
                let newer = newest
                    .as_ref()
                    .is_none_or(|n| number(n, "version").unwrap_or_default() < item_version as i64);
                if version.is_none_or(|v| v == item_version) && newer {
                    newest = Some(item.clone());
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        newest.ok_or_else(|| Error::not_loaded(group, version))
    }
}

pub(crate) fn storage<E>(
    operation: &str,
    error: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    let fault = classify("DynamoDB", operation, error);
    match fault.transient {
        true => Error::Storage(fault.message),
        false => Error::Refused(fault.message),
    }
}

/// The hash key attribute of a group version's table, and its type.
fn hash_key(table: &OnlineTable) -> Result<(String, ScalarAttributeType)> {
    let key_type = match key_kinds(&table.schema, &table.key_columns)?.as_slice() {
        [KeyKind::Integer] => ScalarAttributeType::N,
        _ => ScalarAttributeType::S,
    };
    Ok((hash_key_attribute(&table.key_columns).to_string(), key_type))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn texts(item: &HashMap<String, AttributeValue>, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_l().ok())
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_s().ok().cloned())
                .collect()
        })
        .unwrap_or_default()
}

fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(
        values
            .iter()
            .map(|v| AttributeValue::S(v.clone()))
            .collect(),
    )
}

#[async_trait]
impl OnlineStore for DynamoDbOnlineStore {
    fn table_name(&self, group: &str, version: u32) -> String {
        format!("{}{group}_v{version}", self.prefix)
    }

    async fn load_state(&self, group: &str, version: u32) -> Result<LoadState> {
        let Some(item) = self.metadata(&self.table_name(group, version)).await? else {
            return Ok(LoadState::default());
        };
        Ok(LoadState {
            loaded: snapshot_id(&item, "loaded_as_of", "loaded_run_id")?,
            unfinished: snapshot_id(&item, "loading_as_of", "loading_run_id")?,
        })
    }

    async fn check_table(&self, table: &OnlineTable) -> Result<()> {
        let name = self.table_name(&table.group, table.version);
        let described = match self.client.describe_table().table_name(&name).send().await {
            Ok(described) => described,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(());
            }
            Err(e) => return Err(storage("DescribeTable", &e)),
        };
        let (hash_key, key_type) = hash_key(table)?;
        let wanted = format!("{hash_key} HASH {}", key_type.as_str());
        let existing = described
            .table()
            .map(|t| {
                t.key_schema()
                    .iter()
                    .map(|k| {
                        let kind = t
                            .attribute_definitions()
                            .iter()
                            .find(|a| a.attribute_name() == k.attribute_name())
                            .map_or("?", |a| a.attribute_type().as_str());
                        format!("{} {} {kind}", k.attribute_name(), k.key_type().as_str())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        if existing != wanted {
            return Err(Error::Invalid(format!(
                "DynamoDB table '{name}' exists with the key schema ({existing}), but the group \
                 needs ({wanted}): bump the group's VERSION, use another dynamodb_table_prefix, \
                 or delete that table"
            )));
        }
        match self.metadata_if_recorded(&name).await? {
            Some(item) => {
                let existing: Vec<(String, String)> = texts(&item, "key_columns")
                    .into_iter()
                    .zip(texts(&item, "key_kinds"))
                    .collect();
                key_conflict(&name, table, &existing)
            }
            None => Ok(()),
        }
    }

    fn check_rows(&self, table: &OnlineTable, batch: &RecordBatch) -> Result<()> {
        check_rows_common(table, batch)?;
        check_items(batch, &table.key_columns)
    }

    async fn begin_load(
        &self,
        table: &OnlineTable,
        snapshot: &SnapshotId,
    ) -> Result<Box<dyn OnlineLoad>> {
        let name = self.table_name(&table.group, table.version);
        let (hash_key, key_type) = hash_key(table)?;
        let key_kinds = key_kinds(&table.schema, &table.key_columns)?;
        self.ensure_table(&name, &hash_key, key_type).await?;
        let ttl_seconds = table.ttl.map(|ttl| ttl.as_secs());
        if ttl_seconds.is_some() {
            let enabled = self
                .client
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(EXPIRES_AT)
                        .enabled(true)
                        .build()
                        .map_err(|e| Error::Storage(e.to_string()))?,
                )
                .send()
                .await;
            match enabled {
                Ok(_) => {}
                // Enabling it twice is refused: it is on already.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.meta().code() == Some("ValidationException")) => {}
                Err(e) => return Err(storage("UpdateTimeToLive", &e)),
            }
        }
        let timestamp_columns: Vec<String> = table
            .schema
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), DataType::Timestamp(..)))
            .map(|f| f.name().clone())
            .collect();
        let kinds: Vec<String> = key_kinds.iter().map(|k| k.name().to_string()).collect();
        let columns: Vec<String> = table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let ttl = ttl_seconds.map_or(AttributeValue::Null(true), |s| {
            AttributeValue::N(s.to_string())
        });
        self.update_metadata(
            &name,
            vec![
                ("group_name", AttributeValue::S(table.group.clone())),
                ("version", AttributeValue::N(table.version.to_string())),
                ("key_columns", string_list(&table.key_columns)),
                ("key_kinds", string_list(&kinds)),
                (
                    "event_time",
                    AttributeValue::S(table.event_time_column.clone()),
                ),
                ("timestamp_columns", string_list(&timestamp_columns)),
                ("columns", string_list(&columns)),
                ("ttl_seconds", ttl),
                (
                    "loading_as_of",
                    AttributeValue::S(snapshot.as_of.to_rfc3339()),
                ),
                ("loading_run_id", AttributeValue::S(snapshot.run_id.clone())),
                (
                    "loading_started_at",
                    AttributeValue::S(Utc::now().to_rfc3339()),
                ),
            ],
        )
        .await?;
        Ok(Box::new(DynamoDbLoad {
            writer: BatchWriter::new(self.batch_client.clone(), name.clone(), self.settings),
            store: self.clone(),
            table: table.clone(),
            snapshot: snapshot.clone(),
            name,
            ttl_seconds,
        }))
    }

    async fn drop_table(&self, group: &str, version: u32) -> Result<bool> {
        let name = self.table_name(group, version);
        let dropped = match self.client.delete_table().table_name(&name).send().await {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(storage("DeleteTable", &e)),
        };
        let recorded = self.metadata_if_recorded(&name).await?.is_some();
        if recorded {
            self.client
                .delete_item()
                .table_name(self.metadata_table())
                .key("table_name", AttributeValue::S(name))
                .send()
                .await
                .map_err(|e| storage("DeleteItem", &e))?;
        }
        Ok(dropped || recorded)
    }

    async fn get(
        &self,
        group: &str,
        version: Option<u32>,
        key: &[String],
    ) -> Result<Option<OnlineRow>> {
        let metadata = self.loaded_metadata(group, version).await?;
        let version = number(&metadata, "version").unwrap_or_default() as u32;
        let key_columns = texts(&metadata, "key_columns");
        let key_kinds = texts(&metadata, "key_kinds");
        let canonical: Vec<String> = parse_key(group, &key_columns, &key_kinds, key)?
            .iter()
            .map(KeyValue::to_text)
            .collect();
        let hash_key = match (key_columns.as_slice(), key_kinds.as_slice()) {
            ([column], [kind]) if kind == KeyKind::Integer.name() => {
                (column.clone(), AttributeValue::N(canonical[0].clone()))
            }
            ([column], _) => (column.clone(), AttributeValue::S(canonical[0].clone())),
            _ => (
                COMPOSITE_KEY.to_string(),
                AttributeValue::S(composite_key(&canonical)),
            ),
        };
        let output = self
            .client
            .get_item()
            .table_name(self.table_name(group, version))
            .key(hash_key.0, hash_key.1)
            .send()
            .await
            .map_err(|e| storage("GetItem", &e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let timestamp_columns = texts(&metadata, "timestamp_columns");
        let values = item_to_json(item, &texts(&metadata, "columns"), &timestamp_columns);
        let event_time = text(&metadata, "event_time")
            .and_then(|column| values.get(column))
            .and_then(|v| v.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                Error::Storage(format!(
                    "the item of key ({}) has no event time",
                    key.join(", ")
                ))
            })?;
        Ok(Some(OnlineRow {
            values,
            event_time,
            version,
            ttl: number(&metadata, "ttl_seconds").map(|s| std::time::Duration::from_secs(s as u64)),
        }))
    }
}

struct DynamoDbLoad {
    writer: BatchWriter,
    store: DynamoDbOnlineStore,
    table: OnlineTable,
    snapshot: SnapshotId,
    name: String,
    ttl_seconds: Option<u64>,
}

#[async_trait]
impl OnlineLoad for DynamoDbLoad {
    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let items = batch_items(
            &batch,
            &self.table.key_columns,
            &self.table.event_time_column,
            self.ttl_seconds,
            &self.snapshot.run_id,
        )?;
        self.writer.write(items).await
    }

    async fn commit(self: Box<Self>) -> Result<LoadCounts> {
        let DynamoDbLoad {
            writer,
            store,
            table,
            snapshot,
            name,
            ..
        } = *self;
        let rows = writer.finish().await?;
        // Checked before deleting anything, as well as by the final write's condition: a
        // load that lost its lease must not delete the rows of the one that took it.
        let loading = store
            .metadata(&name)
            .await?
            .and_then(|item| text(&item, "loading_run_id").map(str::to_string));
        if loading.as_deref() != Some(snapshot.run_id.as_str()) {
            return Err(Error::superseded(
                &name,
                &snapshot.run_id,
                loading.as_deref(),
            ));
        }
        let hash_key = hash_key_attribute(&table.key_columns).to_string();
        let removed = store
            .delete_other_loads(&name, &hash_key, &snapshot.run_id)
            .await?;
        store.record_loaded(&name, &snapshot, rows).await?;
        Ok(LoadCounts { rows, removed })
    }
}

impl DynamoDbOnlineStore {
    /// Deletes the items of `table` that a load other than `run_id`'s wrote; their number.
    async fn delete_other_loads(&self, table: &str, hash_key: &str, run_id: &str) -> Result<u64> {
        let mut scans = tokio::task::JoinSet::new();
        for segment in 0..SCAN_SEGMENTS {
            let (store, table) = (self.clone(), table.to_string());
            let (hash_key, run_id) = (hash_key.to_string(), run_id.to_string());
            scans.spawn(async move {
                store
                    .scan_other_loads(&table, &hash_key, &run_id, segment)
                    .await
            });
        }
        let mut keys = Vec::new();
        while let Some(scanned) = scans.join_next().await {
            keys.extend(
                scanned.map_err(|e| Error::Storage(format!("a DynamoDB scan failed: {e}")))??,
            );
        }
        let mut writer =
            BatchWriter::new(self.batch_client.clone(), table.to_string(), self.settings);
        let removed = keys.len() as u64;
        writer.delete(keys).await?;
        writer.finish().await?;
        Ok(removed)
    }

    /// The keys of one scan segment's items written by another load than `run_id`'s.
    async fn scan_other_loads(
        &self,
        table: &str,
        hash_key: &str,
        run_id: &str,
        segment: i32,
    ) -> Result<Vec<Item>> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(table)
                .segment(segment)
                .total_segments(SCAN_SEGMENTS)
                .projection_expression("#k")
                .filter_expression("attribute_not_exists(#l) OR #l <> :l")
                .expression_attribute_names("#k", hash_key)
                .expression_attribute_names("#l", LOAD_ATTRIBUTE)
                .expression_attribute_values(":l", AttributeValue::S(run_id.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| storage("Scan", &e))?;
            keys.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Records `snapshot` as the table's completed load, if no other load began since.
    async fn record_loaded(&self, table: &str, snapshot: &SnapshotId, rows: u64) -> Result<()> {
        let recorded = self
            .client
            .update_item()
            .table_name(self.metadata_table())
            .key("table_name", AttributeValue::S(table.to_string()))
            .update_expression(
                "SET loaded_as_of = :a, loaded_run_id = :r, loaded_at = :t, loaded_rows = :n \
                 REMOVE loading_as_of, loading_run_id, loading_started_at",
            )
            .condition_expression("loading_run_id = :r")
            .expression_attribute_values(":a", AttributeValue::S(snapshot.as_of.to_rfc3339()))
            .expression_attribute_values(":r", AttributeValue::S(snapshot.run_id.clone()))
            .expression_attribute_values(":t", AttributeValue::S(Utc::now().to_rfc3339()))
            .expression_attribute_values(":n", AttributeValue::N(rows.to_string()))
            .send()
            .await;
        match recorded {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(Error::superseded(table, &snapshot.run_id, None))
            }
            Err(e) => Err(storage("UpdateItem", &e)),
        }
    }
}

fn snapshot_id(item: &Item, as_of: &str, run_id: &str) -> Result<Option<SnapshotId>> {
    let Some(text) = text(item, as_of) else {
        return Ok(None);
    };
    let as_of = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Storage(format!("malformed {as_of} '{text}': {e}")))?;
    Ok(Some(SnapshotId {
        as_of,
        // Loads of earlier fengine versions recorded no run id.
        run_id: self::text(item, run_id).unwrap_or_default().to_string(),
    }))
}
