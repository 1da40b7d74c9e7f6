//! The OTLP/gRPC receiver in-process (tonic's framing, gzip and zstd, the
//! size limit, protobuf decoding, the queue, and the status rewrite the
//! server applies): a malformed or oversize message never gets a status the
//! OTLP specification calls retryable, and the books balance.
//! Input: [signal, framing, message...].
#![no_main]

use gort_fuzz::{LIMIT, RUNTIME, SHARED, drain_and_check, gzip, signal, zstd};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// A gRPC length-prefixed message.
fn frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fuzz_target!(|data: &[u8]| {
    let [s, f, rest @ ..] = data else { return };
    let (signal, _, service) = signal(*s);
    let (encoding, body) = match f % 4 {
        // The body as given: framing errors, several frames, short frames.
        0 => ("identity", rest.to_vec()),
        1 => ("identity", frame(false, rest)),
        2 => ("gzip", frame(true, &gzip(rest))),
        _ => ("zstd", frame(true, &zstd(rest))),
    };
    let before = SHARED.counters.get(signal).accepted;
    let request = http::Request::post(format!("http://gort/{service}/Export"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-encoding", encoding)
        .body(axum::body::Body::from(body))
        .expect("a valid request");
    let routes = gort::pipeline::grpc::routes(SHARED.clone(), LIMIT);
    let response = RUNTIME
        .block_on(async {
            let Ok(response) = routes.oneshot(request).await;
            let response = gort::pipeline::grpc::account_refusal(&SHARED.counters, response);
            let (parts, body) = response.into_parts();
            let collected = body.collect().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((parts, collected.trailers().cloned()))
        })
        .expect("the gRPC service answers every request");
    let (parts, trailers) = response;
    let status = parts
        .headers
        .get("grpc-status")
        .or_else(|| trailers.as_ref().and_then(|t| t.get("grpc-status")))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .expect("every gRPC answer carries a grpc-status");
    let code = tonic::Code::from(status);
    let retryable = gort::pipeline::forward::retryable(&tonic::Status::new(code, ""));
    // UNAVAILABLE is the queue being full: the one retryable refusal.
    assert!(
        code == tonic::Code::Ok || code == tonic::Code::Unavailable || !retryable,
        "bad input answered with the retryable {code:?}"
    );
    drain_and_check(signal, before);
});
