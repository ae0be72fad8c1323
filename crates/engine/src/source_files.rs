//! What DataFusion lets pass silently in a source's files: it skips files of zero bytes (a
//! writer that died leaves one, and the snapshot then misses its rows) and merges files of
//! conflicting schemas into one. A pipeline's sources are refused for either, naming the
//! file, before any data is read. A source that declares its columns reads every file with
//! them (missing nullable columns as nulls): its files may differ, as a schema evolves.

use std::collections::BTreeMap;

use datafusion::datasource::listing::ListingTable;
use datafusion::execution::context::SessionContext;
use futures::TryStreamExt;
use object_store::ObjectMeta;

use crate::{Error, Result};

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
        let store = context
            .runtime_env()
            .object_store(url.object_store())
            .map_err(datafusion_error)?;
        let mut files: Vec<ObjectMeta> = store
            .list(Some(url.prefix()))
            .try_filter(|meta| {
                let name = meta.location.filename().unwrap_or_default();
                futures::future::ready(
                    name.ends_with(&options.file_extension) && !name.starts_with('.'),
                )
            })
            .try_collect()
            .await
            .map_err(|e| Error::object_store(format!("cannot list source '{name}'"), &e))?;
        files.sort_by(|a, b| a.location.cmp(&b.location));
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

fn describe(columns: &BTreeMap<String, String>) -> String {
    columns
        .iter()
        .map(|(name, data_type)| format!("{name} {data_type}"))
        .collect::<Vec<_>>()
        .join(", ")
}
