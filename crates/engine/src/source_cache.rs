//! A backfill's sources held in memory across its as-ofs: planning reads a source through
//! it, and the backfill owns it, so it lives apart from both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use futures::StreamExt;

/// A source by name and location. A `None` table marks one too large to hold.
type SourceKey = (String, String);

/// The pipeline's external sources held in memory across as-ofs, so that a backfill reads
/// and decodes them once. A source larger than the budget stays on storage and is read at
/// every as-of.
pub(crate) struct SourceCache {
    budget: usize,
    tables: Mutex<HashMap<SourceKey, Option<Arc<MemTable>>>>,
}

impl SourceCache {
    pub(crate) fn new(budget: usize) -> Self {
        SourceCache {
            budget,
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// The rows of the source `name` at `location`, if an earlier as-of held them.
    pub(crate) fn cached(&self, name: &str, location: &str) -> Option<Option<Arc<MemTable>>> {
        let key = (name.to_string(), location.to_string());
        self.tables.lock().expect("not poisoned").get(&key).cloned()
    }

    /// Replaces the source `name`, just defined at `location`, with its rows in memory
    /// (read now if no earlier as-of did).
    pub(crate) async fn substitute(
        &self,
        context: &SessionContext,
        name: &str,
        location: &str,
    ) -> datafusion::error::Result<()> {
        let table = match self.cached(name, location) {
            Some(table) => table,
            None => {
                let loaded = self.load(context, name).await?;
                let key = (name.to_string(), location.to_string());
                self.tables
                    .lock()
                    .expect("not poisoned")
                    .insert(key, loaded.clone());
                loaded
            }
        };
        if let Some(table) = table {
            context.deregister_table(name)?;
            context.register_table(name, table as Arc<dyn TableProvider>)?;
        }
        Ok(())
    }

    /// The source's rows, unless they pass the budget.
    async fn load(
        &self,
        context: &SessionContext,
        name: &str,
    ) -> datafusion::error::Result<Option<Arc<MemTable>>> {
        let frame = context.table(name).await?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let partitions = frame.execute_stream_partitioned().await?;
        let mut held = 0usize;
        let mut batches = Vec::with_capacity(partitions.len());
        for mut partition in partitions {
            let mut rows = Vec::new();
            while let Some(batch) = partition.next().await {
                let batch = batch?;
                held += batch.get_array_memory_size();
                if held > self.budget {
                    return Ok(None);
                }
                rows.push(batch);
            }
            batches.push(rows);
        }
        Ok(Some(Arc::new(MemTable::try_new(schema, batches)?)))
    }
}
