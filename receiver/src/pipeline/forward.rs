//! The forwarder: batches from the queue to the upstream Collector over one
//! lazily connected, long-lived HTTP/2 channel (tonic multiplexes every
//! request on it), each batch framed and gzip-compressed once (`encoded`)
//! and sent as it is by every attempt (`unary`), with the configured headers
//! and timeout. Failures the OTLP specification calls retryable are retried
//! with exponential backoff, jittered so that batches that failed together
//! do not return together, honouring the server's RetryInfo; the rest, and
//! batches whose retries outlast `retry_max_elapsed`, are dropped and counted.
//! The TLS files (CA, client certificate and key) are read again every
//! `tls.reload_interval`, so rotated certificates are used without a restart.

use std::{
    sync::{Arc, OnceLock, RwLock},
    time::{Duration, Instant},
};

use gort_proto::{
    logs_service::ExportLogsServiceResponse, metrics_service::ExportMetricsServiceResponse,
    profiles_service::ExportProfilesServiceResponse, trace_service::ExportTraceServiceResponse,
};
use http::HeaderMap;
use tonic::{
    Code, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_types::StatusExt;

use super::{
    PipelineError, Shared, Signal,
    encoded::{Encoded, Rejected},
    gzip::Compressors,
    notices::Kind,
    queue::{Batch, Room},
    unary,
};
use crate::config::{ExporterConfig, Tls};

/// Batches sent at once: enough to hide the upstream's latency.
const CONCURRENT_REQUESTS: usize = 4;

/// How long past `timeout` an attempt may take: the channel's timeout ends
/// at the answer's headers, this bound also covers its body.
const ANSWER_SLACK: Duration = Duration::from_millis(100);

/// One channel for the four signals, and the configured headers every
/// request carries; replaced whole when TLS files change.
#[derive(Clone)]
struct Clients {
    channel: Channel,
    headers: Arc<HeaderMap>,
}

#[derive(Clone)]
pub struct Forwarder {
    clients: Arc<RwLock<Clients>>,
    shared: Arc<Shared>,
    config: ExporterConfig,
    /// Set when shutdown begins: retries stop after it.
    drain_deadline: Arc<OnceLock<Instant>>,
    /// Deflate states for batches, if the exporter compresses.
    gzip: Option<Arc<Compressors>>,
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, PipelineError> {
    std::fs::read(path).map_err(|source| PipelineError::TlsFile { what, path: path.to_owned(), source })
}

fn client_tls(tls: &Tls) -> Result<ClientTlsConfig, PipelineError> {
    let mut c = ClientTlsConfig::new();
    if let Some(ca) = &tls.ca_file {
        c = c.ca_certificate(Certificate::from_pem(read("CA file", ca)?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        c = c.identity(Identity::from_pem(read("certificate", cert)?, read("key", key)?));
    }
    Ok(c)
}

/// Whether the OTLP specification lets a client retry after `status`
/// (RESOURCE_EXHAUSTED only when the server says when, with RetryInfo), or
/// the connection failed before the server could answer.
pub fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_delay(status).is_some(),
        _ => connection_failed(status),
    }
}

/// A failure of the connection, not an answer of the server (reset, closed
/// during the handshake or mid-request): tonic reports some as UNKNOWN
/// ("transport error"), where gRPC's own clients say UNAVAILABLE, which is
/// retryable. A server's answer carries no such source.
fn connection_failed(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

fn retry_delay(status: &Status) -> Option<Duration> {
    status.get_details_retry_info().and_then(|r| r.retry_delay)
}

/// `delay` less up to half of it, at random ("equal jitter").
fn jittered(delay: Duration) -> Duration {
    use std::hash::BuildHasher;
    // A fresh RandomState is seeded differently each time: randomness
    // enough to spread retries, with no generator to carry around.
    equal_jitter(delay, std::hash::RandomState::new().hash_one(Instant::now()))
}

fn equal_jitter(delay: Duration, random: u64) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(random as f64 / u64::MAX as f64)
}

/// A failed export in one line: the gRPC code and what came with it
/// (tonic's message names the cause: refused, reset, DNS, timeout).
fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl Clients {
    fn connect(config: &ExporterConfig) -> Result<Self, PipelineError> {
        let bad = |message: String| PipelineError::Upstream { endpoint: config.endpoint.clone(), message };
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| bad(e.to_string()))?
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if let Some(tls) = &config.tls {
            endpoint = endpoint.tls_config(client_tls(tls)?).map_err(|e| bad(e.to_string()))?;
        }
        let channel = endpoint.connect_lazy();
        // Checked at start-up (config): none is left out here.
        let headers: HeaderMap = config
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.parse::<http::HeaderName>().ok()?, v.parse().ok()?)))
            .collect();
        Ok(Self { channel, headers: Arc::new(headers) })
    }
}

impl Forwarder {
    pub fn new(config: &ExporterConfig, shared: Arc<Shared>) -> Result<Self, PipelineError> {
        let clients = Arc::new(RwLock::new(Clients::connect(config)?));
        let gzip = config.gzip.then(Arc::default);
        Ok(Self { clients, shared, config: config.clone(), drain_deadline: Arc::default(), gzip })
    }

    fn clients(&self) -> Clients {
        // A writer cannot panic while holding the lock (it only assigns).
        self.clients.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// New channels from the TLS files as they are now: later requests
    /// use them, requests in flight finish on the old ones.
    fn reconnect(&self) -> Result<(), PipelineError> {
        let clients = Clients::connect(&self.config)?;
        *self.clients.write().unwrap_or_else(std::sync::PoisonError::into_inner) = clients;
        self.shared.counters.tls_reloaded();
        Ok(())
    }

    /// Sends one request; on success, the items the upstream rejected
    /// (partial success) and its message.
    async fn export(&self, request: &Encoded) -> Result<(u64, String), Status> {
        match request.signal {
            Signal::Traces => self.send::<ExportTraceServiceResponse>(request).await,
            Signal::Metrics => self.send::<ExportMetricsServiceResponse>(request).await,
            Signal::Logs => self.send::<ExportLogsServiceResponse>(request).await,
            Signal::Profiles => self.send::<ExportProfilesServiceResponse>(request).await,
        }
    }

    async fn send<R: Rejected>(&self, request: &Encoded) -> Result<(u64, String), Status> {
        let Clients { channel, headers } = self.clients();
        // The channel's timeout ends at the answer's headers; this one also
        // covers an answer whose body never comes.
        let limit = self.config.timeout + ANSWER_SLACK;
        match tokio::time::timeout(limit, unary::export::<R>(&channel, &headers, request)).await {
            Ok(answer) => Ok(answer?.rejected()),
            Err(_) => Err(Status::deadline_exceeded(format!("no whole answer within {limit:?}"))),
        }
    }

    /// Sends a batch until it is delivered or must be dropped; releases its
    /// items from the queue either way. Aborted at exit, it still counts
    /// the batch (`Delivery`).
    async fn deliver(self, batch: Batch, stop: tokio::sync::watch::Receiver<bool>) {
        let mut delivery = Delivery { batch, shared: self.shared.clone(), settled: false };
        if !self.attempts(&mut delivery.batch, stop).await {
            self.shared.release(&delivery.batch);
        }
        delivery.settled = true;
    }

    /// Sends `batch` until it is sent, dropped or kept in the persistent
    /// queue at shutdown (then true: its room is released already), and
    /// counts it. No await follows a count, so a delivery aborted at an
    /// await has counted nothing.
    async fn attempts(&self, batch: &mut Batch, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
        let signal = batch.payload.signal();
        // Encoded and compressed once, and the decoded batch freed: every
        // attempt sends this message.
        let request = match Encoded::new(&batch.take_payload(), self.gzip.as_deref()) {
            Ok(request) => request,
            Err(e) => {
                self.drop_batch(batch, format!("dropping {} {}: {e}", batch.items, signal.items()));
                return false;
            }
        };
        let shared = self.shared.clone();
        let counters = &shared.counters;
        let started = Instant::now();
        let mut delay = self.config.retry_initial;
        loop {
            match self.export(&request).await {
                Ok((rejected, message)) => {
                    shared.upstream.succeeded(signal);
                    counters.sent(signal, batch.items);
                    if rejected > 0 {
                        counters.upstream_rejected(signal, rejected);
                        log::warn!(
                            "upstream rejected {rejected} {} of {}: {message}",
                            signal.items(),
                            batch.items
                        );
                    }
                    break;
                }
                Err(status) if retryable(&status) => {
                    shared.upstream.failed(signal, describe(&status));
                    // Batches that failed together must not all come back
                    // together: the server's delay is kept, ours jittered.
                    let wait = retry_delay(&status).unwrap_or_else(|| jittered(delay));
                    let past_drain = self.drain_deadline.get().is_some_and(|d| Instant::now() + wait > *d);
                    if past_drain && self.shared.keep_at_shutdown(batch) {
                        return true;
                    }
                    if started.elapsed() + wait > self.config.retry_max_elapsed || past_drain {
                        self.drop_batch(
                            batch,
                            format!(
                                "dropping {} {}: upstream still failing after {:?} ({})",
                                batch.items,
                                signal.items(),
                                started.elapsed(),
                                status.message()
                            ),
                        );
                        break;
                    }
                    counters.retried(signal);
                    shared.notices.note(
                        Kind::Retry,
                        signal.items(),
                        batch.items,
                        format!("upstream: {} ({:?}); retrying in {wait:?}", status.message(), status.code()),
                    );
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        // A wait begun before shutdown ends with it: the batch
                        // is tried once more, then kept or dropped by the
                        // deadline, not left sleeping past it uncounted.
                        _ = stop.wait_for(|s| *s), if !*stop.borrow() => {
                            self.start_drain();
                        }
                    }
                    delay = (delay * 2).min(self.config.retry_max);
                }
                Err(status) => {
                    shared.upstream.failed(signal, describe(&status));
                    self.drop_batch(
                        batch,
                        format!(
                            "dropping {} {}: upstream answered {:?} ({}), which is not retryable",
                            batch.items,
                            signal.items(),
                            status.code(),
                            status.message()
                        ),
                    );
                    break;
                }
            }
        }
        false
    }

    /// Counts `batch` as dropped and says why.
    fn drop_batch(&self, batch: &Batch, why: String) {
        let signal = batch.payload.signal();
        self.shared.counters.dropped(signal, batch.items);
        self.shared.notices.note(Kind::Dropped, signal.items(), batch.items, why);
    }

    /// The instant retries stop, fixed by the first to see shutdown begin:
    /// the forwarder's loop or a delivery woken from its retry wait.
    fn start_drain(&self) {
        self.drain_deadline.get_or_init(|| Instant::now() + self.config.shutdown_timeout);
    }

    /// Takes batches while the pipeline runs; after `stop`, drains what is
    /// queued until `shutdown_timeout`, then counts the rest as dropped.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if let Some(tls) = &self.config.tls
            && let Some(interval) = tls.reload_interval
        {
            let forwarder = self.clone();
            tokio::spawn(super::watch::watch_files(
                tls.files(),
                interval,
                stop.clone(),
                "exporter TLS files".to_owned(),
                "new connections use them",
                move || forwarder.reconnect(),
            ));
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
        let mut deliveries = tokio::task::JoinSet::new();
        // A delivery ended: what waited for it may leave now.
        let finished = Arc::new(tokio::sync::Notify::new());
        let queue = &self.shared.queue;
        loop {
            while deliveries.try_join_next().is_some() {}
            let stopping = *stop.borrow();
            if stopping {
                self.start_drain();
            }
            let (waiting, oldest) = queue.waiting();
            let max = Room { items: self.config.batch_items, bytes: self.config.batch_bytes };
            // A batch leaves when it is full, when nothing is being sent
            // (so a lone request waits for no timer, and under load a batch
            // gathers what arrives during one send), or at `batch_timeout`
            // while sends are slow or retried.
            let idle = permits.available_permits() == CONCURRENT_REQUESTS;
            let due = waiting.items >= max.items
                || waiting.bytes >= max.bytes
                || oldest.is_some_and(|age| age >= self.config.batch_timeout)
                || (waiting.items > 0 && (idle || stopping));
            if due {
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                if let Some(batch) = queue.take(max) {
                    let (me, stop, finished) = (self.clone(), stop.clone(), finished.clone());
                    deliveries.spawn(async move {
                        me.deliver(batch, stop).await;
                        drop(permit);
                        finished.notify_one();
                    });
                }
                continue;
            }
            if stopping {
                if queue.held() == 0 || self.drain_deadline.get().is_some_and(|d| Instant::now() >= *d) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            // Nothing waiting: sleep until a push (or stop), not a timeout,
            // which with a zero batch_timeout would poll every millisecond.
            const IDLE: Duration = Duration::from_secs(3600);
            let nap = oldest.map_or(IDLE, |age| self.config.batch_timeout.saturating_sub(age));
            tokio::select! {
                () = queue.wait_push(nap.max(Duration::from_millis(1))) => {}
                () = finished.notified() => {}
                _ = stop.changed() => {}
            }
        }
        // Let deliveries in flight finish: they stop retrying at the
        // deadline, and an attempt begun before it ends within `timeout`
        // and the answer's slack. One still running past that is aborted,
        // and its batch counted (`Delivery`), not left out of the books.
        let left =
            self.drain_deadline.get().map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
        let bound = left + self.config.timeout + ANSWER_SLACK;
        let drained = tokio::time::timeout(bound, async { while deliveries.join_next().await.is_some() {} });
        if drained.await.is_err() {
            log::error!(
                "{} deliveries still in flight {bound:?} after the drain began: abandoned",
                deliveries.len()
            );
            deliveries.abort_all();
            while deliveries.join_next().await.is_some() {}
        }
        // Whatever is still waiting at the deadline stays in the persistent
        // queue, or is lost: say how much.
        while let Some(batch) = queue.take(Room::ALL) {
            let signal = batch.payload.signal();
            if self.shared.keep_at_shutdown(&batch) {
                continue;
            }
            if batch.items > 0 {
                self.shared.counters.dropped(signal, batch.items);
                log::error!("shutdown deadline: dropping {} queued {}", batch.items, signal.items());
            }
            self.shared.release(&batch);
        }
    }
}

/// A batch in delivery. Dropped unsettled (its delivery aborted at exit),
/// it keeps the batch in the persistent queue or counts it as dropped.
struct Delivery {
    batch: Batch,
    shared: Arc<Shared>,
    settled: bool,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.settled || self.shared.keep_at_shutdown(&self.batch) {
            return;
        }
        let signal = self.batch.payload.signal();
        if self.batch.items > 0 {
            self.shared.counters.dropped(signal, self.batch.items);
            log::error!("shutdown: dropping {} {} still being delivered", self.batch.items, signal.items());
        }
        self.shared.release(&self.batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delivery aborted at exit counts its batch as dropped and gives its
    /// room back; a settled one leaves the books to what it counted.
    #[test]
    fn an_abandoned_delivery_is_counted_as_dropped() {
        use gort_proto::{
            logs::{LogRecord, ResourceLogs, ScopeLogs},
            logs_service::ExportLogsServiceRequest,
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 3],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let shared = Shared::new(&crate::config::PipelineConfig::default());
        for (settled, dropped) in [(true, 0), (false, 3)] {
            assert!(shared.offer(super::super::Payload::Logs(request.clone())));
            let batch = shared.queue.take(Room::ALL).expect("the request waits");
            assert_eq!(shared.queue.held(), 3);
            let delivery = Delivery { batch, shared: shared.clone(), settled };
            if settled {
                shared.release(&delivery.batch);
            }
            drop(delivery);
            assert_eq!(shared.queue.held(), 0);
            assert_eq!(shared.counters.get(Signal::Logs).dropped, dropped);
        }
    }

    #[test]
    fn jitter_keeps_between_half_and_all_of_the_delay() {
        let d = Duration::from_secs(2);
        assert_eq!(equal_jitter(d, 0), Duration::from_secs(1));
        assert_eq!(equal_jitter(d, u64::MAX), d);
        let spread: std::collections::BTreeSet<_> = (0..20).map(|_| jittered(d)).collect();
        assert!(spread.iter().all(|w| (Duration::from_secs(1)..=d).contains(w)));
        assert!(spread.len() > 10, "retries that failed together would come back together: {spread:?}");
    }

    #[test]
    fn retryable_codes_follow_the_otlp_specification() {
        assert!(retryable(&Status::unavailable("x")));
        assert!(retryable(&Status::deadline_exceeded("x")));
        assert!(!retryable(&Status::invalid_argument("x")));
        assert!(!retryable(&Status::resource_exhausted("too big")));
        assert!(!retryable(&Status::permission_denied("x")));
        let with_retry_info = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(250))),
        );
        assert!(retryable(&with_retry_info));
        assert_eq!(retry_delay(&with_retry_info), Some(Duration::from_millis(250)));
    }

    #[test]
    fn a_failed_connection_is_retried_a_servers_unknown_is_not() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let status = Status::from_error(Box::new(reset));
        assert_eq!(status.code(), Code::Unknown);
        assert!(retryable(&status));
        assert!(!retryable(&Status::unknown("the server failed")));
        assert!(!retryable(&Status::internal("the server failed")));
    }
}
