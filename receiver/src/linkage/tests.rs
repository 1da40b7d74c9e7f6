use std::time::{Duration, Instant};

use gort_proto::{
    common::any_value,
    trace::{ResourceSpans, ScopeSpans, Span},
    trace_service::ExportTraceServiceRequest,
};

use super::*;
use crate::telemetry::exemplars::ExemplarFor;

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
            pcs: Vec::new(),
            site: None,
        }],
        ..Default::default()
    }
}

#[test]
fn a_span_after_its_data_is_enriched_at_once_with_a_child_per_stall() {
    let mut l = Linker::new(settings());
    let t0 = Instant::now();
    l.add_account(1, ids(1), mutex_account(), t0);
    l.hold(request(vec![span(1, 1_000 * MS, 1_040 * MS), span(2, 1_000 * MS, 1_001 * MS)]), 2, 100, None, t0);
    // Span 2 has no data yet: the request waits.
    assert!(l.release(t0, false).is_empty());
    l.add_account(1, ids(2), Account { start_seen: true, ..Default::default() }, t0);
    let out = l.release(t0, false);
    assert_eq!(out.len(), 1);
    let Released { request: req, items, bytes, children: added, .. } = &out[0];
    assert_eq!(*bytes, 100, "the room the request took goes back with it");
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
    assert_eq!((children[0].start_time_unix_nano, children[0].end_time_unix_nano), (1_010 * MS, 1_030 * MS));
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
    assert!(l.is_idle(), "nothing to look at: the stage may sleep");
    l.hold(original.clone(), 1, 100, Some(7), t0);
    assert!(!l.is_idle(), "a held request must be looked at again");
    assert!(l.release(t0 + Duration::from_millis(499), false).is_empty());
    let out = l.release(t0 + Duration::from_millis(500), false);
    assert_eq!(out, vec![Released { request: original, items: 1, bytes: 100, children: 0, record: Some(7) }]);
    assert_eq!(l.counts().unmatched, 1);
    assert!(l.is_idle());
    // Its data arrives too late: kept until the TTL, then counted.
    l.add_account(1, ids(9), Account::default(), t0 + Duration::from_secs(1));
    assert!(!l.is_idle(), "a waiting account must be expired in time");
    l.release(t0 + Duration::from_secs(40), false);
    assert_eq!(l.counts().accounts_expired, 1);
    assert_eq!(l.counts().waiting_accounts, 0);
    assert!(l.is_idle());
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
    l.hold(request(vec![span(42, 1, 2)]), 1, 100, None, t0);
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
        pcs: Vec::new(),
        site: None,
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
    l.hold(request(vec![span(5, 1_000 * MS, 1_030 * MS)]), 1, 100, None, t0);
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
        pcs: Vec::new(),
        site: None,
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
    l.hold(request(vec![span(3, 1_000 * MS, 1_060 * MS)]), 1, 100, None, t0);
    let out = l.release(t0, false);
    let rs = &out[0].request.resource_spans[0];
    let s = &rs.scope_spans[0].spans[0];
    assert_eq!(attr(s, "go.runtime.parked.select.duration"), Some(&any_value::Value::DoubleValue(0.051)));
    assert_eq!(attr(s, "go.runtime.started.goroutines"), Some(&any_value::Value::IntValue(2)));
    assert_eq!(attr(s, "go.runtime.started.parked.max.duration"), Some(&any_value::Value::DoubleValue(0.02)));
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
    l.hold(request(vec![span(1, 1, 2)]), 1, 100, None, t0);
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

/// The kernel charges the waits of `GC_ASSIST_WAIT_SLOT` as GC assists: that
/// slot must be where the runtime's assist reasons land.
#[test]
fn the_runtime_s_assist_reasons_land_in_the_kernel_s_assist_slot() {
    for reason in ["GC assist marking", "GC assist wait"] {
        assert_eq!(
            wait_slot(gort_goexe::wait_reasons::category(reason)),
            gort_common::GC_ASSIST_WAIT_SLOT,
            "{reason}"
        );
    }
    assert_ne!(
        wait_slot(gort_goexe::wait_reasons::category("sync.Mutex.Lock")),
        gort_common::GC_ASSIST_WAIT_SLOT
    );
}

fn named(mut r: ExportTraceServiceRequest, service: &str) -> ExportTraceServiceRequest {
    r.resource_spans[0].resource = Some(gort_proto::resource::Resource {
        attributes: vec![gort_proto::kv_str("service.name", service)],
        ..Default::default()
    });
    r
}

/// A linked target names its service with the first span of it enriched;
/// once every linked target has, other services' spans are not for linkage.
#[test]
fn linked_targets_name_their_services_and_other_services_pass_by() {
    let mut l = Linker::new(settings());
    let t0 = Instant::now();
    assert!(!l.may_enrich([Some("a")].into_iter()), "nothing linked");
    l.set_linked(7, true);
    l.set_linked(8, true);
    assert!(l.is_linked() && !l.knows_services());
    assert!(l.may_enrich([Some("other")].into_iter()), "unnamed targets: any service may be theirs");
    for (pid, n, service) in [(7, 1, "a"), (8, 2, "b")] {
        l.add_account(pid, ids(n), mutex_account(), t0);
        l.hold(named(request(vec![span(n, 1_000 * MS, 1_040 * MS)]), service), 1, 100, None, t0);
        assert_eq!(l.release(t0, false).len(), 1, "{service}: its data was there");
    }
    assert!(l.knows_services());
    assert!(l.may_enrich([Some("a")].into_iter()) && l.may_enrich([Some("other"), Some("b")].into_iter()));
    assert!(!l.may_enrich([Some("other")].into_iter()), "no linked target is named other");
    assert!(l.may_enrich([None].into_iter()), "a resource without a name may be anyone's");
    // A target that restarts is named again by its new process.
    l.set_linked(8, false);
    assert!(!l.may_enrich([Some("b")].into_iter()));
    l.set_linked(9, true);
    assert!(!l.knows_services() && l.may_enrich([Some("other")].into_iter()));
}
