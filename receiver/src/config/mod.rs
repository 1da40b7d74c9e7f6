//! gort's one configuration: a YAML file (`${env:VAR}` expanded) read into
//! a raw form that mirrors it (`raw`, every field optional, unknown fields
//! refused), the command line's flags written on top, then validated into
//! the `Config` the program uses: the target and run settings (`run`) and the
//! OTLP pipeline (`pipeline`). Defaults are written once (`defaults`). Every
//! problem is reported at start-up with the path of the field at fault.

pub mod defaults;
pub mod duration;
pub mod pipeline;
pub mod raw;
pub mod run;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;

pub use self::{
    defaults::*,
    pipeline::{ExporterConfig, PipelineConfig, ReceiverConfig, StorageConfig, Tls},
    raw::*,
    run::{RunConfig, Sampling},
};
use crate::target::TargetSpec;

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

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The process to watch; None: the pipeline alone.
    pub target: Option<TargetSpec>,
    pub run: RunConfig,
    /// None when the OTLP pipeline is off.
    pub pipeline: Option<PipelineConfig>,
}

impl RawConfig {
    /// Validates the whole file. `from_file`: a configuration file was
    /// given, which turns the pipeline on unless it says `otlp: false`.
    pub fn validate(mut self, from_file: bool) -> Result<Config, ConfigError> {
        let target = self.validate_target()?;
        let run = self.validate_run()?;
        let pipeline = match self.otlp.unwrap_or(from_file) {
            true => Some(self.validate_pipeline()?),
            false => {
                // Still checked: a mistake in a part that is off today is
                // found before the day it is turned on.
                self.validate_pipeline()?;
                None
            }
        };
        if !run.probes && pipeline.as_ref().is_some_and(|p| p.linkage.is_some()) {
            return Err(invalid(
                "run.probes",
                "none leaves trace linkage without its probes: set linkage.enabled: false too",
            ));
        }
        Ok(Config { target, run, pipeline })
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

/// Parses and validates a configuration file's text (no flags on top).
pub fn parse(yaml: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_raw(yaml, path)?.validate(true)
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.to_owned(), message: message.into() }
}

fn duration(field: &str, value: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    duration::parse(value.unwrap_or(default)).map_err(|e| invalid(field, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("gort.yaml")
    }

    fn pipeline(yaml: &str) -> Result<PipelineConfig, ConfigError> {
        Ok(parse(yaml, p())?.pipeline.expect("a file turns the pipeline on"))
    }

    #[test]
    fn stall_spans_take_known_kinds_only() {
        let c = pipeline("linkage:\n  child_span_kinds: [select, mutex]\n").unwrap();
        let kinds = c.linkage.unwrap().stall_spans;
        assert!(kinds.contains("select") && kinds.contains("mutex") && !kinds.contains("runnable"));
        let e = pipeline("linkage:\n  child_span_kinds: [lock]\n").unwrap_err().to_string();
        assert!(
            e.starts_with("linkage.child_span_kinds: \"lock\" is not a kind of wait; known: runnable"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = pipeline("").unwrap();
        assert_eq!(c, PipelineConfig::default());
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
    fn storage_needs_a_directory_and_room() {
        assert_eq!(pipeline("").unwrap().exporter.storage, None);
        let c = pipeline("exporter:\n  storage:\n    directory: /var/lib/gort\n").unwrap();
        let s = c.exporter.storage.unwrap();
        assert_eq!(s.max_bytes, DEFAULT_STORAGE_MAX_MIB << 20);
        assert_eq!(s.sync_interval, Duration::from_secs(1));
        let e = parse("exporter:\n  storage:\n    max_mib: 10\n", p()).unwrap_err();
        assert!(e.to_string().starts_with("exporter.storage.directory: is required"), "{e}");
        let e = parse("exporter:\n  storage:\n    directory: /x\n    max_mib: 0\n", p()).unwrap_err();
        assert!(e.to_string().starts_with("exporter.storage.max_mib: "), "{e}");
        let e = parse("exporter:\n  storage:\n    directory: /x\n    fsync: always\n", p()).unwrap_err();
        assert!(e.to_string().contains("unknown field `fsync`"), "{e}");
    }

    #[test]
    fn receivers_can_be_turned_off() {
        let c = pipeline("receiver:\n  http_endpoint: off\ntelemetry:\n  endpoint: off\n").unwrap();
        assert_eq!((c.receiver.http, c.telemetry), (None, None));
    }

    #[test]
    fn both_sides_reload_tls_files_every_10s_unless_told_otherwise() {
        let dir = std::env::temp_dir().join(format!("gort-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let ca = ca.display();
        let c = pipeline(&format!("exporter:\n  tls:\n    ca_file: {ca}\n")).unwrap();
        assert_eq!(c.exporter.tls.unwrap().reload_interval, Some(Duration::from_secs(10)));
        let c =
            pipeline(&format!("exporter:\n  tls:\n    ca_file: {ca}\n    reload_interval: 0s\n")).unwrap();
        assert_eq!(c.exporter.tls.unwrap().reload_interval, None);
        let server = format!("receiver:\n  tls:\n    cert_file: {ca}\n    key_file: {ca}\n");
        let c = pipeline(&server).unwrap();
        assert_eq!(c.receiver.tls.unwrap().reload_interval, Some(Duration::from_secs(10)));
        let c = pipeline(&format!("{server}    reload_interval: 1m\n")).unwrap();
        assert_eq!(c.receiver.tls.unwrap().reload_interval, Some(Duration::from_secs(60)));
        let e = parse(&format!("{server}    reload_interval: soon\n"), p()).unwrap_err();
        assert!(e.to_string().starts_with("receiver.tls.reload_interval: "), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_listener_beyond_loopback_needs_protection_or_consent() {
        let dir = std::env::temp_dir().join(format!("gort-config-exposure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("x.pem");
        std::fs::write(&pem, "").unwrap();
        let pem = pem.display();
        let off = "  http_endpoint: off\ntelemetry:\n  endpoint: off\n";
        let e = pipeline(&format!("receiver:\n  grpc_endpoint: 0.0.0.0:4317\n{off}")).unwrap_err();
        assert!(e.to_string().starts_with("receiver.grpc_endpoint: 0.0.0.0:4317 can be reached"), "{e}");
        let e = pipeline("receiver:\n  grpc_endpoint: off\n  http_endpoint: '[::]:4318'\n").unwrap_err();
        assert!(e.to_string().starts_with("receiver.http_endpoint: "), "{e}");
        let e = pipeline(
            "receiver:\n  grpc_endpoint: off\n  http_endpoint: off\ntelemetry:\n  endpoint: 10.0.0.2:8888\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("telemetry.endpoint: "), "{e}");
        // TLS protects gRPC; the HTTP receiver serves none, so it does not.
        let tls = format!("  tls:\n    cert_file: {pem}\n    key_file: {pem}\n");
        assert!(pipeline(&format!("receiver:\n  grpc_endpoint: 0.0.0.0:4317\n{tls}{off}")).is_ok());
        let e = pipeline(&format!("receiver:\n  grpc_endpoint: off\n  http_endpoint: 0.0.0.0:4318\n{tls}"))
            .unwrap_err();
        assert!(e.to_string().starts_with("receiver.http_endpoint: "), "{e}");
        let token = format!("  bearer_token_file: {pem}\n");
        assert!(
            pipeline(&format!(
                "receiver:\n  grpc_endpoint: 0.0.0.0:4317\n  http_endpoint: 0.0.0.0:4318\n{token}"
            ))
            .is_ok()
        );
        assert!(
            pipeline("receiver:\n  grpc_endpoint: 0.0.0.0:4317\n  allow_insecure_non_loopback: true\n")
                .is_ok()
        );
        assert!(pipeline("receiver:\n  grpc_endpoint: '[::1]:4317'\n").is_ok(), "IPv6 loopback is loopback");
        let e = pipeline("receiver:\n  bearer_token_file: /nonexistent/token\n").unwrap_err();
        assert!(e.to_string().starts_with("receiver.bearer_token_file: "), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod docs;
