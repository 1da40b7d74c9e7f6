//! A dump printed the way Go developers already read one: one goroutine
//! after another as `runtime.Stack` and `/debug/pprof/goroutine?debug=2`
//! print them, or identical stacks grouped with counts as `debug=1` does.
//! At the default level, like Go's `GOTRACEBACK=single`, the runtime's own
//! goroutines and the runtime's internal frames are left out; `all` shows
//! everything. Arguments are not read: every call prints as `(...)`.

use std::{collections::BTreeMap, fmt::Write as _};

use gort_goexe::pclntab::Frame;

use super::{Dump, Goroutine, StackFrame};

/// Go's rule for a frame worth showing (`showfuncinfo`, traceback.go):
/// anything outside package runtime, and the runtime's exported functions,
/// but no generated wrapper.
fn shown(frame: &Frame) -> bool {
    if frame.wrapper {
        return false;
    }
    let function = frame.function.as_str();
    match function.strip_prefix("runtime.") {
        Some(rest) => rest.starts_with(|c: char| c.is_ascii_uppercase()),
        None => function.contains('.'),
    }
}

/// The frames to print: the shown ones, or all when none would be (the
/// runtime prints everything rather than nothing, too).
fn visible(g: &Goroutine, all: bool) -> Vec<&StackFrame> {
    let shown: Vec<&StackFrame> = g.frames.iter().filter(|f| all || shown(&f.frame)).collect();
    if shown.is_empty() { g.frames.iter().collect() } else { shown }
}

fn offset(f: &StackFrame) -> String {
    match f.pc.checked_sub(f.frame.entry) {
        Some(off) if off > 0 && !f.frame.inlined => format!(" +{off:#x}"),
        _ => String::new(),
    }
}

/// The bracketed status: the wait reason for a waiting goroutine, then
/// whole minutes waited as the runtime prints them.
fn status(g: &Goroutine) -> String {
    let mut s = match (&g.wait_reason, g.state) {
        (Some(reason), _) if !reason.is_empty() => reason.clone(),
        (_, state) => state.to_owned(),
    };
    if g.state == "leaked" {
        s.push_str(" (leaked)");
    }
    if let Some(minutes) = g.waited_seconds_approx.map(|w| (w / 60.0) as u64).filter(|m| *m >= 1) {
        let _ = write!(s, ", {minutes} minutes");
    }
    s
}

/// Every goroutine in id order, in `debug=2` form.
pub fn per_goroutine(dump: &Dump, all: bool) -> String {
    let mut out = String::new();
    for g in dump.goroutines.iter().filter(|g| all || !g.runtime) {
        let _ = writeln!(out, "goroutine {} [{}]:", g.id, status(g));
        if g.state == "running" {
            out.push_str("\tgoroutine running on other thread; stack unavailable\n");
        }
        for f in visible(g, all) {
            let _ =
                writeln!(out, "{}(...)\n\t{}:{}{}", f.frame.function, f.frame.file, f.frame.line, offset(f));
        }
        if g.truncated {
            out.push_str("...additional frames elided...\n");
        }
        if let Some(c) = g.created_by.as_ref().filter(|c| g.id != 1 && (all || shown(&c.frame))) {
            let _ = write!(out, "created by {}", c.frame.function);
            if let Some(creator) = g.creator {
                let _ = write!(out, " in goroutine {creator}");
            }
            let _ = writeln!(out, "\n\t{}:{}{}", c.frame.file, c.frame.line, offset(c));
        }
        out.push('\n');
    }
    if dump.unread > 0 {
        let _ = writeln!(out, "... {} more goroutines not read", dump.unread);
    }
    out
}

/// Goroutines grouped by identical stack, most first, in `debug=1` form:
/// the count and the return addresses, then one line per frame.
pub fn grouped(dump: &Dump, all: bool) -> String {
    let mut groups: BTreeMap<&[u64], Vec<&Goroutine>> = BTreeMap::new();
    for g in dump.goroutines.iter().filter(|g| all || !g.runtime) {
        groups.entry(&g.pcs).or_default().push(g);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let total: usize = groups.iter().map(|(_, gs)| gs.len()).sum();
    let mut out = format!("goroutine dump: total {total}\n");
    for (pcs, gs) in groups {
        let _ = write!(out, "{} @", gs.len());
        for pc in pcs {
            let _ = write!(out, " {pc:#x}");
        }
        out.push('\n');
        for f in visible(gs[0], true) {
            let off = f.pc.saturating_sub(f.frame.entry);
            let _ = writeln!(
                out,
                "#\t{:#x}\t{}+{off:#x}\t{}:{}",
                f.pc, f.frame.function, f.frame.file, f.frame.line
            );
        }
        out.push('\n');
    }
    out
}
