//! The configuration file as written: every field optional, unknown fields
//! refused. Each field is documented with its default in README.md
//! ("Configuration"), which a unit test checks against these structs.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

/// The whole file. The command line's flags are written into it before it
/// is validated, so a flag overrides the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The Go process to watch.
    #[serde(default)]
    pub target: RawTarget,
    /// How `gort run` runs and reports.
    #[serde(default)]
    pub run: RawRun,
    /// What makes a notable event.
    #[serde(default)]
    pub events: RawEvents,
    /// The goroutine leak watch.
    #[serde(default)]
    pub leaks: RawLeaks,
    /// When the hot probe is attached outside deep mode.
    #[serde(default)]
    pub sampling: RawSampling,
    /// Deep mode: every probe, continuously, for a bounded time.
    #[serde(default)]
    pub deep: RawDeep,
    /// Run the OTLP pipeline (receivers, forwarding upstream). Default: on
    /// when a configuration file is given, off otherwise.
    pub otlp: Option<bool>,
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
pub struct RawTarget {
    /// Process id of the Go program to watch.
    pub pid: Option<u32>,
    /// Watch every process running this executable, re-attaching after restarts.
    pub exe: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    /// Stop after this long; unset: until Ctrl-C or the pid exits.
    pub duration: Option<String>,
    /// Interval between live reports (and metric exports).
    pub interval: Option<String>,
    /// Also write everything gort exports as OTLP/JSON lines.
    pub otlp_json: Option<PathBuf>,
    /// Write a JSON summary at the end.
    pub summary_json: Option<PathBuf>,
    /// `service.name` of gort's metrics until the service exports to gort.
    pub service_name: Option<String>,
    /// `auto` (the emulated site) or `entry` (benchmarks only: the first
    /// instruction, which the kernel single-steps).
    pub probe_site: Option<String>,
    /// Measure each probe program's run time (the kernel's BPF statistics,
    /// about 20 ns more per run while on) and put it in the summary.
    pub bpf_stats: Option<bool>,
    /// `all` (the default) or `none`: no probe at all, only what is read
    /// from the target's memory (the runtime's own statistics and the
    /// goroutine census), at no cost to the target. Trace linkage needs
    /// the probes.
    pub probes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// A goroutine runnable at least this long is a notable event.
    pub runnable_threshold: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeaks {
    /// Count waiting goroutines by the function they wait in and watch for
    /// places where more and more stay parked (needs the census).
    pub enabled: Option<bool>,
    /// A goroutine parked at one place at least this long counts...
    pub min_age: Option<String>,
    /// ...and a place whose count of those grows steadily over this long...
    pub window: Option<String>,
    /// ...by at least this many goroutines is a suspected leak.
    pub min_growth: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSampling {
    /// The first window, which opens at attach.
    pub first_window: Option<String>,
    /// Then one window this long...
    pub window: Option<String>,
    /// ...every period; equal to the window: always attached.
    pub period: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeep {
    /// Deep mode for this long after attaching (at most 1h).
    pub at_attach: Option<String>,
    /// Length of the deep mode that SIGUSR1 starts (at most 1h).
    pub on_signal: Option<String>,
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
    #[serde(alias = "stall_threshold")]
    pub child_span_threshold: Option<String>,
    /// Which kinds of wait become child spans (`runnable`,
    /// `gc_stop_the_world`, `gc_assist`, and the wait categories
    /// `runtime_gc`, `mutex`, `sync`, `chan_receive`, `chan_send`, `select`,
    /// `io`, `sleep`, `other`); the rest stay attributes only.
    #[serde(alias = "stall_spans")]
    pub child_span_kinds: Option<Vec<String>>,
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
    /// File holding the token clients must send as `Authorization: Bearer
    /// TOKEN` (read again when it changes); unset: no authentication.
    pub bearer_token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without TLS (gRPC) or a bearer
    /// token; refused at start-up otherwise.
    pub allow_insecure_non_loopback: Option<bool>,
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
    /// How often the files are read again; when they changed, new
    /// connections use them (`0s`: never).
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
    /// Queue bound, in items (spans, data points, log records).
    pub queue_items: Option<u64>,
    /// Queue bound, in MiB of requests as encoded protobuf: what bounds
    /// gort's memory whatever the items' size.
    pub queue_mib: Option<u64>,
    /// A batch is sent once it holds this many items, or as soon as no
    /// other batch is being sent...
    pub batch_items: Option<u64>,
    /// A batch holds at most this many KiB of encoded requests (one larger
    /// request goes alone): the message an upstream takes is bounded, 4 MiB
    /// in a Collector's OTLP/gRPC receiver unless `max_recv_msg_size_mib`
    /// raises it, and a larger one is refused, not retried.
    pub batch_kib: Option<u64>,
    /// ...or, while others are being sent (or retried), once its first item
    /// waited this long.
    pub batch_timeout: Option<String>,
    pub retry_initial_interval: Option<String>,
    pub retry_max_interval: Option<String>,
    pub retry_max_elapsed: Option<String>,
    /// How long shutdown waits for the queue to drain.
    pub shutdown_timeout: Option<String>,
    /// A persistent queue: every accepted request is written to a log in
    /// this directory before it is acknowledged, and replayed at start.
    pub storage: Option<RawStorage>,
    /// Also export the wait profile as OTLP profiles (the specification's
    /// development signal), one profile per process every `run.interval`.
    /// The upstream must take them: a Collector started with
    /// `--feature-gates=service.profilesSupport` and a profiles pipeline.
    pub profiles: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// The log's directory (created; one gort per directory).
    pub directory: Option<PathBuf>,
    /// Bound on the log's size on disk, in MiB: a request that would pass
    /// it is refused (retryable), as with a full queue.
    pub max_mib: Option<u64>,
    /// How often written records are flushed to the disk (`0s`: each one,
    /// before it is acknowledged). A crash of gort loses nothing it
    /// acknowledged either way; a crash of the machine loses at most this.
    pub sync_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// `host:port` serving `/metrics`, `/health` and `/debug/pprof/wait`, or
    /// `off`.
    pub endpoint: Option<String>,
    /// File holding the token `/metrics` and `/debug/pprof/wait` require
    /// (`/health` stays open for probes); unset: no authentication.
    pub bearer_token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a bearer token; refused at
    /// start-up otherwise.
    pub allow_insecure_non_loopback: Option<bool>,
}
