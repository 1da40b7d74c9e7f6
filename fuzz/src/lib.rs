//! What the OTLP fuzz targets share: one runtime, one pipeline state, the
//! input's header bytes, and the books check after every request.

use std::sync::{Arc, LazyLock};

use gort::{
    config::PipelineConfig,
    pipeline::{Shared, Signal, queue::Room},
};

pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
});

/// A small limit, so that bombs and oversize messages are reached quickly.
pub const LIMIT: usize = 64 * 1024;

pub static SHARED: LazyLock<Arc<Shared>> = LazyLock::new(|| Shared::new(&PipelineConfig::default()));

/// Where a signal is received: (signal, OTLP/HTTP path, gRPC service).
pub fn signal(b: u8) -> (Signal, &'static str, &'static str) {
    match b % 4 {
        0 => (Signal::Traces, "/v1/traces", "opentelemetry.proto.collector.trace.v1.TraceService"),
        1 => (Signal::Metrics, "/v1/metrics", "opentelemetry.proto.collector.metrics.v1.MetricsService"),
        2 => (Signal::Logs, "/v1/logs", "opentelemetry.proto.collector.logs.v1.LogsService"),
        _ => (
            Signal::Profiles,
            "/v1development/profiles",
            "opentelemetry.proto.collector.profiles.v1development.ProfilesService",
        ),
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("writing to memory");
    e.finish().expect("writing to memory")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).expect("writing to memory")
}

/// Empties the queue after a request and checks the books: every item the
/// receiver counted as accepted was in the queue, and nothing else was.
pub fn drain_and_check(signal: Signal, accepted_before: u64) {
    let shared = &*SHARED;
    let mut queued = 0;
    while let Some(batch) = shared.queue.take(Room::ALL) {
        assert_eq!(batch.payload.signal(), signal, "a request landed under the wrong signal");
        // What would be sent upstream (bytes kept as they arrived, or
        // encoded) is a request of the signal holding the items counted.
        let mut sent = Vec::new();
        batch.payload.encode(&mut sent);
        let again = gort::pipeline::raw::decode_request(signal, &sent).expect("what is forwarded decodes");
        assert_eq!(again.items(), batch.items, "the items forwarded are the items counted");
        queued += batch.items;
        shared.queue.release(&batch);
    }
    let accepted = shared.counters.get(signal).accepted - accepted_before;
    assert_eq!(accepted, queued, "accepted {accepted} items but {queued} were queued");
    assert_eq!(shared.queue.held(), 0);
}
