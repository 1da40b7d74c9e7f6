//! The user's backends, for real: Prometheus (OTLP receiver, exemplar
//! storage) and Jaeger (OTLP in, memory storage, query API), both built by
//! `scripts/setup` into the cache and configured from `collector-config/`;
//! and the Collector that feeds them (`collector-config/prometheus-jaeger.yaml`).
//! Each runs as a child process on free loopback ports and is stopped when
//! dropped. Queries go through the backends' HTTP APIs only.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{cached_binary, free_port, otelcol_binary, wait_for_port, workspace_root};

/// The Prometheus release `scripts/setup` builds.
pub const PROMETHEUS_VERSION: &str = "v0.316.0";
/// The Jaeger release `scripts/setup` builds.
pub const JAEGER_VERSION: &str = "v1.76.0";

pub fn prometheus_binary() -> PathBuf {
    cached_binary(&format!("prometheus-{PROMETHEUS_VERSION}/prometheus"))
}

pub fn promtool_binary() -> PathBuf {
    cached_binary(&format!("prometheus-{PROMETHEUS_VERSION}/promtool"))
}

pub fn jaeger_binary() -> PathBuf {
    cached_binary(&format!("jaeger-{JAEGER_VERSION}/jaeger"))
}

/// A child process stopped with SIGTERM (then waited for) when dropped.
pub struct Daemon {
    child: Child,
    /// Removed when dropped (a backend's storage).
    scratch: Option<PathBuf>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn spawn(mut cmd: Command, log: &Path, what: &str) -> Child {
    let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let err = out.try_clone().expect("clone a file handle");
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"))
}

/// A GET on loopback over HTTP/1.0 (no chunked answer to undo); returns
/// (status, body). `path` is sent as given: encode its query first.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    crate::http_exchange(port, request.as_bytes(), Duration::from_secs(20))
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus (collector-config/prometheus/prometheus.yml) with
/// its OTLP receiver and exemplar storage on, storing in a scratch dir.
pub struct Prometheus {
    pub port: u16,
    _daemon: Daemon,
}

/// The shipped Prometheus configuration with its gort scrape target moved
/// to `gort_telemetry` and its rule files named by absolute path (the copy
/// lives in a scratch dir). Panics if either is no longer in the file, so a
/// change there cannot leave the test scraping nothing.
pub fn prometheus_config(gort_telemetry: u16) -> String {
    let dir = workspace_root().join("collector-config/prometheus");
    let shipped = std::fs::read_to_string(dir.join("prometheus.yml")).expect("read prometheus.yml");
    for needle in ["\"127.0.0.1:8888\"", "  - rules/"] {
        assert!(shipped.contains(needle), "prometheus.yml no longer has {needle}");
    }
    shipped
        .replace("\"127.0.0.1:8888\"", &format!("\"127.0.0.1:{gort_telemetry}\""))
        .replace("  - rules/", &format!("  - {}/rules/", dir.display()))
}

impl Prometheus {
    /// Starts Prometheus scraping gort's telemetry on `gort_telemetry`.
    pub fn start(scratch: &Path, gort_telemetry: u16) -> Self {
        let port = free_port();
        let data = scratch.join("prometheus-data");
        std::fs::create_dir_all(&data).unwrap();
        let config = scratch.join("prometheus.yml");
        std::fs::write(&config, prometheus_config(gort_telemetry)).unwrap();
        let mut cmd = Command::new(prometheus_binary());
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .args(["--web.enable-otlp-receiver", "--enable-feature=exemplar-storage"]);
        let child = spawn(cmd, &scratch.join("prometheus.log"), "Prometheus");
        let me = Self { port, _daemon: Daemon { child, scratch: Some(data) } };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http_get(port, "/-/ready").0 == 200
            {
                return me;
            }
            assert!(Instant::now() < deadline, "Prometheus not ready in 60 s: see {}", scratch.display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET /api/v1/<what>?<query>` answered with status success: its `data`.
    pub fn api(&self, what: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let (status, body) = http_get(self.port, &format!("/api/v1/{what}?{}", q.join("&")));
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("Prometheus {what}: {status} {e}: {body}"));
        assert_eq!(v["status"], "success", "Prometheus {what} {query:?}: {body}");
        v["data"].clone()
    }

    /// An instant query's result vector.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        self.api("query", &[("query", promql)])["result"].as_array().cloned().unwrap_or_default()
    }
}

/// A running Jaeger (collector-config/jaeger/config.yaml): OTLP/gRPC in on
/// `otlp_port`, the query API on `query_port`.
pub struct Jaeger {
    pub otlp_port: u16,
    pub query_port: u16,
    _daemon: Daemon,
}

impl Jaeger {
    pub fn start(scratch: &Path) -> Self {
        let (otlp_port, query_port, grpc_port) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(jaeger_binary());
        cmd.arg("--config").arg(workspace_root().join("collector-config/jaeger/config.yaml"));
        cmd.env("JAEGER_OTLP_GRPC_ENDPOINT", format!("127.0.0.1:{otlp_port}"))
            .env("JAEGER_QUERY_ENDPOINT", format!("127.0.0.1:{query_port}"))
            .env("JAEGER_QUERY_GRPC_ENDPOINT", format!("127.0.0.1:{grpc_port}"));
        let child = spawn(cmd, &scratch.join("jaeger.log"), "Jaeger");
        let me = Self { otlp_port, query_port, _daemon: Daemon { child, scratch: None } };
        wait_for_port(query_port, Duration::from_secs(60));
        wait_for_port(otlp_port, Duration::from_secs(60));
        me
    }

    /// `GET /api/traces/<trace_id>` (the query service's JSON), or None
    /// while Jaeger does not hold it.
    pub fn trace(&self, trace_id: &str) -> Option<serde_json::Value> {
        let (status, body) = http_get(self.query_port, &format!("/api/traces/{trace_id}"));
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"].as_array()?.first().cloned()
    }
}

/// A Collector (collector-config/prometheus-jaeger.yaml) receiving OTLP/gRPC
/// on a free port and feeding `prometheus` and `jaeger`; returns it and the
/// port.
pub fn start_collector_to_backends(
    prometheus: &Prometheus,
    jaeger: &Jaeger,
    scratch: &Path,
) -> (Daemon, u16) {
    let port = free_port();
    let mut cmd = Command::new(otelcol_binary());
    cmd.arg("--config").arg(workspace_root().join("collector-config/prometheus-jaeger.yaml"));
    cmd.env("GORT_COLLECTOR_ENDPOINT", format!("127.0.0.1:{port}"))
        .env("PROMETHEUS_OTLP_ENDPOINT", format!("http://127.0.0.1:{}/api/v1/otlp", prometheus.port))
        .env("JAEGER_OTLP_ENDPOINT", format!("127.0.0.1:{}", jaeger.otlp_port));
    let child = spawn(cmd, &scratch.join("collector.log"), "the Collector");
    let daemon = Daemon { child, scratch: None };
    wait_for_port(port, Duration::from_secs(30));
    (daemon, port)
}

/// The shipped Grafana dashboard (collector-config/grafana/dashboards/gort.json).
pub fn dashboard() -> serde_json::Value {
    let path = workspace_root().join("collector-config/grafana/dashboards/gort.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every (panel title, PromQL) of `dashboard`, with Grafana's variables
/// replaced as Grafana would for one service (`$service`) and a range
/// (`$__rate_interval`). Panics on a variable it does not know, so a new
/// one cannot slip past the test unreplaced.
pub fn dashboard_queries(dashboard: &serde_json::Value, service: &str, range: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr =
                target["expr"].as_str().unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
            let expr = expr.replace("$service", service).replace("$__rate_interval", range);
            assert!(!expr.contains('$'), "panel {title:?}: an unknown variable in {expr}");
            out.push((title.to_owned(), expr));
        }
    }
    out
}
