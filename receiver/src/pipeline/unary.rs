//! One gRPC unary export of a message already framed (and compressed) by
//! `encoded`, over tonic's channel: tonic's own client encodes and
//! compresses on every call, at a level it does not let us choose, so the
//! request is written here and the answer read here, as gRPC over HTTP/2
//! specifies. The channel still does the connection, TLS, the timeout and
//! the origin.

use std::io::Read;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use tonic::{Code, Status, body::Body, transport::Channel};
use tower::{Service, ServiceExt};

use super::encoded::{Encoded, Rejected};

/// An answer is a partial-success message at most: anything longer is not
/// an OTLP answer.
const MAX_ANSWER: usize = 4 << 20;

const GRPC_STATUS: &str = "grpc-status";

/// Sends `request` on `channel` with `headers` (the configured ones) added;
/// the upstream's answer, or the status it failed with (a connection's
/// failure as tonic's client would report it).
pub async fn export<R: Rejected>(
    channel: &Channel,
    headers: &HeaderMap,
    request: &Encoded,
) -> Result<R, Status> {
    let mut channel = channel.clone();
    channel.ready().await.map_err(|e| Status::unavailable(format!("upstream not ready: {e}")))?;
    let (_, path) = request.method();
    // A clone of the message is a reference count: a retry sends it again.
    let mut http = http::Request::new(Body::new(Full::new(request.message.clone())));
    *http.method_mut() = Method::POST;
    *http.uri_mut() = Uri::from_static(path);
    let h = http.headers_mut();
    h.extend(headers.clone());
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert("grpc-accept-encoding", HeaderValue::from_static("gzip"));
    if request.gzip() {
        h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
    }
    let answer = channel.call(http).await.map_err(|e| Status::from_error(Box::new(e)))?;
    let (head, body) = answer.into_parts();
    // A trailers-only answer (an error, usually) has its status in the
    // headers and no body worth reading.
    if head.headers.contains_key(GRPC_STATUS) {
        return Err(status_of(Some(&head.headers), head.status).err().unwrap_or_else(missing_message));
    }
    let whole = Limited::new(body, MAX_ANSWER).collect().await.map_err(Status::from_error)?;
    status_of(whole.trailers(), head.status)?;
    let message = message(&whole.to_bytes(), &head.headers)?;
    R::decode(message.as_slice())
        .map_err(|e| Status::internal(format!("upstream's answer does not decode: {e}")))
}

/// The call's status from its trailers, or from the HTTP status when they
/// have none, as gRPC maps them (HTTP 200 without a status is UNKNOWN: a
/// stream cut short by a proxy looks just like that).
fn status_of(trailers: Option<&HeaderMap>, http: StatusCode) -> Result<(), Status> {
    if let Some(status) = trailers.and_then(Status::from_header_map) {
        return if status.code() == Code::Ok { Ok(()) } else { Err(status) };
    }
    let code = match http {
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Err(Status::new(code, format!("upstream answered HTTP {} without a gRPC status", http.as_u16())))
}

fn missing_message() -> Status {
    Status::internal("upstream answered OK without an answer message")
}

/// The one message of a unary answer, decompressed if its flag says so.
fn message(data: &Bytes, headers: &HeaderMap) -> Result<Vec<u8>, Status> {
    let Some((&[flag, a, b, c, d], rest)) = data.split_first_chunk::<5>() else {
        return Err(missing_message());
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    let Some(body) = rest.get(..len) else {
        return Err(Status::internal(format!(
            "upstream's answer is cut short: {} of {len} bytes",
            rest.len()
        )));
    };
    match flag {
        0 => Ok(body.to_vec()),
        1 => {
            let encoding = headers.get("grpc-encoding").and_then(|v| v.to_str().ok()).unwrap_or("identity");
            if encoding != "gzip" {
                return Err(Status::internal(format!(
                    "upstream answered in {encoding:?}, which gort did not offer"
                )));
            }
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(MAX_ANSWER as u64)
                .read_to_end(&mut out)
                .map_err(|e| Status::internal(format!("upstream's answer does not decompress: {e}")))?;
            Ok(out)
        }
        other => Err(Status::internal(format!("upstream's answer has message flag {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn trailers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn the_status_comes_from_the_trailers_else_from_http() {
        assert!(status_of(Some(&trailers(&[(GRPC_STATUS, "0")])), StatusCode::OK).is_ok());
        let refused =
            status_of(Some(&trailers(&[(GRPC_STATUS, "14"), ("grpc-message", "busy")])), StatusCode::OK);
        let refused = refused.unwrap_err();
        assert_eq!((refused.code(), refused.message()), (Code::Unavailable, "busy"));
        assert_eq!(status_of(None, StatusCode::OK).unwrap_err().code(), Code::Unknown);
        assert_eq!(status_of(None, StatusCode::SERVICE_UNAVAILABLE).unwrap_err().code(), Code::Unavailable);
        assert_eq!(status_of(None, StatusCode::UNAUTHORIZED).unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(
            status_of(Some(&HeaderMap::new()), StatusCode::NOT_FOUND).unwrap_err().code(),
            Code::Unimplemented
        );
    }

    #[test]
    fn the_answer_message_is_read_plain_or_gzipped() {
        let plain = Bytes::from_static(&[0, 0, 0, 0, 3, 10, 1, 7]);
        assert_eq!(message(&plain, &HeaderMap::new()).unwrap(), [10, 1, 7]);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[10, 1, 7]).unwrap();
        let gz = gz.finish().unwrap();
        let mut framed = vec![1];
        framed.extend_from_slice(&u32::try_from(gz.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(&gz);
        let framed = Bytes::from(framed);
        assert_eq!(message(&framed, &trailers(&[("grpc-encoding", "gzip")])).unwrap(), [10, 1, 7]);
        assert_eq!(message(&framed, &HeaderMap::new()).unwrap_err().code(), Code::Internal);

        let empty = message(&Bytes::new(), &HeaderMap::new()).unwrap_err();
        assert!(empty.message().contains("without an answer"), "{}", empty.message());
        let cut = message(&Bytes::from_static(&[0, 0, 0, 0, 9, 1]), &HeaderMap::new()).unwrap_err();
        assert!(cut.message().contains("cut short"), "{}", cut.message());
        assert_eq!(
            message(&Bytes::from_static(&[2, 0, 0, 0, 0]), &HeaderMap::new()).unwrap_err().code(),
            Code::Internal
        );
    }
}
