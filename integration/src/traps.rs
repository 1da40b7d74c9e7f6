//! What one uprobe trap costs the traced thread, by site kind: a tracefs
//! uprobe on one instruction of `integration/go/trapbench`'s `probed` (the
//! site gort's analysis chooses, which the kernel emulates; the entry and the
//! RET, which it single-steps), timed by the program itself against runs
//! with no probe. Tracing is switched off while measuring, so the event's
//! handler finds the buffer off and returns at once: what remains is the
//! trap, the kernel's uprobe dispatch and the emulation or the single step,
//! the part of a BPF probe's cost its program statistics do not include.
//! `SiteTraps` puts the same kind of probe at any set of sites of a real
//! service, to measure the traps in place.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{Proc, go_program};

const TRACEFS: &str = "/sys/kernel/tracing";
const GROUP: &str = "gort_trapbench";
const EVENT: &str = "site";
/// The group of `SiteTraps`' events.
const SITES_GROUP: &str = "gort_bench_sites";

/// Nanoseconds one trap adds to a call of the probed function.
#[derive(Clone, Debug)]
pub struct TrapCosts {
    /// At the site gort's analysis chose (an emulated instruction).
    pub emulated_ns: f64,
    /// The instruction there, as gort's analysis printed it.
    pub emulated_instruction: String,
    /// At the function's first instruction (single-stepped).
    pub entry_ns: f64,
    /// At its RET (single-stepped).
    pub ret_ns: f64,
    pub calls: u64,
    pub runs: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Site {
    None,
    Emulated,
    Entry,
    Ret,
}

/// Offsets of the three sites in the trapbench binary, from gort's own analysis.
struct Sites {
    emulated: u64,
    instruction: String,
    entry: u64,
    ret: u64,
}

fn sites(binary: &Path) -> Sites {
    let bytes = std::fs::read(binary).expect("read trapbench");
    let request = gort_goexe::Request { functions: &["main.probed"], fields: &[], callers: &[] };
    let analysis = gort_goexe::analyse(&bytes[..], &request).expect("analyse trapbench");
    let f = analysis.functions.get("main.probed").expect("main.probed in trapbench");
    assert_eq!(f.code.site.kind, gort_goexe::sites::SiteKind::Emulated, "site of main.probed: {f:?}");
    let entry = f.file_offset as usize;
    assert!(
        !gort_goexe::sites::amd64_emulated(&bytes[entry..entry + 16]),
        "main.probed starts with an emulated instruction; the entry case would measure nothing"
    );
    Sites {
        emulated: f.site_file_offset(),
        instruction: f.code.site.instruction.clone(),
        entry: f.file_offset,
        ret: f.return_file_offsets().next().expect("a RET in main.probed"),
    }
}

fn write(path: impl AsRef<Path>, text: &str, append: bool) {
    let path = path.as_ref();
    let mut f = OpenOptions::new()
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("write {text:?} to {}: {e}", path.display()));
}

fn tracefs() -> PathBuf {
    let root = PathBuf::from(TRACEFS);
    if !root.join("uprobe_events").exists() {
        let status = Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]).status();
        assert!(status.is_ok_and(|s| s.success()), "mount tracefs on {TRACEFS}");
    }
    root
}

/// A tracefs uprobe at `offset` of `binary`, enabled until dropped.
struct Probe {
    root: PathBuf,
    group: &'static str,
    event: String,
}

impl Probe {
    fn attach(root: &Path, group: &'static str, event: &str, binary: &Path, offset: u64) -> Self {
        let spec = format!("p:{group}/{event} {}:{offset:#x}\n", binary.display());
        write(root.join("uprobe_events"), &spec, true);
        write(root.join(format!("events/{group}/{event}/enable")), "1", false);
        Self { root: root.to_owned(), group, event: event.to_owned() }
    }

    /// Hits of the event so far (`uprobe_profile`: path, event name, hits).
    fn hits(&self) -> u64 {
        let profile = std::fs::read_to_string(self.root.join("uprobe_profile")).unwrap_or_default();
        let qualified = format!("{}/{}", self.group, self.event);
        profile
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && (f[1] == self.event || f[1] == qualified)).then(|| f[2].parse().unwrap_or(0))
            })
            .sum()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        write(self.root.join(format!("events/{}/{}/enable", self.group, self.event)), "0", false);
        write(self.root.join("uprobe_events"), &format!("-:{}/{}\n", self.group, self.event), true);
    }
}

/// Tracing switched off until dropped, so a tracefs uprobe's handler finds
/// the buffer off and returns at once.
struct TracingOff {
    path: PathBuf,
    was: String,
}

impl TracingOff {
    fn new(root: &Path) -> Self {
        let path = root.join("tracing_on");
        let was = std::fs::read_to_string(&path).unwrap_or_else(|_| "1".into());
        write(&path, "0", false);
        Self { path, was }
    }
}

impl Drop for TracingOff {
    fn drop(&mut self) {
        write(&self.path, self.was.trim(), false);
    }
}

/// Tracefs uprobes at every one of a set of sites of one binary, with
/// tracing off: the traps a set of probe sites costs the process that hits
/// them, with no BPF program behind them.
pub struct SiteTraps {
    probes: Vec<Probe>,
    _tracing: TracingOff,
}

impl SiteTraps {
    /// Needs root.
    pub fn attach(binary: &Path, file_offsets: &[u64]) -> Self {
        let root = tracefs();
        let tracing = TracingOff::new(&root);
        let probes = file_offsets
            .iter()
            .enumerate()
            .map(|(i, &offset)| Probe::attach(&root, SITES_GROUP, &format!("site{i}"), binary, offset))
            .collect();
        Self { probes, _tracing: tracing }
    }

    /// Hits at each site so far, in the order the sites were given.
    pub fn hits(&self) -> Vec<u64> {
        self.probes.iter().map(Probe::hits).collect()
    }
}

fn median(mut v: Vec<u64>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// Runs trapbench `runs` times per site (interleaved, so drift hits every
/// site alike), `calls` calls each, and returns the median added time per
/// call. Needs root.
pub fn measure(runs: usize, calls: u64) -> TrapCosts {
    let binary = go_program("trapbench", "default", &[], &[]);
    let sites = sites(&binary);
    let root = tracefs();
    let tracing = TracingOff::new(&root);
    let mut cmd = Command::new(&binary);
    cmd.args(["-calls", &calls.to_string()]);
    let mut prog = Proc::spawn(cmd, "[trapbench]");
    prog.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    let order = [Site::None, Site::Emulated, Site::Entry, Site::Ret];
    let mut samples: Vec<(Site, u64)> = Vec::new();
    for run in 0..runs {
        for i in 0..order.len() {
            let site = order[(i + run) % order.len()];
            let offset = match site {
                Site::None => None,
                Site::Emulated => Some(sites.emulated),
                Site::Entry => Some(sites.entry),
                Site::Ret => Some(sites.ret),
            };
            let probe = offset.map(|o| Probe::attach(&root, GROUP, EVENT, &binary, o));
            prog.send_line("go");
            let done = prog.wait_line(Duration::from_secs(120), |l| l.contains("\"done\""));
            let done: serde_json::Value = serde_json::from_str(&done).expect("trapbench report");
            if let Some(p) = &probe {
                // A probe that did not fire on every call measured less
                // than a trap per call. (The runtime's start-up can add a
                // handful of hits of its own.)
                let hits = p.hits();
                assert!(
                    hits >= calls && hits <= calls + calls / 100,
                    "trapbench probe at {site:?}: {hits} hits"
                );
            }
            drop(probe);
            samples.push((site, done["elapsed_ns"].as_u64().expect("elapsed_ns")));
        }
    }
    prog.send_line("quit");
    let _ = prog.wait_exit(Duration::from_secs(10));
    drop(tracing);
    let of = |s: Site| median(samples.iter().filter(|(k, _)| *k == s).map(|(_, e)| *e).collect());
    let base = of(Site::None);
    let per_call = |s: Site| (of(s) - base) / calls as f64;
    TrapCosts {
        emulated_ns: per_call(Site::Emulated),
        emulated_instruction: sites.instruction,
        entry_ns: per_call(Site::Entry),
        ret_ns: per_call(Site::Ret),
        calls,
        runs,
    }
}
