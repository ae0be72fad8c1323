//! The statements fengine adds to DataFusion's SQL, each printable back to SQL.

use std::fmt;

use datafusion_sql::parser::Statement as DataFusionStatement;
use datafusion_sql::sqlparser::ast::{Expr, Ident, Query, Value};

/// One statement of a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `INCLUDE 'path.sql'`
    Include(Include),
    /// `CREATE FEATURE GROUP ... AS <query>`
    CreateFeatureGroup(Box<CreateFeatureGroup>),
    /// `CREATE MODEL ... USES (...)`
    CreateModel(CreateModel),
    /// `CREATE ENCODER ... FIT ON ... (<transform>, ...)`
    CreateEncoder(Box<CreateEncoder>),
    /// Any statement DataFusion parses: `CREATE EXTERNAL TABLE`, `CREATE VIEW`, `SET`, ...
    Sql(Box<DataFusionStatement>),
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Include(include) => include.fmt(f),
            Statement::CreateFeatureGroup(group) => group.fmt(f),
            Statement::CreateModel(model) => model.fmt(f),
            Statement::CreateEncoder(encoder) => encoder.fmt(f),
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
///   [EXPECT ... [, ...]]               -- see [`Expectation`]; repeatable
/// AS <query>
/// ```
/// The clauses may come in any order after the name, each but EXPECT at most once.
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
    pub expectations: Vec<Expectation>,
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
        shared_clauses(f, self.description.as_deref(), &self.tags)?;
        if !self.features.is_empty() {
            write!(f, " FEATURES ({})", comma_separated(&self.features))?;
        }
        if let Some(ttl) = &self.online.ttl {
            write!(f, " ONLINE (ttl = {})", quoted(ttl))?;
        }
        for expectation in &self.expectations {
            write!(f, " {expectation}")?;
        }
        write!(f, " AS {}", self.query)
    }
}

/// A check a group's snapshot must pass before it is published.
///
/// ```text
/// EXPECT [<name> AS] <rule> [MOSTLY <share>] [WARN]
///   <rule>: (<condition>)                       -- any true-or-false SQL over a row; named
///         | NOT NULL (<col> [, ...])
///         | RANGE <col> BETWEEN <literal> AND <literal>
///         | VALUES <col> IN (<literal> [, ...])
///         | ROWS BETWEEN <n> AND <n>
///         | FRESHNESS <col> WITHIN '<interval>'  -- the newest value vs the as-of
/// ```
/// `MOSTLY` (row rules only) is the share of checked rows that must pass, all of them by
/// default; rows the rule says nothing of (a null condition) are not checked. A failing
/// expectation blocks the snapshot from being published, unless it is `WARN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// The name given with `<name> AS`, if any.
    pub given_name: Option<Ident>,
    pub rule: Rule,
    pub mostly: Option<f64>,
    pub warn: bool,
    /// Where `EXPECT` is written.
    pub line: u64,
    pub column: u64,
}

impl Expectation {
    /// The name the run's outcomes use: the given one, or one made of the rule
    /// (`not_null(a, b)`, `range(spend)`, `rows`).
    pub fn name(&self) -> String {
        if let Some(name) = &self.given_name {
            return normalize_ident(name);
        }
        let columns = |columns: &[&Ident]| {
            columns
                .iter()
                .map(|c| normalize_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.rule {
            Rule::Condition(condition) => condition.to_string(),
            Rule::NotNull(names) => {
                format!("not_null({})", columns(&names.iter().collect::<Vec<_>>()))
            }
            Rule::Range { column, .. } => format!("range({})", columns(&[column])),
            Rule::Values { column, .. } => format!("values({})", columns(&[column])),
            Rule::Rows { .. } => "rows".to_string(),
            Rule::Freshness { column, .. } => format!("freshness({})", columns(&[column])),
            Rule::Drift {
                column, measure, ..
            } => format!(
                "drift_{}({})",
                measure.to_string().to_lowercase(),
                columns(&[column])
            ),
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EXPECT ")?;
        if let Some(name) = &self.given_name {
            write!(f, "{name} AS ")?;
        }
        write!(f, "{}", self.rule)?;
        if let Some(mostly) = self.mostly {
            write!(f, " MOSTLY {mostly}")?;
        }
        if self.warn {
            write!(f, " WARN")?;
        }
        Ok(())
    }
}

/// What an expectation checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `(<condition>)`, true of every row.
    Condition(Box<Expr>),
    /// `NOT NULL (<col> [, ...])`
    NotNull(Vec<Ident>),
    /// `RANGE <col> BETWEEN <low> AND <high>`, bounds included.
    Range {
        column: Ident,
        low: Value,
        high: Value,
    },
    /// `VALUES <col> IN (<literal> [, ...])`
    Values { column: Ident, values: Vec<Value> },
    /// `ROWS BETWEEN <low> AND <high>`: the snapshot's row count, bounds included.
    Rows { low: u64, high: u64 },
    /// `FRESHNESS <col> WITHIN '<interval>'`
    Freshness { column: Ident, within: String },
    /// `DRIFT <col> PSI|KS|SHARE < <limit>`: against the version's previous snapshot.
    Drift {
        column: Ident,
        measure: DriftMeasure,
        limit: f64,
    },
}

/// A measure of how far a feature moved between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftMeasure {
    /// The population stability index.
    Psi,
    /// The Kolmogorov–Smirnov distance, of numbers.
    Ks,
    /// The largest change in a category's share of the rows.
    Share,
}

impl DriftMeasure {
    pub fn parse(word: &str) -> Option<Self> {
        match word.to_ascii_uppercase().as_str() {
            "PSI" => Some(DriftMeasure::Psi),
            "KS" => Some(DriftMeasure::Ks),
            "SHARE" => Some(DriftMeasure::Share),
            _ => None,
        }
    }
}

impl fmt::Display for DriftMeasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriftMeasure::Psi => "PSI",
            DriftMeasure::Ks => "KS",
            DriftMeasure::Share => "SHARE",
        })
    }
}

impl Rule {
    /// Whether it is checked row by row (and so takes MOSTLY).
    pub fn is_per_row(&self) -> bool {
        !matches!(
            self,
            Rule::Rows { .. } | Rule::Freshness { .. } | Rule::Drift { .. }
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Condition(condition) => write!(f, "({condition})"),
            Rule::NotNull(columns) => write!(f, "NOT NULL ({})", comma_separated(columns)),
            Rule::Range { column, low, high } => {
                write!(f, "RANGE {column} BETWEEN {low} AND {high}")
            }
            Rule::Values { column, values } => {
                write!(f, "VALUES {column} IN ({})", comma_separated(values))
            }
            Rule::Rows { low, high } => write!(f, "ROWS BETWEEN {low} AND {high}"),
            Rule::Freshness { column, within } => {
                write!(f, "FRESHNESS {column} WITHIN {}", quoted(within))
            }
            Rule::Drift {
                column,
                measure,
                limit,
            } => write!(f, "DRIFT {column} {measure} < {limit}"),
        }
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
        shared_clauses(f, self.description.as_deref(), &self.tags)?;
        Ok(())
    }
}

/// An encoder: transforms of columns whose parameters are fitted on the rows of a query,
/// then applied alike to training sets, pipelines and online rows.
///
/// ```text
/// CREATE ENCODER <name>
///   [VERSION <n>]                      -- the definition's version, default 1
///   FIT ON (<query>) | FIT ON '<Parquet file or folder>'
///   (<transform> [, ...])              -- see [`Transform`]
///   [DESCRIPTION '<text>']
///   [TAGS (<k> = '<v>' [, ...])]
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CreateEncoder {
    pub name: Ident,
    pub version: u32,
    pub fit_on: FitOn,
    pub transforms: Vec<EncoderTransform>,
    pub description: Option<String>,
    pub tags: Vec<(Ident, String)>,
}

impl CreateEncoder {
    pub fn name(&self) -> String {
        normalize_ident(&self.name)
    }
}

impl fmt::Display for CreateEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE ENCODER {} VERSION {}", self.name, self.version)?;
        match &self.fit_on {
            FitOn::Query(query) => write!(f, " FIT ON ({query})")?,
            FitOn::Files(path) => write!(f, " FIT ON {}", quoted(path))?,
        }
        write!(f, " ({})", comma_separated(&self.transforms))?;
        shared_clauses(f, self.description.as_deref(), &self.tags)?;
        Ok(())
    }
}

/// The rows an encoder is fitted on.
#[derive(Debug, Clone, PartialEq)]
pub enum FitOn {
    Query(Box<Query>),
    /// A Parquet file or folder (a training set), resolved relative to the pipeline file.
    Files(String),
}

/// One transform of an encoder, of one column, and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderTransform {
    pub column: Ident,
    pub transform: Transform,
    pub line: u64,
    pub column_number: u64,
}

impl EncoderTransform {
    pub fn column_name(&self) -> String {
        normalize_ident(&self.column)
    }
}

impl fmt::Display for EncoderTransform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = &self.column;
        let range = |out_of_range: &OutOfRange| match out_of_range {
            OutOfRange::Keep => String::new(),
            other => format!(", out_of_range => {}", quoted(other.name())),
        };
        match &self.transform {
            Transform::StandardScale { out_of_range } => {
                write!(f, "standard_scale({column}{})", range(out_of_range))
            }
            Transform::MinMax { out_of_range } => {
                write!(f, "min_max({column}{})", range(out_of_range))
            }
            Transform::Log1p { out_of_range } => {
                write!(f, "log1p({column}{})", range(out_of_range))
            }
            Transform::OneHot {
                max_categories,
                unknown,
            } => {
                write!(f, "one_hot({column}")?;
                if let Some(max) = max_categories {
                    write!(f, ", max_categories => {max}")?;
                }
                write!(f, ", unknown => {})", quoted(unknown.name()))
            }
            Transform::Bucketize {
                bins,
                strategy,
                out_of_range,
            } => {
                write!(f, "bucketize({column}, ")?;
                match strategy {
                    BinStrategy::Quantile(method) => write!(
                        f,
                        "quantiles => {bins}, method => {}",
                        quoted(method.name())
                    )?,
                    BinStrategy::Uniform => write!(f, "uniform => {bins}")?,
                }
                write!(f, "{})", range(out_of_range))
            }
        }
    }
}

/// What a transform computes, with scikit-learn's semantics (named after each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    /// `standard_scale(col)`: `StandardScaler`, (x − mean) / population std.
    StandardScale { out_of_range: OutOfRange },
    /// `min_max(col)`: `MinMaxScaler` to [0, 1].
    MinMax { out_of_range: OutOfRange },
    /// `log1p(col)`: ln(1 + x), fitted on nothing; its range is x > −1.
    Log1p { out_of_range: OutOfRange },
    /// `one_hot(col, max_categories => n, unknown => 'error' | 'ignore' | 'infrequent')`:
    /// `OneHotEncoder`.
    OneHot {
        max_categories: Option<u32>,
        unknown: Unknown,
    },
    /// `bucketize(col, quantiles => n [, method => ...])` or `bucketize(col, uniform => n)`:
    /// `KBinsDiscretizer(encode='ordinal')`.
    Bucketize {
        bins: u32,
        strategy: BinStrategy,
        out_of_range: OutOfRange,
    },
}

/// What becomes of a value outside the range a transform was fitted on, when applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutOfRange {
    /// Transformed as any other value, as scikit-learn does (a scaled value beyond the
    /// fitted ones; the first or last bucket).
    #[default]
    Keep,
    /// Moved to the nearest end of the range first.
    Clip,
    /// Null.
    Null,
    /// An error that names the value.
    Error,
}

impl OutOfRange {
    pub const NAMES: [&str; 4] = ["keep", "clip", "null", "error"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "keep" => Some(OutOfRange::Keep),
            "clip" => Some(OutOfRange::Clip),
            "null" => Some(OutOfRange::Null),
            "error" => Some(OutOfRange::Error),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OutOfRange::Keep => "keep",
            OutOfRange::Clip => "clip",
            OutOfRange::Null => "null",
            OutOfRange::Error => "error",
        }
    }
}

/// What `one_hot` does with a category it was not fitted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unknown {
    /// An error that names the category (`handle_unknown='error'`).
    #[default]
    Error,
    /// All zeros (`'ignore'`).
    Ignore,
    /// The infrequent categories' column if there is one, else all zeros
    /// (`'infrequent_if_exist'`).
    Infrequent,
}

impl Unknown {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "error" => Some(Unknown::Error),
            "ignore" => Some(Unknown::Ignore),
            "infrequent" => Some(Unknown::Infrequent),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Unknown::Error => "error",
            Unknown::Ignore => "ignore",
            Unknown::Infrequent => "infrequent",
        }
    }
}

/// How `bucketize` places its edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinStrategy {
    /// At quantiles of the values, computed exactly.
    Quantile(QuantileMethod),
    /// Evenly between the least and greatest value.
    Uniform,
}

/// numpy's percentile methods that scikit-learn's `KBinsDiscretizer` offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuantileMethod {
    /// scikit-learn's default since 1.9: the average of the two values around an exact
    /// rank, else the value above.
    #[default]
    AveragedInvertedCdf,
    /// The value at the rank: `inverted_cdf`.
    InvertedCdf,
    /// Interpolated between the two values around (n − 1)·q: `linear`, numpy's default.
    Linear,
}

impl QuantileMethod {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "averaged_inverted_cdf" => Some(QuantileMethod::AveragedInvertedCdf),
            "inverted_cdf" => Some(QuantileMethod::InvertedCdf),
            "linear" => Some(QuantileMethod::Linear),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            QuantileMethod::AveragedInvertedCdf => "averaged_inverted_cdf",
            QuantileMethod::InvertedCdf => "inverted_cdf",
            QuantileMethod::Linear => "linear",
        }
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

/// The DESCRIPTION and TAGS clauses groups, models and encoders share, when given.
fn shared_clauses(
    f: &mut fmt::Formatter<'_>,
    description: Option<&str>,
    given: &[(Ident, String)],
) -> fmt::Result {
    if let Some(description) = description {
        write!(f, " DESCRIPTION {}", quoted(description))?;
    }
    if !given.is_empty() {
        write!(f, " TAGS ({})", tags(given))?;
    }
    Ok(())
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
