//! Where log lines go. A person at a terminal reads `fengine: ...` lines (warnings and
//! errors unless `FENGINE_LOG`, an `EnvFilter` directive, says more); a scheduler — stderr not a terminal: ECS, Step
//! Functions, SageMaker, CloudWatch — reads one JSON object per line: `time`, `level`,
//! `message`, the run's `run_id` (and `job_name` under SageMaker) on every line, `group`
//! while a group is published, then the event's own fields.
//!
//! Nothing logs credentials: fengine's events carry names, counts and locations, never the
//! environment or a request, and the AWS SDKs' own events (which describe requests) are
//! left out unless `FENGINE_LOG` asks for them.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How the command's log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// fengine's own crates log at info; everything else (the AWS SDKs, hyper) only warnings.
const JSON_DEFAULT: &str = "warn,fengine=info,fengine_engine=info,fengine_aws=info,fengine_catalog=info,fengine_online=info";
const TEXT_DEFAULT: &str = "warn";

/// Fields every line carries: the run's identity, set once the command line is read.
static IDENTITY: OnceLock<Map<String, Value>> = OnceLock::new();

/// Installs the subscriber: JSON lines off a terminal, text on one, unless
/// `FENGINE_LOG_FORMAT` (`text` or `json`) says.
pub(crate) fn init() -> LogFormat {
    let format = match std::env::var("FENGINE_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("text") => LogFormat::Text,
        _ if std::io::stderr().is_terminal() => LogFormat::Text,
        _ => LogFormat::Json,
    };
    let default = match format {
        LogFormat::Text => TEXT_DEFAULT,
        LogFormat::Json => JSON_DEFAULT,
    };
    let filter = EnvFilter::new(directives(std::env::var("FENGINE_LOG").ok(), default));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(Lines { json: false }).init(),
        LogFormat::Json => registry.with(Lines { json: true }).init(),
    }
    format
}

/// The AWS SDKs' and HTTP stack's targets: their debug events describe requests, headers
/// included (an access key id is in every signed one).
const REQUEST_TARGETS: [&str; 6] = [
    "aws_config",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "hyper",
];

/// What `FENGINE_LOG` asks for, with the requests' targets kept to warnings unless it names
/// an AWS crate itself: `FENGINE_LOG=debug` debugs fengine without printing credentials.
fn directives(asked: Option<String>, default: &str) -> String {
    let asked = asked.filter(|a| !a.trim().is_empty());
    match asked {
        Some(asked) if asked.contains("aws") || asked.contains("hyper") => asked,
        Some(asked) => {
            let capped: Vec<String> = REQUEST_TARGETS
                .iter()
                .map(|t| format!("{t}=warn"))
                .collect();
            format!("{asked},{}", capped.join(","))
        }
        None => default.to_string(),
    }
}

/// Puts the run id (and the scheduler's job name) on every line from now on, whichever
/// task writes it.
pub(crate) fn set_identity(run_id: &str, job_name: Option<&str>) {
    let mut identity = Map::new();
    identity.insert("run_id".into(), run_id.into());
    if let Some(job) = job_name {
        identity.insert("job_name".into(), job.into());
    }
    let _ = IDENTITY.set(identity);
}

/// Writes each event as one line on stderr.
struct Lines {
    json: bool,
}

/// The fields of a span, kept in its extensions for the events inside it.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        context: Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(SpanFields(fields.values));
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = match self.json {
            true => json_line(event.metadata().level(), fields, spans(event, &context)),
            false => text_line(fields),
        };
        // A closed stderr leaves nowhere to say so.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The fields of the spans an event is in, outermost first.
fn spans<S>(event: &Event<'_>, context: &Context<'_, S>) -> Map<String, Value>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut merged = Map::new();
    if let Some(scope) = context.event_scope(event) {
        for span in scope.from_root() {
            if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                merged.extend(fields.clone());
            }
        }
    }
    merged
}

fn json_line(level: &Level, fields: Fields, spans: Map<String, Value>) -> String {
    let mut line = Map::new();
    line.insert(
        "time".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    line.insert("level".into(), level.as_str().to_ascii_lowercase().into());
    line.insert("message".into(), fields.message.unwrap_or_default().into());
    if let Some(identity) = IDENTITY.get() {
        line.extend(identity.clone());
    }
    line.extend(spans);
    line.extend(fields.values);
    let mut text = Value::Object(line).to_string();
    text.push('\n');
    text
}

fn text_line(fields: Fields) -> String {
    format!("fengine: {}\n", fields.message.unwrap_or_default())
}

/// An event's or span's fields as JSON values, its message apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(value.as_str().map_or(value.to_string(), str::to_string))
            }
            name => {
                self.values.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}
