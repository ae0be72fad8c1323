//! Runs fengine pipelines on DataFusion: checks a pipeline before reading data, computes
//! each feature group, writes its snapshot as Parquet, registers it in the catalog (the
//! commit point) and loads the latest row per key into the online store.
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
//! };
//! let pipeline = fengine_dialect::load_pipeline(Path::new("pipelines/customer_spend.sql"))?;
//! let manifest = fengine_engine::run(&pipeline, &RunOptions::now(), &backends).await?;
//! println!("{}", serde_json::to_string_pretty(&manifest).unwrap());
//! # Ok(())
//! # }
//! ```

pub mod asof;
mod backfill;
mod checks;
mod error;
mod functions;
mod hive;
mod interrupt;
mod lease;
mod manifest;
mod online_load;
mod parquet_file;
mod plan;
mod publish;
mod sliding;
mod source_files;
#[cfg(test)]
mod test_support;
mod timestamps;
mod training_set;
mod versions;
mod warehouse;
mod window;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, SubsecRound, Timelike, Utc};
use datafusion::catalog::CatalogProvider;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use fengine_catalog::Catalog;
use fengine_dialect::Pipeline;
use fengine_online::{OnlineRow, OnlineStore};

pub use backfill::{
    AsOfOutcome, BackfillManifest, BackfillOptions, BackfillProgress, backfill, parse_every,
    swept_groups,
};
pub use error::{Error, ErrorKind, Result};
pub use functions::{param_type_name, parse_param_value};
pub use hive::hive_type;
pub use interrupt::interrupt;
pub use lease::DEFAULT_LEASE_TTL;
pub use manifest::{GroupManifest, OnlineOutcome, RunManifest, Timings};
pub use plan::{PlannedGroup, PlannedPipeline};
pub use training_set::{
    FeatureRequest, SpineSource, TrainingSetGroup, TrainingSetManifest, TrainingSetRequest,
    build_training_set,
};
pub use warehouse::Warehouse;

/// Where a run reads and writes, built from a profile.
#[derive(Debug, Clone)]
pub struct Backends {
    pub warehouse: Warehouse,
    pub catalog: Arc<dyn Catalog>,
    pub online: Arc<dyn OnlineStore>,
    /// The catalog database that snapshots are registered in.
    pub database: String,
    /// Serves the object stores of sources and the warehouse by URL; DataFusion's default
    /// (local files) when `None`.
    pub object_stores: Option<Arc<dyn ObjectStoreRegistry>>,
    /// Catalogs of source tables, by the name queries use (`glue` in `glue.db.table`).
    pub source_catalogs: Vec<(String, Arc<dyn CatalogProvider>)>,
    /// The bytes DataFusion's operators may hold; past it, sorts and joins spill to disk
    /// and operators that cannot spill fail with a clear error. `None`: no limit.
    pub memory_limit: Option<usize>,
    /// How long a run's lease on a snapshot or an online table lasts unless renewed: how
    /// long a killed run holds up the next run of the same group.
    pub lease_ttl: std::time::Duration,
    /// How far ahead of now an as-of may be without `--force`.
    pub as_of_horizon: std::time::Duration,
}

impl Backends {
    /// What fengine may hold beside DataFusion's operators (a quarter of the pool; the
    /// queries need the rest): sources kept for a backfill, latest rows kept for a load.
    fn side_budget(&self) -> usize {
        self.memory_limit.map_or(2 << 30, |limit| limit / 4)
    }

    fn session_context(&self) -> Result<SessionContext> {
        let config = session_config()?.with_information_schema(true);
        self.session_context_on(self.runtime()?, config)
    }

    /// DataFusion's runtime: the memory pool, spill files and object stores, which several
    /// session contexts of one command share.
    fn runtime(&self) -> Result<Arc<RuntimeEnv>> {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(registry) = &self.object_stores {
            runtime = runtime.with_object_store_registry(registry.clone());
        }
        if let Some(limit) = self.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
        }
        runtime
            .build_arc()
            .map_err(|e| Error::Infrastructure(format!("cannot start DataFusion: {e}")))
    }

    fn session_context_on(
        &self,
        runtime: Arc<RuntimeEnv>,
        mut config: SessionConfig,
    ) -> Result<SessionContext> {
        if let Some(limit) = self.memory_limit {
            // A sort keeps this much aside to merge its spilled runs: within a small pool it
            // would leave nothing to sort with.
            let execution = &mut config.options_mut().execution;
            execution.sort_spill_reservation_bytes =
                execution.sort_spill_reservation_bytes.min(limit / 64);
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features();
        // FENGINE_WINDOW_OPERATOR=datafusion leaves every window to DataFusion: how the
        // tests compare the two, and a way out should fengine's operator misbehave.
        if std::env::var("FENGINE_WINDOW_OPERATOR").as_deref() != Ok("datafusion") {
            state = state
                .with_optimizer_rule(Arc::new(window::WindowFilterRule))
                .with_physical_optimizer_rule(Arc::new(window::RangeWindowRule));
        }
        let state = state.build();
        let context = SessionContext::new_with_state(state);
        for (name, catalog) in &self.source_catalogs {
            context.register_catalog(name, catalog.clone());
        }
        let root = self.warehouse.root();
        if root.scheme() != "file" {
            context.register_object_store(root, self.warehouse.store().clone());
        }
        Ok(context)
    }
}

/// DataFusion's settings, with any `DATAFUSION_*` environment variables applied
/// (`DATAFUSION_EXECUTION_BATCH_SIZE=4096`, `DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`, ...).
/// Batches are larger than DataFusion's default unless the environment says: sorts merge
/// fewer, longer runs (a fifth faster on a rolling window over 10M rows; a tenth on a
/// training-set join).
fn session_config() -> Result<SessionConfig> {
    let config = SessionConfig::from_env()
        .map_err(|e| Error::Config(format!("a DATAFUSION_* environment variable: {e}")))?;
    Ok(if batch_size_set_by_environment() {
        config
    } else {
        config.with_batch_size(32 * 1024)
    })
}

/// `context` with DataFusion's default batch size, unless DATAFUSION_EXECUTION_BATCH_SIZE
/// says, for streams fengine consumes as they come: a backfill's sorted source, the online
/// load's ranking window over a snapshot read back. There smaller batches keep producer and
/// consumer busy at once (the 1M backfill took a tenth longer at 32k rows; the load of 950k
/// keys a tenth longer, with a third more memory).
pub(crate) fn with_default_batch_size(context: &SessionContext) -> SessionContext {
    let mut state = context.state();
    if !batch_size_set_by_environment() {
        let default = SessionConfig::new().batch_size();
        let config = state.config().clone().with_batch_size(default);
        *state.config_mut() = config;
    }
    SessionContext::new_with_state(state)
}

/// DATAFUSION_EXECUTION_BATCH_SIZE overrides fengine's choices of batch size.
fn batch_size_set_by_environment() -> bool {
    std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_some()
}

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The snapshot time, in whole seconds: `as_of()` in the pipeline.
    pub as_of: DateTime<Utc>,
    /// `param('name')` values, as given on the command line.
    pub params: BTreeMap<String, String>,
    /// Load the online store even if it holds a newer as-of.
    pub force: bool,
    /// Names this run's files, apart from other runs of the same as-of.
    pub run_id: String,
    /// Load the online store; a backfill loads only its newest as-of.
    pub load_online: bool,
}

impl RunOptions {
    pub fn new(as_of: DateTime<Utc>) -> Self {
        RunOptions {
            as_of,
            params: BTreeMap::new(),
            force: false,
            load_online: true,
            run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        }
    }

    pub fn now() -> Self {
        RunOptions::new(Utc::now().trunc_subsecs(0))
    }
}

/// The partition value of a snapshot: its as-of as `YYYYMMDDTHHMMSSZ`.
pub fn snapshot_name(as_of: DateTime<Utc>) -> String {
    as_of.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Checks the pipeline without reading data: statements run, feature group queries plan,
/// their outputs fit their declarations and the catalog's published schemas.
pub async fn plan(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<PlannedPipeline> {
    check_whole_seconds("the as-of", options.as_of)?;
    check_horizon("the as-of", options.as_of, options.force, backends)?;
    plan::plan_pipeline(pipeline, options, backends, None).await
}

/// Refuses a time with a fraction of a second: snapshots are named, registered and
/// computed at whole seconds, so an as-of with a fraction would be computed at one time and
/// registered at another.
pub(crate) fn check_whole_seconds(what: &str, time: DateTime<Utc>) -> Result<()> {
    if time.nanosecond() == 0 {
        return Ok(());
    }
    if time.nanosecond() >= 1_000_000_000 {
        return Err(Error::Config(format!(
            "{what} {} is a leap second, which Unix time (and so every timestamp fengine \
             computes with) does not have: use {} or the second after",
            time.to_rfc3339_opts(SecondsFormat::Secs, true),
            time.with_nanosecond(0)
                .unwrap_or(time)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        )));
    }
    Err(Error::Config(format!(
        "{what} {} has a fraction of a second; snapshots are named by whole seconds",
        time.to_rfc3339()
    )))
}

/// How far ahead of now an as-of may be without `--force` unless the profile says: a
/// snapshot of the far future would stand as the newest against every later run's online
/// load.
pub const DEFAULT_AS_OF_HORIZON: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Refuses an as-of past the backends' horizon unless forced.
pub(crate) fn check_horizon(
    what: &str,
    time: DateTime<Utc>,
    force: bool,
    backends: &Backends,
) -> Result<()> {
    let horizon =
        chrono::Duration::from_std(backends.as_of_horizon).unwrap_or(chrono::Duration::MAX);
    if force || time <= Utc::now() + horizon {
        return Ok(());
    }
    let hours = backends.as_of_horizon.as_secs() / 3600;
    Err(Error::Config(format!(
        "{what} {} is more than {hours} hour{} ahead of now (the profile's as_of_horizon_hours): \
         its snapshot would be the newest until then, and every later run's online load would \
         give way to it. Pass --force if the future is meant",
        time.to_rfc3339_opts(SecondsFormat::Secs, true),
        if hours == 1 { "" } else { "s" }
    )))
}

/// Plans the pipeline, then computes and publishes each feature group in order. Each group
/// is published on its own: a failing group stops the run but leaves earlier groups
/// published.
pub async fn run(
    pipeline: &Pipeline,
    options: &RunOptions,
    backends: &Backends,
) -> Result<RunManifest> {
    let started = Instant::now();
    let planned = plan(pipeline, options, backends).await?;
    let mut groups = Vec::with_capacity(planned.groups.len());
    for group in &planned.groups {
        let published = match interrupt::check() {
            Ok(()) => publish::publish_group(&planned.context, group, options, backends).await,
            Err(stop) => Err(stop),
        };
        match published {
            Ok(published) => groups.push(published),
            Err(error) => return Err(error.after_publishing(&groups)),
        }
    }
    Ok(RunManifest {
        pipeline: pipeline.path.display().to_string(),
        as_of: options.as_of,
        params: options.params.clone(),
        warehouse: backends.warehouse.root().to_string(),
        groups,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The online row of `key`, unless missing or past its time to live.
pub async fn get(
    backends: &Backends,
    group: &str,
    version: Option<u32>,
    key: &[String],
) -> Result<OnlineRow> {
    let describe = || {
        format!(
            "feature group '{group}' has no online value for key ({})",
            key.join(", ")
        )
    };
    let version = match version {
        Some(version) => version,
        None => versions::newest_version(backends, group).await?.0,
    };
    match backends.online.get(group, Some(version), key).await? {
        Some(row) if row.is_expired(Utc::now()) => Err(Error::NotFound(format!(
            "{}: its value of {} is past the group's ttl",
            describe(),
            row.event_time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ))),
        Some(row) => Ok(row),
        None => Err(Error::NotFound(describe())),
    }
}

/// Stops the process at a named point when `FENGINE_FAIL_AT` names it: how the tests kill a
/// run at the worst moment.
pub(crate) fn fail_point(name: &str) {
    if std::env::var("FENGINE_FAIL_AT").is_ok_and(|at| at == name) {
        eprintln!("fengine: FENGINE_FAIL_AT={name}: aborting");
        std::process::abort();
    }
}

/// Waits at a named point while `FENGINE_PAUSE_AT` names it, until the file
/// `fengine-paused-<name>` it creates in the working directory is removed: how the tests
/// change the world under a running run (a source file removed mid-run).
pub(crate) async fn pause_point(name: &str) {
    if std::env::var("FENGINE_PAUSE_AT").is_ok_and(|at| at == name) {
        let marker = std::path::PathBuf::from(format!("fengine-paused-{name}"));
        if std::fs::write(&marker, b"").is_ok() {
            while marker.exists() && interrupt::check().is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
