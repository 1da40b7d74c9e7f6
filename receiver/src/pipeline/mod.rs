//! The OTLP pipeline: receivers (gRPC and HTTP) put what the Go service
//! exports into one bounded queue; the forwarder takes batches from it and
//! sends them upstream over one long-lived HTTP/2 channel, retrying what the
//! OTLP specification calls retryable. What gort does not change (the
//! service's metrics and logs, its spans when no linkage enriches them) is
//! checked and counted on arrival by walking its bytes against the OTLP
//! schema (`walk`), never decoded, and travels as the bytes it arrived in
//! (`raw`); batches of them are those bytes end to end.
//!
//! Backpressure policy: the queue holds at most `exporter.queue_items` items
//! (spans, data points, log records), counting those in flight. A request
//! that does not fit is refused whole with the retryable status the OTLP
//! specification prescribes (gRPC UNAVAILABLE, HTTP 503 with Retry-After),
//! so the SDK keeps it and retries; gort never drops silently. Every item is
//! counted once as accepted or refused, and every accepted item ends as sent
//! or dropped (non-retryable upstream answer, retries exhausted, or shutdown
//! deadline), so accepted = sent + dropped + queued at every moment. With
//! the persistent queue (`storage`), requests are written to its log before
//! they are acknowledged, what an earlier run left is replayed at start
//! (accepted + recovered = sent + dropped + queued), and what the shutdown
//! deadline leaves stays in the log rather than being dropped.

pub mod auth;
pub mod encoded;
pub mod forward;
pub mod grpc;
pub mod grpc_export;
pub mod gzip;
pub mod http;
pub mod identity;
pub mod linkage;
pub mod notices;
pub mod queue;
pub mod raw;
pub mod report_timing;
pub mod storage;
pub mod tap;
pub mod telemetry;
pub mod tls_server;
pub mod unary;
pub mod upstream;
pub mod wait_profile;
pub mod walk;
pub mod watch;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use gort_proto::{
    logs_service::ExportLogsServiceRequest, metrics_service::ExportMetricsServiceRequest,
    profiles_service::ExportProfilesServiceRequest, trace_service::ExportTraceServiceRequest,
};
use thiserror::Error;

pub use self::linkage::Linkage;
use crate::config::PipelineConfig;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen { addr: std::net::SocketAddr, what: &'static str, source: std::io::Error },
    #[error("exporter.endpoint {endpoint}: {message}")]
    Upstream { endpoint: String, message: String },
    #[error("{what} {path}: {source}")]
    TlsFile { what: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
}

/// Binds a listener of the pipeline, failing with what it was for.
async fn bind(
    addr: std::net::SocketAddr,
    what: &'static str,
) -> Result<tokio::net::TcpListener, PipelineError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| PipelineError::Listen { addr, what, source })
}

/// How a request is taken in (`Shared::keeps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Walked, and kept as the bytes it arrived in.
    Bytes,
    /// Decoded: gort may change it.
    Decoded,
    /// Walked, then kept as its bytes unless a linked target's service sent
    /// it (`Shared::keeps_spans_of`), and decoded then.
    ByService,
}

/// Resolves once `stop` turns true: a server's graceful-shutdown signal.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The OTLP signals gort forwards: the three the service sends, and
/// profiles, which only gort makes (its wait profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
    Profiles,
}

/// How many signals the books keep.
const SIGNALS: usize = 4;

impl Signal {
    pub const ALL: [Self; SIGNALS] = [Self::Traces, Self::Metrics, Self::Logs, Self::Profiles];

    /// What the signal's items are called in counters. A profile is one
    /// item whatever its samples: the upstream's partial-success answer
    /// counts profiles.
    pub fn items(self) -> &'static str {
        match self {
            Self::Traces => "spans",
            Self::Metrics => "metric_points",
            Self::Logs => "log_records",
            Self::Profiles => "profiles",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One export request as received.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
    /// Boxed: a request with its dictionary is several times the others' size.
    Profiles(Box<ExportProfilesServiceRequest>),
    /// Requests of any signal but profiles forwarded unchanged, as the bytes
    /// they arrived in.
    Raw(raw::Raw),
}

impl Payload {
    /// A request of `signal` with nothing in it.
    pub fn empty(signal: Signal) -> Self {
        match signal {
            Signal::Traces => Self::Traces(ExportTraceServiceRequest::default()),
            Signal::Metrics => Self::Metrics(ExportMetricsServiceRequest::default()),
            Signal::Logs => Self::Logs(ExportLogsServiceRequest::default()),
            Signal::Profiles => Self::Profiles(Box::default()),
        }
    }

    pub fn signal(&self) -> Signal {
        match self {
            Self::Traces(_) => Signal::Traces,
            Self::Metrics(_) => Signal::Metrics,
            Self::Logs(_) => Signal::Logs,
            Self::Profiles(_) => Signal::Profiles,
            Self::Raw(r) => r.signal(),
        }
    }

    /// Spans, metric data points, log records or profiles in the request.
    pub fn items(&self) -> u64 {
        use gort_proto::metrics::metric::Data;
        let n = match self {
            Self::Traces(r) => {
                r.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum::<usize>()
            }
            Self::Logs(r) => {
                r.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum::<usize>()
            }
            Self::Profiles(r) => {
                r.resource_profiles.iter().flat_map(|r| &r.scope_profiles).map(|s| s.profiles.len()).sum()
            }
            Self::Metrics(r) => r
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                })
                .sum(),
            Self::Raw(r) => return r.items(),
        };
        n as u64
    }

    /// The request's size as protobuf: the room it takes in the queue
    /// (walking it costs far less than the decoding that made it).
    pub fn encoded_len(&self) -> u64 {
        use prost::Message;
        let n = match self {
            Self::Traces(r) => r.encoded_len(),
            Self::Metrics(r) => r.encoded_len(),
            Self::Logs(r) => r.encoded_len(),
            Self::Profiles(r) => r.encoded_len(),
            Self::Raw(r) => return r.encoded_len(),
        };
        n as u64
    }

    /// Appends the request's protobuf encoding to `out`: the bytes sent
    /// upstream and written to the persistent queue.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use prost::Message;
        // Encoding into a Vec cannot run out of room.
        let _ = match self {
            Self::Traces(r) => r.encode(out),
            Self::Metrics(r) => r.encode(out),
            Self::Logs(r) => r.encode(out),
            Self::Profiles(r) => r.encode(out),
            Self::Raw(r) => {
                r.write(out);
                Ok(())
            }
        };
    }

    /// The request's protobuf encoding in one buffer: a request kept as one
    /// piece of bytes is that piece, not a copy.
    pub fn to_bytes(&self) -> bytes::Bytes {
        if let Self::Raw(r) = self
            && let Some(only) = r.single()
        {
            return only.clone();
        }
        let mut body = Vec::with_capacity(usize::try_from(self.encoded_len()).unwrap_or(0));
        self.encode(&mut body);
        bytes::Bytes::from(body)
    }

    /// The request decoded: itself, or its bytes decoded (None if they do
    /// not decode, which the walk on arrival rules out). For what must read
    /// a request's contents, such as `--otlp-json`.
    pub fn decoded(&self) -> Option<std::borrow::Cow<'_, Payload>> {
        match self {
            Self::Raw(r) => r.decode().map(std::borrow::Cow::Owned),
            decoded => Some(std::borrow::Cow::Borrowed(decoded)),
        }
    }

    /// Appends `other` (of the same signal) to this request: batching.
    /// Returns `other` back when the signals differ, and for profiles,
    /// whose indices point into their own request's dictionary. A decoded
    /// request meeting one kept as bytes is encoded, once, to join it.
    pub fn merge(&mut self, other: Payload) -> Result<(), Payload> {
        if self.signal() != other.signal() || other.signal() == Signal::Profiles {
            return Err(other);
        }
        match (&mut *self, other) {
            (Self::Traces(a), Self::Traces(b)) => a.resource_spans.extend(b.resource_spans),
            (Self::Metrics(a), Self::Metrics(b)) => a.resource_metrics.extend(b.resource_metrics),
            (Self::Logs(a), Self::Logs(b)) => a.resource_logs.extend(b.resource_logs),
            (Self::Raw(a), other) => a.append(other.into_raw()),
            (this, other) => {
                let mut bytes = raw::Raw::encode(this);
                bytes.append(other.into_raw());
                *this = Self::Raw(bytes);
            }
        }
        Ok(())
    }

    /// The request as bytes: itself if it is kept as bytes, else encoded.
    fn into_raw(self) -> raw::Raw {
        match self {
            Self::Raw(r) => r,
            decoded => raw::Raw::encode(&decoded),
        }
    }
}

/// Per-signal item counters: the pipeline's books.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: [AtomicU64; SIGNALS],
    refused: [AtomicU64; SIGNALS],
    sent: [AtomicU64; SIGNALS],
    dropped: [AtomicU64; SIGNALS],
    retries: [AtomicU64; SIGNALS],
    upstream_rejected: [AtomicU64; SIGNALS],
    malformed_requests: AtomicU64,
    oversize_requests: AtomicU64,
    unauthenticated_requests: AtomicU64,
    tls_reloads: AtomicU64,
    receiver_tls_reloads: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SignalCounts {
    pub accepted: u64,
    pub refused: u64,
    pub sent: u64,
    pub dropped: u64,
    pub retries: u64,
    pub upstream_rejected: u64,
}

impl Counters {
    fn add(slot: &[AtomicU64; SIGNALS], signal: Signal, n: u64) {
        slot[signal.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub fn accepted(&self, s: Signal, n: u64) {
        Self::add(&self.accepted, s, n);
    }
    pub fn refused(&self, s: Signal, n: u64) {
        Self::add(&self.refused, s, n);
    }
    pub fn sent(&self, s: Signal, n: u64) {
        Self::add(&self.sent, s, n);
    }
    pub fn dropped(&self, s: Signal, n: u64) {
        Self::add(&self.dropped, s, n);
    }
    pub fn retried(&self, s: Signal) {
        Self::add(&self.retries, s, 1);
    }
    pub fn upstream_rejected(&self, s: Signal, n: u64) {
        Self::add(&self.upstream_rejected, s, n);
    }
    pub fn malformed(&self) {
        self.malformed_requests.fetch_add(1, Ordering::Relaxed);
    }
    pub fn malformed_requests(&self) -> u64 {
        self.malformed_requests.load(Ordering::Relaxed)
    }
    pub fn oversize(&self) {
        self.oversize_requests.fetch_add(1, Ordering::Relaxed);
    }
    pub fn oversize_requests(&self) -> u64 {
        self.oversize_requests.load(Ordering::Relaxed)
    }
    pub fn unauthenticated(&self) {
        self.unauthenticated_requests.fetch_add(1, Ordering::Relaxed);
    }
    pub fn unauthenticated_requests(&self) -> u64 {
        self.unauthenticated_requests.load(Ordering::Relaxed)
    }
    pub fn tls_reloaded(&self) {
        self.tls_reloads.fetch_add(1, Ordering::Relaxed);
    }
    pub fn tls_reloads(&self) -> u64 {
        self.tls_reloads.load(Ordering::Relaxed)
    }
    pub fn receiver_tls_reloaded(&self) {
        self.receiver_tls_reloads.fetch_add(1, Ordering::Relaxed);
    }
    pub fn receiver_tls_reloads(&self) -> u64 {
        self.receiver_tls_reloads.load(Ordering::Relaxed)
    }

    pub fn get(&self, s: Signal) -> SignalCounts {
        let at = |slot: &[AtomicU64; SIGNALS]| slot[s.index()].load(Ordering::Relaxed);
        SignalCounts {
            accepted: at(&self.accepted),
            refused: at(&self.refused),
            sent: at(&self.sent),
            dropped: at(&self.dropped),
            retries: at(&self.retries),
            upstream_rejected: at(&self.upstream_rejected),
        }
    }
}

/// What receivers and the forwarder share.
pub struct Shared {
    pub queue: queue::Queue,
    pub counters: Counters,
    /// False once shutdown begins: health turns unready, receivers refuse.
    pub ready: AtomicBool,
    /// Trace linkage, when configured: spans wait there for their runtime
    /// accounting before they enter the queue.
    pub linkage: Option<Linkage>,
    /// How the services that export to gort name themselves.
    pub identities: identity::Identities,
    /// `--otlp-json`: a copy of every request as it enters the queue.
    pub tap: std::sync::OnceLock<tap::JsonTap>,
    /// The sessions' goroutine censuses with stacks, for the wait profile.
    pub wait_samples: crate::telemetry::wait_profile::WaitSamples,
    /// `exporter.profiles`: sessions send their wait profile upstream.
    pub export_profiles: bool,
    /// Whether the upstream has been taking exports.
    pub upstream: upstream::UpstreamHealth,
    /// Retries, refusals and drops as log lines, summed per interval.
    pub notices: notices::Notices,
    /// How late the sessions' reports went out.
    pub report_timing: report_timing::ReportTiming,
    /// `exporter.storage`: accepted requests are written here first.
    pub storage: Option<storage::Storage>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("queued_items", &self.queue.held()).finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(config: &PipelineConfig) -> Arc<Self> {
        Self::with_storage(config, None)
    }

    pub fn with_storage(config: &PipelineConfig, storage: Option<storage::Storage>) -> Arc<Self> {
        Arc::new(Self {
            queue: queue::Queue::new(queue::Room {
                items: config.exporter.queue_items,
                bytes: config.exporter.queue_bytes,
            }),
            counters: Counters::default(),
            ready: AtomicBool::new(true),
            linkage: config.linkage.map(Linkage::new),
            identities: identity::Identities::default(),
            tap: std::sync::OnceLock::new(),
            wait_samples: Default::default(),
            export_profiles: config.exporter.profiles,
            upstream: upstream::UpstreamHealth::default(),
            notices: notices::Notices::default(),
            report_timing: report_timing::ReportTiming::default(),
            storage,
        })
    }

    /// Puts a request that has its room into the queue (and its copy into
    /// `--otlp-json`).
    pub fn enqueue_reserved(&self, payload: Payload, room: queue::Room, mark: Option<storage::Mark>) {
        if let Some(tap) = self.tap.get() {
            tap.write(&payload);
        }
        self.queue.push_reserved(payload, room, mark);
    }

    /// The forwarder is done with a batch (sent, or given up on): its room
    /// goes back and its records leave the persistent queue.
    pub fn release(&self, batch: &queue::Batch) {
        self.queue.release(batch);
        if let Some(storage) = &self.storage {
            storage.done(&batch.marks);
        }
    }

    /// A batch not delivered by the shutdown deadline: with the persistent
    /// queue it stays in the log for the next start (its room released,
    /// and true returned); without, the caller drops and releases it.
    pub fn keep_at_shutdown(&self, batch: &queue::Batch) -> bool {
        match &self.storage {
            Some(storage) if !batch.marks.is_empty() => {
                self.queue.release(batch);
                storage.keep(batch.items);
                log::warn!(
                    "shutdown deadline: {} {} kept in the persistent queue for the next start",
                    batch.items,
                    batch.payload.signal().items()
                );
                true
            }
            _ => false,
        }
    }

    fn refuse(&self, signal: Signal, items: u64, why: &str) {
        self.counters.refused(signal, items);
        self.notices.note(
            notices::Kind::Refused,
            signal.items(),
            items,
            format!("refused a request of {items} {}: {why}; the client is told to retry", signal.items()),
        );
    }

    /// Takes a request received from a client into the queue, or refuses
    /// it whole (the client is told to retry). Returns whether it was
    /// accepted.
    pub fn offer(&self, payload: Payload) -> bool {
        self.identities.observe(&payload);
        self.offer_own(payload)
    }

    /// How requests of `signal` arriving now are taken: as the bytes they
    /// arrived in, all but profiles; spans decoded while a linked target is
    /// attached (with none, `Linkage::hold` would give them back), or, once
    /// every linked target has named its service, only those a linked
    /// service sent.
    pub fn keeps(&self, signal: Signal) -> Keep {
        if !walk::walkable(signal) {
            return Keep::Decoded;
        }
        match &self.linkage {
            Some(linkage) if signal == Signal::Traces && linkage.is_linked() => {
                if linkage.knows_services() {
                    Keep::ByService
                } else {
                    Keep::Decoded
                }
            }
            _ => Keep::Bytes,
        }
    }

    /// For `Keep::ByService`: whether a walked trace request came from no
    /// linked target's service, and so goes on as its bytes.
    pub fn keeps_spans_of(&self, body: &[u8], walked: &walk::Walked) -> bool {
        let Some(linkage) = &self.linkage else { return true };
        let resources: Vec<_> = walked.resources.iter().map(|fields| walk::resource(body, fields)).collect();
        let services = resources.iter().map(|r| r.as_ref().and_then(crate::linkage::service_name));
        !linkage.may_enrich(services)
    }

    /// `offer` for a request kept as its protobuf `body`, which `walk`
    /// checked and counted (`walked`): it goes on as those bytes.
    pub fn offer_bytes(&self, signal: Signal, body: bytes::Bytes, walked: &walk::Walked) -> bool {
        if let Some(resource) = walked.resources.first().and_then(|fields| walk::resource(&body, fields)) {
            self.identities.observe_resource(&resource);
        }
        self.offer_own(Payload::Raw(raw::Raw::new(signal, walked.items, body)))
    }

    /// `offer` for what gort itself exports (its metrics): it says nothing
    /// of how the service names itself.
    pub fn offer_own(&self, payload: Payload) -> bool {
        let (signal, items) = (payload.signal(), payload.items());
        let room = queue::Room { items, bytes: payload.encoded_len() };
        // Admission: room is taken in the queue now, also for spans the
        // linkage stage holds, so backpressure and the books are those of a
        // queued request.
        let ready = self.ready.load(Ordering::Relaxed);
        if !ready || self.queue.reserve(room).is_err() {
            let why = if ready {
                format!(
                    "the queue is full ({} items, {:.1} MiB held)",
                    self.queue.held(),
                    self.queue.held_bytes() as f64 / f64::from(1 << 20)
                )
            } else {
                "gort is shutting down".to_owned()
            };
            self.refuse(signal, items, &why);
            return false;
        }
        // Written before the client hears it was accepted: what gort
        // acknowledges survives its crash.
        let mark = match self.storage.as_ref().map(|s| s.append(&payload, room.bytes)) {
            None => None,
            Some(Ok(mark)) => Some(mark),
            Some(Err(e)) => {
                self.queue.unreserve(room);
                self.refuse(signal, items, &format!("persistent queue: {e}"));
                return false;
            }
        };
        self.counters.accepted(signal, items);
        // The next stage: linkage holds the spans of linked targets until
        // their probe data arrives; everything else goes on to the queue.
        let payload = match (payload, &self.linkage) {
            (Payload::Traces(request), Some(linkage)) => match linkage.hold(request, room, mark) {
                Ok(()) => return true,
                Err(request) => Payload::Traces(request),
            },
            (payload, _) => payload,
        };
        self.enqueue_reserved(payload, room, mark);
        true
    }
}

/// Writes the summed notices as their intervals pass.
async fn say_notices(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => shared.notices.flush(),
            _ = stop.changed() => {}
        }
    }
}

/// Flushes the persistent queue to the disk every `interval` (and at stop).
async fn sync_storage(
    shared: Arc<Shared>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stopping = *stop.borrow();
        let s = shared.clone();
        let synced =
            tokio::task::spawn_blocking(move || s.storage.as_ref().map(storage::Storage::sync)).await;
        if let Ok(Some(Err(e))) = synced {
            log::warn!("persistent queue: cannot sync to disk: {e}");
        }
        if stopping {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// A running pipeline: receivers, forwarder and self-telemetry.
pub struct Pipeline {
    pub shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    /// Self-telemetry outlives the drain (health says "unready" meanwhile).
    telemetry: Option<(tokio::task::JoinHandle<()>, tokio::sync::watch::Sender<bool>)>,
    forwarder: tokio::task::JoinHandle<()>,
    shutdown_timeout: std::time::Duration,
    export_timeout: std::time::Duration,
}

impl Pipeline {
    /// Binds every listener (failing fast on a taken port) and starts serving.
    pub async fn start(config: &PipelineConfig) -> Result<Self, PipelineError> {
        let (storage, left) = match &config.exporter.storage {
            Some(c) => {
                let (s, left) = storage::Storage::open(c)?;
                (Some(s), left)
            }
            None => (None, Vec::new()),
        };
        let shared = Shared::with_storage(config, storage);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        // One token per file, read and watched once however many listeners share it.
        let mut tokens: Vec<Arc<auth::BearerToken>> = Vec::new();
        let mut guard = |file: &Option<std::path::PathBuf>| -> Result<Option<auth::Guard>, PipelineError> {
            let Some(path) = file else { return Ok(None) };
            let token = match tokens.iter().find(|t| t.path() == path) {
                Some(t) => t.clone(),
                None => {
                    let t = Arc::new(auth::BearerToken::load(path)?);
                    tokens.push(t.clone());
                    t
                }
            };
            Ok(Some(auth::Guard { token, shared: shared.clone() }))
        };
        let receiver_guard = guard(&config.receiver.bearer_token_file)?;
        // Only a listener that runs needs its token read and watched.
        let telemetry_guard = match config.telemetry {
            Some(_) => guard(&config.telemetry_token_file)?,
            None => None,
        };
        for token in tokens {
            let path = token.path().to_owned();
            tasks.push(tokio::spawn(watch::watch_files(
                vec![path.clone()],
                auth::RELOAD_INTERVAL,
                stopped.clone(),
                format!("bearer token file {}", path.display()),
                "requests must present the new token",
                move || token.reload(),
            )));
        }
        if let Some(addr) = config.receiver.grpc {
            let g = receiver_guard.clone();
            tasks.push(grpc::serve(addr, &config.receiver, shared.clone(), g, stopped.clone()).await?);
        }
        if let Some(addr) = config.receiver.http {
            let g = receiver_guard.clone();
            tasks.push(http::serve(addr, &config.receiver, shared.clone(), g, stopped.clone()).await?);
        }
        let telemetry = match config.telemetry {
            Some(addr) => {
                let (stop, stopped) = tokio::sync::watch::channel(false);
                Some((telemetry::serve(addr, shared.clone(), telemetry_guard, stopped).await?, stop))
            }
            None => None,
        };
        if shared.linkage.is_some() {
            tasks.push(tokio::spawn(linkage::run(shared.clone(), stopped.clone())));
        }
        tasks.push(tokio::spawn(say_notices(shared.clone(), stopped.clone())));
        if let Some(c) = &config.exporter.storage {
            tasks.push(tokio::spawn(storage::replay::replay(shared.clone(), left, stopped.clone())));
            if !c.sync_interval.is_zero() {
                tasks.push(tokio::spawn(sync_storage(shared.clone(), c.sync_interval, stopped.clone())));
            }
        }
        let forwarder = forward::Forwarder::new(&config.exporter, shared.clone())?;
        let forwarder = tokio::spawn(forwarder.run(stopped));
        Ok(Self {
            shared,
            tasks,
            stop,
            telemetry,
            forwarder,
            shutdown_timeout: config.exporter.shutdown_timeout,
            export_timeout: config.exporter.timeout,
        })
    }

    /// Graceful shutdown: unready first, receivers stop taking requests,
    /// then the forwarder drains the queue until it is empty or the
    /// deadline passes (what is left is counted as dropped).
    pub async fn shutdown(self) {
        self.shared.ready.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // The forwarder's own bound is the drain deadline plus one export
        // attempt; past this one it hangs.
        let bound = self.shutdown_timeout + self.export_timeout + std::time::Duration::from_secs(1);
        if tokio::time::timeout(bound, self.forwarder).await.is_err() {
            log::error!("forwarder did not stop within {bound:?}");
        }
        // The last of each burst, however little of its interval passed.
        self.shared.notices.flush_all();
        if let Some((task, stop)) = self.telemetry {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}
