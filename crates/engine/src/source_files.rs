//! What DataFusion lets pass silently in a source's files: it skips files of zero bytes (a
//! writer that died leaves one, and the snapshot then misses its rows) and merges files of
//! conflicting schemas into one. A pipeline's sources are refused for either, naming the
//! file, before any data is read. A source that declares its columns reads every file with
//! them (missing nullable columns as nulls): its files may differ, as a schema evolves. And
//! where DataFusion fails to decode a Parquet file without naming it, the file is found.

use std::collections::BTreeMap;

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::ParquetReadOptions;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};

use crate::error::{Error, Result};

/// Checks every file of the external table `name`, if it is one DataFusion lists; their
/// schemas only when the table does not declare its columns.
pub(crate) async fn check_source_files(
    context: &SessionContext,
    name: &str,
    declares_columns: bool,
) -> Result<()> {
    let datafusion_error = |e| Error::from_datafusion(None, e);
    let provider = context
        .table_provider(name)
        .await
        .map_err(datafusion_error)?;
    let Some(listing) = provider.downcast_ref::<ListingTable>() else {
        return Ok(());
    };
    let options = listing.options();
    let state = context.state();
    for url in listing.table_paths() {
        let (store, files) = listed_files(context, url, &options.file_extension, name).await?;
        let file = |meta: &ObjectMeta| format!("{}{}", url.object_store().as_str(), meta.location);
        if let Some(empty) = files.iter().find(|meta| meta.size == 0) {
            return Err(Error::Config(format!(
                "source '{name}': file '{}' is empty (0 bytes), a file a writer did not finish: \
                 delete it or write it again",
                file(empty)
            )));
        }
        if declares_columns {
            continue;
        }
        let mut first: Option<(&ObjectMeta, BTreeMap<String, String>)> = None;
        for meta in &files {
            let schema = options
                .format
                .infer_schema(&state, &store, std::slice::from_ref(meta))
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "source '{name}': cannot read the schema of file '{}': {e}",
                        file(meta)
                    ))
                })?;
            let columns: BTreeMap<String, String> = schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string()))
                .collect();
            match &first {
                None => first = Some((meta, columns)),
                Some((first_file, first_columns)) if *first_columns != columns => {
                    return Err(Error::Config(format!(
                        "source '{name}': file '{}' has columns ({}), file '{}' has ({}): the \
                         files of one source must share a schema",
                        file(first_file),
                        describe(first_columns),
                        file(meta),
                        describe(&columns)
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The store of a source location and its files of that extension, in name order, from
/// DataFusion's listing of it: the one its scan reads, which the runtime keeps for the
/// command (`backends.rs`), so that a prefix is listed once however many look at it.
async fn listed_files(
    context: &SessionContext,
    url: &ListingTableUrl,
    extension: &str,
    name: &str,
) -> Result<(Arc<dyn ObjectStore>, Vec<ObjectMeta>)> {
    let store = context
        .runtime_env()
        .object_store(url.object_store())
        .map_err(|e| Error::from_datafusion(None, e))?;
    let state = context.state();
    let listing_error = |e: DataFusionError| match e {
        DataFusionError::ObjectStore(e) => {
            Error::object_store(format!("cannot list source '{name}'"), &e)
        }
        other => Error::from_datafusion(None, other),
    };
    let mut files: Vec<ObjectMeta> = url
        .list_all_files(&state, store.as_ref(), extension)
        .await
        .map_err(listing_error)?
        .try_filter(|meta| {
            let file = meta.location.filename().unwrap_or_default();
            futures::future::ready(!file.starts_with('.'))
        })
        .try_collect()
        .await
        .map_err(listing_error)?;
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok((store, files))
}

/// The files of the pipeline source that reads `location`, as its scan lists them; `None`
/// when no source of the context reads it.
pub(crate) async fn files_of_source(
    context: &SessionContext,
    location: &str,
) -> Result<Option<Vec<ObjectMeta>>> {
    let wanted = ListingTableUrl::parse(location).map_err(|e| Error::from_datafusion(None, e))?;
    for (name, provider) in listing_tables(context).await {
        let Some(listing) = provider.downcast_ref::<ListingTable>() else {
            continue;
        };
        let extension = &listing.options().file_extension;
        if let Some(url) = listing
            .table_paths()
            .iter()
            .find(|url| url.as_str() == wanted.as_str())
        {
            let (_, files) = listed_files(context, url, extension, &name).await?;
            return Ok(Some(files));
        }
    }
    Ok(None)
}

/// The context's tables DataFusion lists files for, by name.
async fn listing_tables(context: &SessionContext) -> Vec<(String, Arc<dyn TableProvider>)> {
    let options = context.state().config().options().catalog.clone();
    let Some(schema) = context
        .catalog(&options.default_catalog)
        .and_then(|catalog| catalog.schema(&options.default_schema))
    else {
        return Vec::new();
    };
    let mut tables = Vec::new();
    for name in schema.table_names() {
        if let Ok(Some(provider)) = schema.table(&name).await
            && provider.downcast_ref::<ListingTable>().is_some()
        {
            tables.push((name, provider));
        }
    }
    tables
}

/// The Parquet file of a source that a decoding failure came from: DataFusion's error names
/// no file, so on that error path each Parquet file of the context's sources is read
/// through again until one fails.
pub(crate) async fn corrupt_parquet_file(context: &SessionContext) -> Option<String> {
    for (name, provider) in listing_tables(context).await {
        let Some(listing) = provider.downcast_ref::<ListingTable>() else {
            continue;
        };
        // Its files are those the format names: CREATE EXTERNAL TABLE sets no extension.
        let format = &listing.options().format;
        if format.get_ext() != "parquet" {
            continue;
        }
        let extension = format!(".{}", format.get_ext());
        for url in listing.table_paths() {
            let Ok((_, files)) = listed_files(context, url, &extension, &name).await else {
                continue;
            };
            for meta in files {
                let file = format!("{}{}", url.object_store().as_str(), meta.location);
                if read_through(context, &file).await.is_err() {
                    return Some(file);
                }
            }
        }
    }
    None
}

/// Decodes every row of one Parquet file.
async fn read_through(context: &SessionContext, file: &str) -> datafusion::error::Result<()> {
    let mut batches = context
        .read_parquet(file, ParquetReadOptions::default())
        .await?
        .execute_stream()
        .await?;
    while let Some(batch) = batches.next().await {
        batch?;
    }
    Ok(())
}

fn describe(columns: &BTreeMap<String, String>) -> String {
    columns
        .iter()
        .map(|(name, data_type)| format!("{name} {data_type}"))
        .collect::<Vec<_>>()
        .join(", ")
}
