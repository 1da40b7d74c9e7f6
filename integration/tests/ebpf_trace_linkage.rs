//! Trace linkage end to end, as root: a grpc-go service instrumented with the
//! OpenTelemetry Go SDK (`tracedsvc`, GOMAXPROCS=1) under load exports its
//! spans to gort, attached to it; gort forwards to a real Collector, which
//! forwards to the sink. The service injects stalls of known size inside some
//! of its spans (a CPU hog holding the only P, a forced GC over a
//! pointer-heavy heap, a mutex held 20 ms) and writes what each handler
//! measured itself; the test finds those spans upstream and checks what gort
//! added to them, that spans which did not stall got no stall children, that
//! every exemplar points at a span the service exported, and that every span
//! the service ended arrives exactly once.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use gort_integration::{
    Proc, free_port, go_program, gort_binary, require_root,
    scratch::Scratch,
    sink::{self, Injection, Item},
    start_collector, start_sink,
    summary::{self, LinkCounts, Target},
    wait_for_port, workspace_root,
};

struct Run {
    /// Service spans by "trace/span" id, with how many times each arrived.
    spans: HashMap<String, (Item, usize)>,
    /// gort's stall children by parent id.
    children: HashMap<String, Vec<Item>>,
    /// (metric, exemplar id) of every exemplar upstream.
    exemplars: Vec<(String, String)>,
    ended: HashSet<String>,
    truths: Vec<Injection>,
    /// gort's summary of the service.
    target: Target,
    /// `service` of gort's metric points upstream, in arrival order.
    metric_services: Vec<String>,
    /// What gort wrote to --otlp-json: (spans with runtime attributes, metric requests).
    json_copy: (usize, usize),
    /// Unix ns when gort was started and when it said its probes were
    /// attached: a span that ended before the first cannot have been seen,
    /// one that started after the second must have been.
    attach: (u64, u64),
    /// A second service's spans (`Options::bystander`) by id, with how many
    /// times each arrived, and the ids it ended.
    bystander: (HashMap<String, (Item, usize)>, HashSet<String>),
}

/// The service name of the bystander: an OTel-SDK program gort does not
/// watch, exporting to the same gort.
const BYSTANDER: &str = "bystander";

struct Options<'a> {
    binary: &'a Path,
    processor: &'a str,
    /// Start the load this long before gort attaches (spans gort never saw).
    late_attach: Option<Duration>,
    through_collector: bool,
    /// After the load, a second service (`otelapp`, not watched) exports
    /// 200 spans to the same gort.
    bystander: bool,
}

/// One run at a time: each service has the only P it is given, and
/// timings are compared to 10%; four at once on two CPUs would measure the
/// machine, not gort.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(o: &Options<'_>) -> Run {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Built now, not when a late attach needs it in the middle of the load.
    let gort = gort_binary();
    let tag = format!("{}-{}", o.processor, o.binary.file_name().unwrap().to_string_lossy());
    let dir = Scratch::new(&format!("link-{tag}"));
    let (sink_out, truth, ended, summary, json_copy) =
        (dir.join("sink"), dir.join("truth"), dir.join("ended"), dir.join("summary"), dir.join("otlp.jsonl"));
    let (mut sink, sink_port) = start_sink(&sink_out);
    let collector_port = free_port();
    let collector = o.through_collector.then(|| start_collector(collector_port, sink_port));
    let upstream =
        format!("http://127.0.0.1:{}", if o.through_collector { collector_port } else { sink_port });
    let gort_port = free_port();
    // By pid: the load generator is the same executable.
    let gort_args = |pid: u32| -> Command {
        let mut cmd = Command::new(gort);
        cmd.arg("run").args(["--pid", &pid.to_string()]);
        cmd.args([
            "--upstream",
            &upstream,
            "--otlp-grpc",
            &format!("127.0.0.1:{gort_port}"),
            "--otlp-http",
            "off",
        ]);
        cmd.args(["--telemetry", "off", "--interval", "1s", "--runnable-threshold", "2ms", "--summary-json"]);
        cmd.arg(&summary).arg("--otlp-json").arg(&json_copy);
        cmd
    };
    let mut svc_cmd = Command::new(o.binary);
    svc_cmd.env("GOMAXPROCS", "1").args([
        "-otlp",
        &format!("127.0.0.1:{gort_port}"),
        "-processor",
        o.processor,
    ]);
    svc_cmd.arg("-truth").arg(&truth).arg("-ended").arg(&ended);
    let mut svc = Proc::spawn(svc_cmd, "[svc]");
    let addr = svc.listen_addr();
    let mut attach = (0, 0);
    let mut gort = o.late_attach.is_none().then(|| {
        attach.0 = unix_now_ns();
        let mut g = Proc::spawn(gort_args(svc.pid()), "[gort]");
        g.wait_line(Duration::from_secs(30), |l| l.contains("mode:"));
        attach.1 = unix_now_ns();
        wait_for_port(gort_port, Duration::from_secs(30));
        g
    });
    let mut load = Command::new(o.binary);
    load.args(["-load", &addr, "-duration", "8s", "-rate", "200", "-stall-every", "300ms"]);
    if o.late_attach.is_some() {
        // An assist stall first flushes the service's ended spans, and until
        // gort listens that flush waits out the SDK exporter's retry backoff
        // (5 s and more) while every other client waits behind the assist:
        // the load would stop for seconds, at random, and run too few spans.
        load.args(["-stalls", "runnable,gc,mutex,fanout,select"]);
    }
    let mut load = Proc::spawn(load, "[load]");
    if let Some(delay) = o.late_attach {
        std::thread::sleep(delay);
        attach.0 = unix_now_ns();
        let mut g = Proc::spawn(gort_args(svc.pid()), "[gort]");
        g.wait_line(Duration::from_secs(30), |l| l.contains("mode:"));
        attach.1 = unix_now_ns();
        gort = Some(g);
    }
    load.wait_line(Duration::from_secs(60), |l| l.contains("load-done"));
    assert!(load.wait_exit(Duration::from_secs(10)).success());
    let bystander_ended: HashSet<String> = if o.bystander {
        gort_integration::run_otelapp("grpc", gort_port, BYSTANDER, 200, &[]).spans.into_iter().collect()
    } else {
        HashSet::new()
    };
    // The service flushes its spans at exit and then writes what it ended.
    unsafe_kill(svc.pid(), "TERM");
    svc.wait_line(Duration::from_secs(90), |l| l.contains("\"stopped\""));
    assert!(svc.wait_exit(Duration::from_secs(10)).success());
    let mut gort = gort.expect("gort started");
    gort.wait_line(Duration::from_secs(10), |l| l.contains("exited; probes detached"));
    unsafe_kill(gort.pid(), "TERM");
    assert!(gort.wait_exit(Duration::from_secs(30)).success(), "gort failed");
    drop(collector);
    // Give the Collector's last batch time to land before the sink stops.
    std::thread::sleep(Duration::from_millis(500));
    unsafe_kill(sink.pid(), "TERM");
    let _ = sink.wait_exit(Duration::from_secs(10));

    let mut spans: HashMap<String, (Item, usize)> = HashMap::new();
    let mut bystander: HashMap<String, (Item, usize)> = HashMap::new();
    let mut children: HashMap<String, Vec<Item>> = HashMap::new();
    let mut exemplars = Vec::new();
    let mut metric_services = Vec::new();
    for item in sink::read(&sink_out) {
        match item.kind.as_str() {
            "span" if item.is_gorts_span() => children.entry(item.parent.clone()).or_default().push(item),
            "span" if item.service == BYSTANDER => {
                bystander.entry(item.id.clone()).or_insert((item, 0)).1 += 1;
            }
            "span" => spans.entry(item.id.clone()).or_insert((item, 0)).1 += 1,
            "point" => {
                if item.metric == "go.schedule.duration" {
                    metric_services.push(item.service.clone());
                }
                exemplars.extend(item.exemplars.iter().map(|e| (item.metric.clone(), e.id.clone())));
            }
            _ => {}
        }
    }
    let ended = std::fs::read_to_string(&ended).unwrap().lines().map(str::to_owned).collect();
    let truths = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("truth {l:?}: {e}")))
        .collect();
    let target = summary::take(&summary).targets.remove(0);
    let copy = sink::read_json_copy(&json_copy);
    let enriched_in_copy = copy
        .iter()
        .flat_map(sink::JsonExport::spans)
        .filter(|s| s.has("go.runtime.runnable.duration"))
        .count();
    let metric_requests = copy.iter().filter(|r| !r.resource_metrics.is_empty()).count();
    for f in [&sink_out, &truth, &json_copy] {
        let _ = std::fs::remove_file(f);
    }
    Run {
        spans,
        children,
        exemplars,
        ended,
        truths,
        target,
        metric_services,
        json_copy: (enriched_in_copy, metric_requests),
        attach,
        bystander: (bystander, bystander_ended),
    }
}

/// The clock the Go SDK stamps spans with.
fn unix_now_ns() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    u64::try_from(since.as_nanos()).unwrap()
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

fn number(span: &Item, key: &str) -> f64 {
    span.number(key)
}

/// The join's books in gort's summary.
fn counts(r: &Run) -> &LinkCounts {
    &r.target.linkage.as_ref().expect("linkage was on").counts
}

/// Every span the service ended arrived exactly once, and nothing else.
fn assert_each_span_once(r: &Run, at_least: usize) {
    let arrived: HashSet<String> = r.spans.keys().cloned().collect();
    let missing: Vec<_> = r.ended.difference(&arrived).take(5).collect();
    let extra: Vec<_> = arrived.difference(&r.ended).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, not the service's {extra:?}");
    let dups: Vec<_> = r.spans.iter().filter(|(_, (_, n))| *n > 1).map(|(id, _)| id).take(5).collect();
    assert!(dups.is_empty(), "spans that arrived more than once: {dups:?}");
    assert!(r.ended.len() >= at_least, "only {} spans: the load did not run", r.ended.len());
}

/// The stall assertions of the issue, on one run.
/// The function and line of `tracedsvc` marked "stall site: KIND", where a
/// lock-wait injection of that kind blocks.
fn stall_site(kind: &str) -> Option<(&'static str, u32)> {
    let function = match kind {
        "mutex" => "main.(*server).do",
        "fanout" => "main.(*server).do.func1",
        _ => return None,
    };
    let source = std::fs::read_to_string(workspace_root().join("integration/go/tracedsvc/main.go")).unwrap();
    let at =
        source.lines().position(|l| l.ends_with(&format!("// stall site: {kind}"))).expect("the marked line");
    Some((function, at as u32 + 1))
}

fn assert_stalls_are_on_the_spans_that_suffered_them(r: &Run) {
    assert_each_span_once(r, 500);
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &r.truths {
        let kind = t.kind.as_str();
        let id = t.id();
        let injected = t.injected_ns / 1e9;
        let (span, _) = r.spans.get(&id).unwrap_or_else(|| panic!("{kind} span {id} never arrived"));
        let children = r.children.get(&id).cloned().unwrap_or_default();
        let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
        let child = |pred: &dyn Fn(&Item) -> bool| -> f64 {
            children.iter().filter(|c| pred(c)).map(|c| number(c, "go.runtime.stall.duration")).sum()
        };
        let (measured, what) = match kind {
            // The handler yielded while the hog held the only P: runnable.
            // It may yield more than once (the scheduler's fairness check
            // runs a yielder again now and then), so the wait can come in
            // pieces, some under the child threshold: the span's runnable
            // total is what it suffered.
            "runnable" => (number(span, "go.runtime.runnable.duration"), "runnable time"),
            // The handler sat in sync.Mutex.Lock.
            "mutex" => (
                child(&|c| c.text("go.runtime.wait_reason") == Some("sync.Mutex.Lock")),
                "sync.Mutex.Lock children",
            ),
            // A goroutine the handler started sat in sync.Mutex.Lock: its
            // wait is a child marked as the started goroutine's, and is not
            // the span's own parked time.
            "fanout" => {
                assert!(number(span, "go.runtime.started.goroutines") >= 1.0, "fanout span {id}: {span:?}");
                assert!(
                    number(span, "go.runtime.parked.mutex.duration") < 0.001,
                    "fanout span {id}: the started goroutine's lock wait counted as the span's own: {span:?}"
                );
                (
                    child(&|c| {
                        c.text("go.runtime.wait_reason") == Some("sync.Mutex.Lock")
                            && c.text("go.runtime.stall.goroutine") == Some("started")
                    }),
                    "started goroutine's sync.Mutex.Lock children",
                )
            }
            // An ordinary wait: an attribute, never a child.
            "select" => {
                assert!(children.is_empty(), "select span {id} got stall children {names:?}");
                (number(span, "go.runtime.parked.select.duration"), "select parked time")
            }
            // runtime.GC: the time the span lost to the GC cycle: parked for
            // its phases (the mark above all), frozen in its stop-the-worlds,
            // and runnable behind its workers on the only P. What remains of
            // the call is the handler's own work in it (the sweep).
            "gc" => (
                number(span, "go.runtime.parked.runtime_gc.duration")
                    + number(span, "go.runtime.gc.stw.duration")
                    + number(span, "go.runtime.runnable.duration"),
                "GC parking, stop-the-world and runnable time",
            ),
            // The handler paid for a GC cycle's marking in assists: the
            // runtime's own assist time over the cycle is what it measured.
            "assist" => (number(span, "go.runtime.gc.assist.duration"), "GC assist time"),
            other => panic!("unknown injection {other}"),
        };
        let error = (measured - injected).abs() / injected;
        eprintln!(
            "{kind}: injected {:.2} ms, gort {what} {:.2} ms ({:.1}% off); children {names:?}",
            injected * 1e3,
            measured * 1e3,
            error * 100.0
        );
        assert!(
            error <= 0.10,
            "{kind} span {id}: {what} {measured} s vs injected {injected} s; children {names:?}"
        );
        // An assist comes in many short marking turns, each under the child
        // threshold: the span's total is what it suffered.
        if kind != "gc" && kind != "select" && kind != "assist" {
            assert!(!children.is_empty(), "{kind} span {id} has no stall child");
        }
        if kind == "runnable" {
            let runnable = child(&|c| c.text("go.runtime.stall.kind") == Some("runnable"));
            assert!(runnable > 0.0, "runnable span {id} has no runnable child: {names:?}");
        }
        for c in &children {
            assert!(c.start >= span.start && c.end <= span.end, "a stall child lies outside its span: {c:?}");
        }
        // A lock wait's child names the handler's line that locked, and
        // carries the stack it parked with.
        if let Some((function, line)) = stall_site(kind) {
            let locks: Vec<&Item> = children
                .iter()
                .filter(|c| c.text("go.runtime.wait_reason") == Some("sync.Mutex.Lock"))
                .collect();
            if let Some(c) = locks.first() {
                eprintln!("{kind} span {id}: stall site {:?}", c.text("code.stacktrace"));
            }
            for c in &locks {
                let at = (c.text("code.function.name"), c.number("code.line.number") as u32);
                assert_eq!(at, (Some(function), line), "{kind} span {id}: stall site of {c:?}");
                assert!(c.text("code.file.path").is_some_and(|f| f.ends_with("tracedsvc/main.go")), "{c:?}");
                let trace = c.text("code.stacktrace").unwrap_or_default();
                assert!(
                    trace.starts_with("runtime.gopark(...)\n\t")
                        && trace.contains(&format!("\n{function}(...)\n\t")),
                    "{kind} span {id}: stack trace {trace:?}"
                );
            }
        }
        *by_kind.entry(kind).or_default() += 1;
    }
    for kind in ["runnable", "gc", "mutex", "fanout", "select", "assist"] {
        assert!(by_kind.get(kind).copied().unwrap_or(0) >= 3, "too few {kind} injections: {by_kind:?}");
    }
    assert_wall_time_within_duration(r);
    // Every child gort made is counted in its books.
    let arrived: usize = r.children.values().map(Vec::len).sum();
    assert_eq!(arrived as u64, counts(r).stall_spans, "children arrived vs gort_linkage_stall_spans_total");
    // Spans that lived through no injection (5 ms margin on either side: an
    // injection on the only P stalls everything in flight with it) got no
    // stall children, and did get their runtime accounting.
    let windows: Vec<(u64, u64)> = r.truths.iter().map(|t| (t.start_unix_ns, t.end_unix_ns)).collect();
    let margin = 5_000_000;
    let mut clean = 0;
    for (id, (span, _)) in &r.spans {
        let (start, end) = (span.start, span.end);
        if windows.iter().any(|&(s, e)| start < e + margin && end + margin > s) {
            continue;
        }
        clean += 1;
        assert!(
            !r.children.contains_key(id),
            "span {id} stalled nowhere but has children {:?}",
            r.children[id]
        );
    }
    assert!(clean > 300, "only {clean} spans outside the injections");
    let enriched = r.spans.values().filter(|(s, _)| s.has("go.runtime.runnable.duration")).count();
    assert_eq!(enriched, r.spans.len(), "every span of the watched service carries its runtime accounting");
    assert_exemplars_point_at_exported_spans(r);
}

/// Every per-span attribute that is wall time (the span's own goroutine's
/// runnable, parked and assist time, stop-the-world time, the longest waits
/// of the goroutines it started) lies within the span's duration.
fn assert_wall_time_within_duration(r: &Run) {
    let mut over = Vec::new();
    let mut checked = 0;
    for (id, (span, _)) in &r.spans {
        let duration_ns = span.end - span.start;
        for (key, value) in &span.values {
            if !(key.starts_with("go.runtime.") && key.ends_with(".duration")) {
                continue;
            }
            checked += 1;
            let ns = value.as_f64().unwrap() * 1e9;
            if ns > duration_ns as f64 + 1.0 {
                over.push(format!(
                    "{id}: {key} = {:.3} ms > span {:.3} ms",
                    ns / 1e6,
                    duration_ns as f64 / 1e6
                ));
            }
        }
    }
    eprintln!("wall-time attributes: {checked} checked, {} longer than their span", over.len());
    assert!(
        over.is_empty(),
        "{} attributes exceed their span's duration: {:?}",
        over.len(),
        &over[..over.len().min(5)]
    );
}

/// Every probe on a path that runs per span or per goroutine sits on an
/// instruction the kernel emulates: only the stop-the-world end, a few times
/// per GC cycle, may be single-stepped on a RET.
fn assert_no_single_step_on_a_hot_path(r: &Run) {
    for p in &r.target.probes {
        eprintln!("probe {} at +{:#x}: {:?} ({})", p.name, p.site_offset, p.site_kind, p.instruction);
        if p.name != "stw_end" {
            assert_eq!(p.site_kind.as_deref(), Some("emulated"), "{p:?}");
        }
    }
    let span_start = r.target.probes.iter().find(|p| p.name == "span_start").expect("span_start attached");
    assert_eq!(span_start.site.as_deref(), Some("call_to"), "{span_start:?}");
}

fn assert_exemplars_point_at_exported_spans(r: &Run) {
    assert!(!r.exemplars.is_empty(), "gort exported no exemplars");
    for (metric, id) in &r.exemplars {
        assert!(r.ended.contains(id), "{metric} exemplar {id} is not a span the service exported");
    }
    let metrics: HashSet<&str> = r.exemplars.iter().map(|(m, _)| m.as_str()).collect();
    for m in ["go.schedule.duration", "gort.goroutine.blocked.duration"] {
        assert!(metrics.contains(m), "no exemplar on {m}: {metrics:?}");
    }
}

fn service(variant: &str, ldflags: &[&str]) -> PathBuf {
    go_program("tracedsvc", variant, ldflags, &[])
}

#[test]
fn stalls_are_charged_to_the_spans_that_suffered_them() {
    if !require_root("stalls_are_charged_to_the_spans_that_suffered_them") {
        return;
    }
    let binary = service("default", &[]);
    let r = run(&Options {
        binary: &binary,
        processor: "batch",
        late_attach: None,
        through_collector: true,
        bystander: false,
    });
    assert_eq!(r.target.linkage.as_ref().expect("linkage was on").offset_source, "dwarf");
    assert_stalls_are_on_the_spans_that_suffered_them(&r);
    assert_no_single_step_on_a_hot_path(&r);
    // gort's metrics name the service as its spans do ("tracedsvc", not the
    // main module path) once its first export has arrived.
    eprintln!("services of gort's go.schedule.duration points, in order: {:?}", r.metric_services);
    assert_eq!(r.metric_services.last().map(String::as_str), Some("tracedsvc"));
    assert!(r.spans.values().all(|(s, _)| s.service == "tracedsvc"));
    // --otlp-json holds what gort forwards: the enriched spans and gort's metrics.
    let (spans_in_copy, metrics_in_copy) = r.json_copy;
    eprintln!("--otlp-json: {spans_in_copy} enriched spans, {metrics_in_copy} metric requests");
    assert_eq!(spans_in_copy, r.spans.len(), "every forwarded span is in the --otlp-json copy");
    assert!(metrics_in_copy >= 5, "gort's metrics are in the copy too");
}

#[test]
fn stalls_are_charged_in_a_stripped_service_too() {
    if !require_root("stalls_are_charged_in_a_stripped_service_too") {
        return;
    }
    let binary = service("stripped", &["-ldflags=-s -w"]);
    let r = run(&Options {
        binary: &binary,
        processor: "batch",
        late_attach: None,
        through_collector: false,
        bystander: false,
    });
    // No DWARF, no symbols: the pclntab and the SDK offsets table serve.
    assert_eq!(r.target.linkage.as_ref().expect("linkage was on").offset_source, "table");
    assert_stalls_are_on_the_spans_that_suffered_them(&r);
}

#[test]
fn spans_that_reach_gort_before_their_probe_data_are_held_and_enriched() {
    if !require_root("spans_that_reach_gort_before_their_probe_data_are_held_and_enriched") {
        return;
    }
    let binary = service("default", &[]);
    // The simple processor exports each span inside its End, before gort
    // has read the span's record from the ring buffer.
    let r = run(&Options {
        binary: &binary,
        processor: "simple",
        late_attach: None,
        through_collector: false,
        bystander: true,
    });
    assert_each_span_once(&r, 50);
    let enriched = r.spans.values().filter(|(s, _)| s.has("go.runtime.runnable.duration")).count();
    eprintln!("{} spans, {enriched} enriched; books {:?}", r.spans.len(), counts(&r));
    assert_eq!(enriched, r.spans.len(), "a span that came first waited for its data");
    assert_exemplars_point_at_exported_spans(&r);
    // Another service exporting to the same gort, once the watched one has
    // named itself: its spans arrive once each, unchanged, and never enter
    // the join (linkage received the watched service's spans only).
    let (others, ended) = &r.bystander;
    let arrived: HashSet<String> = others.keys().cloned().collect();
    assert_eq!(ended.len(), 200);
    assert_eq!(&arrived, ended, "the bystander's spans, each once");
    assert!(others.values().all(|(s, n)| *n == 1 && !s.has("go.runtime.runnable.duration")));
    assert!(others.keys().all(|id| !r.children.contains_key(id)));
    assert_eq!(counts(&r).spans_received, r.spans.len() as u64, "only the watched service's spans were held");
}

#[test]
fn spans_gort_never_saw_arrive_once_unchanged() {
    if !require_root("spans_gort_never_saw_arrive_once_unchanged") {
        return;
    }
    let binary = service("default", &[]);
    // gort attaches 1.5 s into the load: spans that ended before arrive
    // (the SDK retries its exports until gort listens) with nothing to join,
    // and spans open at that moment were only partly seen.
    let r = run(&Options {
        binary: &binary,
        processor: "batch",
        late_attach: Some(Duration::from_millis(1500)),
        through_collector: false,
        bystander: false,
    });
    assert_each_span_once(&r, 500);
    let (spawned, attached) = r.attach;
    let enriched = |s: &Item| s.has("go.runtime.runnable.duration");
    let before: Vec<&Item> = r.spans.values().map(|(s, _)| s).filter(|s| s.end < spawned).collect();
    let after: Vec<&Item> = r.spans.values().map(|(s, _)| s).filter(|s| s.start > attached).collect();
    let partial = r.spans.values().filter(|(s, _)| s.has("go.runtime.coverage")).count();
    eprintln!(
        "{} spans: {} ended before gort started ({} enriched), {} started after it attached ({} enriched), \
         attach took {:.0} ms, {partial} partial",
        r.spans.len(),
        before.len(),
        before.iter().filter(|s| enriched(s)).count(),
        after.len(),
        after.iter().filter(|s| enriched(s)).count(),
        (attached - spawned) as f64 / 1e6,
    );
    // Counted by time, not by share: how many spans fall on each side
    // depends on how fast the machine runs the load and the attach.
    assert!(before.len() >= 20, "the load ran {} spans before gort started", before.len());
    assert!(after.len() >= 20, "the load ran {} spans after gort attached", after.len());
    for s in &before {
        assert!(!enriched(s), "span {} ended before gort started but was enriched", s.id);
    }
    for s in &after {
        assert!(enriched(s), "span {} started after gort attached but was not enriched", s.id);
    }
    for (id, (span, _)) in &r.spans {
        if !enriched(span) {
            assert!(!r.children.contains_key(id), "an unseen span {id} got stall children");
        }
    }
}

/// A service that exports its spans somewhere else (here: a port where
/// nothing listens) while gort watches it: the probes see its spans end,
/// none arrive, and gort says so once, with the likely causes, and counts
/// them (linkage.account_ttl is 3 s here, so the test need not wait a
/// minute).
#[test]
fn a_service_whose_spans_never_arrive_is_told_of_once() {
    if !require_root("a_service_whose_spans_never_arrive_is_told_of_once") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let binary = service("default", &[]);
    let dir = Scratch::new("link-silent");
    let (config, summary) = (dir.join("config.yaml"), dir.join("summary"));
    std::fs::write(&config, "linkage:\n  account_ttl: 3s\n").unwrap();
    let (mut sink, sink_port) = start_sink(&dir.join("sink"));
    let (gort_port, elsewhere) = (free_port(), free_port());
    let mut svc_cmd = Command::new(&binary);
    svc_cmd.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{elsewhere}")]);
    let mut svc = Proc::spawn(svc_cmd, "[svc]");
    let addr = svc.listen_addr();
    // gort's log goes to stderr: read it with its reports.
    let gort_cmd = format!(
        "exec {} run --pid {} --config {} --upstream http://127.0.0.1:{sink_port} --otlp-grpc 127.0.0.1:{gort_port} \
         --otlp-http off --telemetry off --summary-json {} 2>&1",
        gort_binary().display(),
        svc.pid(),
        config.display(),
        summary.display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &gort_cmd]);
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(30), |l| l.contains("mode:"));
    let mut load = Command::new(&binary);
    load.args(["-load", &addr, "-duration", "2s", "-rate", "100", "-stall-every", "0"]);
    let mut load = Proc::spawn(load, "[load]");
    load.wait_line(Duration::from_secs(30), |l| l.contains("load-done"));
    let warning = gort.wait_line(Duration::from_secs(20), |l| l.contains("none of its spans reached gort"));
    for cause in ["OTEL_EXPORTER_OTLP_ENDPOINT", "protocol", "port"] {
        assert!(warning.contains(cause), "the warning names no {cause}: {warning}");
    }
    unsafe_kill(svc.pid(), "TERM");
    let _ = svc.wait_exit(Duration::from_secs(90));
    gort.wait_line(Duration::from_secs(10), |l| l.contains("exited; probes detached"));
    unsafe_kill(gort.pid(), "TERM");
    assert!(gort.wait_exit(Duration::from_secs(30)).success(), "gort failed");
    let told = gort.seen.iter().filter(|l| l.contains("none of its spans reached gort")).count();
    assert_eq!(told, 1, "told once");
    unsafe_kill(sink.pid(), "TERM");
    let _ = sink.wait_exit(Duration::from_secs(10));
    let target = summary::take(&summary).targets.remove(0);
    let counts = &target.linkage.as_ref().expect("linkage was on").counts;
    eprintln!("books of a silent service: {counts:?}");
    assert_eq!(counts.spans_received, 0);
    assert!(counts.spans_not_received > 100, "{counts:?}");
    let _ = std::fs::remove_file(&config);
}
