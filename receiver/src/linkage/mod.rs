//! Trace linkage: joins what the probes saw inside each span (from the span
//! ring buffer) with the spans the service exports through gort, and enriches
//! those spans on their way upstream: `go.runtime.*` attributes with the
//! span's runtime totals, and one child span per wait above the threshold,
//! with its exact start and end. It also keeps, per histogram bucket, the
//! slowest observation that belongs to an exported span: the exemplars of
//! gort's histograms.
//!
//! Ordering: a span can reach gort before its probe data (the SDK exports at
//! End, the ring buffer is drained on a timer) or long after (batching). An
//! export request whose spans lack data is held until the data arrives or
//! `hold` passes, then forwarded, enriched or not: never lost, never twice.
//! Probe data whose span never arrives expires after `account_ttl`. Both are
//! bounded and counted.
//!
//! Everything here is pure state over decoded records and OTLP messages;
//! the run loop feeds records, the pipeline feeds and takes requests.

mod annotate;
mod kinds;
mod linker;
mod records;

use std::time::Duration;

pub use self::{
    kinds::{DEFAULT_CHILD_SPAN_KINDS, STALL_KIND_NAMES, StallKind, StallKinds, WAIT_SLOT_NAMES, wait_slot},
    linker::{Linker, Released, Silence, service_name},
    records::{
        Account, MAX_STACKTRACE_FRAMES, ReasonNamer, Stall, StallSite, mono_to_unix, stall_from_record,
    },
};

/// (trace id, span id): how a span is known on both sides.
pub type SpanIds = ([u8; 16], [u8; 8]);

/// Tunables of the join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Longest an export request waits for its spans' probe data.
    pub hold: Duration,
    /// Longest probe data waits for its span.
    pub account_ttl: Duration,
    /// Most span accounts kept waiting for their spans.
    pub max_accounts: usize,
    /// A GC stop-the-world at least this long inside a span becomes a child.
    pub child_span_threshold: Duration,
    /// The kinds of stall that become child spans; the others stay in the
    /// span's attributes only.
    pub stall_spans: StallKinds,
}

/// The linkage's books, for self-telemetry and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkCounts {
    /// Spans forwarded with their runtime accounting.
    pub enriched: u64,
    /// Spans forwarded without (no probe data within `hold`).
    pub unmatched: u64,
    /// Child spans added (one per stall of a kind in `stall_spans`): items
    /// gort adds to the service's, so accepted + stall_spans = sent +
    /// dropped + queued.
    pub stall_spans: u64,
    /// Stalls left as attributes only (their kind makes no child span).
    pub stalls_not_spans: u64,
    /// Spans received from the service (held for their data).
    pub spans_received: u64,
    /// Spans the probes saw end whose data expired while the service sent
    /// gort no span at all: it exports elsewhere, or not over OTLP to gort.
    pub spans_not_received: u64,
    /// Accounts whose span never arrived (expired or evicted).
    pub accounts_expired: u64,
    /// Stall records that arrived after their span's account was used.
    pub late_stalls: u64,
    /// Export requests held now, and their spans.
    pub held_requests: u64,
    pub held_spans: u64,
    /// Accounts waiting for their span now.
    pub waiting_accounts: u64,
}

#[cfg(test)]
mod tests;
