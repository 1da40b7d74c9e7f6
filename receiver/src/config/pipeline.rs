//! The OTLP pipeline's configuration, validated: receivers, the upstream
//! exporter, self-telemetry and trace linkage.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::{ConfigError, defaults::*, duration, invalid, raw::*};

/// TLS files, checked to exist at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// None: the files are read once, at start-up.
    pub reload_interval: Option<Duration>,
}

impl Tls {
    /// The files a reload reads.
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.cert_file, &self.key_file, &self.ca_file].into_iter().flatten().cloned().collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverConfig {
    pub grpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub max_recv_msg_size: usize,
    pub keepalive_time: Option<Duration>,
    pub keepalive_timeout: Option<Duration>,
    pub tls: Option<Tls>,
    /// The file of the bearer token clients must send.
    pub bearer_token_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    pub endpoint: String,
    pub timeout: Duration,
    pub gzip: bool,
    pub headers: Vec<(String, String)>,
    pub tls: Option<Tls>,
    pub queue_items: u64,
    /// `exporter.queue_mib` in bytes.
    pub queue_bytes: u64,
    pub batch_items: u64,
    /// `exporter.batch_kib` in bytes.
    pub batch_bytes: u64,
    pub batch_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub retry_max_elapsed: Duration,
    pub shutdown_timeout: Duration,
    /// The wait profile goes upstream as OTLP profiles.
    pub profiles: bool,
    /// The persistent queue, when configured.
    pub storage: Option<StorageConfig>,
}

/// `exporter.storage`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    pub directory: PathBuf,
    pub max_bytes: u64,
    pub sync_interval: Duration,
}

/// The validated pipeline configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub receiver: ReceiverConfig,
    pub exporter: ExporterConfig,
    pub telemetry: Option<SocketAddr>,
    /// The file of the bearer token `/metrics` and `/debug/pprof/wait` require.
    pub telemetry_token_file: Option<PathBuf>,
    /// None when linkage is off.
    pub linkage: Option<crate::linkage::Settings>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        RawConfig::default().validate_pipeline().expect("the defaults are valid")
    }
}

fn storage(raw: Option<RawStorage>) -> Result<Option<StorageConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let directory = raw
        .directory
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| invalid("exporter.storage.directory", "is required with exporter.storage"))?;
    let max_mib = raw.max_mib.unwrap_or(DEFAULT_STORAGE_MAX_MIB);
    if max_mib == 0 {
        return Err(invalid("exporter.storage.max_mib", "must be at least 1"));
    }
    Ok(Some(StorageConfig {
        directory,
        max_bytes: max_mib.saturating_mul(1 << 20),
        sync_interval: duration(
            "exporter.storage.sync_interval",
            raw.sync_interval.as_deref(),
            DEFAULT_STORAGE_SYNC_INTERVAL,
        )?,
    }))
}

fn endpoint(field: &str, value: Option<&str>, default: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match value.unwrap_or(default) {
        "off" => Ok(None),
        v => v.parse().map(Some).map_err(|_| invalid(field, format!("{v:?} is not host:port (or off)"))),
    }
}

fn tls(field: &str, raw: Option<RawTls>) -> Result<Option<Tls>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let cert_file = existing_file(&format!("{field}.cert_file"), raw.cert_file)?;
    let key_file = existing_file(&format!("{field}.key_file"), raw.key_file)?;
    let ca_file = existing_file(&format!("{field}.ca_file"), raw.ca_file)?;
    if cert_file.is_some() != key_file.is_some() {
        return Err(invalid(field, "cert_file and key_file go together"));
    }
    let interval_field = format!("{field}.reload_interval");
    let reload_interval =
        Some(duration(&interval_field, raw.reload_interval.as_deref(), DEFAULT_TLS_RELOAD_INTERVAL)?)
            .filter(|d| !d.is_zero());
    Ok(Some(Tls { cert_file, key_file, ca_file, reload_interval }))
}

/// A file named in the configuration must exist at start-up.
fn existing_file(field: &str, file: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    match file {
        Some(f) if !f.is_file() => Err(invalid(field, format!("{} does not exist", f.display()))),
        f => Ok(f),
    }
}

/// A listener other hosts can reach must not take requests from anyone:
/// without `protected` (TLS or a token) it needs the explicit `allow`.
fn check_exposure(
    field: &str,
    addr: Option<SocketAddr>,
    protected: bool,
    allow: bool,
    section: &str,
    remedy: &str,
) -> Result<(), ConfigError> {
    match addr {
        Some(a) if !a.ip().is_loopback() && !protected && !allow => Err(invalid(
            field,
            format!(
                "{a} can be reached from other hosts, yet anyone could send to it: set {remedy}, \
                 or {section}.allow_insecure_non_loopback: true"
            ),
        )),
        _ => Ok(()),
    }
}

impl RawConfig {
    /// The pipeline's part of the file, validated.
    pub(super) fn validate_pipeline(&mut self) -> Result<PipelineConfig, ConfigError> {
        let r = std::mem::take(&mut self.receiver);
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
            bearer_token_file: existing_file("receiver.bearer_token_file", r.bearer_token_file)?,
        };
        if let Some(t) = &receiver.tls
            && t.cert_file.is_none()
        {
            return Err(invalid("receiver.tls", "a server needs cert_file and key_file"));
        }
        let allow = r.allow_insecure_non_loopback.unwrap_or(DEFAULT_ALLOW_INSECURE_NON_LOOPBACK);
        let token = receiver.bearer_token_file.is_some();
        check_exposure(
            "receiver.grpc_endpoint",
            receiver.grpc,
            token || receiver.tls.is_some(),
            allow,
            "receiver",
            "receiver.tls or receiver.bearer_token_file",
        )?;
        // The OTLP/HTTP receiver serves no TLS: only a token protects it.
        check_exposure(
            "receiver.http_endpoint",
            receiver.http,
            token,
            allow,
            "receiver",
            "receiver.bearer_token_file",
        )?;
        let e = std::mem::take(&mut self.exporter);
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
            queue_bytes: e.queue_mib.unwrap_or(DEFAULT_QUEUE_MIB).saturating_mul(1 << 20),
            batch_items: e.batch_items.unwrap_or(DEFAULT_BATCH_ITEMS),
            batch_bytes: e.batch_kib.unwrap_or(DEFAULT_BATCH_KIB).saturating_mul(1 << 10),
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
            profiles: e.profiles.unwrap_or(DEFAULT_EXPORT_PROFILES),
            storage: storage(e.storage)?,
        };
        if exporter.queue_items == 0 || exporter.batch_items == 0 {
            return Err(invalid("exporter.queue_items", "queue_items and batch_items must be at least 1"));
        }
        if exporter.queue_bytes == 0 {
            return Err(invalid("exporter.queue_mib", "must be at least 1"));
        }
        if exporter.batch_bytes == 0 {
            return Err(invalid("exporter.batch_kib", "must be at least 1"));
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
        let telemetry_token_file =
            existing_file("telemetry.bearer_token_file", self.telemetry.bearer_token_file.take())?;
        check_exposure(
            "telemetry.endpoint",
            telemetry,
            telemetry_token_file.is_some(),
            self.telemetry.allow_insecure_non_loopback.unwrap_or(DEFAULT_ALLOW_INSECURE_NON_LOOPBACK),
            "telemetry",
            "telemetry.bearer_token_file",
        )?;
        let l = std::mem::take(&mut self.linkage);
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
                child_span_threshold: duration(
                    "linkage.child_span_threshold",
                    l.child_span_threshold.as_deref(),
                    DEFAULT_LINKAGE_CHILD_SPAN_THRESHOLD,
                )?,
                stall_spans: match &l.child_span_kinds {
                    Some(kinds) => crate::linkage::StallKinds::parse(kinds.iter().map(String::as_str)),
                    None => {
                        crate::linkage::StallKinds::parse(DEFAULT_LINKAGE_CHILD_SPAN_KINDS.iter().copied())
                    }
                }
                .map_err(|bad| {
                    invalid(
                        "linkage.child_span_kinds",
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
        Ok(PipelineConfig { receiver, exporter, telemetry, telemetry_token_file, linkage })
    }
}
