//! gort's own telemetry, Collector-style: `GET /metrics` in the Prometheus
//! text format (per-signal item counters, queue size, age of the oldest
//! queued request) and `GET /health`, which answers 503 as soon as shutdown
//! begins so an orchestrator stops routing to gort before it goes, and says
//! (still ready) when the upstream has been failing and how.
//!
//! Metrics (all per `signal` = spans | metric_points | log_records):
//! `gort_receiver_accepted_items_total`, `gort_receiver_refused_items_total`
//! (queue full: the client was told to retry), `gort_exporter_sent_items_total`,
//! `gort_exporter_dropped_items_total`, `gort_exporter_retries_total`,
//! `gort_exporter_upstream_rejected_items_total` (partial success); and
//! `gort_receiver_malformed_requests_total`, `gort_receiver_oversize_requests_total`
//! (over `max_recv_msg_size_mib`), `gort_receiver_unauthenticated_requests_total`
//! (a missing or wrong bearer token), `gort_receiver_tls_reloads_total`,
//! `gort_exporter_tls_reloads_total`,
//! `gort_queue_items` and `gort_queue_bytes` (waiting, in flight or held
//! by linkage), `gort_queue_oldest_age_seconds`,
//! `gort_exporter_upstream_failing_seconds`; the reports' punctuality
//! (`gort_report_lateness_seconds`, `..._max_seconds`, `gort_reports_late_total`,
//! `gort_reports_skipped_total`); with trace linkage,
//! `gort_linkage_*` (spans enriched, unmatched, stall children added, span
//! accounts expired, late stalls; spans held and accounts waiting now).
//! With `exporter.storage`, `gort_storage_*` (items recovered at start,
//! damaged and truncated records skipped, write errors, items kept at
//! shutdown, bytes on disk and their bound).
//! The wait profile is served beside them (`wait_profile`).

use std::{
    fmt::Write,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use axum::{Router, extract::State, http::StatusCode, routing::get};

use super::{PipelineError, Shared, Signal};

/// A counter family: name, help, and which count it shows.
type Family = (&'static str, &'static str, fn(&super::SignalCounts) -> u64);

/// The Prometheus text exposition of the pipeline's books.
pub fn render(shared: &Shared) -> String {
    let mut out = String::new();
    let families: [Family; 6] = [
        ("gort_receiver_accepted_items_total", "Items accepted into the queue.", |c| c.accepted),
        (
            "gort_receiver_refused_items_total",
            "Items refused (queue full or shutting down); the client was told to retry.",
            |c| c.refused,
        ),
        ("gort_exporter_sent_items_total", "Items the upstream acknowledged.", |c| c.sent),
        (
            "gort_exporter_dropped_items_total",
            "Accepted items given up on (non-retryable answer, retries exhausted, shutdown deadline).",
            |c| c.dropped,
        ),
        ("gort_exporter_retries_total", "Export attempts that were retried.", |c| c.retries),
        (
            "gort_exporter_upstream_rejected_items_total",
            "Items the upstream rejected in a partial-success answer.",
            |c| c.upstream_rejected,
        ),
    ];
    for (name, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for s in Signal::ALL {
            let _ = writeln!(out, "{name}{{signal=\"{}\"}} {}", s.items(), get(&shared.counters.get(s)));
        }
    }
    let oldest = shared.queue.lag();
    let _ = writeln!(
        out,
        "# HELP gort_receiver_malformed_requests_total Requests refused as undecodable or of an unsupported type.\n\
         # TYPE gort_receiver_malformed_requests_total counter\ngort_receiver_malformed_requests_total {}\n\
         # HELP gort_receiver_oversize_requests_total Requests refused as larger than the size limit.\n\
         # TYPE gort_receiver_oversize_requests_total counter\ngort_receiver_oversize_requests_total {}\n\
         # HELP gort_receiver_unauthenticated_requests_total Requests refused for a missing or wrong bearer token (receivers and this endpoint).\n\
         # TYPE gort_receiver_unauthenticated_requests_total counter\ngort_receiver_unauthenticated_requests_total {}\n\
         # HELP gort_receiver_tls_reloads_total Times changed TLS files of the OTLP/gRPC receiver were loaded for new connections.\n\
         # TYPE gort_receiver_tls_reloads_total counter\ngort_receiver_tls_reloads_total {}\n\
         # HELP gort_exporter_tls_reloads_total Times changed TLS files were loaded for new connections.\n\
         # TYPE gort_exporter_tls_reloads_total counter\ngort_exporter_tls_reloads_total {}\n\
         # HELP gort_queue_items Items waiting or in flight.\n# TYPE gort_queue_items gauge\ngort_queue_items {}\n\
         # HELP gort_queue_bytes Bytes (as encoded protobuf) of the requests waiting or in flight.\n# TYPE gort_queue_bytes gauge\ngort_queue_bytes {}\n\
         # HELP gort_queue_oldest_age_seconds Age of the oldest undelivered request (waiting or being retried): the pipeline's lag.\n\
         # TYPE gort_queue_oldest_age_seconds gauge\ngort_queue_oldest_age_seconds {}\n\
         # HELP gort_exporter_upstream_failing_seconds How long every export of the signal has failed (0: the last one succeeded).\n\
         # TYPE gort_exporter_upstream_failing_seconds gauge",
        shared.counters.malformed_requests(),
        shared.counters.oversize_requests(),
        shared.counters.unauthenticated_requests(),
        shared.counters.receiver_tls_reloads(),
        shared.counters.tls_reloads(),
        shared.queue.held(),
        shared.queue.held_bytes(),
        oldest.map_or(0.0, |d| d.as_secs_f64()),
    );
    let (last, max, late, skipped) = shared.report_timing.get();
    let _ = write!(
        out,
        "# HELP gort_report_lateness_seconds How long after it was due the last report went out (gort waiting for the CPU).\n\
         # TYPE gort_report_lateness_seconds gauge\ngort_report_lateness_seconds {}\n\
         # HELP gort_report_lateness_max_seconds The most any report went out after it was due.\n\
         # TYPE gort_report_lateness_max_seconds gauge\ngort_report_lateness_max_seconds {}\n\
         # HELP gort_reports_late_total Reports that went out more than a quarter of the interval late.\n\
         # TYPE gort_reports_late_total counter\ngort_reports_late_total {late}\n\
         # HELP gort_reports_skipped_total Intervals without a report of their own (gort did not run for longer than one; the next report covers them).\n\
         # TYPE gort_reports_skipped_total counter\ngort_reports_skipped_total {skipped}\n",
        last.as_secs_f64(),
        max.as_secs_f64(),
    );
    for s in Signal::ALL {
        let failing = shared.upstream.failing(s).map_or(0.0, |(d, _)| d.as_secs_f64());
        let _ = writeln!(out, "gort_exporter_upstream_failing_seconds{{signal=\"{}\"}} {failing}", s.items());
    }
    if let Some(storage) = &shared.storage {
        storage_metrics(&mut out, storage);
    }
    if let Some(linkage) = &shared.linkage {
        let c = linkage.counts();
        let rows: [(&str, &str, &str, u64); 10] = [
            (
                "gort_linkage_spans_enriched_total",
                "counter",
                "Spans forwarded with their runtime accounting.",
                c.enriched,
            ),
            (
                "gort_linkage_spans_unmatched_total",
                "counter",
                "Spans forwarded without (no probe data within linkage.hold).",
                c.unmatched,
            ),
            (
                "gort_linkage_stall_spans_total",
                "counter",
                "Child spans gort added, one per stall of a kind in linkage.stall_spans; sent and counted as spans by the exporter.",
                c.stall_spans,
            ),
            (
                "gort_linkage_stalls_not_spans_total",
                "counter",
                "Stalls left as span attributes only (their kind is not in linkage.stall_spans).",
                c.stalls_not_spans,
            ),
            (
                "gort_linkage_spans_received_total",
                "counter",
                "Spans received from the service while linkage was on.",
                c.spans_received,
            ),
            (
                "gort_linkage_spans_not_received_total",
                "counter",
                "Spans the probes saw end whose span never reached gort while the service sent none at all.",
                c.spans_not_received,
            ),
            (
                "gort_linkage_accounts_expired_total",
                "counter",
                "Span accounts whose span never arrived (expired or evicted).",
                c.accounts_expired,
            ),
            (
                "gort_linkage_late_stalls_total",
                "counter",
                "Stall records dropped: their span was already forwarded, or too many were pending.",
                c.late_stalls,
            ),
            ("gort_linkage_held_spans", "gauge", "Spans waiting for their probe data.", c.held_spans),
            (
                "gort_linkage_waiting_accounts",
                "gauge",
                "Span accounts waiting for their span.",
                c.waiting_accounts,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    }
    out
}

/// The persistent queue's (`exporter.storage`).
fn storage_metrics(out: &mut String, storage: &super::storage::Storage) {
    let st = &storage.stats;
    let name = "gort_storage_recovered_items_total";
    let _ = writeln!(
        out,
        "# HELP {name} Items an earlier run had accepted, replayed from the persistent queue (accepted + recovered = sent + dropped + queued).\n# TYPE {name} counter"
    );
    for s in Signal::ALL {
        let n = st.recovered[s.index()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{signal=\"{}\"}} {n}", s.items());
    }
    let rows: [(&str, &str, &str, u64); 6] = [
        (
            "gort_storage_damaged_records_total",
            "counter",
            "Damaged records skipped in the persistent queue's log at replay (failed checksum or undecodable).",
            st.damaged.load(Ordering::Relaxed),
        ),
        (
            "gort_storage_truncated_records_total",
            "counter",
            "Records a crash cut short at the end of a segment (never acknowledged).",
            st.truncated.load(Ordering::Relaxed),
        ),
        (
            "gort_storage_write_errors_total",
            "counter",
            "Requests refused (retryable) because the persistent queue could not write them.",
            st.write_errors.load(Ordering::Relaxed),
        ),
        (
            "gort_storage_kept_items_total",
            "counter",
            "Items left in the persistent queue at the shutdown deadline, for the next start.",
            st.kept.load(Ordering::Relaxed),
        ),
        ("gort_storage_bytes", "gauge", "Bytes of the persistent queue's log on disk.", storage.disk_bytes()),
        (
            "gort_storage_max_bytes",
            "gauge",
            "The bound on them (exporter.storage.max_mib).",
            storage.max_bytes(),
        ),
    ];
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
}

/// Ready or not, and the upstream's state in words. An upstream that fails
/// leaves gort ready: gort still takes the service's data and keeps it for
/// the upstream's return, and in a pod a sidecar's unreadiness would take
/// the service itself out of its Kubernetes Service.
fn health(s: &Shared) -> (StatusCode, String) {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".to_owned());
    }
    let mut body = "ready\n".to_owned();
    for signal in Signal::ALL {
        if let Some((since, error)) = s.upstream.failing(signal) {
            let _ = writeln!(
                body,
                "upstream failing {} for {:.1} s: {error}",
                signal.items(),
                since.as_secs_f64()
            );
        }
    }
    (StatusCode::OK, body)
}

pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    guard: Option<super::auth::Guard>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, PipelineError> {
    let listener = super::bind(addr, "telemetry").await?;
    let mut protected = Router::new()
        .route("/metrics", get(|State(s): State<Arc<Shared>>| async move { render(&s) }))
        .route("/debug/pprof/wait", get(super::wait_profile::serve));
    // Health stays open: orchestrators' probes carry no token, and it tells
    // nothing but ready or not.
    if let Some(g) = guard {
        protected =
            protected.route_layer(axum::middleware::from_fn_with_state(g, super::auth::require_token));
    }
    let app = protected
        .route("/health", get(|State(s): State<Arc<Shared>>| async move { health(&s) }))
        .with_state(shared);
    Ok(tokio::spawn(async move {
        // Keeps answering (unready) through the drain; stops with the rest.
        let shutdown = super::stopped(stop);
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            log::error!("telemetry endpoint on {addr}: {e}");
        }
    }))
}
