//! A catalogue generated straight into a catalog, as runs would have registered it: groups
//! of `--features` double features (with comments, tags, a description) and `--snapshots`
//! daily snapshots each, for the catalogue benchmark (`benches/run-catalogue.sh`).
//!
//! gen-catalogue --groups 1000 --features 50 --snapshots 100 --warehouse <folder>
//! gen-catalogue ... --glue-database <db> --warehouse s3://<bucket>/warehouse   (--features aws)

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::Parser;
use fengine_catalog::{Catalog, Column, LocalCatalog, Partition, Table};
use fengine_online::SqliteOnlineStore;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    groups: usize,
    #[arg(long, default_value_t = 50)]
    features: usize,
    #[arg(long, default_value_t = 100)]
    snapshots: usize,
    /// The warehouse: a folder (the embedded catalog and online store are made in it), or
    /// with --glue-database the s3:// URL the tables point at.
    #[arg(long)]
    warehouse: String,
    /// Register in this Glue database (the endpoint from AWS_ENDPOINT_URL) instead.
    #[arg(long)]
    glue_database: Option<String>,
    /// Registrations in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

const TEAMS: [&str; 5] = ["risk", "growth", "payments", "fraud", "marketing"];
const TOPICS: [&str; 5] = [
    "card spend",
    "merchant mix",
    "login activity",
    "refunds",
    "sessions",
];

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Runtime::new()?.block_on(generate(&args))
}

async fn generate(args: &Args) -> Result<()> {
    let (catalog, database): (Arc<dyn Catalog>, String) = match &args.glue_database {
        None => {
            std::fs::create_dir_all(&args.warehouse)?;
            SqliteOnlineStore::open(format!("{}/online.sqlite", args.warehouse))?;
            let catalog = LocalCatalog::open(format!("{}/catalog.sqlite", args.warehouse))?;
            (Arc::new(catalog), "fengine".to_string())
        }
        Some(database) => (glue(database).await?, database.clone()),
    };
    let first: DateTime<Utc> = "2024-01-01T00:00:00Z".parse()?;
    let started = std::time::Instant::now();
    let mut pending = Vec::new();
    for group in 0..args.groups {
        let catalog = catalog.clone();
        let table = table(args, &database, group);
        let snapshots = args.snapshots;
        let warehouse = args.warehouse.clone();
        pending.push(tokio::spawn(async move {
            for day in 0..snapshots {
                let as_of = first + Duration::days(day as i64);
                let name = as_of.format("%Y%m%dT%H%M%SZ").to_string();
                let partition = Partition {
                    values: vec![name.clone()],
                    location: format!(
                        "{warehouse}/{}/v1/snapshot_ts={name}/run-gen{day:04}/",
                        group_name(group)
                    ),
                    parameters: BTreeMap::from([
                        (
                            "fengine.as_of".into(),
                            as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
                        ),
                        (
                            "fengine.rows".into(),
                            (90_000 + 100 * day + group).to_string(),
                        ),
                        (
                            "fengine.bytes".into(),
                            (4_000_000 + 1_000 * day).to_string(),
                        ),
                        ("fengine.run_id".into(), format!("gen{day:04}")),
                        (
                            "fengine.written_at".into(),
                            (as_of + Duration::minutes(20))
                                .to_rfc3339_opts(SecondsFormat::Secs, true),
                        ),
                    ]),
                };
                catalog.register_partition(&table, &partition).await?;
            }
            anyhow::Ok(())
        }));
        if pending.len() >= args.concurrency {
            pending.remove(0).await??;
        }
    }
    for task in pending {
        task.await??;
    }
    eprintln!(
        "{} groups x {} features x {} snapshots registered in {:.1} s",
        args.groups,
        args.features,
        args.snapshots,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn group_name(group: usize) -> String {
    format!("group_{group:04}")
}

/// The table a run of the group's pipeline registers.
fn table(args: &Args, database: &str, group: usize) -> Table {
    let name = group_name(group);
    let topic = TOPICS[group % TOPICS.len()];
    let mut columns = vec![
        Column {
            name: "customer_id".into(),
            data_type: "bigint".into(),
            comment: None,
        },
        Column {
            name: "event_time".into(),
            data_type: "timestamp".into(),
            comment: None,
        },
    ];
    columns.extend((0..args.features).map(|feature| Column {
        name: format!("f{feature:02}_{}", topic.replace(' ', "_")),
        data_type: "double".into(),
        comment: Some(format!("{topic}, feature {feature} of group {group}")),
    }));
    let tags = BTreeMap::from([
        ("team", TEAMS[group % TEAMS.len()].to_string()),
        (
            "tier",
            if group.is_multiple_of(2) {
                "gold"
            } else {
                "silver"
            }
            .to_string(),
        ),
    ]);
    let parameters = BTreeMap::from([
        ("classification".to_string(), "parquet".to_string()),
        ("fengine.group".to_string(), name.clone()),
        ("fengine.version".to_string(), "1".to_string()),
        ("fengine.key".to_string(), "customer_id".to_string()),
        ("fengine.event_time".to_string(), "event_time".to_string()),
        (
            "fengine.tags".to_string(),
            serde_json::to_string(&tags).expect("strings serialize"),
        ),
        (
            "fengine.pipeline".to_string(),
            format!("pipelines/{name}.sql"),
        ),
        (
            "fengine.description".to_string(),
            format!("Synthetic {topic} features, group {group}"),
        ),
    ]);
    Table {
        database: database.to_string(),
        name: format!("{name}_v1"),
        description: parameters.get("fengine.description").cloned(),
        location: format!("{}/{name}/v1/", args.warehouse),
        columns,
        partition_keys: vec![Column {
            name: "snapshot_ts".into(),
            data_type: "string".into(),
            comment: Some("the run's as-of, YYYYMMDDTHHMMSSZ".into()),
        }],
        parameters,
    }
}

#[cfg(feature = "aws")]
async fn glue(_database: &str) -> Result<Arc<dyn Catalog>> {
    let aws = fengine_aws::AwsContext::load().await;
    Ok(Arc::new(fengine_aws::GlueCatalog::new(&aws)))
}

#[cfg(not(feature = "aws"))]
async fn glue(_database: &str) -> Result<Arc<dyn Catalog>> {
    anyhow::bail!("--glue-database needs a build of gen-catalogue with --features aws")
}
