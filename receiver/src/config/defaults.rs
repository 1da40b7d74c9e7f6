//! Every default of the configuration, written once: the file's, the
//! flags' (they override the file) and the README's table name these.

use std::time::Duration;

/// Interval between live reports of `gort run`.
pub const DEFAULT_INTERVAL: &str = "1s";
/// Which probes `gort run` attaches: `all` (each as its mode says).
pub const DEFAULT_PROBES: &str = "all";
/// A goroutine runnable at least this long is a notable event.
pub const DEFAULT_RUNNABLE_EVENT_THRESHOLD: &str = "10ms";
/// The goroutine leak watch is on where the census works.
pub const DEFAULT_LEAKS_ENABLED: bool = true;
/// A goroutine parked this long at one place counts towards a leak: longer
/// than any request's wait, short enough to see a leak within minutes.
pub const DEFAULT_LEAKS_MIN_AGE: &str = "30s";
/// A leak is a count that grows through this whole window (in each of its
/// quarters).
pub const DEFAULT_LEAKS_WINDOW: &str = "5m";
/// ...by at least this many goroutines: fewer is not worth a warning.
pub const DEFAULT_LEAKS_MIN_GROWTH: u64 = 10;
/// The window is split in four quarters, each needing a census.
pub const LEAKS_WINDOW_INTERVALS: u32 = 4;

/// The window that opens at attach: a short look at a process (a run of a
/// few seconds) sees its first seconds whole instead of one sampled second
/// scaled by the period.
pub const DEFAULT_SAMPLE_FIRST_WINDOW: &str = "2s";
/// Sampling window of the hot probes: intervals up to about this long are
/// measured (longer ones cannot fit in a window).
pub const DEFAULT_SAMPLE_WINDOW: &str = "500ms";
/// Sampling period: one window per period, i.e. hot probes attached 5% of
/// the time, which keeps a busy server's overhead within budget (see the
/// README's overhead section); short enough that a load which starts after
/// the first window is seen within 10 s.
pub const DEFAULT_SAMPLE_PERIOD: &str = "10s";
/// How long deep mode lasts when SIGUSR1 asks for it.
pub const DEFAULT_DEEP_ON_SIGNAL: &str = "60s";
/// Deep mode is bounded: every hook costs on every goroutine switch.
pub const MAX_DEEP: Duration = Duration::from_secs(3600);
/// Shorter windows would spend more on attaching than on measuring.
pub const MIN_SAMPLE_WINDOW: Duration = Duration::from_millis(100);

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
/// Queue bound in MiB of encoded requests. 200,000 spans of a typical
/// service (about 300 bytes each as protobuf) take about 60 MB; this lets
/// them in and keeps spans of a few KB each from holding gigabytes.
pub const DEFAULT_QUEUE_MIB: u64 = 64;
/// Bound on the persistent queue's log on disk, in MiB: four times the
/// queue's default, since a segment is deleted only when all its records
/// are done.
pub const DEFAULT_STORAGE_MAX_MIB: u64 = 256;
/// How often the persistent queue's log is flushed to the disk.
pub const DEFAULT_STORAGE_SYNC_INTERVAL: &str = "1s";
/// A batch is sent once it holds this many items...
pub const DEFAULT_BATCH_ITEMS: u64 = 8_192;
/// A batch holds at most this many KiB of encoded requests: a Collector's
/// OTLP/gRPC receiver takes messages up to 4 MiB by default.
pub const DEFAULT_BATCH_KIB: u64 = 4 << 10;
/// ...or once its first item waited this long.
pub const DEFAULT_BATCH_TIMEOUT: &str = "200ms";
/// First retry delay; doubled per attempt up to the maximum.
pub const DEFAULT_RETRY_INITIAL: &str = "1s";
pub const DEFAULT_RETRY_MAX: &str = "30s";
/// A batch still failing after this long is dropped (and counted).
pub const DEFAULT_RETRY_MAX_ELAPSED: &str = "5m";
/// Self-metrics (Prometheus text) and health endpoint.
pub const DEFAULT_TELEMETRY_ENDPOINT: &str = "127.0.0.1:8888";
/// A listener on a non-loopback address needs TLS or a bearer token.
pub const DEFAULT_ALLOW_INSECURE_NON_LOOPBACK: bool = false;
/// Time given to the queue to drain at shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "10s";
/// The wait profile goes upstream as OTLP profiles only when asked: the
/// signal is in development, and a Collector without its feature gate
/// refuses it.
pub const DEFAULT_EXPORT_PROFILES: bool = false;
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
pub const DEFAULT_LINKAGE_CHILD_SPAN_THRESHOLD: &str = "1ms";
/// The waits that become child spans by default (defined with the kinds).
pub use crate::linkage::DEFAULT_CHILD_SPAN_KINDS as DEFAULT_LINKAGE_CHILD_SPAN_KINDS;
