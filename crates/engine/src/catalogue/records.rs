//! The catalogue's own tables — history, lineage, models, encoders — kept as Parquet under the
//! warehouse (`<warehouse>/_fengine/catalogue/<table>/`) and registered in the same catalog
//! database as the snapshots, so that Athena (or DuckDB, or Spark) reads them with SQL and
//! fengine reads them back the same way on every backend.
//!
//! Each write is a whole file, never an edit: a history event is a file of its own; a
//! lineage or model record replaces the one file of its subject. Object stores make a
//! file's appearance atomic, so two writers never leave a torn record.

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use fengine_catalog::{Column, Partition, Table};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::backends::Backends;
use crate::error::{Error, Result};
use crate::hive::hive_type;
use crate::warehouse::object_path;

pub(crate) const HISTORY_TABLE: &str = "fengine_history";
pub(crate) const LINEAGE_TABLE: &str = "fengine_lineage";
pub(crate) const MODELS_TABLE: &str = "fengine_models";
pub(crate) const ENCODERS_TABLE: &str = "fengine_encoders";

/// Files read at once when a table is read back.
const READS_IN_FLIGHT: usize = 32;

/// A catalogue table of records of type `T`, one Arrow row per record.
pub(crate) struct RecordTable<T> {
    /// The catalog table's name; never `<name>_v<n>`, which are groups'.
    pub name: &'static str,
    pub description: &'static str,
    pub schema: SchemaRef,
    /// The partition column, when the table has one (history: by group, so that a group's
    /// history is read without reading every group's).
    pub partitioned_by: Option<&'static str>,
    pub records: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> RecordTable<T> {
    /// The table's folder, or its partition's: `<warehouse>/_fengine/catalogue/<name>/[<key>=<value>/]`.
    fn folder(&self, backends: &Backends, partition: Option<&str>) -> Url {
        let mut relative = format!("_fengine/catalogue/{}/", self.name);
        if let (Some(key), Some(value)) = (self.partitioned_by, partition) {
            relative += &format!("{key}={value}/");
        }
        backends.warehouse.join(&relative)
    }

    fn catalog_table(&self, backends: &Backends) -> Table {
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| Column {
                name: field.name().clone(),
                data_type: hive_type(field.data_type()).expect("record tables use Hive's types"),
                comment: None,
            })
            .collect();
        Table {
            database: backends.database.clone(),
            name: self.name.to_string(),
            description: Some(self.description.to_string()),
            location: self.folder(backends, None).to_string(),
            columns,
            partition_keys: self
                .partitioned_by
                .map(|key| Column {
                    name: key.to_string(),
                    data_type: "string".to_string(),
                    comment: None,
                })
                .into_iter()
                .collect(),
            parameters: [
                ("classification".to_string(), "parquet".to_string()),
                ("fengine.catalogue".to_string(), self.name.to_string()),
            ]
            .into(),
        }
    }

    /// Writes `records` as the file `name` (replacing a file of that name) in the table, or
    /// in its `partition`, and registers the table and partition.
    pub(crate) async fn write(
        &self,
        backends: &Backends,
        partition: Option<&str>,
        name: &str,
        records: &[T],
    ) -> Result<()> {
        let batch = self.to_batch(records)?;
        let folder = self.folder(backends, partition);
        let file = folder
            .join(&format!("{name}.parquet"))
            .map_err(|e| Error::Infrastructure(format!("'{name}' is not a file name: {e}")))?;
        let mut parquet = backends
            .warehouse
            .parquet_file(&file, self.schema.clone(), 1 << 20)?;
        parquet.write(&batch).await?;
        parquet.close().await?;
        let table = self.catalog_table(backends);
        match partition {
            None => backends.catalog.put_table(&table).await?,
            Some(value) => {
                let partition = Partition {
                    values: vec![value.to_string()],
                    location: folder.to_string(),
                    parameters: Default::default(),
                };
                backends
                    .catalog
                    .register_partition(&table, &partition)
                    .await?;
            }
        }
        Ok(())
    }

    /// Every record of the table, or of its `partition`, in the order of the files' names.
    pub(crate) async fn read(
        &self,
        backends: &Backends,
        partition: Option<&str>,
    ) -> Result<Vec<T>> {
        let folder = self.folder(backends, partition);
        let store = backends.warehouse.store().clone();
        let prefix = object_path(&folder)?;
        let mut files: Vec<ObjectPath> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| Error::object_store(format!("cannot list '{folder}'"), &e))?;
        files.retain(|path| path.as_ref().ends_with(".parquet"));
        files.sort();
        let batches: Vec<Vec<RecordBatch>> = futures::stream::iter(files)
            .map(|path| read_file(store.clone(), path))
            .buffered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut records = Vec::new();
        for batch in batches.iter().flatten() {
            records.extend(self.records_of(batch)?);
        }
        Ok(records)
    }

    fn to_batch(&self, records: &[T]) -> Result<RecordBatch> {
        let malformed = |e: arrow::error::ArrowError| {
            Error::Infrastructure(format!("cannot encode a {} record: {e}", self.name))
        };
        let mut decoder = arrow::json::ReaderBuilder::new(self.schema.clone())
            .build_decoder()
            .map_err(malformed)?;
        decoder.serialize(records).map_err(malformed)?;
        Ok(decoder
            .flush()
            .map_err(malformed)?
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
    }

    fn records_of(&self, batch: &RecordBatch) -> Result<Vec<T>> {
        let malformed = |e: String| {
            Error::Infrastructure(format!(
                "a file of catalogue table '{}' is malformed: {e}",
                self.name
            ))
        };
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(batch).map_err(|e| malformed(e.to_string()))?;
        writer.finish().map_err(|e| malformed(e.to_string()))?;
        let bytes = writer.into_inner();
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))
    }
}

/// A catalogue file's rows: files are small (a record or a subject's), so read whole.
async fn read_file(
    store: Arc<dyn object_store::ObjectStore>,
    path: ObjectPath,
) -> Result<Vec<RecordBatch>> {
    let bytes = match store.get(&path).await {
        Ok(object) => object.bytes().await,
        Err(e) => Err(e),
    }
    .map_err(|e| Error::object_store(format!("cannot read catalogue file '{path}'"), &e))?;
    let failed = |e: arrow::error::ArrowError| {
        Error::Infrastructure(format!("cannot read catalogue file '{path}': {e}"))
    };
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| failed(e.into()))?
        .build()
        .map_err(|e| failed(e.into()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(failed)
}
