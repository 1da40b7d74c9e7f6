//! Trace linkage: joins what the probes saw inside each span (from the span
//! ring buffer) with the spans the service exports through gort, and enriches
//! those spans on their way upstream: `go.runtime.*` attributes with the
//! span's runtime totals, and one child span per wait above the threshold,
//! with its exact start and end. It also keeps, per histogram bucket, the
//! slowest observation that belongs to an exported span: the exemplars of
//! gort's histograms.
//!
//! Ordering: a span can reach gort before its probe data (the SDK exports at
//! End, the ring buffer is drained on a timer) or long after (batching). An
//! export request whose spans lack data is held until the data arrives or
//! `hold` passes, then forwarded, enriched or not: never lost, never twice.
//! Probe data whose span never arrives expires after `account_ttl`. Both are
//! bounded and counted.
//!
//! Everything here is pure state over decoded records and OTLP messages;
//! the run loop feeds records, the pipeline feeds and takes requests.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant},
};

use gort_common::{SPAN_WAIT_SLOTS, SpanEnd, SpanStall, span_record, time_hist};
use gort_proto::{
    common::{AnyValue, InstrumentationScope, KeyValue, any_value},
    kv_int, kv_str,
    trace::{ScopeSpans, Span, span::SpanKind},
    trace_service::ExportTraceServiceRequest,
};

/// (trace id, span id): how a span is known on both sides.
pub type SpanIds = ([u8; 16], [u8; 8]);

/// The wait categories of per-span parked time, by wait slot: slot `i` of
/// `SpanTotals::parked_ns` is `WAIT_SLOT_NAMES[i]`. The names are
/// `wait_reasons::category` values; unknown reasons fall in "other".
pub const WAIT_SLOT_NAMES: [&str; 10] = [
    "other",
    "chan_receive",
    "chan_send",
    "select",
    "mutex",
    "sync",
    "io",
    "sleep",
    "gc_assist",
    "runtime_gc",
];
const _: () = assert!(WAIT_SLOT_NAMES.len() <= SPAN_WAIT_SLOTS);

/// The waits that become child spans by default: delays the runtime or
/// contention caused. Ordinary waits (a select on a backend's answer, a
/// read, a sleep) stay attributes of the span.
pub const DEFAULT_CHILD_SPAN_KINDS: &[&str] =
    &["runnable", "gc_stop_the_world", "gc_assist", "runtime_gc", "mutex"];

/// The wait slot of a category name.
pub fn wait_slot(category: &str) -> u8 {
    WAIT_SLOT_NAMES.iter().position(|c| *c == category).unwrap_or(0) as u8
}

/// The kinds of wait a child span can be made for: the runtime's and
/// contention's delays (`runnable`, `gc_stop_the_world`, `gc_assist`, and
/// the wait categories of `WAIT_SLOT_NAMES`).
pub const STALL_KIND_NAMES: [&str; 12] = [
    "runnable",
    "gc_stop_the_world",
    "gc_assist",
    "runtime_gc",
    "mutex",
    "sync",
    "chan_receive",
    "chan_send",
    "select",
    "io",
    "sleep",
    "other",
];

/// Which stall kinds become child spans: a set of `STALL_KIND_NAMES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallKinds(u16);

impl StallKinds {
    /// The set of `names`, or the first name that is not a stall kind.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut bits = 0;
        for name in names {
            let i = STALL_KIND_NAMES.iter().position(|k| *k == name).ok_or_else(|| name.to_owned())?;
            bits |= 1 << i;
        }
        Ok(Self(bits))
    }

    pub fn contains(&self, kind: &str) -> bool {
        STALL_KIND_NAMES.iter().position(|k| *k == kind).is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// What a stall inside a span was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StallKind {
    Runnable,
    /// Parked, with the wait reason's name.
    Parked(String),
    Assist,
    StopTheWorld,
}

impl StallKind {
    /// The child span's name ("runnable", "chan receive", "gc stop-the-world").
    pub fn name(&self) -> &str {
        match self {
            Self::Runnable => "runnable",
            Self::Parked(reason) => reason,
            Self::Assist => "gc assist",
            Self::StopTheWorld => "gc stop-the-world",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Runnable => "runnable",
            Self::Parked(_) => "parked",
            Self::Assist => "gc_assist",
            Self::StopTheWorld => "gc_stop_the_world",
        }
    }

    /// The name `StallKinds` knows it by: a parked wait by its category.
    fn selector(&self) -> &'static str {
        match self {
            Self::Parked(reason) => gort_goexe::wait_reasons::category(reason),
            other => other.kind(),
        }
    }
}

/// One wait inside a span, in Unix ns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    pub kind: StallKind,
    pub goid: u64,
    /// A goroutine the span started waited, not the span's own goroutine.
    pub started_goroutine: bool,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
}

impl Stall {
    pub fn duration_ns(&self) -> u64 {
        self.end_unix_ns.saturating_sub(self.start_unix_ns)
    }
}

/// What the runtime did to one span, as userspace keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    pub start_seen: bool,
    pub runnable_ns: u64,
    pub runnable_count: u64,
    pub stw_ns: u64,
    pub assist_ns: u64,
    /// Parked ns by wait category (`WAIT_SLOT_NAMES`), non-zero ones only.
    pub parked: BTreeMap<&'static str, u64>,
    /// Longest runnable wait: (ns, Unix ns when it ended).
    pub max_runnable: Option<(u64, u64)>,
    /// Longest park: (ns, Unix ns when it ended, category).
    pub max_parked: Option<(u64, u64, &'static str)>,
    /// Goroutines the span started, and the longest single runnable wait
    /// and park of theirs that ended inside the span (ns, category).
    pub started_goroutines: u64,
    pub started_max_runnable_ns: u64,
    pub started_max_parked: Option<(u64, &'static str)>,
    pub stalls: Vec<Stall>,
}

/// Converts the probes' CLOCK_MONOTONIC ns to Unix ns: `offset` is realtime
/// minus monotonic, read together.
pub fn mono_to_unix(mono_ns: u64, offset: i64) -> u64 {
    (mono_ns as i64).saturating_add(offset).max(0) as u64
}

/// Names a wait reason number (`wait_reasons::name`) and gives its category.
pub type ReasonNamer<'a> = &'a dyn Fn(u32) -> (String, &'static str);

impl Account {
    /// The account of a span-end record. `offset`: see `mono_to_unix`.
    pub fn from_end(end: &SpanEnd, offset: i64, names: ReasonNamer<'_>) -> Self {
        let t = &end.totals;
        let parked = WAIT_SLOT_NAMES
            .iter()
            .zip(t.parked_ns.iter())
            .filter(|(_, ns)| **ns > 0)
            .map(|(name, ns)| (*name, *ns))
            .collect();
        Self {
            start_seen: end.flags & span_record::START_SEEN != 0,
            runnable_ns: t.runnable_ns,
            runnable_count: t.runnable_count,
            stw_ns: t.stw_ns,
            assist_ns: t.assist_ns,
            parked,
            max_runnable: (t.max_runnable_ns > 0)
                .then(|| (t.max_runnable_ns, mono_to_unix(t.max_runnable_end_ns, offset))),
            max_parked: (t.max_parked_ns > 0).then(|| {
                let (_, category) = names(t.max_parked_reason as u32);
                (t.max_parked_ns, mono_to_unix(t.max_parked_end_ns, offset), category)
            }),
            started_goroutines: t.started_goroutines,
            started_max_runnable_ns: t.started_max_runnable_ns,
            started_max_parked: (t.started_max_parked_ns > 0)
                .then(|| (t.started_max_parked_ns, names(t.started_max_parked_reason as u32).1)),
            stalls: Vec::new(),
        }
    }
}

/// A stall record as a `Stall` (None for an unknown kind).
pub fn stall_from_record(s: &SpanStall, offset: i64, names: ReasonNamer<'_>) -> Option<Stall> {
    let kind = match s.kind {
        span_record::RUNNABLE => StallKind::Runnable,
        span_record::PARKED => StallKind::Parked(names(s.reason).0),
        span_record::ASSIST => StallKind::Assist,
        _ => return None,
    };
    Some(Stall {
        kind,
        goid: s.goid,
        started_goroutine: s.flags & span_record::STARTED_GOROUTINE != 0,
        start_unix_ns: mono_to_unix(s.start_ns, offset),
        end_unix_ns: mono_to_unix(s.end_ns, offset),
    })
}

/// Tunables of the join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Longest an export request waits for its spans' probe data.
    pub hold: Duration,
    /// Longest probe data waits for its span.
    pub account_ttl: Duration,
    /// Most span accounts kept waiting for their spans.
    pub max_accounts: usize,
    /// A GC stop-the-world at least this long inside a span becomes a child.
    pub child_span_threshold: Duration,
    /// The kinds of stall that become child spans; the others stay in the
    /// span's attributes only.
    pub stall_spans: StallKinds,
}

/// The linkage's books, for self-telemetry and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkCounts {
    /// Spans forwarded with their runtime accounting.
    pub enriched: u64,
    /// Spans forwarded without (no probe data within `hold`).
    pub unmatched: u64,
    /// Child spans added (one per stall of a kind in `stall_spans`): items
    /// gort adds to the service's, so accepted + stall_spans = sent +
    /// dropped + queued.
    pub stall_spans: u64,
    /// Stalls left as attributes only (their kind makes no child span).
    pub stalls_not_spans: u64,
    /// Spans received from the service (held for their data).
    pub spans_received: u64,
    /// Spans the probes saw end whose data expired while the service sent
    /// gort no span at all: it exports elsewhere, or not over OTLP to gort.
    pub spans_not_received: u64,
    /// Accounts whose span never arrived (expired or evicted).
    pub accounts_expired: u64,
    /// Stall records that arrived after their span's account was used.
    pub late_stalls: u64,
    /// Export requests held now, and their spans.
    pub held_requests: u64,
    pub held_spans: u64,
    /// Accounts waiting for their span now.
    pub waiting_accounts: u64,
}

/// One exemplar candidate: an observation that belongs to an exported span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exemplar {
    pub value_ns: u64,
    pub time_unix_ns: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// The histograms that carry exemplars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExemplarFor {
    /// `go.schedule.duration`.
    Schedule,
    /// `go.memory.gc.pause.duration`.
    GcPause,
    /// `gort.goroutine.blocked.duration`, point of this wait category.
    Blocked(&'static str),
}

/// The slowest observation per (histogram, power-of-two bucket) since the
/// last take: every bucket a span was seen in is represented by its worst.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exemplars {
    pub by_bucket: BTreeMap<(ExemplarFor, u32), Exemplar>,
}

impl Exemplars {
    /// The export bucket (runtime buckets folded to powers of two, as
    /// `TimeHistogram::power_of_two_buckets` folds them).
    pub fn bucket(value_ns: u64) -> u32 {
        time_hist::slot(value_ns) / time_hist::SUB_BUCKETS
    }

    pub fn offer(&mut self, what: ExemplarFor, e: Exemplar) {
        let slot = self.by_bucket.entry((what, Self::bucket(e.value_ns))).or_insert(e);
        if e.value_ns > slot.value_ns {
            *slot = e;
        }
    }

    /// The exemplars of one histogram point, slowest bucket last.
    pub fn of(&self, what: ExemplarFor) -> Vec<Exemplar> {
        self.by_bucket.iter().filter(|((w, _), _)| *w == what).map(|(_, e)| *e).collect()
    }
}

/// A request that goes on: the service's `items` and gort's `children`.
#[derive(Clone, Debug, PartialEq)]
pub struct Released {
    pub request: ExportTraceServiceRequest,
    pub items: u64,
    pub children: u64,
}

struct Held {
    request: ExportTraceServiceRequest,
    items: u64,
    arrived: Instant,
}

/// An account waiting for its span.
struct Waiting {
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
    /// Targets with linkage attached now: with none, nothing is held.
    linked_targets: usize,
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
            linked_targets: 0,
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

    /// A target with linkage attached (`true`) or detached.
    pub fn set_linked(&mut self, linked: bool) {
        if linked {
            self.linked_targets += 1;
        } else {
            self.linked_targets = self.linked_targets.saturating_sub(1);
        }
    }

    pub fn is_linked(&self) -> bool {
        self.linked_targets > 0
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
                self.accounts.insert(span_id, Waiting { trace_id, account, arrived: now });
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

    /// Takes an export request of `items` spans to hold until its spans'
    /// data arrives (or `hold` passes).
    pub fn hold(&mut self, request: ExportTraceServiceRequest, items: u64, now: Instant) {
        self.counts.held_requests += 1;
        self.counts.held_spans += items;
        self.counts.spans_received += items;
        self.last_span = Some(now);
        self.held.push_back(Held { request, items, arrived: now });
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
                out.push(Released { request, items: held.items, children });
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
            for scope in &mut resource.scope_spans {
                for span in &mut scope.spans {
                    let Some(ids) = ids_of(span) else {
                        self.counts.unmatched += 1;
                        continue;
                    };
                    let Some(account) = self.take_account(ids) else {
                        self.counts.unmatched += 1;
                        continue;
                    };
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

    fn take_account(&mut self, ids: SpanIds) -> Option<Account> {
        self.has_account(ids).then(|| self.accounts.remove(&ids.1)).flatten().map(|w| w.account)
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

/// A span's (trace id, span id), if both are well-formed.
fn ids_of(span: &Span) -> Option<SpanIds> {
    Some((span.trace_id.as_slice().try_into().ok()?, span.span_id.as_slice().try_into().ok()?))
}

fn kv_f64(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(value)) }),
        ..Default::default()
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The span's runtime totals as `go.runtime.*` attributes (seconds).
fn annotate(span: &mut Span, a: &Account, stalls: usize) {
    let parked: u64 = a.parked.values().sum();
    let attrs = &mut span.attributes;
    attrs.push(kv_f64("go.runtime.runnable.duration", seconds(a.runnable_ns)));
    attrs.push(kv_int("go.runtime.runnable.count", a.runnable_count as i64));
    attrs.push(kv_f64("go.runtime.parked.duration", seconds(parked)));
    for (category, ns) in &a.parked {
        attrs.push(kv_f64(&format!("go.runtime.parked.{category}.duration"), seconds(*ns)));
    }
    attrs.push(kv_f64("go.runtime.gc.stw.duration", seconds(a.stw_ns)));
    attrs.push(kv_f64("go.runtime.gc.assist.duration", seconds(a.assist_ns)));
    attrs.push(kv_int("go.runtime.stalls", stalls as i64));
    if a.started_goroutines > 0 {
        attrs.push(kv_int("go.runtime.started.goroutines", a.started_goroutines as i64));
        attrs.push(kv_f64("go.runtime.started.runnable.max.duration", seconds(a.started_max_runnable_ns)));
        let (ns, category) = a.started_max_parked.unwrap_or((0, "other"));
        attrs.push(kv_f64("go.runtime.started.parked.max.duration", seconds(ns)));
        if ns > 0 {
            attrs.push(kv_str("go.runtime.started.parked.max.wait_reason", category));
        }
    }
    if !a.start_seen {
        // gort attached after the span began: its totals miss the beginning.
        attrs.push(kv_str("go.runtime.coverage", "partial"));
    }
}

/// A child span for one stall. Its id is derived from the parent's and the
/// stall's own bounds, so a request sent twice carries the same children.
fn child_span(parent: &Span, stall: &Stall, n: usize) -> Span {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parent.span_id.iter().chain(&stall.start_unix_ns.to_le_bytes()).chain(&(n as u64).to_le_bytes())
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let span_id = if h == 0 { 1u64 } else { h }.to_be_bytes().to_vec();
    let mut attributes = vec![
        kv_str("go.runtime.stall.kind", stall.kind.kind()),
        kv_f64("go.runtime.stall.duration", seconds(stall.duration_ns())),
    ];
    if let StallKind::Parked(reason) = &stall.kind {
        attributes.push(kv_str("go.wait.reason", gort_goexe::wait_reasons::category(reason)));
        attributes.push(kv_str("go.runtime.wait_reason", reason));
    }
    if stall.goid != 0 {
        attributes.push(kv_int("go.goroutine.id", stall.goid as i64));
    }
    if stall.started_goroutine {
        // The wait was a goroutine's the span started, not the span's own.
        attributes.push(kv_str("go.runtime.stall.goroutine", "started"));
    }
    Span {
        trace_id: parent.trace_id.clone(),
        span_id,
        parent_span_id: parent.span_id.clone(),
        name: format!("{} {:.1} ms", stall.kind.name(), stall.duration_ns() as f64 / 1e6),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: stall.start_unix_ns,
        end_time_unix_nano: stall.end_unix_ns,
        attributes,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gort_proto::trace::ResourceSpans;

    const MS: u64 = 1_000_000;

    fn settings() -> Settings {
        Settings {
            hold: Duration::from_millis(500),
            account_ttl: Duration::from_secs(30),
            max_accounts: 4,
            child_span_threshold: Duration::from_millis(1),
            stall_spans: default_stall_spans(),
        }
    }

    fn default_stall_spans() -> StallKinds {
        StallKinds::parse(DEFAULT_CHILD_SPAN_KINDS.iter().copied()).unwrap()
    }

    fn span(n: u8, start: u64, end: u64) -> Span {
        Span {
            trace_id: vec![n; 16],
            span_id: vec![n; 8],
            name: format!("s{n}"),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn ids(n: u8) -> SpanIds {
        ([n; 16], [n; 8])
    }

    fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        s.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
    }

    fn mutex_account() -> Account {
        Account {
            start_seen: true,
            parked: [("mutex", 20 * MS)].into(),
            max_parked: Some((20 * MS, 1_030 * MS, "mutex")),
            max_runnable: Some((MS / 10, 1_005 * MS)),
            runnable_ns: MS / 10,
            runnable_count: 3,
            stalls: vec![Stall {
                kind: StallKind::Parked("sync.Mutex.Lock".into()),
                goid: 7,
                started_goroutine: false,
                start_unix_ns: 1_010 * MS,
                end_unix_ns: 1_030 * MS,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_span_after_its_data_is_enriched_at_once_with_a_child_per_stall() {
        let mut l = Linker::new(settings());
        let t0 = Instant::now();
        l.add_account(1, ids(1), mutex_account(), t0);
        l.hold(request(vec![span(1, 1_000 * MS, 1_040 * MS), span(2, 1_000 * MS, 1_001 * MS)]), 2, t0);
        // Span 2 has no data yet: the request waits.
        assert!(l.release(t0, false).is_empty());
        l.add_account(1, ids(2), Account { start_seen: true, ..Default::default() }, t0);
        let out = l.release(t0, false);
        assert_eq!(out.len(), 1);
        let Released { request: req, items, children: added } = &out[0];
        assert_eq!(*items, 2, "accepted items are the service's spans, not the children");
        assert_eq!(*added, 1, "the children are counted apart");
        let rs = &req.resource_spans[0];
        let s1 = &rs.scope_spans[0].spans[0];
        assert_eq!(attr(s1, "go.runtime.parked.mutex.duration"), Some(&any_value::Value::DoubleValue(0.02)));
        assert_eq!(attr(s1, "go.runtime.stalls"), Some(&any_value::Value::IntValue(1)));
        let children = &rs.scope_spans[1].spans;
        assert_eq!(children.len(), 1, "span 2 did not stall: no child");
        assert_eq!(children[0].parent_span_id, vec![1; 8]);
        assert_eq!(children[0].trace_id, vec![1; 16]);
        assert_eq!(
            (children[0].start_time_unix_nano, children[0].end_time_unix_nano),
            (1_010 * MS, 1_030 * MS)
        );
        assert!(children[0].name.starts_with("sync.Mutex.Lock 20.0 ms"), "{}", children[0].name);
        assert_eq!(l.counts().enriched, 2);
        assert_eq!(l.counts().stall_spans, 1);
        assert_eq!(l.counts().held_spans, 0);
    }

    #[test]
    fn spans_never_seen_go_on_unchanged_after_the_hold_and_late_data_expires() {
        let mut l = Linker::new(settings());
        let t0 = Instant::now();
        let original = request(vec![span(9, 1, 2)]);
        l.hold(original.clone(), 1, t0);
        assert!(l.release(t0 + Duration::from_millis(499), false).is_empty());
        let out = l.release(t0 + Duration::from_millis(500), false);
        assert_eq!(out, vec![Released { request: original, items: 1, children: 0 }]);
        assert_eq!(l.counts().unmatched, 1);
        // Its data arrives too late: kept until the TTL, then counted.
        l.add_account(1, ids(9), Account::default(), t0 + Duration::from_secs(1));
        l.release(t0 + Duration::from_secs(40), false);
        assert_eq!(l.counts().accounts_expired, 1);
        assert_eq!(l.counts().waiting_accounts, 0);
    }

    #[test]
    fn shutdown_releases_everything_and_accounts_are_bounded() {
        let mut l = Linker::new(settings());
        let t0 = Instant::now();
        for n in 0..6 {
            l.add_account(1, ids(n), Account::default(), t0);
        }
        assert_eq!(l.counts().waiting_accounts, 4);
        assert_eq!(l.counts().accounts_expired, 2);
        l.hold(request(vec![span(42, 1, 2)]), 1, t0);
        assert_eq!(l.release(t0, true).len(), 1);
    }

    #[test]
    fn stalls_before_their_span_end_join_it_and_pauses_become_children_and_exemplars() {
        let mut l = Linker::new(settings());
        let t0 = Instant::now();
        let stall = Stall {
            kind: StallKind::Runnable,
            goid: 3,
            started_goroutine: false,
            start_unix_ns: 1_002 * MS,
            end_unix_ns: 1_014 * MS,
        };
        l.add_stall(1, [5; 8], stall.clone());
        l.add_pause(1_020 * MS, 1_023 * MS);
        l.add_pause(5_000 * MS, 5_001 * MS);
        let account = Account {
            start_seen: true,
            max_runnable: Some((12 * MS, 1_014 * MS)),
            runnable_ns: 12 * MS,
            ..Default::default()
        };
        l.add_account(1, ids(5), account, t0);
        l.hold(request(vec![span(5, 1_000 * MS, 1_030 * MS)]), 1, t0);
        let out = l.release(t0, false);
        let children = &out[0].request.resource_spans[0].scope_spans[1].spans;
        let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["runnable 12.0 ms", "gc stop-the-world 3.0 ms"]);
        let ex = l.take_exemplars();
        let sched = ex.of(ExemplarFor::Schedule);
        assert_eq!(sched.len(), 1);
        assert_eq!((sched[0].trace_id, sched[0].span_id, sched[0].value_ns), ([5; 16], [5; 8], 12 * MS));
        assert_eq!(ex.of(ExemplarFor::GcPause)[0].value_ns, 3 * MS);
        assert!(l.take_exemplars().by_bucket.is_empty(), "taken once");
    }

    #[test]
    fn ordinary_waits_stay_attributes_and_started_goroutines_are_reported_apart() {
        let mut l = Linker::new(settings());
        let t0 = Instant::now();
        let stall = |reason: &str, started_goroutine: bool, start: u64, end: u64| Stall {
            kind: StallKind::Parked(reason.into()),
            goid: 9,
            started_goroutine,
            start_unix_ns: start * MS,
            end_unix_ns: end * MS,
        };
        let account = Account {
            start_seen: true,
            parked: [("select", 51 * MS)].into(),
            started_goroutines: 2,
            started_max_parked: Some((20 * MS, "mutex")),
            stalls: vec![stall("select", false, 1_001, 1_052), stall("sync.Mutex.Lock", true, 1_010, 1_030)],
            ..Default::default()
        };
        l.add_account(1, ids(3), account, t0);
        l.hold(request(vec![span(3, 1_000 * MS, 1_060 * MS)]), 1, t0);
        let out = l.release(t0, false);
        let rs = &out[0].request.resource_spans[0];
        let s = &rs.scope_spans[0].spans[0];
        assert_eq!(attr(s, "go.runtime.parked.select.duration"), Some(&any_value::Value::DoubleValue(0.051)));
        assert_eq!(attr(s, "go.runtime.started.goroutines"), Some(&any_value::Value::IntValue(2)));
        assert_eq!(
            attr(s, "go.runtime.started.parked.max.duration"),
            Some(&any_value::Value::DoubleValue(0.02))
        );
        let children = &rs.scope_spans[1].spans;
        assert_eq!(children.len(), 1, "a select wait is an attribute, a lock a child");
        assert_eq!(
            attr(&children[0], "go.runtime.stall.goroutine"),
            Some(&any_value::Value::StringValue("started".into()))
        );
        assert_eq!((out[0].children, l.counts().stall_spans, l.counts().stalls_not_spans), (1, 1, 1));
    }

    #[test]
    fn spans_that_never_arrive_are_told_once() {
        let mut l = Linker::new(settings());
        let t0 = Instant::now();
        for n in 0..3 {
            l.add_account(1, ids(n), Account::default(), t0);
        }
        assert_eq!(l.take_silence(), None, "not before the data expired");
        l.release(t0 + Duration::from_secs(31), false);
        assert_eq!(l.take_silence(), Some(Silence { spans: 3, waited: Duration::from_secs(30) }));
        assert_eq!(l.counts().spans_not_received, 3);
        l.add_account(1, ids(7), Account::default(), t0 + Duration::from_secs(31));
        l.release(t0 + Duration::from_secs(70), false);
        assert_eq!(l.take_silence(), None, "told once");
        assert_eq!(l.counts().spans_not_received, 4, "still counted");
        // A service that does export: data that outlives its span is no silence.
        let mut l = Linker::new(settings());
        l.hold(request(vec![span(1, 1, 2)]), 1, t0);
        l.release(t0 + Duration::from_secs(1), false);
        l.add_account(1, ids(8), Account::default(), t0);
        l.release(t0 + Duration::from_secs(40), false);
        assert_eq!((l.counts().spans_not_received, l.take_silence()), (0, None));
    }

    #[test]
    fn stall_kinds_are_named_and_unknown_ones_refused() {
        let k = StallKinds::parse(["runnable", "mutex"]).unwrap();
        assert!(k.contains("runnable") && k.contains("mutex") && !k.contains("select"));
        assert_eq!(StallKinds::parse(["mutex", "lock"]), Err("lock".to_owned()));
        let d = default_stall_spans();
        for kind in ["runnable", "gc_stop_the_world", "gc_assist", "runtime_gc", "mutex"] {
            assert!(d.contains(kind), "{kind}");
        }
        for kind in ["select", "chan_receive", "io", "sleep", "sync", "other"] {
            assert!(!d.contains(kind), "{kind}");
        }
    }

    #[test]
    fn the_slowest_observation_represents_its_bucket() {
        let mut ex = Exemplars::default();
        let e = |value_ns, n| Exemplar { value_ns, time_unix_ns: 0, trace_id: [n; 16], span_id: [n; 8] };
        ex.offer(ExemplarFor::Schedule, e(9 * MS, 1));
        ex.offer(ExemplarFor::Schedule, e(10 * MS, 2));
        ex.offer(ExemplarFor::Schedule, e(9 * MS + 1, 3));
        ex.offer(ExemplarFor::Schedule, e(100 * MS, 4));
        let got: Vec<u8> = ex.of(ExemplarFor::Schedule).iter().map(|e| e.span_id[0]).collect();
        assert_eq!(got, [2, 4]);
    }
}
