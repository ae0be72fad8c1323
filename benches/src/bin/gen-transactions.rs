//! Writes seeded synthetic card transactions as Parquet: the benchmarks' input and the
//! examples' sample data.
//!
//! Columns: customer_id BIGINT, merchant_id BIGINT, amount DOUBLE, category VARCHAR,
//! event_time TIMESTAMP (UTC, milliseconds apart at most), spread evenly over `--days`
//! before `--end`. The same arguments always write the same rows.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use clap::Parser;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CATEGORIES: [&str; 8] = [
    "grocery",
    "fuel",
    "travel",
    "dining",
    "online",
    "pharmacy",
    "electronics",
    "apparel",
];
const BATCH_ROWS: usize = 64 * 1024;

#[derive(Parser)]
struct Args {
    /// Transactions to write.
    #[arg(long)]
    rows: usize,
    #[arg(long)]
    customers: u64,
    #[arg(long, default_value_t = 1_000)]
    merchants: u64,
    #[arg(long, default_value_t = 90)]
    days: i64,
    /// The end of the time range, exclusive (RFC 3339).
    #[arg(long, default_value = "2024-04-01T00:00:00Z")]
    end: String,
    /// Parquet files to spread the rows over.
    #[arg(long, default_value_t = 1)]
    files: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The output folder, created if missing.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let end = chrono::DateTime::parse_from_rfc3339(&args.end)
        .context("--end")?
        .timestamp_micros();
    let span_ms = args.days * 86_400_000;
    let start = end - span_ms * 1_000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("category", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    std::fs::create_dir_all(&args.out)?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let per_file = args.rows.div_ceil(args.files.max(1));
    let mut written = 0;
    for file_index in 0..args.files.max(1) {
        let path = args.out.join(format!("part-{file_index:05}.parquet"));
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(&path)?, schema.clone(), Some(properties))?;
        let file_rows = per_file.min(args.rows - written);
        let mut remaining = file_rows;
        while remaining > 0 {
            let n = remaining.min(BATCH_ROWS);
            writer.write(&random_batch(&mut rng, &schema, n, &args, start, span_ms)?)?;
            remaining -= n;
        }
        writer.close()?;
        written += file_rows;
    }
    println!("wrote {written} transactions to {}", args.out.display());
    Ok(())
}

fn random_batch(
    rng: &mut ChaCha8Rng,
    schema: &Arc<Schema>,
    n: usize,
    args: &Args,
    start: i64,
    span_ms: i64,
) -> Result<RecordBatch> {
    let customers =
        Int64Array::from_iter_values((0..n).map(|_| rng.random_range(1..=args.customers) as i64));
    let merchants =
        Int64Array::from_iter_values((0..n).map(|_| rng.random_range(1..=args.merchants) as i64));
    // Card amounts are skewed: many small payments, a few large ones.
    let amounts = Float64Array::from_iter_values((0..n).map(|_| {
        let u: f64 = rng.random_range(0.0..1.0);
        ((-(1.0 - u).ln() * 60.0 + 1.0) * 100.0).round() / 100.0
    }));
    let categories = StringArray::from_iter_values(
        (0..n).map(|_| CATEGORIES[rng.random_range(0..CATEGORIES.len())]),
    );
    let times = TimestampMicrosecondArray::from_iter_values(
        (0..n).map(|_| start + rng.random_range(0..span_ms) * 1_000),
    )
    .with_timezone("UTC");
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(customers),
            Arc::new(merchants),
            Arc::new(amounts),
            Arc::new(categories),
            Arc::new(times),
        ],
    )?)
}
