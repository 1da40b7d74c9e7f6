//! The declarative table of what gort attaches: which Go runtime function, at
//! which site, runs which eBPF program, and whether gort can work without it.
//! The analysis resolves every symbol and field named here; attach walks it.

use gort_common::{ProbeId, gstatus, names};
use gort_goexe::{
    Field,
    functions::{SDK_NEW_RECORDING_SPAN, SDK_SET_ATTRIBUTES, SDK_SPAN_END},
};

/// Where in the function the uprobe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The first instruction the kernel emulates after the entry (see
    /// `analysis::sites`): arguments are still in their registers.
    AfterEntry,
    /// Every RET instruction: the function's results are in the result
    /// registers. The kernel single-steps a RET (about 5 µs here), so only
    /// rare events may use it. (Never a uretprobe: Go moves stacks.)
    Returns,
    /// The first direct CALL to the named function: a relative CALL is
    /// emulated, and at it the callee's arguments are in their registers,
    /// so a value the function hands on is seen cheaply. Falls back to
    /// `Returns`, with a warning, when the function has no such call.
    CallTo(&'static str),
    /// Every direct CALL of the function from its package (an emulated
    /// trap each, the callee's arguments in their registers), except the
    /// calls whose constant arguments the filter says the program ignores:
    /// those cost nothing. Falls back to `AfterEntry` when the calls cannot
    /// be listed.
    EveryCall(CallFilter),
}

impl Site {
    /// The name in the summary's `site`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AfterEntry => "after_entry",
            Self::Returns => "returns",
            Self::CallTo(_) => "call_to",
            Self::EveryCall(_) => "every_call",
        }
    }
}

/// Which calls of an `EveryCall` probe's function need no probe, by their
/// constant arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFilter {
    /// `casgstatus(gp, oldval, newval)`: a transition the program does
    /// nothing for (`gstatus::matters`), such as running <-> copystack
    /// around a stack growth or running <-> syscall before Go 1.26.
    StatusChange,
}

impl CallFilter {
    /// Whether a call with these argument registers (None: not a known
    /// constant) can go unprobed.
    pub fn needless(self, args: &[Option<u64>]) -> bool {
        match self {
            Self::StatusChange => match (args.get(1).copied().flatten(), args.get(2).copied().flatten()) {
                (Some(old), Some(new)) => match (u32::try_from(old), u32::try_from(new)) {
                    (Ok(old), Ok(new)) => !gstatus::matters(old, new),
                    _ => false,
                },
                _ => false,
            },
        }
    }
}

/// Where probes go: the analysed emulatable site, or (for the probe-cost
/// benchmark only) the function entry, which the kernel single-steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteMode {
    Auto,
    Entry,
}

/// Whether gort refuses to run when the probe cannot be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

/// When a probe is attached, by how often it fires: the cost of a uprobe is
/// the trap (about a microsecond here), so the hot ones decide the overhead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heat {
    /// Fires a few times per GC cycle: always attached.
    Cold,
    /// Fires on every goroutine state change: by default attached only in
    /// periodic sampling windows (its aggregates are scaled and marked as
    /// sampled), continuously in deep mode.
    Sampled,
    /// Diagnostics that fire several times per state change on top of the
    /// sampled probe: deep mode only.
    DeepOnly,
    /// Trace linkage (span start/end, goroutine creation, GC assists):
    /// attached for as long as linkage is on, and only then. Linkage also
    /// keeps the sampled probe attached, since a span's waits must all be seen.
    Linked,
}

impl Heat {
    /// When the probe is attached, as gort's output says it.
    pub const fn attached(self) -> &'static str {
        match self {
            Heat::Cold => "always",
            Heat::Sampled => "sampled",
            Heat::DeepOnly => "deep mode",
            Heat::Linked => "trace linkage",
        }
    }
}

/// The Go releases a probe applies to: `[since, until)` as (major, minor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoRange {
    pub since: Option<(u32, u32)>,
    pub until: Option<(u32, u32)>,
}

impl GoRange {
    pub const ALL: Self = Self { since: None, until: None };

    pub fn contains(&self, v: gort_goexe::GoVersion) -> bool {
        let v = (v.major, v.minor);
        self.since.is_none_or(|s| v >= s) && self.until.is_none_or(|u| v < u)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ProbeSpec {
    pub id: ProbeId,
    /// Short name used in output and metric attributes.
    pub name: &'static str,
    pub symbol: &'static str,
    pub site: Site,
    pub program: &'static str,
    /// The same program built as a multi-uprobe (`uprobe.multi`): all of
    /// the probe's sites in one link, attached and detached in one step.
    /// Used where the kernel filters such links by process (`Probes::load`
    /// checks), else `program`, one link per site.
    pub multi_program: Option<&'static str>,
    pub need: Need,
    pub heat: Heat,
    pub go: GoRange,
}

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        id: ProbeId::Execute,
        name: "execute",
        symbol: "runtime.execute",
        site: Site::AfterEntry,
        program: names::PROG_EXECUTE,
        multi_program: None,
        need: Need::Optional,
        heat: Heat::DeepOnly,
        go: GoRange::ALL,
    },
    ProbeSpec {
        id: ProbeId::Ready,
        name: "ready",
        symbol: "runtime.ready",
        site: Site::AfterEntry,
        program: names::PROG_READY,
        multi_program: None,
        need: Need::Optional,
        heat: Heat::DeepOnly,
        go: GoRange::ALL,
    },
    ProbeSpec {
        id: ProbeId::Casgstatus,
        name: "casgstatus",
        symbol: "runtime.casgstatus",
        site: Site::EveryCall(CallFilter::StatusChange),
        program: names::PROG_CASGSTATUS,
        multi_program: Some(names::PROG_CASGSTATUS_MULTI),
        need: Need::Optional,
        heat: Heat::Sampled,
        go: GoRange::ALL,
    },
    ProbeSpec {
        id: ProbeId::StopTheWorld,
        name: "stw_start",
        symbol: "runtime.stopTheWorldWithSema",
        site: Site::AfterEntry,
        program: names::PROG_STW_START,
        multi_program: None,
        need: Need::Optional,
        // From 1.22 the runtime hands its own start time to
        // startTheWorldWithSema (stw_args below), which is exact.
        heat: Heat::Cold,
        go: GoRange { since: None, until: Some((1, 22)) },
    },
    ProbeSpec {
        id: ProbeId::StartTheWorldArgs,
        name: "stw_args",
        symbol: "runtime.startTheWorldWithSema",
        site: Site::AfterEntry,
        program: names::PROG_STW_ARGS,
        multi_program: None,
        need: Need::Optional,
        heat: Heat::Cold,
        go: GoRange { since: Some((1, 22)), until: None },
    },
    ProbeSpec {
        id: ProbeId::StartTheWorldReturn,
        name: "stw_end",
        symbol: "runtime.startTheWorldWithSema",
        site: Site::Returns,
        program: names::PROG_STW_END,
        multi_program: None,
        need: Need::Optional,
        heat: Heat::Cold,
        go: GoRange::ALL,
    },
    ProbeSpec {
        id: ProbeId::SpanStart,
        name: "span_start",
        symbol: SDK_NEW_RECORDING_SPAN,
        // The new span is SetAttributes' receiver: the same value the RET
        // would hand over, without the single step on every span.
        site: Site::CallTo(SDK_SET_ATTRIBUTES),
        program: names::PROG_SPAN_START,
        multi_program: None,
        need: Need::Optional,
        heat: Heat::Linked,
        go: GoRange::ALL,
    },
    ProbeSpec {
        id: ProbeId::SpanEnd,
        name: "span_end",
        symbol: SDK_SPAN_END,
        site: Site::AfterEntry,
        program: names::PROG_SPAN_END,
        multi_program: None,
        need: Need::Optional,
        heat: Heat::Linked,
        go: GoRange::ALL,
    },
];

/// Struct fields the probes (and the goroutine census) read, with whether
/// they are required.
pub const FIELDS: &[(Field, Need)] = &[
    (Field::GGoid, Need::Required),
    (Field::GWaitreason, Need::Optional),
    (Field::GAtomicstatus, Need::Optional),
    (Field::GParentGoid, Need::Optional),
    (Field::GStartpc, Need::Optional),
    (Field::SpanContext, Need::Optional),
    // The creator of a new goroutine (g0.m.curg), for span inheritance.
    (Field::GM, Need::Optional),
    (Field::MCurg, Need::Optional),
];

/// Every function the probes need resolved: the probed ones and the callees
/// their call sites are found by.
pub fn symbols() -> Vec<&'static str> {
    let callees = PROBES.iter().filter_map(|p| match p.site {
        Site::CallTo(callee) => Some(callee),
        _ => None,
    });
    let mut all: Vec<&'static str> = PROBES.iter().map(|p| p.symbol).chain(callees).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Every function whose call sites the probes need listed.
pub fn callers() -> Vec<&'static str> {
    PROBES.iter().filter(|p| matches!(p.site, Site::EveryCall(_))).map(|p| p.symbol).collect()
}

pub fn fields() -> Vec<Field> {
    FIELDS.iter().map(|(f, _)| *f).collect()
}

#[cfg(test)]
mod tests {
    use gort_common::gstatus::*;

    use super::*;

    #[test]
    fn only_calls_with_constant_transitions_the_probe_ignores_are_needless() {
        let f = CallFilter::StatusChange;
        let call =
            |old: Option<u32>, new: Option<u32>| f.needless(&[None, old.map(u64::from), new.map(u64::from)]);
        // newstack's stack copy and the syscall transitions: nothing measured.
        assert!(call(Some(RUNNING), Some(COPYSTACK)));
        assert!(call(Some(COPYSTACK), Some(RUNNING)));
        assert!(call(Some(RUNNING), Some(SYSCALL)));
        assert!(call(Some(SYSCALL), Some(RUNNING)));
        assert!(call(Some(WAITING), Some(LEAKED)));
        // Anything that starts or ends a wait, or a goroutine, is probed.
        assert!(!call(Some(SYSCALL), Some(RUNNABLE)));
        assert!(!call(Some(RUNNABLE), Some(RUNNING)));
        assert!(!call(Some(RUNNING), Some(WAITING)));
        assert!(!call(Some(DEADEXTRA), Some(SYSCALL)));
        assert!(!call(Some(LEAKED), Some(RUNNABLE)));
        assert!(!call(Some(0), Some(DEAD)));
        // Unknown arguments, or not statuses at all: probed.
        assert!(!call(None, Some(RUNNING)));
        assert!(!call(Some(RUNNING), None));
        assert!(!f.needless(&[None, Some(2), Some(1 << 40)]));
        assert!(!f.needless(&[]));
    }
}
