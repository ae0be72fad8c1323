//! The DynamoDB loader's own cost: items per second and CPU per 1,000 items, loading into a
//! local endpoint (another process) that accepts every request at once, so that the server
//! is not the limit.
//!
//! bench-dynamodb-load --items 100000 [--requests-in-flight 32]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use clap::Parser;
use fengine_aws::{AwsContext, DynamoDbOnlineStore, WriteSettings};
use fengine_online::{OnlineStore, OnlineTable};
use fengine_testing::{Faults, FaultyDynamoDb};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    items: i64,
    #[arg(long, default_value_t = WriteSettings::default().requests_in_flight)]
    requests_in_flight: usize,
    /// Run the accepting endpoint and print its address (used by the benchmark itself).
    #[arg(long, hide = true)]
    serve: bool,
}

const BATCH_ROWS: i64 = 8_192;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.serve {
        let server = FaultyDynamoDb::start(
            Faults {
                unprocessed_percent: 0,
                throttled_percent: 0,
            },
            "customer_id",
        );
        println!("{}", server.endpoint);
        std::thread::park();
        return Ok(());
    }
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut endpoint = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().context("stdout")?),
        &mut endpoint,
    )?;
    let result = tokio::runtime::Runtime::new()?.block_on(load(endpoint.trim(), &args));
    server.kill()?;
    result
}

async fn load(endpoint: &str, args: &Args) -> Result<()> {
    let aws = AwsContext::local(endpoint);
    let settings = WriteSettings {
        requests_in_flight: args.requests_in_flight,
        deadline: Duration::from_secs(600),
    };
    let store = DynamoDbOnlineStore::new(&aws, "bench_", settings);
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("spend_7d", DataType::Float64, true),
        Field::new("spend_30d", DataType::Float64, true),
        Field::new("txn_count_30d", DataType::Int64, true),
        Field::new("top_category", DataType::Utf8, true),
    ]));
    let table = OnlineTable {
        group: "bench".into(),
        version: 1,
        schema: schema.clone(),
        key_columns: vec!["customer_id".into()],
        event_time_column: "event_time".into(),
        ttl: Some(Duration::from_secs(30 * 86_400)),
    };
    let batches: Vec<RecordBatch> = (0..args.items)
        .step_by(BATCH_ROWS as usize)
        .map(|start| {
            let ids: Vec<i64> = (start..(start + BATCH_ROWS).min(args.items)).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids.clone())),
                    Arc::new(
                        TimestampMicrosecondArray::from(vec![1_711_929_600_000_000; ids.len()])
                            .with_timezone("UTC"),
                    ),
                    Arc::new(Float64Array::from_iter_values(
                        ids.iter().map(|i| *i as f64 * 0.37),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        ids.iter().map(|i| *i as f64 * 1.91),
                    )),
                    Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 97))),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter()
                            .map(|i| ["grocery", "travel", "fuel"][*i as usize % 3]),
                    )),
                ],
            )
            .map_err(anyhow::Error::from)
        })
        .collect::<Result<_>>()?;
    let cpu_before = process_cpu()?;
    let started = Instant::now();
    let snapshot = fengine_online::SnapshotId {
        as_of: chrono::Utc::now(),
        run_id: "bench".to_string(),
    };
    let mut load = store.begin_load(&table, &snapshot).await?;
    for batch in batches {
        load.write(batch).await?;
    }
    let written = load.commit().await?.rows;
    let wall = started.elapsed();
    let cpu = process_cpu()? - cpu_before;
    println!(
        "| {} | {} | {:.2} s | {:.0} | {:.2} ms |",
        written,
        args.requests_in_flight,
        wall.as_secs_f64(),
        written as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1_000.0 / (written as f64 / 1_000.0)
    );
    Ok(())
}

/// User and system CPU time of this process so far, from /proc.
fn process_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / 100.0))
}
