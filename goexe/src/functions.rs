//! Names of the Go functions gort looks for: the OpenTelemetry SDK's span
//! entry points and every runtime function `gort inspect` reports.

/// The OpenTelemetry Go SDK function that builds every sampled span, on the
/// goroutine starting it.
pub const SDK_NEW_RECORDING_SPAN: &str = "go.opentelemetry.io/otel/sdk/trace.(*tracer).newRecordingSpan";

/// What `newRecordingSpan` calls, unconditionally and in every SDK release
/// gort supports (v1.32 on), once the new span's context is set: the call
/// hands the new span over as its receiver, at an instruction the kernel
/// emulates.
pub const SDK_SET_ATTRIBUTES: &str = "go.opentelemetry.io/otel/sdk/trace.(*recordingSpan).SetAttributes";

/// The SDK's span End (the recording span's; non-recording spans are not
/// exported, so nothing joins them).
pub const SDK_SPAN_END: &str = "go.opentelemetry.io/otel/sdk/trace.(*recordingSpan).End";

/// Runtime functions `gort inspect` reports: those probed now and those the
/// scheduler, GC and blocking telemetry attaches to. The stop/start-the-world
/// entry points changed names across releases, so all spellings are listed;
/// a binary has the ones of its version.
pub const INSPECTED_FUNCTIONS: &[&str] = &[
    "runtime.schedule",
    "runtime.execute",
    "runtime.gcBgMarkWorker",
    "runtime.ready",
    "runtime.goready",
    "runtime.gopark",
    "runtime.newproc1",
    "runtime.goexit1",
    "runtime.casgstatus",
    "runtime.stopTheWorld",
    "runtime.startTheWorld",
    "runtime.stopTheWorldGC",
    "runtime.startTheWorldGC",
    "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema",
    "runtime.gcAssistAlloc",
    SDK_NEW_RECORDING_SPAN,
    SDK_SET_ATTRIBUTES,
    SDK_SPAN_END,
];

/// Struct fields `gort inspect` reports: every field of the one list.
pub const INSPECTED_FIELDS: &[crate::Field] = crate::Field::ALL;

/// Of the inspected functions, those whose every call site `gort inspect`
/// lists (gort probes the calls of `casgstatus`, not its entry).
pub const INSPECTED_CALLERS: &[&str] = &["runtime.casgstatus"];
