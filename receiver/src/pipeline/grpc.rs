//! OTLP/gRPC receiver (port 4317): the trace, metrics, logs and profiles
//! (development) services.
//! Requests may be gzip- or zstd-compressed; the size limit applies after
//! decompression. A full queue answers UNAVAILABLE (retryable: the SDK keeps
//! the data and tries again); an oversize message RESOURCE_EXHAUSTED without
//! RetryInfo (not retryable), as the OTLP specification says; both are
//! counted, as are messages that do not decode.

use std::{net::SocketAddr, sync::Arc};

use gort_proto::profiles_service::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
    profiles_service_server::{ProfilesService, ProfilesServiceServer},
};
use tonic::{Request, Response, Status, codec::CompressionEncoding, transport::Server};

use super::{
    Counters, Payload, PipelineError, Shared,
    grpc_export::{ExportServer, Logs, Metrics, Traces, queue_full},
};
use crate::config::ReceiverConfig;

/// Profiles, which gort only passes on: the generated service (traces,
/// metrics and logs keep their bytes: `grpc_export`).
#[derive(Clone)]
struct Receiver(Arc<Shared>);

#[tonic::async_trait]
impl ProfilesService for Receiver {
    async fn export(
        &self,
        request: Request<ExportProfilesServiceRequest>,
    ) -> Result<Response<ExportProfilesServiceResponse>, Status> {
        if !self.0.offer(Payload::Profiles(Box::new(request.into_inner()))) {
            return Err(queue_full());
        }
        Ok(Response::new(ExportProfilesServiceResponse::default()))
    }
}

/// Counts the requests tonic refused before they reached a handler, and
/// fixes the status of an oversize one. tonic reports a message over the
/// limit as OUT_OF_RANGE, which OTLP clients retry forever; the
/// specification wants RESOURCE_EXHAUSTED without RetryInfo. A message that
/// does not decode is INTERNAL. The handlers answer neither themselves, and
/// tonic's refusals are trailers-only, so the status is in the headers.
pub fn account_refusal<B>(counters: &Counters, mut response: http::Response<B>) -> http::Response<B> {
    const OUT_OF_RANGE: &str = "11";
    const INTERNAL: &str = "13";
    const RESOURCE_EXHAUSTED: http::HeaderValue = http::HeaderValue::from_static("8");
    match response.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some(OUT_OF_RANGE) => {
            counters.oversize();
            response.headers_mut().insert("grpc-status", RESOURCE_EXHAUSTED);
        }
        Some(INTERNAL) => counters.malformed(),
        _ => {}
    }
    response
}

/// The four OTLP services, decoding with the size limit: what the server
/// runs, also callable in-process (the fuzz target drives it).
pub fn routes(shared: Arc<Shared>, limit: usize) -> tonic::service::Routes {
    let profiles = ProfilesServiceServer::new(Receiver(shared.clone()))
        .max_decoding_message_size(limit)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd);
    tonic::service::Routes::new(ExportServer::<Traces>::new(shared.clone(), limit))
        .add_service(ExportServer::<Metrics>::new(shared.clone(), limit))
        .add_service(ExportServer::<Logs>::new(shared, limit))
        .add_service(profiles)
}

pub async fn serve(
    addr: SocketAddr,
    config: &ReceiverConfig,
    shared: Arc<Shared>,
    guard: Option<super::auth::Guard>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, PipelineError> {
    let listener = super::bind(addr, "OTLP/gRPC").await?;
    let routes = routes(shared.clone(), config.max_recv_msg_size);
    let builder = Server::builder()
        .http2_keepalive_interval(config.keepalive_time)
        .http2_keepalive_timeout(config.keepalive_timeout);
    let tls = config.tls.as_ref().map(super::tls_server::ServerTls::load).transpose()?;
    if let (Some(server), Some(files)) = (&tls, &config.tls)
        && let Some(interval) = files.reload_interval
    {
        let (server, counted) = (server.clone(), shared.clone());
        tokio::spawn(super::watch::watch_files(
            files.files(),
            interval,
            stop.clone(),
            "receiver TLS files".to_owned(),
            "new connections get them",
            move || server.reload().map(|()| counted.counters.receiver_tls_reloaded()),
        ));
    }
    let counters = shared.clone();
    let account = move |response| account_refusal(&counters.counters, response);
    // Without a token every request passes: one server type either way.
    let authenticate = move |request: Request<()>| match &guard {
        Some(g)
            if !g.admits(
                request.metadata().get("authorization").map(tonic::metadata::MetadataValue::as_bytes),
            ) =>
        {
            Err(Status::unauthenticated("missing or wrong bearer token"))
        }
        _ => Ok(request),
    };
    let router = builder
        .layer(tower::util::MapResponseLayer::new(account))
        .layer(tonic::service::InterceptorLayer::new(authenticate))
        .add_routes(routes);
    Ok(tokio::spawn(async move {
        let shutdown = super::stopped(stop.clone());
        let served = match tls {
            Some(tls) => {
                let incoming = super::tls_server::incoming(listener, tls, stop);
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
            None => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                router.serve_with_incoming_shutdown(incoming, shutdown).await
            }
        };
        if let Err(e) = served {
            log::error!("OTLP/gRPC receiver on {addr}: {e}");
        }
    }))
}
