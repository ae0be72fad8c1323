//! Where a run reads and writes (the warehouse, catalog and online store a profile names),
//! and the DataFusion sessions that compute over them.

use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use fengine_catalog::Catalog;
use fengine_online::OnlineStore;
use fengine_operators::window::{RangeWindowRule, WindowFilterRule};

use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

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
    /// Catalogs of source tables (`glue` in `glue.db.table`).
    pub source_catalogs: Vec<SourceCatalog>,
    /// The bytes DataFusion's operators may hold; past it, sorts and joins spill to disk
    /// and operators that cannot spill fail with a clear error. `None`: no limit.
    pub memory_limit: Option<usize>,
    /// How long a run's lease on a snapshot or an online table lasts unless renewed: how
    /// long a killed run holds up the next run of the same group.
    pub lease_ttl: std::time::Duration,
    /// How far ahead of now an as-of may be without `--force`.
    pub as_of_horizon: std::time::Duration,
    /// Who runs the command, as the catalogue's history records it.
    pub caller: Arc<dyn Caller>,
}

/// A catalog of source tables, by the name queries use (`glue` in `glue.db.table`):
/// DataFusion reads its tables through `provider`; `tables` describes them (location,
/// partitions) for the fingerprint of what a run read.
#[derive(Debug, Clone)]
pub struct SourceCatalog {
    pub name: String,
    pub provider: Arc<dyn CatalogProvider>,
    pub tables: Arc<dyn Catalog>,
}

/// How much of its memory DataFusion's runtime gives to the listings it keeps: some hundred
/// thousand files' (its default, 1 MiB, did not hold 10,000).
const LISTINGS_KEPT_BYTES: usize = 128 << 20;

impl Backends {
    /// What fengine may hold beside DataFusion's operators (a quarter of the pool; the
    /// queries need the rest): sources kept for a backfill, latest rows kept for a load.
    pub(crate) fn side_budget(&self) -> usize {
        self.memory_limit.map_or(2 << 30, |limit| limit / 4)
    }

    pub(crate) fn session_context(&self) -> Result<SessionContext> {
        let config = session_config()?.with_information_schema(true);
        self.session_context_on(self.runtime()?, config)
    }

    /// DataFusion's runtime: the memory pool, spill files and object stores, which several
    /// session contexts of one command share.
    pub(crate) fn runtime(&self) -> Result<Arc<RuntimeEnv>> {
        // DataFusion keeps each source's listing for the command, and fengine's checks and
        // fingerprints read it (`source_files.rs`): a source is listed once, and what is
        // recorded of it is what its scan read.
        let cache = CacheManagerConfig::default().with_list_files_cache_limit(LISTINGS_KEPT_BYTES);
        let mut runtime = RuntimeEnvBuilder::new().with_cache_manager(cache);
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

    pub(crate) fn session_context_on(
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
                .with_optimizer_rule(Arc::new(WindowFilterRule))
                .with_physical_optimizer_rule(Arc::new(RangeWindowRule));
        }
        let state = state.build();
        let context = SessionContext::new_with_state(state);
        for source in &self.source_catalogs {
            context.register_catalog(&source.name, source.provider.clone());
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
pub(crate) fn session_config() -> Result<SessionConfig> {
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
