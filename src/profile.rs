//! Profiles: where a run reads and writes, by name, from `fengine.toml`.
//!
//! ```toml
//! [profiles.default]
//! warehouse = "warehouse"            # a folder (relative to this file) or a URL
//! catalog = "local"                  # the embedded catalog
//! catalog_path = "warehouse/catalog.sqlite"
//! database = "fengine"
//! online = "sqlite"                  # the embedded online store
//! online_path = "warehouse/online.sqlite"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use fengine_catalog::LocalCatalog;
use fengine_engine::{Backends, Error, Warehouse};
use fengine_online::SqliteOnlineStore;
use serde::Deserialize;

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
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_online")]
    pub online: String,
    pub online_path: Option<String>,
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
    }
}

impl ResolvedProfile {
    /// Builds the profile's backends; the one place that maps backend names to code.
    pub fn backends(&self) -> Result<Backends> {
        let profile = &self.profile;
        let warehouse_folder = self.local_path(&profile.warehouse, "warehouse")?;
        let warehouse = Warehouse::local(&warehouse_folder)?;
        let catalog: Arc<dyn fengine_catalog::Catalog> = match profile.catalog.as_str() {
            "local" => {
                let path = self.path_or(
                    profile.catalog_path.as_deref(),
                    &warehouse_folder,
                    "catalog.sqlite",
                );
                Arc::new(LocalCatalog::open(&path).map_err(Error::from)?)
            }
            other => bail!(self.unknown("catalog", other, "\"local\"")),
        };
        let online: Arc<dyn fengine_online::OnlineStore> = match profile.online.as_str() {
            "sqlite" => {
                let path = self.path_or(
                    profile.online_path.as_deref(),
                    &warehouse_folder,
                    "online.sqlite",
                );
                Arc::new(SqliteOnlineStore::open(&path).map_err(Error::from)?)
            }
            other => bail!(self.unknown("online", other, "\"sqlite\"")),
        };
        Ok(Backends {
            warehouse,
            catalog,
            online,
            database: profile.database.clone(),
        })
    }

    fn local_path(&self, location: &str, setting: &str) -> Result<PathBuf> {
        if let Some(path) = location.strip_prefix("file://") {
            return Ok(PathBuf::from(path));
        }
        if location.contains("://") {
            bail!(Error::Config(format!(
                "profile '{}': {setting} '{location}' is a URL this build cannot write to; \
                 give a folder",
                self.name
            )));
        }
        Ok(self.base.join(location))
    }

    fn path_or(&self, configured: Option<&str>, warehouse: &Path, file: &str) -> PathBuf {
        configured
            .map(|p| self.base.join(p))
            .unwrap_or_else(|| warehouse.join(file))
    }

    fn unknown(&self, setting: &str, value: &str, expected: &str) -> anyhow::Error {
        Error::Config(format!(
            "profile '{}': unknown {setting} '{value}' (expected {expected})",
            self.name
        ))
        .into()
    }
}

/// The named profile's backends.
pub fn load(config: Option<&Path>, name: Option<&str>) -> Result<Backends> {
    resolve(config, name)?.backends()
}
