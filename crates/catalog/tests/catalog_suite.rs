//! The behaviour every catalog backend must have.

use std::collections::BTreeMap;

use fengine_catalog::{Catalog, Column, Error, LocalCatalog, Partition, Table};
use rstest::rstest;

fn embedded() -> (Box<dyn Catalog>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = LocalCatalog::open(dir.path().join("catalog.sqlite")).unwrap();
    (Box::new(catalog), dir)
}

fn table(columns: &[(&str, &str)]) -> Table {
    Table {
        database: "features".into(),
        name: "spend_v1".into(),
        description: Some("spend per customer".into()),
        location: "/w/spend/v1/".into(),
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

fn partition(value: &str, run: &str) -> Partition {
    Partition {
        values: vec![value.into()],
        location: format!("/w/spend/v1/snapshot_ts={value}/{run}/"),
        parameters: BTreeMap::new(),
    }
}

const COLUMNS: [(&str, &str); 2] = [("customer_id", "bigint"), ("spend", "double")];

#[rstest]
#[case::embedded(embedded())]
#[tokio::test]
async fn registers_a_table_and_its_partitions(
    #[case] backend: (Box<dyn Catalog>, tempfile::TempDir),
) {
    let catalog = backend.0;
    assert_eq!(
        catalog.get_table("features", "spend_v1").await.unwrap(),
        None
    );
    let replaced = catalog
        .register_snapshot(&table(&COLUMNS), &partition("20240102T000000Z", "a"))
        .await
        .unwrap();
    assert_eq!(replaced, None);
    catalog
        .register_snapshot(&table(&COLUMNS), &partition("20240101T000000Z", "b"))
        .await
        .unwrap();
    assert_eq!(
        catalog.get_table("features", "spend_v1").await.unwrap(),
        Some(table(&COLUMNS))
    );
    let partitions = catalog
        .list_partitions("features", "spend_v1")
        .await
        .unwrap();
    assert_eq!(
        partitions,
        [
            partition("20240101T000000Z", "b"),
            partition("20240102T000000Z", "a")
        ]
    );
}

#[rstest]
#[case::embedded(embedded())]
#[tokio::test]
async fn a_second_registration_of_a_partition_replaces_it(
    #[case] backend: (Box<dyn Catalog>, tempfile::TempDir),
) {
    let catalog = backend.0;
    let first = partition("20240101T000000Z", "run1");
    catalog
        .register_snapshot(&table(&COLUMNS), &first)
        .await
        .unwrap();
    let second = partition("20240101T000000Z", "run2");
    let replaced = catalog
        .register_snapshot(&table(&COLUMNS), &second)
        .await
        .unwrap();
    assert_eq!(replaced, Some(first));
    assert_eq!(
        catalog
            .list_partitions("features", "spend_v1")
            .await
            .unwrap(),
        [second]
    );
}

#[rstest]
#[case::embedded(embedded())]
#[tokio::test]
async fn a_schema_change_is_refused_and_changes_nothing(
    #[case] backend: (Box<dyn Catalog>, tempfile::TempDir),
) {
    let catalog = backend.0;
    let first = partition("20240101T000000Z", "a");
    catalog
        .register_snapshot(&table(&COLUMNS), &first)
        .await
        .unwrap();
    let changed = table(&[("customer_id", "bigint"), ("spend", "decimal(12,2)")]);
    let error = catalog
        .register_snapshot(&changed, &partition("20240102T000000Z", "b"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "table 'features.spend_v1' has columns (customer_id bigint, spend double), \
         the new snapshot has (customer_id bigint, spend decimal(12,2))"
    );
    assert_eq!(
        catalog
            .list_partitions("features", "spend_v1")
            .await
            .unwrap(),
        [first]
    );
    assert_eq!(
        catalog.get_table("features", "spend_v1").await.unwrap(),
        Some(table(&COLUMNS))
    );
}

#[rstest]
#[case::embedded(embedded())]
#[tokio::test]
async fn comments_and_parameters_may_change(
    #[case] backend: (Box<dyn Catalog>, tempfile::TempDir),
) {
    let catalog = backend.0;
    catalog
        .register_snapshot(&table(&COLUMNS), &partition("20240101T000000Z", "a"))
        .await
        .unwrap();
    let mut updated = table(&COLUMNS);
    updated.description = Some("new words".into());
    updated.columns[1].comment = Some("sum of amount".into());
    catalog
        .register_snapshot(&updated, &partition("20240102T000000Z", "b"))
        .await
        .unwrap();
    assert_eq!(
        catalog.get_table("features", "spend_v1").await.unwrap(),
        Some(updated)
    );
}
