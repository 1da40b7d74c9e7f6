//! Typed views of what the test sink (`go/otlpsink`) writes for each item it
//! receives upstream, of the `--otlp-json` copy gort writes, and of what
//! `tracedsvc` records about the stalls it injected.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

/// One item the sink received: a span, a metric point or a log record.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Item {
    /// `span`, `point` or `log`.
    pub kind: String,
    /// `service.name` of the item's resource.
    pub service: String,
    /// Spans: "trace/span" in hex.
    pub id: String,
    pub attrs: Vec<String>,
    pub body: String,
    pub metric: String,
    pub name: String,
    /// The instrumentation scope (`gort` for gort's own spans).
    pub scope: String,
    /// Spans: the parent's "trace/span".
    pub parent: String,
    /// Spans: Unix ns.
    pub start: u64,
    pub end: u64,
    /// Attribute values by key (numbers and strings).
    pub values: BTreeMap<String, serde_json::Value>,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Exemplar {
    /// The span it points at, "trace/span".
    pub id: String,
    pub value: f64,
}

impl Item {
    /// A numeric attribute, 0 when absent.
    pub fn number(&self, key: &str) -> f64 {
        self.values.get(key).and_then(serde_json::Value::as_f64).unwrap_or(0.0)
    }

    /// A string attribute.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(serde_json::Value::as_str)
    }

    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// gort's own spans (stall children).
    pub fn is_gorts_span(&self) -> bool {
        self.kind == "span" && self.scope == "gort"
    }
}

/// Every item the sink wrote to `path`.
pub fn read(path: &Path) -> Vec<Item> {
    crate::read_jsonl(path)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// One stall `tracedsvc` injected into a span, as the service measured it.
#[derive(Clone, Debug, Deserialize)]
pub struct Injection {
    /// `runnable`, `gc`, `mutex`, `fanout` or `select`.
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    pub injected_ns: f64,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
}

impl Injection {
    /// The span's id as the sink writes it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.trace_id, self.span_id)
    }
}

/// One line of gort's `--otlp-json` copy (only what tests count).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JsonExport {
    pub resource_spans: Vec<JsonResourceSpans>,
    pub resource_metrics: Vec<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JsonResourceSpans {
    pub scope_spans: Vec<JsonScopeSpans>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JsonScopeSpans {
    pub spans: Vec<JsonSpan>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JsonSpan {
    pub attributes: Vec<JsonKeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JsonKeyValue {
    pub key: String,
}

impl JsonExport {
    pub fn spans(&self) -> impl Iterator<Item = &JsonSpan> {
        self.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans)
    }
}

impl JsonSpan {
    pub fn has(&self, key: &str) -> bool {
        self.attributes.iter().any(|a| a.key == key)
    }
}

/// Every line gort wrote to an `--otlp-json` file.
pub fn read_json_copy(path: &Path) -> Vec<JsonExport> {
    crate::read_jsonl(path)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}
