//! Tables of the Glue Data Catalog as DataFusion sources: `glue.<database>.<table>`, the way
//! Athena users know them. Partitioned tables read only the partitions that the query's
//! filters on partition columns select, each from its own location.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use aws_sdk_glue::Client;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;

use super::hive_types::arrow_type;
use crate::AwsContext;
use crate::error::from_aws_sdk_error;

/// The Glue Data Catalog as a DataFusion catalog. Its databases and tables are looked up
/// when a query names them, asynchronously; nothing is listed up front.
#[derive(Debug)]
pub struct GlueSourceCatalog {
    client: Client,
}

impl GlueSourceCatalog {
    pub fn new(aws: &AwsContext) -> Self {
        GlueSourceCatalog {
            client: Client::new(&aws.config),
        }
    }
}

impl CatalogProvider for GlueSourceCatalog {
    /// Listing every database would block planning on Glue; tables are found by name.
    fn schema_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(Arc::new(GlueDatabase {
            client: self.client.clone(),
            name: name.to_string(),
        }))
    }
}

#[derive(Debug)]
struct GlueDatabase {
    client: Client,
    name: String,
}

fn external(message: String) -> DataFusionError {
    DataFusionError::External(message.into())
}

#[async_trait]
impl SchemaProvider for GlueDatabase {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let output = match self
            .client
            .get_table()
            .database_name(&self.name)
            .name(name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(external(from_aws_sdk_error("Glue", "GetTable", &e))),
        };
        let Some(table) = output.table() else {
            return Ok(None);
        };
        Ok(Some(Arc::new(GlueTable::try_new(
            self.client.clone(),
            &self.name,
            table,
        )?)))
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}

/// A Glue table: its columns, then its partition keys, read with the format its SerDe names.
#[derive(Debug)]
struct GlueTable {
    client: Client,
    database: String,
    name: String,
    schema: SchemaRef,
    data_schema: SchemaRef,
    partition_keys: Vec<Field>,
    location: String,
    format: Arc<dyn FileFormat>,
}

impl GlueTable {
    fn try_new(client: Client, database: &str, table: &aws_sdk_glue::types::Table) -> Result<Self> {
        let qualified = format!("glue table '{database}.{}'", table.name());
        let descriptor = table
            .storage_descriptor()
            .ok_or_else(|| external(format!("{qualified} has no storage descriptor")))?;
        let fields = |columns: &[aws_sdk_glue::types::Column]| -> Result<Vec<Field>> {
            columns
                .iter()
                .map(|c| {
                    let data_type = arrow_type(c.r#type().unwrap_or_default()).map_err(|e| {
                        external(format!("{qualified}, column '{}': {e}", c.name()))
                    })?;
                    Ok(Field::new(c.name(), data_type, true))
                })
                .collect()
        };
        let data_fields = fields(descriptor.columns())?;
        let partition_keys = fields(table.partition_keys())?;
        let schema = Schema::new([data_fields.clone(), partition_keys.clone()].concat());
        Ok(GlueTable {
            client,
            database: database.to_string(),
            name: table.name().to_string(),
            schema: Arc::new(schema),
            data_schema: Arc::new(Schema::new(data_fields)),
            partition_keys,
            location: descriptor
                .location()
                .ok_or_else(|| external(format!("{qualified} has no location")))?
                .to_string(),
            format: file_format(descriptor, table, &qualified)?,
        })
    }

    /// The files of one location, read as this table's data columns.
    fn listing(&self, location: &str) -> Result<ListingTable> {
        let mut location = location
            .replace("s3a://", "s3://")
            .replace("s3n://", "s3://");
        if !location.ends_with('/') {
            location.push('/');
        }
        let options = ListingOptions::new(self.format.clone()).with_file_extension("");
        let config = ListingTableConfig::new(ListingTableUrl::parse(&location)?)
            .with_listing_options(options)
            .with_schema(self.data_schema.clone());
        ListingTable::try_new(config)
    }

    /// The partitions that `filters` may select, as (values, location).
    async fn partitions(&self, filters: &[Expr]) -> Result<Vec<(Vec<String>, String)>> {
        let expression = partition_expression(filters, &self.partition_keys);
        let mut partitions = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .client
                .get_partitions()
                .database_name(&self.database)
                .table_name(&self.name)
                .set_expression(expression.clone())
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| external(from_aws_sdk_error("Glue", "GetPartitions", &e)))?;
            for partition in page.partitions() {
                let location = partition
                    .storage_descriptor()
                    .and_then(|d| d.location())
                    .ok_or_else(|| {
                        external(format!(
                            "glue table '{}.{}': partition {:?} has no location",
                            self.database,
                            self.name,
                            partition.values()
                        ))
                    })?;
                partitions.push((partition.values().to_vec(), location.to_string()));
            }
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                return Ok(partitions);
            }
        }
    }
}

fn file_format(
    descriptor: &aws_sdk_glue::types::StorageDescriptor,
    table: &aws_sdk_glue::types::Table,
    qualified: &str,
) -> Result<Arc<dyn FileFormat>> {
    let serde = descriptor.serde_info();
    let library = serde
        .and_then(|s| s.serialization_library())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let input = descriptor
        .input_format()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let parameter = |name: &str| {
        serde
            .and_then(|s| s.parameters())
            .and_then(|p| p.get(name))
            .map(String::as_str)
    };
    if library.contains("parquet") || input.contains("parquet") {
        return Ok(Arc::new(ParquetFormat::default()));
    }
    if library.contains("json") {
        return Ok(Arc::new(JsonFormat::default()));
    }
    if library.contains("lazysimpleserde") || library.contains("opencsvserde") {
        let delimiter = parameter("field.delim")
            .or(parameter("separatorChar"))
            .unwrap_or(",");
        let header = table
            .parameters()
            .and_then(|p| p.get("skip.header.line.count"))
            .is_some_and(|n| n == "1");
        let [delimiter] = delimiter.as_bytes() else {
            return Err(external(format!(
                "{qualified}: the delimiter '{delimiter}' is not one byte"
            )));
        };
        return Ok(Arc::new(
            CsvFormat::default()
                .with_delimiter(*delimiter)
                .with_has_header(header),
        ));
    }
    Err(external(format!(
        "{qualified} is stored with SerDe '{library}' and input format '{input}'; fengine reads \
         Parquet, CSV and JSON tables"
    )))
}

#[async_trait]
impl TableProvider for GlueTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter is re-applied above the scan; filters on partition keys also choose the
    /// partitions, and the others prune Parquet row groups.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let data_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs()
                    .iter()
                    .all(|c| self.data_schema.field_with_name(&c.name).is_ok())
            })
            .cloned()
            .collect();
        if self.partition_keys.is_empty() {
            return self
                .listing(&self.location)?
                .scan(state, projection, &data_filters, limit)
                .await;
        }
        let wanted: Vec<usize> = projection
            .cloned()
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let data_columns = self.data_schema.fields().len();
        let data_projection: Vec<usize> = wanted
            .iter()
            .copied()
            .filter(|&i| i < data_columns)
            .collect();
        let mut scans = Vec::new();
        for (values, location) in self.partitions(filters).await? {
            let data = self
                .listing(&location)?
                .scan(state, Some(&data_projection), &data_filters, limit)
                .await?;
            let mut columns = Vec::with_capacity(wanted.len());
            for &index in &wanted {
                let field = self.schema.field(index);
                let expr: Arc<dyn datafusion::physical_expr::PhysicalExpr> = if index < data_columns
                {
                    let position = data_projection
                        .iter()
                        .position(|&i| i == index)
                        .expect("projected");
                    Arc::new(Column::new(field.name(), position))
                } else {
                    let value = &values[index - data_columns];
                    Arc::new(Literal::new(ScalarValue::try_from_string(
                        value.clone(),
                        field.data_type(),
                    )?))
                };
                columns.push((expr, field.name().clone()));
            }
            scans.push(Arc::new(ProjectionExec::try_new(columns, data)?) as Arc<dyn ExecutionPlan>);
        }
        if scans.is_empty() {
            let projected = Arc::new(self.schema.project(&wanted)?);
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(scans)
    }
}

/// A Glue `GetPartitions` expression for the filters on partition keys: comparisons and IN
/// lists with literals, joined by AND. Other filters select nothing here; DataFusion applies
/// them after the scan.
pub(crate) fn partition_expression(filters: &[Expr], partition_keys: &[Field]) -> Option<String> {
    let is_key = |name: &str| partition_keys.iter().find(|f| f.name() == name);
    let literal = |field: &Field, value: &ScalarValue| -> Option<String> {
        if value.is_null() {
            return None;
        }
        let text = value.to_string();
        Some(if field.data_type().is_numeric() {
            text
        } else {
            format!("'{}'", text.replace('\'', "''"))
        })
    };
    let mut terms = Vec::new();
    for expr in filters.iter().flat_map(|f| split_conjunction(f)) {
        let term = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let symbol = match op {
                    Operator::Eq => "=",
                    Operator::NotEq => "<>",
                    Operator::Lt => "<",
                    Operator::LtEq => "<=",
                    Operator::Gt => ">",
                    Operator::GtEq => ">=",
                    _ => continue,
                };
                match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _)) => is_key(&c.name)
                        .and_then(|f| literal(f, v))
                        .map(|v| format!("{} {symbol} {v}", c.name)),
                    _ => None,
                }
            }
            Expr::InList(list) if !list.negated => match list.expr.as_ref() {
                Expr::Column(c) => is_key(&c.name).and_then(|f| {
                    let values = list
                        .list
                        .iter()
                        .map(|e| match e {
                            Expr::Literal(v, _) => literal(f, v),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()?;
                    Some(format!("{} IN ({})", c.name, values.join(", ")))
                }),
                _ => None,
            },
            _ => None,
        };
        terms.extend(term);
    }
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::DataType;
    use datafusion::logical_expr::{col, lit};

    use super::*;

    #[test]
    fn partition_filters_become_a_glue_expression() {
        let keys = [
            Field::new("dt", DataType::Utf8, true),
            Field::new("hour", DataType::Int32, true),
        ];
        let filters = [
            col("dt")
                .gt_eq(lit("2024-03-01"))
                .and(col("hour").in_list(vec![lit(1), lit(2)], false)),
            col("amount").gt(lit(10.0)),
            col("dt").not_eq(lit("it's")),
        ];
        assert_eq!(
            partition_expression(&filters, &keys).as_deref(),
            Some("dt >= '2024-03-01' AND hour IN (1, 2) AND dt <> 'it''s'")
        );
        assert_eq!(
            partition_expression(&[col("amount").gt(lit(1))], &keys),
            None
        );
    }
}
