//! The embedded online store: a SQLite file with one table per feature group version.
//!
//! Each table holds a row per key: the key columns (integers or text), the event time in
//! microseconds since the epoch, the whole snapshot row as a JSON object, which is what
//! `get` serves, and the run id of the snapshot that wrote it. `online_tables` records each
//! version's key, time to live, last completed load and any load begun since.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use arrow::json::WriterBuilder;
use arrow::json::writer::LineDelimited;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fengine_sqlite::SqliteFile;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::keys::{KeyKind, KeyValue, key_kinds, key_values, parse_key};
use crate::values::{doubles, is_double};
use crate::{
    Error, LoadCounts, LoadState, OnlineLoad, OnlineRow, OnlineStore, OnlineTable, Result,
    SnapshotId, check_nested_finite, check_rows_common, key_conflict, non_finite_text,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS online_tables (
    group_name    TEXT NOT NULL,
    version       INTEGER NOT NULL,
    key_columns   TEXT NOT NULL,
    key_kinds     TEXT NOT NULL,
    ttl_seconds   INTEGER,
    loaded_as_of  TEXT,
    loaded_at     TEXT,
    loaded_rows   INTEGER,
    loaded_run_id TEXT,
    loading_as_of TEXT,
    loading_run_id TEXT,
    loading_started_at TEXT,
    PRIMARY KEY (group_name, version)
);
";

/// Columns of `online_tables` that files of earlier fengine versions lack.
const LOAD_COLUMNS: [(&str, &str); 4] = [
    ("loaded_run_id", "TEXT"),
    ("loading_as_of", "TEXT"),
    ("loading_run_id", "TEXT"),
    ("loading_started_at", "TEXT"),
];

/// The column of each stored row naming the snapshot (by run id) that wrote it.
const LOAD_COLUMN: &str = "fengine_load";

/// Timestamps are served in RFC 3339, in UTC; naive timestamps are taken to be UTC.
const RFC3339_UTC: &str = "%Y-%m-%dT%H:%M:%S%.fZ";

#[derive(Debug, Clone)]
pub struct SqliteOnlineStore {
    file: SqliteFile,
}

impl SqliteOnlineStore {
    /// Opens the store's file, creating it (and its folder) if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let file = SqliteFile::create(path, "online store", SCHEMA)?;
        fengine_sqlite::add_missing_columns(&mut file.connect()?, "online_tables", &LOAD_COLUMNS)?;
        Ok(SqliteOnlineStore { file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// The data table's name, unquoted.
fn data_table_name(group: &str, version: u32) -> String {
    format!("{group}_v{version}")
}

fn data_table(group: &str, version: u32) -> String {
    quote(&data_table_name(group, version))
}

fn quote(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

#[async_trait]
impl OnlineStore for SqliteOnlineStore {
    fn table_name(&self, group: &str, version: u32) -> String {
        format!(
            "{}:{}",
            self.file.path().display(),
            data_table_name(group, version)
        )
    }

    async fn load_state(&self, group: &str, version: u32) -> Result<LoadState> {
        let group = group.to_string();
        self.file
            .run(move |connection| {
                let state = connection
                    .query_row(
                        "SELECT loaded_as_of, loaded_run_id, loading_as_of, loading_run_id
                         FROM online_tables WHERE group_name = ?1 AND version = ?2",
                        params![group, version],
                        |row| Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?]),
                    )
                    .optional()?;
                let Some([loaded_as_of, loaded_run, loading_as_of, loading_run]) = state else {
                    return Ok(LoadState::default());
                };
                Ok(LoadState {
                    loaded: snapshot_id(loaded_as_of, loaded_run)?,
                    unfinished: snapshot_id(loading_as_of, loading_run)?,
                })
            })
            .await
    }

    async fn check_table(&self, table: &OnlineTable) -> Result<()> {
        let (group, version) = (table.group.clone(), table.version);
        let recorded: Option<(String, String)> = self
            .file
            .run(move |connection| {
                connection
                    .query_row(
                        "SELECT key_columns, key_kinds FROM online_tables
                         WHERE group_name = ?1 AND version = ?2",
                        params![group, version],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .map_err(Error::from)
            })
            .await?;
        let Some((columns, kinds)) = recorded else {
            return Ok(());
        };
        let columns: Vec<String> = parse_json(&columns)?;
        let kinds: Vec<String> = parse_json(&kinds)?;
        let existing: Vec<(String, String)> = columns.into_iter().zip(kinds).collect();
        key_conflict(
            &data_table_name(&table.group, table.version),
            table,
            &existing,
        )
    }

    fn check_rows(&self, table: &OnlineTable, batch: &RecordBatch) -> Result<()> {
        check_rows_common(table, batch)
    }

    async fn begin_load(
        &self,
        table: &OnlineTable,
        snapshot: &SnapshotId,
    ) -> Result<Box<dyn OnlineLoad>> {
        let kinds = key_kinds(&table.schema, &table.key_columns)?;
        let columns: Vec<String> = table
            .key_columns
            .iter()
            .zip(&kinds)
            .map(|(name, kind)| {
                let sql_type = match kind {
                    KeyKind::Integer => "INTEGER",
                    KeyKind::Text => "TEXT",
                };
                format!("{} {sql_type} NOT NULL", quote(name))
            })
            .collect();
        let keys: Vec<String> = table.key_columns.iter().map(|k| quote(k)).collect();
        let name = data_table(&table.group, table.version);
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {name} ({}, fengine_event_time_us INTEGER NOT NULL, \
             fengine_row TEXT NOT NULL, {LOAD_COLUMN} TEXT, PRIMARY KEY ({})) WITHOUT ROWID",
            columns.join(", "),
            keys.join(", ")
        );
        let insert = format!(
            "INSERT INTO {name} ({}, fengine_event_time_us, fengine_row, {LOAD_COLUMN}) VALUES ({}) \
             ON CONFLICT ({}) DO UPDATE SET fengine_event_time_us = excluded.fengine_event_time_us, \
             fengine_row = excluded.fengine_row, {LOAD_COLUMN} = excluded.{LOAD_COLUMN}",
            keys.join(", "),
            vec!["?"; keys.len() + 3].join(", "),
            keys.join(", ")
        );
        let register = table.clone();
        let loading = snapshot.clone();
        let unquoted = data_table_name(&table.group, table.version);
        self.file
            .run(move |connection| {
                connection.execute_batch(&create)?;
                fengine_sqlite::add_missing_columns(connection, &unquoted, &[(LOAD_COLUMN, "TEXT")])?;
                connection.execute(
                    "INSERT INTO online_tables (group_name, version, key_columns, key_kinds, ttl_seconds,
                        loading_as_of, loading_run_id, loading_started_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (group_name, version) DO UPDATE SET
                        key_columns = excluded.key_columns, key_kinds = excluded.key_kinds,
                        ttl_seconds = excluded.ttl_seconds, loading_as_of = excluded.loading_as_of,
                        loading_run_id = excluded.loading_run_id,
                        loading_started_at = excluded.loading_started_at",
                    params![
                        register.group,
                        register.version,
                        serde_json::to_string(&register.key_columns).expect("strings serialize"),
                        serde_json::to_string(&kinds.iter().map(|k| k.name()).collect::<Vec<_>>())
                            .expect("strings serialize"),
                        register.ttl.map(|ttl| ttl.as_secs() as i64),
                        loading.as_of.to_rfc3339(),
                        loading.run_id,
                        Utc::now().to_rfc3339(),
                    ],
                )?;
                Ok::<_, Error>(())
            })
            .await?;
        Ok(Box::new(SqliteLoad::start(
            self.file.clone(),
            table.clone(),
            snapshot.clone(),
            insert,
        )))
    }

    async fn drop_table(&self, group: &str, version: u32) -> Result<bool> {
        let group = group.to_string();
        self.file
            .run(move |connection| {
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let forgotten = tx.execute(
                    "DELETE FROM online_tables WHERE group_name = ?1 AND version = ?2",
                    params![group, version],
                )?;
                tx.execute(
                    &format!("DROP TABLE IF EXISTS {}", data_table(&group, version)),
                    [],
                )?;
                tx.commit()?;
                Ok(forgotten > 0)
            })
            .await
    }

    async fn get(
        &self,
        group: &str,
        version: Option<u32>,
        key: &[String],
    ) -> Result<Option<OnlineRow>> {
        let (group, key) = (group.to_string(), key.to_vec());
        self.file
            .run(move |connection| {
                let loaded: Option<(u32, String, String, Option<i64>)> = connection
                    .query_row(
                        "SELECT version, key_columns, key_kinds, ttl_seconds FROM online_tables
                     WHERE group_name = ?1 AND (?2 IS NULL OR version = ?2)
                       AND loaded_as_of IS NOT NULL
                     ORDER BY version DESC LIMIT 1",
                        params![group, version],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                    )
                    .optional()?;
                let Some((version, key_columns, key_kinds, ttl_seconds)) = loaded else {
                    return Err(Error::not_loaded(&group, version));
                };
                let key_columns: Vec<String> = parse_json(&key_columns)?;
                let key_kinds: Vec<String> = parse_json(&key_kinds)?;
                let key = parse_key(&group, &key_columns, &key_kinds, &key)?;
                let conditions: Vec<String> = key_columns
                    .iter()
                    .map(|c| format!("{} = ?", quote(c)))
                    .collect();
                let sql = format!(
                    "SELECT fengine_event_time_us, fengine_row FROM {} WHERE {}",
                    data_table(&group, version),
                    conditions.join(" AND ")
                );
                let mut statement = connection.prepare(&sql)?;
                for (index, value) in key.iter().enumerate() {
                    match value {
                        KeyValue::Integer(n) => statement.raw_bind_parameter(index + 1, n)?,
                        KeyValue::Text(t) => statement.raw_bind_parameter(index + 1, t)?,
                    }
                }
                let mut rows = statement.raw_query();
                let Some(row) = rows.next()? else {
                    return Ok(None);
                };
                let event_time_us: i64 = row.get(0)?;
                let values: serde_json::Map<String, serde_json::Value> =
                    parse_json(&row.get::<_, String>(1)?)?;
                Ok(Some(OnlineRow {
                    values,
                    event_time: DateTime::from_timestamp_micros(event_time_us).ok_or_else(
                        || Error::Storage(format!("event time {event_time_us} out of range")),
                    )?,
                    version,
                    ttl: ttl_seconds.map(|s| Duration::from_secs(s as u64)),
                }))
            })
            .await
    }
}

/// A load whose batches a blocking thread writes while the caller computes the next ones.
struct SqliteLoad {
    batches: Option<mpsc::Sender<RecordBatch>>,
    writer: JoinHandle<Result<(Connection, u64)>>,
    table: OnlineTable,
    snapshot: SnapshotId,
}

/// Batches waiting for the writer: enough to keep it busy, few enough to bound memory.
const BATCHES_IN_FLIGHT: usize = 2;

impl SqliteLoad {
    fn start(file: SqliteFile, table: OnlineTable, snapshot: SnapshotId, insert: String) -> Self {
        let (sender, mut receiver) = mpsc::channel::<RecordBatch>(BATCHES_IN_FLIGHT);
        let writer_table = table.clone();
        let run_id = snapshot.run_id.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut connection = file.connect()?;
            let mut rows = 0;
            while let Some(batch) = receiver.blocking_recv() {
                let written =
                    write_batch(&mut connection, &insert, &writer_table, &run_id, &batch)?;
                rows += written as u64;
            }
            Ok((connection, rows))
        });
        SqliteLoad {
            batches: Some(sender),
            writer,
            table,
            snapshot,
        }
    }

    /// Waits for the writer to write every batch sent, or to fail.
    async fn finish(mut self: Box<Self>) -> Result<(Connection, u64)> {
        drop(self.batches.take());
        (&mut self.writer)
            .await
            .map_err(|e| Error::Storage(format!("online store writer failed: {e}")))?
    }
}

#[async_trait]
impl OnlineLoad for SqliteLoad {
    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let sender = self
            .batches
            .as_ref()
            .expect("only finish() takes the sender");
        if sender.send(batch).await.is_ok() {
            return Ok(());
        }
        // The writer stopped early: its result says why.
        self.batches = None;
        match (&mut self.writer).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(Error::Storage(
                "the online store writer stopped early".into(),
            )),
            Err(e) => Err(Error::Storage(format!("online store writer failed: {e}"))),
        }
    }

    async fn commit(self: Box<Self>) -> Result<LoadCounts> {
        let (group, version) = (self.table.group.clone(), self.table.version);
        let snapshot = self.snapshot.clone();
        let (mut connection, rows) = self.finish().await?;
        tokio::task::spawn_blocking(move || {
            // The removal and the record are one transaction: a reader sees the snapshot
            // complete with its record, or the load still unfinished.
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let loading: Option<Option<String>> = transaction
                .query_row(
                    "SELECT loading_run_id FROM online_tables WHERE group_name = ?1 AND version = ?2",
                    params![group, version],
                    |row| row.get(0),
                )
                .optional()?;
            let loading = loading.flatten();
            if loading.as_deref() != Some(snapshot.run_id.as_str()) {
                return Err(Error::superseded(
                    &data_table_name(&group, version),
                    &snapshot.run_id,
                    loading.as_deref(),
                ));
            }
            let removed = transaction.execute(
                &format!(
                    "DELETE FROM {} WHERE {LOAD_COLUMN} IS NOT ?1",
                    data_table(&group, version)
                ),
                params![snapshot.run_id],
            )?;
            transaction.execute(
                "UPDATE online_tables SET loaded_as_of = ?3, loaded_run_id = ?4, loaded_at = ?5,
                    loaded_rows = ?6, loading_as_of = NULL, loading_run_id = NULL,
                    loading_started_at = NULL
                 WHERE group_name = ?1 AND version = ?2",
                params![
                    group,
                    version,
                    snapshot.as_of.to_rfc3339(),
                    snapshot.run_id,
                    Utc::now().to_rfc3339(),
                    rows as i64
                ],
            )?;
            transaction.commit()?;
            Ok(LoadCounts {
                rows,
                removed: removed as u64,
            })
        })
        .await
        .map_err(|e| Error::Storage(format!("online store task failed: {e}")))?
    }
}

/// Writes one batch in one transaction through a cached prepared statement.
fn write_batch(
    connection: &mut Connection,
    insert: &str,
    table: &OnlineTable,
    run_id: &str,
    batch: &RecordBatch,
) -> Result<usize> {
    check_nested_finite(batch)?;
    let keys = key_values(batch, &table.key_columns)?;
    let event_times = event_time_micros(batch, &table.event_time_column)?;
    let event_times = event_times.as_primitive::<TimestampMicrosecondType>();
    let json = rows_as_json(batch)?;
    let non_finite = non_finite_cells(batch)?;
    let mut lines = json.split(|b| *b == b'\n');
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(insert)?;
        for row in 0..batch.num_rows() {
            for (index, key) in keys.iter().enumerate() {
                bind_key(&mut statement, index + 1, key, row)?;
            }
            statement.raw_bind_parameter(keys.len() + 1, event_times.value(row))?;
            let line = lines
                .next()
                .ok_or_else(|| Error::Storage("JSON rows ended early".into()))?;
            let text = std::str::from_utf8(line).map_err(|e| Error::Storage(e.to_string()))?;
            match non_finite.get(&row) {
                Some(cells) => {
                    let text = with_non_finite(text, cells)?;
                    statement.raw_bind_parameter(keys.len() + 2, text.as_str())?
                }
                None => statement.raw_bind_parameter(keys.len() + 2, text)?,
            }
            statement.raw_bind_parameter(keys.len() + 3, run_id)?;
            statement.raw_execute()?;
        }
    }
    transaction.commit()?;
    Ok(batch.num_rows())
}

fn bind_key(
    statement: &mut rusqlite::CachedStatement<'_>,
    index: usize,
    key: &ArrayRef,
    row: usize,
) -> Result<()> {
    if key.is_null(row) {
        return Err(Error::Invalid("a key value is null".into()));
    }
    match key.data_type() {
        DataType::Int64 => {
            statement.raw_bind_parameter(index, key.as_primitive::<Int64Type>().value(row))?
        }
        _ => statement.raw_bind_parameter(index, key.as_string::<i32>().value(row))?,
    }
    Ok(())
}

fn event_time_micros(batch: &RecordBatch, column: &str) -> Result<ArrayRef> {
    let array = batch.column_by_name(column).ok_or_else(|| {
        Error::Invalid(format!(
            "event-time column '{column}' is missing from the rows"
        ))
    })?;
    if array.null_count() > 0 {
        return Err(Error::Invalid(format!(
            "event-time column '{column}' holds nulls"
        )));
    }
    Ok(cast(
        array,
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?)
}

/// The rows holding NaN or infinities in top-level columns of doubles, which JSON writes
/// as null: (column, text) by row.
fn non_finite_cells(batch: &RecordBatch) -> Result<HashMap<usize, Vec<(String, &'static str)>>> {
    let mut cells: HashMap<usize, Vec<(String, &'static str)>> = HashMap::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !is_double(column.data_type()) {
            continue;
        }
        let values = doubles(column)?;
        let values = values.as_primitive::<Float64Type>();
        for row in 0..values.len() {
            if let Some(text) = values
                .is_valid(row)
                .then(|| non_finite_text(values.value(row)))
                .flatten()
            {
                cells
                    .entry(row)
                    .or_default()
                    .push((field.name().clone(), text));
            }
        }
    }
    Ok(cells)
}

/// A row's JSON object with its non-finite doubles as their texts.
fn with_non_finite(line: &str, cells: &[(String, &'static str)]) -> Result<String> {
    let mut row: serde_json::Map<String, serde_json::Value> = parse_json(line)?;
    for (column, text) in cells {
        row.insert(column.clone(), serde_json::Value::String(text.to_string()));
    }
    Ok(serde_json::Value::Object(row).to_string())
}

/// The batch's rows as JSON objects, one per line, nulls explicit, timestamps RFC 3339 UTC.
fn rows_as_json(batch: &RecordBatch) -> Result<Vec<u8>> {
    let batch = with_utc_timestamps(batch)?;
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_timestamp_format(RFC3339_UTC.to_string())
        .with_timestamp_tz_format(RFC3339_UTC.to_string())
        .build::<_, LineDelimited>(Vec::new());
    writer.write(&batch)?;
    writer.finish()?;
    Ok(writer.into_inner())
}

/// Zoned timestamps are shown in UTC, so that one format fits every column.
fn with_utc_timestamps(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Timestamp(unit, Some(_)) => {
                let utc = DataType::Timestamp(*unit, Some(Arc::from("UTC")));
                columns.push(cast(column, &utc)?);
                fields.push(Field::new(field.name(), utc, field.is_nullable()));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn snapshot_id(as_of: Option<String>, run_id: Option<String>) -> Result<Option<SnapshotId>> {
    match as_of {
        Some(as_of) => Ok(Some(SnapshotId {
            as_of: parse_time(&as_of)?,
            // Loads of earlier fengine versions recorded no run id.
            run_id: run_id.unwrap_or_default(),
        })),
        None => Ok(None),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Storage(format!("malformed time '{text}' in the online store: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::Storage(format!("malformed online store entry: {e}")))
}
