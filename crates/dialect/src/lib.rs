//! The fengine pipeline dialect: every statement DataFusion's SQL accepts, plus
//! `INCLUDE '<file>'`, `CREATE FEATURE GROUP` and `CREATE MODEL`.
//!
//! ```no_run
//! use std::path::Path;
//!
//! let pipeline = fengine_dialect::load_pipeline(Path::new("pipelines/customer_spend.sql"))?;
//! for (group, location) in pipeline.feature_groups() {
//!     println!("{location}: feature group {} keyed by {:?}", group.name(), group.key_columns());
//! }
//! # Ok::<(), fengine_dialect::ParseError>(())
//! ```

mod depth;
mod error;
mod parser;
mod pipeline;
mod statement;

pub use datafusion_sql::parser::Statement as DataFusionStatement;
pub use depth::MAX_EXPRESSION_DEPTH;
pub use error::{ParseError, Result, SourceLocation};
pub use parser::{LocatedStatement, parse_sql};
pub use pipeline::{MAX_FILE_BYTES, Pipeline, PipelineStatement, load_pipeline};
pub use statement::{
    CreateFeatureGroup, CreateModel, DriftMeasure, Expectation, FeatureComment, FeatureUse,
    Include, OnlineOptions, Rule, Statement, normalize_ident,
};
