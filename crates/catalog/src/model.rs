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

/// Glue's limits on what a table holds (its API reference: `TableInput`, `Column`), which
/// every backend keeps so that a catalogue built on the embedded catalog registers in Glue.
pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 2048;
pub const MAX_COLUMN_COMMENT_CHARS: usize = 255;
pub const MAX_PARAMETER_KEY_CHARS: usize = 255;
pub const MAX_PARAMETER_VALUE_BYTES: usize = 512_000;

impl Table {
    /// Which of Glue's limits the table breaks, if any, said so that its author can act.
    pub fn limit_exceeded(&self) -> Option<String> {
        let table = format!("table '{}.{}'", self.database, self.name);
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Some(format!(
                "{table}: its name is longer than Glue's {MAX_NAME_CHARS} characters"
            ));
        }
        if let Some(description) = &self.description
            && description.chars().count() > MAX_DESCRIPTION_CHARS
        {
            return Some(format!(
                "{table}: its description holds {} characters, more than Glue's \
                 {MAX_DESCRIPTION_CHARS}; shorten it",
                description.chars().count()
            ));
        }
        for column in self.columns.iter().chain(&self.partition_keys) {
            if let Some(comment) = &column.comment
                && comment.chars().count() > MAX_COLUMN_COMMENT_CHARS
            {
                return Some(format!(
                    "{table}: the comment of column '{}' holds {} characters, more than \
                     Glue's {MAX_COLUMN_COMMENT_CHARS}; shorten it",
                    column.name,
                    comment.chars().count()
                ));
            }
        }
        parameters_exceed(&table, &self.parameters)
    }
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

/// Which of Glue's limits on parameters these break, if any.
fn parameters_exceed(owner: &str, parameters: &BTreeMap<String, String>) -> Option<String> {
    for (key, value) in parameters {
        if key.chars().count() > MAX_PARAMETER_KEY_CHARS {
            return Some(format!(
                "{owner}: parameter name '{key}' is longer than Glue's \
                 {MAX_PARAMETER_KEY_CHARS} characters"
            ));
        }
        if value.len() > MAX_PARAMETER_VALUE_BYTES {
            return Some(format!(
                "{owner}: parameter '{key}' holds {} bytes, more than Glue's \
                 {MAX_PARAMETER_VALUE_BYTES}",
                value.len()
            ));
        }
    }
    None
}

/// A partition: its values, in the order of the table's partition keys, and its location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub values: Vec<String>,
    pub location: String,
    pub parameters: BTreeMap<String, String>,
}

impl Partition {
    /// Which of Glue's limits the partition breaks, if any.
    pub fn limit_exceeded(&self) -> Option<String> {
        parameters_exceed(
            &format!("partition ({})", self.values.join(", ")),
            &self.parameters,
        )
    }
}
