//! gort's configuration file: YAML with `${env:VAR}` expansion, read into a
//! raw form that mirrors the file (every field optional, unknown fields
//! refused) and then validated into the `Config` the program uses. Every
//! problem is reported at start-up with the path of the field at fault.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use thiserror::Error;

/// OTLP/gRPC listen address (the OTLP default port, loopback: a sidecar).
pub const DEFAULT_GRPC_ENDPOINT: &str = "127.0.0.1:4317";
/// OTLP/HTTP listen address.
pub const DEFAULT_HTTP_ENDPOINT: &str = "127.0.0.1:4318";
/// Largest request accepted, after decompression (the Collector's default).
pub const DEFAULT_MAX_RECV_MSG_SIZE_MIB: u64 = 4;
/// Upstream OTLP/gRPC endpoint.
pub const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:14317";
/// Per-request timeout towards the upstream.
pub const DEFAULT_TIMEOUT: &str = "5s";
/// Items (spans, data points, log records) held at most, waiting or in flight.
pub const DEFAULT_QUEUE_ITEMS: u64 = 200_000;
/// A batch is sent once it holds this many items...
pub const DEFAULT_BATCH_ITEMS: u64 = 8_192;
/// ...or once its first item waited this long.
pub const DEFAULT_BATCH_TIMEOUT: &str = "200ms";
/// First retry delay; doubled per attempt up to the maximum.
pub const DEFAULT_RETRY_INITIAL: &str = "1s";
pub const DEFAULT_RETRY_MAX: &str = "30s";
/// A batch still failing after this long is dropped (and counted).
pub const DEFAULT_RETRY_MAX_ELAPSED: &str = "5m";
/// Self-metrics (Prometheus text) and health endpoint.
pub const DEFAULT_TELEMETRY_ENDPOINT: &str = "127.0.0.1:8888";
/// Time given to the queue to drain at shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "10s";
/// How often the exporter checks its TLS files for changes.
pub const DEFAULT_TLS_RELOAD_INTERVAL: &str = "10s";

/// Trace linkage: spans the service exports are joined with what the
/// probes saw while they were active.
pub const DEFAULT_LINKAGE_ENABLED: bool = true;
/// Longest an export request waits for its spans' runtime data (the probes'
/// data is read every 25 ms; the rest is margin for a busy machine).
pub const DEFAULT_LINKAGE_HOLD: &str = "500ms";
/// Longest a span's runtime data waits for the span (SDK batching delays).
pub const DEFAULT_LINKAGE_ACCOUNT_TTL: &str = "60s";
/// Most span accounts waiting for their spans.
pub const DEFAULT_LINKAGE_MAX_ACCOUNTS: u64 = 65_536;
/// A wait inside a span at least this long becomes a child span.
pub const DEFAULT_LINKAGE_STALL_THRESHOLD: &str = "1ms";
/// The waits that become child spans by default: delays the runtime or
/// contention caused. Ordinary waits (a select on a backend's answer, a
/// read, a sleep) stay attributes of the span.
pub const DEFAULT_LINKAGE_STALL_SPANS: &[&str] =
    &["runnable", "gc_stop_the_world", "gc_assist", "runtime_gc", "mutex"];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: environment variable {var} (in ${{env:{var}}}) is not set")]
    Env { path: PathBuf, var: String },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// The file as written. Every field is documented with its default in
/// README.md ("Configuration").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// OTLP receivers the Go service exports to.
    #[serde(default)]
    pub receiver: RawReceiver,
    /// The upstream Collector everything is forwarded to.
    #[serde(default)]
    pub exporter: RawExporter,
    /// gort's own metrics and health.
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// Trace linkage: runtime accounting added to the service's spans.
    #[serde(default)]
    pub linkage: RawLinkage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinkage {
    /// Join spans with the probes' data (needs the OpenTelemetry Go SDK in
    /// the target); `false` forwards spans untouched and keeps the hot
    /// probe sampled.
    pub enabled: Option<bool>,
    /// Longest an export request waits for its spans' runtime data.
    pub hold: Option<String>,
    /// Longest a span's runtime data waits for the span.
    pub account_ttl: Option<String>,
    /// Most span accounts waiting for their spans (oldest evicted, counted).
    pub max_accounts: Option<u64>,
    /// A wait inside a span at least this long becomes a child span.
    pub stall_threshold: Option<String>,
    /// Which kinds of wait become child spans (`runnable`,
    /// `gc_stop_the_world`, `gc_assist`, and the wait categories
    /// `runtime_gc`, `mutex`, `sync`, `chan_receive`, `chan_send`, `select`,
    /// `io`, `sleep`, `other`); the rest stay attributes only.
    pub stall_spans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// `host:port` for OTLP/gRPC, or `off`.
    pub grpc_endpoint: Option<String>,
    /// `host:port` for OTLP/HTTP, or `off`.
    pub http_endpoint: Option<String>,
    /// Largest request body, in MiB, after decompression.
    pub max_recv_msg_size_mib: Option<u64>,
    /// gRPC keepalive: ping idle clients this often (e.g. `2h`); unset: never.
    pub keepalive_time: Option<String>,
    /// gRPC keepalive: close a connection whose ping is not answered within this.
    pub keepalive_timeout: Option<String>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate (chain) this side presents.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle that verifies the other side.
    pub ca_file: Option<PathBuf>,
    /// Exporter only: how often the files are read again; when they changed,
    /// new connections use them (`0s`: never).
    pub reload_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExporter {
    /// `http://host:port` (or `https://` with `tls`).
    pub endpoint: Option<String>,
    /// Per-request timeout.
    pub timeout: Option<String>,
    /// `gzip` (default) or `none`.
    pub compression: Option<String>,
    /// Extra request headers (e.g. authorization).
    pub headers: Option<BTreeMap<String, String>>,
    pub tls: Option<RawTls>,
    pub queue_items: Option<u64>,
    pub batch_items: Option<u64>,
    pub batch_timeout: Option<String>,
    pub retry_initial_interval: Option<String>,
    pub retry_max_interval: Option<String>,
    pub retry_max_elapsed: Option<String>,
    /// How long shutdown waits for the queue to drain.
    pub shutdown_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// `host:port` serving `/metrics` and `/health`, or `off`.
    pub endpoint: Option<String>,
}

/// TLS files, checked to exist at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// None: the files are read once, at start-up.
    pub reload_interval: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverConfig {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub max_recv_msg_size: usize,
    pub keepalive_time: Option<Duration>,
    pub keepalive_timeout: Option<Duration>,
    pub tls: Option<Tls>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    pub endpoint: String,
    pub timeout: Duration,
    pub gzip: bool,
    pub headers: Vec<(String, String)>,
    pub tls: Option<Tls>,
    pub queue_items: u64,
    pub batch_items: u64,
    pub batch_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub retry_max_elapsed: Duration,
    pub shutdown_timeout: Duration,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub receiver: ReceiverConfig,
    pub exporter: ExporterConfig,
    pub telemetry: Option<SocketAddr>,
    /// None when linkage is off.
    pub linkage: Option<crate::linkage::Settings>,
}

impl Default for Config {
    fn default() -> Self {
        RawConfig::default().validate().expect("the defaults are valid")
    }
}

/// Replaces every `${env:VAR}` with the variable's value (`$$` is a literal
/// `$`, as in the Collector).
pub fn expand_env(
    text: &str,
    path: &Path,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${env:")
            && let Some(end) = after.find('}')
        {
            let var = &after[..end];
            let value =
                lookup(var).ok_or_else(|| ConfigError::Env { path: path.to_owned(), var: var.to_owned() })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads and expands a configuration file (flags may still override it
/// before `validate`).
pub fn load_raw(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse_raw(&expand_env(&text, path, |v| std::env::var(v).ok())?, path)
}

fn parse_raw(yaml: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    if yaml.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_yaml::from_str(yaml)
        .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
}

pub fn parse(yaml: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_raw(yaml, path)?.validate()
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.to_owned(), message: message.into() }
}

fn duration(field: &str, value: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    crate::duration::parse(value.unwrap_or(default)).map_err(|e| invalid(field, e))
}

fn endpoint(field: &str, value: Option<&str>, default: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match value.unwrap_or(default) {
        "off" => Ok(None),
        v => v.parse().map(Some).map_err(|_| invalid(field, format!("{v:?} is not host:port (or off)"))),
    }
}

fn tls(field: &str, raw: Option<RawTls>) -> Result<Option<Tls>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    for (name, file) in
        [("cert_file", &raw.cert_file), ("key_file", &raw.key_file), ("ca_file", &raw.ca_file)]
    {
        if let Some(f) = file
            && !f.is_file()
        {
            return Err(invalid(&format!("{field}.{name}"), format!("{} does not exist", f.display())));
        }
    }
    if raw.cert_file.is_some() != raw.key_file.is_some() {
        return Err(invalid(field, "cert_file and key_file go together"));
    }
    let interval_field = format!("{field}.reload_interval");
    let reload_interval = match (field, raw.reload_interval.as_deref()) {
        ("exporter.tls", value) => {
            Some(duration(&interval_field, value, DEFAULT_TLS_RELOAD_INTERVAL)?).filter(|d| !d.is_zero())
        }
        (_, None) => None,
        (_, Some(_)) => {
            return Err(invalid(
                &interval_field,
                "only the exporter reloads its TLS files; restart gort to load new receiver certificates",
            ));
        }
    };
    Ok(Some(Tls { cert_file: raw.cert_file, key_file: raw.key_file, ca_file: raw.ca_file, reload_interval }))
}

impl RawConfig {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let r = self.receiver;
        let size_mib = r.max_recv_msg_size_mib.unwrap_or(DEFAULT_MAX_RECV_MSG_SIZE_MIB);
        if !(1..=1024).contains(&size_mib) {
            return Err(invalid("receiver.max_recv_msg_size_mib", "must be 1 to 1024"));
        }
        let receiver = ReceiverConfig {
            grpc: endpoint("receiver.grpc_endpoint", r.grpc_endpoint.as_deref(), DEFAULT_GRPC_ENDPOINT)?,
            http: endpoint("receiver.http_endpoint", r.http_endpoint.as_deref(), DEFAULT_HTTP_ENDPOINT)?,
            max_recv_msg_size: (size_mib << 20) as usize,
            keepalive_time: r
                .keepalive_time
                .as_deref()
                .map(|v| duration("receiver.keepalive_time", Some(v), ""))
                .transpose()?,
            keepalive_timeout: r
                .keepalive_timeout
                .as_deref()
                .map(|v| duration("receiver.keepalive_timeout", Some(v), ""))
                .transpose()?,
            tls: tls("receiver.tls", r.tls)?,
        };
        if let Some(t) = &receiver.tls
            && t.cert_file.is_none()
        {
            return Err(invalid("receiver.tls", "a server needs cert_file and key_file"));
        }
        let e = self.exporter;
        let endpoint_text = e.endpoint.unwrap_or_else(|| DEFAULT_UPSTREAM.to_owned());
        if !(endpoint_text.starts_with("http://") || endpoint_text.starts_with("https://")) {
            return Err(invalid(
                "exporter.endpoint",
                format!("{endpoint_text:?} must start with http:// or https://"),
            ));
        }
        let gzip = match e.compression.as_deref().unwrap_or("gzip") {
            "gzip" => true,
            "none" => false,
            other => return Err(invalid("exporter.compression", format!("{other:?} is not gzip or none"))),
        };
        let mut headers = Vec::new();
        for (k, v) in e.headers.unwrap_or_default() {
            let field = format!("exporter.headers.{k}");
            if k.parse::<http::HeaderName>().is_err() || v.parse::<http::HeaderValue>().is_err() {
                return Err(invalid(&field, "not a valid HTTP header"));
            }
            headers.push((k.to_ascii_lowercase(), v));
        }
        let exporter = ExporterConfig {
            tls: tls("exporter.tls", e.tls)?,
            endpoint: endpoint_text,
            timeout: duration("exporter.timeout", e.timeout.as_deref(), DEFAULT_TIMEOUT)?,
            gzip,
            headers,
            queue_items: e.queue_items.unwrap_or(DEFAULT_QUEUE_ITEMS),
            batch_items: e.batch_items.unwrap_or(DEFAULT_BATCH_ITEMS),
            batch_timeout: duration(
                "exporter.batch_timeout",
                e.batch_timeout.as_deref(),
                DEFAULT_BATCH_TIMEOUT,
            )?,
            retry_initial: duration(
                "exporter.retry_initial_interval",
                e.retry_initial_interval.as_deref(),
                DEFAULT_RETRY_INITIAL,
            )?,
            retry_max: duration(
                "exporter.retry_max_interval",
                e.retry_max_interval.as_deref(),
                DEFAULT_RETRY_MAX,
            )?,
            retry_max_elapsed: duration(
                "exporter.retry_max_elapsed",
                e.retry_max_elapsed.as_deref(),
                DEFAULT_RETRY_MAX_ELAPSED,
            )?,
            shutdown_timeout: duration(
                "exporter.shutdown_timeout",
                e.shutdown_timeout.as_deref(),
                DEFAULT_SHUTDOWN_TIMEOUT,
            )?,
        };
        if exporter.queue_items == 0 || exporter.batch_items == 0 {
            return Err(invalid("exporter.queue_items", "queue_items and batch_items must be at least 1"));
        }
        if exporter.timeout.is_zero() {
            return Err(invalid("exporter.timeout", "must be more than 0"));
        }
        if exporter.retry_initial.is_zero() || exporter.retry_max < exporter.retry_initial {
            return Err(invalid(
                "exporter.retry_max_interval",
                "retry intervals must be > 0 with max >= initial",
            ));
        }
        let telemetry =
            endpoint("telemetry.endpoint", self.telemetry.endpoint.as_deref(), DEFAULT_TELEMETRY_ENDPOINT)?;
        let l = self.linkage;
        let linkage = if l.enabled.unwrap_or(DEFAULT_LINKAGE_ENABLED) {
            let max_accounts = l.max_accounts.unwrap_or(DEFAULT_LINKAGE_MAX_ACCOUNTS);
            if max_accounts == 0 {
                return Err(invalid("linkage.max_accounts", "must be at least 1"));
            }
            Some(crate::linkage::Settings {
                hold: duration("linkage.hold", l.hold.as_deref(), DEFAULT_LINKAGE_HOLD)?,
                account_ttl: duration(
                    "linkage.account_ttl",
                    l.account_ttl.as_deref(),
                    DEFAULT_LINKAGE_ACCOUNT_TTL,
                )?,
                max_accounts: usize::try_from(max_accounts).unwrap_or(usize::MAX),
                stall_threshold: duration(
                    "linkage.stall_threshold",
                    l.stall_threshold.as_deref(),
                    DEFAULT_LINKAGE_STALL_THRESHOLD,
                )?,
                stall_spans: match &l.stall_spans {
                    Some(kinds) => crate::linkage::StallKinds::parse(kinds.iter().map(String::as_str)),
                    None => crate::linkage::StallKinds::parse(DEFAULT_LINKAGE_STALL_SPANS.iter().copied()),
                }
                .map_err(|bad| {
                    invalid(
                        "linkage.stall_spans",
                        format!(
                            "{bad:?} is not a kind of wait; known: {}",
                            crate::linkage::STALL_KIND_NAMES.join(", ")
                        ),
                    )
                })?,
            })
        } else {
            None
        };
        Ok(Config { receiver, exporter, telemetry, linkage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("gort.yaml")
    }

    #[test]
    fn stall_spans_take_known_kinds_only() {
        let c = parse("linkage:\n  stall_spans: [select, mutex]\n", p()).unwrap();
        let kinds = c.linkage.unwrap().stall_spans;
        assert!(kinds.contains("select") && kinds.contains("mutex") && !kinds.contains("runnable"));
        let e = parse("linkage:\n  stall_spans: [lock]\n", p()).unwrap_err().to_string();
        assert!(e.starts_with("linkage.stall_spans: \"lock\" is not a kind of wait; known: runnable"), "{e}");
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = parse("", p()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.receiver.grpc, Some(DEFAULT_GRPC_ENDPOINT.parse().unwrap()));
        assert_eq!(c.receiver.max_recv_msg_size, 4 << 20);
        assert!(c.exporter.gzip);
    }

    #[test]
    fn env_references_expand_and_missing_ones_fail() {
        let env = |v: &str| (v == "TOKEN").then(|| "s3cr3t".to_owned());
        assert_eq!(expand_env("a: ${env:TOKEN} $$x $y", p(), env).unwrap(), "a: s3cr3t $x $y");
        let e = expand_env("a: ${env:NOPE}", p(), env).unwrap_err();
        assert_eq!(e.to_string(), "gort.yaml: environment variable NOPE (in ${env:NOPE}) is not set");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("exporter:\n  timeout: soon\n", p()).unwrap_err();
        assert!(e.to_string().starts_with("exporter.timeout: "), "{e}");
        let e = parse("receiver:\n  grpc_endpoint: nowhere\n", p()).unwrap_err();
        assert!(e.to_string().starts_with("receiver.grpc_endpoint: "), "{e}");
        let e = parse("exporter:\n  compression: lz4\n", p()).unwrap_err();
        assert!(e.to_string().starts_with("exporter.compression: "), "{e}");
        let e = parse("exporter:\n  tls:\n    ca_file: /nonexistent/ca.pem\n", p()).unwrap_err();
        assert!(e.to_string().starts_with("exporter.tls.ca_file: "), "{e}");
        // Unknown fields are refused, with where they are.
        let e = parse("exporter:\n  endpont: http://x:1\n", p()).unwrap_err();
        assert!(e.to_string().contains("unknown field `endpont`"), "{e}");
    }

    #[test]
    fn receivers_can_be_turned_off() {
        let c = parse("receiver:\n  http_endpoint: off\ntelemetry:\n  endpoint: off\n", p()).unwrap();
        assert_eq!((c.receiver.http, c.telemetry), (None, None));
    }

    #[test]
    fn only_the_exporter_reloads_tls_files() {
        let dir = std::env::temp_dir().join(format!("gort-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let ca = ca.display();
        let c = parse(&format!("exporter:\n  tls:\n    ca_file: {ca}\n"), p()).unwrap();
        assert_eq!(c.exporter.tls.unwrap().reload_interval, Some(Duration::from_secs(10)));
        let c =
            parse(&format!("exporter:\n  tls:\n    ca_file: {ca}\n    reload_interval: 0s\n"), p()).unwrap();
        assert_eq!(c.exporter.tls.unwrap().reload_interval, None);
        let e = parse(
            &format!("receiver:\n  tls:\n    cert_file: {ca}\n    key_file: {ca}\n    reload_interval: 1m\n"),
            p(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("receiver.tls.reload_interval: "), "{e}");
    }
}
