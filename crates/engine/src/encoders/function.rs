//! `encode('<encoder>[@<version>]', '<output>', <value>)`: an encoder applied in a
//! pipeline's SQL, one output column per call (`encode('inputs', 'category_grocery',
//! category)` for a one-hot column), with the same arithmetic as every other reader. The
//! encoders a pipeline names are read from the catalogue when its session is made, so that
//! a missing one is an error before any data is read.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Value, Visit, Visitor,
};
use fengine_dialect::{DataFusionStatement, FitOn, Pipeline, SourceLocation, Statement};

use super::registry::show_encoder;
use super::{EncoderParameters, Fitted};
use crate::backends::Backends;
use crate::error::{Error, Result};

const NAME: &str = "encode";

/// The `encode` function of a pipeline's session, knowing the encoders its SQL names.
pub(crate) async fn encode_udf(pipeline: &Pipeline, backends: &Backends) -> Result<ScalarUDF> {
    let mut encoders = BTreeMap::new();
    for (written, location) in named_encoders(pipeline) {
        if encoders.contains_key(&written) {
            continue;
        }
        let (name, version) = match written.rsplit_once('@') {
            Some((name, version)) => match version.parse::<u32>() {
                Ok(v) if v > 0 => (name.to_string(), Some(v)),
                _ => {
                    return Err(Error::plan(
                        &location,
                        format!(
                            "encode('{written}'): the version after '@' must be a positive whole number"
                        ),
                    ));
                }
            },
            None => (written.clone(), None),
        };
        let encoder = show_encoder(backends, &name, version)
            .await?
            .ok_or_else(|| {
                Error::plan(
                    &location,
                    format!(
                        "encode('{written}', ...): no encoder '{name}' is fitted; fit it with \
                     `fengine encoder fit <file.sql>`"
                    ),
                )
            })?;
        encoders.insert(written, (encoder.version, encoder.parameters));
    }
    Ok(ScalarUDF::new_from_impl(Encode {
        encoders,
        signature: Signature::any(3, Volatility::Immutable),
    }))
}

/// The first arguments of the `encode(...)` calls of the pipeline's SQL, as written, and
/// the statement each is in.
fn named_encoders(pipeline: &Pipeline) -> Vec<(String, SourceLocation)> {
    let mut found = Vec::new();
    for statement in &pipeline.statements {
        let mut calls = EncodeCalls::default();
        let _ = match &statement.statement {
            Statement::Sql(sql) => match sql.as_ref() {
                DataFusionStatement::Statement(inner) => inner.visit(&mut calls),
                _ => ControlFlow::Continue(()),
            },
            Statement::CreateFeatureGroup(group) => group.query.visit(&mut calls),
            Statement::CreateEncoder(encoder) => match &encoder.fit_on {
                FitOn::Query(query) => query.visit(&mut calls),
                FitOn::Files(_) => ControlFlow::Continue(()),
            },
            Statement::CreateModel(_) | Statement::Include(_) => ControlFlow::Continue(()),
        };
        found.extend(
            calls
                .names
                .into_iter()
                .map(|name| (name, statement.location.clone())),
        );
    }
    found
}

#[derive(Default)]
struct EncodeCalls {
    names: Vec<String>,
}

impl Visitor for EncodeCalls {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &SqlExpr) -> ControlFlow<()> {
        if let SqlExpr::Function(function) = expr
            && function.name.to_string().eq_ignore_ascii_case(NAME)
            && let FunctionArguments::List(list) = &function.args
            && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(value)))) =
                list.args.first()
            && let Value::SingleQuotedString(name) = &value.value
        {
            self.names.push(name.clone());
        }
        ControlFlow::Continue(())
    }
}

/// The loaded encoders, by the name their calls give (`inputs`, `inputs@2`): the version
/// and its parameters.
#[derive(Debug)]
struct Encode {
    encoders: BTreeMap<String, (u32, EncoderParameters)>,
    signature: Signature,
}

// A session holds one `encode`: it equals another of the same encoder versions.
impl PartialEq for Encode {
    fn eq(&self, other: &Self) -> bool {
        self.versions().eq(other.versions())
    }
}

impl Eq for Encode {}

impl Hash for Encode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.versions().for_each(|v| v.hash(state));
    }
}

impl Encode {
    fn versions(&self) -> impl Iterator<Item = (&String, u32)> {
        self.encoders
            .iter()
            .map(|(name, (version, _))| (name, *version))
    }

    /// The transform writing `output` of the encoder `name`, or a planning error.
    fn transform(
        &self,
        name: Option<&ScalarValue>,
        output: Option<&ScalarValue>,
    ) -> datafusion::error::Result<(&Fitted, String)> {
        let (Some(ScalarValue::Utf8(Some(name))), Some(ScalarValue::Utf8(Some(output)))) =
            (name, output)
        else {
            return plan_err!(
                "encode() takes the encoder and the output column as quoted strings: \
                 encode('<encoder>[@<version>]', '<output>', <value>)"
            );
        };
        let Some((version, parameters)) = self.encoders.get(name) else {
            return plan_err!("encode('{name}', ...): the encoder is not loaded");
        };
        match parameters
            .transforms
            .iter()
            .find(|t| t.outputs().contains(output))
        {
            Some(transform) => Ok((transform, output.clone())),
            None => {
                let outputs: Vec<String> = parameters
                    .transforms
                    .iter()
                    .flat_map(Fitted::outputs)
                    .collect();
                plan_err!(
                    "encode('{name}', '{output}', ...): encoder '{name}' v{version} writes no \
                     column '{output}'; it writes {}",
                    outputs.join(", ")
                )
            }
        }
    }
}

impl ScalarUDFImpl for Encode {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Float64)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        let arguments = args.scalar_arguments;
        self.transform(
            arguments.first().copied().flatten(),
            arguments.get(1).copied().flatten(),
        )?;
        Ok(Arc::new(Field::new(self.name(), DataType::Float64, true)))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [
            ColumnarValue::Scalar(name),
            ColumnarValue::Scalar(output),
            values,
        ] = &args.args[..]
        else {
            return exec_err!("encode() takes the encoder and the output column as quoted strings");
        };
        let (transform, output) = self.transform(Some(name), Some(output))?;
        let values = values.to_array(args.number_rows)?;
        match transform.encode_output(&values, &output) {
            Ok(encoded) => Ok(ColumnarValue::Array(Arc::new(encoded))),
            Err(why) => Err(DataFusionError::External(Box::new(Error::Check(format!(
                "encode('{name}', '{output}', ...): {why}"
            ))))),
        }
    }
}
