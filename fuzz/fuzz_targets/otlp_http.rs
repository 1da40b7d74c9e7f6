//! The OTLP/HTTP receiver in-process (axum router, content type, gzip and
//! zstd, the size limit, protobuf and JSON decoding, the queue): every answer
//! is one the OTLP/HTTP specification allows, and the books balance.
//! Input: [signal, content type, encoding, body...].
#![no_main]

use gort_fuzz::{LIMIT, RUNTIME, SHARED, drain_and_check, gzip, signal, zstd};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fuzz_target!(|data: &[u8]| {
    let [s, t, e, rest @ ..] = data else { return };
    let (signal, path, _) = signal(*s);
    let content_type = ["application/x-protobuf", "application/json", "text/plain"][usize::from(*t % 3)];
    // Raw bytes under a gzip header reach the decompressor's error paths;
    // compressing the rest ourselves reaches the decoders through it.
    let (encoding, body) = match e % 4 {
        0 => ("identity", rest.to_vec()),
        1 => ("gzip", rest.to_vec()),
        2 => ("gzip", gzip(rest)),
        _ => ("zstd", zstd(rest)),
    };
    let before = SHARED.counters.get(signal).accepted;
    let request = http::Request::post(path)
        .header("content-type", content_type)
        .header("content-encoding", encoding)
        .body(axum::body::Body::from(body))
        .expect("a valid request");
    let router = gort::pipeline::http::router(SHARED.clone(), LIMIT);
    let response = RUNTIME.block_on(router.oneshot(request)).expect("axum routers are infallible");
    let status = response.status().as_u16();
    assert!(matches!(status, 200 | 400 | 413 | 415 | 503), "unexpected HTTP status {status}");
    if content_type == "text/plain" {
        assert_eq!(status, 415);
    }
    drain_and_check(signal, before);
});
