//! Computing a planned feature group and publishing it: Parquet snapshot, output checks,
//! catalog registration (the commit point), then the online load.

use std::collections::BTreeMap;
use std::time::Instant;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Field, Schema, UInt64Type};
use arrow::row::{RowConverter, SortField};
use arrow::util::display::array_value_to_string;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::execution::context::SessionContext;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt, ident, lit};
use datafusion::prelude::ParquetReadOptions;
use fengine_catalog::Partition;
use fengine_online::OnlineTable;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use url::Url;

use crate::manifest::{GroupManifest, OnlineOutcome, Timings};
use crate::plan::PlannedGroup;
use crate::{Backends, Error, Result, RunOptions, snapshot_name};

const ROW_NUMBER: &str = "__fengine_row_number";

/// Computes the group's query into its snapshot and publishes it.
pub(crate) async fn publish_group(
    context: &SessionContext,
    group: &PlannedGroup,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    publish(context, group, None, options, backends).await
}

/// Publishes rows computed elsewhere (a backfill's sweep) as the group's snapshot.
pub(crate) async fn publish_rows(
    context: &SessionContext,
    group: &PlannedGroup,
    rows: RecordBatch,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    publish(context, group, Some(rows), options, backends).await
}

async fn publish(
    context: &SessionContext,
    group: &PlannedGroup,
    computed: Option<RecordBatch>,
    options: &RunOptions,
    backends: &Backends,
) -> Result<GroupManifest> {
    let name = group.name();
    let version = group.definition.version;
    let snapshot_ts = snapshot_name(options.as_of);
    let snapshot_location = backends
        .warehouse
        .snapshot_location(&name, version, &snapshot_ts);
    let run_location = snapshot_location
        .join(&format!("run-{}/", options.run_id))
        .expect("run ids are valid URL path segments");
    let mut timings = Timings::default();

    let (rows_written, snapshot) = match computed {
        None => {
            let started = Instant::now();
            let written = write_snapshot(group, &run_location, backends).await;
            let rows_written = or_discard(written, backends, &run_location).await?;
            timings.compute_and_write = elapsed_ms(started);

            let started = Instant::now();
            let checked = read_and_check(context, group, &run_location).await;
            let snapshot = or_discard(checked, backends, &run_location).await?;
            timings.check = elapsed_ms(started);
            (rows_written, snapshot)
        }
        Some(rows) => {
            let started = Instant::now();
            check_rows(group, &rows)?;
            timings.check = elapsed_ms(started);

            let started = Instant::now();
            let written = write_rows(&rows, &run_location, backends).await;
            or_discard(written, backends, &run_location).await?;
            timings.compute_and_write = elapsed_ms(started);
            let rows_written = rows.num_rows() as u64;
            let snapshot = context.read_batch(rows).map_err(|e| in_group(group, e))?;
            (rows_written, snapshot)
        }
    };

    fail_point("before_register");
    let started = Instant::now();
    let partition = Partition {
        values: vec![snapshot_ts.clone()],
        location: run_location.to_string(),
        parameters: BTreeMap::from([
            (
                "fengine.as_of".to_string(),
                options
                    .as_of
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            ("fengine.rows".to_string(), rows_written.to_string()),
            ("fengine.run_id".to_string(), options.run_id.clone()),
        ]),
    };
    let registered = backends
        .catalog
        .register_snapshot(&group.table, &partition)
        .await;
    let replaced = or_discard(registered.map_err(Error::from), backends, &run_location).await?;
    // Earlier runs of this as-of, replaced or killed before registering, are garbage now.
    backends
        .warehouse
        .delete_prefix_except(&snapshot_location, &run_location)
        .await?;
    timings.register = elapsed_ms(started);

    let started = Instant::now();
    let online = load_online(group, snapshot, options, backends).await?;
    timings.online = elapsed_ms(started);

    Ok(GroupManifest {
        group: name,
        version,
        table: format!("{}.{}", group.table.database, group.table.name),
        rows_written,
        snapshot_location: run_location.to_string(),
        partition: format!("snapshot_ts={snapshot_ts}"),
        replaced: replaced.is_some(),
        online,
        timings_ms: timings,
    })
}

/// Streams the group's rows into Parquet files under `location`; returns the row count.
/// A snapshot without rows still gets a file, so that readers find its schema.
async fn write_snapshot(group: &PlannedGroup, location: &Url, backends: &Backends) -> Result<u64> {
    let mut parquet = TableParquetOptions::default();
    parquet.global.compression = Some("zstd(3)".to_string());
    let counts = group
        .frame
        .clone()
        .write_parquet(
            location.as_str(),
            DataFrameWriteOptions::new(),
            Some(parquet),
        )
        .await
        .map_err(|e| in_group(group, e))?;
    let rows = counts
        .iter()
        .filter(|batch| batch.num_columns() > 0)
        .map(|batch| {
            batch
                .column(0)
                .as_primitive::<UInt64Type>()
                .iter()
                .flatten()
                .sum::<u64>()
        })
        .sum();
    if rows == 0 {
        let mut file = Vec::new();
        ArrowWriter::try_new(&mut file, group.schema.clone(), None)
            .and_then(|writer| writer.close())
            .map_err(|e| Error::Infrastructure(format!("cannot encode an empty snapshot: {e}")))?;
        let path = location.join("empty.parquet").expect("a valid file name");
        backends.warehouse.put(&path, file).await?;
    }
    Ok(rows)
}

/// Writes rows held in memory as the snapshot's one Parquet file.
async fn write_rows(rows: &RecordBatch, location: &Url, backends: &Backends) -> Result<()> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("a valid level"),
        ))
        .build();
    let mut file = Vec::new();
    ArrowWriter::try_new(&mut file, rows.schema(), Some(properties))
        .and_then(|mut writer| {
            writer.write(rows)?;
            writer.close()
        })
        .map_err(|e| Error::Infrastructure(format!("cannot encode a snapshot: {e}")))?;
    let path = location.join("part-0.parquet").expect("a valid file name");
    backends.warehouse.put(&path, file).await
}

/// The checks of [`check_snapshot`], on rows in memory.
fn check_rows(group: &PlannedGroup, rows: &RecordBatch) -> Result<()> {
    let name = group.name();
    let identity: Vec<ArrayRef> = group
        .definition
        .key_columns()
        .iter()
        .chain([&group.definition.event_time_column()])
        .map(|column| {
            rows.column_by_name(column)
                .expect("planned columns")
                .clone()
        })
        .collect();
    let sample = |row: usize| {
        let columns = identity.iter().map(|c| c.slice(row, 1)).collect();
        let fields: Vec<_> = group
            .definition
            .key_columns()
            .into_iter()
            .chain([group.definition.event_time_column()])
            .zip(&identity)
            .map(|(name, c)| Field::new(name, c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map(|batch| describe_row(&batch))
            .unwrap_or_default()
    };
    if let Some(row) = (0..rows.num_rows()).find(|&row| identity.iter().any(|c| c.is_null(row))) {
        return Err(Error::Check(format!(
            "feature group '{name}': a row has a null key or event time ({}); every row needs \
             its KEY and EVENT TIME. Nothing of this group was published",
            sample(row)
        )));
    }
    let fields = identity
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let encoded = RowConverter::new(fields)
        .and_then(|converter| converter.convert_columns(&identity))
        .map_err(|e| Error::Infrastructure(format!("cannot check a snapshot: {e}")))?;
    let mut seen = HashSet::with_capacity(rows.num_rows());
    if let Some(row) = (0..rows.num_rows()).find(|&row| !seen.insert(encoded.row(row))) {
        return Err(Error::Check(format!(
            "feature group '{name}': several rows share a key and event time ({}); a group holds \
             one row per key and event time. Nothing of this group was published",
            sample(row)
        )));
    }
    Ok(())
}

/// The written snapshot, once it passed its checks.
async fn read_and_check(
    context: &SessionContext,
    group: &PlannedGroup,
    location: &Url,
) -> Result<DataFrame> {
    let snapshot = read_snapshot(context, group, location).await?;
    check_snapshot(group, snapshot.clone()).await?;
    Ok(snapshot)
}

async fn read_snapshot(
    context: &SessionContext,
    group: &PlannedGroup,
    location: &Url,
) -> Result<DataFrame> {
    context
        .read_parquet(
            location.as_str(),
            ParquetReadOptions::default().schema(&group.schema),
        )
        .await
        .map_err(|e| in_group(group, e))
}

/// Every row has its key and event time, and no two rows share both.
async fn check_snapshot(group: &PlannedGroup, snapshot: DataFrame) -> Result<()> {
    let name = group.name();
    let keys = group.definition.key_columns();
    let event_time = group.definition.event_time_column();
    let identity: Vec<Expr> = keys.iter().chain([&event_time]).map(ident).collect();

    let any_null = identity
        .iter()
        .map(|c| c.clone().is_null())
        .reduce(Expr::or)
        .expect("a group has key columns");
    let nulls = snapshot
        .clone()
        .select(identity.clone())
        .and_then(|f| f.filter(any_null));
    let nulls = first_row(nulls, group).await?;
    if let Some(row) = nulls {
        return Err(Error::Check(format!(
            "feature group '{name}': a row has a null key or event time ({}); every row needs \
             its KEY and EVENT TIME. Nothing of this group was published",
            describe_row(&row)
        )));
    }

    let repeated = snapshot
        .aggregate(identity, vec![count(lit(1)).alias("rows")])
        .and_then(|counts| counts.filter(ident("rows").gt(lit(1i64))));
    if let Some(row) = first_row(repeated, group).await? {
        return Err(Error::Check(format!(
            "feature group '{name}': several rows share a key and event time ({}); a group holds \
             one row per key and event time. Nothing of this group was published",
            describe_row(&row)
        )));
    }
    Ok(())
}

async fn first_row(
    frame: datafusion::error::Result<DataFrame>,
    group: &PlannedGroup,
) -> Result<Option<RecordBatch>> {
    let batches = frame
        .and_then(|f| f.limit(0, Some(1)))
        .map_err(|e| in_group(group, e))?
        .collect()
        .await
        .map_err(|e| in_group(group, e))?;
    Ok(batches.into_iter().find(|b| b.num_rows() > 0))
}

fn describe_row(batch: &RecordBatch) -> String {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            let value = if column.is_null(0) {
                "NULL".to_string()
            } else {
                array_value_to_string(column, 0).unwrap_or_else(|_| "?".to_string())
            };
            format!("{}={value}", field.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads the latest row per key, unless the store holds a newer as-of and the run is not
/// forced: older values never silently replace newer ones.
async fn load_online(
    group: &PlannedGroup,
    snapshot: DataFrame,
    options: &RunOptions,
    backends: &Backends,
) -> Result<OnlineOutcome> {
    if !options.load_online {
        return Ok(OnlineOutcome::NotNewestOfBackfill);
    }
    let name = group.name();
    let version = group.definition.version;
    if let Some(loaded_as_of) = backends.online.loaded_as_of(&name, version).await?
        && loaded_as_of > options.as_of
        && !options.force
    {
        return Ok(OnlineOutcome::SkippedNewer { loaded_as_of });
    }
    let keys = group.definition.key_columns();
    let latest_first = row_number()
        .partition_by(keys.iter().map(ident).collect())
        .order_by(vec![
            ident(group.definition.event_time_column()).sort(false, true),
        ])
        .build()
        .and_then(|n| snapshot.window(vec![n.alias(ROW_NUMBER)]))
        .and_then(|f| f.filter(ident(ROW_NUMBER).eq(lit(1u64))))
        .and_then(|f| f.drop_columns(&[ROW_NUMBER]))
        .map_err(|e| in_group(group, e))?;
    let mut batches = latest_first
        .execute_stream()
        .await
        .map_err(|e| in_group(group, e))?;
    let table = OnlineTable {
        group: name,
        version,
        schema: group.schema.clone(),
        key_columns: keys,
        event_time_column: group.definition.event_time_column(),
        ttl: group.ttl,
    };
    let mut load = backends.online.begin_load(&table).await?;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| in_group(group, e))?;
        if batch.num_rows() > 0 {
            load.write(batch).await?;
        }
    }
    let rows = load.commit(options.as_of).await?;
    Ok(OnlineOutcome::Loaded { rows })
}

/// On failure, deletes what the run wrote before reporting the run's own error.
async fn or_discard<T>(result: Result<T>, backends: &Backends, run_location: &Url) -> Result<T> {
    if result.is_err()
        && let Err(cleanup) = backends.warehouse.delete_prefix(run_location).await
    {
        eprintln!(
            "fengine: warning: could not delete the unpublished files at {run_location}: {cleanup}"
        );
    }
    result
}

fn in_group(group: &PlannedGroup, error: datafusion::error::DataFusionError) -> Error {
    Error::from_datafusion(Some(&group.location), error).in_group(&group.name())
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// Stops the process at a named point when `FENGINE_FAIL_AT` names it: how the tests kill a
/// run at the worst moment.
fn fail_point(name: &str) {
    if std::env::var("FENGINE_FAIL_AT").is_ok_and(|at| at == name) {
        eprintln!("fengine: FENGINE_FAIL_AT={name}: aborting");
        std::process::abort();
    }
}
