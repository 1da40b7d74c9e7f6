//! Export requests framed once: a batch leaves the queue as one gRPC
//! message (flag, length, protobuf bytes), gzip-compressed when the exporter
//! compresses, and every attempt to deliver it (retries included) sends that
//! same message. Nothing of the decoded batch is cloned or kept while it is
//! in flight, and no attempt compresses again.

use bytes::Bytes;
use gort_proto::{
    logs_service::ExportLogsServiceResponse, metrics_service::ExportMetricsServiceResponse,
    profiles_service::ExportProfilesServiceResponse, trace_service::ExportTraceServiceResponse,
};
use prost::Message;
use thiserror::Error;

use super::{
    Payload, Signal,
    grpc_export::{Export, Logs, Metrics, Traces},
    gzip::Compressors,
};

/// The gRPC message header: a compressed flag and a big-endian length.
const HEADER: usize = 5;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("a batch of {0} bytes is larger than a gRPC message can be (4 GiB)")]
pub struct TooLarge(pub usize);

/// One batch as the gRPC message of its `Export*ServiceRequest`.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub signal: Signal,
    /// The whole length-prefixed message, header included.
    pub message: Bytes,
}

impl Encoded {
    /// The batch's bytes are written once, into the compressor or after
    /// the header's room: never copied whole before. Compressed with
    /// `gzip`'s states, if given.
    pub fn new(payload: &Payload, gzip: Option<&Compressors>) -> Result<Self, TooLarge> {
        let len = usize::try_from(payload.encoded_len()).unwrap_or(0);
        let compressed = gzip.and_then(|gzip| compressed(gzip, payload, len));
        let (message, gzip) = match compressed {
            Some(message) => (message, true),
            None => {
                let mut message = Vec::with_capacity(HEADER + len);
                message.extend_from_slice(&[0; HEADER]);
                payload.encode(&mut message);
                (message, false)
            }
        };
        Ok(Self { signal: payload.signal(), message: frame(message, gzip)? })
    }

    /// Whether the message is gzip-compressed, as its flag says.
    pub fn gzip(&self) -> bool {
        self.message.first() == Some(&1)
    }

    /// The OTLP service and the gRPC path its export is sent to.
    pub fn method(&self) -> (&'static str, &'static str) {
        fn of<E: Export>() -> (&'static str, &'static str) {
            (E::NAME, E::PATH)
        }
        match self.signal {
            Signal::Traces => of::<Traces>(),
            Signal::Metrics => of::<Metrics>(),
            Signal::Logs => of::<Logs>(),
            Signal::Profiles => (
                "opentelemetry.proto.collector.profiles.v1development.ProfilesService",
                "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
            ),
        }
    }
}

/// `payload` (`len` bytes encoded) gzipped after a header's room. None if
/// compression fails, which writing into memory does not: the batch then
/// goes uncompressed rather than not at all.
fn compressed(gzip: &Compressors, payload: &Payload, len: usize) -> Option<Vec<u8>> {
    // OTLP compresses several times over, but spans' random ids do not: at
    // a quarter the buffer grew (and was copied) once per batch on the
    // pass-through bench's spans. Room never written is never resident.
    let mut out = Vec::with_capacity(HEADER + len / 2);
    out.extend_from_slice(&[0; HEADER]);
    match payload {
        // The requests' bytes as they arrived, straight into the compressor.
        Payload::Raw(raw) => gzip.gzip(out, raw.chunks().iter().map(AsRef::as_ref)).ok(),
        decoded => gzip.gzip(out, [decoded.to_bytes().as_ref()]).ok(),
    }
}

/// Writes the header into the room left for it at the start of `message`.
fn frame(mut message: Vec<u8>, gzip: bool) -> Result<Bytes, TooLarge> {
    let len = message.len() - HEADER;
    let len32 = u32::try_from(len).map_err(|_| TooLarge(len))?;
    message[0] = u8::from(gzip);
    message[1..HEADER].copy_from_slice(&len32.to_be_bytes());
    Ok(Bytes::from(message))
}

/// What an upstream's answer says it rejected (partial success): items and
/// message, whichever signal it answered for.
pub trait Rejected: Message + Default + Send + 'static {
    fn rejected(self) -> (u64, String);
}

/// Each answer names its rejected items its own way.
macro_rules! rejected {
    ($($answer:ty => $field:ident),* $(,)?) => {$(
        impl Rejected for $answer {
            fn rejected(self) -> (u64, String) {
                let p = self.partial_success.unwrap_or_default();
                (u64::try_from(p.$field).unwrap_or(0), p.error_message)
            }
        }
    )*};
}

rejected! {
    ExportTraceServiceResponse => rejected_spans,
    ExportMetricsServiceResponse => rejected_data_points,
    ExportLogsServiceResponse => rejected_log_records,
    ExportProfilesServiceResponse => rejected_profiles,
}

#[cfg(test)]
mod tests {
    use gort_proto::{
        common::{AnyValue, KeyValue, any_value},
        trace::{ResourceSpans, ScopeSpans, Span},
        trace_service::{ExportTracePartialSuccess, ExportTraceServiceRequest},
    };

    use super::*;
    use crate::pipeline::gzip::gunzip;

    fn request(spans: usize) -> ExportTraceServiceRequest {
        let span = |i: usize| Span {
            name: format!("span {i}"),
            span_id: vec![i as u8; 8],
            trace_id: vec![7; 16],
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue { value: Some(any_value::Value::IntValue(i as i64)) }),
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: (0..spans).map(span).collect(), ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn the_message_sent_is_the_batch_framed_once() {
        let batch = request(300);
        let gzip = Compressors::default();
        let plain = Encoded::new(&Payload::Traces(batch.clone()), None).unwrap();
        assert_eq!(plain.signal, Signal::Traces);
        assert_eq!(plain.method().1, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
        let len = batch.encoded_len();
        assert_eq!(plain.message[0], 0, "uncompressed flag");
        assert_eq!(plain.message[1..5], u32::try_from(len).unwrap().to_be_bytes());
        assert_eq!(plain.message.len(), 5 + len);
        assert_eq!(ExportTraceServiceRequest::decode(&plain.message[5..]).unwrap(), batch);

        let gzipped = Encoded::new(&Payload::Traces(batch.clone()), Some(&gzip)).unwrap();
        assert!(gzipped.gzip());
        assert_eq!(gzipped.message[0], 1, "compressed flag");
        let compressed_len = u32::from_be_bytes(gzipped.message[1..5].try_into().unwrap());
        assert_eq!(compressed_len as usize, gzipped.message.len() - 5);
        assert!(gzipped.message.len() < len / 4, "{} bytes gzipped to {}", len, gzipped.message.len());
        assert_eq!(
            ExportTraceServiceRequest::decode(gunzip(&gzipped.message[5..]).as_slice()).unwrap(),
            batch
        );

        // A batch of requests kept as bytes is compressed piece by piece.
        let mut raw = crate::pipeline::raw::Raw::encode(&Payload::Traces(request(2)));
        raw.append(crate::pipeline::raw::Raw::encode(&Payload::Traces(request(3))));
        let gzipped = Encoded::new(&Payload::Raw(raw), Some(&gzip)).unwrap();
        let mut both = request(2);
        both.resource_spans.extend(request(3).resource_spans);
        assert_eq!(
            ExportTraceServiceRequest::decode(gunzip(&gzipped.message[5..]).as_slice()).unwrap(),
            both
        );
    }

    #[test]
    fn an_answer_s_partial_success_is_read() {
        let answer = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(answer.rejected(), (2, "too old".to_owned()));
        assert_eq!(ExportTraceServiceResponse::default().rejected(), (0, String::new()));
    }
}
