//! `gort run`'s flags: each one overrides a field of the configuration file
//! (named in its help), so the file and the flags are one configuration.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::ValueEnum;

use crate::{
    config::{self, Config, RawConfig, duration},
    pipeline,
    session::{self, RunOptions, sampling::Schedule},
    target::TargetSpec,
};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target_flag").args(["pid", "exe"])))]
pub struct RunArgs {
    /// Configuration file (YAML, `${env:VAR}` expanded): everything below
    /// can be set there, and the flags override it. See README.md.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Process id of the Go program to watch (target.pid).
    #[arg(long)]
    pid: Option<u32>,
    /// Watch every process running this executable, re-attaching after
    /// restarts (target.exe).
    #[arg(long)]
    exe: Option<PathBuf>,
    /// Stop after this long, e.g. 30s, 5m (run.duration); default: until
    /// Ctrl-C or the pid exits.
    #[arg(long = "for", value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Interval between live reports (run.interval, default 1s).
    #[arg(long, value_parser = duration::parse)]
    interval: Option<Duration>,
    /// Also write everything gort exports as OTLP/JSON lines, the Collector
    /// file-exporter format (run.otlp_json).
    #[arg(long)]
    otlp_json: Option<PathBuf>,
    /// Write a JSON summary (probes, sites, hit counts, goroutine ids seen)
    /// at the end (run.summary_json).
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// service.name of the exported resource until the service exports to
    /// gort (run.service_name); default: the program's main module path.
    #[arg(long)]
    service_name: Option<String>,
    /// A goroutine runnable at least this long is a notable event
    /// (events.runnable_threshold, default 10ms).
    #[arg(long, alias = "stall-threshold", value_parser = duration::parse)]
    runnable_threshold: Option<Duration>,
    /// The first sampling window, which opens at attach (sampling.first_window, default 2s).
    #[arg(long, value_parser = duration::parse)]
    sample_first_window: Option<Duration>,
    /// Sampling window (sampling.window, default 500ms): the hot probe
    /// (goroutine state changes) is attached this long at the start of each
    /// period; what it records is scaled by the time it stands for and
    /// marked as an estimate. Intervals longer than the window are not seen.
    #[arg(long, value_parser = duration::parse)]
    sample_window: Option<Duration>,
    /// Sampling period (sampling.period, default 10s); equal to the window
    /// means always attached (no sampling).
    #[arg(long, value_parser = duration::parse)]
    sample_period: Option<Duration>,
    /// Deep mode for this long after attaching, at most 1h (deep.at_attach):
    /// every probe, continuously, including per-goroutine diagnostics. Costs
    /// several microseconds per goroutine switch.
    #[arg(long, value_parser = duration::parse)]
    deep: Option<Duration>,
    /// Length of the deep mode that SIGUSR1 starts, at most 1h (deep.on_signal, default 60s).
    #[arg(long, value_parser = duration::parse)]
    deep_on_signal: Option<Duration>,
    /// Run the OTLP pipeline (receive on 4317/4318, forward upstream) even
    /// without --config (otlp); implied by --config and by the flags below
    /// when they give an address (not when they say `off`).
    #[arg(long)]
    otlp: bool,
    /// Upstream OTLP/gRPC endpoint (exporter.endpoint).
    #[arg(long)]
    upstream: Option<String>,
    /// OTLP/gRPC listen address or `off` (receiver.grpc_endpoint).
    #[arg(long)]
    otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address or `off` (receiver.http_endpoint).
    #[arg(long)]
    otlp_http: Option<String>,
    /// Self-metrics and health address or `off` (telemetry.endpoint).
    #[arg(long)]
    telemetry: Option<String>,
    /// Probe placement, benchmarks only (run.probe_site): `entry` puts probes
    /// on the first instruction, which the kernel single-steps, to measure
    /// what that costs.
    #[arg(long, value_enum, hide = true)]
    probe_site: Option<ProbeSiteArg>,
    /// Measure each probe program's run time with the kernel's BPF
    /// statistics (about 20 ns more per run while on) and put it in the
    /// summary (run.bpf_stats).
    #[arg(long)]
    bpf_stats: bool,
    /// `none`: attach no probe, only read the target's memory (the
    /// runtime's statistics, the goroutine census) (run.probes).
    #[arg(long, value_enum)]
    probes: Option<ProbesArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProbesArg {
    All,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProbeSiteArg {
    Auto,
    Entry,
}

/// A duration as the file spells it, exactly.
fn text(d: Duration) -> String {
    format!("{}ns", d.as_nanos())
}

impl RunArgs {
    /// Writes every flag given over the file's value.
    fn apply(&self, raw: &mut RawConfig) {
        let set = |field: &mut Option<String>, flag: Option<Duration>| {
            if let Some(d) = flag {
                *field = Some(text(d));
            }
        };
        if self.pid.is_some() || self.exe.is_some() {
            raw.target.pid = self.pid;
            raw.target.exe = self.exe.clone();
        }
        set(&mut raw.run.duration, self.duration);
        set(&mut raw.run.interval, self.interval);
        set(&mut raw.events.runnable_threshold, self.runnable_threshold);
        set(&mut raw.sampling.first_window, self.sample_first_window);
        set(&mut raw.sampling.window, self.sample_window);
        set(&mut raw.sampling.period, self.sample_period);
        set(&mut raw.deep.at_attach, self.deep);
        set(&mut raw.deep.on_signal, self.deep_on_signal);
        if let Some(p) = &self.otlp_json {
            raw.run.otlp_json = Some(p.clone());
        }
        if let Some(p) = &self.summary_json {
            raw.run.summary_json = Some(p.clone());
        }
        if let Some(s) = &self.service_name {
            raw.run.service_name = Some(s.clone());
        }
        if self.bpf_stats {
            raw.run.bpf_stats = Some(true);
        }
        if let Some(p) = self.probes {
            raw.run.probes = Some(match p {
                ProbesArg::All => "all".into(),
                ProbesArg::None => "none".into(),
            });
        }
        if let Some(site) = self.probe_site {
            raw.run.probe_site = Some(match site {
                ProbeSiteArg::Auto => "auto".into(),
                ProbeSiteArg::Entry => "entry".into(),
            });
        }
        // A flag that turns a part off (`--telemetry off`) does not ask for
        // the pipeline; one that sets an address does.
        let overrides = [
            (&self.upstream, &mut raw.exporter.endpoint),
            (&self.otlp_grpc, &mut raw.receiver.grpc_endpoint),
            (&self.otlp_http, &mut raw.receiver.http_endpoint),
            (&self.telemetry, &mut raw.telemetry.endpoint),
        ];
        let mut asks = self.otlp;
        for (flag, field) in overrides {
            if let Some(v) = flag {
                asks |= v != "off";
                *field = Some(v.clone());
            }
        }
        if asks {
            raw.otlp = Some(true);
        }
    }

    /// The configuration: the file (if any) with the flags on top, validated.
    fn config(&self) -> anyhow::Result<Config> {
        let mut raw = match &self.config {
            Some(path) => config::load_raw(path)?,
            None => RawConfig::default(),
        };
        self.apply(&mut raw);
        Ok(raw.validate(self.config.is_some())?)
    }
}

pub async fn run_command(args: RunArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let pipeline = match &config.pipeline {
        Some(c) => {
            let p = pipeline::Pipeline::start(c).await?;
            // "OTLP/gRPC off", not "on off", for a receiver turned off.
            let at = |what: &str, a: Option<std::net::SocketAddr>| {
                a.map_or_else(|| format!("{what} off"), |a| format!("{what} on {a}"))
            };
            println!(
                "gort: OTLP pipeline: receiving {}, {}; forwarding to {}; {}",
                at("OTLP/gRPC", c.receiver.grpc),
                at("OTLP/HTTP", c.receiver.http),
                c.exporter.endpoint,
                at("self-telemetry", c.telemetry)
            );
            Some(p)
        }
        None => None,
    };
    if let (Some(p), Some(path)) = (&pipeline, &config.run.otlp_json) {
        let tap = pipeline::tap::JsonTap::create(path).with_context(|| path.display().to_string())?;
        let _ = p.shared.tap.set(tap);
    }
    let shared = pipeline.as_ref().map(|p| p.shared.clone());
    let result = match config.target.clone() {
        Some(target) => run_target(&config, target, shared.clone()).await,
        None if pipeline.is_some() => {
            // Installed before the line that says so: a SIGTERM right after
            // it must drain the queue, not kill gort.
            let stop = stop_signals()?;
            println!("gort: OTLP pipeline running; Ctrl-C or SIGTERM stops it");
            wait_for_stop(stop, config.run.duration).await;
            Ok(None)
        }
        None => Err(anyhow::anyhow!("nothing to do: give --pid or --exe, and/or --config (or --otlp)")),
    };
    if let Some(p) = pipeline {
        p.shutdown().await;
    }
    if let (Ok(Some(summary)), Some(path)) = (&result, &config.run.summary_json) {
        let mut summary = summary.clone();
        summary.write(path, shared.as_deref())?;
    }
    result.map(|_| ())
}

type Signals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

fn stop_signals() -> anyhow::Result<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
}

async fn wait_for_stop((mut int, mut term): Signals, duration: Option<Duration>) {
    let forever = Duration::from_secs(u64::MAX / 4);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        () = tokio::time::sleep(duration.unwrap_or(forever)) => {}
    }
}

async fn run_target(
    config: &Config,
    target: TargetSpec,
    forward: Option<std::sync::Arc<pipeline::Shared>>,
) -> anyhow::Result<Option<session::Summary>> {
    let run = &config.run;
    let options = RunOptions {
        target,
        duration: run.duration,
        interval: run.interval,
        otlp_json: run.otlp_json.clone(),
        site_mode: run.probe_site,
        bpf_stats: run.bpf_stats,
        probes: run.probes,
        service_name: run.service_name.clone(),
        runnable_event_threshold: run.runnable_event_threshold,
        leaks: run.leaks,
        sampling: Schedule {
            first_window: run.sampling.first_window,
            window: run.sampling.window,
            period: run.sampling.period,
        },
        deep: run.deep_at_attach,
        deep_on_signal: run.deep_on_signal,
        forward,
    };
    let summary = session::run(options).await?;
    println!("gort: stopped ({})", serde_json::to_string(&summary.ended)?.trim_matches('"'));
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Test {
        #[command(flatten)]
        args: RunArgs,
    }

    fn config(file: Option<&str>, flags: &[&str]) -> anyhow::Result<Config> {
        let args = Test::try_parse_from(std::iter::once("gort").chain(flags.iter().copied()))?.args;
        let mut raw = match file {
            Some(yaml) => serde_yaml::from_str(yaml)?,
            None => RawConfig::default(),
        };
        args.apply(&mut raw);
        Ok(raw.validate(file.is_some())?)
    }

    fn d(text: &str) -> Duration {
        duration::parse(text).unwrap()
    }

    #[test]
    fn defaults_are_the_named_constants() {
        let c = config(None, &[]).unwrap();
        assert_eq!(c.target, None);
        assert_eq!(c.pipeline, None);
        assert_eq!(c.run.interval, d(config::DEFAULT_INTERVAL));
        assert_eq!(c.run.runnable_event_threshold, d(config::DEFAULT_RUNNABLE_EVENT_THRESHOLD));
        assert_eq!(c.run.sampling.window, d(config::DEFAULT_SAMPLE_WINDOW));
        assert_eq!(c.run.sampling.period, d(config::DEFAULT_SAMPLE_PERIOD));
        assert_eq!(c.run.deep_on_signal, d(config::DEFAULT_DEEP_ON_SIGNAL));
    }

    #[test]
    fn the_file_sets_everything_and_flags_override_it() {
        let file = "target:\n  pid: 7\nrun:\n  duration: 30s\n  interval: 5s\nevents:\n  runnable_threshold: 2ms\n\
                    sampling:\n  window: 1s\n  period: 20s\ndeep:\n  on_signal: 10s\n";
        let c = config(Some(file), &[]).unwrap();
        assert_eq!(c.target, Some(TargetSpec::Pid(7)));
        assert_eq!((c.run.duration, c.run.interval), (Some(d("30s")), d("5s")));
        assert_eq!(c.run.runnable_event_threshold, d("2ms"));
        assert_eq!((c.run.sampling.window, c.run.sampling.period), (d("1s"), d("20s")));
        assert_eq!(c.run.deep_on_signal, d("10s"));
        assert!(c.pipeline.is_some(), "a file turns the pipeline on");
        let c =
            config(Some(file), &["--exe", "/bin/app", "--sample-window", "2s", "--stall-threshold", "3ms"])
                .unwrap();
        assert_eq!(c.target, Some(TargetSpec::Exe("/bin/app".into())));
        assert_eq!(c.run.sampling.window, d("2s"));
        assert_eq!(c.run.runnable_event_threshold, d("3ms"));
        assert_eq!(c.run.interval, d("5s"), "what no flag overrides stays the file's");
        let c = config(Some("otlp: false\ntarget:\n  pid: 7\n"), &[]).unwrap();
        assert_eq!(c.pipeline, None);
    }

    #[test]
    fn probes_none_reads_memory_only_and_refuses_linkage() {
        assert!(config(None, &[]).unwrap().run.probes, "probes by default");
        assert!(!config(None, &["--pid", "7", "--probes", "none"]).unwrap().run.probes);
        // A file turns the pipeline on, and linkage with it.
        let e = config(Some("target:\n  pid: 7\n"), &["--probes", "none"]).unwrap_err().to_string();
        assert!(e.starts_with("run.probes: none leaves trace linkage without its probes"), "{e}");
        let file = "target:\n  pid: 7\nrun:\n  probes: none\nlinkage:\n  enabled: false\n";
        assert!(!config(Some(file), &[]).unwrap().run.probes);
        let e = config(Some("run:\n  probes: some\n"), &[]).unwrap_err().to_string();
        assert!(e.contains("\"some\" is not all or none"), "{e}");
    }

    #[test]
    fn only_flags_that_give_an_address_ask_for_the_pipeline() {
        assert_eq!(config(None, &["--telemetry", "off"]).unwrap().pipeline, None);
        let c = config(None, &["--upstream", "http://10.0.0.1:4317"]).unwrap();
        assert_eq!(c.pipeline.unwrap().exporter.endpoint, "http://10.0.0.1:4317");
        assert!(config(None, &["--otlp"]).unwrap().pipeline.is_some());
    }

    #[test]
    fn mistakes_name_the_field() {
        let e = config(None, &["--sample-window", "50ms"]).unwrap_err().to_string();
        assert_eq!(e, "sampling.window: 50ms is shorter than 100ms");
        let e =
            config(None, &["--sample-period", "200ms", "--sample-window", "300ms"]).unwrap_err().to_string();
        assert!(e.starts_with("sampling.period: "), "{e}");
        let e = config(None, &["--deep", "2h"]).unwrap_err().to_string();
        assert!(e.starts_with("deep.at_attach: is bounded to"), "{e}");
        let e = config(Some("target:\n  pid: 1\n  exe: /x\n"), &[]).unwrap_err().to_string();
        assert_eq!(e, "target: give pid or exe, not both");
        // A part that is off is still checked.
        let e = config(Some("otlp: false\nexporter:\n  timeout: soon\n"), &[]).unwrap_err().to_string();
        assert!(e.starts_with("exporter.timeout: "), "{e}");
    }
}
