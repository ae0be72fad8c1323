//! The Glue Data Catalog as fengine's offline catalog.

mod catalog;

pub use catalog::GlueCatalog;
