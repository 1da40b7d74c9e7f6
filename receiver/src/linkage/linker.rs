//! The join's state: held export requests, accounts waiting for their
//! spans, recent GC pauses, and the books.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use gort_proto::{
    common::{InstrumentationScope, any_value},
    resource::Resource,
    trace::ScopeSpans,
    trace_service::ExportTraceServiceRequest,
};

use super::{
    LinkCounts, Settings, SpanIds,
    annotate::{annotate, child_span, ids_of},
    kinds::StallKind,
    records::{Account, Stall},
};
use crate::telemetry::exemplars::{Exemplar, ExemplarFor, Exemplars};

/// A request that goes on: the service's `items` and gort's `children`,
/// and the `bytes` the service's request took when it was admitted, and
/// its `record` in the persistent queue (opaque here).
#[derive(Clone, Debug, PartialEq)]
pub struct Released {
    pub request: ExportTraceServiceRequest,
    pub items: u64,
    pub bytes: u64,
    pub children: u64,
    pub record: Option<u64>,
}

struct Held {
    request: ExportTraceServiceRequest,
    items: u64,
    bytes: u64,
    record: Option<u64>,
    arrived: Instant,
}

/// An account waiting for its span.
struct Waiting {
    /// The process the span ended in.
    pid: u32,
    trace_id: [u8; 16],
    account: Account,
    arrived: Instant,
}

/// The join's state.
pub struct Linker {
    settings: Settings,
    /// By span id, as the kernel keys spans: a stall record carries only
    /// that, and finds its account in one lookup.
    accounts: HashMap<[u8; 8], Waiting>,
    /// Arrival order of accounts, for expiry (entries may be stale).
    order: VecDeque<(Instant, [u8; 8])>,
    /// Stalls whose span end has not arrived yet, by (pid, span id).
    pending_stalls: HashMap<(u32, [u8; 8]), Vec<Stall>>,
    /// Recent GC pauses (Unix ns), for stop-the-world children.
    pauses: VecDeque<(u64, u64)>,
    held: VecDeque<Held>,
    exemplars: Exemplars,
    counts: LinkCounts,
    /// Targets with linkage attached now, by pid, each with the
    /// `service.name` of the resource its first enriched span came under
    /// (None until then): with none attached, nothing is held; once every
    /// one has a name, spans of other services pass by (`may_enrich`).
    linked: HashMap<u32, Option<String>>,
    /// When a span last arrived from the service.
    last_span: Option<Instant>,
    /// The service seems not to export to gort, not yet told.
    silence: Option<Silence>,
    silence_told: bool,
}

/// Spans the probes saw end, none of which reached gort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// Span ends seen by the probes whose spans never came.
    pub spans: u64,
    pub waited: Duration,
}

/// The `service.name` of `resource`, if it has a non-empty string one: what
/// tells a linked target's spans from other services' (`may_enrich`).
pub fn service_name(resource: &Resource) -> Option<&str> {
    let kv = resource.attributes.iter().find(|kv| kv.key == "service.name")?;
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

/// How long recent GC pauses are remembered: longer than any hold plus
/// the batching delay of an SDK, so a span that arrives late still finds them.
const PAUSE_MEMORY: usize = 4096;

impl Linker {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            accounts: HashMap::new(),
            order: VecDeque::new(),
            pending_stalls: HashMap::new(),
            pauses: VecDeque::new(),
            held: VecDeque::new(),
            exemplars: Exemplars::default(),
            counts: LinkCounts::default(),
            linked: HashMap::new(),
            last_span: None,
            silence: None,
            silence_told: false,
        }
    }

    /// The first time the service's spans were found missing: to be said
    /// once, with the likely causes (`None` after, and before).
    pub fn take_silence(&mut self) -> Option<Silence> {
        if self.silence_told {
            return None;
        }
        let s = self.silence.take()?;
        self.silence_told = true;
        Some(s)
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Target `pid` with linkage attached (`true`) or detached.
    pub fn set_linked(&mut self, pid: u32, linked: bool) {
        if linked {
            self.linked.entry(pid).or_default();
        } else {
            self.linked.remove(&pid);
        }
    }

    pub fn is_linked(&self) -> bool {
        !self.linked.is_empty()
    }

    /// Every linked target has named its service: which spans it may
    /// enrich can be told from their resources (`may_enrich`).
    pub fn knows_services(&self) -> bool {
        self.is_linked() && self.linked.values().all(Option::is_some)
    }

    /// Whether spans under resources named `services` (`None`: a resource
    /// without `service.name`) may come from a linked target, so that a
    /// request of theirs is worth decoding and holding. Until every linked
    /// target has named its service, any may.
    pub fn may_enrich<'a>(&self, mut services: impl Iterator<Item = Option<&'a str>>) -> bool {
        if !self.knows_services() {
            return self.is_linked();
        }
        services.any(|name| name.is_none_or(|n| self.linked.values().any(|l| l.as_deref() == Some(n))))
    }

    /// Nothing held and no account waiting: `release` has nothing to do
    /// until `hold` or `add_account` is called.
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && self.order.is_empty()
    }

    /// A span ended in the target: its account waits for the span.
    pub fn add_account(&mut self, pid: u32, ids: SpanIds, mut account: Account, now: Instant) {
        if let Some(stalls) = self.pending_stalls.remove(&(pid, ids.1)) {
            account.stalls.extend(stalls);
        }
        let (trace_id, span_id) = ids;
        match self.accounts.get_mut(&span_id) {
            // A second End of the same span (the SDK ignores it): keep the
            // account of the first, which saw the start.
            Some(w) if w.trace_id == trace_id => {
                if !w.account.start_seen && account.start_seen {
                    w.account = account;
                }
            }
            _ => {
                self.accounts.insert(span_id, Waiting { pid, trace_id, account, arrived: now });
                self.order.push_back((now, span_id));
            }
        }
        while self.accounts.len() > self.settings.max_accounts {
            let Some((_, oldest)) = self.order.pop_front() else { break };
            if self.accounts.remove(&oldest).is_some() {
                self.counts.accounts_expired += 1;
            }
        }
    }

    /// A stall inside a span still open (or just ended: the span-end record
    /// may come first when CPUs race).
    pub fn add_stall(&mut self, pid: u32, span_id: [u8; 8], stall: Stall) {
        if let Some(w) = self.accounts.get_mut(&span_id) {
            w.account.stalls.push(stall);
            return;
        }
        let pending = self.pending_stalls.entry((pid, span_id)).or_default();
        // Bounded: a span that never ends cannot grow this without limit.
        if pending.len() < 256 {
            pending.push(stall);
        } else {
            self.counts.late_stalls += 1;
        }
    }

    /// A GC stop-the-world pause in a linked target (Unix ns).
    pub fn add_pause(&mut self, start_unix_ns: u64, end_unix_ns: u64) {
        self.pauses.push_back((start_unix_ns, end_unix_ns));
        while self.pauses.len() > PAUSE_MEMORY {
            self.pauses.pop_front();
        }
    }

    /// Takes an export request of `items` spans (`bytes` encoded, written
    /// to the persistent queue as `record`) to hold until its spans' data
    /// arrives (or `hold` passes).
    pub fn hold(
        &mut self,
        request: ExportTraceServiceRequest,
        items: u64,
        bytes: u64,
        record: Option<u64>,
        now: Instant,
    ) {
        self.counts.held_requests += 1;
        self.counts.held_spans += items;
        self.counts.spans_received += items;
        self.last_span = Some(now);
        self.held.push_back(Held { request, items, bytes, record, arrived: now });
    }

    fn ready(&self, held: &Held, now: Instant) -> bool {
        now.duration_since(held.arrived) >= self.settings.hold
            || held
                .request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .all(|s| ids_of(s).is_some_and(|ids| self.has_account(ids)))
    }

    /// Requests ready to go on (`all`: every held one, at shutdown),
    /// enriched, with their item counts as accepted. Also expires old
    /// accounts and stalls.
    /// Each comes with the service's items and the child spans gort added.
    pub fn release(&mut self, now: Instant, all: bool) -> Vec<Released> {
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        while let Some(held) = self.held.pop_front() {
            if all || self.ready(&held, now) {
                self.counts.held_requests -= 1;
                self.counts.held_spans -= held.items;
                let mut request = held.request;
                let children = self.enrich(&mut request);
                out.push(Released {
                    request,
                    items: held.items,
                    bytes: held.bytes,
                    children,
                    record: held.record,
                });
            } else {
                keep.push_back(held);
            }
        }
        self.held = keep;
        while let Some(&(t, span_id)) = self.order.front() {
            if now.duration_since(t) < self.settings.account_ttl {
                break;
            }
            self.order.pop_front();
            if self.accounts.get(&span_id).is_some_and(|w| w.arrived == t) {
                self.accounts.remove(&span_id);
                self.counts.accounts_expired += 1;
                // No span at all arrived since this one ended: the service's
                // spans do not come to gort.
                if self.last_span.is_none_or(|l| l < t) {
                    self.counts.spans_not_received += 1;
                    let silence =
                        self.silence.get_or_insert(Silence { spans: 0, waited: self.settings.account_ttl });
                    silence.spans += 1;
                }
            }
        }
        if self.pending_stalls.len() > 4 * self.settings.max_accounts {
            self.counts.late_stalls += self.pending_stalls.values().map(|v| v.len() as u64).sum::<u64>();
            self.pending_stalls.clear();
        }
        out
    }

    /// Adds the accounting of every span that has some, and the stall
    /// children; returns how many children.
    fn enrich(&mut self, request: &mut ExportTraceServiceRequest) -> u64 {
        let mut added = 0;
        for resource in &mut request.resource_spans {
            let mut children = Vec::new();
            let mut from = None;
            for scope in &mut resource.scope_spans {
                for span in &mut scope.spans {
                    let Some(ids) = ids_of(span) else {
                        self.counts.unmatched += 1;
                        continue;
                    };
                    let Some((pid, account)) = self.take_account(ids) else {
                        self.counts.unmatched += 1;
                        continue;
                    };
                    from = Some(pid);
                    self.counts.enriched += 1;
                    let pauses = self.pauses_within(span.start_time_unix_nano, span.end_time_unix_nano);
                    self.offer_exemplars(ids, &account, &pauses);
                    let threshold =
                        u64::try_from(self.settings.child_span_threshold.as_nanos()).unwrap_or(u64::MAX);
                    let mut stalls = account.stalls.clone();
                    stalls.extend(pauses.iter().filter(|(s, e)| e - s >= threshold).map(|&(s, e)| Stall {
                        kind: StallKind::StopTheWorld,
                        goid: 0,
                        started_goroutine: false,
                        start_unix_ns: s,
                        end_unix_ns: e,
                        pcs: Vec::new(),
                        site: None,
                    }));
                    let before = stalls.len();
                    stalls.retain(|s| self.settings.stall_spans.contains(s.kind.selector()));
                    self.counts.stalls_not_spans += (before - stalls.len()) as u64;
                    stalls.sort_by_key(|s| s.start_unix_ns);
                    annotate(span, &account, stalls.len());
                    for (n, stall) in stalls.iter().enumerate() {
                        children.push(child_span(span, stall, n));
                    }
                }
            }
            if let Some(pid) = from
                && let Some(name @ None) = self.linked.get_mut(&pid)
            {
                *name = resource.resource.as_ref().and_then(service_name).map(str::to_owned);
            }
            if !children.is_empty() {
                self.counts.stall_spans += children.len() as u64;
                added += children.len() as u64;
                resource.scope_spans.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: crate::export::SCOPE_NAME.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans: children,
                    ..Default::default()
                });
            }
        }
        added
    }

    fn has_account(&self, (trace_id, span_id): SpanIds) -> bool {
        self.accounts.get(&span_id).is_some_and(|w| w.trace_id == trace_id)
    }

    /// The account of span `ids`, and the process it ended in.
    fn take_account(&mut self, ids: SpanIds) -> Option<(u32, Account)> {
        self.has_account(ids).then(|| self.accounts.remove(&ids.1)).flatten().map(|w| (w.pid, w.account))
    }

    /// The GC pauses overlapping [start, end], clipped to it.
    fn pauses_within(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.pauses
            .iter()
            .filter(|(s, e)| *s < end && *e > start)
            .map(|&(s, e)| (s.max(start), e.min(end)))
            .collect()
    }

    fn offer_exemplars(&mut self, ids: SpanIds, account: &Account, pauses: &[(u64, u64)]) {
        let (trace_id, span_id) = ids;
        let mut offer = |what, value_ns, time_unix_ns| {
            self.exemplars.offer(what, Exemplar { value_ns, time_unix_ns, trace_id, span_id });
        };
        if let Some((ns, at)) = account.max_runnable {
            offer(ExemplarFor::Schedule, ns, at);
        }
        if let Some((ns, at, category)) = account.max_parked {
            offer(ExemplarFor::Blocked(category), ns, at);
        }
        for &(s, e) in pauses {
            offer(ExemplarFor::GcPause, e - s, e);
        }
    }

    /// The exemplars gathered since the last take.
    pub fn take_exemplars(&mut self) -> Exemplars {
        std::mem::take(&mut self.exemplars)
    }

    pub fn counts(&self) -> LinkCounts {
        LinkCounts { waiting_accounts: self.accounts.len() as u64, ..self.counts }
    }
}
