//! What linkage writes into a span: `go.runtime.*` attributes with its
//! runtime totals, and one child span per stall.

use gort_proto::{
    common::{AnyValue, KeyValue, any_value},
    kv_int, kv_str,
    trace::{Span, span::SpanKind},
};

use super::{
    SpanIds,
    kinds::StallKind,
    records::{Account, Stall},
};

/// A span's (trace id, span id), if both are well-formed.
pub(super) fn ids_of(span: &Span) -> Option<SpanIds> {
    Some((span.trace_id.as_slice().try_into().ok()?, span.span_id.as_slice().try_into().ok()?))
}

fn kv_f64(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(value)) }),
        ..Default::default()
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The span's runtime totals as `go.runtime.*` attributes (seconds).
pub(super) fn annotate(span: &mut Span, a: &Account, stalls: usize) {
    let parked: u64 = a.parked.values().sum();
    let attrs = &mut span.attributes;
    attrs.push(kv_f64("go.runtime.runnable.duration", seconds(a.runnable_ns)));
    attrs.push(kv_int("go.runtime.runnable.count", a.runnable_count as i64));
    attrs.push(kv_f64("go.runtime.parked.duration", seconds(parked)));
    for (category, ns) in &a.parked {
        attrs.push(kv_f64(&format!("go.runtime.parked.{category}.duration"), seconds(*ns)));
    }
    attrs.push(kv_f64("go.runtime.gc.stw.duration", seconds(a.stw_ns)));
    attrs.push(kv_f64("go.runtime.gc.assist.duration", seconds(a.assist_ns)));
    attrs.push(kv_int("go.runtime.stalls", stalls as i64));
    if a.started_goroutines > 0 {
        attrs.push(kv_int("go.runtime.started.goroutines", a.started_goroutines as i64));
        attrs.push(kv_f64("go.runtime.started.runnable.max.duration", seconds(a.started_max_runnable_ns)));
        let (ns, category) = a.started_max_parked.unwrap_or((0, "other"));
        attrs.push(kv_f64("go.runtime.started.parked.max.duration", seconds(ns)));
        if ns > 0 {
            attrs.push(kv_str("go.runtime.started.parked.max.wait_reason", category));
        }
    }
    if !a.start_seen {
        // gort attached after the span began: its totals miss the beginning.
        attrs.push(kv_str("go.runtime.coverage", "partial"));
    }
}

/// A child span for one stall. Its id is derived from the parent's and the
/// stall's own bounds, so a request sent twice carries the same children.
pub(super) fn child_span(parent: &Span, stall: &Stall, n: usize) -> Span {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parent.span_id.iter().chain(&stall.start_unix_ns.to_le_bytes()).chain(&(n as u64).to_le_bytes())
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let span_id = if h == 0 { 1u64 } else { h }.to_be_bytes().to_vec();
    let mut attributes = vec![
        kv_str("go.runtime.stall.kind", stall.kind.kind()),
        kv_f64("go.runtime.stall.duration", seconds(stall.duration_ns())),
    ];
    if let StallKind::Parked(reason) = &stall.kind {
        attributes.push(kv_str("go.wait.reason", gort_goexe::wait_reasons::category(reason)));
        attributes.push(kv_str("go.runtime.wait_reason", reason));
    }
    if stall.goid != 0 {
        attributes.push(kv_int("go.goroutine.id", stall.goid as i64));
    }
    if stall.started_goroutine {
        // The wait was a goroutine's the span started, not the span's own.
        attributes.push(kv_str("go.runtime.stall.goroutine", "started"));
    }
    if let Some(site) = &stall.site {
        attributes.push(kv_str("code.function.name", site.location.function.as_str()));
        attributes.push(kv_str("code.file.path", site.location.file.as_str()));
        attributes.push(kv_int("code.line.number", i64::from(site.location.line)));
        attributes.push(kv_str("code.stacktrace", site.stacktrace.as_str()));
    }
    Span {
        trace_id: parent.trace_id.clone(),
        span_id,
        parent_span_id: parent.span_id.clone(),
        name: format!("{} {:.1} ms", stall.kind.name(), stall.duration_ns() as f64 / 1e6),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: stall.start_unix_ns,
        end_time_unix_nano: stall.end_unix_ns,
        attributes,
        ..Default::default()
    }
}
