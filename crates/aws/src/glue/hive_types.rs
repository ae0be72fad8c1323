//! Hive type names, as Glue's columns carry them, to Arrow types.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// The Arrow type of a Hive type name, or why there is none.
pub(crate) fn arrow_type(hive: &str) -> Result<DataType, String> {
    let mut parser = TypeParser {
        text: hive.trim(),
        position: 0,
    };
    let data_type = parser.parse()?;
    if parser.position != parser.text.len() {
        return Err(format!(
            "unexpected '{}' in type '{hive}'",
            &parser.text[parser.position..]
        ));
    }
    Ok(data_type)
}

struct TypeParser<'a> {
    text: &'a str,
    position: usize,
}

impl TypeParser<'_> {
    fn parse(&mut self) -> Result<DataType, String> {
        let name = self.word().to_ascii_lowercase();
        let data_type = match name.as_str() {
            "boolean" => DataType::Boolean,
            "tinyint" => DataType::Int8,
            "smallint" => DataType::Int16,
            "int" | "integer" => DataType::Int32,
            "bigint" => DataType::Int64,
            "float" => DataType::Float32,
            "double" => DataType::Float64,
            "string" => DataType::Utf8,
            "varchar" | "char" => {
                self.numbers()?;
                DataType::Utf8
            }
            "binary" => DataType::Binary,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "decimal" => match self.numbers()?.as_slice() {
                [] => DataType::Decimal128(10, 0),
                [precision] => DataType::Decimal128(*precision as u8, 0),
                [precision, scale] => DataType::Decimal128(*precision as u8, *scale as i8),
                _ => {
                    return Err(format!(
                        "decimal takes a precision and a scale, in '{}'",
                        self.text
                    ));
                }
            },
            "array" => {
                self.expect('<')?;
                let element = self.parse()?;
                self.expect('>')?;
                DataType::List(Arc::new(Field::new("item", element, true)))
            }
            "map" => {
                self.expect('<')?;
                let key = self.parse()?;
                self.expect(',')?;
                let value = self.parse()?;
                self.expect('>')?;
                let entries = Fields::from(vec![
                    Field::new("key", key, false),
                    Field::new("value", value, true),
                ]);
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                )
            }
            "struct" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                loop {
                    let name = self.word().to_string();
                    self.expect(':')?;
                    fields.push(Field::new(name, self.parse()?, true));
                    if !self.eat(',') {
                        break;
                    }
                }
                self.expect('>')?;
                DataType::Struct(Fields::from(fields))
            }
            other => {
                return Err(format!(
                    "Hive type '{other}' has no Arrow equivalent fengine reads"
                ));
            }
        };
        Ok(data_type)
    }

    fn skip_spaces(&mut self) {
        while self.text[self.position..].starts_with(' ') {
            self.position += 1;
        }
    }

    fn word(&mut self) -> &str {
        self.skip_spaces();
        let start = self.position;
        while self.text[self.position..]
            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            self.position += 1;
        }
        &self.text[start..self.position]
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_spaces();
        let found = self.text[self.position..].starts_with(c);
        if found {
            self.position += 1;
        }
        found
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{c}' at position {} of type '{}'",
                self.position, self.text
            ))
        }
    }

    /// `(n[, m])`, if present.
    fn numbers(&mut self) -> Result<Vec<u32>, String> {
        let mut numbers = Vec::new();
        if self.eat('(') {
            loop {
                let word = self.word().to_string();
                numbers
                    .push(word.parse().map_err(|_| {
                        format!("'{word}' is not a number in type '{}'", self.text)
                    })?);
                if !self.eat(',') {
                    break;
                }
            }
            self.expect(')')?;
        }
        Ok(numbers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hive_types_to_arrow() {
        assert_eq!(arrow_type("bigint"), Ok(DataType::Int64));
        assert_eq!(arrow_type("varchar(20)"), Ok(DataType::Utf8));
        assert_eq!(
            arrow_type("decimal(12, 2)"),
            Ok(DataType::Decimal128(12, 2))
        );
        let tags = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        let record = DataType::Struct(Fields::from(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("tags", tags, true),
        ]));
        assert_eq!(
            arrow_type("array<struct<n:int, tags:array<string>>>"),
            Ok(DataType::List(Arc::new(Field::new("item", record, true))))
        );
        assert!(
            arrow_type("map<string,double>")
                .unwrap()
                .to_string()
                .starts_with("Map(")
        );
        assert_eq!(
            arrow_type("uniontype<int,string>"),
            Err("Hive type 'uniontype' has no Arrow equivalent fengine reads".into())
        );
    }
}
