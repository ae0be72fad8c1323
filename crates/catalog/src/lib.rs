//! Catalogs of offline snapshots: the trait, and the embedded catalog with the Glue model
