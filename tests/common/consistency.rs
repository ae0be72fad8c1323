//! The state every test of faults and concurrency ends by checking, whatever happened before:
//! every registered partition points at complete files, no run left files beside the
//! registered ones and their statistics files, and the online store holds exactly the newest registered snapshot's
//! latest row per key, its load recorded as completed.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::util::display::array_value_to_string;

/// A registered partition, as a test reads it from the catalog.
#[derive(Debug, Clone)]
pub struct Registered {
    pub snapshot_ts: String,
    pub location: String,
    pub parameters: BTreeMap<String, String>,
}

/// What a store holds for one feature group version.
#[derive(Debug, Default)]
pub struct OnlineContents {
    /// The stored rows (as JSON objects), keyed by the key column's value as text.
    pub rows: BTreeMap<String, serde_json::Value>,
    pub loaded_run_id: Option<String>,
    pub loading_run_id: Option<String>,
}

/// Checks the invariants. `files` lists every object under the group version's table
/// location; `read` reads the Parquet files under a location.
pub fn assert_consistent(
    partitions: &[Registered],
    files: &[String],
    online: &OnlineContents,
    key: &str,
    event_time: &str,
    read: impl Fn(&str) -> Vec<RecordBatch>,
) {
    assert!(!partitions.is_empty(), "nothing was registered");
    for partition in partitions {
        let rows: usize = read(&partition.location).iter().map(|b| b.num_rows()).sum();
        assert_eq!(
            rows.to_string(),
            partition.parameters["fengine.rows"],
            "partition {} at {} does not hold its rows",
            partition.snapshot_ts,
            partition.location
        );
    }
    let local = |url: &str| url.trim_start_matches("file://").to_string();
    let orphans: Vec<&String> = files
        .iter()
        .filter(|file| {
            !partitions.iter().any(|p| {
                file.starts_with(&local(&p.location))
                    || p.parameters
                        .get("fengine.statistics_file")
                        .map(|f| local(f))
                        == Some(local(file))
            })
        })
        .collect();
    assert!(
        orphans.is_empty(),
        "files no registered snapshot uses: {orphans:?}"
    );

    let newest = partitions
        .iter()
        .max_by(|a, b| a.snapshot_ts.cmp(&b.snapshot_ts))
        .unwrap();
    assert_eq!(
        online.loaded_run_id.as_deref(),
        Some(newest.parameters["fengine.run_id"].as_str()),
        "the online store's completed load is not the newest snapshot {}",
        newest.snapshot_ts
    );
    assert_eq!(online.loading_run_id, None, "a load is left unfinished");
    let expected = latest_rows(&read(&newest.location), key, event_time);
    let expected_keys: Vec<&String> = expected.keys().collect();
    let online_keys: Vec<&String> = online.rows.keys().collect();
    assert_eq!(
        online_keys, expected_keys,
        "the online keys are not the snapshot's"
    );
    for (key_value, row) in &expected {
        let stored = &online.rows[key_value];
        for (column, value) in row {
            assert_eq!(
                stored[column].to_string().trim_matches('"'),
                value,
                "key {key_value}, column {column}"
            );
        }
    }
}

/// The latest row of each key, every column as text: a nested-loop reference.
fn latest_rows(
    batches: &[RecordBatch],
    key: &str,
    event_time: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut latest: BTreeMap<String, (i64, BTreeMap<String, String>)> = BTreeMap::new();
    for batch in batches {
        let times = arrow::compute::cast(
            batch.column_by_name(event_time).unwrap(),
            &arrow::datatypes::DataType::Int64,
        )
        .unwrap();
        let times = times
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        for row in 0..batch.num_rows() {
            let key_value = array_value_to_string(batch.column_by_name(key).unwrap(), row).unwrap();
            let values: BTreeMap<String, String> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .filter(|(field, _)| {
                    !matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(..))
                })
                .map(|(field, column)| {
                    (
                        field.name().clone(),
                        array_value_to_string(column, row).unwrap(),
                    )
                })
                .collect();
            let time = times.value(row);
            if latest.get(&key_value).is_none_or(|(t, _)| *t < time) {
                latest.insert(key_value, (time, values));
            }
        }
    }
    latest.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// The partitions of `table` in a workspace's embedded catalog.
pub fn local_partitions(workspace: &super::Workspace, table: &str) -> Vec<Registered> {
    let connection =
        rusqlite::Connection::open(workspace.path("warehouse/catalog.sqlite")).unwrap();
    let mut statement = connection
        .prepare("SELECT key_values, definition FROM catalog_partitions WHERE table_name = ?1")
        .unwrap();
    statement
        .query_map([table], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .unwrap()
        .map(|row| {
            let (values, definition) = row.unwrap();
            let values: Vec<String> = serde_json::from_str(&values).unwrap();
            let definition: serde_json::Value = serde_json::from_str(&definition).unwrap();
            Registered {
                snapshot_ts: values[0].clone(),
                location: definition["location"].as_str().unwrap().to_string(),
                parameters: serde_json::from_value(definition["parameters"].clone()).unwrap(),
            }
        })
        .collect()
}

/// Every file under a local folder, as a path.
pub fn local_files(folder: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path.display().to_string());
            }
        }
    }
    files
}

/// What a workspace's embedded online store holds of `table` (`<group>_v<version>`).
pub fn local_online(workspace: &super::Workspace, group: &str, version: u32) -> OnlineContents {
    let connection = rusqlite::Connection::open(workspace.path("warehouse/online.sqlite")).unwrap();
    let (loaded_run_id, loading_run_id) = connection
        .query_row(
            "SELECT loaded_run_id, loading_run_id FROM online_tables
             WHERE group_name = ?1 AND version = ?2",
            rusqlite::params![group, version],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let mut statement = connection
        .prepare(&format!("SELECT fengine_row FROM \"{group}_v{version}\""))
        .unwrap();
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|row| serde_json::from_str::<serde_json::Value>(&row.unwrap()).unwrap())
        .collect::<Vec<_>>();
    OnlineContents {
        rows: BTreeMap::new(),
        loaded_run_id,
        loading_run_id,
    }
    .with_rows(rows)
}

impl OnlineContents {
    /// Keys the rows by their `k` column, the key of the tests' groups.
    pub fn with_rows(mut self, rows: Vec<serde_json::Value>) -> Self {
        for row in rows {
            let key = row["k"].to_string();
            assert!(
                self.rows.insert(key.clone(), row).is_none(),
                "key {key} is stored twice"
            );
        }
        self
    }
}
