//! Encoders: transforms of columns fitted once on all the rows of a query (or a training
//! set), kept as versioned catalogue objects, and applied the same way wherever features are
//! read, so that training and serving never transform apart.
//!
//! Each transform has scikit-learn's semantics and fitted attributes, named as its
//! estimator names them (`mean`, `var`, `scale` of a `StandardScaler`; `data_min`,
//! `data_max`, `scale`, `min` of a `MinMaxScaler`; `categories` of a `OneHotEncoder`;
//! `bin_edges` of a `KBinsDiscretizer`), so that an exported encoder reads as the
//! estimator's attributes do. Nulls and NaN are missing values: left out of every fit, and
//! missing after every transform (null stays null; NaN stays NaN through the scalers, as
//! numpy carries it).

mod apply;
mod fit;
mod function;
mod onnx;
mod registry;

pub use apply::{encode_batch, encode_row};
pub use fit::Fitter;
pub(crate) use function::encode_udf;
pub use onnx::onnx_model;
pub use registry::{EncoderDetail, FittedOn, SnapshotRead, show_encoder};
pub(crate) use registry::{EncoderRecord, encoder_versions, write_encoder};

use fengine_dialect::{OutOfRange, QuantileMethod, Unknown};
use serde::{Deserialize, Serialize};

/// A fitted encoder's parameters: one fitted transform per column, in the order declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderParameters {
    pub transforms: Vec<Fitted>,
}

/// One fitted transform, named after the function that declared it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fitted {
    StandardScale(StandardScale),
    MinMax(MinMax),
    Log1p(Log1p),
    OneHot(OneHot),
    Bucketize(Bucketize),
}

impl Fitted {
    /// The column the transform reads.
    pub fn column(&self) -> &str {
        match self {
            Fitted::StandardScale(t) => &t.column,
            Fitted::MinMax(t) => &t.column,
            Fitted::Log1p(t) => &t.column,
            Fitted::OneHot(t) => &t.column,
            Fitted::Bucketize(t) => &t.column,
        }
    }

    /// The columns it writes: the column itself, or a column per category.
    pub fn outputs(&self) -> Vec<String> {
        match self {
            Fitted::OneHot(one_hot) => one_hot.output_names(),
            other => vec![other.column().to_string()],
        }
    }
}

/// `StandardScaler`: (x − mean) / scale, scale the population standard deviation, or 1
/// for a column scikit-learn finds constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardScale {
    pub column: String,
    /// The Arrow type of the column fitted on: an online row's JSON number is read as it
    /// (a float32 feature's shortest decimal is not its value as a float64).
    pub input_type: String,
    pub mean: f64,
    pub var: f64,
    pub scale: f64,
    /// The values fitted on (nulls and NaN aside): `n_samples_seen_`.
    pub count: u64,
    /// The range fitted on, for `out_of_range`.
    pub data_min: f64,
    pub data_max: f64,
    #[serde(with = "out_of_range")]
    pub out_of_range: OutOfRange,
}

/// `MinMaxScaler` to [0, 1]: x · scale + min.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    pub column: String,
    /// The Arrow type of the column fitted on: an online row's JSON number is read as it
    /// (a float32 feature's shortest decimal is not its value as a float64).
    pub input_type: String,
    pub data_min: f64,
    pub data_max: f64,
    pub scale: f64,
    pub min: f64,
    #[serde(with = "out_of_range")]
    pub out_of_range: OutOfRange,
}

/// ln(1 + x); its range is x > −1 (numpy gives −inf at −1 and NaN below).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log1p {
    pub column: String,
    /// The Arrow type of the column fitted on: an online row's JSON number is read as it
    /// (a float32 feature's shortest decimal is not its value as a float64).
    pub input_type: String,
    #[serde(with = "out_of_range")]
    pub out_of_range: OutOfRange,
}

/// `OneHotEncoder`: a 0/1 column per frequent category, in sorted order, then one for the
/// infrequent ones if `max_categories` left any out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneHot {
    pub column: String,
    /// Every category fitted on, sorted: `categories_`.
    pub categories: Vec<String>,
    /// Those `max_categories` groups into one column, sorted: `infrequent_categories_`.
    pub infrequent: Vec<String>,
    #[serde(with = "unknown")]
    pub unknown: Unknown,
}

impl OneHot {
    /// The frequent categories, each with a column of its own.
    pub fn frequent(&self) -> impl Iterator<Item = &String> {
        self.categories
            .iter()
            .filter(|c| self.infrequent.binary_search(c).is_err())
    }

    /// `<column>_<category>`, then `<column>_infrequent` (scikit-learn's
    /// `get_feature_names_out`, but for its `_sklearn` suffix).
    pub fn output_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .frequent()
            .map(|c| format!("{}_{c}", self.column))
            .collect();
        if !self.infrequent.is_empty() {
            names.push(format!("{}_infrequent", self.column));
        }
        names
    }
}

/// `KBinsDiscretizer(encode='ordinal')`: the bucket of x, 0 to n − 1, found among the inner
/// edges as numpy's `searchsorted(side='right')` finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucketize {
    pub column: String,
    /// The Arrow type of the column fitted on: an online row's JSON number is read as it
    /// (a float32 feature's shortest decimal is not its value as a float64).
    pub input_type: String,
    /// `bin_edges_`: n + 1 ascending edges, the outer ones the least and greatest value
    /// fitted on (−inf and inf for a constant column, which has one bucket).
    #[serde(with = "extended_edges")]
    pub bin_edges: Vec<f64>,
    /// "quantile" or "uniform".
    pub strategy: String,
    /// The percentile method of the quantile strategy.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "quantile_method"
    )]
    pub quantile_method: Option<QuantileMethod>,
    #[serde(with = "out_of_range")]
    pub out_of_range: OutOfRange,
}

/// The dialect's option values, written in JSON by the names the pipeline gives them.
macro_rules! named_option {
    ($module:ident, $type:ty) => {
        mod $module {
            use serde::{Deserialize, Deserializer, Serializer, de::Error};

            pub(super) fn serialize<S: Serializer>(
                value: &$type,
                to: S,
            ) -> Result<S::Ok, S::Error> {
                to.serialize_str(value.name())
            }

            pub(super) fn deserialize<'de, D: Deserializer<'de>>(
                from: D,
            ) -> Result<$type, D::Error> {
                let name = String::deserialize(from)?;
                <$type>::parse(&name)
                    .ok_or_else(|| D::Error::custom(format!("unknown value '{name}'")))
            }
        }
    };
}

named_option!(out_of_range, fengine_dialect::OutOfRange);
named_option!(unknown, fengine_dialect::Unknown);

mod quantile_method {
    use fengine_dialect::QuantileMethod;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<QuantileMethod>,
        to: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(method) => to.serialize_str(method.name()),
            None => to.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        from: D,
    ) -> Result<Option<QuantileMethod>, D::Error> {
        let name = String::deserialize(from)?;
        QuantileMethod::parse(&name)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("unknown quantile method '{name}'")))
    }
}

/// A constant column's edges are −inf and inf, which JSON has not: written "-inf", "inf".
mod extended_edges {
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub(super) fn serialize<S: Serializer>(edges: &[f64], to: S) -> Result<S::Ok, S::Error> {
        let mut seq = to.serialize_seq(Some(edges.len()))?;
        for edge in edges {
            match edge {
                e if *e == f64::INFINITY => seq.serialize_element("inf")?,
                e if *e == f64::NEG_INFINITY => seq.serialize_element("-inf")?,
                e => seq.serialize_element(e)?,
            }
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Vec<f64>, D::Error> {
        let values = Vec::<serde_json::Value>::deserialize(from)?;
        values
            .into_iter()
            .map(|value| match value {
                serde_json::Value::String(s) if s == "inf" => Ok(f64::INFINITY),
                serde_json::Value::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
                serde_json::Value::Number(n) => n
                    .as_f64()
                    .ok_or_else(|| D::Error::custom(format!("edge {n} is not a number"))),
                other => Err(D::Error::custom(format!("edge {other} is not a number"))),
            })
            .collect()
    }
}
