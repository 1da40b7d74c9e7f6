//! Where each planned probe goes inside its function, decided once per
//! attach from the decoded code, and described the same way by the attach
//! output, the summary and the attachment itself.

use std::collections::BTreeMap;

use gort_goexe::{self as analysis, Function, SiteKind};

use crate::bpf::probes::{ProbeSpec, Site, SiteMode};

/// The instructions one probe is attached at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Placement {
    /// Offsets from the function's entry, one per uprobe.
    pub offsets: Vec<u64>,
    /// How the kernel runs them (the same for all of one placement).
    pub kind: SiteKind,
    /// For humans: `jbe 0x44cc4b`, `ret`, `call ...SetAttributes`.
    pub instruction: String,
    /// Why the preferred site could not be used, when it could not.
    pub fallback: Option<String>,
}

impl Placement {
    pub fn file_offsets(&self, f: &Function) -> Vec<u64> {
        self.offsets.iter().map(|o| f.file_offset + o).collect()
    }
}

fn returns(f: &Function, fallback: Option<String>) -> Option<Placement> {
    (!f.code.returns.is_empty()).then(|| Placement {
        offsets: f.code.returns.clone(),
        kind: analysis::RETURN_SITE_KIND,
        instruction: "ret".to_owned(),
        fallback,
    })
}

/// The placement of `spec` in `f` (`functions`: every function the analysis
/// resolved, callees included), or None when the function offers none (no
/// RET to probe).
pub(super) fn place(
    spec: &ProbeSpec,
    f: &Function,
    functions: &BTreeMap<String, Function>,
    mode: SiteMode,
) -> Option<Placement> {
    let after_entry = || Placement {
        offsets: vec![f.code.site.offset],
        kind: f.code.site.kind,
        instruction: f.code.site.instruction.clone(),
        fallback: None,
    };
    match (spec.site, mode) {
        (Site::AfterEntry, SiteMode::Auto) => Some(after_entry()),
        (Site::AfterEntry, SiteMode::Entry) => Some(Placement {
            offsets: vec![0],
            kind: SiteKind::SingleStepped,
            instruction: "entry, benchmark only".to_owned(),
            fallback: None,
        }),
        (Site::Returns, _) => returns(f, None),
        (Site::CallTo(callee), _) => {
            let call = functions.get(callee).and_then(|c| f.code.first_call_to(c.address));
            match call {
                Some(call) => Some(Placement {
                    offsets: vec![call.offset],
                    kind: call.kind,
                    instruction: format!("call {callee}"),
                    fallback: None,
                }),
                // A release that inlined the callee, or stopped calling it:
                // the RETs still hand the span over, at a single step each.
                None => returns(
                    f,
                    Some(format!(
                        "{} does not call {callee}; probing its RETs instead, which the kernel single-steps",
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
        let p = place(&SPEC, &caller, &functions, SiteMode::Auto).unwrap();
        assert_eq!(p.offsets, vec![20]);
        assert_eq!(p.kind, SiteKind::Emulated);
        assert_eq!(p.fallback, None);
        assert_eq!(p.file_offsets(&caller), vec![0x1000 + 20]);

        let lonely = function("caller", 0x40_1000, vec![]);
        let p = place(&SPEC, &lonely, &functions, SiteMode::Auto).unwrap();
        assert_eq!(p.offsets, vec![40, 60]);
        assert_eq!(p.kind, SiteKind::SingleStepped);
        assert!(p.fallback.unwrap().contains("single-steps"));
    }
}
