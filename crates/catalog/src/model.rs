use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A table, as Glue's `TableInput` describes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub database: String,
    pub name: String,
    pub description: Option<String>,
    /// The table's root location; each partition has its own below it.
    pub location: String,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub parameters: BTreeMap<String, String>,
}

impl Table {
    /// Whether fengine registered this table: every table it registers has parameters named
    /// `fengine.*`, and it takes over no other (a table of the same name that another tool
    /// made is not fengine's to update).
    pub fn is_fengine_table(&self) -> bool {
        self.parameters.keys().any(|k| k.starts_with("fengine."))
    }

    /// Why a registration of `other` may not update this table, if it may not: the table is
    /// not fengine's, or the registration changes its schema.
    pub fn update_conflict(&self, other: &Table) -> Option<String> {
        if !self.is_fengine_table() {
            return Some(format!(
                "table '{}.{}' exists and was not registered by fengine (it has no fengine.* \
                 parameters): fengine does not take it over; rename the feature group, or \
                 drop or move that table",
                self.database, self.name
            ));
        }
        self.schema_conflict(other)
    }

    /// Why `other` cannot replace this table's definition, if it cannot: its columns or
    /// partition keys differ in name, type or order. Comments and parameters may change.
    pub fn schema_conflict(&self, other: &Table) -> Option<String> {
        let shape = |columns: &[Column]| -> Vec<String> {
            columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.data_type))
                .collect()
        };
        let (old, new) = (shape(&self.columns), shape(&other.columns));
        if old != new {
            return Some(format!(
                "table '{}.{}' has columns ({}), the new snapshot has ({})",
                self.database,
                self.name,
                old.join(", "),
                new.join(", ")
            ));
        }
        if shape(&self.partition_keys) != shape(&other.partition_keys) {
            return Some(format!(
                "table '{}.{}' is partitioned by ({}), the new snapshot by ({})",
                self.database,
                self.name,
                shape(&self.partition_keys).join(", "),
                shape(&other.partition_keys).join(", ")
            ));
        }
        None
    }
}

/// A column with its Hive type name as Glue and Athena spell it (`bigint`, `string`,
/// `timestamp`, `decimal(12,2)`, `array<double>`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub comment: Option<String>,
}

/// A partition: its values, in the order of the table's partition keys, and its location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub values: Vec<String>,
    pub location: String,
    pub parameters: BTreeMap<String, String>,
}
