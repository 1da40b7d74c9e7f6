//! The linkage stage, between admission and the queue: export requests of
//! linked targets wait here for their spans' probe data (fed by the session
//! loop), are enriched by the `linkage` room's join, and go on to the queue
//! when their data has arrived or their hold is over.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use gort_proto::trace_service::ExportTraceServiceRequest;

use super::{Payload, Shared, queue::Room, raw::Raw, storage::Mark};
use crate::{
    linkage::{Account, LinkCounts, Linker, Settings, SpanIds, Stall, service_name},
    telemetry::exemplars::Exemplars,
};

/// How often held spans and waiting accounts are looked at (besides when
/// probe data arrives); with neither, the stage sleeps until one comes.
const TICK: Duration = Duration::from_millis(20);
/// The wait of an idle stage: only a wake-up ends it.
const IDLE: Duration = Duration::from_secs(3600);

/// What the probes saw in one drain, for the join.
#[derive(Debug, Default)]
pub struct Probed {
    /// GC pauses, Unix ns.
    pub pauses: Vec<(u64, u64)>,
    /// Spans that ended: (pid, ids, what the runtime did to them).
    pub accounts: Vec<(u32, SpanIds, Account)>,
    /// Waits inside spans at least the child-span threshold: (pid, span id, stall).
    pub stalls: Vec<(u32, [u8; 8], Stall)>,
}

/// The stage's state: the join, and a wake-up for when probe data arrives.
pub struct Linkage {
    state: Mutex<Linker>,
    /// Woken when probe data arrives, so held spans go on without waiting
    /// for the next tick, and when an idle stage is given something to hold.
    arrived: tokio::sync::Notify,
}

impl Linkage {
    pub fn new(settings: Settings) -> Self {
        Self { state: Mutex::new(Linker::new(settings)), arrived: tokio::sync::Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Linker> {
        // Linker methods leave it consistent at every return, so a panic
        // elsewhere while holding the lock cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn settings(&self) -> Settings {
        self.lock().settings()
    }

    /// Target `pid` with linkage attached (`true`) or detached: spans are
    /// held only while one is.
    pub fn set_linked(&self, pid: u32, linked: bool) {
        self.lock().set_linked(pid, linked);
    }

    /// Whether spans arriving now may be enriched (a target with linkage is
    /// attached): only then are they decoded rather than forwarded as bytes.
    pub fn is_linked(&self) -> bool {
        self.lock().is_linked()
    }

    /// Whether every linked target has named its service, so that a
    /// request's resources tell whether it may be enriched (`may_enrich`).
    pub fn knows_services(&self) -> bool {
        self.lock().knows_services()
    }

    /// Whether spans under resources named `services` may be a linked
    /// target's (see `Linker::may_enrich`).
    pub fn may_enrich<'a>(&self, services: impl Iterator<Item = Option<&'a str>>) -> bool {
        self.lock().may_enrich(services)
    }

    /// Holds an admitted request (its room is taken) for its probe data, or
    /// gives it back when no linked target is attached.
    pub fn hold(
        &self,
        request: ExportTraceServiceRequest,
        room: Room,
        mark: Option<Mark>,
    ) -> Result<(), ExportTraceServiceRequest> {
        let mut linker = self.lock();
        // Another service's spans (a request decoded as JSON, say) go on at
        // once: nothing will come to enrich them.
        let services = request.resource_spans.iter().map(|r| r.resource.as_ref().and_then(service_name));
        if !linker.may_enrich(services) {
            return Err(request);
        }
        let was_idle = linker.is_idle();
        linker.hold(request, room.items, room.bytes, mark.map(Mark::raw), Instant::now());
        if was_idle {
            self.arrived.notify_one();
        }
        Ok(())
    }

    /// Adds what the probes saw; returns the books after it.
    pub fn feed(&self, probed: Probed) -> LinkCounts {
        let arrived = !probed.accounts.is_empty() || !probed.stalls.is_empty();
        let now = Instant::now();
        let counts = {
            let mut linker = self.lock();
            for (start, end) in probed.pauses {
                linker.add_pause(start, end);
            }
            for (pid, ids, account) in probed.accounts {
                linker.add_account(pid, ids, account, now);
            }
            for (pid, span_id, stall) in probed.stalls {
                linker.add_stall(pid, span_id, stall);
            }
            linker.counts()
        };
        if arrived {
            self.arrived.notify_one();
        }
        counts
    }

    /// The exemplars gathered since the last take (each goes out once).
    pub fn take_exemplars(&self) -> Exemplars {
        self.lock().take_exemplars()
    }

    pub fn counts(&self) -> LinkCounts {
        self.lock().counts()
    }
}

/// Moves held export requests into the queue when their data has arrived or
/// their hold is over; at stop, everything held at once.
pub(super) async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(linkage) = &shared.linkage else { return };
    loop {
        let stopping = *stop.borrow();
        let (released, silence, idle) = {
            let mut linker = linkage.lock();
            (linker.release(Instant::now(), stopping), linker.take_silence(), linker.is_idle())
        };
        if let Some(s) = silence {
            log::warn!(
                "trace linkage: the probes saw {} span(s) end in the service, but none of its spans reached gort within {:?}; \
                 is the service's OTLP exporter pointed at gort (OTEL_EXPORTER_OTLP_ENDPOINT, or the traces endpoint), \
                 with a protocol gort receives (grpc on the gRPC port, http/protobuf or http/json on the HTTP port), \
                 and do those ports match gort's receiver? (counted in gort_linkage_spans_not_received_total)",
                s.spans,
                s.waited
            );
        }
        for r in released {
            // The children are gort's own items: room is made for them (they
            // are never refused: their parent was accepted), and they are
            // sent and counted like the service's. So are the bytes the
            // enrichment added, children and attributes: a batch's bytes
            // must be the size of the message sent, which the upstream
            // bounds.
            // Encoded here, once: the length is then known exactly, and
            // the forwarder sends these bytes as they are.
            let raw = Raw::encode(&Payload::Traces(r.request));
            let bytes = raw.encoded_len().max(r.bytes);
            shared.queue.add_reserved(Room { items: r.children, bytes: bytes - r.bytes });
            shared.enqueue_reserved(
                Payload::Raw(raw),
                Room { items: r.items + r.children, bytes },
                r.record.map(Mark::from_raw),
            );
        }
        if stopping {
            return;
        }
        // Idle, a tick would find nothing: a sidecar's idle CPU is paid on
        // every instance.
        let tick = if idle { IDLE } else { TICK };
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = linkage.arrived.notified() => {}
            _ = stop.changed() => {}
        }
    }
}
