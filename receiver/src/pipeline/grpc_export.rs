//! The OTLP/gRPC export services for traces, metrics and logs, assembled
//! from tonic's server parts rather than generated, so that a request gort
//! forwards unchanged is only walked (`walk`) and kept as the bytes it
//! arrived in (`raw`), and only one it may change is decoded.
//! Decompression, the size limit and the answer to a message that is not
//! valid (INTERNAL, as tonic's own codec answers) are as with the generated
//! services.

use std::{
    convert::Infallible,
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use gort_proto::{
    logs_service::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics_service::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
    trace_service::{ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use prost::Message;
use tonic::{
    Request, Response, Status,
    body::Body,
    codec::{
        Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
    },
    codegen::{BoxFuture, Service},
    server::{Grpc, NamedService, UnaryService},
};

use super::{
    Keep, Payload, Shared, Signal,
    walk::{self, Walked},
};

/// One OTLP export service: its gRPC name and messages.
pub trait Export: Send + Sync + 'static {
    const SIGNAL: Signal;
    const NAME: &'static str;
    const PATH: &'static str;
    type Request: Message + Default + Send + 'static;
    type Response: Message + Default + Send + 'static;
    fn payload(request: Self::Request) -> Payload;
}

/// A service's `Export` impl: its signal (also the payload's variant), its
/// gRPC name and its messages.
macro_rules! export {
    ($($export:ident: $service:literal, $request:ty => $response:ty;)*) => {$(
        pub struct $export;

        impl Export for $export {
            const SIGNAL: Signal = Signal::$export;
            const NAME: &'static str = $service;
            const PATH: &'static str = concat!("/", $service, "/Export");
            type Request = $request;
            type Response = $response;
            fn payload(request: Self::Request) -> Payload {
                Payload::$export(request)
            }
        }
    )*};
}

export! {
    Traces: "opentelemetry.proto.collector.trace.v1.TraceService",
        ExportTraceServiceRequest => ExportTraceServiceResponse;
    Metrics: "opentelemetry.proto.collector.metrics.v1.MetricsService",
        ExportMetricsServiceRequest => ExportMetricsServiceResponse;
    Logs: "opentelemetry.proto.collector.logs.v1.LogsService",
        ExportLogsServiceRequest => ExportLogsServiceResponse;
}

/// A request as it arrived: its bytes (decompressed) and what walking them
/// found, or its decoding.
enum Received<M> {
    Bytes { body: Bytes, walked: Walked },
    Decoded(M),
}

/// Walks a request and keeps its bytes, or decodes it (`keep`); encodes
/// the answer.
struct Requests<E> {
    keep: Keep,
    shared: Arc<Shared>,
    _export: PhantomData<fn() -> E>,
}

impl<E: Export> Codec for Requests<E> {
    type Encode = E::Response;
    type Decode = Received<E::Request>;
    type Encoder = AnswerEncoder<E>;
    type Decoder = Requests<E>;

    fn encoder(&mut self) -> Self::Encoder {
        AnswerEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Requests { keep: self.keep, shared: self.shared.clone(), _export: PhantomData }
    }
}

impl<E: Export> Decoder for Requests<E> {
    type Item = Received<E::Request>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        // INTERNAL, as tonic answers a message its own codec cannot decode.
        if self.keep == Keep::Decoded {
            return E::Request::decode(src)
                .map(|m| Some(Received::Decoded(m)))
                .map_err(|e| Status::internal(e.to_string()));
        }
        let body = src.copy_to_bytes(src.remaining());
        let walked = walk::walk(E::SIGNAL, &body).map_err(|e| Status::internal(e.to_string()))?;
        if self.keep == Keep::Bytes || self.shared.keeps_spans_of(&body, &walked) {
            return Ok(Some(Received::Bytes { body, walked }));
        }
        E::Request::decode(body)
            .map(|m| Some(Received::Decoded(m)))
            .map_err(|e| Status::internal(e.to_string()))
    }
}

struct AnswerEncoder<E>(PhantomData<fn() -> E>);

impl<E: Export> Encoder for AnswerEncoder<E> {
    type Item = E::Response;
    type Error = Status;

    fn encode(&mut self, item: E::Response, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(e.to_string()))
    }
}

/// The answer to a request the queue has no room for (retryable: the SDK
/// keeps it and tries again), from every service.
pub fn queue_full() -> Status {
    Status::unavailable("gort's queue is full or shutting down; retry later")
}

/// The service `E`, taking requests into the pipeline.
pub struct ExportServer<E> {
    shared: Arc<Shared>,
    limit: usize,
    _export: PhantomData<fn() -> E>,
}

impl<E> Clone for ExportServer<E> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone(), limit: self.limit, _export: PhantomData }
    }
}

impl<E: Export> ExportServer<E> {
    /// Requests of at most `limit` bytes once decompressed.
    pub fn new(shared: Arc<Shared>, limit: usize) -> Self {
        Self { shared, limit, _export: PhantomData }
    }
}

impl<E: Export> NamedService for ExportServer<E> {
    const NAME: &'static str = E::NAME;
}

struct Handler<E>(Arc<Shared>, PhantomData<fn() -> E>);

impl<E: Export> UnaryService<Received<E::Request>> for Handler<E> {
    type Response = E::Response;
    type Future = std::future::Ready<Result<Response<E::Response>, Status>>;

    fn call(&mut self, request: Request<Received<E::Request>>) -> Self::Future {
        let accepted = match request.into_inner() {
            Received::Bytes { body, walked } => self.0.offer_bytes(E::SIGNAL, body, &walked),
            Received::Decoded(message) => self.0.offer(E::payload(message)),
        };
        std::future::ready(if accepted {
            Ok(Response::new(E::Response::default()))
        } else {
            Err(queue_full())
        })
    }
}

impl<E: Export> Service<http::Request<Body>> for ExportServer<E> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != E::PATH {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        accept.enable(CompressionEncoding::Zstd);
        let codec = Requests::<E> {
            keep: self.shared.keeps(E::SIGNAL),
            shared: self.shared.clone(),
            _export: PhantomData,
        };
        let mut grpc = Grpc::new(codec)
            .apply_compression_config(accept, EnabledCompressionEncodings::default())
            .apply_max_message_size_config(Some(self.limit), None);
        let handler = Handler::<E>(self.shared.clone(), PhantomData);
        Box::pin(async move { Ok(grpc.unary(handler, request).await) })
    }
}
