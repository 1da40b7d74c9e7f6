//! Export requests encoded once: a batch leaves the queue as protobuf bytes,
//! and every attempt to deliver it (retries included) sends those same bytes
//! through a codec that only copies them into the gRPC frame. Nothing of the
//! decoded batch is cloned or kept while it is in flight.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes};
use gort_proto::{
    logs_service::ExportLogsServiceResponse, metrics_service::ExportMetricsServiceResponse,
    profiles_service::ExportProfilesServiceResponse, trace_service::ExportTraceServiceResponse,
};
use prost::Message;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use super::{
    Payload, Signal,
    grpc_export::{Export, Logs, Metrics, Traces},
};

/// One batch as the bytes of its `Export*ServiceRequest`.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub signal: Signal,
    pub body: Bytes,
}

impl Encoded {
    pub fn new(payload: &Payload) -> Self {
        Self { signal: payload.signal(), body: payload.to_bytes() }
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

/// Sends bytes already encoded; decodes the answer as `R`.
pub struct PreEncoded<R>(PhantomData<R>);

impl<R> Default for PreEncoded<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<R: Rejected> Codec for PreEncoded<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = BytesEncoder;
    type Decoder = AnswerDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        AnswerDecoder(PhantomData)
    }
}

pub struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

pub struct AnswerDecoder<R>(PhantomData<R>);

impl<R: Rejected> Decoder for AnswerDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        R::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("upstream's answer does not decode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use gort_proto::{
        common::{AnyValue, KeyValue, any_value},
        trace::{ResourceSpans, ScopeSpans, Span},
        trace_service::{ExportTracePartialSuccess, ExportTraceServiceRequest},
    };

    use super::*;

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
    fn the_bytes_sent_decode_to_the_batch() {
        let batch = request(3);
        let encoded = Encoded::new(&Payload::Traces(batch.clone()));
        assert_eq!(encoded.signal, Signal::Traces);
        assert_eq!(encoded.method().1, "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
        assert_eq!(ExportTraceServiceRequest::decode(encoded.body.as_ref()).unwrap(), batch);
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
