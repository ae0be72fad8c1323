//! The registry of fitted encoders: one file per encoder version in the catalogue table
//! `fengine_encoders`, holding its parameters as JSON, the definition it was fitted from,
//! and what it was fitted on (the query or files, the group snapshots they read, the rows).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::EncoderParameters;
use crate::backends::Backends;
use crate::catalogue::{ENCODERS_TABLE, RecordTable};
use crate::error::{Error, Result};

/// One row of `fengine_encoders`: an encoder version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderRecord {
    pub encoder: String,
    pub version: u32,
    /// The `VERSION` of the `CREATE ENCODER` it was fitted from.
    pub definition_version: u32,
    /// That statement, as SQL.
    pub definition: String,
    /// [`EncoderParameters`] as JSON.
    pub parameters: String,
    /// [`FittedOn`] as JSON.
    pub fitted_on: String,
    pub rows: u64,
    pub as_of: DateTime<Utc>,
    pub description: Option<String>,
    /// As a JSON object.
    pub tags: String,
    /// The pipeline file it was declared in.
    pub origin: String,
    pub registered_at: DateTime<Utc>,
    pub registered_by: String,
}

/// What an encoder version was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedOn {
    /// The FIT ON query, as SQL, or the Parquet files' location.
    pub source: String,
    /// The published snapshots its `features.` tables read.
    pub snapshots: Vec<SnapshotRead>,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRead {
    pub group: String,
    pub version: u32,
    pub as_of: DateTime<Utc>,
}

/// A registered encoder version, read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncoderDetail {
    pub encoder: String,
    pub version: u32,
    pub versions: Vec<u32>,
    pub definition_version: u32,
    pub definition: String,
    pub parameters: EncoderParameters,
    pub fitted_on: FittedOn,
    pub as_of: DateTime<Utc>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub origin: String,
    pub registered_at: DateTime<Utc>,
    pub registered_by: String,
}

fn encoders_table() -> RecordTable<EncoderRecord> {
    let time = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    RecordTable {
        name: ENCODERS_TABLE,
        description: "Fitted encoders: one file per encoder version, its parameters as JSON and \
                      what it was fitted on",
        schema: Arc::new(Schema::new(vec![
            Field::new("encoder", DataType::Utf8, false),
            Field::new("version", DataType::Int32, false),
            Field::new("definition_version", DataType::Int32, false),
            Field::new("definition", DataType::Utf8, false),
            Field::new("parameters", DataType::Utf8, false),
            Field::new("fitted_on", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("as_of", time(), false),
            Field::new("description", DataType::Utf8, true),
            Field::new("tags", DataType::Utf8, false),
            Field::new("origin", DataType::Utf8, false),
            Field::new("registered_at", time(), false),
            Field::new("registered_by", DataType::Utf8, false),
        ])),
        partitioned_by: None,
        records: PhantomData,
    }
}

/// Every version of the encoder `name`, oldest first.
pub(crate) async fn encoder_versions(
    backends: &Backends,
    name: &str,
) -> Result<Vec<EncoderRecord>> {
    let mut versions: Vec<EncoderRecord> = encoders_table()
        .read(backends, None)
        .await?
        .into_iter()
        .filter(|r| r.encoder == name)
        .collect();
    versions.sort_by_key(|r| r.version);
    Ok(versions)
}

pub(crate) async fn write_encoder(backends: &Backends, record: &EncoderRecord) -> Result<()> {
    encoders_table()
        .write(
            backends,
            None,
            &format!("{}_v{}", record.encoder, record.version),
            std::slice::from_ref(record),
        )
        .await
}

/// The encoder `name` at `version`, or its newest; `None` when none of that name is fitted.
pub async fn show_encoder(
    backends: &Backends,
    name: &str,
    version: Option<u32>,
) -> Result<Option<EncoderDetail>> {
    let versions = encoder_versions(backends, name).await?;
    let numbers: Vec<u32> = versions.iter().map(|r| r.version).collect();
    let record =
        match version {
            None => versions.last(),
            Some(wanted) => Some(versions.iter().find(|r| r.version == wanted).ok_or_else(
                || {
                    Error::NotFound(format!(
                        "encoder '{name}' has no version {wanted}; its versions are {}",
                        numbers
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                },
            )?),
        };
    record.map(|r| detail(r, numbers.clone())).transpose()
}

fn detail(record: &EncoderRecord, versions: Vec<u32>) -> Result<EncoderDetail> {
    let malformed = |what: &str, e: serde_json::Error| {
        Error::Infrastructure(format!(
            "encoder '{}' v{}: its {what} in the catalogue cannot be read: {e}",
            record.encoder, record.version
        ))
    };
    Ok(EncoderDetail {
        encoder: record.encoder.clone(),
        version: record.version,
        versions,
        definition_version: record.definition_version,
        definition: record.definition.clone(),
        parameters: serde_json::from_str(&record.parameters)
            .map_err(|e| malformed("parameters", e))?,
        fitted_on: serde_json::from_str(&record.fitted_on)
            .map_err(|e| malformed("record of what it was fitted on", e))?,
        as_of: record.as_of,
        description: record.description.clone(),
        tags: serde_json::from_str(&record.tags).unwrap_or_default(),
        origin: record.origin.clone(),
        registered_at: record.registered_at,
        registered_by: record.registered_by.clone(),
    })
}
