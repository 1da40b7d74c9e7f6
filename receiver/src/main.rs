//! The `gort` command line. Errors end here as one sentence on stderr and a
//! non-zero exit status; nothing below this file prints a backtrace.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use gort::{
    analysis::{self, Request},
    config, duration, pipeline,
    run::{self, RunOptions, SiteMode, TargetSpec},
};
use gort_common::field::{Module, OTEL_SDK_MODULE};
use gort_goexe::functions::{INSPECTED_FIELDS, INSPECTED_FUNCTIONS};

/// Default interval between live reports of `gort run`.
const DEFAULT_INTERVAL: &str = "1s";
/// Default runnable time from which a goroutine's wait is a notable event.
const DEFAULT_STALL_THRESHOLD: &str = "10ms";
/// Default window that opens at attach: a short look at a process (a run
/// of a few seconds) sees its first seconds whole instead of one sampled
/// second scaled by the period.
const DEFAULT_SAMPLE_FIRST_WINDOW: &str = "2s";
/// Default sampling window of the hot probes: intervals up to about this long
/// are measured (longer ones cannot fit in a window).
const DEFAULT_SAMPLE_WINDOW: &str = "500ms";
/// Default sampling period: one window per period, i.e. hot probes attached
/// 5% of the time, which keeps a busy server's overhead within budget (see
/// the README's overhead section); short enough that a load which starts
/// after the first window is seen within 10 s.
const DEFAULT_SAMPLE_PERIOD: &str = "10s";
/// How long deep mode lasts when SIGUSR1 asks for it.
const DEFAULT_DEEP_ON_SIGNAL: &str = "60s";
/// Deep mode is bounded: every hook costs on every goroutine switch.
const MAX_DEEP: Duration = Duration::from_secs(3600);
/// Shorter windows would spend more on attaching than on measuring.
const MIN_SAMPLE_WINDOW: Duration = Duration::from_millis(100);

#[derive(Parser)]
#[command(name = "gort", version, about = "Go runtime telemetry from eBPF uprobes, for OpenTelemetry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach to a running Go process and report what the probes see.
    Run(Box<RunArgs>),
    /// Print what gort resolves from a Go executable (no root needed).
    Inspect {
        /// The Go executable.
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").args(["pid", "exe"])))]
struct RunArgs {
    /// Process id of the Go program to watch.
    #[arg(long)]
    pid: Option<u32>,
    /// Watch every process running this executable, re-attaching after restarts.
    #[arg(long)]
    exe: Option<PathBuf>,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C or the pid exits.
    #[arg(long = "for", value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Interval between live reports.
    #[arg(long, value_parser = duration::parse, default_value = DEFAULT_INTERVAL)]
    interval: Duration,
    /// Also write everything gort exports as OTLP/JSON lines (Collector file-exporter format).
    #[arg(long)]
    otlp_json: Option<PathBuf>,
    /// Write a JSON summary (probes, sites, hit counts, goroutine ids seen) at the end.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// A goroutine runnable at least this long is reported as a notable stall.
    #[arg(long, value_parser = duration::parse, default_value = DEFAULT_STALL_THRESHOLD)]
    stall_threshold: Duration,
    /// The first sampling window, which opens at attach.
    #[arg(long, value_parser = duration::parse, default_value = DEFAULT_SAMPLE_FIRST_WINDOW)]
    sample_first_window: Duration,
    /// Sampling window: the hot probe (goroutine state changes) is attached
    /// this long at the start of each period; what it records is scaled by
    /// the time since the window opened over the window, and marked as an
    /// estimate. Intervals longer than the window are not seen.
    #[arg(long, value_parser = duration::parse, default_value = DEFAULT_SAMPLE_WINDOW)]
    sample_window: Duration,
    /// Sampling period; equal to the window means always attached (no sampling).
    #[arg(long, value_parser = duration::parse, default_value = DEFAULT_SAMPLE_PERIOD)]
    sample_period: Duration,
    /// Deep mode for this long after attaching (at most 1h): every probe,
    /// continuously, including per-goroutine diagnostics. Costs several
    /// microseconds per goroutine switch.
    #[arg(long, value_parser = duration::parse)]
    deep: Option<Duration>,
    /// Length of the deep mode that SIGUSR1 starts (at most 1h).
    #[arg(long, value_parser = duration::parse, default_value = DEFAULT_DEEP_ON_SIGNAL)]
    deep_on_signal: Duration,
    /// service.name of the exported resource; default: the program's main module path.
    #[arg(long)]
    service_name: Option<String>,
    /// Configuration file (YAML, `${env:VAR}` expanded) of the OTLP pipeline:
    /// receivers, upstream exporter, self-telemetry. See README.md.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run the OTLP pipeline (receive on 4317/4318, forward upstream) even
    /// without --config; implied by --config and by the flags below when
    /// they give an address (not when they say `off`).
    #[arg(long)]
    otlp: bool,
    /// Upstream OTLP/gRPC endpoint (overrides exporter.endpoint).
    #[arg(long)]
    upstream: Option<String>,
    /// OTLP/gRPC listen address or `off` (overrides receiver.grpc_endpoint).
    #[arg(long)]
    otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address or `off` (overrides receiver.http_endpoint).
    #[arg(long)]
    otlp_http: Option<String>,
    /// Self-metrics and health address or `off` (overrides telemetry.endpoint).
    #[arg(long)]
    telemetry: Option<String>,
    /// Probe placement (benchmarks only): `entry` puts probes on the first
    /// instruction, which the kernel single-steps, to measure what that costs.
    #[arg(long, value_enum, default_value = "auto", hide = true)]
    probe_site: ProbeSiteArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProbeSiteArg {
    Auto,
    Entry,
}

fn inspect(path: &PathBuf, json: bool) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let cache = object::ReadCache::new(file);
    let request = Request { functions: INSPECTED_FUNCTIONS, fields: INSPECTED_FIELDS };
    let mut analysis = analysis::analyse(&cache, &request).with_context(|| path.display().to_string())?;
    // The SDK's functions and fields are only missing from a program that
    // uses the SDK; for any other, they are not worth a mention.
    if !analysis.build.deps.iter().any(|m| m.path == OTEL_SDK_MODULE) {
        let sdk = |name: &str| name.starts_with("go.opentelemetry.io/");
        analysis.missing_functions.retain(|f| !sdk(f));
        analysis.missing_fields.retain(|f| f.module() != Module::OtelSdk);
        analysis.inlined_only.retain(|f, _| !sdk(f));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
        return Ok(());
    }
    println!("{}: {} {:?}", path.display(), analysis.build.go_version, analysis.arch);
    println!("  main module: {} {}", analysis.build.main.path, analysis.build.main.version);
    match analysis.build.deps.iter().find(|m| m.path == OTEL_SDK_MODULE) {
        Some(sdk) => println!("  OpenTelemetry Go SDK: {} {} (trace linkage)", sdk.path, sdk.version),
        None => println!("  OpenTelemetry Go SDK: not in the build (no trace linkage)"),
    }
    println!("  symbols: {}  dwarf: {}", analysis.has_symbols, analysis.has_dwarf);
    for f in analysis.functions.values() {
        println!(
            "  {:<24} {:#x} size {:<5} site +{:#x} {:?} ({}) returns {:?} (each {:?})",
            f.name,
            f.address,
            f.size,
            f.code.site.offset,
            f.code.site.kind,
            f.code.site.instruction,
            f.code.returns,
            analysis::RETURN_SITE_KIND
        );
    }
    for name in &analysis.missing_functions {
        match analysis.inlined_only.get(name) {
            Some(callers) => println!("  {name:<24} only inlined, into: {}", callers.join(", ")),
            None => println!("  {name:<24} not found"),
        }
    }
    for (name, reason) in &analysis.unprobeable {
        println!("  {name:<30} no probe site: {reason}");
    }
    for (field, offset) in &analysis.fields {
        println!("  {field:<24} offset {} ({:?})", offset.offset, offset.source);
    }
    for field in &analysis.missing_fields {
        println!("  {field:<24} offset unknown");
    }
    for warning in &analysis.warnings {
        println!("  warning: {warning}");
    }
    Ok(())
}

/// The pipeline's configuration: the file (if any) with the flags on top.
fn pipeline_config(args: &RunArgs) -> anyhow::Result<Option<config::Config>> {
    // A flag that turns a part off (`--telemetry off`) does not ask for
    // the pipeline; one that sets an address does.
    let overrides = [&args.upstream, &args.otlp_grpc, &args.otlp_http, &args.telemetry];
    let asks = |o: &&Option<String>| o.as_deref().is_some_and(|v| v != "off");
    if args.config.is_none() && !args.otlp && !overrides.iter().any(asks) {
        return Ok(None);
    }
    let mut raw: config::RawConfig = match &args.config {
        Some(path) => config::load_raw(path)?,
        None => config::RawConfig::default(),
    };
    if let Some(v) = &args.upstream {
        raw.exporter.endpoint = Some(v.clone());
    }
    if let Some(v) = &args.otlp_grpc {
        raw.receiver.grpc_endpoint = Some(v.clone());
    }
    if let Some(v) = &args.otlp_http {
        raw.receiver.http_endpoint = Some(v.clone());
    }
    if let Some(v) = &args.telemetry {
        raw.telemetry.endpoint = Some(v.clone());
    }
    Ok(Some(raw.validate()?))
}

async fn run_command(args: RunArgs) -> anyhow::Result<()> {
    let pipeline_config = pipeline_config(&args)?;
    let target = match (args.pid, &args.exe) {
        (Some(pid), _) => Some(TargetSpec::Pid(pid)),
        (None, Some(exe)) => Some(TargetSpec::Exe(exe.clone())),
        (None, None) => None,
    };
    let pipeline = match &pipeline_config {
        Some(c) => {
            let p = pipeline::Pipeline::start(c).await?;
            let at = |a: Option<std::net::SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
            println!(
                "gort: OTLP pipeline: receiving OTLP/gRPC on {}, OTLP/HTTP on {}; forwarding to {}; self-telemetry on {}",
                at(c.receiver.grpc),
                at(c.receiver.http),
                c.exporter.endpoint,
                at(c.telemetry)
            );
            Some(p)
        }
        None => None,
    };
    if let (Some(p), Some(path)) = (&pipeline, &args.otlp_json) {
        let tap = pipeline::tap::JsonTap::create(path).with_context(|| path.display().to_string())?;
        let _ = p.shared.tap.set(tap);
    }
    let summary_json = args.summary_json.clone();
    let shared = pipeline.as_ref().map(|p| p.shared.clone());
    let result = match target {
        Some(target) => run_target(args, target, shared.clone()).await,
        None if pipeline.is_some() => {
            println!("gort: OTLP pipeline running; Ctrl-C or SIGTERM stops it");
            wait_for_stop(args.duration).await.map(|()| None)
        }
        None => Err(anyhow::anyhow!("nothing to do: give --pid or --exe, and/or --config (or --otlp)")),
    };
    if let Some(p) = pipeline {
        p.shutdown().await;
    }
    if let (Ok(Some(summary)), Some(path)) = (&result, &summary_json) {
        let mut summary = summary.clone();
        summary.write(path, shared.as_deref())?;
    }
    result.map(|_| ())
}

async fn wait_for_stop(duration: Option<Duration>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let forever = Duration::from_secs(u64::MAX / 4);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        () = tokio::time::sleep(duration.unwrap_or(forever)) => {}
    }
    Ok(())
}

async fn run_target(
    args: RunArgs,
    target: TargetSpec,
    forward: Option<std::sync::Arc<pipeline::Shared>>,
) -> anyhow::Result<Option<run::Summary>> {
    for (flag, d) in
        [("--sample-window", args.sample_window), ("--sample-first-window", args.sample_first_window)]
    {
        if d < MIN_SAMPLE_WINDOW {
            anyhow::bail!("{flag} {d:?} is shorter than {MIN_SAMPLE_WINDOW:?}");
        }
    }
    if args.sample_period < args.sample_window {
        anyhow::bail!(
            "--sample-period {:?} is shorter than --sample-window {:?}",
            args.sample_period,
            args.sample_window
        );
    }
    for (flag, d) in [("--deep", args.deep), ("--deep-on-signal", Some(args.deep_on_signal))] {
        if d.is_some_and(|d| d > MAX_DEEP) {
            anyhow::bail!("{flag} is bounded to {MAX_DEEP:?}");
        }
    }
    let options = RunOptions {
        target,
        duration: args.duration,
        interval: args.interval,
        otlp_json: args.otlp_json,
        site_mode: match args.probe_site {
            ProbeSiteArg::Auto => SiteMode::Auto,
            ProbeSiteArg::Entry => SiteMode::Entry,
        },
        service_name: args.service_name,
        stall_threshold: args.stall_threshold,
        sampling: gort::sampling::Schedule {
            first_window: args.sample_first_window,
            window: args.sample_window,
            period: args.sample_period,
        },
        deep: args.deep,
        deep_on_signal: args.deep_on_signal,
        forward,
    };
    let summary = run::run(options).await?;
    println!("gort: stopped ({})", serde_json::to_string(&summary.ended)?.trim_matches('"'));
    Ok(Some(summary))
}

/// The error and its causes joined with ": ", leaving out a cause whose text
/// the message already carries (errors that print their source inline).
fn one_sentence(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { path, json } => inspect(&path, json),
        Command::Run(args) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt.block_on(run_command(*args)),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gort: {}", one_sentence(&e));
            ExitCode::FAILURE
        }
    }
}
