//! Profiles: where a run reads and writes, by name, from `fengine.toml`.
//!
//! ```toml
//! [profiles.default]
//! warehouse = "warehouse"            # a folder (relative to this file) or a URL
//! catalog = "local"                  # the embedded catalog, or "glue"
//! catalog_path = "warehouse/catalog.sqlite"
//! database = "fengine"
//! online = "sqlite"                  # the embedded online store, or "dynamodb"
//! online_path = "warehouse/online.sqlite"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use datafusion::execution::object_store::ObjectStoreRegistry;
use fengine_catalog::{Catalog, LocalCatalog};
#[cfg(feature = "aws")]
use fengine_engine::CallerIdentity;
use fengine_engine::{Backends, Caller, Error, OsUser, PlannedPipeline, SourceCatalog, Warehouse};
use fengine_online::{OnlineStore, SqliteOnlineStore};
use serde::Deserialize;
use url::Url;

pub const DEFAULT_PROFILE: &str = "default";
const DEFAULT_CONFIG: &str = "fengine.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default = "default_warehouse")]
    pub warehouse: String,
    #[serde(default = "default_catalog")]
    pub catalog: String,
    pub catalog_path: Option<String>,
    /// The catalog database of the snapshots (`glue_database` works too).
    #[serde(default = "default_database", alias = "glue_database")]
    pub database: String,
    #[serde(default = "default_online")]
    pub online: String,
    pub online_path: Option<String>,
    /// The KMS key that encrypts snapshots written to S3.
    pub s3_sse_kms_key_id: Option<String>,
    /// Prepended to the DynamoDB table names: `<prefix><group>_v<version>`.
    #[serde(default)]
    #[cfg_attr(
        not(feature = "aws"),
        allow(dead_code, reason = "read by the AWS backends")
    )]
    pub dynamodb_table_prefix: String,
    /// BatchWriteItem requests in flight during a load [default: 32].
    #[cfg_attr(
        not(feature = "aws"),
        allow(dead_code, reason = "read by the AWS backends")
    )]
    pub dynamodb_requests_in_flight: Option<usize>,
    /// The name that queries give the Glue Data Catalog as a source (`glue.<db>.<table>`);
    /// Glue sources are available whenever the profile uses AWS [default: glue].
    #[cfg_attr(
        not(feature = "aws"),
        allow(dead_code, reason = "read by the AWS backends")
    )]
    pub glue_catalog_name: Option<String>,
    /// The account in the ARNs of `fengine plan --iam-policy` [default: *].
    #[cfg_attr(
        not(feature = "aws"),
        allow(dead_code, reason = "read by the AWS backends")
    )]
    pub aws_account_id: Option<String>,
    /// How long a load retries throttled and unprocessed items [default: 900].
    #[cfg_attr(
        not(feature = "aws"),
        allow(dead_code, reason = "read by the AWS backends")
    )]
    pub dynamodb_load_deadline_seconds: Option<u64>,
    /// What DataFusion may hold in memory before sorts and joins spill to disk: `"8GiB"`,
    /// `"512MiB"`, or `"none"` [default: half the memory of the machine or container].
    pub memory_limit: Option<String>,
    /// How long a run's lease on a snapshot or an online table lasts unless renewed, in
    /// seconds: a killed run holds up the next run of its group this long [default: 30].
    pub lease_seconds: Option<u64>,
    /// How far ahead of now an as-of may be without `--force`, in hours [default: 24].
    pub as_of_horizon_hours: Option<u64>,
}

fn default_warehouse() -> String {
    "warehouse".to_string()
}
fn default_catalog() -> String {
    "local".to_string()
}
fn default_database() -> String {
    "fengine".to_string()
}
fn default_online() -> String {
    "sqlite".to_string()
}

/// A profile and the folder its relative paths are relative to.
#[derive(Debug, Clone)]
pub struct ResolvedProfile {
    pub name: String,
    pub profile: Profile,
    base: PathBuf,
}

/// The profile to use: `name` from the config file (`--config`, else `./fengine.toml`), or
/// the embedded profile when neither a file nor a name is given.
pub fn resolve(config: Option<&Path>, name: Option<&str>) -> Result<ResolvedProfile> {
    let path = config
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    if config.is_none() && !path.exists() {
        if let Some(name) = name.filter(|n| *n != DEFAULT_PROFILE) {
            bail!(Error::Config(format!(
                "profile '{name}' is not defined: there is no {DEFAULT_CONFIG} in this folder \
                 (give one with --config)"
            )));
        }
        return Ok(ResolvedProfile {
            name: "embedded".to_string(),
            profile: embedded(),
            base: PathBuf::from("."),
        });
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("cannot read config file '{}': {e}", path.display())))?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "config file '{}' is malformed: {e}",
            path.display()
        ))
    })?;
    let name = name.unwrap_or(DEFAULT_PROFILE);
    let Some(profile) = file.profiles.get(name) else {
        let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
        bail!(Error::Config(format!(
            "profile '{name}' is not defined in '{}' (profiles: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(ResolvedProfile {
        name: name.to_string(),
        profile: profile.clone(),
        base,
    })
}

fn embedded() -> Profile {
    Profile {
        warehouse: default_warehouse(),
        catalog: default_catalog(),
        catalog_path: None,
        database: default_database(),
        online: default_online(),
        online_path: None,
        s3_sse_kms_key_id: None,
        dynamodb_table_prefix: String::new(),
        dynamodb_requests_in_flight: None,
        dynamodb_load_deadline_seconds: None,
        aws_account_id: None,
        glue_catalog_name: None,
        memory_limit: None,
        lease_seconds: None,
        as_of_horizon_hours: None,
    }
}

impl ResolvedProfile {
    /// Builds the profile's backends; the one place that maps backend names to code.
    pub async fn backends(&self) -> Result<Backends> {
        let profile = &self.profile;
        let aws = Aws::new(self.uses_aws()).await;
        let warehouse = self.warehouse(&aws)?;
        let local_file = |configured: Option<&str>, name: &str| self.local_file(configured, name);
        let catalog: Arc<dyn Catalog> = match profile.catalog.as_str() {
            "local" => Arc::new(
                LocalCatalog::open(local_file(
                    profile.catalog_path.as_deref(),
                    "catalog.sqlite",
                )?)
                .map_err(Error::from)?,
            ),
            #[cfg(feature = "aws")]
            "glue" => Arc::new(fengine_aws::GlueCatalog::new(aws.context(&self.name)?)),
            #[cfg(not(feature = "aws"))]
            "glue" => bail!(without_aws(&self.name, "catalog 'glue'")),
            other => bail!(self.unknown("catalog", other, "\"local\" or \"glue\"")),
        };
        let online: Arc<dyn OnlineStore> = match profile.online.as_str() {
            "sqlite" => Arc::new(
                SqliteOnlineStore::open(local_file(
                    profile.online_path.as_deref(),
                    "online.sqlite",
                )?)
                .map_err(Error::from)?,
            ),
            #[cfg(feature = "aws")]
            "dynamodb" => {
                let mut settings = fengine_aws::WriteSettings::default();
                if let Some(requests) = profile.dynamodb_requests_in_flight {
                    settings.requests_in_flight = requests;
                }
                if let Some(seconds) = profile.dynamodb_load_deadline_seconds {
                    settings.deadline = std::time::Duration::from_secs(seconds);
                }
                Arc::new(fengine_aws::DynamoDbOnlineStore::new(
                    aws.context(&self.name)?,
                    &profile.dynamodb_table_prefix,
                    settings,
                ))
            }
            #[cfg(not(feature = "aws"))]
            "dynamodb" => bail!(without_aws(&self.name, "online store 'dynamodb'")),
            other => bail!(self.unknown("online", other, "\"sqlite\" or \"dynamodb\"")),
        };
        Ok(Backends {
            warehouse,
            catalog,
            online,
            database: profile.database.clone(),
            object_stores: aws.object_stores(),
            source_catalogs: aws.source_catalogs(profile),
            memory_limit: self.memory_limit()?,
            lease_ttl: self.lease_ttl()?,
            as_of_horizon: self
                .profile
                .as_of_horizon_hours
                .map_or(fengine_engine::DEFAULT_AS_OF_HORIZON, |hours| {
                    Duration::from_secs(hours * 3600)
                }),
            caller: aws.caller(),
        })
    }

    fn lease_ttl(&self) -> Result<Duration> {
        match self.profile.lease_seconds {
            None => Ok(fengine_engine::DEFAULT_LEASE_TTL),
            Some(0) => Err(self.unknown("lease_seconds", "0", "a number of seconds of at least 1")),
            Some(seconds) => Ok(Duration::from_secs(seconds)),
        }
    }

    fn memory_limit(&self) -> Result<Option<usize>> {
        match self.profile.memory_limit.as_deref() {
            None => Ok(default_memory_limit()),
            Some("none") => Ok(None),
            Some(text) => parse_bytes(text).map(Some).ok_or_else(|| {
                self.unknown(
                    "memory_limit",
                    text,
                    "a size such as \"8GiB\" or \"512MiB\", or \"none\"",
                )
            }),
        }
    }

    fn uses_aws(&self) -> bool {
        self.profile.warehouse.starts_with("s3://")
            || self.profile.catalog == "glue"
            || self.profile.online == "dynamodb"
            || self.profile.glue_catalog_name.is_some()
    }

    /// The profile's backends for a command that only reads (`get`): one whose local
    /// warehouse or catalog does not exist yet finds nothing, and creates nothing.
    pub async fn existing_backends(&self) -> Result<Backends> {
        let mut expected = Vec::new();
        if let Some(folder) = self.local_folder() {
            expected.push(folder);
        }
        if self.profile.catalog == "local" {
            expected.push(self.local_file(self.profile.catalog_path.as_deref(), "catalog.sqlite")?);
        }
        if self.profile.online == "sqlite" {
            expected.push(self.local_file(self.profile.online_path.as_deref(), "online.sqlite")?);
        }
        if let Some(missing) = expected.iter().find(|path| !path.exists()) {
            bail!(Error::NotFound(format!(
                "profile '{}': '{}' does not exist, so nothing has been published there: run \
                 where the pipeline's fengine.toml is, or pass --config or --profile",
                self.name,
                missing.display()
            )));
        }
        self.backends().await
    }

    /// The warehouse's folder, when it is a local one.
    fn local_folder(&self) -> Option<PathBuf> {
        let location = &self.profile.warehouse;
        (!location.contains("://") || location.starts_with("file://"))
            .then(|| self.base.join(location.trim_start_matches("file://")))
    }

    /// Where a local store's file is: as configured, or in the warehouse folder.
    fn local_file(&self, configured: Option<&str>, name: &str) -> Result<PathBuf> {
        match (configured, self.local_folder()) {
            (Some(path), _) => Ok(self.base.join(path)),
            (None, Some(folder)) => Ok(folder.join(name)),
            (None, None) => bail!(Error::Config(format!(
                "profile '{}': the warehouse is not a folder, so give {} a path",
                self.name,
                if name.starts_with("catalog") {
                    "catalog_path"
                } else {
                    "online_path"
                }
            ))),
        }
    }

    fn warehouse(&self, aws: &Aws) -> Result<Warehouse> {
        let location = &self.profile.warehouse;
        if location.starts_with("s3://") {
            let url = Url::parse(location).map_err(|e| {
                Error::Config(format!(
                    "profile '{}': warehouse '{location}': {e}",
                    self.name
                ))
            })?;
            return aws.s3_warehouse(&self.name, url, self.profile.s3_sse_kms_key_id.as_deref());
        }
        if location.contains("://") && !location.starts_with("file://") {
            bail!(Error::Config(format!(
                "profile '{}': warehouse '{location}' is neither a folder nor an s3:// URL",
                self.name
            )));
        }
        let folder = self.local_folder().expect("not a URL but a file:// one");
        Ok(Warehouse::local(&folder)?)
    }

    fn unknown(&self, setting: &str, value: &str, expected: &str) -> anyhow::Error {
        Error::Config(format!(
            "profile '{}': unknown {setting} '{value}' (expected {expected})",
            self.name
        ))
        .into()
    }
}

/// The AWS configuration, loaded only for profiles that use AWS.
struct Aws {
    #[cfg(feature = "aws")]
    context: Option<fengine_aws::AwsContext>,
}

#[cfg(feature = "aws")]
impl Aws {
    async fn new(needed: bool) -> Self {
        let context = if needed {
            Some(fengine_aws::AwsContext::load().await)
        } else {
            None
        };
        Aws { context }
    }

    fn context(&self, profile: &str) -> Result<&fengine_aws::AwsContext> {
        self.context
            .as_ref()
            .ok_or_else(|| Error::Config(format!("profile '{profile}' does not use AWS")).into())
    }

    fn s3_warehouse(
        &self,
        profile: &str,
        url: Url,
        sse_kms_key_id: Option<&str>,
    ) -> Result<Warehouse> {
        let store = fengine_aws::s3_store(self.context(profile)?, &url, sse_kms_key_id)
            .map_err(|e| Error::Config(format!("profile '{profile}': {e}")))?;
        Ok(Warehouse::new(url, store))
    }

    fn object_stores(&self) -> Option<Arc<dyn ObjectStoreRegistry>> {
        self.context.as_ref().map(|aws| {
            Arc::new(fengine_aws::S3StoreRegistry::new(aws)) as Arc<dyn ObjectStoreRegistry>
        })
    }

    /// The AWS identity on AWS profiles, else the OS user.
    fn caller(&self) -> Arc<dyn Caller> {
        match &self.context {
            Some(aws) => Arc::new(AwsCaller {
                aws: aws.clone(),
                arn: tokio::sync::OnceCell::new(),
            }),
            None => Arc::new(OsUser),
        }
    }

    fn source_catalogs(&self, profile: &Profile) -> Vec<SourceCatalog> {
        let name = profile
            .glue_catalog_name
            .clone()
            .unwrap_or_else(|| "glue".to_string());
        self.context
            .iter()
            .map(|aws| SourceCatalog {
                name: name.clone(),
                provider: Arc::new(fengine_aws::GlueSourceCatalog::new(aws)),
                tables: Arc::new(fengine_aws::GlueCatalog::new(aws)),
            })
            .collect()
    }
}

/// The caller's ARN, asked of STS once per command. A caller STS cannot name (no route
/// to it from a private subnet) is recorded as such rather than failing the command.
#[cfg(feature = "aws")]
#[derive(Debug)]
struct AwsCaller {
    aws: fengine_aws::AwsContext,
    arn: tokio::sync::OnceCell<String>,
}

#[cfg(feature = "aws")]
impl Caller for AwsCaller {
    fn identity(&self) -> CallerIdentity<'_> {
        Box::pin(async move {
            self.arn
                .get_or_init(|| async {
                    self.aws
                        .caller_arn()
                        .await
                        .unwrap_or_else(|e| format!("unknown AWS caller ({e})"))
                })
                .await
                .clone()
        })
    }
}

#[cfg(not(feature = "aws"))]
fn without_aws(profile: &str, what: &str) -> Error {
    Error::Config(format!(
        "profile '{profile}': the {what} is on AWS, and this fengine was built without AWS \
         support: build it with `cargo build --features aws`"
    ))
}

#[cfg(not(feature = "aws"))]
impl Aws {
    async fn new(_needed: bool) -> Self {
        Aws {}
    }

    fn s3_warehouse(
        &self,
        profile: &str,
        url: Url,
        _sse_kms_key_id: Option<&str>,
    ) -> Result<Warehouse> {
        bail!(Error::Config(format!(
            "profile '{profile}': warehouse '{url}' is on S3, and this fengine was built without \
             AWS support: build it with `--features aws`"
        )))
    }

    fn object_stores(&self) -> Option<Arc<dyn ObjectStoreRegistry>> {
        None
    }

    fn source_catalogs(&self, _profile: &Profile) -> Vec<SourceCatalog> {
        Vec::new()
    }

    fn caller(&self) -> Arc<dyn Caller> {
        Arc::new(OsUser)
    }
}

#[cfg(feature = "aws")]
impl ResolvedProfile {
    /// The least-privilege IAM policy for running `planned` under this profile.
    pub async fn iam_policy(&self, planned: &PlannedPipeline) -> Result<serde_json::Value> {
        let profile = &self.profile;
        let aws = fengine_aws::AwsContext::load().await;
        let groups: Vec<(String, u32)> = planned
            .groups
            .iter()
            .map(|g| (g.name(), g.definition.version))
            .collect();
        let warehouse = profile
            .warehouse
            .starts_with("s3://")
            .then(|| Url::parse(&profile.warehouse))
            .transpose()
            .map_err(|e| Error::Config(format!("profile '{}': warehouse: {e}", self.name)))?;
        let dynamodb_tables = if profile.online == "dynamodb" {
            fengine_aws::DynamoDbOnlineStore::new(
                &aws,
                &profile.dynamodb_table_prefix,
                Default::default(),
            )
            .table_names(&groups)
        } else {
            Vec::new()
        };
        // A `features.` source reads its group version's snapshots, found through Glue.
        let mut sources = planned.sources.clone();
        let mut read_tables = Vec::new();
        for (group, version) in &planned.published_sources {
            if let Some(root) = &warehouse {
                let root = root.as_str().trim_end_matches('/');
                sources.push(format!("{root}/{group}/v{version}/"));
            }
            read_tables.push(format!("{group}_v{version}"));
        }
        let scope = fengine_aws::PolicyScope {
            sources,
            warehouse,
            group_folders: groups
                .iter()
                .map(|(group, version)| format!("{group}/v{version}/"))
                .collect(),
            kms_key: profile.s3_sse_kms_key_id.clone(),
            glue: (profile.catalog == "glue").then(|| {
                (
                    profile.database.clone(),
                    planned
                        .groups
                        .iter()
                        .map(|g| g.table.name.clone())
                        .chain(read_tables)
                        .chain(
                            fengine_engine::CATALOGUE_TABLES
                                .iter()
                                .map(|t| t.to_string()),
                        )
                        .collect(),
                )
            }),
            glue_lists_tables: !planned.models.is_empty() || !planned.published_sources.is_empty(),
            dynamodb_tables,
            region: aws.region().unwrap_or("*").to_string(),
            account: profile
                .aws_account_id
                .clone()
                .unwrap_or_else(|| "*".to_string()),
        };
        Ok(fengine_aws::iam_policy(&scope))
    }
}

#[cfg(not(feature = "aws"))]
impl ResolvedProfile {
    pub async fn iam_policy(&self, _planned: &PlannedPipeline) -> Result<serde_json::Value> {
        bail!(Error::Config(
            "--iam-policy describes AWS access, and this fengine was built without AWS support: \
             build it with `cargo build --features aws`"
                .to_string()
        ))
    }
}

/// `8GiB`, `512MiB`, `64KiB`, `1000000`: a size in bytes.
fn parse_bytes(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    number
        .parse::<usize>()
        .ok()?
        .checked_mul(scale)
        .filter(|&b| b > 0)
}

/// Half the memory of the container (its cgroup limit) or else of the machine: room for
/// DataFusion's buffers, Parquet decoding and the online load beside the pool.
fn default_memory_limit() -> Option<usize> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok());
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    let total = match (cgroup, machine) {
        (Some(cgroup), Some(machine)) => Some(cgroup.min(machine)),
        (one, other) => one.or(other),
    };
    total.map(|bytes| bytes / 2)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_read_as_bytes() {
        assert_eq!(parse_bytes("8GiB"), Some(8 << 30));
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("8GB"), None);
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("lots"), None);
    }
}
