//! The pipeline parser: DataFusion's parser, with fengine's statements recognised by their
//! first words the way `DFParser` recognises `CREATE EXTERNAL TABLE`.

use std::path::Path;

use datafusion_common::DataFusionError;
use datafusion_sql::parser::{DFParser, DFParserBuilder};
use datafusion_sql::sqlparser::ast::{Ident, Value};
use datafusion_sql::sqlparser::parser::ParserError;
use datafusion_sql::sqlparser::tokenizer::{Location, Token};

use crate::depth::{self, MAX_EXPRESSION_DEPTH};
use crate::error::{ParseError, Result};
use crate::statement::{
    BinStrategy, CreateEncoder, CreateFeatureGroup, CreateModel, DriftMeasure, EncoderTransform,
    Expectation, FeatureComment, FeatureUse, FitOn, Include, OnlineOptions, OutOfRange,
    QuantileMethod, Rule, Statement, Transform, Unknown,
};

/// A parsed statement and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedStatement {
    pub statement: Statement,
    pub line: u64,
    pub column: u64,
}

/// Parses the text of one pipeline file; `file` is only used in error messages.
/// `INCLUDE` statements are returned as they are: [`crate::load_pipeline`] resolves them.
pub fn parse_sql(file: &Path, sql: &str) -> Result<Vec<LocatedStatement>> {
    let start = Location { line: 1, column: 1 };
    let mut parser = PipelineParser {
        file,
        sql,
        inner: DFParserBuilder::new(sql)
            .build()
            .map_err(|e| located_datafusion_error(file, sql, &e, start))?,
    };
    parser.parse_statements()
}

struct PipelineParser<'a> {
    file: &'a Path,
    sql: &'a str,
    inner: DFParser<'a>,
}

impl PipelineParser<'_> {
    fn parse_statements(&mut self) -> Result<Vec<LocatedStatement>> {
        let mut statements = Vec::new();
        loop {
            while self.inner.parser.consume_token(&Token::SemiColon) {}
            let next = self.inner.parser.peek_token();
            if next.token == Token::EOF {
                return Ok(statements);
            }
            let start = next.span.start;
            let statement = self.parse_statement(start)?;
            if depth::too_deep(&statement) {
                // Dropping it would recurse as deep as it nests: the process ends on this
                // error anyway.
                std::mem::forget(statement);
                return Err(self.error_at(
                    start,
                    format!(
                        "an expression of this statement nests more than {MAX_EXPRESSION_DEPTH} levels deep \
                         (a chain such as a + b + c nests a level per operator), deeper than \
                         fengine plans: split it over several columns or views"
                    ),
                ));
            }
            statements.push(LocatedStatement {
                statement,
                line: start.line,
                column: start.column,
            });
            let after = self.inner.parser.peek_token();
            if !matches!(after.token, Token::SemiColon | Token::EOF) {
                return Err(self.error_at(
                    after.span.start,
                    format!("expected ';' after the statement, found {}", after.token),
                ));
            }
        }
    }

    fn parse_statement(&mut self, start: Location) -> Result<Statement> {
        if self.peek_words(&["INCLUDE"]) {
            self.inner.parser.next_token();
            return Ok(Statement::Include(self.parse_include()?));
        }
        if self.peek_words(&["CREATE", "FEATURE", "GROUP"]) {
            for _ in 0..3 {
                self.inner.parser.next_token();
            }
            return Ok(Statement::CreateFeatureGroup(Box::new(
                self.parse_create_feature_group()?,
            )));
        }
        if self.peek_words(&["CREATE", "MODEL"]) {
            for _ in 0..2 {
                self.inner.parser.next_token();
            }
            return Ok(Statement::CreateModel(self.parse_create_model(start)?));
        }
        if self.peek_words(&["CREATE", "ENCODER"]) {
            for _ in 0..2 {
                self.inner.parser.next_token();
            }
            return Ok(Statement::CreateEncoder(Box::new(
                self.parse_create_encoder(start)?,
            )));
        }
        if self.peek_words(&["CREATE", "FEATURE"]) {
            let at = self.inner.parser.peek_nth_token(2);
            return Err(self.error_at(
                at.span.start,
                format!("expected GROUP after CREATE FEATURE, found {}", at.token),
            ));
        }
        self.inner
            .parse_statement()
            .map(|statement| Statement::Sql(Box::new(statement)))
            .map_err(|e| located_datafusion_error(self.file, self.sql, &e, self.fallback(start)))
    }

    /// `INCLUDE '<path>'`
    fn parse_include(&mut self) -> Result<Include> {
        let path = self.expect_string("a quoted file path after INCLUDE")?;
        Ok(Include { path })
    }

    fn parse_create_feature_group(&mut self) -> Result<CreateFeatureGroup> {
        let name = self.expect_ident("the feature group's name")?;
        let mut shared = SharedClauses::default();
        let mut key = None;
        let mut event_time = None;
        let mut features = None;
        let mut online = None;
        let mut expectations = Vec::new();
        let as_location;
        loop {
            let clause = self.inner.parser.peek_token();
            let at = clause.span.start;
            if self.consume_words(&["AS"]) {
                as_location = at;
                break;
            } else if self.parse_shared_clause(&mut shared, at)? {
            } else if self.consume_words(&["KEY"]) {
                let columns = self.parse_parenthesized(|p| p.expect_ident("a key column"))?;
                set_once(&mut key, columns, "KEY", at, self)?;
            } else if self.consume_words(&["EVENT", "TIME"]) {
                let column = self.expect_ident("the event-time column after EVENT TIME")?;
                set_once(&mut event_time, column, "EVENT TIME", at, self)?;
            } else if self.consume_words(&["FEATURES"]) {
                let comments = self.parse_parenthesized(|p| p.parse_feature_comment())?;
                set_once(&mut features, comments, "FEATURES", at, self)?;
            } else if self.consume_words(&["ONLINE"]) {
                let options = self.parse_online_options()?;
                set_once(&mut online, options, "ONLINE", at, self)?;
            } else if self.consume_words(&["EXPECT"]) {
                let expectation = self.parse_expectation(at)?;
                if let Some(same) = expectations
                    .iter()
                    .find(|e: &&Expectation| e.name() == expectation.name())
                {
                    return Err(self.error_at(
                        at,
                        format!(
                            "expectation '{}' is given twice (first at line {}); name them \
                             apart with EXPECT <name> AS ...",
                            expectation.name(),
                            same.line
                        ),
                    ));
                }
                expectations.push(expectation);
            } else {
                return Err(self.error_at(
                    at,
                    format!(
                        "expected a clause of CREATE FEATURE GROUP (VERSION, KEY, EVENT TIME, \
                         DESCRIPTION, TAGS, FEATURES, ONLINE, EXPECT) or AS, found {}",
                        clause.token
                    ),
                ));
            }
        }
        let key = key.ok_or_else(|| {
            self.error_at(
                as_location,
                format!(
                    "feature group '{}' needs a KEY (<column>, ...) clause",
                    name.value
                ),
            )
        })?;
        let event_time = event_time.ok_or_else(|| {
            self.error_at(
                as_location,
                format!(
                    "feature group '{}' needs an EVENT TIME <column> clause",
                    name.value
                ),
            )
        })?;
        let query_start = self.inner.parser.peek_token().span.start;
        let query = self.inner.parser.parse_query().map_err(|e| {
            located_parser_error(self.file, self.sql, &e, self.fallback(query_start))
        })?;
        Ok(CreateFeatureGroup {
            name,
            version: shared.version.unwrap_or(1),
            key,
            event_time,
            description: shared.description,
            tags: shared.tags.unwrap_or_default(),
            features: features.unwrap_or_default(),
            online: online.unwrap_or_default(),
            expectations,
            query,
        })
    }

    fn parse_create_model(&mut self, start: Location) -> Result<CreateModel> {
        let name = self.expect_ident("the model's name")?;
        let mut shared = SharedClauses::default();
        let mut uses = None;
        loop {
            let clause = self.inner.parser.peek_token();
            let at = clause.span.start;
            if matches!(clause.token, Token::SemiColon | Token::EOF) {
                break;
            } else if self.parse_shared_clause(&mut shared, at)? {
            } else if self.consume_words(&["USES"]) {
                let features = self.parse_parenthesized(|p| p.parse_feature_use())?;
                set_once(&mut uses, features, "USES", at, self)?;
            } else {
                return Err(self.error_at(
                    at,
                    format!(
                        "expected a clause of CREATE MODEL (VERSION, USES, DESCRIPTION, TAGS), \
                         found {}",
                        clause.token
                    ),
                ));
            }
        }
        let uses = uses.ok_or_else(|| {
            self.error_at(
                start,
                format!(
                    "model '{}' needs a USES (<group>.<feature>, ...) clause",
                    name.value
                ),
            )
        })?;
        Ok(CreateModel {
            name,
            version: shared.version.unwrap_or(1),
            uses,
            description: shared.description,
            tags: shared.tags.unwrap_or_default(),
        })
    }

    fn parse_create_encoder(&mut self, start: Location) -> Result<CreateEncoder> {
        let name = self.expect_ident("the encoder's name")?;
        let mut shared = SharedClauses::default();
        let mut fit_on = None;
        let mut transforms = None;
        loop {
            let clause = self.inner.parser.peek_token();
            let at = clause.span.start;
            if matches!(clause.token, Token::SemiColon | Token::EOF) {
                break;
            } else if self.parse_shared_clause(&mut shared, at)? {
            } else if self.consume_words(&["FIT", "ON"]) {
                let rows = self.parse_fit_on()?;
                set_once(&mut fit_on, rows, "FIT ON", at, self)?;
            } else if clause.token == Token::LParen {
                let parsed = self.parse_parenthesized(|p| p.parse_encoder_transform())?;
                if let Some(twice) = parsed.iter().enumerate().find_map(|(i, t)| {
                    let column = t.column_name();
                    parsed[..i]
                        .iter()
                        .any(|earlier| earlier.column_name() == column)
                        .then_some(t)
                }) {
                    return Err(self.error_at(
                        Location {
                            line: twice.line,
                            column: twice.column_number,
                        },
                        format!(
                            "column '{}' is transformed twice: an encoder transforms each \
                             column once",
                            twice.column_name()
                        ),
                    ));
                }
                set_once(&mut transforms, parsed, "the transforms", at, self)?;
            } else {
                return Err(self.error_at(
                    at,
                    format!(
                        "expected a clause of CREATE ENCODER (VERSION, FIT ON, (<transform>, \
                         ...), DESCRIPTION, TAGS), found {}",
                        clause.token
                    ),
                ));
            }
        }
        let missing =
            |what: &str| self.error_at(start, format!("encoder '{}' needs {what}", name.value));
        let fit_on = fit_on.ok_or_else(|| {
            missing(
                "a FIT ON (<query>) or FIT ON '<Parquet file>' clause: the rows it is fitted on",
            )
        })?;
        let transforms = transforms.ok_or_else(|| {
            missing("its transforms, as (standard_scale(<column>), one_hot(<column>), ...)")
        })?;
        Ok(CreateEncoder {
            name,
            version: shared.version.unwrap_or(1),
            fit_on,
            transforms,
            description: shared.description,
            tags: shared.tags.unwrap_or_default(),
        })
    }

    /// What follows `FIT ON`: `(<query>)` or `'<Parquet file or folder>'`.
    fn parse_fit_on(&mut self) -> Result<FitOn> {
        if let Token::SingleQuotedString(_) = self.inner.parser.peek_token().token {
            return Ok(FitOn::Files(self.expect_string("a quoted path")?));
        }
        self.expect_token(
            &Token::LParen,
            "'(' and a query, or a quoted Parquet file, after FIT ON",
        )?;
        let query_start = self.inner.parser.peek_token().span.start;
        let query = self.inner.parser.parse_query().map_err(|e| {
            located_parser_error(self.file, self.sql, &e, self.fallback(query_start))
        })?;
        self.expect_token(&Token::RParen, "')' after the query")?;
        Ok(FitOn::Query(query))
    }

    /// `<function>(<column> [, <option> => <value>] ...)`
    fn parse_encoder_transform(&mut self) -> Result<EncoderTransform> {
        let start = self.inner.parser.peek_token().span.start;
        let function =
            self.expect_ident("a transform: standard_scale, min_max, log1p, one_hot or bucketize")?;
        self.expect_token(&Token::LParen, "'(' after the transform")?;
        let column = self.expect_ident("the column to transform")?;
        let mut options = TransformOptions::default();
        while self.inner.parser.consume_token(&Token::Comma) {
            let name = self.expect_ident("an option's name")?;
            self.expect_token(&Token::RArrow, "'=>' after the option's name")?;
            let value = self.inner.parser.next_token();
            let name_lower = name.value.to_ascii_lowercase();
            if options.given.iter().any(|(n, ..)| *n == name_lower) {
                return Err(self.error_at(
                    name.span.start,
                    format!("option '{name_lower}' is given twice"),
                ));
            }
            options
                .given
                .push((name_lower, name.span.start, value.token, value.span.start));
        }
        self.expect_token(&Token::RParen, "',' or ')' after the transform's options")?;
        let transform = self.transform(&function, &mut options)?;
        if let Some((name, at, ..)) = options.given.first() {
            return Err(self.error_at(
                *at,
                format!(
                    "{} takes no option '{name}'",
                    function.value.to_ascii_lowercase()
                ),
            ));
        }
        Ok(EncoderTransform {
            column,
            transform,
            line: start.line,
            column_number: start.column,
        })
    }

    /// The transform `function` names, taking the options it knows from `options`.
    fn transform(&self, function: &Ident, options: &mut TransformOptions) -> Result<Transform> {
        let name = function.value.to_ascii_lowercase();
        let transform = match name.as_str() {
            "standard_scale" => Transform::StandardScale {
                out_of_range: self.out_of_range(options)?,
            },
            "min_max" => Transform::MinMax {
                out_of_range: self.out_of_range(options)?,
            },
            "log1p" => Transform::Log1p {
                out_of_range: self.out_of_range(options)?,
            },
            "one_hot" => Transform::OneHot {
                max_categories: match options.take("max_categories") {
                    Some(given) => Some(self.whole_option(&given, 1)?),
                    None => None,
                },
                unknown: match options.take("unknown") {
                    Some(given) => self.named_option(
                        &given,
                        Unknown::parse,
                        "'error', \
                        'ignore' or 'infrequent'",
                    )?,
                    None => Unknown::default(),
                },
            },
            "bucketize" => {
                let (bins, strategy) = match (options.take("quantiles"), options.take("uniform")) {
                    (Some(given), None) => {
                        let method = match options.take("method") {
                            Some(method) => self.named_option(
                                &method,
                                QuantileMethod::parse,
                                "'averaged_inverted_cdf', 'inverted_cdf' or 'linear'",
                            )?,
                            None => QuantileMethod::default(),
                        };
                        (self.whole_option(&given, 2)?, BinStrategy::Quantile(method))
                    }
                    (None, Some(given)) => (self.whole_option(&given, 2)?, BinStrategy::Uniform),
                    (Some(_), Some(given)) => {
                        return Err(self.error_at(
                            given.1,
                            "bucketize takes quantiles => <n> or uniform => <n>, not both"
                                .to_string(),
                        ));
                    }
                    (None, None) => {
                        return Err(self.error_at(
                            function.span.start,
                            "bucketize needs its number of buckets: quantiles => <n> (edges at \
                             quantiles) or uniform => <n> (evenly spaced)"
                                .to_string(),
                        ));
                    }
                };
                Transform::Bucketize {
                    bins,
                    strategy,
                    out_of_range: self.out_of_range(options)?,
                }
            }
            _ => {
                return Err(self.error_at(
                    function.span.start,
                    format!(
                        "unknown transform '{name}': the transforms are standard_scale, \
                         min_max, log1p, one_hot and bucketize"
                    ),
                ));
            }
        };
        Ok(transform)
    }

    fn out_of_range(&self, options: &mut TransformOptions) -> Result<OutOfRange> {
        match options.take("out_of_range") {
            Some(given) => self.named_option(
                &given,
                OutOfRange::parse,
                "'keep', 'clip', 'null' or 'error'",
            ),
            None => Ok(OutOfRange::default()),
        }
    }

    /// An option's value, a whole number of at least `least`.
    fn whole_option(&self, given: &GivenOption, least: u32) -> Result<u32> {
        let (name, _, value, at) = given;
        match value {
            Token::Number(text, _) => text.parse::<u32>().ok().filter(|n| *n >= least),
            _ => None,
        }
        .ok_or_else(|| {
            self.error_at(
                *at,
                format!("expected a whole number of at least {least} for {name}, found {value}"),
            )
        })
    }

    /// An option's value, a quoted name `parse` knows.
    fn named_option<T>(
        &self,
        given: &GivenOption,
        parse: impl Fn(&str) -> Option<T>,
        known: &str,
    ) -> Result<T> {
        let (name, _, value, at) = given;
        match value {
            Token::SingleQuotedString(text) => parse(text),
            _ => None,
        }
        .ok_or_else(|| self.error_at(*at, format!("expected {known} for {name}, found {value}")))
    }

    /// A clause groups and models share (VERSION, DESCRIPTION, TAGS), if one comes next.
    fn parse_shared_clause(&mut self, shared: &mut SharedClauses, at: Location) -> Result<bool> {
        if self.consume_words(&["VERSION"]) {
            let value = self.expect_version()?;
            set_once(&mut shared.version, value, "VERSION", at, self)?;
        } else if self.consume_words(&["DESCRIPTION"]) {
            let text = self.expect_string("a quoted description after DESCRIPTION")?;
            set_once(&mut shared.description, text, "DESCRIPTION", at, self)?;
        } else if self.consume_words(&["TAGS"]) {
            let pairs = self.parse_parenthesized(|p| p.parse_tag())?;
            set_once(&mut shared.tags, pairs, "TAGS", at, self)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// `<group>[@<version>].<feature>`
    fn parse_feature_use(&mut self) -> Result<FeatureUse> {
        let mut group =
            self.expect_ident("a feature group in USES, as <group>[@<version>].<feature>")?;
        let mut version = None;
        // The tokenizer reads `spend@2` as one word.
        if group.quote_style.is_none()
            && let Some((name, number)) = group.value.clone().rsplit_once('@')
        {
            let mut at = group.span.start;
            at.column += name.chars().count() as u64 + 1;
            version =
                Some(
                    number
                        .parse::<u32>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| {
                            self.error_at(
                    at,
                    format!("expected a positive whole version after '{name}@', found {number}"),
                )
                        })?,
                );
            group.value = name.to_string();
        }
        self.expect_token(&Token::Period, "'.' and a feature after the group")?;
        let feature = self.expect_ident("a feature name after the group")?;
        Ok(FeatureUse {
            group,
            version,
            feature,
        })
    }

    fn expect_version(&mut self) -> Result<u32> {
        let token = self.inner.parser.next_token();
        let version = match &token.token {
            Token::Number(text, _) => text.parse::<u32>().ok().filter(|v| *v > 0),
            _ => None,
        };
        version.ok_or_else(|| {
            self.error_at(
                token.span.start,
                format!(
                    "expected a positive whole number after VERSION, found {}",
                    token.token
                ),
            )
        })
    }

    /// `<key> = '<value>'`
    fn parse_tag(&mut self) -> Result<(Ident, String)> {
        let key = self.expect_ident("a tag name")?;
        self.expect_token(&Token::Eq, "'=' after the tag name")?;
        let value = self.expect_string("a quoted tag value")?;
        Ok((key, value))
    }

    /// `<column> COMMENT '<text>'`
    fn parse_feature_comment(&mut self) -> Result<FeatureComment> {
        let column = self.expect_ident("a feature column")?;
        if !self.consume_words(&["COMMENT"]) {
            let found = self.inner.parser.peek_token();
            return Err(self.error_at(
                found.span.start,
                format!(
                    "expected COMMENT '<text>' after feature '{}', found {}",
                    column.value, found.token
                ),
            ));
        }
        let comment = self.expect_string("a quoted comment after COMMENT")?;
        Ok(FeatureComment { column, comment })
    }

    /// What follows `EXPECT` (written at `at`): `[<name> AS] <rule> [MOSTLY <share>] [WARN]`.
    fn parse_expectation(&mut self, at: Location) -> Result<Expectation> {
        let given_name = match self.peek_word_at(1, "AS") {
            true => {
                let name = self.expect_ident("the expectation's name")?;
                self.inner.parser.next_token();
                Some(name)
            }
            false => None,
        };
        let rule_at = self.inner.parser.peek_token().span.start;
        let rule = self.parse_rule()?;
        let mut mostly = None;
        let mut warn = None;
        loop {
            let option = self.inner.parser.peek_token().span.start;
            if self.consume_words(&["MOSTLY"]) {
                if !rule.is_per_row() {
                    return Err(self.error_at(
                        option,
                        format!(
                            "MOSTLY is the share of rows that must pass a rule checked row by \
                             row; `{rule}` is checked on the whole snapshot"
                        ),
                    ));
                }
                let share = self.expect_share()?;
                set_once(&mut mostly, share, "MOSTLY", option, self)?;
            } else if self.consume_words(&["WARN"]) {
                set_once(&mut warn, (), "WARN", option, self)?;
            } else {
                break;
            }
        }
        if let Rule::Rows { low, high } = rule
            && low > high
        {
            return Err(self.error_at(
                rule_at,
                format!("ROWS BETWEEN {low} AND {high}: the lower bound is above the upper"),
            ));
        }
        Ok(Expectation {
            given_name,
            rule,
            mostly,
            warn: warn.is_some(),
            line: at.line,
            column: at.column,
        })
    }

    fn parse_rule(&mut self) -> Result<Rule> {
        if self.inner.parser.peek_token().token == Token::LParen {
            self.inner.parser.next_token();
            let start = self.inner.parser.peek_token().span.start;
            let condition =
                self.inner.parser.parse_expr().map_err(|e| {
                    located_parser_error(self.file, self.sql, &e, self.fallback(start))
                })?;
            self.expect_token(&Token::RParen, "')' after the condition")?;
            return Ok(Rule::Condition(Box::new(condition)));
        }
        if self.consume_words(&["NOT", "NULL"]) {
            let columns = self.parse_parenthesized(|p| p.expect_ident("a column"))?;
            return Ok(Rule::NotNull(columns));
        }
        if self.consume_words(&["RANGE"]) {
            let column = self.expect_ident("a column after RANGE")?;
            self.expect_word("BETWEEN", "BETWEEN after the column")?;
            let low = self.expect_literal("the lower bound")?;
            self.expect_word("AND", "AND after the lower bound")?;
            let high = self.expect_literal("the upper bound")?;
            return Ok(Rule::Range { column, low, high });
        }
        if self.consume_words(&["VALUES"]) {
            let column = self.expect_ident("a column after VALUES")?;
            self.expect_word("IN", "IN after the column")?;
            let values = self.parse_parenthesized(|p| p.expect_literal("a value"))?;
            return Ok(Rule::Values { column, values });
        }
        if self.consume_words(&["ROWS"]) {
            self.expect_word("BETWEEN", "BETWEEN after ROWS")?;
            let low = self.expect_count()?;
            self.expect_word("AND", "AND after the lower bound")?;
            let high = self.expect_count()?;
            return Ok(Rule::Rows { low, high });
        }
        if self.consume_words(&["FRESHNESS"]) {
            let column = self.expect_ident("a column after FRESHNESS")?;
            self.expect_word("WITHIN", "WITHIN after the column")?;
            let within = self.expect_string("a quoted length of time such as '2 days'")?;
            return Ok(Rule::Freshness { column, within });
        }
        if self.consume_words(&["DRIFT"]) {
            let column = self.expect_ident("a column after DRIFT")?;
            let found = self.inner.parser.next_token();
            let measure = match &found.token {
                Token::Word(word) => DriftMeasure::parse(&word.value),
                _ => None,
            };
            let measure = measure.ok_or_else(|| {
                self.error_at(
                    found.span.start,
                    format!(
                        "expected the measure of drift after the column: PSI, KS or SHARE, \
                         found {}",
                        found.token
                    ),
                )
            })?;
            self.expect_token(&Token::Lt, "'<' after the measure")?;
            let limit = self.expect_limit()?;
            return Ok(Rule::Drift {
                column,
                measure,
                limit,
            });
        }
        let found = self.inner.parser.peek_token();
        Err(self.error_at(
            found.span.start,
            format!(
                "expected a rule after EXPECT: (<condition>), NOT NULL, RANGE, VALUES, ROWS, \
                 FRESHNESS or DRIFT, found {}",
                found.token
            ),
        ))
    }

    /// A drift's limit: a number above 0.
    fn expect_limit(&mut self) -> Result<f64> {
        let token = self.inner.parser.next_token();
        let limit = match &token.token {
            Token::Number(text, _) => text
                .parse::<f64>()
                .ok()
                .filter(|l| *l > 0.0 && l.is_finite()),
            _ => None,
        };
        limit.ok_or_else(|| {
            self.error_at(
                token.span.start,
                format!(
                    "expected the limit of the drift after '<', a number above 0 (0.2), found {}",
                    token.token
                ),
            )
        })
    }

    /// A number, possibly negative, a quoted string, TRUE or FALSE.
    fn expect_literal(&mut self, what: &str) -> Result<Value> {
        let token = self.inner.parser.next_token();
        let literal = match &token.token {
            Token::Minus => match self.inner.parser.next_token().token {
                Token::Number(digits, long) => Some(Value::Number(format!("-{digits}"), long)),
                _ => None,
            },
            Token::Number(digits, long) => Some(Value::Number(digits.clone(), *long)),
            Token::SingleQuotedString(text) => Some(Value::SingleQuotedString(text.clone())),
            Token::Word(word) if word.quote_style.is_none() => {
                match word.value.to_ascii_uppercase().as_str() {
                    "TRUE" => Some(Value::Boolean(true)),
                    "FALSE" => Some(Value::Boolean(false)),
                    _ => None,
                }
            }
            _ => None,
        };
        literal.ok_or_else(|| {
            self.error_at(
                token.span.start,
                format!(
                    "expected {what}: a number, a quoted string, TRUE or FALSE, found {}",
                    token.token
                ),
            )
        })
    }

    fn expect_count(&mut self) -> Result<u64> {
        let token = self.inner.parser.next_token();
        let count = match &token.token {
            Token::Number(text, _) => text.parse::<u64>().ok(),
            _ => None,
        };
        count.ok_or_else(|| {
            self.error_at(
                token.span.start,
                format!("expected a whole number of rows, found {}", token.token),
            )
        })
    }

    /// A share of rows: above 0, at most 1.
    fn expect_share(&mut self) -> Result<f64> {
        let token = self.inner.parser.next_token();
        let share = match &token.token {
            Token::Number(text, _) => text.parse::<f64>().ok().filter(|s| *s > 0.0 && *s <= 1.0),
            _ => None,
        };
        share.ok_or_else(|| {
            self.error_at(
                token.span.start,
                format!(
                    "expected the share of rows that must pass after MOSTLY, a number above 0 \
                     and at most 1 (0.99), found {}",
                    token.token
                ),
            )
        })
    }

    /// `(ttl = '<interval>')`
    fn parse_online_options(&mut self) -> Result<OnlineOptions> {
        let options = self.parse_parenthesized(|p| {
            let option = p.inner.parser.peek_token();
            let name = p.expect_ident("an ONLINE option")?;
            if !name.value.eq_ignore_ascii_case("ttl") {
                return Err(p.error_at(
                    option.span.start,
                    format!(
                        "unknown ONLINE option '{}': the known option is ttl",
                        name.value
                    ),
                ));
            }
            p.expect_token(&Token::Eq, "'=' after ttl")?;
            p.expect_string("a quoted interval such as '30 days' after ttl =")
        })?;
        Ok(OnlineOptions {
            ttl: options.into_iter().last(),
        })
    }

    /// `( <item> [, ...] )`, at least one item.
    fn parse_parenthesized<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.expect_token(&Token::LParen, "'('")?;
        let mut items = vec![item(self)?];
        while self.inner.parser.consume_token(&Token::Comma) {
            items.push(item(self)?);
        }
        self.expect_token(&Token::RParen, "',' or ')'")?;
        Ok(items)
    }

    fn expect_ident(&mut self, what: &str) -> Result<Ident> {
        let token = self.inner.parser.next_token();
        match token.token {
            Token::Word(word) => Ok(Ident {
                value: word.value,
                quote_style: word.quote_style,
                span: token.span,
            }),
            other => {
                Err(self.error_at(token.span.start, format!("expected {what}, found {other}")))
            }
        }
    }

    fn expect_string(&mut self, what: &str) -> Result<String> {
        let token = self.inner.parser.next_token();
        match token.token {
            Token::SingleQuotedString(text) => Ok(text),
            other => {
                Err(self.error_at(token.span.start, format!("expected {what}, found {other}")))
            }
        }
    }

    fn expect_token(&mut self, expected: &Token, what: &str) -> Result<()> {
        let token = self.inner.parser.next_token();
        if token.token == *expected {
            Ok(())
        } else {
            Err(self.error_at(
                token.span.start,
                format!("expected {what}, found {}", token.token),
            ))
        }
    }

    /// Whether the next tokens are these unquoted words, in any case.
    fn peek_words(&self, words: &[&str]) -> bool {
        words
            .iter()
            .enumerate()
            .all(|(n, word)| self.peek_word_at(n, word))
    }

    /// Whether the `n`th token from here (0 the next) is this unquoted word, in any case.
    fn peek_word_at(&self, n: usize, word: &str) -> bool {
        matches!(&self.inner.parser.peek_nth_token_ref(n).token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
    }

    fn expect_word(&mut self, word: &str, what: &str) -> Result<()> {
        match self.consume_words(&[word]) {
            true => Ok(()),
            false => {
                let found = self.inner.parser.peek_token();
                Err(self.error_at(
                    found.span.start,
                    format!("expected {what}, found {}", found.token),
                ))
            }
        }
    }

    fn consume_words(&mut self, words: &[&str]) -> bool {
        let found = self.peek_words(words);
        if found {
            for _ in words {
                self.inner.parser.next_token();
            }
        }
        found
    }

    /// Where an error without a location of its own is reported: the end of the text when
    /// the parser stopped there, otherwise the start of what was being parsed.
    fn fallback(&self, start: Location) -> Location {
        if self.inner.parser.peek_token().token == Token::EOF {
            Location { line: 0, column: 0 }
        } else {
            start
        }
    }

    fn error_at(&self, at: Location, message: String) -> ParseError {
        let at = or_end_of_text(self.sql, at);
        ParseError::new(self.file, self.sql, at.line, at.column, message)
    }
}

/// An option of a transform as written: its name (lower case) and where, its value and
/// where.
type GivenOption = (String, Location, Token, Location);

/// A transform's options not yet taken by the transform they belong to.
#[derive(Default)]
struct TransformOptions {
    given: Vec<GivenOption>,
}

impl TransformOptions {
    fn take(&mut self, name: &str) -> Option<GivenOption> {
        let index = self.given.iter().position(|(n, ..)| n == name)?;
        Some(self.given.remove(index))
    }
}

/// The clauses feature groups and models share, as parsed so far.
#[derive(Default)]
struct SharedClauses {
    version: Option<u32>,
    description: Option<String>,
    tags: Option<Vec<(Ident, String)>>,
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    clause: &str,
    at: Location,
    parser: &PipelineParser<'_>,
) -> Result<()> {
    if slot.is_some() {
        return Err(parser.error_at(at, format!("{clause} is given more than once")));
    }
    *slot = Some(value);
    Ok(())
}

fn located_datafusion_error(
    file: &Path,
    sql: &str,
    error: &DataFusionError,
    fallback: Location,
) -> ParseError {
    match error.find_root() {
        DataFusionError::SQL(parser_error, _) => {
            located_parser_error(file, sql, parser_error, fallback)
        }
        other => {
            let message = other.message().to_string();
            let (message, location) =
                split_location(&message).unwrap_or((message.as_str(), fallback));
            let location = or_end_of_text(sql, location);
            ParseError::new(file, sql, location.line, location.column, message)
        }
    }
}

/// sqlparser ends its messages with " at Line: L, Column: C"; that location is the error's.
fn located_parser_error(
    file: &Path,
    sql: &str,
    error: &ParserError,
    fallback: Location,
) -> ParseError {
    let message = match error {
        ParserError::TokenizerError(message) | ParserError::ParserError(message) => message.clone(),
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".to_string(),
    };
    let (message, location) = split_location(&message).unwrap_or((message.as_str(), fallback));
    let location = or_end_of_text(sql, location);
    ParseError::new(file, sql, location.line, location.column, message)
}

/// sqlparser places the end of the input at line 0; errors there point just past the last
/// character instead.
fn or_end_of_text(sql: &str, at: Location) -> Location {
    if at.line > 0 {
        return at;
    }
    let line = sql.lines().count().max(1) as u64;
    let column = sql.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
    Location { line, column }
}

fn split_location(message: &str) -> Option<(&str, Location)> {
    let (text, position) = message.rsplit_once(" at Line: ")?;
    let (line, column) = position.split_once(", Column: ")?;
    let line = line.trim().parse().ok()?;
    let column = column.trim().parse().ok()?;
    Some((text, Location { line, column }))
}
