//! OTLP/HTTP receiver (port 4318): `POST /v1/traces`, `/v1/metrics`,
//! `/v1/logs`, protobuf or JSON, optionally gzip or zstd. Answers follow the
//! OTLP/HTTP specification: 200 with an (empty) response message, 400 for a
//! body that does not decode, 413 over the size limit, 415 for another
//! content type, and 503 with Retry-After when the queue is full.

use std::{io::Read, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use gort_proto::{
    logs_service::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics_service::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
    profiles_service::{ExportProfilesServiceRequest, ExportProfilesServiceResponse},
    trace_service::{ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use prost::Message;

use super::{Keep, Payload, PipelineError, Shared, Signal, walk};
use crate::config::ReceiverConfig;

/// Seconds a refused client is asked to wait before retrying.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    limit: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

/// Why a request was refused, as an HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    UnsupportedType(String),
    UnsupportedEncoding(String),
    TooLarge,
    Malformed(String),
    Busy,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::UnsupportedType(t) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type {t:?}: use application/x-protobuf or application/json"),
            )
                .into_response(),
            Self::UnsupportedEncoding(e) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding {e:?}: use gzip, zstd or none"),
            )
                .into_response(),
            Self::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "request larger than the limit").into_response()
            }
            Self::Malformed(m) => (StatusCode::BAD_REQUEST, m).into_response(),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
                "gort's queue is full or shutting down; retry later",
            )
                .into_response(),
        }
    }
}

fn format_of(headers: &HeaderMap) -> Result<Format, Refusal> {
    let t = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    match t.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        other => Err(Refusal::UnsupportedType(other.to_owned())),
    }
}

/// The request body, decompressed, at most `limit` bytes.
pub fn decompress(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Vec<u8>, Refusal> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    let mut out = Vec::new();
    let cap = limit as u64 + 1;
    let read = match encoding.trim() {
        "" | "identity" => {
            out.extend_from_slice(body);
            Ok(body.len())
        }
        "gzip" => flate2::read::GzDecoder::new(body).take(cap).read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(body).and_then(|d| d.take(cap).read_to_end(&mut out)),
        other => return Err(Refusal::UnsupportedEncoding(other.to_owned())),
    };
    read.map_err(|e| Refusal::Malformed(format!("{encoding} body does not decompress: {e}")))?;
    if out.len() > limit {
        return Err(Refusal::TooLarge);
    }
    Ok(out)
}

/// Decodes an export request of `signal` from a decompressed body.
pub fn decode(signal: Signal, format: Format, body: &[u8]) -> Result<Payload, Refusal> {
    fn pb<M: Message + Default>(b: &[u8]) -> Result<M, Refusal> {
        M::decode(b).map_err(|e| Refusal::Malformed(format!("protobuf: {e}")))
    }
    fn js<M: serde::de::DeserializeOwned>(b: &[u8]) -> Result<M, Refusal> {
        serde_json::from_slice(b).map_err(|e| Refusal::Malformed(format!("JSON: {e}")))
    }
    Ok(match (signal, format) {
        (Signal::Traces, Format::Protobuf) => Payload::Traces(pb::<ExportTraceServiceRequest>(body)?),
        (Signal::Traces, Format::Json) => Payload::Traces(js(body)?),
        (Signal::Metrics, Format::Protobuf) => Payload::Metrics(pb::<ExportMetricsServiceRequest>(body)?),
        (Signal::Metrics, Format::Json) => Payload::Metrics(js(body)?),
        (Signal::Logs, Format::Protobuf) => Payload::Logs(pb::<ExportLogsServiceRequest>(body)?),
        (Signal::Logs, Format::Json) => Payload::Logs(js(body)?),
        (Signal::Profiles, Format::Protobuf) => {
            Payload::Profiles(Box::new(pb::<ExportProfilesServiceRequest>(body)?))
        }
        (Signal::Profiles, Format::Json) => Payload::Profiles(Box::new(js(body)?)),
    })
}

fn respond(signal: Signal, format: Format) -> Response {
    let (pb, json) = match signal {
        Signal::Traces => (
            ExportTraceServiceResponse::default().encode_to_vec(),
            serde_json::to_vec(&ExportTraceServiceResponse::default()),
        ),
        Signal::Metrics => (
            ExportMetricsServiceResponse::default().encode_to_vec(),
            serde_json::to_vec(&ExportMetricsServiceResponse::default()),
        ),
        Signal::Logs => (
            ExportLogsServiceResponse::default().encode_to_vec(),
            serde_json::to_vec(&ExportLogsServiceResponse::default()),
        ),
        Signal::Profiles => (
            ExportProfilesServiceResponse::default().encode_to_vec(),
            serde_json::to_vec(&ExportProfilesServiceResponse::default()),
        ),
    };
    match format {
        Format::Protobuf => ([(header::CONTENT_TYPE, "application/x-protobuf")], pb).into_response(),
        Format::Json => {
            ([(header::CONTENT_TYPE, "application/json")], json.unwrap_or_default()).into_response()
        }
    }
}

async fn handle(ctx: &Ctx, signal: Signal, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let format = format_of(headers)?;
    let raw = decompress(headers, body, ctx.limit)?;
    let keep = if matches!(format, Format::Protobuf) { ctx.shared.keeps(signal) } else { Keep::Decoded };
    let accepted = match keep {
        Keep::Decoded => ctx.shared.offer(decode(signal, format, &raw)?),
        Keep::Bytes | Keep::ByService => {
            let walked =
                walk::walk(signal, &raw).map_err(|e| Refusal::Malformed(format!("protobuf: {e}")))?;
            if keep == Keep::Bytes || ctx.shared.keeps_spans_of(&raw, &walked) {
                ctx.shared.offer_bytes(signal, Bytes::from(raw), &walked)
            } else {
                ctx.shared.offer(decode(signal, format, &raw)?)
            }
        }
    };
    if !accepted {
        return Err(Refusal::Busy);
    }
    Ok(respond(signal, format))
}

async fn endpoint(ctx: Ctx, signal: Signal, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&ctx, signal, &headers, &body).await {
        Ok(r) => r,
        Err(refusal) => {
            match refusal {
                Refusal::Malformed(_) | Refusal::UnsupportedType(_) | Refusal::UnsupportedEncoding(_) => {
                    ctx.shared.counters.malformed();
                    log::debug!("OTLP/HTTP {signal:?}: refused: {refusal:?}");
                }
                // Counted where axum's own body limit answers too.
                Refusal::TooLarge | Refusal::Busy => {}
            }
            refusal.into_response()
        }
    }
}

/// The OTLP/HTTP routes with the size limit: what the server runs, also
/// callable in-process (the fuzz target drives it).
pub fn router(shared: Arc<Shared>, limit: usize) -> Router {
    let counters = shared.clone();
    let count_oversize = move |response: Response| {
        if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
            counters.counters.oversize();
        }
        response
    };
    let ctx = Ctx { shared, limit };
    let route = |signal: Signal| {
        post(move |State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes| {
            endpoint(ctx, signal, headers, body)
        })
    };
    Router::new()
        .route("/v1/traces", route(Signal::Traces))
        .route("/v1/metrics", route(Signal::Metrics))
        .route("/v1/logs", route(Signal::Logs))
        .route("/v1development/profiles", route(Signal::Profiles))
        // The compressed body may not exceed the limit either.
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower::util::MapResponseLayer::new(count_oversize))
        .with_state(ctx)
}

pub async fn serve(
    addr: SocketAddr,
    config: &ReceiverConfig,
    shared: Arc<Shared>,
    guard: Option<super::auth::Guard>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, PipelineError> {
    let listener = super::bind(addr, "OTLP/HTTP").await?;
    let mut app = router(shared, config.max_recv_msg_size);
    if let Some(g) = guard {
        app = app.layer(axum::middleware::from_fn_with_state(g, super::auth::require_token));
    }
    Ok(tokio::spawn(async move {
        let shutdown = super::stopped(stop);
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            log::error!("OTLP/HTTP receiver on {addr}: {e}");
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn bodies_decompress_within_the_limit() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[7u8; 1000]).unwrap();
        let body = gz.finish().unwrap();
        assert_eq!(decompress(&h, &body, 1000).unwrap().len(), 1000);
        // A small bomb: 1000 bytes compress to a few, the limit still holds.
        assert_eq!(decompress(&h, &body, 999), Err(Refusal::TooLarge));
        assert!(matches!(decompress(&h, &body[..body.len() / 2], 5000), Err(Refusal::Malformed(_))));
        h.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert_eq!(decompress(&h, &body, 5000), Err(Refusal::UnsupportedEncoding("br".into())));
    }

    #[test]
    fn malformed_protobuf_and_json_are_refused_with_a_reason() {
        assert!(matches!(
            decode(Signal::Traces, Format::Protobuf, &[0xff, 0xff, 0xff]),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            decode(Signal::Logs, Format::Json, b"{\"resourceLogs\": 3}"),
            Err(Refusal::Malformed(_))
        ));
        let ok = decode(Signal::Metrics, Format::Json, b"{\"resourceMetrics\": []}").unwrap();
        assert_eq!(ok.items(), 0);
    }
}
