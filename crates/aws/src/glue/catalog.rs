//! Snapshots registered in Glue as Athena reads them: Parquet tables with Hive's Parquet
//! SerDe, one partition per snapshot pointing at the snapshot's folder.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_glue::Client;
use aws_sdk_glue::types::{
    Column as GlueColumn, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use fengine_catalog::{Catalog, Column, Error, Partition, Result, Table};

use crate::AwsContext;
use crate::error::classify;

const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

#[derive(Debug, Clone)]
pub struct GlueCatalog {
    client: Client,
}

impl GlueCatalog {
    pub fn new(aws: &AwsContext) -> Self {
        GlueCatalog {
            client: Client::new(&aws.config),
        }
    }

    async fn ensure_database(&self, database: &str) -> Result<()> {
        let input = DatabaseInput::builder()
            .name(database)
            .description("Feature snapshots published by fengine")
            .build()
            .map_err(|e| Error::Storage(e.to_string()))?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(storage("CreateDatabase", &e)),
        }
    }
}

/// Whether Glue refused a create because the entity exists.
fn already_exists<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    error: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
    error.code() == Some("AlreadyExistsException")
}

fn storage<E>(
    operation: &str,
    error: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    let fault = classify("Glue", operation, error);
    match fault.transient {
        true => Error::Storage(fault.message),
        false => Error::Refused(fault.message),
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn register_partition(
        &self,
        table: &Table,
        partition: &Partition,
    ) -> Result<Option<Partition>> {
        if let Some(exceeded) = partition.limit_exceeded() {
            return Err(Error::Invalid(exceeded));
        }
        self.put_table(table).await?;
        // The partition is the commit point: until it exists or points at the new folder,
        // readers see the previous snapshot. Another writer may create it between the read
        // and the create (two first runs of a group record its history at once): then the
        // decision is made again on what that writer registered.
        for attempt in 0..2 {
            let replaced = self
                .get_partition(&table.database, &table.name, &partition.values)
                .await?;
            let input = partition_input(table, partition);
            match &replaced {
                // Registered again as it is (a catalogue table's partition): nothing to do.
                Some(same) if same == partition => {}
                Some(_) => {
                    self.client
                        .update_partition()
                        .database_name(&table.database)
                        .table_name(&table.name)
                        .set_partition_value_list(Some(partition.values.clone()))
                        .partition_input(input)
                        .send()
                        .await
                        .map_err(|e| storage("UpdatePartition", &e))?;
                }
                None => {
                    let created = self
                        .client
                        .create_partition()
                        .database_name(&table.database)
                        .table_name(&table.name)
                        .partition_input(input)
                        .send()
                        .await;
                    match created {
                        Ok(_) => {}
                        Err(e) if attempt == 0 && already_exists(&e) => continue,
                        Err(e) => return Err(storage("CreatePartition", &e)),
                    }
                }
            }
            return Ok(replaced);
        }
        unreachable!("the second attempt returns")
    }

    async fn put_table(&self, table: &Table) -> Result<()> {
        if let Some(exceeded) = table.limit_exceeded() {
            return Err(Error::Invalid(exceeded));
        }
        self.ensure_database(&table.database).await?;
        let input = table_input(table)?;
        // As with partitions: a table another writer created since it was read is updated.
        for attempt in 0..2 {
            match self.get_table(&table.database, &table.name).await? {
                // Each UpdateTable archives a table version, of which Glue keeps a limited
                // number: a run that changes nothing updates nothing.
                Some(existing) if existing == *table => return Ok(()),
                Some(existing) => {
                    if let Some(conflict) = existing.update_conflict(table) {
                        return Err(Error::Conflict(conflict));
                    }
                    self.client
                        .update_table()
                        .database_name(&table.database)
                        .table_input(input)
                        .send()
                        .await
                        .map_err(|e| storage("UpdateTable", &e))?;
                    return Ok(());
                }
                None => {
                    let created = self
                        .client
                        .create_table()
                        .database_name(&table.database)
                        .table_input(input.clone())
                        .send()
                        .await;
                    match created {
                        Ok(_) => return Ok(()),
                        Err(e) if attempt == 0 && already_exists(&e) => continue,
                        Err(e) => return Err(storage("CreateTable", &e)),
                    }
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>> {
        match self
            .client
            .get_table()
            .database_name(database)
            .name(name)
            .send()
            .await
        {
            Ok(output) => Ok(output.table().map(|t| table_from_glue(database, t))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(storage("GetTable", &e)),
        }
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<Table>> {
        let mut tables = Vec::new();
        let mut next_token = None;
        loop {
            let output = match self
                .client
                .get_tables()
                .database_name(database)
                .set_next_token(next_token)
                .send()
                .await
            {
                Ok(output) => output,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_entity_not_found_exception()) =>
                {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(storage("GetTables", &e)),
            };
            tables.extend(
                output
                    .table_list()
                    .iter()
                    .map(|t| table_from_glue(database, t)),
            );
            next_token = output.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tables)
    }

    async fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>> {
        let mut partitions = Vec::new();
        let mut next_token = None;
        loop {
            let output = self
                .client
                .get_partitions()
                .database_name(database)
                .table_name(table)
                // Each partition repeats the table's columns; a listing needs none of them,
                // and without them a page is a fraction of the bytes.
                .exclude_column_schema(true)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| storage("GetPartitions", &e))?;
            partitions.extend(output.partitions().iter().map(partition_from_glue));
            next_token = output.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        partitions.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(partitions)
    }

    async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Option<Partition>> {
        match self
            .client
            .get_partition()
            .database_name(database)
            .table_name(table)
            .set_partition_values(Some(values.to_vec()))
            .send()
            .await
        {
            Ok(output) => Ok(output.partition().map(partition_from_glue)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(storage("GetPartition", &e)),
        }
    }
}

/// Glue's own table parameters, set on every table; the rest are fengine's.
const GLUE_PARAMETERS: [(&str, &str); 1] = [("EXTERNAL", "TRUE")];

fn table_input(table: &Table) -> Result<TableInput> {
    let mut parameters: HashMap<String, String> = table.parameters.clone().into_iter().collect();
    for (key, value) in GLUE_PARAMETERS {
        parameters.insert(key.to_string(), value.to_string());
    }
    TableInput::builder()
        .name(&table.name)
        .set_description(table.description.clone())
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(parameters))
        .set_partition_keys(Some(glue_columns(&table.partition_keys)?))
        .storage_descriptor(storage_descriptor(&table.location, &table.columns)?)
        .build()
        .map_err(|e| Error::Storage(e.to_string()))
}

fn partition_input(table: &Table, partition: &Partition) -> PartitionInput {
    PartitionInput::builder()
        .set_values(Some(partition.values.clone()))
        .set_parameters(Some(partition.parameters.clone().into_iter().collect()))
        .storage_descriptor(
            storage_descriptor(&partition.location, &table.columns)
                .expect("columns were valid for the table"),
        )
        .build()
}

fn storage_descriptor(location: &str, columns: &[Column]) -> Result<StorageDescriptor> {
    Ok(StorageDescriptor::builder()
        .set_columns(Some(glue_columns(columns)?))
        .location(location)
        .input_format(INPUT_FORMAT)
        .output_format(OUTPUT_FORMAT)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(PARQUET_SERDE)
                .parameters("serialization.format", "1")
                .build(),
        )
        .build())
}

fn glue_columns(columns: &[Column]) -> Result<Vec<GlueColumn>> {
    columns
        .iter()
        .map(|c| {
            GlueColumn::builder()
                .name(&c.name)
                .r#type(&c.data_type)
                .set_comment(c.comment.clone())
                .build()
                .map_err(|e| Error::Storage(e.to_string()))
        })
        .collect()
}

fn columns_from_glue(columns: &[GlueColumn]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: c.r#type().unwrap_or_default().to_string(),
            comment: c.comment().map(str::to_string),
        })
        .collect()
}

fn table_from_glue(database: &str, table: &aws_sdk_glue::types::Table) -> Table {
    let descriptor = table.storage_descriptor();
    let parameters: BTreeMap<String, String> = table
        .parameters()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !GLUE_PARAMETERS.iter().any(|(glue, _)| glue == key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Table {
        database: database.to_string(),
        name: table.name().to_string(),
        description: table.description().map(str::to_string),
        location: descriptor
            .and_then(|d| d.location())
            .unwrap_or_default()
            .to_string(),
        columns: columns_from_glue(descriptor.map(|d| d.columns()).unwrap_or_default()),
        partition_keys: columns_from_glue(table.partition_keys()),
        parameters,
    }
}

fn partition_from_glue(partition: &aws_sdk_glue::types::Partition) -> Partition {
    Partition {
        values: partition.values().to_vec(),
        location: partition
            .storage_descriptor()
            .and_then(|d| d.location())
            .unwrap_or_default()
            .to_string(),
        parameters: partition
            .parameters()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
