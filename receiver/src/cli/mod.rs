//! The `gort` command line. Errors end here as one sentence on stderr and a
//! non-zero exit status; nothing below this room prints a backtrace.

/// Appends a formatted line to a `String` of output (which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = ::std::fmt::Write::write_fmt(&mut $out, format_args!($($arg)*));
        $out.push('\n');
    }};
}

mod goroutines;
mod inspect;
mod run;
mod stats;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Writes a command's output to stdout at once: a reader that stops early
/// (`| head`) ends the output, not the program with a panic.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing the output"))
        }
        _ => Ok(()),
    }
}

#[derive(Parser)]
#[command(name = "gort", version, about = "Go runtime telemetry from eBPF uprobes, for OpenTelemetry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach to a running Go process and report what the probes see.
    Run(Box<run::RunArgs>),
    /// Print what gort resolves from a Go executable (no root needed).
    Inspect {
        /// The Go executable.
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Dump a running Go process's goroutines with their stacks, read from
    /// its memory (no probe, no stop; needs ptrace access to the process).
    Goroutines {
        /// The process.
        #[arg(long)]
        pid: u32,
        /// How to print it.
        #[arg(long, value_enum, default_value = "goroutines")]
        format: goroutines::Format,
        /// Shorthand for `--format json`.
        #[arg(long)]
        json: bool,
        /// Include the runtime's own goroutines and frames (Go's
        /// `GOTRACEBACK=system`).
        #[arg(long)]
        all: bool,
    },
    /// Read a running Go process's own runtime statistics once from its
    /// memory (no probe; needs ptrace access to the process).
    Stats {
        /// The process.
        #[arg(long)]
        pid: u32,
        /// Print JSON (the summary's `runtime_stats` form) instead of text.
        #[arg(long)]
        json: bool,
    },
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

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { path, json } => inspect::inspect(&path, json),
        Command::Stats { pid, json } => stats::stats(pid, json),
        Command::Goroutines { pid, format, json, all } => {
            goroutines::goroutines(pid, if json { goroutines::Format::Json } else { format }, all)
        }
        Command::Run(args) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt.block_on(run::run_command(*args)),
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
