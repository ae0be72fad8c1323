//! Helpers of the end-to-end tests: the real `fengine` binary run in a temporary folder,
//! and readers of what it wrote that do not go through fengine's own code.
#![allow(dead_code)] // each test binary uses its own share of the helpers

#[cfg(feature = "aws")]
pub mod aws;
pub mod consistency;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub const FENGINE: &str = env!("CARGO_BIN_EXE_fengine");

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A temporary working folder: the embedded profile writes its warehouse under it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn success(self) -> Outcome {
        assert_eq!(
            self.code, 0,
            "fengine failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn fengine(&self, args: &[&str]) -> Outcome {
        self.fengine_with_env(args, &[])
    }

    pub fn fengine_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let output = Command::new(FENGINE)
            // The exact messages, as a person reads them; the log tests ask for JSON.
            .env("FENGINE_LOG_FORMAT", "text")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("FENGINE_PROFILE")
            .env_remove("FENGINE_CONFIG")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Every file under the folder with its contents: to prove a failed run changed nothing.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect_files(self.dir.path(), self.dir.path(), &mut files);
        files
    }

    /// The catalog's partitions of `table`, read straight from its SQLite file:
    /// (snapshot_ts, location).
    pub fn partitions(&self, table: &str) -> Vec<(String, String)> {
        if !self.path("warehouse/catalog.sqlite").exists() {
            return Vec::new();
        }
        let mut partitions: Vec<(String, String)> = consistency::local_partitions(self, table)
            .into_iter()
            .map(|p| (p.snapshot_ts, p.location))
            .collect();
        partitions.sort();
        partitions
    }

    /// The table's definition as the catalog holds it.
    pub fn table(&self, table: &str) -> Option<serde_json::Value> {
        let connection = rusqlite::Connection::open(self.path("warehouse/catalog.sqlite")).unwrap();
        connection
            .query_row(
                "SELECT definition FROM catalog_tables WHERE name = ?1",
                [table],
                |row| row.get::<_, String>(0),
            )
            .ok()
            .map(|d| serde_json::from_str(&d).unwrap())
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else {
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                std::fs::read(&path).unwrap(),
            );
        }
    }
}

/// Every row of the Parquet files in a folder (given as a path or a file:// URL).
pub fn read_parquet_folder(location: &str) -> Vec<RecordBatch> {
    let folder = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|path| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
        })
        .collect()
}

/// Writes `batch` as the Parquet file at `path`, creating its folder.
pub fn write_parquet_file(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None)
            .unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

/// Every row of one Parquet file.
pub fn read_parquet_file(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(
        File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap())
    .collect()
}

pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// A column of every batch, cast to `T`'s Arrow type: values compared by the tests.
pub fn column<T: arrow::datatypes::ArrowPrimitiveType>(
    batches: &[RecordBatch],
    name: &str,
) -> Vec<Option<T::Native>> {
    use arrow::array::{Array, AsArray};
    batches
        .iter()
        .flat_map(|batch| {
            let column = batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name}"));
            let cast = arrow::compute::cast(column, &T::DATA_TYPE).unwrap();
            let values = cast.as_primitive::<T>();
            (0..values.len())
                .map(|i| values.is_valid(i).then(|| values.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn strings(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    use arrow::array::{Array, AsArray};
    batches
        .iter()
        .flat_map(|batch| {
            let column = batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name}"));
            let cast = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).unwrap();
            let values = cast.as_string::<i32>();
            (0..values.len())
                .map(|i| values.is_valid(i).then(|| values.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A transaction of the examples' sample data, read with the parquet crate alone.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub customer_id: i64,
    pub amount: f64,
    pub category: String,
    pub event_time_us: i64,
}

pub fn sample_transactions() -> Vec<Transaction> {
    use arrow::datatypes::{Float64Type, Int64Type};
    let batches = read_parquet_folder(repo_path("pipelines/data/transactions").to_str().unwrap());
    let customers = column::<Int64Type>(&batches, "customer_id");
    let amounts = column::<Float64Type>(&batches, "amount");
    let categories = strings(&batches, "category");
    let times = column::<Int64Type>(&batches, "event_time");
    (0..customers.len())
        .map(|i| Transaction {
            customer_id: customers[i].unwrap(),
            amount: amounts[i].unwrap(),
            category: categories[i].clone().unwrap(),
            event_time_us: times[i].unwrap(),
        })
        .collect()
}

pub fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

pub fn assert_close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-9 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} != {expected}"
    );
}
