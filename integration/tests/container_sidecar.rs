//! The image, built by podman from the repository's `Dockerfile` and run as
//! the sidecar of a Go service's container, sharing its pid namespace: as
//! user 65532, with CAP_SYS_ADMIN and CAP_SYS_PTRACE only and a read-only
//! root filesystem (no tmpfs either), gort attaches to the service, and its
//! enriched spans and metrics arrive upstream.
//!
//! What this machine cannot do, and how the test goes around it:
//! - No image registry: the runtime base is Debian bookworm made with
//!   debootstrap and imported (`scripts/setup`), passed as RUNTIME_IMAGE,
//!   and gort is built outside (`GORT_FROM=prebuilt`): the builder stage,
//!   which downloads the Rust toolchains and builds bpf-linker in the
//!   container, is not run here.
//! - crun refuses this host's hybrid cgroup mounts: runc runs the containers.
//! - The sandbox withholds CAP_SYS_RESOURCE, so podman's default rlimits
//!   (nofile 1048576) cannot be set: the containers get lower ones.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use gort_integration::{
    Proc, free_port, go_program, gort_release_binary, require_root, scratch::Scratch, sink, start_sink,
    workspace_root,
};

/// Made by `scripts/setup` with debootstrap.
const BASE_IMAGE: &str = "localhost/gort-base:bookworm";
const LIMITS: [&str; 4] = ["--ulimit", "nofile=8192:8192", "--ulimit", "nproc=4096:4096"];
/// CAP_SYS_PTRACE (19) and CAP_SYS_ADMIN (21).
const SIDECAR_CAPS: u64 = (1 << 19) | (1 << 21);

fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(["--runtime", "runc"]);
    cmd
}

/// Runs podman to completion; its stdout, or a panic with what it said.
fn podman_ok(args: &[&str]) -> String {
    let out = podman()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("podman (installed by scripts/setup): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "podman {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn image_size(image: &str) -> u64 {
    podman_ok(&["image", "inspect", image, "--format", "{{.Size}}"]).parse().unwrap()
}

/// The images and containers one run made, removed however it ends,
/// with the untagged stage images its builds left (not those that were
/// there before: the machine may be someone's).
struct Made {
    containers: Vec<String>,
    images: Vec<String>,
    dangling_before: Vec<String>,
}

fn dangling() -> Vec<String> {
    podman_ok(&["images", "-q", "--filter", "dangling=true"]).lines().map(str::to_owned).collect()
}

impl Drop for Made {
    fn drop(&mut self) {
        // The sidecar first: it uses the service's pid namespace.
        for c in self.containers.iter().rev() {
            let _ = podman().args(["rm", "-f", "-t", "0", c]).output();
        }
        for i in &self.images {
            let _ = podman().args(["rmi", "-f", i]).output();
        }
        for i in dangling().iter().filter(|i| !self.dangling_before.contains(i)) {
            let _ = podman().args(["rmi", i]).output();
        }
    }
}

/// `podman build` of `context` with `build_args`, tagged `tag`.
fn build(context: &Path, file: &Path, tag: &str, build_args: &[String]) {
    let mut args = vec!["build".to_owned(), "-f".to_owned(), file.display().to_string()];
    for a in build_args {
        args.extend(["--build-arg".to_owned(), a.clone()]);
    }
    args.extend(["-t".to_owned(), tag.to_owned(), context.display().to_string()]);
    podman_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

fn cap_eff(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    u64::from_str_radix(hex, 16).unwrap()
}

fn uid(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap().to_owned()
}

#[test]
fn the_image_runs_as_a_least_privileged_read_only_sidecar() {
    if !require_root("the_image_runs_as_a_least_privileged_read_only_sidecar") {
        return;
    }
    assert!(
        podman().args(["image", "exists", BASE_IMAGE]).status().is_ok_and(|s| s.success()),
        "{BASE_IMAGE} is missing: scripts/setup makes it"
    );
    let id = std::process::id();
    let (gort_image, service_image) =
        (format!("localhost/gort-it:{id}"), format!("localhost/gort-it-service:{id}"));
    let (pause, service, sidecar) =
        (format!("gort-it-pause-{id}"), format!("gort-it-service-{id}"), format!("gort-it-sidecar-{id}"));
    let mut made = Made { containers: Vec::new(), images: Vec::new(), dangling_before: dangling() };

    // The image, from the repository's Dockerfile.
    let dir = Scratch::new("container-sidecar");
    let context = dir.join("gort");
    std::fs::create_dir_all(context.join("prebuilt")).unwrap();
    let binary = gort_release_binary();
    std::fs::copy(binary, context.join("prebuilt/gort")).unwrap();
    made.images.push(gort_image.clone());
    // The repository's Dockerfile, beside the prebuilt binary.
    std::fs::copy(workspace_root().join("Dockerfile"), context.join("Dockerfile")).unwrap();
    build(
        &context,
        &context.join("Dockerfile"),
        &gort_image,
        &["GORT_FROM=prebuilt".to_owned(), format!("RUNTIME_IMAGE={BASE_IMAGE}")],
    );
    let (base_size, gort_size, binary_size) =
        (image_size(BASE_IMAGE), image_size(&gort_image), std::fs::metadata(binary).unwrap().len());
    eprintln!(
        "image {gort_image}: {:.1} MB = base {:.1} MB + gort {:.1} MB + {} bytes",
        gort_size as f64 / 1e6,
        base_size as f64 / 1e6,
        binary_size as f64 / 1e6,
        gort_size.saturating_sub(base_size + binary_size)
    );
    assert!(
        gort_size < base_size + binary_size + 1_000_000,
        "the image holds more than its base and one copy of gort"
    );
    assert_eq!(podman_ok(&["image", "inspect", &gort_image, "--format", "{{.Config.User}}"]), "65532:65532");

    // The service's own image: a Go program at /app/server.
    let service_context = dir.join("service");
    std::fs::create_dir_all(&service_context).unwrap();
    std::fs::copy(go_program("tracedsvc", "default", &[], &[]), service_context.join("server")).unwrap();
    std::fs::write(
        service_context.join("Containerfile"),
        "ARG BASE\nFROM ${BASE}\nCOPY server /app/server\nENTRYPOINT [\"/app/server\"]\n",
    )
    .unwrap();
    made.images.push(service_image.clone());
    build(
        &service_context,
        &service_context.join("Containerfile"),
        &service_image,
        &[format!("BASE={BASE_IMAGE}")],
    );

    // A pod as Kubernetes makes one with shareProcessNamespace: a pause
    // container holds the pid namespace (its pid 1: were the service pid 1,
    // the kernel would kill gort when the service exits) and the network
    // namespace both containers join, so the service sends to gort on
    // loopback. The pause container is on the host's network only so that
    // gort reaches the sink on the host.
    made.containers.push(pause.clone());
    podman_ok(
        &[
            &["run", "-d", "--rm", "--name", &pause, "--network", "host"][..],
            &LIMITS,
            &[BASE_IMAGE, "sleep", "infinity"],
        ]
        .concat(),
    );
    let pod = format!("container:{pause}");
    let (sink_out, gort_port) = (dir.join("sink.jsonl"), free_port());
    let (mut sink_proc, sink_port) = start_sink(&sink_out);
    made.containers.push(service.clone());
    let mut svc = podman();
    svc.args(["run", "--rm", "--name", &service, "--network", &pod, "--pid", &pod, "-e", "GOMAXPROCS=1"])
        .args(LIMITS)
        .args([&service_image, "-otlp", &format!("127.0.0.1:{gort_port}")]);
    let mut svc = Proc::spawn(svc, "[svc]");
    let addr = svc.listen_addr();

    made.containers.push(sidecar.clone());
    let mut gort = podman();
    gort.args(["run", "--rm", "--name", &sidecar, "--network", &pod, "--pid", &pod])
        .args(["--cap-drop", "ALL", "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE"])
        .args(["--read-only", "--read-only-tmpfs=false"])
        .args(LIMITS)
        .arg(&gort_image)
        .args(["run", "--exe", "/app/server", "--interval", "1s", "--telemetry", "off", "--otlp-http", "off"])
        .args(["--otlp-grpc", &format!("127.0.0.1:{gort_port}")])
        .args(["--upstream", &format!("http://127.0.0.1:{sink_port}")]);
    let mut gort = Proc::spawn(gort, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("mode:"));

    // Who gort runs as, seen from the host.
    let pid = podman_ok(&["inspect", &sidecar, "--format", "{{.State.Pid}}"]);
    assert_eq!(uid(&pid), "65532", "gort runs as root in its container");
    assert_eq!(cap_eff(&pid), SIDECAR_CAPS, "gort holds other capabilities than SYS_ADMIN and SYS_PTRACE");

    let mut load = Command::new(go_program("tracedsvc", "default", &[], &[]));
    load.args(["-load", &addr, "-duration", "3s", "-rate", "100", "-stall-every", "0"]);
    let mut load = Proc::spawn(load, "[load]");
    load.wait_line(Duration::from_secs(30), |l| l.contains("load-done"));
    // A container runtime stops the service with SIGTERM; it flushes its spans.
    podman_ok(&["stop", "-t", "30", &service]);
    svc.wait_line(Duration::from_secs(30), |l| l.contains("\"stopped\""));
    gort.wait_line(Duration::from_secs(30), |l| l.contains("exited; probes detached"));
    podman_ok(&["stop", "-t", "30", &sidecar]);
    assert!(gort.wait_exit(Duration::from_secs(40)).success(), "gort's container failed");
    std::thread::sleep(Duration::from_millis(500));
    sink_proc.terminate();
    let _ = sink_proc.wait_exit(Duration::from_secs(10));

    let items = sink::read(&sink_out);
    let spans: Vec<_> = items.iter().filter(|i| i.kind == "span" && !i.is_gorts_span()).collect();
    let enriched = spans.iter().filter(|s| s.has("go.runtime.runnable.duration")).count();
    let metrics: std::collections::BTreeSet<&str> =
        items.iter().filter(|i| i.kind == "point").map(|i| i.metric.as_str()).collect();
    eprintln!("{} spans, {enriched} enriched; metrics {metrics:?}", spans.len());
    assert!(spans.len() >= 250, "only {} of the load's ~300 spans arrived", spans.len());
    assert_eq!(enriched, spans.len(), "spans arrived without what the probes saw");
    assert!(metrics.contains("go.memory.used"), "the runtime's statistics were not read");
    assert!(metrics.contains("go.schedule.duration"), "the probes' histograms did not arrive");
}
