//! Arrow types as the Hive type names that Glue and Athena use for Parquet columns.

use arrow::datatypes::DataType;

/// The Hive type of an Arrow type, or `None` for types Athena cannot read from Parquet.
pub fn hive_type(data_type: &DataType) -> Option<String> {
    let name = match data_type {
        DataType::Boolean => "boolean".to_string(),
        DataType::Int8 => "tinyint".to_string(),
        DataType::Int16 | DataType::UInt8 => "smallint".to_string(),
        DataType::Int32 | DataType::UInt16 => "int".to_string(),
        DataType::Int64 | DataType::UInt32 => "bigint".to_string(),
        DataType::UInt64 => "decimal(20,0)".to_string(),
        DataType::Float32 => "float".to_string(),
        DataType::Float64 => "double".to_string(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".to_string(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".to_string(),
        DataType::Date32 | DataType::Date64 => "date".to_string(),
        DataType::Timestamp(_, _) => "timestamp".to_string(),
        DataType::Decimal128(precision, scale) if *precision <= 38 => {
            format!("decimal({precision},{scale})")
        }
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::ListView(field)
        | DataType::FixedSizeList(field, _) => {
            format!("array<{}>", hive_type(field.data_type())?)
        }
        DataType::Struct(fields) => {
            let members = fields
                .iter()
                .map(|f| Some(format!("{}:{}", f.name(), hive_type(f.data_type())?)))
                .collect::<Option<Vec<_>>>()?;
            format!("struct<{}>", members.join(","))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                hive_type(kv[0].data_type())?,
                hive_type(kv[1].data_type())?
            ),
            _ => return None,
        },
        DataType::Dictionary(_, value) => hive_type(value)?,
        _ => return None,
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, Fields, TimeUnit};

    use super::*;

    #[test]
    fn names_follow_athena() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
        let record = DataType::Struct(Fields::from(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("tags", list.clone(), true),
        ]));
        let cases = [
            (DataType::Int32, "int"),
            (DataType::Utf8View, "string"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamp",
            ),
            (DataType::Decimal128(12, 2), "decimal(12,2)"),
            (list, "array<double>"),
            (record, "struct<n:bigint,tags:array<double>>"),
        ];
        for (data_type, expected) in cases {
            assert_eq!(
                hive_type(&data_type).as_deref(),
                Some(expected),
                "{data_type}"
            );
        }
        assert_eq!(hive_type(&DataType::Duration(TimeUnit::Second)), None);
    }
}
