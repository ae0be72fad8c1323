//! The Glue Data Catalog: the offline catalog snapshots register in, and a source of tables.

mod catalog;
mod hive_types;
mod source;

pub use catalog::GlueCatalog;
pub use source::GlueSourceCatalog;
