//! The behaviour every catalog backend must have: the embedded one, and Glue (against the
//! local server that tests/run.sh starts) with `--features aws`.

mod common;

use std::collections::BTreeMap;

use fengine_catalog::{Catalog, Column, Error, LocalCatalog, Partition, Table};
use rstest::rstest;

enum Kind {
    Embedded,
    #[cfg(feature = "aws")]
    Glue,
}

/// A catalog with a database of its own, so that cases run in parallel on one server.
struct Backend {
    catalog: Box<dyn Catalog>,
    database: String,
    _folder: tempfile::TempDir,
}

async fn backend(kind: Kind) -> Backend {
    let folder = tempfile::tempdir().unwrap();
    let (catalog, database): (Box<dyn Catalog>, String) = match kind {
        Kind::Embedded => {
            let catalog = LocalCatalog::open(folder.path().join("catalog.sqlite")).unwrap();
            (Box::new(catalog), "features".to_string())
        }
        #[cfg(feature = "aws")]
        Kind::Glue => {
            let aws = common::aws::context().await;
            (
                Box::new(fengine_aws::GlueCatalog::new(&aws)),
                common::aws::unique_name("features"),
            )
        }
    };
    Backend {
        catalog,
        database,
        _folder: folder,
    }
}

impl Backend {
    fn table(&self, columns: &[(&str, &str)]) -> Table {
        Table {
            database: self.database.clone(),
            name: "spend_v1".into(),
            description: Some("spend per customer".into()),
            location: "s3://bucket/w/spend/v1/".into(),
            columns: columns
                .iter()
                .map(|(name, data_type)| Column {
                    name: name.to_string(),
                    data_type: data_type.to_string(),
                    comment: Some(format!("{name} comment")),
                })
                .collect(),
            partition_keys: vec![Column {
                name: "snapshot_ts".into(),
                data_type: "string".into(),
                comment: None,
            }],
            parameters: BTreeMap::from([("fengine.key".to_string(), "customer_id".to_string())]),
        }
    }

    async fn partitions(&self) -> Vec<Partition> {
        self.catalog
            .list_partitions(&self.database, "spend_v1")
            .await
            .unwrap()
    }

    async fn stored_table(&self) -> Option<Table> {
        self.catalog
            .get_table(&self.database, "spend_v1")
            .await
            .unwrap()
    }
}

fn partition(value: &str, run: &str) -> Partition {
    Partition {
        values: vec![value.into()],
        location: format!("s3://bucket/w/spend/v1/snapshot_ts={value}/{run}/"),
        parameters: BTreeMap::from([("fengine.rows".to_string(), "7".to_string())]),
    }
}

const COLUMNS: [(&str, &str); 2] = [("customer_id", "bigint"), ("spend", "double")];

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn registers_a_table_and_its_partitions(#[case] kind: Kind) {
    let backend = backend(kind).await;
    assert_eq!(backend.stored_table().await, None);
    let replaced = backend
        .catalog
        .register_partition(
            &backend.table(&COLUMNS),
            &partition("20240102T000000Z", "a"),
        )
        .await
        .unwrap();
    assert_eq!(replaced, None);
    backend
        .catalog
        .register_partition(
            &backend.table(&COLUMNS),
            &partition("20240101T000000Z", "b"),
        )
        .await
        .unwrap();
    assert_eq!(backend.stored_table().await, Some(backend.table(&COLUMNS)));
    assert_eq!(
        backend.partitions().await,
        [
            partition("20240101T000000Z", "b"),
            partition("20240102T000000Z", "a")
        ]
    );
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn gets_one_partition_by_its_values(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let values = ["20240101T000000Z".to_string()];
    let get = |values: &[String]| {
        let values = values.to_vec();
        let backend = &backend;
        async move {
            backend
                .catalog
                .get_partition(&backend.database, "spend_v1", &values)
                .await
                .unwrap()
        }
    };
    assert_eq!(get(&values).await, None, "no table yet");
    let table = backend.table(&COLUMNS);
    for (value, run) in [("20240101T000000Z", "a"), ("20240102T000000Z", "b")] {
        backend
            .catalog
            .register_partition(&table, &partition(value, run))
            .await
            .unwrap();
    }
    assert_eq!(get(&values).await, Some(partition("20240101T000000Z", "a")));
    assert_eq!(get(&["20240103T000000Z".to_string()]).await, None);
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn a_second_registration_of_a_partition_replaces_it(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let first = partition("20240101T000000Z", "run1");
    backend
        .catalog
        .register_partition(&backend.table(&COLUMNS), &first)
        .await
        .unwrap();
    let second = partition("20240101T000000Z", "run2");
    let replaced = backend
        .catalog
        .register_partition(&backend.table(&COLUMNS), &second)
        .await
        .unwrap();
    assert_eq!(replaced, Some(first));
    assert_eq!(backend.partitions().await, [second]);
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn a_schema_change_is_refused_and_changes_nothing(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let first = partition("20240101T000000Z", "a");
    backend
        .catalog
        .register_partition(&backend.table(&COLUMNS), &first)
        .await
        .unwrap();
    let changed = backend.table(&[("customer_id", "bigint"), ("spend", "decimal(12,2)")]);
    let error = backend
        .catalog
        .register_partition(&changed, &partition("20240102T000000Z", "b"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "table '{}.spend_v1' has columns (customer_id bigint, spend double), \
             the new snapshot has (customer_id bigint, spend decimal(12,2))",
            backend.database
        )
    );
    assert_eq!(backend.partitions().await, [first]);
    assert_eq!(backend.stored_table().await, Some(backend.table(&COLUMNS)));
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn comments_and_parameters_may_change(#[case] kind: Kind) {
    let backend = backend(kind).await;
    backend
        .catalog
        .register_partition(
            &backend.table(&COLUMNS),
            &partition("20240101T000000Z", "a"),
        )
        .await
        .unwrap();
    let mut updated = backend.table(&COLUMNS);
    updated.description = Some("new words".into());
    updated.columns[1].comment = Some("sum of amount".into());
    updated
        .parameters
        .insert("fengine.tags".into(), "{}".into());
    backend
        .catalog
        .register_partition(&updated, &partition("20240102T000000Z", "b"))
        .await
        .unwrap();
    assert_eq!(backend.stored_table().await, Some(updated));
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn lists_the_tables_of_a_database_by_name(#[case] kind: Kind) {
    let backend = backend(kind).await;
    assert_eq!(
        backend
            .catalog
            .list_tables(&backend.database)
            .await
            .unwrap(),
        []
    );
    let mut tables = Vec::new();
    for name in ["spend_v3", "spend_v1", "clicks_v1"] {
        let table = Table {
            name: name.into(),
            ..backend.table(&COLUMNS)
        };
        backend
            .catalog
            .register_partition(&table, &partition("20240101T000000Z", name))
            .await
            .unwrap();
        tables.push(table);
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        backend
            .catalog
            .list_tables(&backend.database)
            .await
            .unwrap(),
        tables
    );
}

/// A table of the same name and columns that fengine did not register (no fengine.*
/// parameters: another tool's) is not updated: its definition and partitions stay.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn a_table_fengine_did_not_register_is_not_taken_over(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let foreign = Table {
        parameters: BTreeMap::from([("owner".to_string(), "etl".to_string())]),
        ..backend.table(&COLUMNS)
    };
    backend
        .catalog
        .register_partition(&foreign, &partition("20240101T000000Z", "etl"))
        .await
        .unwrap();
    let error = backend
        .catalog
        .register_partition(
            &backend.table(&COLUMNS),
            &partition("20240102T000000Z", "a"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "table '{}.spend_v1' exists and was not registered by fengine (it has no fengine.* \
             parameters): fengine does not take it over; rename the feature group, or drop or \
             move that table",
            backend.database
        )
    );
    assert_eq!(backend.stored_table().await, Some(foreign));
    assert_eq!(
        backend.partitions().await,
        [partition("20240101T000000Z", "etl")]
    );
}

/// A table without partitions (the catalogue's own) is put, and updated in place.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn a_table_is_put_without_partitions_and_updated_in_place(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let mut table = Table {
        partition_keys: Vec::new(),
        ..backend.table(&COLUMNS)
    };
    backend.catalog.put_table(&table).await.unwrap();
    backend.catalog.put_table(&table).await.unwrap();
    assert_eq!(backend.stored_table().await, Some(table.clone()));
    table
        .parameters
        .insert("fengine.retired_at".into(), "2024-01-01T00:00:00Z".into());
    backend.catalog.put_table(&table).await.unwrap();
    assert_eq!(backend.stored_table().await, Some(table));
    assert_eq!(backend.partitions().await, []);
}

/// Glue's limits hold on every backend, so that what registers on a laptop registers in
/// Glue; past them the registration is refused, naming the limit, and changes nothing.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn what_glue_cannot_hold_is_refused_on_every_backend(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let long_description = Table {
        description: Some("d".repeat(2049)),
        ..backend.table(&COLUMNS)
    };
    let mut long_comment = backend.table(&COLUMNS);
    long_comment.columns[1].comment = Some("c".repeat(256));
    let mut large_parameter = backend.table(&COLUMNS);
    large_parameter
        .parameters
        .insert("fengine.tags".into(), "t".repeat(512_001));
    let cases = [
        (
            long_description,
            "its description holds 2049 characters, more than Glue's 2048; shorten it",
        ),
        (
            long_comment,
            "the comment of column 'spend' holds 256 characters, more than Glue's 255; shorten it",
        ),
        (
            large_parameter,
            "parameter 'fengine.tags' holds 512001 bytes, more than Glue's 512000",
        ),
    ];
    for (table, message) in cases {
        let error = backend
            .catalog
            .register_partition(&table, &partition("20240101T000000Z", "a"))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Invalid(_)), "{error}");
        assert_eq!(
            error.to_string(),
            format!("table '{}.spend_v1': {message}", backend.database)
        );
    }
    // At the limits, it registers.
    let mut at_limits = Table {
        description: Some("d".repeat(2048)),
        ..backend.table(&COLUMNS)
    };
    at_limits.columns[1].comment = Some("é".repeat(255));
    backend
        .catalog
        .register_partition(&at_limits, &partition("20240101T000000Z", "a"))
        .await
        .unwrap();
    assert_eq!(backend.stored_table().await, Some(at_limits));
}

/// Listings return every partition past a page (the tests' Glue server pages by 100, as
/// Glue does).
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn partitions_are_listed_past_a_page(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let values: Vec<String> = (0..130).map(|i| format!("2024{i:04}T000000Z")).collect();
    for value in &values {
        backend
            .catalog
            .register_partition(&backend.table(&COLUMNS), &partition(value, "r"))
            .await
            .unwrap();
    }
    let listed: Vec<String> = backend
        .partitions()
        .await
        .into_iter()
        .map(|p| p.values[0].clone())
        .collect();
    assert_eq!(listed, values);
}

#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn tables_are_listed_past_a_page(#[case] kind: Kind) {
    let backend = backend(kind).await;
    let names: Vec<String> = (0..105).map(|i| format!("group_{i:03}_v1")).collect();
    for name in &names {
        let table = Table {
            name: name.clone(),
            partition_keys: Vec::new(),
            ..backend.table(&COLUMNS)
        };
        backend.catalog.put_table(&table).await.unwrap();
    }
    let listed: Vec<String> = backend
        .catalog
        .list_tables(&backend.database)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(listed, names);
}

/// Writers that register the same table and partition at once (two first runs of a group
/// recording its history) all succeed: one creates, the others find what it made.
#[rstest]
#[case::embedded(Kind::Embedded)]
#[cfg_attr(feature = "aws", case::glue(Kind::Glue))]
#[tokio::test]
async fn writers_creating_one_table_and_partition_at_once_all_succeed(#[case] kind: Kind) {
    let backend = std::sync::Arc::new(backend(kind).await);
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let backend = backend.clone();
            tokio::spawn(async move {
                backend
                    .catalog
                    .register_partition(
                        &backend.table(&COLUMNS),
                        &partition("20240101T000000Z", "same"),
                    )
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(backend.stored_table().await, Some(backend.table(&COLUMNS)));
    assert_eq!(
        backend.partitions().await,
        [partition("20240101T000000Z", "same")]
    );
}
