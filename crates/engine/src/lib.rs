//! Runs fengine pipelines on DataFusion: checks a pipeline before reading data, computes
//! each feature group, writes its snapshot as Parquet, registers it in the catalog (the
//! commit point) and loads the latest row per key into the online store.
//!
//! This file is the crate's API and nothing else. A run's path is [`run`] (`run/mod.rs`),
//! which reads top to bottom in the order of its steps; backfills ([`backfill`]) and
//! training sets ([`build_training_set`]) publish and read through the same modules. The
//! operators it plans with are `fengine-operators`'; ARCHITECTURE.md draws the layers.
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! use fengine_catalog::LocalCatalog;
//! use fengine_engine::{Backends, RunOptions, Warehouse};
//! use fengine_online::SqliteOnlineStore;
//!
//! # async fn example() -> fengine_engine::Result<()> {
//! let backends = Backends {
//!     warehouse: Warehouse::local(Path::new("warehouse"))?,
//!     catalog: Arc::new(LocalCatalog::open("warehouse/catalog.sqlite")?),
//!     online: Arc::new(SqliteOnlineStore::open("warehouse/online.sqlite")?),
//!     database: "fengine".to_string(),
//!     object_stores: None,
//!     source_catalogs: Vec::new(),
//!     memory_limit: Some(4 << 30),
//!     lease_ttl: fengine_engine::DEFAULT_LEASE_TTL,
//!     as_of_horizon: fengine_engine::DEFAULT_AS_OF_HORIZON,
//!     caller: Arc::new(fengine_engine::OsUser),
//! };
//! let pipeline = fengine_dialect::load_pipeline(Path::new("pipelines/customer_spend.sql"))?;
//! let manifest = fengine_engine::run(&pipeline, &RunOptions::now(), &backends).await?;
//! println!("{}", serde_json::to_string_pretty(&manifest).unwrap());
//! # Ok(())
//! # }
//! ```

mod backends;
mod backfill;
mod caller;
mod catalogue;
mod checks;
mod delivery;
mod drift;
mod encoder_fit;
mod encoders;
mod error;
mod expectations;
mod fingerprint;
mod get;
mod hive;
mod hooks;
mod interrupt;
mod lease;
mod manifest;
mod online_load;
mod options;
mod parquet_file;
mod plan;
mod published;
mod retire;
mod rollback;
mod run;
mod source_cache;
mod source_files;
mod statistics;
mod statistics_file;
mod status;
mod training_set;
mod warehouse;

pub use backends::{Backends, SourceCatalog};
pub use backfill::{
    AsOfOutcome, BackfillManifest, BackfillOptions, BackfillProgress, backfill, parse_every,
    swept_groups,
};
pub use caller::{Caller, CallerIdentity, OsUser};
pub use catalogue::{
    CATALOGUE_TABLES, Catalogue, EventKind, Feature, GroupDetail, GroupFilter, GroupPage, GroupRef,
    GroupSummary, HistoryEvent, ModelDefinition, ModelDetail, ModelUse, OnlineState,
    PageStatistics, UsedFeature, VersionSummary, describe_catalogue, group_history, list_groups,
    published_group_names, show_group, show_model,
};
pub use delivery::deliver_manifest;
pub use drift::{EMPTY_SHARE, FeatureDrift, GroupDrift, ShareChange, SnapshotDrift, group_drift};
pub use encoder_fit::{FitOutcome, fit_encoders};
pub use encoders::{
    Bucketize, EncoderDetail, EncoderParameters, Fitted, FittedOn, Fitter, Log1p, MinMax, OneHot,
    SnapshotRead, StandardScale, encode_batch, encode_row, onnx_model, show_encoder,
};
pub use error::{Error, ErrorKind, Result};
pub use fengine_operators::functions::param_type_name;
pub use fingerprint::Fingerprint;
pub use get::get;
pub use interrupt::interrupt;
pub use lease::DEFAULT_LEASE_TTL;
pub use manifest::{
    ExpectationOutcome, GroupManifest, OnlineOutcome, RunManifest, Severity, Timings,
    UnchangedGroup,
};
pub use options::{DEFAULT_AS_OF_HORIZON, RunOptions, check_run_id, new_run_id, snapshot_name};
pub use plan::{PlannedGroup, PlannedModel, PlannedPipeline, plan};
pub use published::{Retired, Snapshot};
pub use retire::{RetireOutcome, retire};
pub use rollback::{RollbackOutcome, RollbackRequest, rollback};
pub use run::{order_pipelines, run};
pub use statistics::{
    FeatureStatistics, Histogram, OrderedEdge, Sketch, ValueCount, ValueStatistics,
};
pub use statistics_file::snapshot_statistics;
pub use status::{GroupStatus, status};
pub use training_set::{
    FeatureRequest, SpineSource, TrainingSetGroup, TrainingSetManifest, TrainingSetRequest,
    build_training_set,
};
pub use warehouse::Warehouse;
