//! Harness for gort's end-to-end tests: builds the `gort` binary and the Go
//! test programs under `integration/go/`, runs them as child processes, and
//! reads their line-oriented output with timeouts.

pub mod backends;
pub mod goprog;
pub mod inspect;
pub mod scratch;
pub mod selfmetrics;
pub mod sink;
pub mod summary;
pub mod traps;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread,
    time::{Duration, Instant},
};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("integration/ has a parent").to_owned()
}

/// eBPF tests need root. A skipped eBPF test must not look like a pass, so
/// without root this fails loudly; only an explicit opt-out skips.
pub fn require_root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if euid == "0" {
        return true;
    }
    if std::env::var_os("GORT_ALLOW_SKIP_EBPF").is_some() {
        eprintln!("{test}: SKIPPED (not root, GORT_ALLOW_SKIP_EBPF set)");
        return false;
    }
    panic!(
        "{test} loads eBPF and needs root; run as root (or set GORT_ALLOW_SKIP_EBPF=1 to skip on purpose)"
    );
}

/// Builds `gort` (with its probes) once per test process and returns its path:
/// a debug build for tests, a release build for benchmarks (which cargo
/// compiles without debug assertions), so gort's own CPU is measured as shipped.
///
/// `GORT_BINARY` names another build instead (e.g. an older release, for
/// before/after figures).
pub fn gort_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("GORT_BINARY") {
        Some(path) => PathBuf::from(path),
        None => build_gort(!cfg!(debug_assertions)),
    })
}

/// The release build of `gort`, as an image ships it, built once per test
/// process.
pub fn gort_release_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_gort(true))
}

fn build_gort(release: bool) -> PathBuf {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root());
    cmd.args(["build", "-p", "gort", "--bin", "gort", "--message-format=json-render-diagnostics"]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.stderr(Stdio::inherit()).output().expect("run cargo build");
    assert!(out.status.success(), "cargo build -p gort failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "gort")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no gort executable")
}

/// Runs the OTel-Go-SDK-instrumented `otelapp` once against gort's
/// receiver on `port` (`grpc` or `http`): `spans` spans and 50 log records
/// as `service`; returns its report of what it ended and exported.
pub fn run_otelapp(
    protocol: &str,
    port: u16,
    service: &str,
    spans: u32,
    extra: &[&str],
) -> goprog::OtelappReport {
    let app = go_program("otelapp", "default", &[], &[]);
    let out = Command::new(app)
        .args(extra)
        // The SDK's first retry waits 5 s, and its batch processor gives an
        // export 30 s in all: retry sooner so the tests see it succeed.
        .arg("-fast-retry")
        .args(["-protocol", protocol, "-endpoint", &format!("127.0.0.1:{port}")])
        .args(["-service", service, "-spans", &spans.to_string(), "-logs", "50"])
        .output()
        .expect("run otelapp");
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
    assert!(out.status.success(), "otelapp failed: {line} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("otelapp printed {line:?}: {e}"))
}

/// Builds the Go program `integration/go/<name>` (with extra `go build`
/// arguments and environment) into the target directory and returns its path.
pub fn go_program(name: &str, variant: &str, args: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let src = workspace_root().join("integration/go").join(name);
    let out_dir = workspace_root().join("target/go-programs");
    std::fs::create_dir_all(&out_dir).expect("create target/go-programs");
    let out = out_dir.join(format!("{name}-{variant}"));
    // One build at a time: two tests of one binary building the same
    // program at once would each write it, and the second write replaces
    // the file under a process the first already started from it (its
    // /proc/PID/exe then reads "... (deleted)").
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut cmd = Command::new("go");
    cmd.current_dir(&src).arg("build").arg("-o").arg(&out).args(args).arg(".");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("run go build (is Go installed? run scripts/setup)");
    assert!(status.success(), "go build of {name} ({variant}) failed");
    out
}

/// A child process whose stdout is read line by line in the background.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    pub seen: Vec<String>,
    echo: &'static str,
}

impl Proc {
    /// Starts `cmd` with piped stdin/stdout; `echo` prefixes its lines on our stderr.
    pub fn spawn(mut cmd: Command, echo: &'static str) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, stdin, seen: Vec::new(), echo }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL: a crash, as far as anyone watching can tell.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Sends SIGTERM (with kill(1): the tests hold no unsafe code).
    pub fn terminate(&self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
    }

    /// Waits for a stdout line matching `pred`; panics with what was seen on timeout.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("{} {line}", self.echo);
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: timed out; output so far: {:#?}", self.echo, self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: output ended; output so far: {:#?}", self.echo, self.seen)
                }
            }
        }
    }

    /// The next stdout line if one is there already, without waiting.
    pub fn try_line(&mut self) -> Option<String> {
        let line = self.lines.try_recv().ok()?;
        eprintln!("{} {line}", self.echo);
        self.seen.push(line.clone());
        Some(line)
    }

    /// The address a Go test service (`tracedsvc`) says it listens on, in
    /// its `{"event":"listening","addr":...}` line.
    pub fn listen_addr(&mut self) -> String {
        #[derive(serde::Deserialize)]
        struct Listening {
            addr: String,
        }
        let line = self.wait_line(Duration::from_secs(30), |l| l.contains("\"listening\""));
        serde_json::from_str::<Listening>(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")).addr
    }

    /// Drains remaining output (echoing it) and waits for exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                eprintln!("{} {line}", self.echo);
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    eprintln!("{} {line}", self.echo);
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("{}: did not exit in {timeout:?}; output: {:#?}", self.echo, self.seen);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to child stdin");
        stdin.flush().expect("flush child stdin");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The JSON lines the ping-pong program prints.
#[derive(Debug, serde::Deserialize)]
pub struct PingPongReport {
    pub event: String,
    pub pid: u32,
    #[serde(default)]
    pub round_trips: u64,
    #[serde(default)]
    pub goids: Vec<u64>,
    #[serde(default)]
    pub elapsed_ns: u64,
}

/// One ping-pong run: the program started with `-wait-start`, ready to go.
pub fn start_pingpong(binary: &Path, pairs: u32, rounds: u32) -> Proc {
    let mut cmd = Command::new(binary);
    cmd.args(["-wait-start", "-pairs", &pairs.to_string(), "-rounds", &rounds.to_string()]);
    let mut p = Proc::spawn(cmd, "[pingpong]");
    p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    p
}

/// Starts `gort run` against `pid` with extra arguments and waits until it
/// reports its probes attached.
pub fn start_gort(pid: u32, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--pid", &pid.to_string()]).args(extra);
    let mut g = Proc::spawn(cmd, "[gort]");
    g.wait_line(Duration::from_secs(60), |l| l.starts_with("gort: attached to pid"));
    // The probe lines follow the attached line; make sure all are in.
    g
}

pub fn parse_report(line: &str) -> PingPongReport {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad report line {line:?}: {e}"))
}

/// The large real-world Go program scripts/setup builds (Hugo, ~70 MB), and a
/// copy stripped with objcopy beside it.
pub fn large_go_binary() -> (PathBuf, PathBuf) {
    let cache = std::env::var_os("GORT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/gort"));
    let binary = cache.join("large-go/hugo-v0.152.2/hugo");
    assert!(binary.exists(), "{} is missing: run scripts/setup", binary.display());
    let stripped = workspace_root().join("target/large-go/hugo-stripped");
    if !stripped.exists() {
        std::fs::create_dir_all(stripped.parent().unwrap()).unwrap();
        let status = Command::new("objcopy").arg("--strip-all").arg(&binary).arg(&stripped).status().unwrap();
        assert!(status.success(), "objcopy --strip-all failed");
    }
    (binary, stripped)
}

/// The OpenTelemetry Collector scripts/setup builds (collector-config/builder.yaml).
pub fn otelcol_binary() -> PathBuf {
    cached_binary("otelcol-0.160.0/gort-otelcol")
}

/// A program `scripts/setup` built into its cache (`$GORT_CACHE`, by
/// default `~/.cache/gort`), at `relative` there; panics with what to run
/// when it is missing.
pub fn cached_binary(relative: &str) -> PathBuf {
    let cache = std::env::var_os("GORT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/gort"));
    let binary = cache.join(relative);
    assert!(binary.exists(), "{} is missing: run scripts/setup", binary.display());
    binary
}

/// A loopback port nothing listens on right now, for a process started later.
///
/// It is taken below the kernel's ephemeral range: a port the kernel hands
/// out for a bind to port 0 can be handed again to the next such bind (a Go
/// service under test, the Collector), which then holds it before gort
/// starts. Ports below that range are only ever used when asked for by
/// number. A per-process counter, started at an offset from the pid, keeps
/// two calls in one run, and two test binaries, from picking the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (low, high) = (ephemeral_low.saturating_sub(12_000).max(1_024), ephemeral_low);
    let span = high - low;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = (low + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind a free port").port()
}

/// A running Collector, stopped (SIGTERM, then waited for) when dropped,
/// so that a failing test does not leave it running.
pub struct Collector(Child);

impl Collector {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// A real Collector receiving OTLP/gRPC on `port` and relaying everything
/// to the sink on `sink_port` (collector-config/relay.yaml).
pub fn start_collector(port: u16, sink_port: u16) -> Collector {
    start_collector_with(&workspace_root().join("collector-config/relay.yaml"), port, sink_port)
}

/// A real Collector with another configuration, given the same two
/// variables (GORT_RELAY_ENDPOINT, GORT_SINK_ENDPOINT).
pub fn start_collector_with(config: &Path, port: u16, sink_port: u16) -> Collector {
    start_collector_args(&[], &[config], port, sink_port)
}

/// relay.yaml with its profiles pipeline (profiles.yaml), in a Collector
/// started with the feature gate the signal needs.
pub fn start_collector_with_profiles(port: u16, sink_port: u16) -> Collector {
    let dir = workspace_root().join("collector-config");
    let configs = [&*dir.join("relay.yaml"), &*dir.join("profiles.yaml")];
    start_collector_args(&["--feature-gates=service.profilesSupport"], &configs, port, sink_port)
}

/// A real Collector started with `args` and `configs` (merged in order).
fn start_collector_args(args: &[&str], configs: &[&Path], port: u16, sink_port: u16) -> Collector {
    let mut cmd = Command::new(otelcol_binary());
    cmd.args(args);
    for config in configs {
        cmd.arg("--config").arg(config);
    }
    let child = cmd
        .env("GORT_RELAY_ENDPOINT", format!("127.0.0.1:{port}"))
        .env("GORT_SINK_ENDPOINT", format!("127.0.0.1:{sink_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Collector");
    wait_for_port(port, Duration::from_secs(30));
    Collector(child)
}

/// The last hop: an OTLP/gRPC server (integration/go/otlpsink) writing
/// every item it receives to `out` as JSON lines. Returns it and its port.
pub fn start_sink(out: &Path) -> (Proc, u16) {
    start_sink_with(out, &[])
}

/// `start_sink` with more of otlpsink's flags (`-fault`, ...).
pub fn start_sink_with(out: &Path, args: &[&str]) -> (Proc, u16) {
    let binary = go_program("otlpsink", "default", &[], &[]);
    let mut cmd = Command::new(binary);
    cmd.arg("-out").arg(out).args(args);
    let mut p = Proc::spawn(cmd, "[sink]");
    let ready = p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    let v: serde_json::Value = serde_json::from_str(&ready).expect("sink ready line");
    let port =
        v["addr"].as_str().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).expect("port");
    (p, port)
}

/// Waits until something accepts connections on the loopback `port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port} after {timeout:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last metric named `name` in OTLP/JSON metrics request lines.
/// The number `text` starts with, and what follows it: for counts read
/// back from gort's log lines.
pub fn leading_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    Some((text[..digits].parse().ok()?, &text[digits..]))
}

pub fn last_metric<'a>(requests: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    requests
        .iter()
        .flat_map(|r| r["resourceMetrics"].as_array().into_iter().flatten())
        .flat_map(|rm| rm["scopeMetrics"].as_array().into_iter().flatten())
        .flat_map(|sm| sm["metrics"].as_array().into_iter().flatten())
        .rfind(|m| m["name"] == name)
}

/// Every complete JSON line of a file a writer may still be appending to
/// (missing: none). A last line without its newline is a write in flight,
/// read while the writer was between two `write` calls: it is left for the
/// next read instead of failing the parse.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// A plain HTTP/1.1 request on loopback; returns (status, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    http_exchange(port, &bytes, Duration::from_secs(10))
}

/// Sends a whole HTTP request on loopback and reads the answer until the
/// server closes; returns (status, body). The request must ask for a
/// close-delimited answer (HTTP/1.0, or `Connection: close`).
pub fn http_exchange(port: u16, request: &[u8], timeout: Duration) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A TCP relay on loopback that delivers every chunk `delay` after it was
/// read, in both directions: network latency in front of a real server
/// (bandwidth is not limited; the delay can change while it runs).
pub struct DelayProxy {
    pub port: u16,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl DelayProxy {
    pub fn start(target_port: u16, delay: Duration) -> Self {
        use std::sync::{Arc, atomic::AtomicU64};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let delay_ms = Arc::new(AtomicU64::new(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)));
        let d = delay_ms.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue; // The client sees the connection close, as if the server were down.
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else { continue };
                    Self::pipe(from, to, d.clone());
                }
            }
        });
        Self { port, delay_ms }
    }

    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::Relaxed);
    }

    fn pipe(
        mut from: std::net::TcpStream,
        mut to: std::net::TcpStream,
        delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) {
        use std::io::Read;
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let due = Instant::now() + Duration::from_millis(delay_ms.load(Ordering::Relaxed));
                if tx.send((due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            for (due, chunk) in rx {
                thread::sleep(due.saturating_duration_since(Instant::now()));
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

/// CPU time (user + system) a live process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    static CLK_TCK: OnceLock<f64> = OnceLock::new();
    let per_second = *CLK_TCK.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf CLK_TCK");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a number of ticks")
    });
    ticks / per_second
}

/// A field of a live process's /proc/PID/status given in kB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// A live process's peak resident set size (VmHWM), in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_kib(pid, "VmHWM") as f64 / 1024.0
}

/// A live process's resident set size now (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}
