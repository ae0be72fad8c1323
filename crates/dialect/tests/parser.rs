use std::path::Path;

use fengine_dialect::{
    CreateFeatureGroup, MAX_EXPRESSION_DEPTH, MAX_FILE_BYTES, ParseError, Statement, load_pipeline,
    parse_sql,
};
use rstest::rstest;

fn parse(sql: &str) -> Vec<Statement> {
    parse_sql(Path::new("test.sql"), sql)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|s| s.statement)
        .collect()
}

fn parse_group(sql: &str) -> CreateFeatureGroup {
    match parse(sql).as_slice() {
        [Statement::CreateFeatureGroup(group)] => group.as_ref().clone(),
        other => panic!("expected one feature group, got {other:?}"),
    }
}

fn parse_error(sql: &str) -> ParseError {
    match parse_sql(Path::new("bad.sql"), sql) {
        Ok(statements) => panic!("expected an error, parsed {statements:?}"),
        Err(e) => e,
    }
}

const FULL_CLAUSES: [&str; 7] = [
    "VERSION 3",
    "KEY (customer_id, Merchant_ID)",
    "EVENT TIME event_time",
    "DESCRIPTION 'Spend, per customer''s merchant'",
    "TAGS (team = 'risk', pii = 'false')",
    "FEATURES (spend_7d COMMENT 'sum of amount, last 7 days', n COMMENT 'count')",
    "ONLINE (ttl = '30 days')",
];

fn assert_full_group(group: &CreateFeatureGroup) {
    assert_eq!(group.name(), "spend");
    assert_eq!(group.version, 3);
    assert_eq!(group.key_columns(), ["customer_id", "merchant_id"]);
    assert_eq!(group.event_time_column(), "event_time");
    assert_eq!(
        group.description.as_deref(),
        Some("Spend, per customer's merchant")
    );
    let tags: Vec<(String, &str)> = group
        .tags
        .iter()
        .map(|(k, v)| (k.value.clone(), v.as_str()))
        .collect();
    assert_eq!(
        tags,
        [("team".to_string(), "risk"), ("pii".to_string(), "false")]
    );
    let features: Vec<(String, &str)> = group
        .features
        .iter()
        .map(|f| (f.column_name(), f.comment.as_str()))
        .collect();
    assert_eq!(
        features,
        [
            ("spend_7d".to_string(), "sum of amount, last 7 days"),
            ("n".to_string(), "count")
        ]
    );
    assert_eq!(group.online.ttl.as_deref(), Some("30 days"));
    assert_eq!(
        group.query.to_string(),
        "SELECT customer_id, merchant_id, event_time, 1 AS spend_7d, 2 AS n FROM t"
    );
}

const QUERY: &str = "SELECT customer_id, merchant_id, event_time, 1 AS spend_7d, 2 AS n FROM t";

#[rstest]
#[case::as_documented([0, 1, 2, 3, 4, 5, 6])]
#[case::reversed([6, 5, 4, 3, 2, 1, 0])]
#[case::event_time_first([2, 0, 6, 1, 5, 3, 4])]
#[case::key_last([4, 3, 6, 5, 0, 2, 1])]
#[case::interleaved([5, 2, 4, 1, 6, 0, 3])]
fn clauses_in_any_order(#[case] order: [usize; 7]) {
    let clauses: Vec<&str> = order.iter().map(|&i| FULL_CLAUSES[i]).collect();
    let sql = format!(
        "CREATE FEATURE GROUP spend\n  {}\nAS {QUERY};",
        clauses.join("\n  ")
    );
    assert_full_group(&parse_group(&sql));
}

#[test]
fn optional_clauses_take_their_defaults() {
    let group = parse_group(&format!(
        "create feature group Spend key (customer_id) event time event_time as {QUERY}"
    ));
    assert_eq!(group.name(), "spend");
    assert_eq!(group.version, 1);
    assert_eq!(group.description, None);
    assert!(group.tags.is_empty() && group.features.is_empty());
    assert_eq!(group.online.ttl, None);
}

#[test]
fn quoted_identifiers_keep_their_case() {
    let group = parse_group(&format!(
        r#"CREATE FEATURE GROUP g KEY ("CustomerId") EVENT TIME "Ts" AS {QUERY}"#
    ));
    assert_eq!(group.key_columns(), ["CustomerId"]);
    assert_eq!(group.event_time_column(), "Ts");
}

#[rstest]
#[case::feature_group(&format!("CREATE FEATURE GROUP spend {} AS {QUERY}", FULL_CLAUSES.join(" ")))]
#[case::minimal_group(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t AS SELECT a, t FROM x WHERE t <= as_of()"
)]
#[case::group_with_window(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t AS SELECT a, t, sum(v) OVER (PARTITION BY a \
     ORDER BY t RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW) AS s FROM x"
)]
#[case::include("INCLUDE 'shared/sources.sql'")]
#[case::external_table("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'data/transactions/'")]
#[case::view("CREATE VIEW v AS SELECT a, param('region') AS r FROM t WHERE a > 1")]
#[case::set("SET datafusion.execution.batch_size = 4096")]
#[case::model(
    "CREATE MODEL churn VERSION 2 USES (spend@3.spend_7d, spend.n, \"Risk\".score) \
     DESCRIPTION 'churn in 30 days' TAGS (team = 'risk')"
)]
fn parse_print_parse_round_trips(#[case] sql: &str) {
    let first = parse(sql);
    let printed: Vec<String> = first.iter().map(ToString::to_string).collect();
    let second = parse(&printed.join(";\n"));
    assert_eq!(first.len(), second.len());
    let reprinted: Vec<String> = second.iter().map(ToString::to_string).collect();
    assert_eq!(printed, reprinted);
    if let (Statement::CreateFeatureGroup(a), Statement::CreateFeatureGroup(b)) =
        (&first[0], &second[0])
    {
        assert_eq!(a.name(), b.name());
        assert_eq!(a.key_columns(), b.key_columns());
        assert_eq!(a.tags, b.tags);
        assert_eq!(a.features, b.features);
        assert_eq!(a.online, b.online);
        assert_eq!(a.query.to_string(), b.query.to_string());
    }
}

#[test]
fn statements_of_all_kinds_follow_each_other() {
    let statements = parse(
        "INCLUDE 'a.sql';\n\
         CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'x/';;\n\
         CREATE FEATURE GROUP g KEY (a) EVENT TIME t AS SELECT a, t FROM t;\n\
         CREATE VIEW v AS SELECT 1;\n\
         CREATE MODEL m USES (g.a);\n\
         CREATE ENCODER e FIT ON (SELECT a FROM g) (log1p(a));",
    );
    let kinds: Vec<&str> = statements
        .iter()
        .map(|s| match s {
            Statement::Include(_) => "include",
            Statement::CreateFeatureGroup(_) => "group",
            Statement::CreateModel(_) => "model",
            Statement::CreateEncoder(_) => "encoder",
            Statement::Sql(_) => "sql",
        })
        .collect();
    assert_eq!(
        kinds,
        ["include", "sql", "group", "sql", "model", "encoder"]
    );
}

/// Each malformed form: the message, and the line and column it points at.
#[rstest]
#[case::missing_key(
    "CREATE FEATURE GROUP g\n  EVENT TIME t\nAS SELECT 1",
    3,
    1,
    "feature group 'g' needs a KEY (<column>, ...) clause"
)]
#[case::missing_event_time(
    "CREATE FEATURE GROUP g KEY (a)\nAS SELECT 1",
    2,
    1,
    "feature group 'g' needs an EVENT TIME <column> clause"
)]
#[case::clause_twice(
    "CREATE FEATURE GROUP g KEY (a)\n  EVENT TIME t KEY (b) AS SELECT 1",
    2,
    16,
    "KEY is given more than once"
)]
#[case::version_not_a_number(
    "CREATE FEATURE GROUP g VERSION two KEY (a) EVENT TIME t AS SELECT 1",
    1,
    32,
    "expected a positive whole number after VERSION, found two"
)]
#[case::version_zero(
    "CREATE FEATURE GROUP g VERSION 0 KEY (a) EVENT TIME t AS SELECT 1",
    1,
    32,
    "expected a positive whole number after VERSION, found 0"
)]
#[case::unknown_clause(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t\n  PARTITION (a) AS SELECT 1",
    2,
    3,
    "expected a clause of CREATE FEATURE GROUP (VERSION, KEY, EVENT TIME, DESCRIPTION, TAGS, FEATURES, ONLINE, EXPECT) or AS, found PARTITION"
)]
#[case::empty_key(
    "CREATE FEATURE GROUP g KEY () EVENT TIME t AS SELECT 1",
    1,
    29,
    "expected a key column, found )"
)]
#[case::unclosed_key(
    "CREATE FEATURE GROUP g KEY (a b) EVENT TIME t AS SELECT 1",
    1,
    31,
    "expected ',' or ')', found b"
)]
#[case::tag_without_value(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t TAGS (team = risk) AS SELECT 1",
    1,
    58,
    "expected a quoted tag value, found risk"
)]
#[case::feature_without_comment(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t FEATURES (x 'y') AS SELECT 1",
    1,
    57,
    "expected COMMENT '<text>' after feature 'x', found 'y'"
)]
#[case::unknown_online_option(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t ONLINE (table = 'x') AS SELECT 1",
    1,
    53,
    "unknown ONLINE option 'table': the known option is ttl"
)]
#[case::ttl_not_quoted(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t ONLINE (ttl = 30) AS SELECT 1",
    1,
    59,
    "expected a quoted interval such as '30 days' after ttl =, found 30"
)]
#[case::missing_group_word(
    "CREATE FEATURE g KEY (a) EVENT TIME t AS SELECT 1",
    1,
    16,
    "expected GROUP after CREATE FEATURE, found g"
)]
#[case::no_query(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t AS",
    1,
    47,
    "Expected: SELECT, VALUES, or a subquery in the query body, found: EOF"
)]
#[case::bad_query(
    "CREATE FEATURE GROUP g KEY (a) EVENT TIME t AS\nSELECT a, FROM x WHERE",
    2,
    23,
    "Expected: an expression, found: EOF"
)]
#[case::include_without_path(
    "INCLUDE sources.sql",
    1,
    9,
    "expected a quoted file path after INCLUDE, found sources"
)]
#[case::missing_semicolon(
    "CREATE VIEW v AS SELECT 1\nCREATE VIEW w AS SELECT 2",
    2,
    8,
    "expected ';' after the statement, found VIEW"
)]
#[case::unterminated_string(
    "SELECT 1;\nCREATE VIEW v AS SELECT 'abc",
    2,
    25,
    "Unterminated string literal"
)]
#[case::datafusion_statement(
    "CREATE EXTERNAL TABLE t STORED AS PARQUET",
    1,
    42,
    "Missing LOCATION clause in CREATE EXTERNAL TABLE statement"
)]
#[case::no_uses(
    "CREATE MODEL m DESCRIPTION 'x'",
    1,
    1,
    "model 'm' needs a USES (<group>.<feature>, ...) clause"
)]
#[case::no_feature(
    "CREATE MODEL m USES (spend)",
    1,
    27,
    "expected '.' and a feature after the group, found )"
)]
#[case::bad_version(
    "CREATE MODEL m USES (spend@x.a)",
    1,
    28,
    "expected a positive whole version after 'spend@', found x"
)]
#[case::zero_version(
    "CREATE MODEL m USES (spend@0.a)",
    1,
    28,
    "expected a positive whole version after 'spend@', found 0"
)]
#[case::unknown_clause(
    "CREATE MODEL m USES (g.a) AS SELECT 1",
    1,
    27,
    "expected a clause of CREATE MODEL (VERSION, USES, DESCRIPTION, TAGS), found AS"
)]
#[case::twice(
    "CREATE MODEL m USES (g.a) USES (g.b)",
    1,
    27,
    "USES is given more than once"
)]
fn malformed_statements_are_located(
    #[case] sql: &str,
    #[case] line: u64,
    #[case] column: u64,
    #[case] message: &str,
) {
    let error = parse_error(sql);
    assert_eq!(
        (
            error.message.as_str(),
            error.location.line,
            error.location.column
        ),
        (message, line, column),
        "{error}"
    );
    assert_eq!(error.location.file, Path::new("bad.sql"));
    assert_eq!(
        error.source_line,
        sql.lines().nth(line as usize - 1).unwrap(),
        "the error quotes the offending line"
    );
}

#[test]
fn errors_print_file_line_column_and_a_caret() {
    let error = parse_error("CREATE FEATURE GROUP g KEY (a) EVENT TIME t\n  VERSION x AS SELECT 1");
    assert_eq!(
        error.to_string(),
        "bad.sql:2:11: expected a positive whole number after VERSION, found x\n \
         2 |   VERSION x AS SELECT 1\n   |           ^"
    );
}

/// `1 + 1 + ... + 1`, `depth` deep: its values are the innermost level.
fn sum_of_depth(depth: usize) -> String {
    vec!["1"; depth].join(" + ")
}

/// Each template wraps the sum in `around` levels of its own.
#[rstest]
#[case::in_a_group(
    "CREATE FEATURE GROUP g KEY (k) EVENT TIME t AS SELECT 1 AS k, now() AS t, {} AS x",
    0
)]
#[case::in_a_view("CREATE VIEW v AS SELECT {} AS x", 0)]
#[case::in_a_where("CREATE VIEW v AS SELECT 1 AS x WHERE 0 < {}", 1)]
#[case::in_a_function_argument("CREATE VIEW v AS SELECT abs({}) AS x", 1)]
#[case::in_an_explain("EXPLAIN SELECT {}", 0)]
fn expressions_nested_deeper_than_the_limit_are_refused(
    #[case] template: &str,
    #[case] around: usize,
) {
    let at_limit = template.replace("{}", &sum_of_depth(MAX_EXPRESSION_DEPTH - around));
    parse_sql(Path::new("ok.sql"), &at_limit).unwrap();
    let deeper = template.replace("{}", &sum_of_depth(MAX_EXPRESSION_DEPTH - around + 1));
    let error = parse_error(&format!("SELECT 1;\n{deeper}"));
    let message = error.to_string();
    assert!(
        message.starts_with(
            "bad.sql:2:1: an expression of this statement nests more than 1000 levels deep"
        ),
        "{message}"
    );
    // The quoted line is cut around the column.
    assert!(message.lines().nth(1).unwrap().len() < 140, "{message}");
}

#[test]
fn an_expression_of_a_million_terms_is_refused_without_recursing_through_it() {
    let error = parse_error(&format!("SELECT {}", sum_of_depth(1_000_000)));
    assert!(error.message.contains("nests more than 1000 levels deep"));
}

mod includes {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, sql: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, sql).unwrap();
    }

    /// Editors on Windows start UTF-8 files with a byte order mark.
    #[test]
    fn a_byte_order_mark_at_the_start_of_a_file_is_not_sql() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "main.sql",
            "\u{feff}INCLUDE 'more.sql';\nCREATE VIEW a AS SELECT 1;",
        );
        write(dir.path(), "more.sql", "\u{feff}CREATE VIEW b AS SELECT 2;");
        let pipeline = load_pipeline(&dir.path().join("main.sql")).unwrap();
        assert_eq!(pipeline.statements.len(), 2);
        write(dir.path(), "bad.sql", "\u{feff}SELEC 1;");
        let error = load_pipeline(&dir.path().join("bad.sql")).unwrap_err();
        assert!(error.to_string().contains(":1:1: "), "{error}");
        assert!(!error.to_string().contains('\u{feff}'), "{error}");
    }

    #[test]
    fn are_resolved_relative_to_the_including_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "sql/sources.sql",
            "INCLUDE 'more/views.sql';\nCREATE VIEW a AS SELECT 1;",
        );
        write(
            dir.path(),
            "sql/more/views.sql",
            "CREATE VIEW b AS SELECT 2;",
        );
        write(
            dir.path(),
            "pipelines/p.sql",
            "INCLUDE '../sql/sources.sql';\nCREATE VIEW c AS SELECT 3;",
        );
        let pipeline = load_pipeline(&dir.path().join("pipelines/p.sql")).unwrap();
        let seen: Vec<(String, String, u64)> = pipeline
            .statements
            .iter()
            .map(|s| {
                (
                    s.statement.to_string(),
                    s.location
                        .file
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    s.location.line,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "CREATE VIEW b AS SELECT 2".to_string(),
                    "views.sql".to_string(),
                    1
                ),
                (
                    "CREATE VIEW a AS SELECT 1".to_string(),
                    "sources.sql".to_string(),
                    2
                ),
                (
                    "CREATE VIEW c AS SELECT 3".to_string(),
                    "p.sql".to_string(),
                    2
                ),
            ]
        );
    }

    #[test]
    fn the_same_file_may_be_included_twice_without_a_cycle() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.sql", "CREATE VIEW a AS SELECT 1;");
        write(dir.path(), "p.sql", "INCLUDE 'a.sql'; INCLUDE 'a.sql';");
        assert_eq!(
            load_pipeline(&dir.path().join("p.sql"))
                .unwrap()
                .statements
                .len(),
            2
        );
    }

    #[test]
    fn a_missing_include_points_at_the_include() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "p.sql",
            "CREATE VIEW a AS SELECT 1;\n  INCLUDE 'nope.sql';",
        );
        let error = load_pipeline(&dir.path().join("p.sql")).unwrap_err();
        assert_eq!((error.location.line, error.location.column), (2, 3));
        assert!(error.location.file.ends_with("p.sql"));
        assert!(
            error.message.starts_with("cannot read pipeline file '")
                && error.message.contains("nope.sql': No such file"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_cycle_is_an_error_naming_the_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.sql", "INCLUDE 'b.sql';");
        write(
            dir.path(),
            "b.sql",
            "CREATE VIEW v AS SELECT 1;\nINCLUDE 'a.sql';",
        );
        let error = load_pipeline(&dir.path().join("a.sql")).unwrap_err();
        assert!(error.location.file.ends_with("b.sql"));
        assert_eq!(error.location.line, 2);
        let files: Vec<&str> = error
            .message
            .trim_start_matches("include cycle: ")
            .split(" -> ")
            .map(|f| f.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(files, ["a.sql", "b.sql", "a.sql"]);
    }

    #[test]
    fn only_regular_files_of_a_pipeline_s_size_are_included() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.sql");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::write(
            dir.path().join("huge.sql"),
            vec![b' '; MAX_FILE_BYTES as usize + 1],
        )
        .unwrap();
        for (include, message) in [
            (
                "/dev/zero".to_string(),
                "'/dev/zero' is not a regular file: a pipeline includes only SQL files".to_string(),
            ),
            (
                "fifo.sql".to_string(),
                format!(
                    "'{}' is not a regular file: a pipeline includes only SQL files",
                    fifo.display()
                ),
            ),
            (
                "huge.sql".to_string(),
                format!(
                    "pipeline file '{}' holds 16777217 bytes, more than the 16777216 a \
                     pipeline file may hold: is it SQL?",
                    dir.path().join("huge.sql").display()
                ),
            ),
        ] {
            write(dir.path(), "p.sql", &format!("INCLUDE '{include}';"));
            let error = load_pipeline(&dir.path().join("p.sql")).unwrap_err();
            assert_eq!(error.message, message);
            assert_eq!((error.location.line, error.location.column), (1, 1));
        }
    }

    #[test]
    fn a_missing_pipeline_file_names_it() {
        let error = load_pipeline(Path::new("/nonexistent/p.sql")).unwrap_err();
        assert_eq!(error.location.line, 0);
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/p.sql: cannot read pipeline file")
        );
    }
}

#[test]
fn a_model_names_the_features_it_uses() {
    let statements = parse(
        "CREATE MODEL Churn TAGS (team = 'risk') USES (customer_spend@2.spend_7d, \
         customer_spend . txn_count, \"Risk\".\"Score\") DESCRIPTION 'churn in 30 days';",
    );
    let [Statement::CreateModel(model)] = statements.as_slice() else {
        panic!("expected one model, got {statements:?}");
    };
    assert_eq!(model.name(), "churn");
    assert_eq!(model.version, 1);
    assert_eq!(model.description.as_deref(), Some("churn in 30 days"));
    assert_eq!(model.tags.len(), 1);
    let uses: Vec<(String, Option<u32>, String)> = model
        .uses
        .iter()
        .map(|u| (u.group_name(), u.version, u.feature_name()))
        .collect();
    assert_eq!(
        uses,
        [
            (
                "customer_spend".to_string(),
                Some(2),
                "spend_7d".to_string()
            ),
            ("customer_spend".to_string(), None, "txn_count".to_string()),
            ("Risk".to_string(), None, "Score".to_string()),
        ]
    );
}

mod expectations {
    use fengine_dialect::{Expectation, Rule};

    use super::*;

    fn expectations(clauses: &str) -> Vec<Expectation> {
        parse_group(&format!(
            "CREATE FEATURE GROUP g KEY (a) EVENT TIME t\n{clauses}\nAS SELECT a, t FROM x"
        ))
        .expectations
    }

    #[test]
    fn every_rule_parses_with_its_options_in_any_order() {
        let parsed = expectations(
            "EXPECT spend_ok AS (spend_30d >= 0 OR spend_30d IS NULL) MOSTLY 0.99\n\
             EXPECT NOT NULL (spend_30d, \"Txn\") WARN\n\
             EXPECT RANGE txn_count BETWEEN -5 AND 1e4 WARN MOSTLY 0.5\n\
             EXPECT VALUES category IN ('grocery', 'travel', -1, TRUE)\n\
             EXPECT ROWS BETWEEN 1000 AND 10000000\n\
             expect freshness t within '2 days' warn\n\
             EXPECT (a > 0)\n\
             EXPECT DRIFT spend_30d PSI < 0.2\n\
             EXPECT moved AS drift category share < 0.05 WARN\n\
             EXPECT DRIFT spend_30d KS < 1.5",
        );
        let summary: Vec<(String, String, Option<f64>, bool, u64)> = parsed
            .iter()
            .map(|e| (e.name(), e.rule.to_string(), e.mostly, e.warn, e.line))
            .collect();
        let expected = [
            (
                "spend_ok",
                "(spend_30d >= 0 OR spend_30d IS NULL)",
                Some(0.99),
                false,
                2,
            ),
            (
                "not_null(spend_30d, Txn)",
                "NOT NULL (spend_30d, \"Txn\")",
                None,
                true,
                3,
            ),
            (
                "range(txn_count)",
                "RANGE txn_count BETWEEN -5 AND 1e4",
                Some(0.5),
                true,
                4,
            ),
            (
                "values(category)",
                "VALUES category IN ('grocery', 'travel', -1, true)",
                None,
                false,
                5,
            ),
            ("rows", "ROWS BETWEEN 1000 AND 10000000", None, false, 6),
            ("freshness(t)", "FRESHNESS t WITHIN '2 days'", None, true, 7),
            ("a > 0", "(a > 0)", None, false, 8),
            (
                "drift_psi(spend_30d)",
                "DRIFT spend_30d PSI < 0.2",
                None,
                false,
                9,
            ),
            ("moved", "DRIFT category SHARE < 0.05", None, true, 10),
            (
                "drift_ks(spend_30d)",
                "DRIFT spend_30d KS < 1.5",
                None,
                false,
                11,
            ),
        ];
        let expected: Vec<(String, String, Option<f64>, bool, u64)> = expected
            .into_iter()
            .map(|(n, r, m, w, l)| (n.to_string(), r.to_string(), m, w, l))
            .collect();
        assert_eq!(summary, expected);
        assert!(matches!(
            parsed[4].rule,
            Rule::Rows {
                low: 1000,
                high: 10_000_000
            }
        ));
        assert_eq!(parsed[0].column, 1);
    }

    #[test]
    fn a_rule_may_be_named_and_a_rule_word_may_be_a_name() {
        let parsed = expectations(
            "EXPECT rows AS (a > 0)\n\
             EXPECT few AS ROWS BETWEEN 0 AND 10 WARN",
        );
        let names: Vec<String> = parsed.iter().map(Expectation::name).collect();
        assert_eq!(names, ["rows", "few"]);
        assert!(matches!(parsed[0].rule, Rule::Condition(_)));
        assert!(matches!(parsed[1].rule, Rule::Rows { low: 0, high: 10 }));
    }

    #[test]
    fn expectations_print_back_to_sql_that_parses_the_same() {
        let sql = "CREATE FEATURE GROUP g KEY (a) EVENT TIME t \
                   EXPECT ok AS (a BETWEEN 1 AND 2) MOSTLY 0.9 WARN \
                   EXPECT NOT NULL (a, b) EXPECT RANGE a BETWEEN '2024-01-01' AND '2025-01-01' \
                   EXPECT VALUES c IN ('x', 'y''s') EXPECT ROWS BETWEEN 0 AND 5 \
                   EXPECT FRESHNESS t WITHIN '1 day' EXPECT DRIFT b KS < 0.1 WARN \
                   AS SELECT a, t FROM x";
        let first = parse_group(sql);
        let second = parse_group(&first.to_string());
        let rules = |g: &CreateFeatureGroup| -> Vec<(Option<String>, String, Option<f64>, bool)> {
            g.expectations
                .iter()
                .map(|e| {
                    (
                        e.given_name.as_ref().map(|n| n.value.clone()),
                        e.rule.to_string(),
                        e.mostly,
                        e.warn,
                    )
                })
                .collect()
        };
        assert_eq!(rules(&first), rules(&second));
        assert_eq!(first.to_string(), second.to_string());
        assert_eq!(first.expectations.len(), 7);
    }

    #[rstest]
    #[case::mostly_on_rows(
        "EXPECT ROWS BETWEEN 1 AND 2 MOSTLY 0.5",
        29,
        "MOSTLY is the share of rows that must pass a rule checked row by row; \
         `ROWS BETWEEN 1 AND 2` is checked on the whole snapshot"
    )]
    #[case::mostly_above_one(
        "EXPECT NOT NULL (a) MOSTLY 99",
        28,
        "expected the share of rows that must pass after MOSTLY, a number above 0 and at \
         most 1 (0.99), found 99"
    )]
    #[case::mostly_zero(
        "EXPECT NOT NULL (a) MOSTLY 0",
        28,
        "expected the share of rows that must pass after MOSTLY, a number above 0 and at most 1 (0.99), found 0"
    )]
    #[case::warn_twice("EXPECT NOT NULL (a) WARN WARN", 26, "WARN is given more than once")]
    #[case::same_name(
        "EXPECT NOT NULL (a) EXPECT NOT NULL (a) WARN",
        21,
        "expectation 'not_null(a)' is given twice (first at line 2); name them apart with \
         EXPECT <name> AS ..."
    )]
    #[case::unknown_rule(
        "EXPECT UNIQUE (a)",
        8,
        "expected a rule after EXPECT: (<condition>), NOT NULL, RANGE, VALUES, ROWS, \
         FRESHNESS or DRIFT, found UNIQUE"
    )]
    #[case::drift_unknown_measure(
        "EXPECT DRIFT a PSX < 0.2",
        16,
        "expected the measure of drift after the column: PSI, KS or SHARE, found PSX"
    )]
    #[case::drift_without_a_limit(
        "EXPECT DRIFT a PSI <= 0.2",
        20,
        "expected '<' after the measure, found <="
    )]
    #[case::drift_limit_zero(
        "EXPECT DRIFT a KS < 0",
        21,
        "expected the limit of the drift after '<', a number above 0 (0.2), found 0"
    )]
    #[case::drift_mostly(
        "EXPECT DRIFT a PSI < 0.2 MOSTLY 0.9",
        26,
        "MOSTLY is the share of rows that must pass a rule checked row by row; \
         `DRIFT a PSI < 0.2` is checked on the whole snapshot"
    )]
    #[case::rows_reversed(
        "EXPECT ROWS BETWEEN 10 AND 1",
        8,
        "ROWS BETWEEN 10 AND 1: the lower bound is above the upper"
    )]
    #[case::negative_rows(
        "EXPECT ROWS BETWEEN -1 AND 1",
        21,
        "expected a whole number of rows, found -"
    )]
    #[case::range_of_an_expression(
        "EXPECT RANGE a BETWEEN b AND 1",
        24,
        "expected the lower bound: a number, a quoted string, TRUE or FALSE, found b"
    )]
    #[case::unclosed_condition(
        "EXPECT ok AS (a > 0 WARN",
        21,
        "expected ')' after the condition, found WARN"
    )]
    #[case::freshness_unquoted(
        "EXPECT FRESHNESS t WITHIN 2",
        27,
        "expected a quoted length of time such as '2 days', found 2"
    )]
    fn malformed_expectations_are_located(
        #[case] clause: &str,
        #[case] column: u64,
        #[case] message: &str,
    ) {
        let sql =
            format!("CREATE FEATURE GROUP g KEY (a) EVENT TIME t\n{clause}\nAS SELECT a, t FROM x");
        let error = parse_error(&sql);
        assert_eq!(
            (
                error.message.as_str(),
                error.location.line,
                error.location.column
            ),
            (message, 2, column),
            "{error}"
        );
    }

    #[test]
    fn conditions_nested_deeper_than_the_limit_are_refused() {
        let sql = format!(
            "CREATE FEATURE GROUP g KEY (a) EVENT TIME t EXPECT deep AS ({} > 0) AS SELECT a, t FROM x",
            super::sum_of_depth(MAX_EXPRESSION_DEPTH + 1)
        );
        let error = parse_error(&sql);
        assert!(error.message.contains("nests more than"), "{error}");
    }
}

mod encoders {
    use fengine_dialect::{
        BinStrategy, CreateEncoder, FitOn, OutOfRange, QuantileMethod, Transform, Unknown,
    };

    use super::*;

    fn parse_encoder(sql: &str) -> CreateEncoder {
        match parse(sql).as_slice() {
            [Statement::CreateEncoder(encoder)] => encoder.as_ref().clone(),
            other => panic!("expected one encoder, got {other:?}"),
        }
    }

    const CHURN_INPUTS: &str = "CREATE ENCODER churn_inputs VERSION 2
  FIT ON (SELECT * FROM features.customer_spend)
  (standard_scale(spend_30d), min_max(max_amount_30d, out_of_range => 'clip'),
   log1p(txn_count_30d, out_of_range => 'null'),
   one_hot(category, max_categories => 20, unknown => 'ignore'),
   bucketize(spend_7d, quantiles => 10),
   bucketize(spend_1d, quantiles => 4, method => 'linear', out_of_range => 'error'),
   bucketize(\"Age\", uniform => 5))
  DESCRIPTION 'inputs of the churn model' TAGS (team = 'risk')";

    #[test]
    fn every_transform_parses_with_its_options() {
        let encoder = parse_encoder(CHURN_INPUTS);
        assert_eq!(
            (encoder.name().as_str(), encoder.version),
            ("churn_inputs", 2)
        );
        assert!(matches!(encoder.fit_on, FitOn::Query(_)));
        assert_eq!(
            encoder.description.as_deref(),
            Some("inputs of the churn model")
        );
        let transforms: Vec<(String, Transform, u64, u64)> = encoder
            .transforms
            .iter()
            .map(|t| {
                (
                    t.column_name(),
                    t.transform.clone(),
                    t.line,
                    t.column_number,
                )
            })
            .collect();
        assert_eq!(
            transforms,
            [
                (
                    "spend_30d".into(),
                    Transform::StandardScale {
                        out_of_range: OutOfRange::Keep
                    },
                    3,
                    4
                ),
                (
                    "max_amount_30d".into(),
                    Transform::MinMax {
                        out_of_range: OutOfRange::Clip
                    },
                    3,
                    31
                ),
                (
                    "txn_count_30d".into(),
                    Transform::Log1p {
                        out_of_range: OutOfRange::Null
                    },
                    4,
                    4
                ),
                (
                    "category".into(),
                    Transform::OneHot {
                        max_categories: Some(20),
                        unknown: Unknown::Ignore
                    },
                    5,
                    4
                ),
                (
                    "spend_7d".into(),
                    Transform::Bucketize {
                        bins: 10,
                        strategy: BinStrategy::Quantile(QuantileMethod::AveragedInvertedCdf),
                        out_of_range: OutOfRange::Keep
                    },
                    6,
                    4
                ),
                (
                    "spend_1d".into(),
                    Transform::Bucketize {
                        bins: 4,
                        strategy: BinStrategy::Quantile(QuantileMethod::Linear),
                        out_of_range: OutOfRange::Error
                    },
                    7,
                    4
                ),
                (
                    "Age".into(),
                    Transform::Bucketize {
                        bins: 5,
                        strategy: BinStrategy::Uniform,
                        out_of_range: OutOfRange::Keep
                    },
                    8,
                    4
                ),
            ]
        );
    }

    #[test]
    fn encoders_print_back_to_sql_that_parses_the_same() {
        let strip = |mut e: CreateEncoder| {
            for t in &mut e.transforms {
                (t.line, t.column_number) = (0, 0);
            }
            (
                e.name(),
                e.version,
                e.fit_on.clone(),
                e.transforms,
                e.description,
                e.tags.len(),
            )
        };
        for sql in [
            CHURN_INPUTS,
            "CREATE ENCODER e FIT ON 'sets/train.parquet' (one_hot(c, unknown => 'infrequent'))",
        ] {
            let encoder = parse_encoder(sql);
            let printed = encoder.to_string();
            let reparsed = parse_encoder(&printed);
            let (mut a, mut b) = (strip(encoder), strip(reparsed));
            // Spans of the query's identifiers differ between the two texts.
            (a.2, b.2) = (FitOn::Files(String::new()), FitOn::Files(String::new()));
            assert_eq!(a, b, "{printed}");
        }
        let file = parse_encoder("CREATE ENCODER e FIT ON 'train.parquet' (log1p(x))");
        assert_eq!(file.fit_on, FitOn::Files("train.parquet".into()));
    }

    #[rstest]
    #[case::unknown_transform(
        "(scale(x))",
        2,
        "unknown transform 'scale': the transforms are standard_scale, min_max, log1p, one_hot \
         and bucketize"
    )]
    #[case::unknown_option("(log1p(x, clip => 'yes'))", 11, "log1p takes no option 'clip'")]
    #[case::option_twice(
        "(min_max(x, out_of_range => 'clip', out_of_range => 'null'))",
        37,
        "option 'out_of_range' is given twice"
    )]
    #[case::bad_out_of_range(
        "(min_max(x, out_of_range => 'wrap'))",
        29,
        "expected 'keep', 'clip', 'null' or 'error' for out_of_range, found 'wrap'"
    )]
    #[case::bad_unknown(
        "(one_hot(c, unknown => 'infrequent_if_exist'))",
        24,
        "expected 'error', 'ignore' or 'infrequent' for unknown, found 'infrequent_if_exist'"
    )]
    #[case::zero_categories(
        "(one_hot(c, max_categories => 0))",
        31,
        "expected a whole number of at least 1 for max_categories, found 0"
    )]
    #[case::one_bucket(
        "(bucketize(x, quantiles => 1))",
        28,
        "expected a whole number of at least 2 for quantiles, found 1"
    )]
    #[case::no_buckets(
        "(bucketize(x))",
        2,
        "bucketize needs its number of buckets: quantiles => <n> (edges at quantiles) or \
         uniform => <n> (evenly spaced)"
    )]
    #[case::both_strategies(
        "(bucketize(x, quantiles => 4, uniform => 4))",
        31,
        "bucketize takes quantiles => <n> or uniform => <n>, not both"
    )]
    #[case::bad_method(
        "(bucketize(x, quantiles => 4, method => 'nearest'))",
        41,
        "expected 'averaged_inverted_cdf', 'inverted_cdf' or 'linear' for method, found \
         'nearest'"
    )]
    #[case::no_arrow(
        "(log1p(x, out_of_range = 'clip'))",
        24,
        "expected '=>' after the option's name, found ="
    )]
    #[case::twice(
        "(log1p(x), min_max(X))",
        12,
        "column 'x' is transformed twice: an encoder transforms each column once"
    )]
    fn malformed_transforms_are_located(
        #[case] transforms: &str,
        #[case] column: u64,
        #[case] message: &str,
    ) {
        let error = parse_error(&format!(
            "CREATE ENCODER e FIT ON 'x.parquet'\n{transforms}"
        ));
        assert_eq!(
            (
                error.message.as_str(),
                error.location.line,
                error.location.column
            ),
            (message, 2, column),
            "{error}"
        );
    }

    #[rstest]
    #[case::no_fit_on(
        "CREATE ENCODER e (log1p(x))",
        "encoder 'e' needs a FIT ON (<query>) or FIT ON '<Parquet file>' clause: the rows it is \
         fitted on"
    )]
    #[case::no_transforms(
        "CREATE ENCODER e FIT ON 'x.parquet'",
        "encoder 'e' needs its transforms, as (standard_scale(<column>), one_hot(<column>), ...)"
    )]
    #[case::fit_on_unparenthesized(
        "CREATE ENCODER e FIT ON SELECT 1 (log1p(x))",
        "expected '(' and a query, or a quoted Parquet file, after FIT ON, found SELECT"
    )]
    fn incomplete_encoders_are_refused(#[case] sql: &str, #[case] message: &str) {
        let error = parse_error(sql);
        assert_eq!(error.message, message, "{error}");
    }
}
