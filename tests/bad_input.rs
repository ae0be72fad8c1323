//! Bad input: each case gets its own message and exit code, and leaves the warehouse, the
//! catalog and the online store exactly as they were.

mod common;

use std::path::PathBuf;

use common::*;
use rstest::rstest;

const EXIT_NOT_FOUND: i32 = 1;
const EXIT_BAD_INPUT: i32 = 2;
const EXIT_CHECK_FAILED: i32 = 3;

const PAYMENTS_CSV: &str = "\
customer_id,amount,event_time
1,10.0,2024-03-01T10:00:00Z
1,5.5,2024-03-02T11:00:00Z
2,100.0,2024-02-01T00:00:00Z
";

const SOURCE: &str = "\
CREATE EXTERNAL TABLE payments (customer_id BIGINT NOT NULL, amount DOUBLE NOT NULL, event_time TIMESTAMP NOT NULL)
STORED AS CSV LOCATION 'payments.csv' OPTIONS ('format.has_header' 'true');
";

const SPINE: &str = "SELECT 1 AS customer_id, TIMESTAMP '2024-03-10 00:00:00' AS t";

fn group(select: &str) -> String {
    format!(
        "{SOURCE}\nCREATE FEATURE GROUP totals KEY (customer_id) EVENT TIME event_time AS\n{select};\n"
    )
}

const GOOD_SELECT: &str = "SELECT customer_id, max(event_time) AS event_time, sum(amount) AS total FROM payments GROUP BY customer_id";

/// A workspace where `good.sql` has already published `totals` and loaded it online.
fn published() -> Workspace {
    let workspace = Workspace::new();
    workspace.write("payments.csv", PAYMENTS_CSV);
    workspace.write("good.sql", &group(GOOD_SELECT));
    workspace
        .fengine(&["run", "good.sql", "--as-of", "2024-03-05T00:00:00Z"])
        .success();
    workspace
}

/// Everything but SQLite's transient journal files.
fn state(workspace: &Workspace) -> Vec<(PathBuf, Vec<u8>)> {
    workspace
        .files()
        .into_iter()
        .filter(|(path, _)| {
            let name = path.to_string_lossy();
            // A released lease keeps its last record (see the engine's lease module): the
            // bookkeeping of who may write, not data.
            !name.ends_with("-wal") && !name.ends_with("-shm") && !name.contains("_fengine/leases/")
        })
        .collect()
}

fn file(path: &'static str, text: impl Into<String>) -> (&'static str, String) {
    (path, text.into())
}

#[rstest]
#[case::malformed_sql(
    vec![file("bad.sql", "CREATE VIEW v AS SELEC 1;")], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:18: Expected: SELECT, VALUES, or a subquery in the query body, found: SELEC\n 1 | CREATE VIEW v AS SELEC 1;\n   |                  ^\n"
)]
#[case::missing_pipeline(
    vec![], &["run", "nope.sql"],
    EXIT_BAD_INPUT, "fengine: nope.sql: cannot read pipeline file 'nope.sql': No such file or directory (os error 2)\n"
)]
#[case::missing_include(
    vec![file("bad.sql", "INCLUDE 'sql/missing.sql';")], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: cannot read pipeline file 'sql/missing.sql': No such file or directory (os error 2)\n 1 | INCLUDE 'sql/missing.sql';\n   | ^\n"
)]
#[case::include_cycle(
    vec![file("bad.sql", "INCLUDE 'other.sql';"), file("other.sql", "INCLUDE 'bad.sql';")], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: other.sql:1:1: include cycle: <ws>/bad.sql -> <ws>/other.sql -> <ws>/bad.sql\n 1 | INCLUDE 'bad.sql';\n   | ^\n"
)]
#[case::missing_key_column(
    vec![file("bad.sql", group("SELECT max(event_time) AS event_time, sum(amount) AS total FROM payments"))], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals': KEY column 'customer_id' is not in the query's output (columns: event_time, total)\n"
)]
#[case::key_of_a_float_type(
    vec![file("bad.sql", group("SELECT amount AS customer_id, event_time FROM payments"))], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals': KEY column 'customer_id' is of type Float64; a key must be a whole number, a string or a date\n"
)]
#[case::event_time_not_a_timestamp(
    vec![file("bad.sql", group("SELECT customer_id, CAST(max(event_time) AS DATE) AS event_time FROM payments GROUP BY customer_id"))], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals': EVENT TIME column 'event_time' is of type Date32; it must be a timestamp (CAST it AS TIMESTAMP)\n"
)]
#[case::null_key(
    vec![file("bad.sql", group("SELECT CASE WHEN customer_id = 2 THEN NULL ELSE customer_id END AS customer_id, max(event_time) AS event_time, sum(amount) AS total FROM payments GROUP BY 1"))],
    &["run", "bad.sql", "--as-of", "2024-03-06T00:00:00Z"],
    EXIT_CHECK_FAILED, "fengine: feature group 'totals': a row has a null key or event time (customer_id=NULL, event_time=2024-02-01T00:00:00); every row needs its KEY and EVENT TIME. Nothing of this group was published\n"
)]
#[case::repeated_key_and_event_time(
    vec![file("bad.sql", group("SELECT customer_id, as_of() AS event_time, amount AS total FROM payments"))],
    &["run", "bad.sql", "--as-of", "2024-03-06T00:00:00Z"],
    EXIT_CHECK_FAILED, "fengine: feature group 'totals': several rows share a key and event time (customer_id=1, event_time=2024-03-06T00:00:00Z); a group holds one row per key and event time. Nothing of this group was published\n"
)]
// Rows sorted by key and time (a rolling window's) are checked as they are written.
#[case::repeated_key_and_event_time_in_a_rolling_window(
    vec![
        file("payments.csv", "customer_id,amount,event_time\n1,10.0,2024-03-01T10:00:00Z\n2,1.0,2024-03-01T10:00:00Z\n1,5.5,2024-03-01T10:00:00Z\n"),
        file("bad.sql", group("SELECT customer_id, event_time, sum(amount) OVER (PARTITION BY customer_id ORDER BY event_time RANGE BETWEEN INTERVAL '1 day' PRECEDING AND CURRENT ROW) AS total FROM payments")),
    ],
    &["run", "bad.sql", "--as-of", "2024-03-06T00:00:00Z"],
    EXIT_CHECK_FAILED, "fengine: feature group 'totals': several rows share a key and event time (customer_id=1, event_time=2024-03-01T10:00:00); a group holds one row per key and event time. Nothing of this group was published\n"
)]
// A query that fails while its rows are being written leaves no file behind.
#[case::query_fails_while_writing(
    vec![file("bad.sql", group("SELECT customer_id, event_time, CAST(CAST(amount AS VARCHAR) || 'x' AS DOUBLE) AS total FROM payments"))],
    &["run", "bad.sql", "--as-of", "2024-03-06T00:00:00Z"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals': Cast error: Cannot cast string '10.0x' to value of Float64 type\n"
)]
#[case::unknown_param(
    vec![file("bad.sql", group("SELECT customer_id, max(event_time) AS event_time, sum(amount) AS total FROM payments WHERE amount > param('min_amount') GROUP BY customer_id"))],
    &["run", "bad.sql", "--param", "max_amount=3"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals': unknown parameter 'min_amount' in param('min_amount'): pass --param min_amount=<value> (given: max_amount)\n"
)]
#[case::unknown_column(
    vec![file("bad.sql", group("SELECT customer_id, event_tme AS event_time FROM payments"))], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals': No field named event_tme. Did you mean 'payments.event_time'?\nValid fields are payments.customer_id, payments.amount, payments.event_time.\n"
)]
#[case::duplicate_group(
    vec![file("bad.sql", format!("{}\nCREATE FEATURE GROUP totals KEY (customer_id) EVENT TIME event_time AS {GOOD_SELECT};", group(GOOD_SELECT)))],
    &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:7:1: feature group 'totals' is defined twice: first at bad.sql:4:1\n"
)]
#[case::schema_change_without_a_new_version(
    vec![file("bad.sql", group("SELECT customer_id, max(event_time) AS event_time, count(*) AS total FROM payments GROUP BY customer_id"))],
    &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals' version 1 changes the schema of a published version: table 'fengine.totals_v1' has columns (customer_id bigint, event_time timestamp, total double), the new snapshot has (customer_id bigint, event_time timestamp, total bigint). Bump VERSION to publish the new schema as a new table\n"
)]
#[case::missing_source(
    vec![file("bad.sql", "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'data/nowhere/';")], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: source 't' at '<ws>/data/nowhere/': No files found at file://<ws>/data/nowhere/. Cannot infer schema from an empty location; either add data files or declare an explicit schema for the table.\n"
)]
#[case::unreadable_source(
    vec![file("data/broken.parquet", "this is not parquet"), file("bad.sql", "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'data/';")],
    &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: source 't' at '<ws>/data/': Parquet error: Invalid Parquet file. Corrupt footer\n"
)]
#[case::query_outside_a_group(
    vec![file("bad.sql", format!("{SOURCE}SELECT * FROM payments;"))], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:3:1: only statements that define sources, views and settings (CREATE EXTERNAL TABLE, CREATE VIEW, SET, ...) may stand alone in a pipeline; put queries in a CREATE FEATURE GROUP\n"
)]
#[case::no_feature_group(
    vec![file("bad.sql", SOURCE)], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql defines no feature group or model: add a CREATE FEATURE GROUP statement\n"
)]
#[case::ttl_in_months(
    vec![file("bad.sql", group(GOOD_SELECT).replace("EVENT TIME event_time", "EVENT TIME event_time ONLINE (ttl = '1 month')"))],
    &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: feature group 'totals': ONLINE ttl '1 month' uses months, whose length varies; give days instead\n"
)]
#[case::as_of_not_rfc3339(
    vec![], &["run", "good.sql", "--as-of", "yesterday"],
    EXIT_BAD_INPUT, "error: invalid value 'yesterday' for '--as-of <AS_OF>': 'yesterday' is not an RFC 3339 time such as 2024-03-01T00:00:00Z\n\nFor more information, try '--help'.\n"
)]
#[case::as_of_with_a_fraction(
    vec![], &["run", "good.sql", "--as-of", "2024-03-06T00:00:00.5Z"],
    EXIT_BAD_INPUT, "fengine: the as-of 2024-03-06T00:00:00.500+00:00 has a fraction of a second; snapshots are named by whole seconds\n"
)]
#[case::unknown_profile(
    vec![file("fengine.toml", "[profiles.dev]\nwarehouse = 'warehouse'\n")], &["run", "good.sql", "--profile", "prod"],
    EXIT_BAD_INPUT, "fengine: profile 'prod' is not defined in 'fengine.toml' (profiles: dev)\n"
)]
#[case::malformed_profile(
    vec![file("fengine.toml", "[profiles.default]\nwarehose = 'warehouse'\n")], &["run", "good.sql"],
    EXIT_BAD_INPUT, "fengine: config file 'fengine.toml' is malformed: TOML parse error at line 2, column 1\n  |\n2 | warehose = 'warehouse'\n  | ^^^^^^^^\nunknown field `warehose`, expected one of `warehouse`, `catalog`, `catalog_path`, `database`, `glue_database`, `online`, `online_path`, `s3_sse_kms_key_id`, `dynamodb_table_prefix`, `dynamodb_requests_in_flight`, `glue_catalog_name`, `aws_account_id`, `dynamodb_load_deadline_seconds`, `memory_limit`, `lease_seconds`, `as_of_horizon_hours`\n\n"
)]
#[case::unknown_online_store(
    vec![file("fengine.toml", "[profiles.default]\nonline = 'redis'\n")], &["run", "good.sql"],
    EXIT_BAD_INPUT, "fengine: profile 'default': unknown online 'redis' (expected \"sqlite\" or \"dynamodb\")\n"
)]
#[case::get_with_too_few_key_values(
    vec![], &["get", "totals"],
    EXIT_BAD_INPUT, "error: the following required arguments were not provided:\n  <KEY>...\n\nUsage: fengine get <GROUP> <KEY>...\n\nFor more information, try '--help'.\n"
)]
#[case::get_with_a_non_numeric_key(
    vec![], &["get", "totals", "abc"],
    EXIT_BAD_INPUT, "fengine: key column 'customer_id' holds whole numbers; 'abc' is not one\n"
)]
#[case::get_of_an_unknown_group(
    vec![], &["get", "nothing", "1"],
    EXIT_NOT_FOUND, "fengine: feature group 'nothing' is not published; the groups published in catalog database 'fengine' are: totals\n"
)]
#[case::training_set_spine_without_a_key(
    vec![file("spine.sql", "SELECT 1 AS id, TIMESTAMP '2024-03-10 00:00:00' AS t")],
    &["training-set", "--spine", "spine.sql", "--timestamp", "t", "--features", "totals", "--out", "ts.parquet"],
    EXIT_BAD_INPUT, "fengine: the spine has no column 'customer_id', a KEY of feature group 'totals'; the spine needs every key column of each group, by name (its columns: id, t)\n"
)]
#[case::training_set_without_the_timestamp_column(
    vec![file("spine.sql", SPINE)],
    &["training-set", "--spine", "spine.sql", "--timestamp", "label_time", "--features", "totals", "--out", "ts.parquet"],
    EXIT_BAD_INPUT, "fengine: the spine has no column 'label_time' (--timestamp); its columns: customer_id, t\n"
)]
#[case::training_set_of_an_unknown_group(
    vec![file("spine.sql", SPINE)],
    &["training-set", "--spine", "spine.sql", "--timestamp", "t", "--features", "nothing", "--out", "ts.parquet"],
    EXIT_NOT_FOUND, "fengine: feature group 'nothing' is not published; the groups published in catalog database 'fengine' are: totals\n"
)]
#[case::training_set_of_an_unknown_feature(
    vec![file("spine.sql", SPINE)],
    &["training-set", "--spine", "spine.sql", "--timestamp", "t", "--features", "totals.spend", "--out", "ts.parquet"],
    EXIT_BAD_INPUT, "fengine: feature group 'totals' version 1 has no feature 'spend' (features: total)\n"
)]
#[case::training_set_registered_as_a_file(
    vec![file("spine.sql", SPINE)],
    &["training-set", "--spine", "spine.sql", "--timestamp", "t", "--features", "totals", "--out", "ts.parquet", "--register", "ts"],
    EXIT_BAD_INPUT, "fengine: --register needs --out to be a folder (a catalog table's location), not the file 'ts.parquet'\n"
)]
#[case::training_set_spine_file_missing(
    vec![],
    &["training-set", "--spine", "labels/", "--timestamp", "t", "--features", "totals", "--out", "ts.parquet"],
    EXIT_BAD_INPUT, "fengine: cannot read the spine 'labels/': No files found at file://<ws>/labels/. Cannot infer schema from an empty location; either add data files or declare an explicit schema for the table.\n"
)]
#[case::backfill_range_backwards(
    vec![], &["backfill", "good.sql", "--from", "2024-03-05T00:00:00Z", "--to", "2024-03-01T00:00:00Z", "--every", "1d"],
    EXIT_BAD_INPUT, "fengine: --from 2024-03-05T00:00:00Z is after --to 2024-03-01T00:00:00Z\n"
)]
#[case::backfill_from_a_fraction_of_a_second(
    vec![], &["backfill", "good.sql", "--from", "2024-03-01T00:00:00.500Z", "--to", "2024-03-05T00:00:00Z", "--every", "1d"],
    EXIT_BAD_INPUT, "fengine: --from 2024-03-01T00:00:00.500+00:00 has a fraction of a second; snapshots are named by whole seconds\n"
)]
#[case::backfill_every_not_an_interval(
    vec![], &["backfill", "good.sql", "--from", "2024-03-01T00:00:00Z", "--to", "2024-03-05T00:00:00Z", "--every", "1w"],
    EXIT_BAD_INPUT, "error: invalid value '1w' for '--every <EVERY>': '1w' is not an interval such as 1d, 6h, 15m or 30s\n\nFor more information, try '--help'.\n"
)]
#[case::as_of_far_in_the_future(
    vec![], &["run", "good.sql", "--as-of", "9999-01-01T00:00:00Z"],
    EXIT_BAD_INPUT, "fengine: the as-of 9999-01-01T00:00:00Z is more than 24 hours ahead of now (the profile's as_of_horizon_hours): its snapshot would be the newest until then, and every later run's online load would give way to it. Pass --force if the future is meant\n"
)]
#[case::backfill_into_the_future(
    vec![], &["backfill", "good.sql", "--from", "2024-03-01T00:00:00Z", "--to", "3024-03-01T00:00:00Z", "--every", "100000d"],
    EXIT_BAD_INPUT, "fengine: --to 3024-03-01T00:00:00Z is more than 24 hours ahead of now (the profile's as_of_horizon_hours): its snapshot would be the newest until then, and every later run's online load would give way to it. Pass --force if the future is meant\n"
)]
#[case::leap_second(
    vec![], &["run", "good.sql", "--as-of", "2016-12-31T23:59:60Z"],
    EXIT_BAD_INPUT, "fengine: the as-of 2016-12-31T23:59:60Z is a leap second, which Unix time (and so every timestamp fengine computes with) does not have: use 2016-12-31T23:59:59Z or the second after\n"
)]
#[case::get_outside_any_warehouse(
    vec![file("elsewhere/fengine.toml", "[profiles.default]\n")], &["get", "totals", "1", "--config", "elsewhere/fengine.toml"],
    EXIT_NOT_FOUND, "fengine: profile 'default': 'elsewhere/warehouse' does not exist, so nothing has been published there: run where the pipeline's fengine.toml is, or pass --config or --profile\n"
)]
#[case::param_given_twice(
    vec![], &["run", "good.sql", "--param", "a=1", "--param", "a=2"],
    EXIT_BAD_INPUT, "fengine: --param a is given more than once\n"
)]
#[case::lease_seconds_zero(
    vec![file("fengine.toml", "[profiles.default]\nlease_seconds = 0\n")], &["run", "good.sql"],
    EXIT_BAD_INPUT, "fengine: profile 'default': unknown lease_seconds '0' (expected a number of seconds of at least 1)\n"
)]
#[case::memory_limit_malformed(
    vec![file("fengine.toml", "[profiles.default]\nmemory_limit = 'lots'\n")], &["run", "good.sql"],
    EXIT_BAD_INPUT, "fengine: profile 'default': unknown memory_limit 'lots' (expected a size such as \"8GiB\" or \"512MiB\", or \"none\")\n"
)]
#[case::unknown_catalog(
    vec![file("fengine.toml", "[profiles.default]\ncatalog = 'hive'\n")], &["run", "good.sql"],
    EXIT_BAD_INPUT, "fengine: profile 'default': unknown catalog 'hive' (expected \"local\" or \"glue\")\n"
)]
#[case::backfill_every_zero(
    vec![], &["backfill", "good.sql", "--from", "2024-03-01T00:00:00Z", "--to", "2024-03-05T00:00:00Z", "--every", "0s"],
    EXIT_BAD_INPUT, "error: invalid value '0s' for '--every <EVERY>': '0s' is not an interval such as 1d, 6h, 15m or 30s\n\nFor more information, try '--help'.\n"
)]
#[case::backfill_too_many_as_ofs(
    vec![], &["backfill", "good.sql", "--from", "2023-01-01T00:00:00Z", "--to", "2024-03-05T00:00:00Z", "--every", "1s"],
    EXIT_BAD_INPUT, "fengine: the range holds 37065601 as-ofs, more than 100000: use a longer --every or a shorter range\n"
)]
#[case::include_a_folder(
    vec![file("sql/views.sql", "SELECT 1;"), file("bad.sql", "INCLUDE 'sql';")], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: 'sql' is not a regular file: a pipeline includes only SQL files\n 1 | INCLUDE 'sql';\n   | ^\n"
)]
#[case::include_a_device(
    vec![file("bad.sql", "INCLUDE '/dev/zero';")], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: '/dev/zero' is not a regular file: a pipeline includes only SQL files\n 1 | INCLUDE '/dev/zero';\n   | ^\n"
)]
#[case::version_zero(
    vec![file("bad.sql", "CREATE FEATURE GROUP g KEY (k) EVENT TIME t VERSION 0 AS SELECT 1 AS k, now() AS t;")], &["plan", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:53: expected a positive whole number after VERSION, found 0\n 1 | CREATE FEATURE GROUP g KEY (k) EVENT TIME t VERSION 0 AS SELECT 1 AS k, now() AS t;\n   |                                                     ^\n"
)]
#[case::group_name_not_a_plain_name(
    vec![file("bad.sql", "CREATE FEATURE GROUP \"Spend Totals\" KEY (k) EVENT TIME t AS SELECT 1 AS k, now() AS t;")], &["plan", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: feature group name 'Spend Totals' must start with a lower-case letter and hold only lower-case letters, digits and underscores\n"
)]
#[case::a_statement_that_writes(
    vec![file("bad.sql", format!("{SOURCE}\nINSERT INTO payments VALUES (1, 1.0, now());"))], &["run", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:4:1: only statements that define sources, views and settings (CREATE EXTERNAL TABLE, CREATE VIEW, SET, ...) may stand alone in a pipeline; put queries in a CREATE FEATURE GROUP\n"
)]
#[case::ttl_malformed(
    vec![file("bad.sql", "CREATE FEATURE GROUP g KEY (k) EVENT TIME t ONLINE (ttl = 'soon') AS SELECT 1 AS k, now() AS t;")], &["plan", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: feature group 'g': ONLINE ttl 'soon' is not a length of time such as '30 days' or '12 hours'\n"
)]
#[case::key_of_a_list_type(
    vec![file("bad.sql", "CREATE FEATURE GROUP g KEY (k) EVENT TIME t AS SELECT make_array(1, 2) AS k, now() AS t;")], &["plan", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: feature group 'g': KEY column 'k' is of type List(Int64); a key must be a whole number, a string or a date\n"
)]
#[case::get_of_a_version_never_loaded(
    vec![], &["get", "totals", "1", "--version", "9"],
    EXIT_NOT_FOUND, "fengine: feature group 'totals' version 9 has not been loaded online\n"
)]
#[case::comment_on_a_missing_feature(
    vec![file("bad.sql", "CREATE FEATURE GROUP g KEY (k) EVENT TIME t FEATURES (nope COMMENT 'x') AS SELECT 1 AS k, now() AS t;")], &["plan", "bad.sql"],
    EXIT_BAD_INPUT, "fengine: bad.sql:1:1: feature group 'g': FEATURES column 'nope' is not in the query's output (columns: k, t)\n"
)]
fn bad_input_is_reported_and_changes_nothing(
    #[case] files: Vec<(&str, String)>,
    #[case] args: &[&str],
    #[case] code: i32,
    #[case] message: &str,
) {
    let workspace = published();
    for (path, text) in &files {
        workspace.write(path, text);
    }
    let before = state(&workspace);
    let outcome = workspace.fengine(args);
    let root = workspace.dir.path().canonicalize().unwrap();
    let stderr = outcome.stderr.replace(root.to_str().unwrap(), "<ws>");
    assert_eq!(
        (outcome.code, stderr.as_str()),
        (code, message),
        "stdout: {}",
        outcome.stdout
    );
    assert_eq!(
        state(&workspace),
        before,
        "a failed command changed the workspace"
    );
}

/// A source folder of Parquet files written by `write`, and a pipeline over it.
fn parquet_source(write: impl FnOnce(&Workspace)) -> Workspace {
    let workspace = published();
    write(&workspace);
    workspace.write(
        "parquet.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP event_totals KEY (k) EVENT TIME t AS
         SELECT k, max(t) AS t, count(*) AS n FROM events GROUP BY k;",
    );
    workspace
}

fn events(ids: Vec<i64>) -> arrow::array::RecordBatch {
    use std::sync::Arc;
    let times = arrow::array::TimestampMicrosecondArray::from(vec![0; ids.len()]);
    arrow::array::RecordBatch::try_from_iter(vec![
        (
            "k",
            Arc::new(arrow::array::Int64Array::from(ids)) as arrow::array::ArrayRef,
        ),
        ("t", Arc::new(times)),
    ])
    .unwrap()
}

/// A refused source leaves the workspace as it was and says which file is wrong.
fn assert_refused(workspace: &Workspace, message: &str) {
    let before = state(workspace);
    let outcome = workspace.fengine(&["run", "parquet.sql", "--as-of", "2024-03-05T00:00:00Z"]);
    let root = workspace.dir.path().canonicalize().unwrap();
    let stderr = outcome.stderr.replace(root.to_str().unwrap(), "<ws>");
    assert_eq!((outcome.code, stderr.as_str()), (EXIT_BAD_INPUT, message));
    assert_eq!(
        state(workspace),
        before,
        "a failed run changed the workspace"
    );
}

#[test]
fn a_zero_byte_parquet_file_in_a_source_is_refused_naming_it() {
    let workspace = parquet_source(|workspace| {
        write_parquet_file(
            &workspace.path("events/part-0.parquet"),
            &events(vec![1, 2]),
        );
        workspace.write("events/part-1.parquet", "");
    });
    assert_refused(
        &workspace,
        "fengine: parquet.sql:1:1: source 'events': file 'file://<ws>/events/part-1.parquet' is \
         empty (0 bytes), a file a writer did not finish: delete it or write it again\n",
    );
}

#[test]
fn parquet_files_of_conflicting_schemas_in_one_source_are_refused_naming_them() {
    let workspace = parquet_source(|workspace| {
        write_parquet_file(
            &workspace.path("events/part-0.parquet"),
            &events(vec![1, 2]),
        );
        let mut other = events(vec![3]);
        let extra = std::sync::Arc::new(arrow::array::Float64Array::from(vec![1.5]));
        other = other.project(&[0, 1]).unwrap();
        let columns = vec![other.column(0).clone(), other.column(1).clone(), extra];
        let schema = arrow::datatypes::Schema::new(vec![
            other.schema().field(0).clone(),
            other.schema().field(1).clone(),
            arrow::datatypes::Field::new("amount", arrow::datatypes::DataType::Float64, true),
        ]);
        let other =
            arrow::array::RecordBatch::try_new(std::sync::Arc::new(schema), columns).unwrap();
        write_parquet_file(&workspace.path("events/part-1.parquet"), &other);
    });
    assert_refused(
        &workspace,
        "fengine: parquet.sql:1:1: source 'events': file 'file://<ws>/events/part-0.parquet' has \
         columns (k Int64, t Timestamp(µs)), file 'file://<ws>/events/part-1.parquet' has (amount \
         Float64, k Int64, t Timestamp(µs)): the files of one source must share a schema\n",
    );
}

/// Declared columns read every file with them: files written before a column was added
/// are read with nulls in it, not refused.
#[test]
fn a_source_that_declares_its_columns_may_hold_files_of_an_older_schema() {
    let workspace = parquet_source(|workspace| {
        write_parquet_file(
            &workspace.path("events/part-0.parquet"),
            &events(vec![1, 2]),
        );
        let newer = events(vec![3]);
        let amount = std::sync::Arc::new(arrow::array::Float64Array::from(vec![1.5]));
        let schema = arrow::datatypes::Schema::new(vec![
            newer.schema().field(0).clone(),
            newer.schema().field(1).clone(),
            arrow::datatypes::Field::new("amount", arrow::datatypes::DataType::Float64, true),
        ]);
        let columns = vec![newer.column(0).clone(), newer.column(1).clone(), amount];
        let newer =
            arrow::array::RecordBatch::try_new(std::sync::Arc::new(schema), columns).unwrap();
        write_parquet_file(&workspace.path("events/part-1.parquet"), &newer);
    });
    workspace.write(
        "parquet.sql",
        "CREATE EXTERNAL TABLE events (k BIGINT, t TIMESTAMP, amount DOUBLE)
           STORED AS PARQUET LOCATION 'events/';
         CREATE FEATURE GROUP event_totals KEY (k) EVENT TIME t AS
         SELECT k, max(t) AS t, count(amount) AS amounts FROM events GROUP BY k;",
    );
    let outcome = workspace
        .fengine(&[
            "run",
            "parquet.sql",
            "--as-of",
            "2024-03-05T00:00:00Z",
            "--output",
            "json",
        ])
        .success();
    assert_eq!(outcome.json()["groups"][0]["rows_written"], 3);
}

/// A group with a column summing `terms` ones.
fn deep_pipeline(terms: usize) -> String {
    format!(
        "CREATE FEATURE GROUP deep KEY (k) EVENT TIME t AS SELECT 1 AS k, \
         TIMESTAMP '2024-03-01 00:00:00' AS t, {} AS x;",
        vec!["1"; terms].join("+")
    )
}

/// Thousands of terms overflowed the stack (exit 134) in plan and run: refused where parsed,
/// the line quoted around the error.
#[rstest]
#[case::plan(&["plan", "deep.sql"])]
#[case::run(&["run", "deep.sql", "--as-of", "2024-03-02T00:00:00Z"])]
#[case::backfill(&["backfill", "deep.sql", "--from", "2024-03-02T00:00:00Z", "--to", "2024-03-03T00:00:00Z", "--every", "1d"])]
fn an_expression_too_deep_to_plan_is_refused(#[case] args: &[&str]) {
    let workspace = published();
    workspace.write("deep.sql", &deep_pipeline(3000));
    let before = state(&workspace);
    let outcome = workspace.fengine(args);
    let quoted = "CREATE FEATURE GROUP deep KEY (k) EVENT TIME t AS SELECT 1 AS k, TIMESTAMP \
                  '2024-03-01 00:00:00' AS t, 1+1+1+1+1+1+1+1+1...";
    assert_eq!(
        (outcome.code, outcome.stderr.as_str()),
        (
            EXIT_BAD_INPUT,
            format!(
                "fengine: deep.sql:1:1: an expression of this statement nests more than 1000 \
                 levels deep (a chain such as a + b + c nests a level per operator), deeper than \
                 fengine plans: split it over several columns or views\n 1 | {quoted}\n   | ^\n"
            )
            .as_str()
        )
    );
    assert_eq!(
        state(&workspace),
        before,
        "a failed command changed the workspace"
    );
}

/// The deepest expression accepted is planned and computed on fengine's stacks, in the debug
/// build the tests run.
#[test]
fn an_expression_at_the_depth_limit_runs() {
    let workspace = Workspace::new();
    workspace.write("deep.sql", &deep_pipeline(1000));
    let manifest = workspace
        .fengine(&[
            "run",
            "deep.sql",
            "--as-of",
            "2024-03-02T00:00:00Z",
            "--output",
            "json",
        ])
        .success()
        .json();
    let batches = read_parquet_folder(manifest["groups"][0]["snapshot_location"].as_str().unwrap());
    assert_eq!(
        column::<arrow::datatypes::Int64Type>(&batches, "x"),
        vec![Some(1000)]
    );
}

/// A KEY changed without a VERSION bump keeps the columns (the catalog accepts it) but not
/// the online table's key: refused while planning, before anything is computed.
#[test]
fn a_key_changed_without_a_version_bump_is_refused_before_publishing() {
    let workspace = Workspace::new();
    let pipeline = |key: &str| {
        format!(
            "CREATE FEATURE GROUP pairs KEY ({key}) EVENT TIME t AS SELECT 1 AS a, 2 AS b, \
             TIMESTAMP '2024-03-01 00:00:00' AS t, 3 AS x;"
        )
    };
    workspace.write("pairs.sql", &pipeline("a"));
    workspace
        .fengine(&["run", "pairs.sql", "--as-of", "2024-03-02T00:00:00Z"])
        .success();
    workspace.write("pairs.sql", &pipeline("b"));
    let before = state(&workspace);
    let outcome = workspace.fengine(&["run", "pairs.sql", "--as-of", "2024-03-03T00:00:00Z"]);
    assert_eq!(
        (outcome.code, outcome.stderr.as_str()),
        (
            EXIT_BAD_INPUT,
            "fengine: pairs.sql:1:1: feature group 'pairs': online table 'pairs_v1' exists keyed \
             by (a integer), but the group is keyed by (b integer): bump the group's VERSION, or \
             drop that table\n"
        )
    );
    assert_eq!(
        state(&workspace),
        before,
        "a failed command changed the workspace"
    );
}

/// A run whose second group fails says that the first stays published, and how.
#[test]
fn a_failing_group_says_what_the_run_published_before_it() {
    let workspace = published();
    workspace.write(
        "two.sql",
        &format!(
            "{}\nCREATE FEATURE GROUP broken KEY (k) EVENT TIME t AS SELECT CAST(NULL AS BIGINT) \
             AS k, TIMESTAMP '2024-03-01 00:00:00' AS t;\n",
            group(GOOD_SELECT)
        ),
    );
    let outcome = workspace.fengine(&["run", "two.sql", "--as-of", "2024-03-06T00:00:00Z"]);
    assert_eq!(outcome.code, EXIT_CHECK_FAILED, "{}", outcome.stderr);
    assert!(
        outcome.stderr.ends_with(
            ". This run published before it, and they stay published: totals v1 \
             (snapshot_ts=20240306T000000Z, loaded online)\n"
        ),
        "{}",
        outcome.stderr
    );
}

/// DataFusion's decoding error names no file: fengine finds the source file it came from.
#[test]
fn a_corrupt_parquet_source_file_is_named() {
    let workspace = published();
    workspace.write(
        "gen.sql",
        "CREATE FEATURE GROUP gen KEY (k) EVENT TIME t AS SELECT value AS k, \
         to_timestamp_seconds(1704067200) AS t, CAST(value AS DOUBLE) AS v FROM range(200000);",
    );
    let generated = workspace
        .fengine(&[
            "run",
            "gen.sql",
            "--as-of",
            "2024-01-02T00:00:00Z",
            "--output",
            "json",
        ])
        .success()
        .json();
    let folder = generated["groups"][0]["snapshot_location"]
        .as_str()
        .unwrap();
    let part = std::path::Path::new(folder.trim_start_matches("file://")).join("part-0.parquet");
    let mut bytes = std::fs::read(part).unwrap();
    // Page data a third of the way in, the footer intact: found only when decoded.
    let third = bytes.len() / 3;
    for byte in &mut bytes[third..third + 3000] {
        *byte ^= 0x5a;
    }
    std::fs::create_dir_all(workspace.path("events")).unwrap();
    std::fs::write(workspace.path("events/a.parquet"), bytes).unwrap();
    workspace.write(
        "events.sql",
        "CREATE EXTERNAL TABLE events STORED AS PARQUET LOCATION 'events/';\n\
         CREATE FEATURE GROUP totals_of_events KEY (k) EVENT TIME t AS SELECT k, max(t) AS t, \
         sum(v) AS total FROM events GROUP BY k;",
    );
    let before = state(&workspace);
    let outcome = workspace.fengine(&["run", "events.sql", "--as-of", "2024-01-03T00:00:00Z"]);
    let root = workspace.dir.path().canonicalize().unwrap();
    let stderr = outcome.stderr.replace(root.to_str().unwrap(), "<ws>");
    assert_eq!(
        (outcome.code, stderr.as_str()),
        (
            EXIT_BAD_INPUT,
            "fengine: events.sql:2:1: feature group 'totals_of_events': Parquet argument error: \
             External: Data corruption detected, in source file 'file://<ws>/events/a.parquet': \
             write that file again or remove it\n"
        )
    );
    assert_eq!(
        state(&workspace),
        before,
        "a failed run changed the workspace"
    );
}

/// The horizon is the profile's.
#[test]
fn the_as_of_horizon_is_set_by_the_profile() {
    let workspace = published();
    let plan = ["plan", "good.sql", "--as-of", "2100-01-01T00:00:00Z"];
    workspace.write(
        "fengine.toml",
        "[profiles.default]\nas_of_horizon_hours = 1000000\n",
    );
    workspace.fengine(&plan).success();
    workspace.write(
        "fengine.toml",
        "[profiles.default]\nas_of_horizon_hours = 1\n",
    );
    let refused = workspace.fengine(&plan);
    assert_eq!(refused.code, EXIT_BAD_INPUT);
    assert!(
        refused.stderr.starts_with(
            "fengine: the as-of 2100-01-01T00:00:00Z is more than 1 hour ahead of now"
        ),
        "{}",
        refused.stderr
    );
}
