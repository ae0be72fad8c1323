//! The fengine pipeline dialect: every statement DataFusion's SQL accepts, plus
//! `INCLUDE '<file>'`, `CREATE FEATURE GROUP`, `CREATE MODEL` and `CREATE ENCODER`.
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
    BinStrategy, CreateEncoder, CreateFeatureGroup, CreateModel, DriftMeasure, EncoderTransform,
    Expectation, FeatureComment, FeatureUse, FitOn, Include, OnlineOptions, OutOfRange,
    QuantileMethod, Rule, Statement, Transform, Unknown, normalize_ident,
};
