//! Where each planned probe goes inside its function, decided once per
//! attach from the decoded code, and described the same way by the attach
//! output, the summary and the attachment itself.

use std::collections::BTreeMap;

use gort_goexe::{self as analysis, CallSite, Function, SiteKind};

use crate::bpf::probes::{ProbeSpec, Site, SiteMode};

/// The instructions one probe is attached at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Placement {
    /// The site used (`Site::name`): the spec's, or the one fallen back to.
    pub site: &'static str,
    /// Offsets from the entry of the function each uprobe is in, one per
    /// uprobe (for the calls of a function, in their callers).
    pub offsets: Vec<u64>,
    /// File offsets, one per uprobe: what is attached.
    pub file_offsets: Vec<u64>,
    /// How the kernel runs them (the same for all of one placement).
    pub kind: SiteKind,
    /// For humans: `jbe 0x44cc4b`, `ret`, `call ...SetAttributes`.
    pub instruction: String,
    /// Why the preferred site could not be used, when it could not.
    pub fallback: Option<String>,
}

fn in_function(
    f: &Function,
    site: Site,
    offsets: Vec<u64>,
    kind: SiteKind,
    instruction: String,
) -> Placement {
    Placement {
        site: site.name(),
        file_offsets: offsets.iter().map(|o| f.file_offset + o).collect(),
        offsets,
        kind,
        instruction,
        fallback: None,
    }
}

fn returns(f: &Function, fallback: Option<String>) -> Option<Placement> {
    (!f.code.returns.is_empty()).then(|| Placement {
        fallback,
        ..in_function(f, Site::Returns, f.code.returns.clone(), analysis::RETURN_SITE_KIND, "ret".to_owned())
    })
}

/// The calls of `f` the filter does not leave out; None when there are
/// none to probe.
fn every_call(
    f: &Function,
    calls: Option<&Vec<CallSite>>,
    filter: crate::bpf::probes::CallFilter,
    site: Site,
) -> Option<Placement> {
    let (needless, probed): (Vec<&CallSite>, Vec<&CallSite>) =
        calls?.iter().partition(|c| filter.needless(&c.constant_args));
    if probed.is_empty() {
        return None;
    }
    let kind = match probed.iter().all(|c| c.kind == SiteKind::Emulated) {
        true => SiteKind::Emulated,
        false => SiteKind::SingleStepped,
    };
    let mut left_out: Vec<&str> = needless.iter().map(|c| c.caller.as_str()).collect();
    left_out.dedup();
    let callers = {
        let mut c: Vec<&str> = probed.iter().map(|c| c.caller.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    Some(Placement {
        site: site.name(),
        offsets: probed.iter().map(|c| c.offset).collect(),
        file_offsets: probed.iter().map(|c| c.file_offset).collect(),
        kind,
        instruction: format!(
            "call {} at {} sites in {callers} functions; {} calls left out by their constant arguments{}",
            f.name,
            probed.len(),
            needless.len(),
            if left_out.is_empty() { String::new() } else { format!(" (in {})", left_out.join(", ")) }
        ),
        fallback: None,
    })
}

/// The placement of `spec` in `f` (`functions`: every function the analysis
/// resolved, callees included; `calls`: the call sites it listed), or None
/// when the function offers none (no RET to probe).
pub(super) fn place(
    spec: &ProbeSpec,
    f: &Function,
    functions: &BTreeMap<String, Function>,
    calls: &BTreeMap<String, Vec<CallSite>>,
    mode: SiteMode,
) -> Option<Placement> {
    let after_entry = || {
        in_function(
            f,
            Site::AfterEntry,
            vec![f.code.site.offset],
            f.code.site.kind,
            f.code.site.instruction.clone(),
        )
    };
    match (spec.site, mode) {
        (Site::AfterEntry, SiteMode::Auto) => Some(after_entry()),
        (Site::AfterEntry | Site::EveryCall(_), SiteMode::Entry) => Some(in_function(
            f,
            Site::AfterEntry,
            vec![0],
            SiteKind::SingleStepped,
            "entry, benchmark only".to_owned(),
        )),
        (Site::Returns, _) => returns(f, None),
        (Site::EveryCall(filter), SiteMode::Auto) => every_call(f, calls.get(&f.name), filter, spec.site).or_else(|| {
            Some(Placement {
                fallback: Some(format!(
                    "the calls of {} could not be listed; probing after its entry, where every call traps, the needless ones too",
                    f.name
                )),
                ..after_entry()
            })
        }),
        (Site::CallTo(callee), _) => {
            let call = functions.get(callee).and_then(|c| f.code.first_call_to(c.address));
            match call {
                Some(call) => Some(in_function(f, spec.site, vec![call.offset], call.kind, format!("call {callee}"))),
                // A release that inlined the callee, or stopped calling it:
                // the RETs still hand the span over, at a single step each.
                None => returns(
                    f,
                    Some(format!(
                        "{} does not call {callee}; probing its RETs instead, which the kernel single-steps (about 5 µs per hit)",
                        f.name
                    )),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gort_goexe::{CodeFacts, DirectCall, ProbeSite, SymbolSource};

    use super::*;

    fn function(name: &str, address: u64, calls: Vec<DirectCall>) -> Function {
        Function {
            name: name.to_owned(),
            source: SymbolSource::Symtab,
            inlined_into: None,
            address,
            size: 64,
            file_offset: address - 0x40_0000,
            code: CodeFacts {
                site: ProbeSite {
                    offset: 4,
                    kind: SiteKind::Emulated,
                    instruction: "jbe 0x1".into(),
                    args_intact: true,
                },
                returns: vec![40, 60],
                calls,
            },
        }
    }

    const SPEC: ProbeSpec = ProbeSpec {
        id: gort_common::ProbeId::SpanStart,
        name: "span_start",
        symbol: "caller",
        site: Site::CallTo("callee"),
        program: "p",
        multi_program: None,
        need: crate::bpf::probes::Need::Optional,
        heat: crate::bpf::probes::Heat::Linked,
        go: crate::bpf::probes::GoRange::ALL,
    };

    #[test]
    fn a_call_site_is_the_first_call_to_the_callee_else_the_returns() {
        let functions = BTreeMap::from([("callee".to_owned(), function("callee", 0x40_2000, vec![]))]);
        let calls = vec![
            DirectCall { offset: 10, target: 0x40_3000, kind: SiteKind::Emulated },
            DirectCall { offset: 20, target: 0x40_2000, kind: SiteKind::Emulated },
            DirectCall { offset: 30, target: 0x40_2000, kind: SiteKind::Emulated },
        ];
        let caller = function("caller", 0x40_1000, calls);
        let p = place(&SPEC, &caller, &functions, &BTreeMap::new(), SiteMode::Auto).unwrap();
        assert_eq!(p.offsets, vec![20]);
        assert_eq!(p.kind, SiteKind::Emulated);
        assert_eq!(p.fallback, None);
        assert_eq!(p.file_offsets, vec![0x1000 + 20]);
        assert_eq!(p.site, "call_to");

        let lonely = function("caller", 0x40_1000, vec![]);
        let p = place(&SPEC, &lonely, &functions, &BTreeMap::new(), SiteMode::Auto).unwrap();
        assert_eq!(p.offsets, vec![40, 60]);
        assert_eq!(p.site, "returns");
        assert_eq!(p.kind, SiteKind::SingleStepped);
        assert!(p.fallback.unwrap().contains("single-steps"));
    }

    #[test]
    fn every_call_but_the_needless_ones_else_after_the_entry() {
        use gort_common::gstatus::{COPYSTACK, RUNNABLE, RUNNING};

        use crate::bpf::probes::CallFilter;
        let spec = ProbeSpec { symbol: "callee", site: Site::EveryCall(CallFilter::StatusChange), ..SPEC };
        let callee = function("callee", 0x40_2000, vec![]);
        let site = |caller: &str, file_offset, old: u32, new: u32| CallSite {
            caller: caller.to_owned(),
            address: file_offset + 0x40_0000,
            offset: 0x20,
            file_offset,
            kind: SiteKind::Emulated,
            constant_args: [None, Some(u64::from(old)), Some(u64::from(new))],
        };
        let mut unknown = site("c", 0x3000, 0, 0);
        unknown.constant_args = [None; 3];
        let calls = BTreeMap::from([(
            "callee".to_owned(),
            vec![
                site("a", 0x1000, RUNNABLE, RUNNING),
                site("grow", 0x1100, RUNNING, COPYSTACK),
                site("grow", 0x1200, COPYSTACK, RUNNING),
                site("b", 0x2000, RUNNING, RUNNABLE),
                unknown,
            ],
        )]);
        let p = place(&spec, &callee, &BTreeMap::new(), &calls, SiteMode::Auto).unwrap();
        assert_eq!(p.file_offsets, vec![0x1000, 0x2000, 0x3000]);
        assert_eq!((p.site, p.kind, p.fallback), ("every_call", SiteKind::Emulated, None));
        assert!(
            p.instruction.contains("3 sites in 3 functions; 2 calls left out")
                && p.instruction.contains("(in grow)")
        );

        // No calls listed: the emulated site after the entry, said so.
        let p = place(&spec, &callee, &BTreeMap::new(), &BTreeMap::new(), SiteMode::Auto).unwrap();
        assert_eq!((p.site, p.file_offsets), ("after_entry", vec![0x2000 + 4]));
        assert!(p.fallback.unwrap().contains("could not be listed"));
        let p = place(&spec, &callee, &BTreeMap::new(), &calls, SiteMode::Entry).unwrap();
        assert_eq!((p.file_offsets, p.kind), (vec![0x2000], SiteKind::SingleStepped));
    }
}
