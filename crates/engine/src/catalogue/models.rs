//! Models and the features they use: declared in a pipeline (`CREATE MODEL ... USES`) or
//! recorded by the training set built for them, one file per model version in the
//! `fengine_models` table, one row per feature used. The catalogue answers both ways: what
//! a model uses, and which models a group version's features feed.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{MODELS_TABLE, RecordTable};
use crate::backends::Backends;
use crate::error::{Error, Result};
use crate::published::{GroupVersion, pick_version};

/// A model version to register: the features it uses, each of a group version.
#[derive(Debug, Clone)]
pub struct ModelDefinition {
    pub name: String,
    pub version: u32,
    pub uses: Vec<FeatureUse>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// What declared it: `pipeline <file>` or `training set <file>`.
    pub origin: String,
}

/// A feature a model uses; the group's newest version not retired when `version` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureUse {
    pub group: String,
    pub version: Option<u32>,
    pub feature: String,
}

/// One row of `fengine_models`: a feature a model version uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFeature {
    pub model: String,
    pub model_version: u32,
    // `group` is a reserved word of Athena's SQL.
    #[serde(rename = "group_name")]
    pub group: String,
    pub group_version: u32,
    pub feature: String,
    pub description: Option<String>,
    /// The model's tags, as a JSON object.
    pub tags: String,
    pub origin: String,
    pub registered_at: DateTime<Utc>,
    pub registered_by: String,
}

/// A registered model version, as `catalog show <model>` says.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDetail {
    pub model: String,
    pub version: u32,
    pub versions: Vec<u32>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub origin: String,
    pub registered_at: DateTime<Utc>,
    pub registered_by: String,
    /// The features it uses, by group version.
    pub features: Vec<UsedFeature>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UsedFeature {
    pub group: String,
    pub version: u32,
    pub feature: String,
}

/// A model version that uses a group version, and which of its features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelUse {
    pub model: String,
    pub version: u32,
    pub features: Vec<String>,
}

fn models_table() -> RecordTable<ModelFeature> {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    RecordTable {
        name: MODELS_TABLE,
        description: "The features each registered model version uses (one file per model \
                      version, a row per feature)",
        schema: Arc::new(Schema::new(vec![
            Field::new("model", DataType::Utf8, false),
            Field::new("model_version", DataType::Int32, false),
            Field::new("group_name", DataType::Utf8, false),
            Field::new("group_version", DataType::Int32, false),
            Field::new("feature", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, true),
            Field::new("tags", DataType::Utf8, false),
            Field::new("origin", DataType::Utf8, false),
            Field::new("registered_at", time, false),
            Field::new("registered_by", DataType::Utf8, false),
        ])),
        partitioned_by: None,
        records: PhantomData,
    }
}

/// Resolves each feature the model uses to a published group version that has it, or says
/// which does not exist. `pending` are group versions about to be published by the same
/// pipeline, which a model may use before they are in the catalog.
pub(crate) fn resolve_uses(
    definition: &ModelDefinition,
    published: &BTreeMap<String, Vec<GroupVersion>>,
    pending: &[GroupVersion],
) -> Result<Vec<UsedFeature>> {
    let model = &definition.name;
    let mut used = Vec::new();
    for feature_use in &definition.uses {
        let group = &feature_use.group;
        let mut versions: Vec<GroupVersion> = published.get(group).cloned().unwrap_or_default();
        for planned in pending.iter().filter(|p| &p.group == group) {
            versions.retain(|v| v.version != planned.version);
            versions.push(planned.clone());
        }
        if versions.is_empty() {
            return Err(Error::Config(format!(
                "model '{model}' uses '{feature_use}', but feature group '{group}' is not \
                 published: run its pipeline first, or fix the name"
            )));
        }
        let version = pick_version(group, versions, feature_use.version)
            .map_err(|e| Error::Config(format!("model '{model}' uses '{feature_use}': {e}")))?;
        if let Some(retired) = version.retired() {
            return Err(Error::Config(format!(
                "model '{model}' uses '{feature_use}', but version {} of '{group}' was retired \
                 at {}",
                version.version, retired.at
            )));
        }
        let features: Vec<&str> = version.features().iter().map(|c| c.name.as_str()).collect();
        if !features.contains(&feature_use.feature.as_str()) {
            return Err(Error::Config(format!(
                "model '{model}' uses '{feature_use}', but '{group}' v{} has no feature '{}'; \
                 its features are {}",
                version.version,
                feature_use.feature,
                features.join(", ")
            )));
        }
        used.push(UsedFeature {
            group: group.clone(),
            version: version.version,
            feature: feature_use.feature.clone(),
        });
    }
    used.sort();
    used.dedup();
    Ok(used)
}

impl std::fmt::Display for FeatureUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(version) => write!(f, "{}@{version}.{}", self.group, self.feature),
            None => write!(f, "{}.{}", self.group, self.feature),
        }
    }
}

/// Registers a model version whose features are resolved already.
pub(crate) async fn write_model(
    backends: &Backends,
    definition: &ModelDefinition,
    used: Vec<UsedFeature>,
) -> Result<ModelDetail> {
    let registered_by = backends.caller.identity().await;
    let registered_at = Utc::now();
    let tags = serde_json::to_string(&definition.tags).expect("strings serialize");
    let rows: Vec<ModelFeature> = used
        .iter()
        .map(|u| ModelFeature {
            model: definition.name.clone(),
            model_version: definition.version,
            group: u.group.clone(),
            group_version: u.version,
            feature: u.feature.clone(),
            description: definition.description.clone(),
            tags: tags.clone(),
            origin: definition.origin.clone(),
            registered_at,
            registered_by: registered_by.clone(),
        })
        .collect();
    models_table()
        .write(
            backends,
            None,
            &format!("{}_v{}", definition.name, definition.version),
            &rows,
        )
        .await?;
    Ok(ModelDetail {
        model: definition.name.clone(),
        version: definition.version,
        versions: vec![definition.version],
        description: definition.description.clone(),
        tags: definition.tags.clone(),
        origin: definition.origin.clone(),
        registered_at,
        registered_by,
        features: used,
    })
}

/// Every registered model version, by name and version.
pub(crate) async fn all_models(
    backends: &Backends,
) -> Result<BTreeMap<(String, u32), ModelDetail>> {
    let mut models: BTreeMap<(String, u32), ModelDetail> = BTreeMap::new();
    for row in models_table().read(backends, None).await? {
        let detail = models
            .entry((row.model.clone(), row.model_version))
            .or_insert_with(|| ModelDetail {
                model: row.model.clone(),
                version: row.model_version,
                versions: Vec::new(),
                description: row.description.clone(),
                tags: serde_json::from_str(&row.tags).unwrap_or_default(),
                origin: row.origin.clone(),
                registered_at: row.registered_at,
                registered_by: row.registered_by.clone(),
                features: Vec::new(),
            });
        detail.features.push(UsedFeature {
            group: row.group,
            version: row.group_version,
            feature: row.feature,
        });
    }
    let mut versions: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (name, version) in models.keys() {
        versions.entry(name.clone()).or_default().push(*version);
    }
    for ((name, _), detail) in models.iter_mut() {
        detail.versions.clone_from(&versions[name]);
        detail.features.sort();
    }
    Ok(models)
}

/// A model: `version`, or its newest; `None` when no model of that name is registered.
pub async fn show_model(
    backends: &Backends,
    name: &str,
    version: Option<u32>,
) -> Result<Option<ModelDetail>> {
    let models = all_models(backends).await?;
    let versions: Vec<&ModelDetail> = models.values().filter(|m| m.model == name).collect();
    let Some(newest) = versions.last() else {
        return Ok(None);
    };
    match version {
        None => Ok(Some((*newest).clone())),
        Some(wanted) => match versions.iter().find(|m| m.version == wanted) {
            Some(model) => Ok(Some((*model).clone())),
            None => Err(Error::NotFound(format!(
                "model '{name}' has no version {wanted}; its versions are {}",
                newest
                    .versions
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// The model versions that use `group` v`version`, with the features they use.
pub(crate) fn uses_of(
    models: &BTreeMap<(String, u32), ModelDetail>,
    group: &str,
    version: u32,
) -> Vec<ModelUse> {
    models
        .values()
        .filter_map(|model| {
            let features: Vec<String> = model
                .features
                .iter()
                .filter(|f| f.group == group && f.version == version)
                .map(|f| f.feature.clone())
                .collect();
            (!features.is_empty()).then(|| ModelUse {
                model: model.model.clone(),
                version: model.version,
                features,
            })
        })
        .collect()
}

/// `<model> v<n>` of each registered model version that uses `group` v`version`.
pub(crate) async fn models_using(
    backends: &Backends,
    group: &str,
    version: u32,
) -> Result<Vec<String>> {
    let models = all_models(backends).await?;
    Ok(uses_of(&models, group, version)
        .into_iter()
        .map(|m| format!("{} v{}", m.model, m.version))
        .collect())
}

/// Records the model a training set was built for, from the features it requested: as
/// `version`, or, without one, as the newest registered version when it uses the same
/// features, else the next.
pub(crate) async fn record_training_set_model(
    backends: &Backends,
    name: &str,
    version: Option<u32>,
    used: Vec<UsedFeature>,
    origin: String,
) -> Result<ModelDetail> {
    let mut used = used;
    used.sort();
    used.dedup();
    let models = all_models(backends).await?;
    let newest = models.values().rfind(|m| m.model == name);
    let version = match (version, newest) {
        (Some(version), _) => version,
        (None, Some(newest)) if newest.features == used => return Ok(newest.clone()),
        (None, Some(newest)) => newest.version + 1,
        (None, None) => 1,
    };
    let existing = models.get(&(name.to_string(), version));
    let definition = ModelDefinition {
        name: name.to_string(),
        version,
        uses: Vec::new(),
        description: existing.and_then(|m| m.description.clone()),
        tags: existing.map(|m| m.tags.clone()).unwrap_or_default(),
        origin,
    };
    write_model(backends, &definition, used).await
}
