//! gort's default (sampled) mode on short runs: the estimated number of
//! waits against what the program counted itself over the same run. The
//! program sleeps 10 ms in a loop in 4 goroutines (~400 sleeps/s) and
//! answers each stdin line with its count; the test asks when gort has
//! attached and again when gort has stopped. Runs as root.

use std::{process::Command, time::Duration};

use gort_integration::{Proc, go_program, require_root, start_gort, summary};

/// Runs gort with its default sampling for `run` against the steady load;
/// returns (gort's estimated sleeps, the sleeps the program counted over
/// the same time, and gort's summary).
fn estimated_and_counted(run: &str) -> (f64, f64, summary::Target) {
    let binary = go_program("runtimeload", "default", &[], &[]);
    let mut cmd = Command::new(&binary);
    cmd.args(["-workload", "steady", "-workers", "4"]);
    let mut load = Proc::spawn(cmd, "[runtimeload]");
    load.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    load.send_line("go");
    // The load is steady before gort comes.
    std::thread::sleep(Duration::from_millis(500));
    let path = std::env::temp_dir().join(format!("gort-est-{}-{run}.json", load.pid()));
    let mut gort = start_gort(load.pid(), &["--for", run, "--summary-json", path.to_str().unwrap()]);
    gort.wait_line(Duration::from_secs(10), |l| l.contains("mode:"));
    let count = |load: &mut Proc| {
        load.send_line("count");
        let line = load.wait_line(Duration::from_secs(5), |l| l.contains("\"count\""));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        (v["sleeps"].as_f64().unwrap(), v["t_ns"].as_f64().unwrap())
    };
    let before = count(&mut load);
    assert!(gort.wait_exit(Duration::from_secs(60)).success());
    let after = count(&mut load);
    load.send_line("stop");
    assert!(load.wait_exit(Duration::from_secs(10)).success());
    let mut s = summary::take(&path);
    let target = s.targets.remove(0);
    let ours = target.runtime.blocked.get("sleep").map_or(0, summary::Histogram::count) as f64;
    // The program's counts bracket gort's run but not to the millisecond
    // (gort takes a moment to stop): its steady rate, over the time gort
    // says it was attached, is the count to compare with.
    let rate = (after.0 - before.0) / (after.1 - before.1);
    let attached_ns = target.sampling.elapsed_ns.map_or(after.1 - before.1, |e| e as f64);
    (ours, rate * attached_ns, target)
}

fn check(run: &str) {
    let (ours, theirs, target) = estimated_and_counted(run);
    let s = &target.sampling;
    eprintln!(
        "{run}: gort estimated {ours:.0} sleeps, the program counted {theirs:.0} (ratio {:.2}); \
         recorded {:?} ns of {:?} ns, {} windows, relative error {:?}",
        ours / theirs,
        s.covered_ns,
        s.elapsed_ns,
        s.windows,
        s.blocked_count_relative_error
    );
    assert!(theirs > 1000.0, "{run}: the load slept only {theirs} times");
    assert!(
        (ours - theirs).abs() <= 0.30 * theirs,
        "{run}: gort {ours:.0} vs program {theirs:.0}: more than 30% off"
    );
    let (covered, elapsed) = (s.covered_ns.unwrap(), s.elapsed_ns.unwrap());
    assert!(covered < elapsed, "{run}: the default samples: {covered} of {elapsed} ns recorded");
    let err = s.blocked_count_relative_error.unwrap();
    assert!(err > 0.0 && err < 0.3, "{run}: stated error {err}");
}

#[test]
fn ebpf_sampled_counts_on_a_5s_run_match_what_the_program_counted() {
    if require_root("ebpf_sampled_counts_on_a_5s_run_match_what_the_program_counted") {
        check("5s");
    }
}

#[test]
fn ebpf_sampled_counts_on_an_11s_run_match_what_the_program_counted() {
    if require_root("ebpf_sampled_counts_on_an_11s_run_match_what_the_program_counted") {
        check("11s");
    }
}
