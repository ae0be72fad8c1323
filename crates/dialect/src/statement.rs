//! The statements fengine adds to DataFusion's SQL, each printable back to SQL.

use std::fmt;

use datafusion_sql::parser::Statement as DataFusionStatement;
use datafusion_sql::sqlparser::ast::{Ident, Query, Value};

/// One statement of a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `INCLUDE 'path.sql'`
    Include(Include),
    /// `CREATE FEATURE GROUP ... AS <query>`
    CreateFeatureGroup(Box<CreateFeatureGroup>),
    /// `CREATE MODEL ... USES (...)`
    CreateModel(CreateModel),
    /// Any statement DataFusion parses: `CREATE EXTERNAL TABLE`, `CREATE VIEW`, `SET`, ...
    Sql(Box<DataFusionStatement>),
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Include(include) => include.fmt(f),
            Statement::CreateFeatureGroup(group) => group.fmt(f),
            Statement::CreateModel(model) => model.fmt(f),
            Statement::Sql(statement) => statement.fmt(f),
        }
    }
}

/// `INCLUDE '<path>'`: the statements of another file, resolved relative to the including
/// file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub path: String,
}

impl fmt::Display for Include {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INCLUDE {}", quoted(&self.path))
    }
}

/// A feature group: a query whose rows are feature values of entities at event times.
///
/// ```text
/// CREATE FEATURE GROUP <name>
///   [VERSION <n>]                      -- default 1
///   KEY (<col> [, ...])
///   EVENT TIME <col>
///   [DESCRIPTION '<text>']
///   [TAGS (<k> = '<v>' [, ...])]
///   [FEATURES (<col> COMMENT '<text>' [, ...])]
///   [ONLINE (ttl = '<interval>')]
/// AS <query>
/// ```
/// The clauses may come in any order after the name, each at most once.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFeatureGroup {
    pub name: Ident,
    pub version: u32,
    pub key: Vec<Ident>,
    pub event_time: Ident,
    pub description: Option<String>,
    pub tags: Vec<(Ident, String)>,
    pub features: Vec<FeatureComment>,
    pub online: OnlineOptions,
    pub query: Box<Query>,
}

impl CreateFeatureGroup {
    /// The group's name as the catalog and stores know it.
    pub fn name(&self) -> String {
        normalize_ident(&self.name)
    }

    /// The key columns' names, in KEY order, as they appear in the query's output.
    pub fn key_columns(&self) -> Vec<String> {
        self.key.iter().map(normalize_ident).collect()
    }

    /// The event-time column's name as it appears in the query's output.
    pub fn event_time_column(&self) -> String {
        normalize_ident(&self.event_time)
    }
}

impl fmt::Display for CreateFeatureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CREATE FEATURE GROUP {} VERSION {}",
            self.name, self.version
        )?;
        write!(f, " KEY ({})", comma_separated(&self.key))?;
        write!(f, " EVENT TIME {}", self.event_time)?;
        if let Some(description) = &self.description {
            write!(f, " DESCRIPTION {}", quoted(description))?;
        }
        if !self.tags.is_empty() {
            write!(f, " TAGS ({})", tags(&self.tags))?;
        }
        if !self.features.is_empty() {
            write!(f, " FEATURES ({})", comma_separated(&self.features))?;
        }
        if let Some(ttl) = &self.online.ttl {
            write!(f, " ONLINE (ttl = {})", quoted(ttl))?;
        }
        write!(f, " AS {}", self.query)
    }
}

/// A model and the features it uses, for the catalogue's lineage.
///
/// ```text
/// CREATE MODEL <name>
///   [VERSION <n>]                                 -- default 1
///   USES (<group>[@<version>].<feature> [, ...])  -- the group's newest version if none
///   [DESCRIPTION '<text>']
///   [TAGS (<k> = '<v>' [, ...])]
/// ```
/// The clauses may come in any order after the name, each at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateModel {
    pub name: Ident,
    pub version: u32,
    pub uses: Vec<FeatureUse>,
    pub description: Option<String>,
    pub tags: Vec<(Ident, String)>,
}

impl CreateModel {
    pub fn name(&self) -> String {
        normalize_ident(&self.name)
    }
}

impl fmt::Display for CreateModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE MODEL {} VERSION {}", self.name, self.version)?;
        write!(f, " USES ({})", comma_separated(&self.uses))?;
        if let Some(description) = &self.description {
            write!(f, " DESCRIPTION {}", quoted(description))?;
        }
        if !self.tags.is_empty() {
            write!(f, " TAGS ({})", tags(&self.tags))?;
        }
        Ok(())
    }
}

/// `<group>[@<version>].<feature>` in a USES clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureUse {
    pub group: Ident,
    pub version: Option<u32>,
    pub feature: Ident,
}

impl FeatureUse {
    pub fn group_name(&self) -> String {
        normalize_ident(&self.group)
    }

    pub fn feature_name(&self) -> String {
        normalize_ident(&self.feature)
    }
}

impl fmt::Display for FeatureUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(version) => write!(f, "{}@{version}.{}", self.group, self.feature),
            None => write!(f, "{}.{}", self.group, self.feature),
        }
    }
}

/// `<col> COMMENT '<text>'` in a FEATURES clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureComment {
    pub column: Ident,
    pub comment: String,
}

impl FeatureComment {
    pub fn column_name(&self) -> String {
        normalize_ident(&self.column)
    }
}

impl fmt::Display for FeatureComment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} COMMENT {}", self.column, quoted(&self.comment))
    }
}

/// Options of the ONLINE clause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnlineOptions {
    /// How long a value stays servable after its event time, as written (`'30 days'`).
    pub ttl: Option<String>,
}

/// Unquoted identifiers are case-insensitive, as in DataFusion: they name lower-case columns.
pub fn normalize_ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn quoted(text: &str) -> String {
    Value::SingleQuotedString(text.to_string()).to_string()
}

fn tags(tags: &[(Ident, String)]) -> String {
    tags.iter()
        .map(|(key, value)| format!("{key} = {}", quoted(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn comma_separated<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
