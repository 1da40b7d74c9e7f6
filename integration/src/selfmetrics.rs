//! Reading gort's own telemetry endpoint (`/metrics`, `/health`) the way a
//! scraper or a probe does, and waiting on what it says.

use std::time::{Duration, Instant};

use crate::http_request;

/// gort's self-metric `name{signal="..."}`, a counter.
pub fn self_metric(port: u16, name: &str, signal: &str) -> u64 {
    signal_gauge(port, name, signal) as u64
}

/// gort's self-metric `name{signal="..."}`.
pub fn signal_gauge(port: u16, name: &str, signal: &str) -> f64 {
    let (status, body) = http_request(port, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let key = format!("{name}{{signal=\"{signal}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key}in {body}"))
}

/// An unlabelled counter or gauge of gort's self-metrics.
pub fn gauge(port: u16, name: &str) -> f64 {
    let (_, body) = http_request(port, "GET", "/metrics", &[], b"");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// Polls `ok` every 200 ms; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
