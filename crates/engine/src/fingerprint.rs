//! What a feature group read, reduced to one digest per input, so that `run --if-changed`
//! can skip a group none of whose inputs changed since its last snapshot, and `status` can
//! say which did. A group's inputs are the pipeline's text, its parameters, and each
//! upstream: a source location (every file its scan reads: key, size, ETag — the local file
//! system's ETag holds the inode, modification time and size), a table of a source catalog
//! (its partitions' values and locations, and the objects under its location and theirs), a
//! table the pipeline created in memory (its rows), and a published group (the snapshot
//! read). The as-of is not an input: the fingerprint says whether the data read changed.
//!
//! Fingerprints are taken before the group's rows are computed: a source that changes while
//! the run reads it makes the next run differ, never wrongly match.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use datafusion::catalog::MemTable;
use datafusion::common::TableReference;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::context::SessionContext;
use fengine_catalog::{Catalog, Partition, Table};
use fengine_dialect::Pipeline;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backends::Backends;
use crate::catalogue::UpstreamKind;
use crate::error::{Error, Result};
use crate::plan::{PlannedGroup, PlannedPipeline};
use crate::source_files;

/// Partition parameters a run writes on each snapshot: every input's digest, as a JSON
/// object, and the digest of them all.
pub(crate) const INPUTS: &str = "fengine.inputs";
pub(crate) const INPUTS_DIGEST: &str = "fengine.inputs_digest";

/// One digest per input of a group, by the input's name (`source <location>`,
/// `table <name>`, `group <name> v<n>`, `param <name>`, `pipeline text`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    pub inputs: BTreeMap<String, String>,
}

impl Fingerprint {
    /// The digest of every input's name and digest.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, digest) in &self.inputs {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(digest.as_bytes());
            hasher.update([b'\n']);
        }
        hex::encode(hasher.finalize())
    }

    /// The partition parameters that record it.
    pub(crate) fn parameters(&self) -> [(String, String); 2] {
        [
            (
                INPUTS.to_string(),
                serde_json::to_string(&self.inputs).expect("strings serialize"),
            ),
            (INPUTS_DIGEST.to_string(), self.digest()),
        ]
    }

    /// The fingerprint a snapshot's partition records, if its run recorded one.
    pub(crate) fn recorded(partition: &Partition) -> Option<Fingerprint> {
        let inputs = partition.parameters.get(INPUTS)?;
        serde_json::from_str(inputs)
            .ok()
            .map(|inputs| Fingerprint { inputs })
    }

    /// The inputs that differ from `earlier`'s, said as a person reads them: changed, new
    /// or no longer read.
    pub fn changes_since(&self, earlier: &Fingerprint) -> Vec<String> {
        let mut changes = Vec::new();
        for (name, digest) in &self.inputs {
            match earlier.inputs.get(name) {
                Some(was) if was == digest => {}
                Some(_) => changes.push(name.clone()),
                None => changes.push(format!("{name} (not read before)")),
            }
        }
        for name in earlier.inputs.keys() {
            if !self.inputs.contains_key(name) {
                changes.push(format!("{name} (no longer read)"));
            }
        }
        changes
    }
}

/// Takes the fingerprints of a planned pipeline's groups; what several groups read is
/// listed once.
pub(crate) struct Fingerprints<'a> {
    planned: &'a PlannedPipeline,
    backends: &'a Backends,
    common: BTreeMap<String, String>,
    seen: HashMap<String, String>,
}

impl<'a> Fingerprints<'a> {
    pub(crate) async fn new(
        pipeline: &Pipeline,
        planned: &'a PlannedPipeline,
        backends: &'a Backends,
    ) -> Result<Self> {
        let mut common = BTreeMap::new();
        common.insert("pipeline text".to_string(), pipeline_text(pipeline).await?);
        for (name, value) in &planned.params {
            common.insert(format!("param {name}"), digest_of(value.to_string()));
        }
        Ok(Fingerprints {
            planned,
            backends,
            common,
            seen: HashMap::new(),
        })
    }

    pub(crate) async fn of(&mut self, group: &PlannedGroup) -> Result<Fingerprint> {
        let mut inputs = self.common.clone();
        for upstream in &group.upstream {
            let name = match upstream.kind {
                UpstreamKind::Source => format!("source {}", upstream.name),
                UpstreamKind::Table => format!("table {}", upstream.name),
                UpstreamKind::Group => format!(
                    "group {} v{}",
                    upstream.name,
                    upstream.version.unwrap_or_default()
                ),
            };
            let digest = match self.seen.get(&name) {
                Some(digest) => digest.clone(),
                None => {
                    let digest = match upstream.kind {
                        UpstreamKind::Source => self.location(&upstream.name).await?,
                        UpstreamKind::Table => self.table(&upstream.name).await?,
                        UpstreamKind::Group => self.snapshot(&upstream.name, upstream.version),
                    };
                    self.seen.insert(name.clone(), digest.clone());
                    digest
                }
            };
            inputs.insert(name, digest);
        }
        Ok(Fingerprint { inputs })
    }

    fn context(&self) -> &SessionContext {
        &self.planned.context
    }

    /// The files a source's scan reads at a location (key, size, ETag), from the listing
    /// the scan itself uses; every object under a location no source reads.
    async fn location(&self, location: &str) -> Result<String> {
        let objects = match source_files::files_of_source(self.context(), location).await? {
            Some(files) => files,
            None => self.objects(location).await?,
        };
        Ok(digest_of_objects(&objects))
    }

    async fn objects(&self, location: &str) -> Result<Vec<ObjectMeta>> {
        let url = ListingTableUrl::parse(location).map_err(|e| Error::from_datafusion(None, e))?;
        let store = self
            .context()
            .runtime_env()
            .object_store(url.object_store())
            .map_err(|e| Error::from_datafusion(None, e))?;
        let listing_error =
            |e: object_store::Error| Error::object_store(format!("cannot list '{location}'"), &e);
        let mut objects: Vec<ObjectMeta> = store
            .list(Some(url.prefix()))
            .try_collect()
            .await
            .map_err(listing_error)?;
        if objects.is_empty() && !url.is_collection() {
            // A location naming one object: a listing of it as a prefix finds nothing on S3.
            match store.head(url.prefix()).await {
                Ok(meta) => objects.push(meta),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(listing_error(e)),
            }
        }
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// A table a query names that is not one of the pipeline's sources: a source catalog's
    /// (`glue.db.table`), or one the pipeline created.
    async fn table(&self, name: &str) -> Result<String> {
        if let TableReference::Full {
            catalog,
            schema,
            table,
        } = TableReference::parse_str(name)
            && let Some(source) = self
                .backends
                .source_catalogs
                .iter()
                .find(|s| s.name == catalog.as_ref())
        {
            return self
                .catalog_table(source.tables.as_ref(), &schema, &table)
                .await;
        }
        // A name no catalog holds, once the plan is made, is a table function's scan
        // (`range(10)`): what it returns is in the pipeline's text.
        let Ok(provider) = self
            .context()
            .table_provider(TableReference::parse_str(name))
            .await
        else {
            return Ok("a table function".to_string());
        };
        match provider.downcast_ref::<MemTable>() {
            Some(memory) => memory_table(memory).await,
            // Nothing says when it changes: it always counts as changed.
            None => Ok(format!("not fingerprinted {}", uuid::Uuid::new_v4())),
        }
    }

    /// A source catalog's table: its location, its partitions' values and locations, and the
    /// objects under its location and under each partition's outside it.
    async fn catalog_table(
        &self,
        catalog: &dyn Catalog,
        database: &str,
        name: &str,
    ) -> Result<String> {
        let Some(table) = catalog.get_table(database, name).await? else {
            return Ok("missing".to_string());
        };
        let partitions = match table.partition_keys.is_empty() {
            true => Vec::new(),
            false => catalog.list_partitions(database, name).await?,
        };
        let mut lines = vec![format!("location {}", table.location)];
        let mut objects = self.objects(&table.location).await?;
        for partition in sorted(partitions) {
            lines.push(format!(
                "partition {} at {}",
                partition.values.join("/"),
                partition.location
            ));
            if within(&partition.location, &table) {
                continue;
            }
            // A partition elsewhere may be on a store the scan never reaches (its values
            // pruned): one that cannot be listed counts as changed rather than failing the
            // run.
            match self.objects(&partition.location).await {
                Ok(found) => objects.extend(found),
                Err(error) => {
                    tracing::debug!(
                        "partition {} not fingerprinted: {error}",
                        partition.location
                    );
                    lines.push(format!("unlisted {}", uuid::Uuid::new_v4()));
                }
            }
        }
        lines.push(digest_of_objects(&objects));
        Ok(digest_of(lines.join("\n")))
    }

    /// The snapshot of a published group the pipeline reads.
    fn snapshot(&self, group: &str, version: Option<u32>) -> String {
        self.planned
            .feature_sources
            .iter()
            .find(|f| f.group == group && Some(f.version) == version)
            .map(|f| digest_of(format!("{} {}", f.as_of.to_rfc3339(), f.location)))
            .unwrap_or_default()
    }
}

fn sorted(mut partitions: Vec<Partition>) -> Vec<Partition> {
    partitions.sort_by(|a, b| a.values.cmp(&b.values));
    partitions
}

/// Whether a partition's location is under its table's, so that listing the table lists it.
fn within(location: &str, table: &Table) -> bool {
    let root = table.location.trim_end_matches('/');
    location.starts_with(&format!("{root}/"))
}

fn digest_of_objects(objects: &[ObjectMeta]) -> String {
    let mut hasher = Sha256::new();
    for object in objects {
        let version = match &object.e_tag {
            Some(tag) => tag.clone(),
            None => object.last_modified.to_rfc3339(),
        };
        hasher.update(format!("{}\t{}\t{version}\n", object.location, object.size));
    }
    hex::encode(hasher.finalize())
}

/// The rows of a table the pipeline created (`CREATE TABLE ... AS`), as JSON.
async fn memory_table(table: &MemTable) -> Result<String> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for partition in &table.batches {
        for batch in partition.read().await.iter() {
            writer
                .write(batch)
                .map_err(|e| Error::Infrastructure(format!("cannot fingerprint a table: {e}")))?;
        }
    }
    writer
        .finish()
        .map_err(|e| Error::Infrastructure(format!("cannot fingerprint a table: {e}")))?;
    Ok(hex::encode(Sha256::digest(writer.into_inner())))
}

/// The text of every file the pipeline was loaded from, includes too.
async fn pipeline_text(pipeline: &Pipeline) -> Result<String> {
    let mut files: Vec<PathBuf> = vec![pipeline.path.clone()];
    for statement in &pipeline.statements {
        if !files.contains(&statement.location.file) {
            files.push(statement.location.file.clone());
        }
    }
    let mut hasher = Sha256::new();
    for file in files {
        let text = tokio::fs::read(&file).await.map_err(|e| {
            Error::Config(format!("cannot read pipeline file {}: {e}", file.display()))
        })?;
        hasher.update(Sha256::digest(text));
    }
    Ok(hex::encode(hasher.finalize()))
}

fn digest_of(text: String) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
